// Raft elections, one node at a time, with hand-made messages and explicit time (the style
// of etcd-raft's raft_paper_test.go: set up, step, check messages and state). Each test
// cites the section of the Raft paper or dissertation it checks.
#include <catch2/catch.hpp>

#include "bus/raft.hpp"
#include "test_util.hpp"

using namespace bus;
using namespace std::chrono_literals;
using test::events_named;
using test::make_cluster;
using test::sent_of;

namespace {


/// One Raft node (5-node cluster, timeouts 150-300 ms, heartbeat 50 ms) with its
/// invariants checked after every step.
struct Node {
    ClusterConfig cfg;
    Raft r;
    explicit Node(NodeId self, HardState disk = {}, const std::string& extra = "", uint64_t seed = 7)
        : cfg(make_cluster(5, "election_timeout = \"150ms-300ms\"\nraft_heartbeat = \"50ms\"\n" + extra)),
          r(cfg, self, disk, seed) {}

    Actions check(Actions a) {
        auto bad = r.check_invariants();
        for (auto& v : bad) UNSCOPED_INFO(v);
        CHECK(bad.empty());
        return a;
    }
    Actions start(Time t) { return check(r.start(t)); }
    Actions tick(Time t) { return check(r.on_tick(t)); }
    Actions msg(NodeId from, Body b, Time t) { return check(r.on_message(from, test::envelope_from(from, b), t)); }
    /// Ticks at the election deadline.
    Actions time_out() { return tick(r.next_deadline()); }
    /// Drives it to leader of term 1 (pre-vote and votes from 2 and 3).
    void make_leader() {
        start(Time(0));
        time_out();
        Time t = r.next_deadline() - 1ms;  // still within this round
        msg(2, PreVoteReply{r.term() + 1, true}, t);
        msg(3, PreVoteReply{r.term() + 1, true}, t);
        msg(2, Vote{r.term(), true}, t);
        msg(3, Vote{r.term(), true}, t);
        REQUIRE(r.role() == Raft::Role::leader);
    }
};

std::vector<NodeId> to_of(const std::vector<std::pair<Outgoing, RequestVote>>& v) {
    std::vector<NodeId> d;
    for (auto& [o, m] : v) d.push_back(o.to);
    return d;
}

}  // namespace

TEST_CASE("raft: the election timeout is random in [min, max] and fixed by the seed (§5.2)", "[unit][raft]") {
    std::set<int64_t> seen;
    for (uint64_t seed = 1; seed <= 50; ++seed) {
        Node a(1, {}, "", seed), b(1, {}, "", seed);
        a.start(Time(0));
        b.start(Time(0));
        CHECK(a.r.next_deadline() == b.r.next_deadline());
        CHECK(a.r.next_deadline() >= Time(150ms));
        CHECK(a.r.next_deadline() <= Time(300ms));
        seen.insert(a.r.next_deadline().count());
    }
    CHECK(seen.size() > 40);  // spread out, not one value
}

TEST_CASE("raft: a follower that hears no leader runs a pre-vote first, changing no term (§9.6)",
          "[unit][raft]") {
    Node n(1);
    n.start(Time(0));
    Actions a = n.time_out();
    CHECK(n.r.role() == Raft::Role::pre_candidate);
    CHECK(n.r.term() == 0);
    CHECK_FALSE(a.persist);  // nothing durable changed
    auto pv = sent_of<PreVote>(a);
    REQUIRE(pv.size() == 4);
    for (auto& [o, m] : pv) CHECK(m == PreVote{1, 0, 0});
    SECTION("a rejection alone changes nothing; a majority of grants starts the election") {
        Time t = n.r.next_deadline() - 1ms;
        n.msg(2, PreVoteReply{0, false}, t);
        CHECK(n.r.role() == Raft::Role::pre_candidate);
        n.msg(2, PreVoteReply{1, true}, t);
        CHECK(n.r.role() == Raft::Role::pre_candidate);  // 2 of 5 with itself
        a = n.msg(3, PreVoteReply{1, true}, t);
        CHECK(n.r.role() == Raft::Role::candidate);
        CHECK(n.r.term() == 1);
        // §5.2: it votes for itself, and that vote is durable before any REQUEST_VOTE leaves.
        REQUIRE(a.persist);
        CHECK(*a.persist == HardState{1, 1});
        CHECK(to_of(sent_of<RequestVote>(a)) == std::vector<NodeId>{2, 3, 4, 5});
        CHECK(events_named(a, "election.start")[0]["term"] == 1);
    }
    SECTION("a rejection from a later term makes it a follower in that term") {
        a = n.msg(4, PreVoteReply{6, false}, Time(301ms));
        CHECK(n.r.role() == Raft::Role::follower);
        CHECK(n.r.term() == 6);
        REQUIRE(a.persist);
        CHECK(*a.persist == HardState{6, 0});
    }
}

