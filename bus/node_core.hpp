// NodeCore: everything a cluster node does that is not I/O — the heartbeat schedule, the
// failure detector and the election algorithm — as one pure state machine. NodeHost wraps it
// in sockets and a real clock; SimNetwork (the simulator) drives many of them in memory. The
// same code therefore runs in tests, in simulations and in real processes.
//
// Two-stage detection (Zyre's evasive -> ping): a suspected peer is probed directly with
// PING over DEALER every heartbeat period; its PONG, like any message, brings it back to
// alive; if nothing comes, the detector declares it dead. PING and PONG stay here: the
// algorithm never sees them.
// In: decoded, sender-checked messages (heartbeats included), ticks, stall notices.
// Out: Actions (heartbeats to publish, the algorithm's messages, and trace events:
// peer.alive / peer.suspect / peer.dead and whatever the algorithm traces).
// What it leaves out: decoding, sender checks, envelope stamping and msg.* tracing (the
// host's job, since they depend on the transport).
// Not thread-safe; owned by one loop.
#pragma once

#include <map>
#include <memory>

#include "bus/algorithm.hpp"
#include "bus/cluster.hpp"
#include "bus/failure_detector.hpp"

namespace bus {

class NodeCore {
public:
    /// Watches every other node of `cfg` from `now`. `algo` may be null (heartbeats and
    /// detection only).
    NodeCore(const ClusterConfig& cfg, NodeId self, std::unique_ptr<Algorithm> algo, Time now);

    /// Called once, first: lets the algorithm start (e.g. its join wait).
    Actions start(Time now);
    /// A valid message from cluster node `from`. Any message counts as life; heartbeats
    /// stop at the detector, everything else goes on to the algorithm.
    Actions on_message(NodeId from, const Envelope& env, Time now);
    /// Runs whatever is due at `now`: heartbeat, detector, algorithm.
    Actions on_tick(Time now);
    /// The owning loop was stalled (SIGSTOP, swap): restart the detector's windows at `now`
    /// so that waking up does not convict every peer, and tell the algorithm. Call before
    /// reading the input queued during the stall.
    Actions on_stall(Time now);
    /// The earliest time on_tick has something to do.
    Time next_deadline() const;

    Algorithm* algorithm() const { return algo_.get(); }
    const FailureDetector& detector() const { return *detector_; }
    NodeId self() const { return self_; }

private:
    void deliver_peer_events(const std::vector<PeerEvent>& evs, Time now, Actions& a);

    NodeId self_;
    Tunables tunables_;
    std::unique_ptr<FailureDetector> detector_;
    HeartbeatSchedule heartbeat_;
    std::unique_ptr<Algorithm> algo_;
    /// Suspected peers being probed, and when each is next pinged (every heartbeat period
    /// until it answers — any message does — or is declared dead).
    std::map<NodeId, Time> probing_;
    uint64_t ping_nonce_ = 0;
};

/// The trace fields of a peer event (peer.alive / peer.suspect / peer.dead).
TraceEvent peer_trace_event(const PeerEvent& e);

}  // namespace bus
