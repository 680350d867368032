// Raft log replication (issue 7, first part): the consistency check and conflict truncation
// (§5.3), commit only of current-term entries by majority (§5.4.2, Figure 8), the no-op of a
// new leader; and the simulator across many seeds with crashes, restarts, partitions and
// lost messages, checking after every step: election safety, log matching, leader
// completeness and state-machine safety; after quiet, every replica applied the same log.
#include <catch2/catch.hpp>

#include <deque>
#include <tuple>

#include "bus/raft.hpp"
#include "bus/raft_server.hpp"
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

namespace {

/// A lossless, instant network for a handful of Raft nodes driven by hand: delivers every
/// message in send order; each node's log is durable as soon as written (its
/// on_log_durable follows every event that wrote).
struct Bench {
    std::map<NodeId, std::unique_ptr<Raft>> nodes;
    std::deque<std::tuple<NodeId, NodeId, Body>> wire;
    Time now{std::chrono::seconds(1)};

    void carry_out(NodeId id, Actions a) {
        bool wrote = a.log_truncate_from || !a.log_append.empty();
        for (auto& o : a.out) wire.emplace_back(id, o.to, o.body);
        if (wrote) carry_out(id, nodes[id]->on_log_durable(nodes[id]->last_index(), now));
    }
    void drain() {
        for (int n = 0; !wire.empty(); ++n) {
            REQUIRE(n < 100000);
            auto [from, to, body] = std::move(wire.front());
            wire.pop_front();
            carry_out(to, nodes[to]->on_message(from, env(from, std::move(body)), now));
        }
    }
};

}  // namespace

