// Raft log replication (issue 7, first part): the consistency check and conflict truncation
// (§5.3), commit only of current-term entries by majority (§5.4.2, Figure 8), the no-op of a
// new leader; and the simulator across many seeds with crashes, restarts, partitions and
// lost messages, checking after every step: election safety, log matching, leader
// completeness and state-machine safety; after quiet, every replica applied the same log.
#include <catch2/catch.hpp>

#include "bus/raft.hpp"
#include "bus/sim_network.hpp"
#include "test_util.hpp"

using namespace bus;
using namespace std::chrono_literals;

namespace {

Envelope env(NodeId from, Body b) { return test::envelope_from(from, std::move(b)); }

std::vector<LogEntry> log_of(std::initializer_list<uint64_t> terms) {
    std::vector<LogEntry> l;
    for (uint64_t t : terms) l.push_back({l.size() + 1, t, "e" + std::to_string(l.size() + 1)});
    return l;
}

std::vector<uint64_t> terms(const Raft& r) {
    std::vector<uint64_t> t;
    for (auto& e : r.log()) t.push_back(e.term);
    return t;
}

template <typename B>
std::vector<B> replies(const Actions& a) {
    std::vector<B> out;
    for (auto& [o, b] : test::sent_of<B>(a)) out.push_back(b);
    return out;
}

}  // namespace

TEST_CASE("raft replication: a follower drops a conflicting suffix and appends the leader's entries",
          "[unit][raft][replication]") {
    ClusterConfig cfg = test::make_cluster(3);
    Raft f(cfg, 2, HardState{2, 0}, 1, log_of({1, 1, 2, 2}));
    f.start(Time(0));
    Actions a = f.on_message(1, env(1, AppendEntries{3, 2, 1, 0, {{3, "x3"}, {3, "x4"}}}), Time(10ms));
    CHECK(terms(f) == std::vector<uint64_t>{1, 1, 3, 3});
    REQUIRE(a.log_truncate_from.has_value());
    CHECK(*a.log_truncate_from == 3);
    REQUIRE(a.log_append.size() == 2);
    CHECK(a.log_append[0].index == 3);
    auto r = replies<AppendReply>(a);
    REQUIRE(r.size() == 1);
    CHECK(r[0].success);
    CHECK(r[0].match == 4);

    SECTION("a stale, reordered message covering fewer entries cuts nothing") {
        a = f.on_message(1, env(1, AppendEntries{3, 2, 1, 0, {{3, "x3"}}}), Time(20ms));
        CHECK(terms(f) == std::vector<uint64_t>{1, 1, 3, 3});
        CHECK_FALSE(a.log_truncate_from.has_value());
        CHECK(replies<AppendReply>(a)[0].match == 3);
    }
    SECTION("prev beyond our log: refused, with our last index as the hint") {
        a = f.on_message(1, env(1, AppendEntries{3, 9, 3, 0, {}}), Time(20ms));
        CHECK_FALSE(replies<AppendReply>(a)[0].success);
        CHECK(replies<AppendReply>(a)[0].match == 4);
    }
    SECTION("prev with another term: refused, nothing cut") {
        a = f.on_message(1, env(1, AppendEntries{3, 4, 2, 0, {}}), Time(20ms));
        CHECK_FALSE(replies<AppendReply>(a)[0].success);
        CHECK(terms(f).size() == 4);
    }
    SECTION("commit follows the leader up to the last entry the message vouches for") {
        f.on_message(1, env(1, AppendEntries{3, 4, 3, 9, {}}), Time(20ms));
        CHECK(f.commit_index() == 4);
        CHECK(f.applied_index() == 4);
    }
}

