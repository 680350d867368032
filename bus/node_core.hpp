// NodeCore: everything a cluster node does that is not I/O — the heartbeat schedule, the
// failure detector, the membership and the election algorithm — as one pure state machine.
// NodeHost wraps it in sockets and a real clock; SimNetwork (the simulator) drives many of
// them in memory. The same code therefore runs in tests, in simulations and in real processes.
//
// Two-stage detection (Zyre's evasive -> ping): a suspected peer is probed directly with
// PING over DEALER every heartbeat period; its PONG, like any message, brings it back to
// alive; if nothing comes, the detector declares it dead. PING and PONG stay here: the
// algorithm never sees them.
//
// Heartbeat ACKs (seed 002): a node acknowledges its leader's heartbeats (HEARTBEAT_ACK over
// DEALER), so a leader knows which followers hear it; a follower the detector thinks alive
// but that has not acknowledged for dead_after is traced as follower.deaf (a one-way
// partition: it talks, it does not hear), and follower.hears when its acks resume.
//
// Membership (seeds 000, 002; docs/ARCHITECTURE.md "Membership"): the cluster file's nodes
// are static members — never forgotten, watched for their return. Other nodes join at
// runtime: one started with a join endpoint sends JOIN there; the member it reaches admits
// it, answers WELCOME with every member it knows, and tells the others (MEMBER). The
// joiner's algorithm starts once it is welcomed. LEAVE removes a node at once. A joined
// node dead for remove_after is forgotten. A joined node re-sends JOIN to a member that
// restarted or came back, to all after its own stall, and to one member after another
// every second (anti-entropy: the WELCOMEs tell it of nodes that joined concurrently
// through someone else). All of it is traced: peer.join, peer.leave, node.join, node.leave.
//
// In: decoded messages from accepted senders (accepts()), ticks, stall notices, control
// requests (status, set, leave).
// Out: Actions (heartbeats to publish, the algorithm's messages, the members the transport
// must connect to or drop, and trace events).
// What it leaves out: decoding, sender checks, envelope stamping and msg.* tracing (the
// host's job, since they depend on the transport).
// Not thread-safe; owned by one loop.
#pragma once

#include <map>
#include <memory>
#include <set>

#include "bus/algorithm.hpp"
#include "bus/cluster.hpp"
#include "bus/failure_detector.hpp"

namespace bus {

/// The membership-message form of a cluster-file node.
MemberInfo member_info(const NodeSpec& n, bool is_static);
/// And back: what the transport connects to.
NodeSpec node_spec(const MemberInfo& m);

class NodeCore {
public:
    /// Watches every other node of `cfg` (its static members) from `now`. `algo` may be null
    /// (heartbeats and detection only). With `join_endpoint` set, this node is not in the
    /// cluster file (cfg.nodes holds only itself): it joins through the member whose peer
    /// ROUTER listens there, and starts its algorithm once welcomed.
    NodeCore(const ClusterConfig& cfg, NodeId self, std::unique_ptr<Algorithm> algo, Time now,
             std::string join_endpoint = {});

    /// Called once, first: lets the algorithm start (e.g. its join wait), or sends JOIN.
    Actions start(Time now);
    /// Whether a message of `type` from node `from` is for us: from a member, a static node
    /// coming back, or a JOIN / WELCOME. The host drops the rest as from a stranger.
    bool accepts(NodeId from, MsgType type) const;
    /// A valid message from an accepted node `from`. Any message counts as life; heartbeats,
    /// probes, acks and membership stop here, everything else goes on to the algorithm.
    Actions on_message(NodeId from, const Envelope& env, Time now);
    /// Runs whatever is due at `now`: heartbeat, probes, detector, clean-up, algorithm.
    Actions on_tick(Time now);
    /// The owning loop was stalled (SIGSTOP, swap): restart the detector's windows at `now`
    /// so that waking up does not convict every peer, and tell the algorithm. Call before
    /// reading the input queued during the stall.
    Actions on_stall(Time now);
    /// A client's request (client ROUTER, routing id `route`): to the algorithm.
    Actions on_client(const std::string& route, const Envelope& env, Time now);
    /// A client frame that could not be read: to the algorithm (which may answer it).
    Actions on_bad_client(const std::string& route, const std::string& why, Time now);
    /// End of a loop round (all input read, timers run): to the algorithm.
    Actions on_round_end(Time now);
    /// The host made the log durable up to `index` (after its fsync): to the algorithm.
    Actions on_log_durable(uint64_t index, Time now);
    /// The earliest time on_tick has something to do.
    Time next_deadline() const;

