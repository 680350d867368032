// The bully state machine, one node at a time, with hand-made messages and explicit time:
// set up the state, step events, check the messages and the new state.
#include <catch2/catch.hpp>

#include "bus/bully.hpp"
#include "test_util.hpp"

using namespace bus;
using namespace std::chrono_literals;
using test::events_named;
using test::make_cluster;
using test::sent_of;

namespace {


PeerEvent alive(NodeId p) { return {p, PeerState::alive, {}, 1, false}; }
PeerEvent dead(NodeId p) { return {p, PeerState::dead, 600ms, 1, false}; }

/// One bully node with its invariants checked after every step.
struct Node {
    ClusterConfig cfg;
    Bully b;
    Node(ClusterConfig c, NodeId self) : cfg(std::move(c)), b(cfg, self) {}

    Actions check(Actions a) {
        auto bad = b.check_invariants();
        INFO("phase " << to_string(b.phase()));
        CHECK(bad.empty());
        for (auto& v : bad) UNSCOPED_INFO(v);
        return a;
    }
    Actions start(Time t) { return check(b.start(t)); }
    Actions tick(Time t) { return check(b.on_tick(t)); }
    Actions msg(NodeId from, Body body, Time t) { return check(b.on_message(from, test::envelope_from(from, body), t)); }
    Actions peer(const PeerEvent& e, Time t) { return check(b.on_peer(e, t)); }
    NodeId self_id = 0;
};

Node make_node(int n, NodeId self, const std::string& extra = "", std::vector<int64_t> prio = {}) {
    Node node(make_cluster(n, extra, prio), self);
    node.self_id = self;
    return node;
}

std::vector<NodeId> destinations(const std::vector<std::pair<Outgoing, Election>>& v) {
    std::vector<NodeId> d;
    for (auto& [o, m] : v) d.push_back(o.to);
    return d;
}

}  // namespace

TEST_CASE("bully: the best node, hearing no leader, wins when its join wait ends", "[unit][bully]") {
    Node n = make_node(5, 5);
    Actions a = n.start(Time(0));
    CHECK(n.b.phase() == Bully::Phase::joining);
    CHECK(n.b.next_deadline() == Time(300ms));
    CHECK(n.tick(Time(299ms)).out.empty());  // still listening
    for (NodeId p : {1, 2, 3, 4}) n.peer(alive(p), Time(10ms));
    a = n.tick(Time(300ms));
    CHECK(n.b.phase() == Bully::Phase::leader);
    CHECK(n.b.view() == LeaderView{5, 1, 4});  // epoch 1; backup: the best peer it hears
    auto starts = events_named(a, "election.start");
    REQUIRE(starts.size() == 1);
    CHECK(starts[0]["reason"] == "start-up");
    CHECK(starts[0]["to"].empty());
    auto coords = sent_of<Coordinator>(a);
    REQUIRE(coords.size() == 5);  // one to each peer, one on PUB
    for (auto& [o, c] : coords) CHECK(c == Coordinator{1, 5, 4});
    CHECK(coords.back().first.route == Outgoing::Route::publish);
    CHECK(coords.back().first.topic == "leader");
    auto leaders = events_named(a, "leader");
    REQUIRE(leaders.size() == 1);
    CHECK(leaders[0] == Json({{"algo", "bully"}, {"leader", 5}, {"term", 1}, {"backup", 4}}));
}

TEST_CASE("bully: a candidate asks only the higher-ranked nodes not declared dead", "[unit][bully]") {
    Node n = make_node(5, 2);
    n.start(Time(0));
    n.peer(dead(5), Time(1ms));
    Actions a = n.tick(Time(300ms));
    CHECK(n.b.phase() == Bully::Phase::candidate);
    auto el = sent_of<Election>(a);
    CHECK(destinations(el) == std::vector<NodeId>{3, 4});
    for (auto& [o, m] : el) {
        CHECK(m.epoch == 1);
        CHECK(o.route == Outgoing::Route::request);
    }
}