TEST_CASE("raft: without PreVote the timeout starts the election at once", "[unit][raft]") {
    Node n(1, {}, "pre_vote = false\n");
    n.start(Time(0));
    Actions a = n.time_out();
    CHECK(n.r.role() == Raft::Role::candidate);
    CHECK(n.r.term() == 1);
    CHECK(sent_of<RequestVote>(a).size() == 4);
}

TEST_CASE("raft: a majority of votes makes a leader, which heartbeats at once and every period (§5.2)",
          "[unit][raft]") {
    Node n(1);
    n.make_leader();
    CHECK(n.r.view() == LeaderView{1, 1, 0});
    Time t = n.r.next_deadline();
    Actions a = n.tick(t);
    auto hb = sent_of<AppendEntries>(a);
    REQUIRE(hb.size() == 4);
    for (auto& [o, m] : hb) CHECK(m.term == 1);
    CHECK(n.r.next_deadline() <= t + 50ms);
}

TEST_CASE("raft: a voter grants one vote per term, first come first served, durable first (§5.2)",
          "[unit][raft]") {
    Node n(3);
    n.start(Time(0));
    Actions a = n.msg(1, RequestVote{4, 0, 0}, Time(10ms));
    auto v = sent_of<Vote>(a);
    REQUIRE(v.size() == 1);
    CHECK(v[0].first.route == Outgoing::Route::reply);
    CHECK(v[0].second == Vote{4, true});
    REQUIRE(a.persist);
    CHECK(*a.persist == HardState{4, 1});
    CHECK(events_named(a, "vote")[0] == Json({{"term", 4}, {"candidate", 1}}));
    a = n.msg(2, RequestVote{4, 0, 0}, Time(11ms));
    CHECK(sent_of<Vote>(a)[0].second == Vote{4, false});
    CHECK_FALSE(a.persist);
    a = n.msg(1, RequestVote{4, 0, 0}, Time(12ms));  // a retry from the same candidate
    CHECK(sent_of<Vote>(a)[0].second == Vote{4, true});
    a = n.msg(2, RequestVote{5, 0, 0}, Time(13ms));  // a new term: a new vote
    CHECK(sent_of<Vote>(a)[0].second == Vote{5, true});
    CHECK(*a.persist == HardState{5, 2});
}

TEST_CASE("raft: a restarted node keeps its term and vote and never votes twice in a term (§5.2)",
          "[unit][raft]") {
    Node n(3, HardState{4, 1});
    n.start(Time(0));
    CHECK(n.r.term() == 4);
    CHECK(n.r.voted_for() == 1);
    Actions a = n.msg(2, RequestVote{4, 0, 0}, Time(10ms));
    CHECK(sent_of<Vote>(a)[0].second == Vote{4, false});
}

TEST_CASE("raft: a higher term makes anyone a follower — a lower term is refused (§5.1)", "[unit][raft]") {
    Node n(1);
    n.make_leader();
    SECTION("AppendEntries from a newer leader") {
        Actions a = n.msg(2, AppendEntries{3, 0, 0, 0, {}}, Time(400ms));
        CHECK(n.r.role() == Raft::Role::follower);
        CHECK(n.r.view() == LeaderView{2, 3, 0});
        CHECK(*a.persist == HardState{3, 0});
        CHECK(sent_of<AppendReply>(a)[0].second.success);
    }
    SECTION("a reply from a later term") {
        n.msg(2, AppendReply{2, false, 0}, Time(400ms));
        CHECK(n.r.role() == Raft::Role::follower);
        CHECK(n.r.term() == 2);
        CHECK(n.r.leader() == 0);
    }
    SECTION("AppendEntries from an older leader is refused with our term") {
        Node f(2);
        f.start(Time(0));
        f.msg(1, AppendEntries{5, 0, 0, 0, {}}, Time(1ms));
        Actions a = f.msg(3, AppendEntries{4, 0, 0, 0, {}}, Time(2ms));
        CHECK(sent_of<AppendReply>(a)[0].second == AppendReply{5, false, 0});
        CHECK(f.r.leader() == 1);
    }
}

