// The fixed-timeout detector, driven with explicit Time values: no clock, no sleeps.
#include <catch2/catch.hpp>

#include <sstream>

#include "bus/failure_detector.hpp"
#include "bus/loop.hpp"

using namespace bus;
using namespace std::chrono_literals;

namespace bus {
// Readable failures: Catch prints PeerEvent and vectors of them with this.
std::ostream& operator<<(std::ostream& os, const PeerEvent& e) {
    return os << "{peer " << e.peer << " " << to_string(e.state) << " silence "
              << e.silence.count() << "us inc " << e.inc << (e.restarted ? " restarted" : "")
              << "}";
}
}  // namespace bus

namespace {

Time at(std::chrono::microseconds d) { return Time(d); }

Tunables tunables() {
    Tunables t;
    t.heartbeat = 100ms;
    t.suspect_after = 300ms;
    t.dead_after = 600ms;
    t.startup_grace = 2s;
    return t;
}

PeerEvent alive(NodeId peer, Duration silence, uint64_t inc, bool restarted = false) {
    return {peer, PeerState::alive, silence, inc, restarted};
}
PeerEvent suspect(NodeId peer, Duration silence, uint64_t inc) {
    return {peer, PeerState::suspect, silence, inc, false};
}
PeerEvent dead(NodeId peer, Duration silence, uint64_t inc) {
    return {peer, PeerState::dead, silence, inc, false};
}
using Events = std::vector<PeerEvent>;

/// Wraps the detector so every step is followed by an invariant check.
struct Harness {
    FixedTimeoutDetector fd{tunables()};

    Events heard(NodeId peer, uint64_t inc, Time now) {
        Events e = fd.on_heard(peer, inc, now);
        check();
        return e;
    }
    Events tick(Time now) {
        Events e = fd.on_tick(now);
        check();
        return e;
    }
    void check() const {
        auto bad = fd.check_invariants();
        INFO(bad.size() << " invariant violations; first: " << (bad.empty() ? "" : bad.front()));
        CHECK(bad.empty());
    }
};

}  // namespace

TEST_CASE("regular heartbeats keep a peer alive", "[unit][detector]") {
    Harness h;
    h.fd.add_peer(2, at(0ms));
    CHECK(h.fd.state(2) == PeerState::unknown);
    CHECK(h.heard(2, 7, at(0ms)) == Events{alive(2, 0ms, 7)});
    for (auto t = 100ms; t <= 10s; t += 100ms) {
        INFO("t = " << t.count() << "us");
        CHECK(h.tick(at(t) - 1us).empty());
        CHECK(h.heard(2, 7, at(t)).empty());  // already alive: nothing to report
        CHECK(h.tick(at(t)).empty());
        CHECK(h.fd.state(2) == PeerState::alive);
    }
}

TEST_CASE("any message counts as life, and jitter below suspect_after goes unnoticed",
          "[unit][detector]") {
    Harness h;
    h.fd.add_peer(2, at(0ms));
    h.heard(2, 1, at(0ms));
    CHECK(h.tick(at(299ms)).empty());
    CHECK(h.heard(2, 1, at(299ms)).empty());
    CHECK(h.tick(at(598ms)).empty());
    CHECK(h.fd.state(2) == PeerState::alive);
}

TEST_CASE("a late heartbeat makes a peer suspect, then alive again", "[unit][detector]") {
    Harness h;
    h.fd.add_peer(2, at(0ms));
    h.heard(2, 1, at(0ms));
    CHECK(h.tick(at(300ms) - 1us).empty());
    CHECK(h.tick(at(300ms)) == Events{suspect(2, 300ms, 1)});
    CHECK(h.fd.state(2) == PeerState::suspect);
    CHECK(h.tick(at(350ms)).empty());  // reported once
    CHECK(h.heard(2, 1, at(420ms)) == Events{alive(2, 420ms, 1)});
    CHECK(h.fd.state(2) == PeerState::alive);
    // The window restarts at the heartbeat: 300ms after 420ms, not after 0.
    CHECK(h.tick(at(600ms)).empty());
    CHECK(h.tick(at(720ms) - 1us).empty());
    CHECK(h.tick(at(720ms)) == Events{suspect(2, 300ms, 1)});
}