TEST_CASE("bully: priority decides before id", "[unit][bully]") {
    // Node 2 has the highest priority: it outranks 3, 4 and 5.
    Node n = make_node(5, 2, "", {0, 9, 0, 0, 0});
    CHECK(n.b.outranks(2, 5));
    CHECK_FALSE(n.b.outranks(5, 2));
    CHECK(n.b.outranks(5, 4));  // equal priority: the id decides
    n.start(Time(0));
    Actions a = n.tick(Time(300ms));
    CHECK(sent_of<Election>(a).empty());
    CHECK(n.b.phase() == Bully::Phase::leader);
}

TEST_CASE("bully: without an ANSWER the candidate wins when answer_timeout ends", "[unit][bully]") {
    Node n = make_node(3, 1);
    n.start(Time(0));
    n.peer(alive(2), Time(1ms));
    n.tick(Time(300ms));
    REQUIRE(n.b.phase() == Bully::Phase::candidate);
    CHECK(n.b.next_deadline() == Time(500ms));
    CHECK(n.tick(Time(499ms)).out.empty());
    Actions a = n.tick(Time(500ms));
    CHECK(n.b.phase() == Bully::Phase::leader);
    CHECK(n.b.view() == LeaderView{1, 1, 2});
    CHECK(sent_of<Coordinator>(a).size() == 3);
}

TEST_CASE("bully: a candidate wins at once when everyone it asked is declared dead", "[unit][bully]") {
    Node n = make_node(3, 1);
    n.start(Time(0));
    n.tick(Time(300ms));
    REQUIRE(n.b.phase() == Bully::Phase::candidate);
    n.peer(dead(3), Time(310ms));
    CHECK(n.b.phase() == Bully::Phase::candidate);  // 2 may still answer
    Actions a = n.peer(dead(2), Time(320ms));
    CHECK(n.b.phase() == Bully::Phase::leader);
    CHECK(n.b.view().term == 1);
}

TEST_CASE("bully: an ANSWER makes the candidate wait for COORDINATOR, and re-elect without one",
          "[unit][bully]") {
    Node n = make_node(3, 1);
    n.start(Time(0));
    n.tick(Time(300ms));
    Actions a = n.msg(3, Answer{1}, Time(301ms));
    CHECK(n.b.phase() == Bully::Phase::waiting);
    CHECK(n.b.next_deadline() == Time(1301ms));
    SECTION("the COORDINATOR comes: follow it") {
        n.msg(3, Coordinator{1, 3, 2}, Time(302ms));
        CHECK(n.b.phase() == Bully::Phase::follower);
        CHECK(n.b.view() == LeaderView{3, 1, 2});
    }
    SECTION("it does not: a new election in a new epoch") {
        a = n.tick(Time(1301ms));
        CHECK(n.b.phase() == Bully::Phase::candidate);
        CHECK(n.b.epoch() == 2);
        auto starts = events_named(a, "election.start");
        REQUIRE(starts.size() == 1);
        CHECK(starts[0]["reason"] == "no COORDINATOR after ANSWER");
    }
    SECTION("an ANSWER for another epoch changes nothing") {
        Node m = make_node(3, 1);
        m.start(Time(0));
        m.tick(Time(300ms));
        a = m.msg(3, Answer{7}, Time(301ms));
        CHECK(m.b.phase() == Bully::Phase::candidate);
        CHECK(events_named(a, "election.ignore").size() == 1);
    }
}

TEST_CASE("bully: an ELECTION from a lower node is answered and starts our own election",
          "[unit][bully]") {
    Node n = make_node(5, 3);
    n.start(Time(0));
    n.msg(5, Coordinator{2, 5, 4}, Time(5ms));
    Actions a = n.msg(1, Election{4, 0}, Time(10ms));
    auto answers = sent_of<Answer>(a);
    REQUIRE(answers.size() == 1);
    CHECK(answers[0].first.route == Outgoing::Route::reply);
    CHECK(answers[0].first.to == 1);
    CHECK(answers[0].second.epoch == 4);
    CHECK(n.b.phase() == Bully::Phase::candidate);
    CHECK(n.b.epoch() == 4);  // it joins the sender's election: one failure, one epoch
    CHECK(destinations(sent_of<Election>(a)) == std::vector<NodeId>{4, 5});
    SECTION("a second ELECTION for the epoch we already hold is answered, nothing more") {
        a = n.msg(2, Election{4, 0}, Time(11ms));
        CHECK(sent_of<Answer>(a).size() == 1);
        CHECK(sent_of<Election>(a).empty());
        CHECK(n.b.epoch() == 4);
    }
    SECTION("an ELECTION in a newer epoch supersedes ours: we join that one") {
        a = n.msg(2, Election{6, 0}, Time(11ms));
        CHECK(n.b.epoch() == 6);
        CHECK(destinations(sent_of<Election>(a)) == std::vector<NodeId>{4, 5});
    }
    SECTION("an older ELECTION, superseded by one we know, is answered and starts nothing") {
        a = n.msg(2, Election{3, 0}, Time(11ms));
        CHECK(sent_of<Answer>(a).size() == 1);
        CHECK(sent_of<Election>(a).empty());
        CHECK(n.b.epoch() == 4);
    }
}