TEST_CASE("raft: only AppendEntries from the current leader resets the election timer", "[unit][raft]") {
    Node n(2);
    n.start(Time(0));
    n.msg(1, AppendEntries{1, 0, 0, 0, {}}, Time(100ms));
    Time deadline = n.r.next_deadline();
    CHECK(deadline >= Time(250ms));
    n.msg(3, PreVote{2, 0, 0}, Time(120ms));  // others' traffic changes nothing
    n.msg(4, AppendReply{1, true, 0}, Time(121ms));
    CHECK(n.r.next_deadline() == deadline);
    n.msg(1, AppendEntries{1, 0, 0, 0, {}}, Time(200ms));
    CHECK(n.r.next_deadline() > deadline);
}

TEST_CASE("raft: pre-votes are refused while the voter hears a leader, and change nothing (§9.6)",
          "[unit][raft]") {
    Node n(2);
    n.start(Time(0));
    n.msg(1, AppendEntries{3, 0, 0, 0, {}}, Time(100ms));
    Actions a = n.msg(5, PreVote{4, 0, 0}, Time(200ms));  // 100 ms < election_timeout_min
    CHECK(sent_of<PreVoteReply>(a)[0].second == PreVoteReply{3, false});
    CHECK_FALSE(a.persist);
    CHECK(n.r.term() == 3);
    SECTION("once the leader is silent for election_timeout_min, it is granted") {
        a = n.msg(5, PreVote{4, 0, 0}, Time(251ms));
        CHECK(sent_of<PreVoteReply>(a)[0].second == PreVoteReply{4, true});
        CHECK(n.r.term() == 3);  // still: a pre-vote changes no term
        CHECK(n.r.voted_for() == 0);
    }
    SECTION("a pre-vote for a term not above ours is refused") {
        a = n.msg(5, PreVote{3, 0, 0}, Time(400ms));
        CHECK(sent_of<PreVoteReply>(a)[0].second == PreVoteReply{3, false});
    }
}

TEST_CASE("raft: a higher-term vote request is ignored while the voter hears a leader (§4.2.3)",
          "[unit][raft]") {
    Node n(2);
    n.start(Time(0));
    n.msg(1, AppendEntries{3, 0, 0, 0, {}}, Time(100ms));
    Actions a = n.msg(5, RequestVote{9, 0, 0}, Time(150ms));
    CHECK(a.out.empty());
    CHECK(n.r.term() == 3);
    SECTION("without CheckQuorum it is not") {
        Node m(2, {}, "check_quorum = false\n");
        m.start(Time(0));
        m.msg(1, AppendEntries{3, 0, 0, 0, {}}, Time(100ms));
        a = m.msg(5, RequestVote{9, 0, 0}, Time(150ms));
        CHECK(m.r.term() == 9);
        CHECK(sent_of<Vote>(a)[0].second == Vote{9, true});
    }
}

TEST_CASE("raft: CheckQuorum — a leader that stops hearing a majority steps down", "[unit][raft]") {
    Node n(1);
    n.make_leader();
    Time t0 = n.r.next_deadline();
    // Followers 2 and 3 keep answering; 4 and 5 are silent: 3 of 5 is a majority.
    for (Time t = t0; t < t0 + 1s; t += 50ms) {
        n.tick(t);
        n.msg(2, AppendReply{1, true, 0}, t);
        n.msg(3, AppendReply{1, true, 0}, t);
    }
    CHECK(n.r.role() == Raft::Role::leader);
    // Now only 2 answers: 2 of 5 — within election_timeout_max it must step down.
    Time t1 = t0 + 1s;
    for (Time t = t1; t <= t1 + 400ms && n.r.role() == Raft::Role::leader; t += 50ms) {
        n.tick(t);
        n.msg(2, AppendReply{1, true, 0}, t);
    }
    CHECK(n.r.role() == Raft::Role::follower);
    CHECK(n.r.term() == 1);  // same term, no leader
    CHECK(n.r.leader() == 0);
}

TEST_CASE("raft: a candidate that hears the new leader of its term becomes its follower (§5.2)",
          "[unit][raft]") {
    Node n(1, {}, "pre_vote = false\n");
    n.start(Time(0));
    n.time_out();
    REQUIRE(n.r.role() == Raft::Role::candidate);
    Actions a = n.msg(3, AppendEntries{1, 0, 0, 0, {}}, Time(400ms));
    CHECK(n.r.role() == Raft::Role::follower);
    CHECK(n.r.view() == LeaderView{3, 1, 0});
    CHECK(n.r.voted_for() == 1);  // its own vote in term 1 stays cast
    CHECK(events_named(a, "leader").size() == 1);
}

TEST_CASE("raft: messages from non-voters are ignored", "[unit][raft]") {
    Node n(1);
    n.start(Time(0));
    Actions a = n.msg(9, RequestVote{5, 0, 0}, Time(10ms));
    CHECK(a.out.empty());
    CHECK(n.r.term() == 0);
}
