// The bully election (Garcia-Molina, 1982; seeds 000, 001, 003) as a pure state machine,
// with election epochs, a backup leader and a leader beacon. docs/ELECTION.md tells the
// whole protocol with its reasons; in short:
//
//  - Rank decides: priority first, then id (seed 000). The best live node should lead.
//  - A node holds an election at start-up (after listening `join_wait` for a leader it will
//    follow; a node whose loop was stalled rejoins the same way, since the cluster may have
//    moved on while it slept), when its leader is declared dead, when a lower node sends it
//    ELECTION (while joining: answered at once, held when the join wait ends), and —
//    with `preempt` — when it hears a leader it outranks. It picks a new epoch (the highest
//    it has seen + 1; a node drawn in by an ELECTION joins that election's epoch instead, so
//    one failure makes one epoch, not one per rank), sends ELECTION to every higher-ranked
//    node not declared dead, and
//    wins if none ANSWERs within `answer_timeout`. An ANSWER means "I outrank you and take
//    over": the candidate then waits `coordinator_timeout` for a COORDINATOR, and holds a new
//    election if none comes (the answerer died mid-election).
//  - The winner sends COORDINATOR {epoch, leader, backup} to every peer and once on PUB,
//    and then a LEADER beacon on PUB every heartbeat period. The backup is the next in line:
//    the best peer the leader currently hears (a suspected peer is passed over).
//  - A follower holds an election when its leader is declared dead, restarts (a new
//    incarnation does not lead), or stops beaconing while alive.
//  - Epochs order claims. A claim (COORDINATOR or LEADER) older than the newest epoch this
//    node has seen is stale and ignored; so is an ANSWER for an election it no longer holds.
//    An ELECTION for an epoch whose election has already concluded here is not re-run: the
//    sender is answered and caught up with a COORDINATOR for the leader it missed.
//  - Two claims for one epoch (a healed partition) are settled by rank.
//  - A sitting leader yields only to a better leader; one that hears a newer claim from a
//    lower-ranked node re-asserts itself in a new epoch (a node cut off from everyone wins
//    alone, and must not depose the real leader after the heal).
//  - preempt = false: a better node that comes back (start, restart, or wake from a pause)
//    follows the sitting leader instead of taking over; only a leader's failure starts a
//    new election.
//
// Every epoch this node traces (election.start, role, leader) is at least every epoch it
// traced before, so terms never decrease per (node, inc).
// Membership at runtime (on_member): a node that joins is ranked by the priority it
// announced and takes part from then on; one that leaves is treated at once as dead (an
// election if it led) and forgotten.
// What it leaves out: persistence (epochs are soft state, relearned from the leader's beacon after a restart).
// Not thread-safe; owned by the node loop.
#pragma once

#include <compare>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "bus/algorithm.hpp"
#include "bus/cluster.hpp"

namespace bus {

class Bully final : public Algorithm {
public:
    enum class Phase {
        joining,    ///< just started: listening for a leader's beacon until the join wait ends
        candidate,  ///< sent ELECTION to the higher-ranked nodes; waiting for an ANSWER
        waiting,    ///< a higher node ANSWERed; waiting for its COORDINATOR
        leader,
        follower,
    };

    /// \pre `self` is a node of `cfg`.
    Bully(const ClusterConfig& cfg, NodeId self);

    const char* name() const override { return "bully"; }
    Actions start(Time now) override;
    Actions on_message(NodeId from, const Envelope& env, Time now) override;
    Actions on_peer(const PeerEvent& ev, Time now) override;
    Actions on_member(const MemberInfo& m, bool joined, Time now) override;
    Actions on_stall(Time now) override;
    Actions on_tick(Time now) override;
    Time next_deadline() const override;
    LeaderView view() const override;
    std::vector<std::string> check_invariants() const override;

