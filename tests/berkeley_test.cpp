// Berkeley clock synchronisation: the fault-tolerant average on its own, then whole
// daemons (bully + Berkeley, each with its own skewed, drifting virtual clock) on the
// simulated network, where the true offsets are known at every instant.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>

#include "bus/berkeley.hpp"
#include "bus/sim_network.hpp"
#include "test_util.hpp"

using namespace bus;
using namespace std::chrono_literals;

TEST_CASE("berkeley average: deltas, not absolute times, toward the mean", "[unit][berkeley]") {
    // Master (1) at 0; members +300 ms and -600 ms: the average is -100 ms.
    auto r = berkeley_average({{1, 0, 0}, {2, 300'000, 400}, {3, -600'000, 600}}, 50ms, 60s);
    CHECK(r.average_us == -100'000);
    CHECK(r.delta_us.at(1) == -100'000);
    CHECK(r.delta_us.at(2) == -400'000);
    CHECK(r.delta_us.at(3) == 500'000);
    CHECK(r.used == std::vector<NodeId>{1, 2, 3});
}

TEST_CASE("berkeley average: one clock an hour off does not drag the others", "[unit][berkeley]") {
    auto r = berkeley_average({{1, 0, 0}, {2, 2'000, 300}, {3, -1'000, 300}, {4, 3'600'000'000, 300}}, 50ms, 60s);
    CHECK(r.too_far == std::vector<NodeId>{4});
    CHECK(r.average_us == 333);  // (0 + 2000 - 1000) / 3
    CHECK(r.delta_us.at(4) == 333 - 3'600'000'000);  // it is still told how far off it is
    SECTION("even the master can be the one left out") {
        auto m = berkeley_average({{1, 0, 0}, {2, -3'600'000'000, 300}, {3, -3'600'001'000, 300}}, 50ms, 60s);
        CHECK(m.too_far == std::vector<NodeId>{1});
        CHECK(m.average_us == -3'600'000'500);
    }
}

TEST_CASE("berkeley average: readings with too long a round trip are discarded", "[unit][berkeley]") {
    auto r = berkeley_average({{1, 0, 0}, {2, 10'000, 200'000}, {3, 2'000, 500}}, 50ms, 60s);
    CHECK(r.too_slow == std::vector<NodeId>{2});
    CHECK(r.average_us == 1000);
    CHECK(r.delta_us.count(2) == 0);  // no correction from an estimate that poor
    SECTION("...and so are those far above the member's own usual round trip") {
        // Node 3 usually answers in 400 us (limit max(3 x 400, 400 + 1000) = 1400 us): this
        // 2.8 ms reading, delayed one way, would be 1.2 ms off.
        auto q = berkeley_average({{1, 0, 0}, {2, 40, 450, 1450}, {3, 1'260, 2'800, 1'400}}, 50ms, 60s);
        CHECK(q.too_slow == std::vector<NodeId>{3});
        CHECK(q.average_us == 20);
    }
}

namespace {

constexpr int64_t kRealMinusSteady = 1'700'000'000'000'000;  // FakeClock's default wall offset

struct Clocks {
    Duration skew;
    double drift_ppm;
    bool broken = false;
};

/// n Berkeley daemons on the simulator; node i gets clocks[i - 1].
struct BerkeleySim {
    std::unique_ptr<SimNetwork> net;
    std::vector<Clocks> clocks;

    /// One-way delays uniform in [min_delay, max_delay]: their asymmetry is the offset
    /// estimates' error (up to (max - min) / 2 per reading).
    BerkeleySim(std::vector<Clocks> c, uint64_t seed, Duration min_delay = 100us, Duration max_delay = 300us)
        : clocks(std::move(c)) {
        ClusterConfig cfg = test::make_cluster(static_cast<int>(clocks.size()));
        SimOptions o;
        o.seed = seed;
        o.min_delay = min_delay;
        o.max_delay = max_delay;
        SimNetwork** self = &self_;
        net = std::make_unique<SimNetwork>(
            cfg,
            [cfg, this, self](NodeId id, uint64_t, const HardState&, std::mt19937_64&) {
                const Clocks& k = clocks[id - 1];
                BerkeleyConfig bc;
                bc.broken = k.broken;
                int64_t real_now = kRealMinusSteady + (*self)->now().count();
                return std::make_unique<Berkeley>(cfg, id, VirtualTime(real_now, k.skew, k.drift_ppm),
                                                  kRealMinusSteady, bc);
            },
            o);
        self_ = net.get();
    }

    Berkeley* node(NodeId id) { return net->as<Berkeley>(id); }
    int64_t offset(NodeId id) { return node(id)->clock().offset_us(kRealMinusSteady + net->now().count()); }

    /// Max - min true virtual offset over the running, not broken nodes, now.
    int64_t spread() {
        std::vector<int64_t> v;
        for (NodeId id : net->ids())
            if (net->is_running(id) && !clocks[id - 1].broken) v.push_back(offset(id));
        auto [lo, hi] = std::minmax_element(v.begin(), v.end());
        return *hi - *lo;
    }
    /// Runs until the current master has completed `n` more rounds (bounded).
    void rounds(uint64_t n) {
        NodeId m = master();
        uint64_t target = (m ? node(m)->rounds_completed() : 0) + n;
        for (int i = 0; i < 10'000; ++i) {
            net->run_for(10ms);
            m = master();
            if (m && node(m)->rounds_completed() >= target) return;
        }
        FAIL("rounds did not complete");
    }
    NodeId master() {
        for (NodeId id : net->ids())
            if (net->is_running(id) && node(id)->is_master()) return id;
        return 0;
    }

private:
    SimNetwork* self_ = nullptr;
};

std::vector<Clocks> random_clocks(int n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<Clocks> c;
    for (int i = 0; i < n; ++i)
        c.push_back({Duration(static_cast<int64_t>(rng() % 10'000'000) - 5'000'000),
                     static_cast<double>(static_cast<int64_t>(rng() % 201) - 100)});
    return c;
}

}  // namespace

namespace {

/// The worst spread over `span`, sampled every 50 ms (between rounds as well as after them).
int64_t worst_spread(BerkeleySim& s, Duration span) {
    int64_t worst = 0;
    for (Duration d{}; d < span; d += 50ms) {
        s.net->run_for(50ms);
        worst = std::max(worst, s.spread());
    }
    return worst;
}

}  // namespace

TEST_CASE("berkeley sim: clocks seconds apart converge in one round", "[unit][berkeley][sim]") {
    for (uint64_t seed = 1; seed <= 10; ++seed) {
        INFO("seed " << seed);
        BerkeleySim s(random_clocks(5, seed), seed);
        s.net->start_all();
        int64_t before = s.spread();
        CHECK(before > 1'000'000);  // seconds apart to begin with
        s.rounds(1);
        s.net->run_for(1500ms);  // the slews of round 1 finish
        int64_t after = s.spread();
        INFO("spread before " << before << " us, after one round " << after << " us");
        // Left: the readings' error (delay asymmetry, up to 100 us each) plus 1.5 s of drift.
        CHECK(after < 600);
    }
}

TEST_CASE("berkeley sim: rate discipline keeps drifting clocks close between rounds", "[unit][berkeley][sim]") {
    // Symmetric delays, so the readings are exact and what is left is drift: ±100 ppm clocks
    // left alone drift up to 400 us apart in a 2 s round.
    for (uint64_t seed = 1; seed <= 5; ++seed) {
        INFO("seed " << seed);
        BerkeleySim s(random_clocks(5, seed), seed, 200us, 200us);
        s.net->start_all();
        s.rounds(2);
        int64_t early = worst_spread(s, 4s);
        s.rounds(15);  // several rate windows
        int64_t late = worst_spread(s, 10s);
        INFO("worst spread early " << early << " us, after 15 more rounds " << late << " us");
        CHECK(early > 100);  // drift shows before the first rate correction...
        CHECK(late < 30);    // ...and is all but gone after a few
        CHECK(late * 5 < early);
    }
}

TEST_CASE("berkeley sim: a broken clock an hour off is left out and does not drag the others",
          "[unit][berkeley][sim]") {
    auto clocks = random_clocks(5, 3);
    clocks[1] = {std::chrono::hours(1), 0.0, true};  // node 2 cannot be set
    BerkeleySim s(clocks, 3);
    s.net->start_all();
    s.rounds(5);
    s.net->run_for(1500ms);
    CHECK(s.spread() < 1'000);                     // the honest four agree
    CHECK(std::abs(s.offset(1)) < 10'000'000);     // and nobody moved toward +1 h
    CHECK(s.offset(2) > 3'590'000'000);            // the broken one is where it was
}

TEST_CASE("berkeley sim: kill the master and sync continues under the next", "[unit][berkeley][sim]") {
    BerkeleySim s(random_clocks(5, 11), 11);
    s.net->start_all();
    s.rounds(3);
    NodeId m = s.master();
    REQUIRE(m == 5);
    s.net->crash(m);
    s.net->run_for(3s);
    NodeId next = s.master();
    CHECK(next == 4);
    uint64_t before = s.node(next)->rounds_completed();
    s.rounds(3);
    CHECK(s.node(next)->rounds_completed() >= before + 3);
    s.net->run_for(1500ms);
    CHECK(s.spread() < 1'000);
}

TEST_CASE("berkeley sim: members accept corrections only from the current master's epoch",
          "[unit][berkeley][sim]") {
    BerkeleySim s(random_clocks(3, 5), 5);
    s.net->start_all();
    s.rounds(2);
    Berkeley* member = s.node(1);
    int64_t off = s.offset(1);
    Envelope e;
    e.from = NodeId(2);  // not the master
    e.inc = 1;
    e.seq = 1;
    e.body = ClockAdjust{member->view().term, 99, 5'000'000, 0};
    Actions a = member->on_message(2, e, s.net->now());
    CHECK(test::events_named(a, "clock.ignore").size() == 1);
    CHECK(s.offset(1) == off);
    e.from = NodeId(3);  // the master, but an old epoch
    e.body = ClockAdjust{member->view().term - 1, 99, 5'000'000, 0};
    a = member->on_message(3, e, s.net->now());
    CHECK(test::events_named(a, "clock.ignore").size() == 1);
    CHECK(s.offset(1) == off);
}
