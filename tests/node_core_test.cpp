// NodeCore: the detector and the algorithm together, with explicit time. Here: two-stage
// detection — a suspected peer is probed with PING, a PONG (any message) revives it, and
// PING/PONG never reach the algorithm.
#include <catch2/catch.hpp>

#include "bus/node_core.hpp"
#include "test_util.hpp"

using namespace bus;
using namespace std::chrono_literals;
using test::envelope_from;
using test::events_named;
using test::make_cluster;
using test::sent_of;

TEST_CASE("node core: a suspected peer is pinged directly every heartbeat; an answer revives it",
          "[unit][node_core]") {
    ClusterConfig cfg = make_cluster(2);  // heartbeat 100 ms, suspect 300 ms, dead 600 ms
    NodeCore n(cfg, 1, nullptr, Time(0));
    n.on_message(2, envelope_from(2, Heartbeat{100'000}), Time(10ms));
    Actions a = n.on_tick(Time(310ms));
    REQUIRE(events_named(a, "peer.suspect").size() == 1);
    auto pings = sent_of<Ping>(a);
    REQUIRE(pings.size() == 1);
    CHECK(pings[0].first.to == 2);
    CHECK(pings[0].first.route == Outgoing::Route::request);
    CHECK(n.next_deadline() <= Time(410ms));
    a = n.on_tick(Time(410ms));
    CHECK(sent_of<Ping>(a).size() == 1);  // again, one heartbeat later
    SECTION("a PONG is life: alive again, no more pings") {
        a = n.on_message(2, envelope_from(2, Pong{1}), Time(420ms));
        CHECK(events_named(a, "peer.alive").size() == 1);
        CHECK(sent_of<Ping>(n.on_tick(Time(520ms))).empty());
    }
    SECTION("no answer: declared dead, and the probing stops") {
        a = n.on_tick(Time(610ms));
        CHECK(events_named(a, "peer.dead").size() == 1);
        CHECK(sent_of<Ping>(n.on_tick(Time(2s))).empty());
    }
}

TEST_CASE("node core: a PING is answered with a PONG, and neither reaches the algorithm", "[unit][node_core]") {
    struct Spy final : Algorithm {
        int messages = 0;
        const char* name() const override { return "spy"; }
        Actions start(Time) override { return {}; }
        Actions on_message(NodeId, const Envelope&, Time) override { return ++messages, Actions{}; }
        Actions on_peer(const PeerEvent&, Time) override { return {}; }
        Actions on_tick(Time) override { return {}; }
        Time next_deadline() const override { return Time::max(); }
    };
    ClusterConfig cfg = make_cluster(2);
    auto spy = std::make_unique<Spy>();
    Spy* s = spy.get();
    NodeCore n(cfg, 1, std::move(spy), Time(0));
    Actions a = n.on_message(2, envelope_from(2, Ping{7}), Time(10ms));
    auto pongs = sent_of<Pong>(a);
    REQUIRE(pongs.size() == 1);
    CHECK(pongs[0].first.route == Outgoing::Route::reply);
    CHECK(pongs[0].second.nonce == 7);
    n.on_message(2, envelope_from(2, Pong{3}), Time(11ms));
    CHECK(s->messages == 0);
    n.on_message(2, envelope_from(2, Election{1, 0}), Time(12ms));
    CHECK(s->messages == 1);
}