TEST_CASE("raft replication: a leader commits an older term's entry only through one of its own (Figure 8)",
          "[unit][raft][replication]") {
    ClusterConfig cfg = test::make_cluster(3, "election_timeout = \"100ms-200ms\"\npre_vote = false\n");
    Raft l(cfg, 1, HardState{2, 0}, 7, log_of({1, 2}));  // entry 2 from an old term 2, not committed
    l.start(Time(0));
    Actions a = l.on_tick(Time(1s));  // election timeout: candidate in term 3
    REQUIRE(l.role() == Raft::Role::candidate);
    a = l.on_message(2, env(2, Vote{l.term(), true}), Time(1s + 1ms));
    REQUIRE(l.role() == Raft::Role::leader);
    // The new leader's no-op (index 3, its term) goes out with the old entries.
    REQUIRE(l.last_index() == 3);
    CHECK(l.log()[2].data.empty());
    CHECK(l.log()[2].term == l.term());
    // A majority holds index 2 (the old term): not committed.
    l.on_message(2, env(2, AppendReply{l.term(), true, 2}), Time(1s + 2ms));
    CHECK(l.commit_index() == 0);
    // A majority holds the no-op: 3 commits, and 1..2 with it.
    l.on_message(2, env(2, AppendReply{l.term(), true, 3}), Time(1s + 3ms));
    CHECK(l.commit_index() == 3);
    CHECK(l.applied_index() == 3);
    // A proposal: appended at 4 and sent to the up-to-date follower at once.
    Actions p;
    CHECK(l.propose("set x", Time(1s + 4ms), p) == 4);
    REQUIRE(p.log_append.size() == 1);
    auto sent = test::sent_of<AppendEntries>(p);
    REQUIRE_FALSE(sent.empty());
    CHECK(sent[0].second.entries.back().data == "set x");
}

namespace {

/// A replica's state machine: what it applied, in order.
struct Recorder final : StateMachine {
    std::vector<LogEntry> applied;
    void apply(const LogEntry& e) override { applied.push_back(e); }
};

struct ReplSim {
    SimNetwork net;
    std::map<NodeId, std::unique_ptr<Recorder>> sm;   // current incarnation's
    std::map<uint64_t, LogEntry> applied_anywhere;    // index -> the entry applied there
    std::map<uint64_t, LogEntry> committed;           // index -> entry, once any replica committed it
    std::map<uint64_t, uint64_t> committed_in;        // index -> the term it was first seen committed in
    std::map<uint64_t, NodeId> leader_of_term;
    std::vector<std::string> violations;
    uint64_t proposed = 0;

    ReplSim(const ClusterConfig& cfg, SimOptions o)
        : net(cfg,
              [cfg, this](NodeId id, uint64_t, const HardState& disk, std::mt19937_64& rng) {
                  auto r = std::make_unique<Raft>(cfg, id, disk, rng(), net.disk_log(id));
                  sm[id] = std::make_unique<Recorder>();
                  r->set_state_machine(sm[id].get());
                  return r;
              },
              o) {
        net.set_observer([this] { observe(); });
    }

    Raft* node(NodeId id) { return net.as<Raft>(id); }
    void bad(const std::string& s) {
        if (violations.size() < 20) violations.push_back(s);
    }

    void observe() {
        for (auto& v : net.check_invariants()) bad(v);
        std::vector<Raft*> rs;
        for (NodeId id : net.ids())
            if (Raft* r = node(id)) rs.push_back(r);
        for (NodeId id : net.ids()) {
            Raft* r = node(id);
            if (!r) continue;
            if (r->role() == Raft::Role::leader) {  // election safety
                auto [it, fresh] = leader_of_term.emplace(r->term(), id);
                if (!fresh && it->second != id) bad("two leaders in term " + std::to_string(r->term()));
            }
            // State-machine safety: one entry per index, whoever applies it.
            for (const LogEntry& e : sm[id]->applied) {
                auto [it, fresh] = applied_anywhere.emplace(e.index, e);
                if (!fresh && !(it->second == e)) bad("two entries applied at index " + std::to_string(e.index));
            }
            sm[id]->applied.clear();  // checked; keep the next step cheap
            for (uint64_t i = 1; i <= r->commit_index(); ++i) {
                auto [it, fresh] = committed.emplace(i, r->log()[i - 1]);
                if (fresh) committed_in[i] = r->term();  // seen after every step: the committing leader's term
                if (!fresh && !(it->second == r->log()[i - 1])) bad("two entries committed at index " + std::to_string(i));
            }
            // Leader completeness: a leader of a later term holds every committed entry.
            if (r->role() == Raft::Role::leader)
                for (auto& [i, e] : committed)
                    if (r->term() > committed_in[i] && (i > r->last_index() || !(r->log()[i - 1] == e)))
                        bad("leader " + std::to_string(id) + " of term " + std::to_string(r->term()) +
                            " lacks committed entry " + std::to_string(i) + " (term " + std::to_string(e.term) + " '" +
                            e.data + "'; it has " +
                            (i > r->last_index() ? std::string("nothing") : "term " + std::to_string(r->log()[i - 1].term) + " '" + r->log()[i - 1].data + "'") +
                            ", last index " + std::to_string(r->last_index()) + ")");
        }
        // Log matching: same index and term -> identical prefixes.
        for (size_t x = 0; x < rs.size(); ++x)
            for (size_t y = x + 1; y < rs.size(); ++y) {
                uint64_t n = std::min(rs[x]->last_index(), rs[y]->last_index());
                for (uint64_t i = n; i >= 1; --i)
                    if (rs[x]->term_at(i) == rs[y]->term_at(i)) {
                        for (uint64_t k = 1; k <= i; ++k)
                            if (!(rs[x]->log()[k - 1] == rs[y]->log()[k - 1])) {
                                bad("logs match at " + std::to_string(i) + " but differ at " + std::to_string(k));
                                break;
                            }
                        break;
                    }
            }
    }

