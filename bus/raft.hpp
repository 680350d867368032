// Raft (Ongaro & Ousterhout 2014; Ongaro's dissertation 2014) as a pure state machine: the
// consensus module of ftbus: terms, votes, randomized election timeouts, PreVote
// (dissertation §9.6), CheckQuorum (§6.2), log replication with heartbeats folded in,
// snapshots and InstallSnapshot.
//
// Rules, with the sections they come from:
//  - Terms (§5.1): a message with a higher term makes the receiver a follower in that term
//    (except PRE_VOTE, which changes no term, and a RequestVote that arrives while the
//    receiver still hears a leader: ignored, §4.2.3 "disruptive servers"). A message with
//    a lower term is refused with the current term, so a stale leader or candidate learns.
//  - Election (§5.2): a follower that hears no AppendEntries from the current leader for a
//    random timeout in [election_timeout_min, election_timeout_max] first runs a pre-vote:
//    PRE_VOTE {term + 1, log position} to every voter. A voter grants it if the log is up to
//    date and it has not heard from a leader within election_timeout_min. With a majority
//    the node becomes candidate: term + 1, votes for itself — made durable before any
//    REQUEST_VOTE leaves — and asks every voter. A majority of votes makes it leader. So a
//    node returning from a partition cannot depose a healthy leader: nobody pre-votes for it.
//  - Votes (§5.2, §5.4.1): one per term, first come first served, only for a candidate
//    whose log is at least as up to date; durable before the VOTE is sent.
//  - Leader: AppendEntries to every voter at once and every `heartbeat`. CheckQuorum: if,
//    over the last election_timeout_max, fewer than a majority (itself included) answered,
//    it steps down — a leader cut off from the majority stops acting as one.
//  - Only AppendEntries from the current leader (and granting a vote) reset the election
//    timer; the failure detector's verdicts are ignored (Raft has its own).
//
// Replication, snapshots and storage (docs/RAFT.md): AppendEntries with the consistency
// check and conflict truncation (§5.3); commit of current-term entries by majority (§5.4.2)
// after a no-op per term (§8); a leader counts itself only for entries its host reports
// durable (on_log_durable), so it may send entries before its own fsync (dissertation
// §10.2.1); followers' replies wait for theirs (the host holds them). Every
// snapshot_entries applied entries the state machine is snapshotted and the log compacted
// (§7); a follower behind the snapshot gets it by INSTALL_SNAPSHOT in chunks.
//
// Voters are exactly the nodes of the cluster file. Durable state (term, vote) comes in at
// construction and goes out as Actions::persist; the host writes it before sending.
// Randomness comes from a generator seeded at construction.
// Not thread-safe; owned by the node loop.
#pragma once

#include <algorithm>
#include <deque>
#include <map>
#include <random>
#include <set>

#include "bus/algorithm.hpp"
#include "bus/cluster.hpp"

namespace bus {

/// What the replicated log drives (the lock service's tables, a test's recorder). Knows
/// nothing of Raft: it is handed committed entries in index order, each exactly once per
/// incarnation — a restarted replica starts from its latest snapshot (restore) and is
/// handed the entries after it again.
class StateMachine {
public:
    virtual ~StateMachine() = default;
    virtual void apply(const LogEntry& e) = 0;
    /// The whole state after the last entry applied, as bytes (Raft stores and ships it).
    /// Deterministic: equal states give equal bytes (a transfer interrupted by a leader
    /// change may resume with another replica's bytes of the same snapshot).
    virtual std::string snapshot() const = 0;
    /// Replaces the whole state with one taken by snapshot(), maybe on another replica.
    virtual void restore(const std::string& data) = 0;
    /// A summary for `ftbus-ctl status` (an object; empty: none).
    virtual Json summary() const { return Json::object(); }
};

/// AppendEntries with entries in flight to one follower (unacknowledged) at most: the
/// leader paces each follower by its acknowledgements, not by the socket's queue (whose
/// overflow would lose messages). 16 messages of up to 64 entries keep a fast follower busy.
inline constexpr size_t kMaxInflightAppends = 16;

/// The largest entry Raft replicates: one entry must fit an APPEND_ENTRIES frame.
inline constexpr size_t kMaxEntryBytes = 32 * 1024;

class Raft final : public Algorithm {
public:
    enum class Role { follower, pre_candidate, candidate, leader };