    // ---- control (ftbus-ctl) ----------------------------------------------------------------
    /// Role, leader, members with their detector state and suspicion, configuration.
    Json status(Time now) const;
    /// Changes a tunable at runtime: heartbeat, suspect_after, dead_after, remove_after (a
    /// duration) or phi_threshold (a number). \return "" when applied (traced as config.set),
    /// else why not (nothing changed).
    std::string set(const std::string& key, const std::string& value, Time now, Actions& a);
    /// Graceful leave: LEAVE to every member. The host stops after sending it.
    Actions leave(Time now);

    /// Set when a member refused our JOIN (the id is taken): the host stops with this reason.
    const std::string& refused() const { return refused_; }
    bool joined() const { return joined_; }
    /// Current members, this node excluded.
    const std::map<NodeId, MemberInfo>& members() const { return members_; }
    const Tunables& tunables() const { return tunables_; }
    Algorithm* algorithm() const { return algo_.get(); }
    const FailureDetector& detector() const { return *detector_; }
    NodeId self() const { return self_; }
    /// Violations of the membership's own invariants and the detector's (empty when fine).
    std::vector<std::string> check_invariants() const;

private:
    void deliver_peer_events(const std::vector<PeerEvent>& evs, Time now, Actions& a);
    void admit(const MemberInfo& m, Time now, const std::string& reason, NodeId by, Actions& a);
    void remove(NodeId id, const std::string& reason, Time now, Actions& a);
    /// \return true if `from` is now a member at the JOIN's address (admitted or known).
    bool on_join(NodeId from, const Join& j, Time now, Actions& a);
    void on_welcome(NodeId from, const Welcome& w, Time now, Actions& a);
    void check_followers(Time now, Actions& a);
    bool leading() const;

    NodeId self_;
    MemberInfo self_info_;
    Tunables tunables_;
    std::unique_ptr<FailureDetector> detector_;
    HeartbeatSchedule heartbeat_;
    std::unique_ptr<Algorithm> algo_;

    // ---- membership
    std::map<NodeId, MemberInfo> members_;         ///< this node excluded
    std::map<NodeId, MemberInfo> static_;          ///< cluster-file nodes known (kept after they leave)
    std::map<NodeId, uint64_t> left_inc_;          ///< incarnation a static node left with
    std::map<NodeId, Time> dead_since_;            ///< members the detector declared dead
    /// Members removed lately (left, or forgotten), until when a WELCOME may not bring them
    /// back: the member answering an anti-entropy JOIN may not have removed them yet.
    std::map<NodeId, Time> tombstones_;
    std::string join_endpoint_;                    ///< "" = a cluster-file node
    bool joined_ = true;                           ///< false until a joiner is welcomed
    Time next_join_ = Time::max();                 ///< joiner: when to send JOIN again
    NodeId sync_cursor_ = 0;                       ///< joiner: the member last asked (round robin)
    std::string refused_;

    // ---- two-stage detection
    /// Suspected peers being probed, and when each is next pinged (every heartbeat period
    /// until it answers — any message does — or is declared dead).
    std::map<NodeId, Time> probing_;
    uint64_t ping_nonce_ = 0;

    // ---- heartbeat acks (as leader)
    bool was_leading_ = false;
    Time leading_since_{};
    std::map<NodeId, Time> acked_;  ///< follower -> when it last acknowledged a heartbeat
    std::set<NodeId> deaf_;         ///< followers traced as follower.deaf
};

/// The trace fields of a peer event (peer.alive / peer.suspect / peer.dead).
TraceEvent peer_trace_event(const PeerEvent& e);

}  // namespace bus