    /// Proposes to whoever leads now (if anyone).
    void propose() {
        for (NodeId id : net.ids())
            if (Raft* r = node(id); r && r->role() == Raft::Role::leader && net.is_up(id)) {
                std::string data = "cmd-" + std::to_string(++proposed);
                net.act(id, [&](Algorithm& alg, Time now, Actions& a) { static_cast<Raft&>(alg).propose(data, now, a); });
                return;
            }
    }
};

}  // namespace

TEST_CASE("raft replication sim: proposals under crashes, restarts, pauses, partitions and loss keep every safety "
          "property — after quiet every replica holds and applies the same log",
          "[unit][raft][replication][sim]") {
    for (uint64_t seed = 1; seed <= 30; ++seed) {
        INFO("seed " << seed);
        SimOptions o;
        o.seed = seed;
        o.drop = 0.05;
        o.duplicate = 0.02;
        ReplSim s(test::make_cluster(5, "election_timeout = \"50ms-100ms\"\n"), o);
        s.net.start_all();
        std::mt19937_64 rng(seed);
        for (int round = 0; round < 40; ++round) {
            for (int k = 0; k < 3; ++k) s.propose();
            s.net.run_for(Duration(static_cast<int64_t>(rng() % 150'000)));
            NodeId n = static_cast<NodeId>(1 + rng() % 5);
            switch (rng() % 8) {
                case 0: s.net.crash(n); break;
                case 1: s.net.start(n); break;
                case 2: s.net.pause(n); break;
                case 3: s.net.resume(n); break;
                case 4: s.net.partition({{n, static_cast<NodeId>(1 + n % 5)}}); break;
                case 5: s.net.heal(); break;
                default: break;
            }
        }
        // Quiet: everyone up, healed, no loss; one more proposal must commit everywhere.
        s.net.heal();
        s.net.set_drop(0);
        for (NodeId id = 1; id <= 5; ++id) {
            if (!s.net.is_running(id)) s.net.start(id);
            s.net.resume(id);
        }
        s.net.run_for(3s);
        s.propose();
        s.net.run_for(3s);
        for (auto& v : s.violations) UNSCOPED_INFO(v);
        CHECK(s.violations.empty());
        NodeId leader = 0;
        for (NodeId id = 1; id <= 5; ++id)
            if (s.node(id)->role() == Raft::Role::leader) leader = id;
        REQUIRE(leader != 0);
        const Raft& l = *s.node(leader);
        CHECK(l.commit_index() == l.last_index());
        for (NodeId id = 1; id <= 5; ++id) {
            INFO("node " << id);
            CHECK(s.node(id)->log() == l.log());
            CHECK(s.node(id)->applied_index() == l.commit_index());
        }
        CHECK(l.log().back().data == "cmd-" + std::to_string(s.proposed));
    }
}