    /// \pre `self` is a node of `cfg`. `recovered` is the durable state read at start-up,
    /// `snap` the latest durable snapshot (index 0: none), `log` the durable log after it
    /// (entries up to snap.index, if still there, are skipped). \throws std::invalid_argument
    /// if the log does not continue the snapshot (the host compacts it first).
    Raft(const ClusterConfig& cfg, NodeId self, HardState recovered, uint64_t seed, std::vector<LogEntry> log = {},
         Snapshot snap = {});
    /// Committed entries go to `sm` (may be null: nothing applies them); the snapshot the
    /// node started from is restored into it first.
    void set_state_machine(StateMachine* sm);
    /// Leader only: appends `data` to the log and replicates it. \return its index, or 0 if
    /// this node is not the leader (the caller redirects). \throws std::invalid_argument
    /// for data over kMaxEntryBytes (it could not travel in a frame; callers refuse first).
    uint64_t propose(std::string data, Time now, Actions& a);
    /// Batching (real hosts): proposals are not sent at once but at the end of the host's
    /// loop round (on_round_end), all of a round's in one AppendEntries per follower.
    void set_batching(bool on) { batching_ = on; }
    Actions on_round_end(Time now) override;
    /// The host made this node's log durable up to `index` (group commit: after its fsync).
    /// The leader counts itself towards a majority only for durable entries.
    Actions on_log_durable(uint64_t index, Time now) override;
    uint64_t commit_index() const { return commit_; }
    uint64_t applied_index() const { return applied_; }
    uint64_t durable_index() const { return durable_; }
    /// The entries after the snapshot (first_index() onwards), in memory as on disk.
    const std::vector<LogEntry>& log() const { return log_; }
    /// The entry at `index`, or null (compacted into the snapshot, or beyond the log).
    const LogEntry* entry(uint64_t index) const {
        return index <= snap_index_ || index > last_index() ? nullptr : &log_[index - snap_index_ - 1];
    }
    uint64_t first_index() const { return snap_index_ + 1; }
    uint64_t snapshot_index() const { return snap_index_; }
    uint64_t snapshot_term() const { return snap_term_; }
    /// commit, applied, durable, first and last index, snapshot index (ftbus-ctl status).
    Json status() const override;
    /// Tests: bytes of snapshot per INSTALL_SNAPSHOT (default and maximum kMaxSnapshotChunk).
    void set_snapshot_chunk(size_t bytes) { snapshot_chunk_ = std::clamp<size_t>(bytes, 1, kMaxSnapshotChunk); }

    const char* name() const override { return "raft"; }
    Actions start(Time now) override;
    Actions on_message(NodeId from, const Envelope& env, Time now) override;
    Actions on_peer(const PeerEvent&, Time) override { return {}; }
    Actions on_tick(Time now) override;
    Time next_deadline() const override;
    LeaderView view() const override { return {leader_, term_, 0}; }
    std::vector<std::string> check_invariants() const override;

    Role role() const { return role_; }
    uint64_t term() const { return term_; }
    NodeId voted_for() const { return vote_; }
    NodeId leader() const { return leader_; }
    HardState hard_state() const { return {term_, vote_}; }
    /// The log position (§5.4.1).
    uint64_t last_index() const { return snap_index_ + log_.size(); }
    uint64_t last_term() const { return log_.empty() ? snap_term_ : log_.back().term; }
    /// Term of the entry at `index`: the snapshot's term at its index; 0 for index 0, past
    /// the end, or compacted away before the snapshot's index.
    uint64_t term_at(uint64_t index) const {
        if (index == snap_index_) return snap_term_;
        const LogEntry* e = entry(index);
        return e ? e->term : 0;
    }

private:
    void handle(NodeId from, const PreVote& m, Time now, Actions& a);
    void handle(NodeId from, const PreVoteReply& m, Time now, Actions& a);
    void handle(NodeId from, const RequestVote& m, Time now, Actions& a);
    void handle(NodeId from, const Vote& m, Time now, Actions& a);
    void handle(NodeId from, const AppendEntries& m, Time now, Actions& a);
    void handle(NodeId from, const AppendReply& m, Time now, Actions& a);
    void handle(NodeId from, const InstallSnapshot& m, Time now, Actions& a);
    void handle(NodeId from, const SnapshotReply& m, Time now, Actions& a);