TEST_CASE("lost heartbeats make a peer suspect at suspect_after and dead at dead_after",
          "[unit][detector]") {
    Harness h;
    h.fd.add_peer(2, at(0ms));
    h.heard(2, 5, at(1s));

    SECTION("ticking at every deadline") {
        CHECK(h.tick(at(1s + 300ms) - 1us).empty());
        CHECK(h.tick(at(1s + 300ms)) == Events{suspect(2, 300ms, 5)});
        CHECK(h.tick(at(1s + 600ms) - 1us).empty());
        CHECK(h.tick(at(1s + 600ms)) == Events{dead(2, 600ms, 5)});
        CHECK(h.fd.state(2) == PeerState::dead);
        CHECK(h.tick(at(60s)).empty());  // dead is final until heard
        CHECK(h.fd.state(2) == PeerState::dead);
    }
    SECTION("one late tick reports both, with the real silence") {
        CHECK(h.tick(at(1s + 750ms)) == Events{suspect(2, 750ms, 5), dead(2, 750ms, 5)});
    }
    SECTION("a tick between the two only suspects") {
        CHECK(h.tick(at(1s + 450ms)) == Events{suspect(2, 450ms, 5)});
        CHECK(h.fd.state(2) == PeerState::suspect);
    }
    SECTION("a dead peer heard again with the same incarnation is alive, not restarted") {
        h.tick(at(1s + 600ms));
        REQUIRE(h.fd.state(2) == PeerState::dead);
        CHECK(h.heard(2, 5, at(3s)) == Events{alive(2, 2s, 5, false)});
        CHECK(h.fd.state(2) == PeerState::alive);
    }
}

TEST_CASE("a peer never heard from gets startup_grace on top of both timeouts",
          "[unit][detector]") {
    Harness h;
    h.fd.add_peer(3, at(0ms));
    CHECK(h.tick(at(300ms)).empty());
    CHECK(h.tick(at(600ms)).empty());
    CHECK(h.tick(at(2300ms) - 1us).empty());
    CHECK(h.tick(at(2300ms)) == Events{suspect(3, 2300ms, 0)});
    CHECK(h.tick(at(2600ms) - 1us).empty());
    CHECK(h.tick(at(2600ms)) == Events{dead(3, 2600ms, 0)});

    SECTION("first heard late, it is alive and then gets no more grace") {
        CHECK(h.heard(3, 9, at(3s)) == Events{alive(3, 3s, 9)});
        CHECK(h.tick(at(3300ms) - 1us).empty());
        CHECK(h.tick(at(3300ms)) == Events{suspect(3, 300ms, 9)});
    }
}

TEST_CASE("a peer heard within its startup grace is alive at once", "[unit][detector]") {
    Harness h;
    h.fd.add_peer(3, at(0ms));
    CHECK(h.heard(3, 4, at(1500ms)) == Events{alive(3, 1500ms, 4)});
    CHECK(h.fd.state(3) == PeerState::alive);
}

TEST_CASE("a new incarnation is reported as alive with restarted = true", "[unit][detector]") {
    Harness h;
    h.fd.add_peer(2, at(0ms));
    h.heard(2, 1, at(0ms));

    SECTION("while alive") {
        CHECK(h.heard(2, 2, at(100ms)) == Events{alive(2, 100ms, 2, true)});
        CHECK(h.heard(2, 2, at(200ms)).empty());  // same incarnation again: nothing new
    }
    SECTION("after being declared dead") {
        h.tick(at(600ms));
        REQUIRE(h.fd.state(2) == PeerState::dead);
        CHECK(h.heard(2, 2, at(1s)) == Events{alive(2, 1s, 2, true)});
        CHECK(h.fd.state(2) == PeerState::alive);
    }
    SECTION("the first message is not a restart") {
        h.fd.add_peer(4, at(0ms));
        CHECK(h.heard(4, 3, at(10ms)) == Events{alive(4, 10ms, 3, false)});
    }
    SECTION("a late frame of the older incarnation is neither life nor another restart") {
        h.heard(2, 2, at(100ms));
        CHECK(h.heard(2, 1, at(150ms)).empty());
        CHECK(h.tick(at(399ms)).empty());
        CHECK(h.tick(at(400ms)) == Events{suspect(2, 300ms, 2)});  // silence counted from 100 ms
        CHECK(h.heard(2, 2, at(450ms)) == Events{alive(2, 350ms, 2, false)});  // back, not restarted
    }
}

