// The ring election (Chang & Roberts 1979; seed 003 Q6) as a pure state machine.
//
// The live members, ordered by id, form a logical ring; each node knows its successor (the
// next live id, wrapping around — seed 003's ring code never wraps and elects the last id
// visited; this one does not copy it). An election is a token that goes around:
//  - A node starting an election sends RING_ELECTION {epoch, initiator = self, ids = [self]}
//    to its successor (epoch: the newest seen + 1).
//  - A node receiving a token of a better initiator adds its own id and passes it on; one of a
//    worse initiator it swallows if it already takes part (its own token will do), else it
//    starts its own token in the same epoch instead (Chang-Roberts: only the best
//    initiator's token completes the circle).
//  - When its token comes back, the initiator holds the ids of every live member: the best
//    (priority, then id: "the highest wins") leads, the next best is the backup. It sends
//    COORDINATOR {epoch, leader, backup} around the ring; each node adopts it and passes it
//    on, until it reaches a node that already knew.
//  - Ring repair: every hop is acknowledged (RING_ACK). A successor that does not acknowledge
//    within answer_timeout is tried once more, then skipped for this election: the token goes
//    to the one after it, so a crash during an election does not stall it.
//  - A participant that sees no COORDINATOR within coordinator_timeout (a lost token) starts a
//    new election.
// Leader announcements and what follows them are the bully's (bus/bully.hpp): the leader
// beacons LEADER on PUB every heartbeat; claims are ordered by epoch; a node joins by
// listening for a beacon first (join_wait) and rejoins after a stall; a follower elects when
// its leader is declared dead, restarts, or stops beaconing; with preempt, a node that
// outranks the leader it hears starts an election.
// Not thread-safe; owned by the node loop.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "bus/algorithm.hpp"
#include "bus/cluster.hpp"

namespace bus {

class Ring final : public Algorithm {
public:
    enum class Phase { joining, electing, leader, follower };

    Ring(const ClusterConfig& cfg, NodeId self);

    const char* name() const override { return "ring"; }
    Actions start(Time now) override;
    Actions on_message(NodeId from, const Envelope& env, Time now) override;
    Actions on_peer(const PeerEvent& ev, Time now) override;
    /// A node that joins takes its place on the ring by id; one that leaves is skipped at
    /// once (an election if it led).
    Actions on_member(const MemberInfo& m, bool joined, Time now) override;
    Actions on_stall(Time now) override;
    Actions on_tick(Time now) override;
    Time next_deadline() const override;
    LeaderView view() const override;
    std::vector<std::string> check_invariants() const override;

    Phase phase() const { return phase_; }
    uint64_t epoch() const { return epoch_; }
    /// The next live node after `after` on the ring, skipping `skipped_` (0 if none).
    NodeId successor(NodeId after) const;
    bool outranks(NodeId a, NodeId b) const;

private:
    struct Hop {  ///< a token or coordinator sent, waiting for its RING_ACK
        Body body;
        NodeId to = 0;
        Time deadline{};
        int tries = 0;
    };

    void handle_token(NodeId from, const RingElection& m, Time now, Actions& a);
    void handle_claim(NodeId from, uint64_t epoch, NodeId leader, NodeId backup, bool forward, Time now, Actions& a);
    void start_election(Time now, const std::string& reason, Actions& a, uint64_t epoch = 0);
    void conclude(const std::vector<NodeId>& ids, Time now, Actions& a);
    void become_leader(NodeId backup, Time now, Actions& a);
    void adopt(NodeId leader, uint64_t epoch, NodeId backup, Time now, Actions& a);
    /// Sends `b` to the next live successor of self, expecting an ack.
    void pass_on(Body b, Time now, Actions& a);
    void send_hop(Hop h, Time now, Actions& a);
    void set_phase(Phase p, uint64_t term, Actions& a);
    void trace_leader(Actions& a) const;

    // ---- configuration
    NodeId self_;
    std::map<NodeId, std::pair<int64_t, NodeId>> ranks_;  ///< (priority, id), self included
    Duration hop_timeout_, coordinator_timeout_, join_wait_, beacon_period_, beacon_timeout_;
    bool preempt_;

    // ---- state
    Phase phase_ = Phase::joining;
    uint64_t epoch_ = 0;            ///< newest epoch seen or started
    uint64_t election_epoch_ = 0;   ///< electing: the epoch of the election we take part in
    bool initiated_ = false;        ///< electing: our own token is out
    NodeId leader_ = 0;
    uint64_t leader_epoch_ = 0;
    NodeId backup_ = 0;
    Time deadline_ = Time::max();   ///< joining: join wait; electing: no coordinator yet
    Time next_beacon_ = Time::max();
    Time leader_heard_{};
    std::string join_reason_ = "start-up";
    std::map<NodeId, PeerState> peers_;
    std::set<NodeId> skipped_;      ///< successors that did not acknowledge, this epoch
    uint64_t skipped_epoch_ = 0;
    std::vector<Hop> hops_;         ///< unacknowledged sends
};

const char* to_string(Ring::Phase p);

}  // namespace bus
