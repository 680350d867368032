// The interface an election algorithm presents to its host (NodeCore). Implementations are
// pure state machines (the design brief): time is an argument, randomness comes from a generator
// given at construction, and every effect is returned as Actions.
#pragma once

#include "bus/actions.hpp"
#include "bus/clock.hpp"
#include "bus/failure_detector.hpp"

namespace bus {

/// Who this node follows now, for status displays, the simulator's invariant checks and
/// benchmarks. leader == 0: none (an election is under way, or never held).
struct LeaderView {
    NodeId leader = 0;
    uint64_t term = 0;  ///< Raft term, or the bully/ring election epoch
    NodeId backup = 0;  ///< next in line, 0 if none or not applicable
    bool operator==(const LeaderView&) const = default;
};

class Algorithm {
public:
    virtual ~Algorithm() = default;
    virtual const char* name() const = 0;
    /// Called once when the node starts.
    virtual Actions start(Time now) = 0;
    /// A decoded, validated message from cluster node `from` (never a heartbeat).
    virtual Actions on_message(NodeId from, const Envelope& env, Time now) = 0;
    /// The failure detector changed its mind about a peer.
    virtual Actions on_peer(const PeerEvent& ev, Time now) = 0;
    /// The membership changed at runtime: `m` joined (joined = true; the detector reports
    /// its state from now on) or left / was forgotten (joined = false: it is gone at once,
    /// without waiting for detection). Algorithms whose electorate is fixed ignore it.
    virtual Actions on_member(const MemberInfo& /*m*/, bool /*joined*/, Time /*now*/) { return {}; }
    /// The node's loop was stalled (SIGSTOP, swap) far beyond its timeouts: the world may
    /// have moved on without it. Called before the input queued during the stall is read.
    virtual Actions on_stall(Time /*now*/) { return {}; }
    /// A decoded request from a client (a string sender), which came in on the client
    /// ROUTER with routing id `route`; replies go back with Actions::reply_client(route, ...).
    virtual Actions on_client(const std::string& /*route*/, const Envelope& /*env*/, Time /*now*/) { return {}; }
    /// A frame from a client that could not be read (`why`: oversized, not msgpack, a bad
    /// field...), already traced as msg.drop: the algorithm may answer it (no request number
    /// to answer to is known).
    virtual Actions on_bad_client(const std::string& /*route*/, const std::string& /*why*/, Time /*now*/) { return {}; }
    /// True if the algorithm answers client requests (the host then binds a client ROUTER).
    virtual bool serves_clients() const { return false; }
    /// The host has read all input of a loop round and run its timers (before the round's
    /// fsync): the place to send what the round's events batched up.
    virtual Actions on_round_end(Time /*now*/) { return {}; }
    /// The host made this node's log durable up to `index` (algorithms with a log: Raft).
    virtual Actions on_log_durable(uint64_t /*index*/, Time /*now*/) { return {}; }
    /// Time passed; called when next_deadline() is reached (maybe later, never earlier).
    virtual Actions on_tick(Time now) = 0;
    /// When the algorithm next wants on_tick; Time::max() for never.
    virtual Time next_deadline() const = 0;
    /// The leader this node currently follows (itself included).
    virtual LeaderView view() const { return {}; }
    /// Algorithm-specific fields for `ftbus-ctl status` (an object; empty: none).
    virtual Json status() const { return Json::object(); }
    /// Violations of the algorithm's own invariants (empty when fine).
    virtual std::vector<std::string> check_invariants() const { return {}; }
};

}  // namespace bus