    Phase phase() const { return phase_; }
    uint64_t epoch() const { return epoch_; }
    NodeId leader() const { return leader_; }
    uint64_t leader_epoch() const { return leader_epoch_; }
    NodeId backup() const { return backup_; }
    /// True if `a` outranks `b`: higher priority, or equal priority and higher id.
    bool outranks(NodeId a, NodeId b) const;

private:
    struct Rank {
        int64_t priority = 0;
        NodeId id = 0;
        auto operator<=>(const Rank&) const = default;
    };

    void handle_election(NodeId from, const Election& m, Time now, Actions& a);
    void handle_answer(NodeId from, const Answer& m, Time now, Actions& a);
    void handle_claim(NodeId from, MsgType type, uint64_t epoch, NodeId leader, NodeId backup, Time now,
                      Actions& a);

    /// Holds an election in `epoch` (0: a new one, the newest epoch seen + 1).
    void hold_election(Time now, const std::string& reason, Actions& a, uint64_t epoch = 0);
    void become_leader(Time now, Actions& a);
    void adopt(NodeId leader, uint64_t epoch, NodeId backup, Time now, Actions& a);
    void set_phase(Phase p, uint64_t term, Actions& a);
    void trace_leader(Actions& a) const;
    void ignore(NodeId from, MsgType type, uint64_t epoch, const std::string& why, Actions& a) const;
    /// Leader only: re-picks the backup; traces `leader` again if it changed.
    void refresh_backup(Actions& a);
    /// The best-ranked peer this node hears (alive, not suspected), 0 if none.
    NodeId next_in_line() const;
    bool electing() const { return phase_ == Phase::candidate || phase_ == Phase::waiting; }
    bool is_node(NodeId id) const { return ranks_.count(id) != 0; }

    // ---- configuration
    NodeId self_;
    std::map<NodeId, Rank> ranks_;  ///< every node of the cluster file, self included
    Duration answer_timeout_;
    Duration coordinator_timeout_;
    Duration join_wait_;
    Duration beacon_period_;  ///< the heartbeat period
    /// A follower whose live leader sends no beacon for this long (2 x dead_after) concludes
    /// that it no longer leads and holds an election. A safety net behind the detector (a
    /// dead leader is convicted first, after dead_after), for a leader that is alive but no
    /// longer leads; twice dead_after so that the detector's verdict always comes first.
    Duration beacon_timeout_;
    bool preempt_;

    // ---- state
    Phase phase_ = Phase::joining;
    /// Highest epoch seen in any bully message, or started here. Never decreases.
    uint64_t epoch_ = 0;
    /// candidate / waiting: the epoch of the election this node holds.
    uint64_t election_epoch_ = 0;
    /// The leader followed (self when leading); 0 while joining or electing.
    NodeId leader_ = 0;
    /// The epoch in which leader_ won; kept while electing (the last leader adopted).
    uint64_t leader_epoch_ = 0;
    /// Next in line as the leader announced it (or, when leading, as this node picked it).
    NodeId backup_ = 0;
    /// joining: end of the join wait; candidate: answer timeout; waiting: coordinator
    /// timeout; Time::max() otherwise.
    Time deadline_ = Time::max();
    /// Why the join wait is held: "start-up" or "resumed after a stall" (election.start).
    std::string join_reason_ = "start-up";
    /// When the loop last reported a stall. ELECTIONs read at that same instant were queued
    /// while this node was stopped: their elections went on without it (as without a dead
    /// node), so they are ignored rather than answered with a late election of our own.
    Time stalled_at_ = Time::min();
    /// Follower only: when the leader's claim was last heard (adoption, COORDINATOR, LEADER).
    Time leader_heard_{};
    /// Leader only: when the next LEADER beacon is due.
    Time next_beacon_ = Time::max();
    /// candidate: the higher-ranked nodes asked, not yet declared dead. Empty -> we won.
    std::set<NodeId> asked_;
    /// The failure detector's latest word on each peer.
    std::map<NodeId, PeerState> peers_;
};

const char* to_string(Bully::Phase p);

}  // namespace bus
