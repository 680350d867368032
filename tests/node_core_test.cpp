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

TEST_CASE("node core: a suspected peer is pinged directly every heartbeat — an answer revives it",
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

// ---- membership -------------------------------------------------------------------------------

namespace {

/// An algorithm that records what NodeCore tells it and follows a leader set by the test.
struct Recorder final : Algorithm {
    std::vector<std::pair<NodeId, bool>> member_calls;  // (id, joined)
    std::vector<PeerEvent> peer_calls;
    int starts = 0;
    NodeId leader = 0;
    const char* name() const override { return "recorder"; }
    Actions start(Time) override { return ++starts, Actions{}; }
    Actions on_message(NodeId, const Envelope&, Time) override { return {}; }
    Actions on_peer(const PeerEvent& e, Time) override { return peer_calls.push_back(e), Actions{}; }
    Actions on_member(const MemberInfo& m, bool joined, Time) override {
        member_calls.emplace_back(m.id, joined);
        return {};
    }
    Actions on_tick(Time) override { return {}; }
    Time next_deadline() const override { return Time::max(); }
    LeaderView view() const override { return {leader, 1, 0}; }
};

MemberInfo joiner(NodeId id, uint16_t port = 7190) {
    return MemberInfo{id, "", 0, "127.0.0.1", port, static_cast<uint16_t>(port + 1), 0, false};
}

Envelope envelope(NodeId from, uint64_t inc, uint64_t seq, Body b) {
    Envelope e = envelope_from(from, std::move(b));
    e.inc = inc;
    e.seq = seq;
    return e;
}

}  // namespace

TEST_CASE("membership: a JOIN is admitted, announced to every other member and answered with all members",
          "[unit][node_core][membership]") {
    ClusterConfig cfg = make_cluster(3);
    auto rec = std::make_unique<Recorder>();
    Recorder* r = rec.get();
    NodeCore n(cfg, 1, std::move(rec), Time(0));
    CHECK_FALSE(n.accepts(9, MsgType::heartbeat));  // a stranger
    CHECK(n.accepts(9, MsgType::join));
    Actions a = n.on_message(9, envelope_from(9, Join{joiner(9)}), Time(10ms));
    REQUIRE(events_named(a, "peer.join").size() == 1);
    CHECK(events_named(a, "peer.join")[0]["reason"] == "join");
    REQUIRE(a.connect.size() == 1);
    CHECK(a.connect[0].peer == 7191);
    auto announced = sent_of<Member>(a);
    REQUIRE(announced.size() == 2);  // to 2 and 3, not to the joiner
    for (auto& [o, m] : announced) {
        CHECK(o.to != 9);
        CHECK(m.member == joiner(9));
    }
    auto welcome = sent_of<Welcome>(a);
    REQUIRE(welcome.size() == 1);
    CHECK(welcome[0].first.route == Outgoing::Route::reply);
    CHECK(welcome[0].second.ok);
    std::set<NodeId> listed;
    for (auto& m : welcome[0].second.members) listed.insert(m.id);
    CHECK(listed == std::set<NodeId>{1, 2, 3});  // itself and the other members, not the joiner
    CHECK(r->member_calls == std::vector<std::pair<NodeId, bool>>{{9, true}});
    CHECK(n.accepts(9, MsgType::heartbeat));
    CHECK(n.members().count(9));
    CHECK(n.check_invariants().empty());

    SECTION("a repeated JOIN (a re-join) is welcomed again, with nothing announced") {
        a = n.on_message(9, envelope_from(9, Join{joiner(9)}), Time(20ms));
        CHECK(sent_of<Welcome>(a).size() == 1);
        CHECK(sent_of<Member>(a).empty());
        CHECK(events_named(a, "peer.join").empty());
    }
    SECTION("the same id from another address is refused while the first is alive") {
        n.on_message(9, envelope_from(9, Heartbeat{100'000}), Time(20ms));
        a = n.on_message(9, envelope_from(9, Join{joiner(9, 7290)}), Time(30ms));
        auto w = sent_of<Welcome>(a);
        REQUIRE(w.size() == 1);
        CHECK_FALSE(w[0].second.ok);
        CHECK_THAT(w[0].second.reason, Catch::Contains("not known to be dead"));
        CHECK(n.members().at(9).pub == 7190);
        // The impostor's JOIN is not the member's life: its incarnation is not adopted, so
        // the real one's next heartbeat is no "restart" and no stale frame.
        Envelope impostor = envelope(9, 777, 1, Join{joiner(9, 7290)});
        a = n.on_message(9, impostor, Time(40ms));
        CHECK(events_named(a, "peer.alive").empty());
        a = n.on_message(9, envelope_from(9, Heartbeat{100'000}), Time(50ms));
        CHECK(events_named(a, "peer.alive").empty());  // still the same, alive incarnation
        CHECK(n.detector().state(9) == PeerState::alive);
    }
    SECTION("LEAVE removes it at once: traced, disconnected, the algorithm told") {
        a = n.on_message(9, envelope_from(9, Leave{}), Time(30ms));
        REQUIRE(events_named(a, "peer.leave").size() == 1);
        CHECK(events_named(a, "peer.leave")[0]["reason"] == "left");
        CHECK(a.disconnect == std::vector<NodeId>{9});
        CHECK(r->member_calls.back() == std::pair<NodeId, bool>{9, false});
        CHECK_FALSE(n.accepts(9, MsgType::heartbeat));
        CHECK(n.check_invariants().empty());
    }
    SECTION("dead for remove_after (10 s): forgotten; a cluster-file node is not") {
        n.on_message(9, envelope_from(9, Heartbeat{100'000}), Time(20ms));
        // Nobody else speaks either: 2 and 3 die too, but they stay members.
        for (Time t = Time(20ms); t < Time(11s); t += 100ms) n.on_tick(t);
        CHECK_FALSE(n.members().count(9));
        CHECK(n.members().count(2));
        CHECK(n.members().count(3));
        CHECK(n.detector().state(2) == PeerState::dead);
        CHECK(n.check_invariants().empty());
    }
}

TEST_CASE("membership: a JOIN claiming a cluster-file id, or another node's id, is refused",
          "[unit][node_core][membership]") {
    NodeCore n(make_cluster(3), 1, nullptr, Time(0));
    Actions a = n.on_message(2, envelope_from(2, Join{joiner(2)}), Time(1ms));
    REQUIRE(sent_of<Welcome>(a).size() == 1);
    CHECK_FALSE(sent_of<Welcome>(a)[0].second.ok);
    CHECK_THAT(sent_of<Welcome>(a)[0].second.reason, Catch::Contains("cluster-file node"));
    a = n.on_message(8, envelope_from(8, Join{joiner(9)}), Time(2ms));
    CHECK_FALSE(sent_of<Welcome>(a)[0].second.ok);
    CHECK(n.members().size() == 2);
    CHECK(events_named(a, "peer.refuse").size() == 1);
}

TEST_CASE("membership: a joiner asks until welcomed, learns every member, and only then starts its algorithm",
          "[unit][node_core][membership]") {
    ClusterConfig cfg = make_cluster(1);
    NodeSpec me;
    me.id = 9, me.pub = 7190, me.peer = 7191;
    cfg.nodes = {me};
    auto rec = std::make_unique<Recorder>();
    Recorder* r = rec.get();
    NodeCore n(cfg, 9, std::move(rec), Time(0), "tcp://127.0.0.1:7102");
    Actions a = n.start(Time(0));
    CHECK(r->starts == 0);
    CHECK_FALSE(n.joined());
    REQUIRE(a.out.size() == 1);
    CHECK(a.out[0].route == Outgoing::Route::join);
    CHECK(a.out[0].topic == "tcp://127.0.0.1:7102");
    CHECK(std::get<Join>(a.out[0].body).member.id == 9);
    CHECK(sent_of<Join>(n.on_tick(Time(500ms))).empty());
    CHECK(sent_of<Join>(n.on_tick(Time(1s))).size() == 1);  // no answer yet: asks again

    SECTION("welcomed") {
        MemberInfo m1{1, "", 0, "127.0.0.1", 7101, 7102, 0, true}, m2{2, "", 0, "127.0.0.1", 7111, 7112, 0, true};
        a = n.on_message(1, envelope_from(1, Welcome{true, "", {m1, m2, joiner(9)}}), Time(1100ms));
        CHECK(n.joined());
        CHECK(r->starts == 1);
        CHECK(n.members().size() == 2);  // itself skipped
        CHECK(a.connect.size() == 2);
        // The algorithm knew the members before it started.
        CHECK(r->member_calls == std::vector<std::pair<NodeId, bool>>{{1, true}, {2, true}});
        // Anti-entropy: one member after another, one JOIN a second.
        auto sync1 = sent_of<Join>(n.on_tick(Time(2200ms)));
        auto sync2 = sent_of<Join>(n.on_tick(Time(3300ms)));
        REQUIRE(sync1.size() == 1);
        REQUIRE(sync2.size() == 1);
        CHECK(sync1[0].first.to != sync2[0].first.to);
        CHECK(sent_of<Join>(n.on_tick(Time(3400ms))).empty());
        SECTION("a member that restarts may have forgotten us: JOIN it again") {
            n.on_message(1, envelope(1, 5, 1, Heartbeat{100'000}), Time(3500ms));
            a = n.on_message(1, envelope(1, 6, 1, Heartbeat{100'000}), Time(3600ms));
            auto joins = sent_of<Join>(a);
            REQUIRE(joins.size() == 1);
            CHECK(joins[0].first.to == 1);
        }
        SECTION("after its own stall it asks every member again") {
            CHECK(sent_of<Join>(n.on_stall(Time(3500ms))).size() == 2);
        }
    }
    SECTION("refused: the reason is kept for the host to stop with") {
        n.on_message(1, envelope_from(1, Welcome{false, "id 9 is taken", {}}), Time(1100ms));
        CHECK_FALSE(n.joined());
        CHECK_THAT(n.refused(), Catch::Contains("id 9 is taken"));
        CHECK(r->starts == 0);
    }
}

TEST_CASE("membership: a cluster-file node that left comes back when it restarts, not on its old words",
          "[unit][node_core][membership]") {
    NodeCore n(make_cluster(3), 1, nullptr, Time(0));
    n.on_message(2, envelope(2, 50, 1, Heartbeat{100'000}), Time(10ms));
    Actions a = n.on_message(2, envelope(2, 50, 2, Leave{}), Time(20ms));
    CHECK(events_named(a, "peer.leave").size() == 1);
    CHECK(a.disconnect.empty());  // its connections stay: that is how we hear it return
    CHECK(n.accepts(2, MsgType::heartbeat));
    // A heartbeat of the incarnation that left, late on another channel: ignored.
    a = n.on_message(2, envelope(2, 50, 3, Heartbeat{100'000}), Time(25ms));
    CHECK(events_named(a, "peer.join").empty());
    CHECK_FALSE(n.members().count(2));
    // Restarted (new inc): a member again.
    a = n.on_message(2, envelope(2, 51, 1, Heartbeat{100'000}), Time(2s));
    REQUIRE(events_named(a, "peer.join").size() == 1);
    CHECK(events_named(a, "peer.join")[0]["reason"] == "returned");
    CHECK(n.members().count(2));
    CHECK(n.detector().state(2) == PeerState::alive);
}

TEST_CASE("membership: a MEMBER announcement admits a joiner — a cluster-file id in it is ignored",
          "[unit][node_core][membership]") {
    NodeCore n(make_cluster(3), 1, nullptr, Time(0));
    Actions a = n.on_message(2, envelope_from(2, Member{joiner(9)}), Time(10ms));
    CHECK(events_named(a, "peer.join").size() == 1);
    CHECK(n.members().count(9));
    MemberInfo fake{3, "", 0, "10.9.9.9", 1, 2, 0, true};
    a = n.on_message(2, envelope_from(2, Member{fake}), Time(20ms));
    CHECK(a.connect.empty());
    CHECK(n.members().at(3).host == "127.0.0.1");
}

// ---- heartbeat acks ---------------------------------------------------------------------------

TEST_CASE("heartbeat acks: followers ack their leader's heartbeats — the leader reports a deaf follower",
          "[unit][node_core][acks]") {
    SECTION("a follower acks its leader's heartbeats only") {
        auto rec = std::make_unique<Recorder>();
        rec->leader = 3;
        NodeCore n(make_cluster(3), 1, std::move(rec), Time(0));
        auto acks = sent_of<HeartbeatAck>(n.on_message(3, envelope(3, 1, 7, Heartbeat{100'000}), Time(10ms)));
        REQUIRE(acks.size() == 1);
        CHECK(acks[0].first.to == 3);
        CHECK(acks[0].second.seq == 7);
        CHECK(sent_of<HeartbeatAck>(n.on_message(2, envelope(2, 1, 7, Heartbeat{100'000}), Time(10ms))).empty());
    }
    SECTION("the leader: one that hears us acks; one that talks but does not ack is deaf, until it acks") {
        auto rec = std::make_unique<Recorder>();
        rec->leader = 1;
        NodeCore n(make_cluster(3), 1, std::move(rec), Time(0));
        std::vector<Json> deaf;
        for (int i = 0; i < 20; ++i) {  // 2 s: both heartbeat to us; only 2 acks
            Time t = Time(i * 100ms);
            n.on_message(2, envelope(2, 1, i + 1, Heartbeat{100'000}), t + 1ms);
            n.on_message(3, envelope(3, 1, i + 1, Heartbeat{100'000}), t + 1ms);
            n.on_message(2, envelope(2, 1, i + 1, HeartbeatAck{static_cast<uint64_t>(i)}), t + 2ms);
            for (auto& e : events_named(n.on_tick(t + 3ms), "follower.deaf")) deaf.push_back(e);
        }
        REQUIRE(deaf.size() == 1);  // once, not every heartbeat
        CHECK(deaf[0]["peer"] == 3);
        Json st = n.status(Time(2s));
        CHECK(st["role"] == "leader");
        for (auto& m : st["members"]) CHECK(m["deaf"] == (m["id"] == 3));
        Actions a = n.on_message(3, envelope(3, 1, 30, HeartbeatAck{20}), Time(2010ms));
        REQUIRE(events_named(a, "follower.hears").size() == 1);
    }
}

// ---- control ----------------------------------------------------------------------------------

TEST_CASE("control: set changes heartbeat and timeouts at runtime, traced — bad values change nothing",
          "[unit][node_core][control]") {
    NodeCore n(make_cluster(2), 1, nullptr, Time(0));
    Actions a;
    CHECK(n.set("dead_after", "2s", Time(0), a).empty());
    REQUIRE(events_named(a, "config.set").size() == 1);
    CHECK(events_named(a, "config.set")[0]["old"] == "600ms");
    CHECK(events_named(a, "config.set")[0]["value"] == "2s");
    CHECK(n.set("heartbeat", "50ms", Time(0), a).empty());
    CHECK(n.tunables().heartbeat == Duration(50ms));
    // The new timeout is in force: heard at 10 ms, not dead at 1 s, dead after 2 s.
    n.on_message(2, envelope_from(2, Heartbeat{50'000}), Time(10ms));
    bool dead = false;
    for (Time t = Time(10ms); t <= Time(1s); t += 50ms) dead |= !events_named(n.on_tick(t), "peer.dead").empty();
    CHECK_FALSE(dead);
    for (Time t = Time(1s); t <= Time(2100ms); t += 50ms) dead |= !events_named(n.on_tick(t), "peer.dead").empty();
    CHECK(dead);

    Actions b;
    CHECK_THAT(n.set("suspect_after", "5s", Time(0), b), Catch::Contains("dead_after must not be shorter"));
    CHECK_THAT(n.set("heartbeat", "soon", Time(0), b), Catch::Contains("positive duration"));
    CHECK_THAT(n.set("heartbeat", "0ms", Time(0), b), Catch::Contains("positive duration"));
    CHECK_THAT(n.set("phi_threshold", "-1", Time(0), b), Catch::Contains("(0, 100]"));
    CHECK_THAT(n.set("colour", "red", Time(0), b), Catch::Contains("unknown setting"));
    CHECK(b.events.empty());
    CHECK(n.tunables().suspect_after == Duration(300ms));
    CHECK(n.set("phi_threshold", "12.5", Time(0), b).empty());
    CHECK(n.tunables().phi_threshold == 12.5);
}

TEST_CASE("control: leave sends LEAVE to every member", "[unit][node_core][control]") {
    NodeCore n(make_cluster(4), 2, nullptr, Time(0));
    Actions a = n.leave(Time(5ms));
    auto leaves = sent_of<Leave>(a);
    std::set<NodeId> to;
    for (auto& [o, l] : leaves) to.insert(o.to);
    CHECK(to == std::set<NodeId>{1, 3, 4});
    CHECK(events_named(a, "node.leave").size() == 1);
}

TEST_CASE("membership: hearsay cannot bring back a member removed lately, nor move a live one",
          "[unit][node_core][membership]") {
    ClusterConfig cfg = make_cluster(1);
    NodeSpec me;
    me.id = 9, me.pub = 7190, me.peer = 7191;
    cfg.nodes = {me};
    NodeCore n(cfg, 9, nullptr, Time(0), "tcp://127.0.0.1:20011");
    n.start(Time(0));
    MemberInfo m1{1, "", 0, "127.0.0.1", 20010, 20011, 0, true};
    n.on_message(1, envelope_from(1, Welcome{true, "", {m1, joiner(8)}}), Time(10ms));
    REQUIRE(n.members().count(8));
    n.on_message(8, envelope_from(8, Heartbeat{100'000}), Time(20ms));
    // A MEMBER or WELCOME naming 8 at another address while 8 is alive: ignored.
    n.on_message(1, envelope_from(1, Member{joiner(8, 7290)}), Time(30ms));
    n.on_message(1, envelope_from(1, Welcome{true, "", {m1, joiner(8, 7290)}}), Time(40ms));
    CHECK(n.members().at(8).pub == 7190);
    // 8 leaves; node 1 has not heard yet and still lists it: 8 stays out (tombstone).
    n.on_message(8, envelope_from(8, Leave{}), Time(50ms));
    Actions a = n.on_message(1, envelope_from(1, Welcome{true, "", {m1, joiner(8)}}), Time(1s));
    CHECK_FALSE(n.members().count(8));
    CHECK(events_named(a, "peer.join").empty());
    // After remove_after (10 s) the tombstone is gone: a later WELCOME may list it again.
    n.on_tick(Time(11s));
    n.on_message(1, envelope_from(1, Welcome{true, "", {m1, joiner(8)}}), Time(11s));
    CHECK(n.members().count(8));
}

TEST_CASE("membership: a cluster-file node ignores WELCOMEs (it never asked), and a joiner not yet "
          "welcomed does not answer JOINs",
          "[unit][node_core][membership]") {
    NodeCore file(make_cluster(2), 1, nullptr, Time(0));
    Actions a = file.on_message(2, envelope_from(2, Welcome{true, "", {joiner(8)}}), Time(1ms));
    CHECK_FALSE(file.members().count(8));

    ClusterConfig cfg = make_cluster(1);
    NodeSpec me;
    me.id = 9, me.pub = 7190, me.peer = 7191;
    cfg.nodes = {me};
    NodeCore j(cfg, 9, nullptr, Time(0), "tcp://127.0.0.1:20011");
    j.start(Time(0));
    a = j.on_message(8, envelope_from(8, Join{joiner(8, 7180)}), Time(5ms));
    CHECK(a.out.empty());
    CHECK(j.members().empty());
}