TEST_CASE("raft replication: Figure 7 — a new leader brings each of the six followers' logs to its own",
          "[unit][raft][replication]") {
    // The Raft paper's Figure 7: the leader of term 8 (node 1) and followers (a)-(f) (nodes
    // 2-7), each log given by its entries' terms. (a), (b) lack entries; (c), (d) have extra
    // uncommitted ones; (e), (f) both lack and have extra.
    std::vector<std::vector<uint64_t>> logs = {
        {1, 1, 1, 4, 4, 5, 5, 6, 6, 6},        // leader
        {1, 1, 1, 4, 4, 5, 5, 6, 6},           // (a)
        {1, 1, 1, 4},                          // (b)
        {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6},     // (c)
        {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7},  // (d)
        {1, 1, 1, 4, 4, 4, 4},                 // (e)
        {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3},     // (f)
    };
    ClusterConfig cfg = test::make_cluster(7);
    Bench b;
    for (NodeId id = 1; id <= 7; ++id) {
        std::vector<LogEntry> log;
        for (uint64_t t : logs[id - 1]) log.push_back({log.size() + 1, t, "t" + std::to_string(t) + "#" + std::to_string(log.size() + 1)});
        uint64_t term = id == 1 ? 7 : log.back().term;
        b.nodes[id] = std::make_unique<Raft>(cfg, id, HardState{term, 0}, id, log);
        b.nodes[id]->start(Time(0));
    }
    // Only node 1 times out: it pre-votes, is elected in term 8 by itself, (a), (b), (e) and
    // (f) — (c) and (d) hold more up-to-date logs and refuse — and appends its no-op.
    b.carry_out(1, b.nodes[1]->on_tick(b.now));
    b.drain();
    Raft& l = *b.nodes[1];
    REQUIRE(l.role() == Raft::Role::leader);
    REQUIRE(l.term() == 8);
    REQUIRE(l.last_index() == 11);
    CHECK(l.commit_index() == 11);  // the no-op is on a majority, and everything before it with it
    // One heartbeat later every follower knows the commit index too.
    b.now += std::chrono::milliseconds(60);  // one heartbeat period (50 ms) later
    b.carry_out(1, l.on_tick(b.now));
    REQUIRE(l.role() == Raft::Role::leader);
    b.drain();
    for (NodeId id = 2; id <= 7; ++id) {
        INFO("follower (" << static_cast<char>('a' + id - 2) << ")");
        CHECK(b.nodes[id]->log() == l.log());
        CHECK(b.nodes[id]->commit_index() == 11);
        CHECK(b.nodes[id]->term() == 8);
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
    // A majority holds the no-op: 3 commits, and 1..2 with it — once it is on the leader's
    // own disk too (it sent the entries before its fsync).
    l.on_message(2, env(2, AppendReply{l.term(), true, 3}), Time(1s + 3ms));
    CHECK(l.commit_index() == 0);
    l.on_log_durable(3, Time(1s + 3ms));
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

/// A replica's state machine: the history of what it applied, one "index:term:data" line
/// per entry. Its snapshot is that history, so a restored replica can be checked entry by
/// entry against what the others applied.
struct Recorder final : StateMachine {
    std::string history;
    uint64_t last = 0;
    std::vector<LogEntry> fresh;  ///< applied since the observer last looked
    std::vector<std::string> wrong;
    bool restored = false;
    static std::string line(const LogEntry& e) {
        return std::to_string(e.index) + ":" + std::to_string(e.term) + ":" + e.data + "\n";
    }
    void apply(const LogEntry& e) override {
        if (e.index != last + 1) wrong.push_back("applied " + std::to_string(e.index) + " after " + std::to_string(last));
        last = e.index;
        history += line(e);
        fresh.push_back(e);
    }
    std::string snapshot() const override { return history; }
    void restore(const std::string& data) override {
        history = data;
        restored = true;
        fresh.clear();
        // Every line is an entry some replica applied: parse them back for the checks.
        last = 0;
        size_t at = 0;
        while (at < data.size()) {
            size_t nl = data.find('\n', at);
            std::string l = data.substr(at, nl - at);
            size_t c1 = l.find(':'), c2 = l.find(':', c1 + 1);
            LogEntry e{std::stoull(l.substr(0, c1)), std::stoull(l.substr(c1 + 1, c2 - c1 - 1)), l.substr(c2 + 1)};
            if (e.index != last + 1) wrong.push_back("snapshot holds " + std::to_string(e.index) + " after " + std::to_string(last));
            last = e.index;
            fresh.push_back(e);
            at = nl + 1;
        }
    }
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
    size_t chunk = kMaxSnapshotChunk;

    ReplSim(const ClusterConfig& cfg, SimOptions o)
        : net(cfg,
              [cfg, this](NodeId id, uint64_t, const HardState& disk, std::mt19937_64& rng) {
                  auto r = std::make_unique<Raft>(cfg, id, disk, rng(), net.disk_log(id), net.disk_snapshot(id));
                  r->set_snapshot_chunk(chunk);
                  sm[id] = std::make_unique<Recorder>();
                  r->set_state_machine(sm[id].get());
                  return r;
              },
              o) {
        net.set_observer([this] { observe(); });
        // Followers persist before acknowledging: an APPEND_REPLY leaves only once the
        // entries it vouches for are on the sender's disk (synced, not merely written).
        net.set_send_observer([this](NodeId from, const Outgoing&, const Envelope& e) {
            if (auto* r = std::get_if<AppendReply>(&e.body); r && r->success && r->match > net.synced_index(from))
                bad("node " + std::to_string(from) + " acknowledged up to " + std::to_string(r->match) +
                    " with only " + std::to_string(net.synced_index(from)) + " synced");
        });
    }

    Raft* node(NodeId id) { return net.as<Raft>(id); }
    void bad(const std::string& s) {
        if (violations.size() < 20) violations.push_back(s);
    }
    static std::string show(const LogEntry* e) {
        return e ? "term " + std::to_string(e->term) + " '" + e->data + "'" : std::string("nothing");
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
            // State-machine safety: one entry per index, whoever applies it (or restores it
            // from a snapshot).
            Recorder& m = *sm[id];
            for (auto& w : m.wrong) bad("node " + std::to_string(id) + ": " + w);
            m.wrong.clear();
            for (const LogEntry& e : m.fresh) {
                auto [it, fresh] = applied_anywhere.emplace(e.index, e);
                if (!fresh && !(it->second == e)) bad("two entries applied at index " + std::to_string(e.index));
                if (fresh && m.restored && e.index <= r->snapshot_index())
                    bad("node " + std::to_string(id) + " restored entry " + std::to_string(e.index) + " that no replica applied");
            }
            m.fresh.clear();  // checked; keep the next step cheap
            m.restored = false;
            if (m.last != r->applied_index())
                bad("node " + std::to_string(id) + ": state machine at " + std::to_string(m.last) + ", Raft applied " +
                    std::to_string(r->applied_index()));
            for (uint64_t i = r->first_index(); i <= r->commit_index(); ++i) {
                auto [it, fresh] = committed.emplace(i, *r->entry(i));
                if (fresh) committed_in[i] = r->term();  // seen after every step: the committing leader's term
                if (!fresh && !(it->second == *r->entry(i))) bad("two entries committed at index " + std::to_string(i));
            }
            // Leader completeness: a leader of a later term holds every committed entry (in
            // its log, or in its snapshot: that one was committed when it was taken).
            if (r->role() == Raft::Role::leader)
                for (auto& [i, e] : committed)
                    if (r->term() > committed_in[i] && i > r->snapshot_index() && (!r->entry(i) || !(*r->entry(i) == e)))
                        bad("leader " + std::to_string(id) + " of term " + std::to_string(r->term()) +
                            " lacks committed entry " + std::to_string(i) + " (term " + std::to_string(e.term) + " '" +
                            e.data + "'; it has " + show(r->entry(i)) + ", last index " + std::to_string(r->last_index()) + ")");
        }
        // Log matching: same index and term -> identical up to there (over what both still hold).
        for (size_t x = 0; x < rs.size(); ++x)
            for (size_t y = x + 1; y < rs.size(); ++y) {
                uint64_t lo = std::max(rs[x]->first_index(), rs[y]->first_index());
                uint64_t n = std::min(rs[x]->last_index(), rs[y]->last_index());
                for (uint64_t i = n; i >= lo && i >= 1; --i)
                    if (rs[x]->term_at(i) == rs[y]->term_at(i)) {
                        for (uint64_t k = lo; k <= i; ++k)
                            if (!(*rs[x]->entry(k) == *rs[y]->entry(k))) {
                                bad("logs match at " + std::to_string(i) + " but differ at " + std::to_string(k));
                                break;
                            }
                        break;
                    }
            }
    }

    /// Every replica holds the same entries as `l` from its own first index, and applied
    /// everything `l` committed.
    void check_converged(NodeId leader) {
        const Raft& l = *node(leader);
        for (NodeId id : net.ids()) {
            INFO("node " << id);
            Raft& r = *node(id);
            CHECK(r.last_index() == l.last_index());
            for (uint64_t i = std::max(r.first_index(), l.first_index()); i <= l.last_index(); ++i)
                if (!r.entry(i) || !(*r.entry(i) == *l.entry(i))) {
                    FAIL_CHECK("entry " << i << " differs: " << show(r.entry(i)) << " vs " << show(l.entry(i)));
                    break;
                }
            CHECK(r.applied_index() == l.commit_index());
            CHECK(sm[id]->history == sm[leader]->history);
        }
    }

    NodeId leader() {
        for (NodeId id : net.ids())
            if (Raft* r = node(id); r && r->role() == Raft::Role::leader && net.is_up(id)) return id;
        return 0;
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
    int snapshots = 0;  // seeds whose leader ended with a snapshot
    int installs = 0;   // seeds where a leader sent one
    for (uint64_t seed = 1; seed <= 30; ++seed) {
        INFO("seed " << seed);
        SimOptions o;
        o.seed = seed;
        o.drop = 0.05;
        o.duplicate = 0.02;
        // A snapshot every 30 entries: each seed compacts several times, and replicas that
        // were down or cut off catch up by INSTALL_SNAPSHOT (in 200-byte chunks).
        ReplSim s(test::make_cluster(5, "election_timeout = \"50ms-100ms\"\nsnapshot_entries = 30\n"), o);
        s.chunk = 200;
        s.net.start_all();
        std::mt19937_64 rng(seed);
        for (int round = 0; round < 40; ++round) {
            for (int k = 0; k < 5; ++k) s.propose();
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
        s.check_converged(leader);
        // The last proposal was applied (everything is, by then, maybe inside a snapshot).
        std::string last = ":cmd-" + std::to_string(s.proposed) + "\n";
        CHECK(s.sm[leader]->history.substr(s.sm[leader]->history.size() - last.size()) == last);
        snapshots += l.snapshot_index() > 0;
        auto is = s.net.sent().find("INSTALL_SNAPSHOT");
        installs += is != s.net.sent().end() && is->second > 0;
    }
    // The schedules are random: a few seeds spend much of their time without a leader and
    // commit fewer than 30 entries. Most must have compacted, and in many a replica must
    // have caught up by INSTALL_SNAPSHOT.
    WARN("seeds with a snapshot: " << snapshots << "/30, with INSTALL_SNAPSHOT: " << installs << "/30");
    CHECK(snapshots >= 25);
    CHECK(installs >= 10);
}

TEST_CASE("raft replication sim: a follower that missed hundreds of entries catches up by INSTALL_SNAPSHOT in "
          "chunks — then the whole cluster restarts from snapshot and log tail with the same state",
          "[unit][raft][replication][sim][snapshot]") {
    SimOptions o;
    o.seed = 7;
    ReplSim s(test::make_cluster(3, "snapshot_entries = 100\n"), o);
    s.chunk = 256;  // the snapshot (a few KB) goes in many chunks
    s.net.start_all();
    s.net.run_for(std::chrono::seconds(2));
    NodeId leader = s.leader();
    REQUIRE(leader != 0);
    NodeId lagging = leader % 3 + 1;
    s.net.crash(lagging);
    for (int i = 0; i < 350; ++i) {
        s.propose();
        s.net.run_for(std::chrono::milliseconds(2));
    }
    s.net.run_for(std::chrono::seconds(1));
    REQUIRE(s.leader() == leader);
    const Raft& l = *s.node(leader);
    REQUIRE(l.commit_index() >= 351);
    REQUIRE(l.snapshot_index() >= 300);  // compacted: what the lagging follower lacks is gone
    // Group commit: fewer fsyncs than entries written (writes during an fsync share the next).
    CHECK(s.net.fsyncs() < s.net.log_writes());
    s.net.reset_counts();
    s.net.start(lagging);
    s.net.run_for(std::chrono::seconds(2));
    CHECK(s.net.sent().at("INSTALL_SNAPSHOT") > 10);
    Raft& f = *s.node(lagging);
    CHECK(f.snapshot_index() >= 300);
    CHECK(s.violations.empty());
    for (auto& v : s.violations) UNSCOPED_INFO(v);
    s.check_converged(leader);

    // Everyone restarts: state comes back from each disk's snapshot plus the log after it.
    std::map<NodeId, std::string> before;
    for (NodeId id = 1; id <= 3; ++id) {
        REQUIRE(s.net.disk_snapshot(id).index > 0);
        before[id] = s.sm[id]->history;
        s.net.crash(id);
    }
    for (NodeId id = 1; id <= 3; ++id) s.net.start(id);
    for (NodeId id = 1; id <= 3; ++id) CHECK(s.node(id)->applied_index() == s.net.disk_snapshot(id).index);
    s.net.run_for(std::chrono::seconds(3));
    s.propose();
    s.net.run_for(std::chrono::seconds(1));
    REQUIRE(s.leader() != 0);
    s.check_converged(s.leader());
    for (NodeId id = 1; id <= 3; ++id) {
        INFO("node " << id);
        const std::string& now = s.sm[id]->history;
        CHECK(now.substr(0, before[id].size()) == before[id]);  // nothing applied before was lost
    }
    for (auto& v : s.violations) UNSCOPED_INFO(v);
    CHECK(s.violations.empty());
}

TEST_CASE("raft replication sim: a follower that lost entries it had acknowledged — its log's tail cut, or its data "
          "directory emptied — catches up, and the leader does not storm it meanwhile",
          "[unit][raft][replication][sim]") {
    SimOptions o;
    o.seed = 11;
    ReplSim s(test::make_cluster(3), o);
    s.net.start_all();
    s.net.run_for(std::chrono::seconds(2));
    NodeId leader = s.leader();
    REQUIRE(leader != 0);
    NodeId f = leader % 3 + 1;
    for (int i = 0; i < 20; ++i) s.propose();
    s.net.run_for(std::chrono::seconds(1));
    REQUIRE(s.node(f)->last_index() >= 21);
    s.check_converged(leader);

    auto rejoin = [&](const char* what) {
        INFO(what);
        s.net.start(f);
        s.net.reset_counts();
        s.net.run_for(std::chrono::seconds(1));
        s.propose();
        s.net.run_for(std::chrono::seconds(1));
        REQUIRE(s.leader() == leader);
        s.check_converged(leader);
        // Heartbeats and the catch-up, not a refusal answered by a resend at once, forever:
        // two followers, a heartbeat every 50 ms, for 2 s, and a few catch-up rounds.
        CHECK(s.net.sent().at("APPEND_ENTRIES") < 200);
        for (auto& v : s.violations) UNSCOPED_INFO(v);
        CHECK(s.violations.empty());
    };
    s.net.crash(f);
    s.net.cut_log(f, 5);
    rejoin("the log's tail cut");
    s.net.crash(f);
    s.net.wipe_disk(f);
    rejoin("the data directory emptied");
    CHECK(s.net.disk(f).term == s.node(leader)->term());  // term and vote are durable again
}

TEST_CASE("raft replication: a follower takes snapshot chunks only in order — a gap or a stale leader is told where "
          "it stands — and keeps the log after the snapshot when it matches",
          "[unit][raft][replication][snapshot]") {
    ClusterConfig cfg = test::make_cluster(3);
    Raft f(cfg, 2, HardState{3, 0}, 1, log_of({1, 1, 2, 3, 3, 3}));
    struct Sm final : StateMachine {
        std::string state;
        void apply(const LogEntry& e) override { state += e.data; }
        std::string snapshot() const override { return state; }
        void restore(const std::string& d) override { state = d; }
    } sm;
    f.set_state_machine(&sm);
    f.start(Time(0));
    auto reply = [](const Actions& a) {
        auto r = replies<SnapshotReply>(a);
        REQUIRE(r.size() == 1);
        return r[0];
    };
    // A stale leader learns our term; nothing changes.
    SnapshotReply r = reply(f.on_message(1, env(1, InstallSnapshot{2, 5, 3, 0, "ab", false}), Time(1ms)));
    CHECK(r.term == 3);
    CHECK_FALSE(r.done);
    // Chunk 2 before chunk 1: we hold nothing, start from 0.
    r = reply(f.on_message(1, env(1, InstallSnapshot{3, 5, 3, 2, "cd", false}), Time(2ms)));
    CHECK(r.offset == 0);
    r = reply(f.on_message(1, env(1, InstallSnapshot{3, 5, 3, 0, "ab", false}), Time(3ms)));
    CHECK(r.offset == 2);
    r = reply(f.on_message(1, env(1, InstallSnapshot{3, 5, 3, 0, "ab", false}), Time(4ms)));  // a duplicate restarts it
    CHECK(r.offset == 2);
    r = reply(f.on_message(1, env(1, InstallSnapshot{3, 5, 3, 4, "ef", false}), Time(5ms)));  // a gap
    CHECK(r.offset == 2);
    CHECK(f.snapshot_index() == 0);
    r = reply(f.on_message(1, env(1, InstallSnapshot{3, 5, 3, 2, "cd", false}), Time(6ms)));
    CHECK(r.offset == 4);
    Actions a = f.on_message(1, env(1, InstallSnapshot{3, 5, 3, 4, "ef", true}), Time(7ms));
    r = reply(a);
    CHECK(r.done);
    CHECK(r.last_index == 5);
    // Installed: our entry 5 has the snapshot's term, so entry 6 stays.
    CHECK(f.snapshot_index() == 5);
    CHECK(f.commit_index() == 5);
    CHECK(f.applied_index() == 5);
    CHECK(sm.state == "abcdef");
    CHECK(f.last_index() == 6);
    CHECK(f.first_index() == 6);
    REQUIRE(a.snapshot.has_value());
    CHECK(*a.snapshot == Snapshot{5, 3, "abcdef"});
    // A snapshot of what we already have committed: done at once, nothing replaced.
    r = reply(f.on_message(1, env(1, InstallSnapshot{3, 4, 3, 0, "xy", true}), Time(8ms)));
    CHECK(r.done);
    CHECK(sm.state == "abcdef");
    // AppendEntries from before the snapshot: the covered part is skipped, the rest checked.
    Actions ae = f.on_message(1, env(1, AppendEntries{3, 3, 2, 5, {{3, "e4"}, {3, "e5"}, {3, "e6"}, {3, "x7"}}}), Time(9ms));
    auto ar = replies<AppendReply>(ae);
    REQUIRE(ar.size() == 1);
    CHECK(ar[0].success);
    CHECK(ar[0].match == 7);
    CHECK(f.entry(7)->data == "x7");
}

TEST_CASE("raft replication: a leader compacts every snapshot_entries applied entries and sends INSTALL_SNAPSHOT to "
          "a follower that needs what was compacted",
          "[unit][raft][replication][snapshot]") {
    ClusterConfig cfg = test::make_cluster(3, "election_timeout = \"100ms-200ms\"\npre_vote = false\nsnapshot_entries = 3\n");
    Raft l(cfg, 1, HardState{1, 0}, 7, log_of({1, 1}));
    l.start(Time(0));
    l.on_tick(Time(1s));
    l.on_message(2, env(2, Vote{l.term(), true}), Time(1s));
    REQUIRE(l.role() == Raft::Role::leader);
    Actions p;
    l.propose("a", Time(1s), p);
    l.propose("b", Time(1s), p);
    l.on_log_durable(l.last_index(), Time(1s));
    Actions a = l.on_message(2, env(2, AppendReply{l.term(), true, 5}), Time(1s + 1ms));
    CHECK(l.commit_index() == 5);
    REQUIRE(a.snapshot.has_value());  // 5 applied >= 3: snapshot at 5, log compacted
    CHECK(a.snapshot->index == 5);
    CHECK(l.snapshot_index() == 5);
    CHECK(l.log().empty());
    CHECK(test::events_named(a, "raft.snapshot").size() == 1);
    // Node 3 answers that it has nothing: it needs entry 1, compacted away.
    a = l.on_message(3, env(3, AppendReply{l.term(), false, 0}), Time(1s + 2ms));
    auto sent = test::sent_of<InstallSnapshot>(a);
    REQUIRE(sent.size() == 1);
    CHECK(sent[0].second.last_index == 5);
    CHECK(sent[0].second.offset == 0);
    CHECK(sent[0].second.done);  // no state machine: an empty snapshot, one chunk
    a = l.on_message(3, env(3, SnapshotReply{l.term(), 5, 0, true}), Time(1s + 3ms));
    CHECK(test::sent_of<InstallSnapshot>(a).empty());
}

TEST_CASE("raft replication: a leader keeps at most kMaxInflightAppends AppendEntries in flight to a follower — "
          "acknowledgements open the window, a window stuck for a heartbeat period is resent from the match",
          "[unit][raft][replication]") {
    ClusterConfig cfg = test::make_cluster(3, "election_timeout = \"100ms-200ms\"\npre_vote = false\n");
    Raft l(cfg, 1, HardState{1, 0}, 7);
    l.start(Time(0));
    l.on_tick(Time(1s));
    l.on_message(2, env(2, Vote{l.term(), true}), Time(1s));
    REQUIRE(l.role() == Raft::Role::leader);  // the no-op (index 1) went out to 2 and 3
    auto with_entries_to = [](const Actions& a, NodeId to) {
        size_t n = 0;
        for (auto& [o, m] : test::sent_of<AppendEntries>(a))
            if (o.to == to && !m.entries.empty()) ++n;
        return n;
    };
    size_t sent = 1;  // the no-op's message to node 2
    for (int i = 0; i < 40; ++i) {
        Actions p;
        l.propose("cmd" + std::to_string(i), Time(1s), p);
        sent += with_entries_to(p, 2);
    }
    CHECK(sent == kMaxInflightAppends);  // nothing acknowledged yet: the window is full
    // Node 2 acknowledges the first three messages: three more may go, carrying the rest.
    Actions a = l.on_message(2, env(2, AppendReply{l.term(), true, 3}), Time(1s + 1ms));
    CHECK(with_entries_to(a, 2) == 1);  // one message, from index 17 up to 41 (batched)
    auto ae = test::sent_of<AppendEntries>(a);
    REQUIRE(ae.size() == 1);
    CHECK(ae[0].second.prev_index == kMaxInflightAppends);
    CHECK(ae[0].second.entries.size() == 41 - kMaxInflightAppends);
    // Node 3 never answers: its window stays full; heartbeats carry no entries, and after a
    // whole period with no progress it is resent from what node 3 holds (nothing: index 1).
    Actions h1 = l.on_tick(Time(1s + 60ms));
    CHECK(with_entries_to(h1, 3) == 0);
    Actions h2 = l.on_tick(Time(1s + 120ms));
    auto again = test::sent_of<AppendEntries>(h2);
    bool resent = false;
    for (auto& [o, m] : again)
        if (o.to == 3 && m.prev_index == 0 && !m.entries.empty()) resent = true;
    CHECK(resent);
}

TEST_CASE("raft replication sim: a crash loses what no completed fsync covered — some prefix of it may survive",
          "[unit][raft][replication][sim]") {
    int lost = 0;
    for (uint64_t seed = 1; seed <= 10; ++seed) {
        INFO("seed " << seed);
        SimOptions o;
        o.seed = seed;
        ReplSim s(test::make_cluster(3), o);
        s.net.start_all();
        s.net.run_for(std::chrono::seconds(2));
        NodeId leader = s.leader();
        REQUIRE(leader != 0);
        uint64_t synced = s.net.synced_index(leader);
        for (int i = 0; i < 5; ++i) s.propose();  // written, not yet synced: no time passed
        REQUIRE(s.net.disk_log(leader).back().index == synced + 5);
        s.net.crash(leader);
        auto disk = s.net.disk_log(leader);
        uint64_t last = disk.empty() ? 0 : disk.back().index;
        CHECK(last >= synced);
        CHECK(last <= synced + 5);
        for (size_t i = 0; i < disk.size(); ++i) CHECK(disk[i].index == disk.front().index + i);  // a prefix
        lost += last < synced + 5;
    }
    CHECK(lost > 0);
}

TEST_CASE("raft replication: an AppendEntries stays within its byte budget — two large entries travel in two "
          "messages, each well inside a frame",
          "[unit][raft][replication]") {
    ClusterConfig cfg = test::make_cluster(3, "election_timeout = \"100ms-200ms\"\npre_vote = false\n");
    Raft l(cfg, 1, HardState{1, 0}, 7, {{1, 1, std::string(kMaxEntryBytes - 20, 'a')}, {2, 1, std::string(kMaxEntryBytes, 'b')}});
    l.start(Time(0));
    l.on_tick(Time(1s));
    Actions a = l.on_message(2, env(2, Vote{l.term(), true}), Time(1s));
    REQUIRE(l.role() == Raft::Role::leader);
    // Node 2 has nothing: it is sent entry 1 alone, and the rest as it acknowledges.
    a = l.on_message(2, env(2, AppendReply{l.term(), false, 0}), Time(1s + 1ms));
    auto sent = test::sent_of<AppendEntries>(a);
    REQUIRE(sent.size() == 1);
    CHECK(sent[0].second.entries.size() == 1);
    Envelope e = env(1, sent[0].second);
    CHECK(encode(e).size() <= kMaxFrameBytes);
    a = l.on_message(2, env(2, AppendReply{l.term(), true, 1}), Time(1s + 2ms));
    sent = test::sent_of<AppendEntries>(a);
    REQUIRE(sent.size() == 1);
    CHECK(sent[0].second.entries.size() == 1);
    CHECK(encode(env(1, sent[0].second)).size() <= kMaxFrameBytes);
}

TEST_CASE("raft server: a message at the client port that is not a PROPOSE gets a refusal naming it, not silence",
          "[unit][raft][badinput]") {
    ClusterConfig cfg = test::make_cluster(3);
    LogDigest digest;
    RaftServer server(std::make_unique<Raft>(cfg, 1, HardState{}, 7, std::vector<LogEntry>{}), &digest);
    Envelope env;
    env.from = std::string("c");
    env.inc = 1;
    env.seq = 4;
    env.body = LockRequest{};
    Actions a = server.on_client("route-c", env, Time{});
    REQUIRE(a.out.size() == 1);
    CHECK(a.out[0].route == Outgoing::Route::client);
    const auto* r = std::get_if<ProposeReply>(&a.out[0].body);
    REQUIRE(r);
    CHECK_FALSE(r->ok);
    CHECK(r->req == 0);
    CHECK(r->error == "not a PROPOSE: a LOCK_REQUEST message");
    CHECK(digest.entries() == 0);
}
