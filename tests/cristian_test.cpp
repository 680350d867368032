// The Cristian estimator with hand-made exchanges: server processing excluded, the smallest
// round trip chosen, and the error bound holding whatever the split of the delays.
#include <catch2/catch.hpp>

#include <random>

#include "bus/cristian.hpp"

using namespace bus;
using namespace std::chrono_literals;

namespace {

/// An exchange with a true offset (server - client), one-way delays and server time.
TimeSample exchange(int64_t t0, int64_t true_offset, int64_t out, int64_t serve, int64_t back) {
    TimeSample s;
    s.t0 = t0;
    s.t1 = t0 + out + true_offset;
    s.t2 = s.t1 + serve;
    s.t3 = t0 + out + serve + back;
    return s;
}

}  // namespace

TEST_CASE("cristian: symmetric delays give the exact offset — server time is excluded", "[unit][cristian]") {
    auto e = CristianEstimator::estimate(exchange(1000, 2'000'000, 300, 5000, 300), 0us);
    CHECK(e.offset_us == 2'000'000);
    CHECK(e.rtt_us == 600);  // not 5600: the server's 5 ms are not in the round trip
    CHECK(e.bound_us == 300);
}

TEST_CASE("cristian: asymmetric delays stay within the bound", "[unit][cristian]") {
    std::mt19937_64 rng(7);
    for (int i = 0; i < 1000; ++i) {
        int64_t out = static_cast<int64_t>(rng() % 5000), back = static_cast<int64_t>(rng() % 5000);
        int64_t truth = static_cast<int64_t>(rng() % 20'000'000) - 10'000'000;
        auto e = CristianEstimator::estimate(exchange(1'000'000, truth, out, 100, back), 0us);
        CHECK(std::abs(e.offset_us - truth) <= e.bound_us);
    }
    SECTION("all delay one way: the error is exactly the bound") {
        auto e = CristianEstimator::estimate(exchange(0, 0, 800, 0, 0), 0us);
        CHECK(e.offset_us == 400);
        CHECK(e.bound_us == 400);
    }
    SECTION("a known minimum one-way delay tightens the bound") {
        auto e = CristianEstimator::estimate(exchange(0, 0, 300, 0, 300), 100us);
        CHECK(e.bound_us == 200);
        auto all_one_way = CristianEstimator::estimate(exchange(0, 0, 800, 0, 0), 100us);
        CHECK(all_one_way.bound_us == 300);  // the truth (0) is 400 away: min_one_way was a lie
    }
}

TEST_CASE("cristian: of several exchanges, the smallest round trip is kept", "[unit][cristian]") {
    CristianEstimator c;
    CHECK_FALSE(c.best());
    c.add(exchange(0, 5000, 900, 10, 100));   // rtt 1000, error 400
    c.add(exchange(10, 5000, 60, 10, 40));    // rtt 100: the best
    c.add(exchange(20, 5000, 3000, 10, 10));  // rtt 3010
    auto b = c.best();
    REQUIRE(b);
    CHECK(b->rtt_us == 100);
    CHECK(b->offset_us == 5010);
    CHECK(b->bound_us == 50);
    CHECK(b->samples == 3);
    CHECK(std::abs(b->offset_us - 5000) <= b->bound_us);
    SECTION("a sample with a negative round trip is refused") {
        TimeSample bad{100, 0, 5000, 150};  // t3 - t0 = 50 < t2 - t1 = 5000
        CHECK_FALSE(c.add(bad));
        CHECK(c.best()->samples == 3);
    }
}

TEST_CASE("cristian: a time server endpoint must be tcp://HOST:PORT with a port in 1..65535", "[unit][cristian]") {
    for (const char* ok : {"tcp://127.0.0.1:7102", "tcp://time.example.org:1", "tcp://[::1]:65535", "tcp://a_b:80"})
        CHECK(endpoint_problem(ok).empty());
    CHECK(endpoint_problem("garbage") == "not tcp://HOST:PORT");
    CHECK(endpoint_problem("udp://127.0.0.1:7102") == "not tcp://HOST:PORT");
    CHECK(endpoint_problem("tcp://127.0.0.1") == "no :PORT (tcp://HOST:PORT)");
    CHECK(endpoint_problem("tcp://127.0.0.1:99999") == "port '99999' is not a number in 1..65535");
    CHECK(endpoint_problem("tcp://127.0.0.1:0") == "port '0' is not a number in 1..65535");
    CHECK(endpoint_problem("tcp://127.0.0.1:") == "port '' is not a number in 1..65535");
    CHECK(endpoint_problem("tcp://127.0.0.1:*") == "port '*' is not a number in 1..65535");
    CHECK(endpoint_problem("tcp://127.0.0.1:-5") == "port '-5' is not a number in 1..65535");
    CHECK(endpoint_problem("tcp://bad host!:7102") == "'bad host!' is not a host name or an IP address");
    CHECK(endpoint_problem("tcp://:7102") == "'' is not a host name or an IP address");
    CHECK(endpoint_problem("tcp://[zz]:7102") == "'[zz]' is not a host name or an IP address");
}