    void become_follower(uint64_t term, NodeId leader, Time now, Actions& a, const char* reason);
    void become_pre_candidate(Time now, Actions& a);
    void become_candidate(Time now, Actions& a, const char* reason);
    void become_leader(Time now, Actions& a);
    void set_role(Role r, Actions& a, const char* reason = nullptr);
    void set_leader(NodeId leader, Actions& a);
    void broadcast_heartbeat(Time now, Actions& a);
    /// Leader: AppendEntries to `peer` from its next index (entries, or none: a heartbeat).
    void replicate(NodeId peer, Actions& a);
    /// Leader: INSTALL_SNAPSHOT to `peer`, the chunk from where it is known to be.
    void send_snapshot(NodeId peer, Actions& a);
    void advance_commit();
    /// Applies what is committed, then takes a snapshot if snapshot_entries are due.
    void apply_committed(Actions& a);
    void take_snapshot(Actions& a);
    /// Follower: replaces log and state with a received snapshot (§7).
    void install_snapshot(Snapshot s, NodeId from, Actions& a);
    void append_local(LogEntry e, Actions& a);
    void reset_election_timer(Time now);
    /// Adds Actions::persist if term or vote changed since the last persisted state.
    Actions finish(Actions a);

    bool up_to_date(uint64_t last_term, uint64_t last_index) const;
    /// True while this node still hears a leader: it heard one within election_timeout_min.
    bool in_lease(Time now) const;
    size_t majority() const { return voters_.size() / 2 + 1; }
    bool is_voter(NodeId id) const { return voters_.count(id) != 0; }

    // ---- configuration
    NodeId self_;
    std::set<NodeId> voters_;  ///< the cluster file's nodes, self included
    Duration timeout_min_, timeout_max_;
    Duration heartbeat_;
    bool pre_vote_, check_quorum_;
    uint64_t snapshot_every_;
    size_t snapshot_chunk_ = kMaxSnapshotChunk;
    bool batching_ = false;
    bool batch_pending_ = false;  ///< proposals of this round not sent yet
    std::mt19937_64 rng_;

    // ---- durable state (Figure 2), as last handed to the host to persist
    uint64_t term_ = 0;
    NodeId vote_ = 0;  ///< voted for in term_, 0 = none
    HardState persisted_;

    // ---- volatile state
    Role role_ = Role::follower;
    uint64_t role_term_ = 0;     ///< the term the current role was last traced in
    NodeId leader_ = 0;          ///< leader of term_ once known, 0 otherwise
    Time leader_heard_ = Time::min();  ///< last AppendEntries from the current leader
    Time election_deadline_ = Time::max();  ///< follower / (pre-)candidate
    std::set<NodeId> granted_;   ///< (pre-)candidate: who granted, self included
    // leader only
    Time next_heartbeat_ = Time::max();
    Time next_quorum_check_ = Time::max();
    std::map<NodeId, Time> last_ack_;  ///< when each follower last answered in term_
    std::map<NodeId, uint64_t> next_, match_;  ///< per follower (§5.3, Figure 2)
    /// Per follower: the last index of each AppendEntries with entries not yet acknowledged
    /// (the in-flight window), and its match index at the previous heartbeat if the window
    /// was full then (UINT64_MAX if not).
    std::map<NodeId, std::deque<uint64_t>> inflight_;
    std::map<NodeId, uint64_t> hb_match_;
    /// Per follower receiving the snapshot: bytes it holds of snapshot snap_of_ (the leader's
    /// snapshot at that index; another index starts over).
    std::map<NodeId, uint64_t> snap_offset_, snap_of_;
    // ---- the snapshot and the log after it (in memory, as on disk); entry i at
    // log_[i - snap_index_ - 1]
    uint64_t snap_index_ = 0, snap_term_ = 0;
    std::string snap_data_;
    std::vector<LogEntry> log_;
    uint64_t commit_ = 0, applied_ = 0;
    uint64_t durable_ = 0;  ///< the host made the log durable up to here
    Snapshot receiving_;    ///< follower: the snapshot being received, chunk by chunk
    StateMachine* sm_ = nullptr;
};

const char* to_string(Raft::Role r);

}  // namespace bus