TEST_CASE("messages from a peer that is not watched are ignored", "[unit][detector]") {
    Harness h;
    h.fd.add_peer(2, at(0ms));
    CHECK(h.heard(9, 1, at(0ms)).empty());
    CHECK(h.fd.state(9) == PeerState::unknown);
    CHECK(h.fd.peers() == std::vector<NodeId>{2});
}

TEST_CASE("reset after a local stall keeps live peers from being convicted",
          "[unit][detector]") {
    Harness h;
    h.fd.add_peer(2, at(0ms));
    h.fd.add_peer(3, at(0ms));
    h.heard(2, 1, at(0ms));
    h.heard(3, 1, at(0ms));
    CHECK(h.tick(at(50ms)).empty());
    // The loop was paused from 50ms to 5s: no ticks, no messages read.

    SECTION("without reset both are convicted (the control)") {
        CHECK(h.tick(at(5s)) ==
              Events{suspect(2, 5s, 1), dead(2, 5s, 1), suspect(3, 5s, 1), dead(3, 5s, 1)});
    }
    SECTION("with reset nobody is, and the windows restart at the reset") {
        h.fd.reset(at(5s));
        h.check();
        CHECK(h.tick(at(5s)).empty());
        CHECK(h.fd.state(2) == PeerState::alive);
        CHECK(h.fd.state(3) == PeerState::alive);
        CHECK(h.fd.next_deadline() == at(5s + 300ms));
        // Peer 2's queued heartbeats are read; peer 3 really is gone.
        CHECK(h.heard(2, 1, at(5s)).empty());
        CHECK(h.heard(2, 1, at(5100ms)).empty());
        CHECK(h.tick(at(5300ms)) == Events{suspect(3, 300ms, 1)});
        CHECK(h.fd.state(2) == PeerState::alive);
    }
}

TEST_CASE("reset does not revive a dead peer nor move a window backwards",
          "[unit][detector]") {
    Harness h;
    h.fd.add_peer(2, at(0ms));
    h.heard(2, 1, at(0ms));
    h.tick(at(600ms));
    REQUIRE(h.fd.state(2) == PeerState::dead);
    h.fd.reset(at(1s));
    CHECK(h.fd.state(2) == PeerState::dead);
    CHECK(h.tick(at(2s)).empty());

    h.fd.add_peer(3, at(0ms));
    h.heard(3, 1, at(2s));
    h.fd.reset(at(1s));  // earlier than last heard
    CHECK(h.fd.next_deadline() == at(2s + 300ms));
}

TEST_CASE("next_deadline is exactly the next transition time", "[unit][detector]") {
    Harness h;
    CHECK(h.fd.next_deadline() == Time::max());  // no peers

    h.fd.add_peer(2, at(0ms));
    h.fd.add_peer(3, at(0ms));
    h.fd.add_peer(4, at(0ms));  // never heard: grace applies
    h.heard(2, 1, at(0ms));
    h.heard(3, 1, at(100ms));
    CHECK(h.fd.next_deadline() == at(300ms));

    // Walk every deadline: nothing happens 1us before it, something happens at it.
    std::vector<Time> deadlines;
    int transitions = 0;
    while (h.fd.next_deadline() != Time::max() && deadlines.size() < 20) {
        Time d = h.fd.next_deadline();
        deadlines.push_back(d);
        INFO("deadline " << d.count() << "us");
        CHECK(h.tick(d - 1us).empty());
        CHECK(h.fd.next_deadline() == d);
        Events e = h.tick(d);
        CHECK_FALSE(e.empty());
        transitions += static_cast<int>(e.size());
    }
    CHECK(deadlines == std::vector<Time>{at(300ms), at(400ms), at(600ms), at(700ms),
                                          at(2300ms), at(2600ms)});
    CHECK(transitions == 6);  // three peers, suspect then dead each
    CHECK(h.fd.next_deadline() == Time::max());  // all dead: nothing can change
    CHECK(h.fd.state(2) == PeerState::dead);
    CHECK(h.fd.state(3) == PeerState::dead);
    CHECK(h.fd.state(4) == PeerState::dead);
}

