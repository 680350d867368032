// The phi-accrual detector against synthetic heartbeat arrival sequences, with explicit
// time: regular, jittery, bursty loss, a long pause, a resume, a local stall.
#include <catch2/catch.hpp>

#include <random>

#include "bus/phi_detector.hpp"

using namespace bus;
using namespace std::chrono_literals;

namespace {

/// Feeds heartbeats of peer 2 (seq 1, 2, ...) at the given instants, ticking in between, and
/// returns every state change.
struct Feed {
    PhiAccrualDetector d;
    uint64_t seq = 0;
    std::vector<PeerEvent> events;
    explicit Feed(PhiConfig c = {}) : d(c, 2s) { d.add_peer(2, Time(0)); }
    void beat(Time t, bool lost = false) {
        tick_until(t);
        ++seq;
        if (!lost) for (auto& e : d.on_heard(2, 7, seq, t)) events.push_back(e);
        CHECK(d.check_invariants().empty());
    }
    void tick_until(Time t) {
        // Tick exactly at the detector's own deadlines, as the real loop does.
        for (int guard = 0; guard < 1000; ++guard) {
            Time next = d.next_deadline();
            if (next > t) break;
            for (auto& e : d.on_tick(next)) events.push_back(e);
        }
        for (auto& e : d.on_tick(t)) events.push_back(e);
    }
    size_t count(PeerState s) const {
        size_t n = 0;
        for (auto& e : events) n += e.state == s;
        return n;
    }
};

}  // namespace

TEST_CASE("phi: grows with the silence, from about 0 to large", "[unit][phi]") {
    double mean = 100'000, sd = 10'000;
    CHECK(PhiAccrualDetector::phi_of(0ms, mean, sd) < 0.01);
    CHECK(PhiAccrualDetector::phi_of(100ms, mean, sd) == Approx(0.30).margin(0.02));  // half: -log10(0.5)
    double prev = 0;
    for (int ms = 0; ms <= 1000; ms += 10) {
        double p = PhiAccrualDetector::phi_of(std::chrono::milliseconds(ms), mean, sd);
        CHECK(p >= prev);
        prev = p;
    }
    CHECK(std::isfinite(PhiAccrualDetector::phi_of(1h, mean, sd)));  // no overflow
    CHECK(PhiAccrualDetector::phi_of(1h, mean, sd) > 1000);
}

TEST_CASE("phi: regular heartbeats never raise a suspicion — silence does, then death", "[unit][phi]") {
    Feed f;
    Time t{};
    for (int i = 0; i < 200; ++i) f.beat(t += 100ms);
    CHECK(f.count(PeerState::suspect) == 0);
    CHECK(f.d.phi(2, t + 100ms) < 1);
    // Then it stops: suspected (mean 100 + pause 200 ms, sd 50 ms: phi 8 near 300 + 5.6 x 50 ms).
    f.tick_until(t + 5s);
    REQUIRE(f.count(PeerState::suspect) == 1);
    REQUIRE(f.count(PeerState::dead) == 1);
    auto s = f.events[f.events.size() - 2], d = f.events.back();
    CHECK(s.state == PeerState::suspect);
    CHECK(s.phi >= 8.0);
    CHECK(s.silence > 500ms);
    CHECK(s.silence < 700ms);
    CHECK(d.state == PeerState::dead);
    CHECK(d.phi >= 16.0);
}

TEST_CASE("phi: jittery heartbeats widen the distribution instead of being convicted", "[unit][phi]") {
    std::mt19937_64 rng(3);
    Feed f;
    Time t{};
    for (int i = 0; i < 1000; ++i) f.beat(t += Duration(50'000 + static_cast<int64_t>(rng() % 250'000)));  // 50-300 ms
    CHECK(f.count(PeerState::suspect) == 0);
}

TEST_CASE("phi: lost heartbeats are not taken for long intervals", "[unit][phi]") {
    Feed f;
    Time t{};
    for (int i = 0; i < 100; ++i) f.beat(t += 100ms);
    for (int i = 0; i < 300; ++i) f.beat(t += 100ms, /*lost=*/i % 3 == 0);  // a third of them lost
    CHECK(f.count(PeerState::suspect) == 0);
    // The window still says "every 100 ms": a 900 ms silence is highly suspicious.
    CHECK(f.d.phi(2, t + 900ms) > 8);
}

TEST_CASE("phi: a long pause is suspected and the peer comes back alive on its next heartbeat",
          "[unit][phi]") {
    Feed f;
    Time t{};
    for (int i = 0; i < 100; ++i) f.beat(t += 100ms);
    f.beat(t += 3s);  // paused for 3 s, then resumed
    CHECK(f.count(PeerState::suspect) == 1);
    CHECK(f.count(PeerState::dead) == 1);
    REQUIRE(f.events.back().state == PeerState::alive);
    for (int i = 0; i < 50; ++i) f.beat(t += 100ms);
    CHECK(f.d.state(2) == PeerState::alive);
}

TEST_CASE("phi: after a local stall the windows restart and the drained burst is not an interval",
          "[unit][phi]") {
    Feed f;
    Time t{};
    for (int i = 0; i < 100; ++i) f.beat(t += 100ms);
    t += 5s;  // we were stopped; on waking, the reset, then 50 queued heartbeats at one instant
    f.d.reset(t);
    for (int i = 0; i < 50; ++i) f.beat(t);
    CHECK(f.count(PeerState::suspect) == 0);
    // Had the burst counted, the mean interval would be ~0 and 350 ms of silence would convict.
    f.tick_until(t + 350ms);
    CHECK(f.count(PeerState::suspect) == 0);
}

TEST_CASE("phi: a peer never heard gets the start-up grace", "[unit][phi]") {
    PhiAccrualDetector d(PhiConfig{}, 2s);
    d.add_peer(3, Time(0));
    CHECK(d.on_tick(Time(2s)).empty());
    CHECK(d.next_deadline() > Time(2s));
    auto evs = d.on_tick(d.next_deadline());
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].state == PeerState::suspect);
}