TEST_CASE("bully: a joining node answers an ELECTION at once but holds its own when the wait ends",
          "[unit][bully]") {
    Node n = make_node(5, 3);
    n.start(Time(0));
    Actions a = n.msg(1, Election{4, 0}, Time(10ms));
    CHECK(sent_of<Answer>(a).size() == 1);
    CHECK(sent_of<Election>(a).empty());
    CHECK(n.b.phase() == Bully::Phase::joining);
    SECTION("a beacon comes first: the election was decided, follow it") {
        n.msg(5, Leader{4, 5, 4}, Time(50ms));
        CHECK(n.b.phase() == Bully::Phase::follower);
        CHECK(n.tick(Time(300ms)).out.empty());
    }
    SECTION("no beacon: hold it, in a newer epoch than the one seen") {
        a = n.tick(Time(300ms));
        CHECK(n.b.phase() == Bully::Phase::candidate);
        CHECK(n.b.epoch() == 5);
    }
}

TEST_CASE("bully: a node whose loop stalled rejoins: it stops leading and listens", "[unit][bully]") {
    Node n = make_node(3, 3);
    n.start(Time(0));
    n.tick(Time(300ms));
    REQUIRE(n.b.phase() == Bully::Phase::leader);
    Actions a = n.check(n.b.on_stall(Time(5s)));
    CHECK(n.b.phase() == Bully::Phase::joining);
    CHECK(n.b.view().leader == 0);
    CHECK(n.b.next_deadline() == Time(5s + 300ms));
    SECTION("the cluster moved on under a newer epoch: follow it (no preempt) or take over (preempt)") {
        n.msg(2, Coordinator{4, 2, 1}, Time(5s + 1ms));
        CHECK(n.b.phase() == Bully::Phase::leader);  // preempt is on by default
        CHECK(n.b.view().term == 5);
    }
    SECTION("nobody else leads: it wins again in a new epoch") {
        a = n.tick(Time(5s + 300ms));
        CHECK(n.b.phase() == Bully::Phase::leader);
        CHECK(n.b.view().term == 2);
        CHECK(events_named(a, "election.start")[0]["reason"] == "resumed after a stall");
    }
}

TEST_CASE("bully: an ELECTION for an epoch already decided is caught up, not re-run", "[unit][bully]") {
    Node n = make_node(5, 4);
    n.start(Time(0));
    n.msg(5, Coordinator{6, 5, 4}, Time(10ms));
    REQUIRE(n.b.view() == LeaderView{5, 6, 4});
    Actions a = n.msg(2, Election{6, 0}, Time(20ms));
    CHECK(sent_of<Answer>(a).size() == 1);
    auto c = sent_of<Coordinator>(a);
    REQUIRE(c.size() == 1);
    CHECK(c[0].first.to == 2);
    CHECK(c[0].second == Coordinator{6, 5, 4});
    CHECK(sent_of<Election>(a).empty());
    CHECK(n.b.phase() == Bully::Phase::follower);
    SECTION("a newer epoch is a new election: join it") {
        a = n.msg(2, Election{7, 0}, Time(30ms));
        CHECK(n.b.phase() == Bully::Phase::candidate);
        CHECK(n.b.epoch() == 7);
        CHECK(destinations(sent_of<Election>(a)) == std::vector<NodeId>{5});
    }
}