TEST_CASE("next_deadline follows a heartbeat and a runtime tunables change",
          "[unit][detector]") {
    Harness h;
    h.fd.add_peer(2, at(0ms));
    h.heard(2, 1, at(0ms));
    h.heard(2, 1, at(250ms));
    CHECK(h.fd.next_deadline() == at(550ms));
    Tunables t = tunables();
    t.suspect_after = 1s;
    t.dead_after = 2s;
    h.fd.set_tunables(t);
    CHECK(h.fd.next_deadline() == at(1250ms));
    CHECK(h.tick(at(1250ms) - 1us).empty());
    CHECK(h.tick(at(1250ms)) == Events{suspect(2, 1s, 1)});
    CHECK(h.fd.next_deadline() == at(2250ms));
}

// ---- HeartbeatSchedule -------------------------------------------------------------------

TEST_CASE("a heartbeat is due at most once per period", "[unit][detector]") {
    HeartbeatSchedule hb(100ms, at(0ms));
    CHECK(hb.next() == at(0ms));
    CHECK(hb.due(at(0ms)));
    CHECK_FALSE(hb.due(at(0ms)));
    CHECK_FALSE(hb.due(at(100ms) - 1us));
    CHECK(hb.next() == at(100ms));
    CHECK(hb.due(at(100ms)));
    CHECK_FALSE(hb.due(at(150ms)));
    CHECK(hb.due(at(205ms)));  // a late check: the next one is a period after it
    CHECK(hb.next() == at(305ms));
}

TEST_CASE("a heartbeat schedule does not catch up after a stall", "[unit][detector]") {
    HeartbeatSchedule hb(100ms, at(0ms));
    REQUIRE(hb.due(at(0ms)));
    CHECK(hb.due(at(5s)));  // 49 periods missed: one heartbeat, not a burst
    CHECK_FALSE(hb.due(at(5s)));
    CHECK_FALSE(hb.due(at(5s + 99ms)));
    CHECK(hb.due(at(5s + 100ms)));
}

TEST_CASE("a heartbeat period change applies from the next heartbeat", "[unit][detector]") {
    HeartbeatSchedule hb(100ms, at(0ms));
    REQUIRE(hb.due(at(0ms)));
    hb.set_period(1s);
    CHECK(hb.due(at(100ms)));  // already scheduled
    CHECK_FALSE(hb.due(at(1s)));
    CHECK(hb.due(at(1100ms)));
}

// ---- loop helpers ------------------------------------------------------------------------

TEST_CASE("poll_timeout_ms rounds up to whole milliseconds and clamps to [0, cap]",
          "[unit][loop]") {
    const Time now = at(10s);
    CHECK(poll_timeout_ms(now, now) == 0);
    CHECK(poll_timeout_ms(now - 1ms, now) == 0);
    CHECK(poll_timeout_ms(now + 1us, now) == 1);
    CHECK(poll_timeout_ms(now + 999us, now) == 1);
    CHECK(poll_timeout_ms(now + 1ms, now) == 1);
    CHECK(poll_timeout_ms(now + 1001us, now) == 2);
    CHECK(poll_timeout_ms(now + 250ms, now) == 250);
    CHECK(poll_timeout_ms(now + 999999us, now) == 1000);
    CHECK(poll_timeout_ms(now + 1s, now) == 1000);
    CHECK(poll_timeout_ms(now + 1h, now) == 1000);
    CHECK(poll_timeout_ms(Time::max(), now) == 1000);
    SECTION("a custom cap") {
        CHECK(poll_timeout_ms(now + 49500us, now, 50ms) == 50);
        CHECK(poll_timeout_ms(now + 70ms, now, 50ms) == 50);
        CHECK(poll_timeout_ms(now + 10ms, now, 50ms) == 10);
    }
}

TEST_CASE("StallWatch reports only the time beyond the poll timeout past its threshold",
          "[unit][loop]") {
    StallWatch w(300ms);
    const Time before = at(1s);
    CHECK(w.check(before, 100ms, before + 100ms) == Duration(0));   // on time
    CHECK(w.check(before, 100ms, before + 10ms) == Duration(0));    // woken early
    CHECK(w.check(before, 100ms, before + 400ms) == Duration(0));   // exactly the threshold
    CHECK(w.check(before, 100ms, before + 400ms + 1us) == 300ms + 1us);
    CHECK(w.check(before, 0ms, before + 5s) == 5s);
    w.set_threshold(1s);
    CHECK(w.check(before, 0ms, before + 900ms) == Duration(0));
    CHECK(w.check(before, 0ms, before + 1500ms) == 1500ms);
}
