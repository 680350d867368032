// Raft (Ongaro & Ousterhout 2014; Ongaro's dissertation 2014) as a pure state machine: the
// consensus module of ftbus. Today it elects: terms, votes, randomized election timeouts,
// PreVote (dissertation §9.6), CheckQuorum (§6.2), the leader's heartbeat as an empty
// AppendEntries. Log replication extends this same class (issue 7): the log position used
// by the up-to-date check (§5.4.1) is already here, empty.
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
// Voters are exactly the nodes of the cluster file. Durable state (term, vote) comes in at
// construction and goes out as Actions::persist; the host writes it before sending.
// Randomness comes from a generator seeded at construction.
// Not thread-safe; owned by the node loop.
#pragma once

#include <map>
#include <random>
#include <set>

#include "bus/algorithm.hpp"
#include "bus/cluster.hpp"

namespace bus {

/// What the replicated log drives (the lock service's tables, a test's recorder). Knows
/// nothing of Raft: it is handed committed entries in index order, each exactly once per
/// incarnation (a restarted replica is handed them again from the start).
class StateMachine {
public:
    virtual ~StateMachine() = default;
    virtual void apply(const LogEntry& e) = 0;
};

class Raft final : public Algorithm {
public:
    enum class Role { follower, pre_candidate, candidate, leader };

    /// \pre `self` is a node of `cfg`. `recovered` is the durable state read at start-up,
    /// `log` the durable log (indices 1, 2, ...).
    Raft(const ClusterConfig& cfg, NodeId self, HardState recovered, uint64_t seed, std::vector<LogEntry> log = {});
    /// Committed entries go to `sm` (may be null: nothing applies them).
    void set_state_machine(StateMachine* sm) { sm_ = sm; }
    /// Leader only: appends `data` to the log and replicates it. \return its index, or 0 if
    /// this node is not the leader (the caller redirects).
    uint64_t propose(std::string data, Time now, Actions& a);
    uint64_t commit_index() const { return commit_; }
    uint64_t applied_index() const { return applied_; }
    const std::vector<LogEntry>& log() const { return log_; }

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
    uint64_t last_index() const { return log_.size(); }
    uint64_t last_term() const { return log_.empty() ? 0 : log_.back().term; }
    /// Term of the entry at `index` (0 for index 0 or past the end).
    uint64_t term_at(uint64_t index) const { return index == 0 || index > log_.size() ? 0 : log_[index - 1].term; }

private:
    void handle(NodeId from, const PreVote& m, Time now, Actions& a);
    void handle(NodeId from, const PreVoteReply& m, Time now, Actions& a);
    void handle(NodeId from, const RequestVote& m, Time now, Actions& a);
    void handle(NodeId from, const Vote& m, Time now, Actions& a);
    void handle(NodeId from, const AppendEntries& m, Time now, Actions& a);
    void handle(NodeId from, const AppendReply& m, Time now, Actions& a);

    void become_follower(uint64_t term, NodeId leader, Time now, Actions& a, const char* reason);
    void become_pre_candidate(Time now, Actions& a);
    void become_candidate(Time now, Actions& a, const char* reason);
    void become_leader(Time now, Actions& a);
    void set_role(Role r, Actions& a, const char* reason = nullptr);
    void set_leader(NodeId leader, Actions& a);
    void broadcast_heartbeat(Time now, Actions& a);
    /// Leader: AppendEntries to `peer` from its next index (entries, or none: a heartbeat).
    void replicate(NodeId peer, Actions& a);
    void advance_commit();
    void apply_committed();
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
    // ---- the log (in memory, as on disk); entry i at log_[i - 1]
    std::vector<LogEntry> log_;
    uint64_t commit_ = 0, applied_ = 0;
    StateMachine* sm_ = nullptr;
};

const char* to_string(Raft::Role r);

}  // namespace bus