TEST_CASE("bully: claims older than the newest epoch seen are ignored", "[unit][bully]") {
    Node n = make_node(5, 2);
    n.start(Time(0));
    n.msg(5, Coordinator{6, 5, 4}, Time(10ms));
    Actions a = n.msg(4, Coordinator{5, 4, 3}, Time(20ms));
    CHECK(n.b.view() == LeaderView{5, 6, 4});
    CHECK(events_named(a, "leader").empty());
    auto ign = events_named(a, "election.ignore");
    REQUIRE(ign.size() == 1);
    CHECK(ign[0]["reason"] == "stale epoch");
    a = n.msg(4, Leader{5, 4, 3}, Time(20ms));
    CHECK(n.b.view() == LeaderView{5, 6, 4});
}

TEST_CASE("bully: two claims for one epoch are settled by rank", "[unit][bully]") {
    Node n = make_node(5, 1);
    n.start(Time(0));
    n.msg(3, Coordinator{6, 3, 2}, Time(10ms));
    n.msg(5, Coordinator{6, 5, 4}, Time(11ms));
    CHECK(n.b.view() == LeaderView{5, 6, 4});
    n.msg(3, Leader{6, 3, 2}, Time(12ms));  // the loser's beacon does not win it back
    CHECK(n.b.view() == LeaderView{5, 6, 4});
}

TEST_CASE("bully: the leader's beacon carries backup changes to followers", "[unit][bully]") {
    Node n = make_node(5, 1);
    n.start(Time(0));
    n.msg(5, Coordinator{3, 5, 4}, Time(10ms));
    Actions a = n.msg(5, Leader{3, 5, 3}, Time(110ms));
    CHECK(n.b.view() == LeaderView{5, 3, 3});
    CHECK(events_named(a, "leader").size() == 1);
    a = n.msg(5, Leader{3, 5, 3}, Time(210ms));  // no change, no event
    CHECK(events_named(a, "leader").empty());
}

TEST_CASE("bully: a leader beacons every heartbeat period and re-picks its backup", "[unit][bully]") {
    Node n = make_node(4, 4);
    n.start(Time(0));
    for (NodeId p : {1, 2, 3}) n.peer(alive(p), Time(1ms));
    n.tick(Time(300ms));
    REQUIRE(n.b.phase() == Bully::Phase::leader);
    CHECK(n.b.next_deadline() == Time(400ms));
    Actions a = n.tick(Time(400ms));
    auto beacons = sent_of<Leader>(a);
    REQUIRE(beacons.size() == 1);
    CHECK(beacons[0].first.route == Outgoing::Route::publish);
    CHECK(beacons[0].second == Leader{1, 4, 3});
    a = n.peer(dead(3), Time(450ms));
    CHECK(n.b.backup() == 2);
    CHECK(events_named(a, "leader").size() == 1);
    CHECK(sent_of<Leader>(n.tick(Time(500ms)))[0].second == Leader{1, 4, 2});
}

TEST_CASE("bully: a follower holds an election when its leader is declared dead", "[unit][bully]") {
    Node n = make_node(5, 2);
    n.start(Time(0));
    n.msg(5, Coordinator{2, 5, 4}, Time(10ms));
    CHECK(n.peer(dead(3), Time(20ms)).out.empty());  // not the leader: nothing to do
    Actions a = n.peer(dead(5), Time(30ms));
    CHECK(n.b.phase() == Bully::Phase::candidate);
    CHECK(n.b.epoch() == 3);
    CHECK(events_named(a, "election.start")[0]["reason"] == "leader 5 dead");
    CHECK(destinations(sent_of<Election>(a)) == std::vector<NodeId>{4});  // 3 and 5 are dead
    SECTION("with everyone above dead, it wins at once") {
        Node m = make_node(5, 3);
        m.start(Time(0));
        m.msg(5, Coordinator{2, 5, 4}, Time(10ms));
        m.peer(dead(4), Time(20ms));
        a = m.peer(dead(5), Time(30ms));
        CHECK(m.b.phase() == Bully::Phase::leader);
        CHECK(m.b.view().term == 3);
    }
}

TEST_CASE("bully: preempt decides whether a better node takes over from a sitting leader",
          "[unit][bully]") {
    SECTION("preempt on (classic bully): the better node holds an election") {
        Node n = make_node(5, 5);
        n.start(Time(0));
        Actions a = n.msg(4, Leader{7, 4, 3}, Time(50ms));
        CHECK(n.b.phase() == Bully::Phase::leader);  // nobody above 5: wins at once
        CHECK(n.b.view() == LeaderView{5, 8, 0});
        CHECK(events_named(a, "election.start")[0]["reason"] == "outranks leader 4");
    }
    SECTION("preempt off: it follows the sitting leader") {
        Node n = make_node(5, 5, "preempt = false");
        n.start(Time(0));
        n.msg(4, Leader{7, 4, 3}, Time(50ms));
        CHECK(n.b.phase() == Bully::Phase::follower);
        CHECK(n.b.view() == LeaderView{4, 7, 3});
        CHECK(n.tick(Time(300ms)).out.empty());  // the join wait no longer matters
    }
    SECTION("preempt off: a sitting leader re-asserts against a lower node's newer claim") {
        // E.g. node 4 was cut off, declared everyone dead and won alone in epoch 5.
        Node n = make_node(5, 5, "preempt = false");
        n.start(Time(0));
        n.tick(Time(300ms));
        REQUIRE(n.b.phase() == Bully::Phase::leader);
        Actions a = n.msg(4, Coordinator{5, 4, 3}, Time(400ms));
        CHECK(n.b.phase() == Bully::Phase::leader);
        CHECK(n.b.view().term == 6);
        CHECK(events_named(a, "election.start")[0]["reason"] == "re-asserts against leader 4");
    }
    SECTION("preempt off: a leader yields to a better leader's newer claim") {
        Node n = make_node(5, 4, "preempt = false");
        n.start(Time(0));
        n.tick(Time(300ms));
        n.tick(Time(500ms));  // no ANSWER from 5: wins
        REQUIRE(n.b.phase() == Bully::Phase::leader);
        n.msg(5, Coordinator{5, 5, 4}, Time(600ms));
        CHECK(n.b.phase() == Bully::Phase::follower);
        CHECK(n.b.view() == LeaderView{5, 5, 4});
    }
}

TEST_CASE("bully: a relayed claim that names this node is re-established by an election",
          "[unit][bully]") {
    // A restarted node hears that its previous incarnation led: it must not just believe it.
    Node n = make_node(3, 3);
    n.start(Time(0));
    n.msg(2, Coordinator{4, 3, 2}, Time(10ms));
    CHECK(n.b.phase() == Bully::Phase::leader);
    CHECK(n.b.view().term == 5);
}

TEST_CASE("bully: malformed claims change nothing", "[unit][bully]") {
    Node n = make_node(3, 1);
    n.start(Time(0));
    Actions a = n.msg(2, Coordinator{4, 9, 0}, Time(10ms));  // node 9 is not in the cluster
    CHECK(n.b.phase() == Bully::Phase::joining);
    CHECK(n.b.epoch() == 0);
    CHECK(events_named(a, "election.ignore").size() == 1);
    a = n.msg(3, Election{2, 0}, Time(11ms));  // an ELECTION from above: a protocol error
    CHECK(a.out.empty());
    CHECK(n.b.phase() == Bully::Phase::joining);
}

TEST_CASE("bully: a follower re-elects when its leader restarts or, alive, stops announcing",
          "[unit][bully]") {
    Node n = make_node(5, 2);
    n.start(Time(0));
    n.msg(5, Coordinator{3, 5, 4}, Time(10ms));
    REQUIRE(n.b.phase() == Bully::Phase::follower);
    SECTION("a new incarnation of the leader leads nothing") {
        Actions a = n.peer(PeerEvent{5, PeerState::alive, 0ms, 2, true}, Time(500ms));
        CHECK(n.b.phase() == Bully::Phase::candidate);
        CHECK(events_named(a, "election.start")[0]["reason"] == "leader 5 restarted");
    }
    SECTION("beacons keep it following; their silence, 2 x dead_after, does not") {
        n.msg(5, Leader{3, 5, 4}, Time(1s));
        CHECK(n.b.next_deadline() == Time(1s + 1200ms));
        CHECK(n.tick(Time(2199ms)).out.empty());
        Actions a = n.tick(Time(2200ms));
        CHECK(n.b.phase() == Bully::Phase::candidate);
        CHECK(events_named(a, "election.start")[0]["reason"] == "leader 5 stopped announcing");
    }
}
