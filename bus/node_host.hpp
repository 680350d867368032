// NodeHost: the plumbing every cluster node shares. It owns the transport and the tracer,
// runs the one node loop, and feeds decoded messages, ticks and stalls to a NodeCore (the
// pure part: heartbeats, failure detector, election algorithm or none).
//
// The loop (the design brief, "The one architectural rule"):
//   poll with timeout = next deadline - now (whole ms, rounded up);
//   if the iteration took far longer than asked -> stall: reset detector windows, trace it;
//   read ALL pending input (peer ROUTER first) before running any due timer, so that after
//   a SIGSTOP the queued heartbeats are seen before anyone is declared dead;
//   run due timers: heartbeat, detector, algorithm; carry out actions; trace;
//   if the round wrote to the Raft log: one fdatasync for all of it (group commit: what
//   arrives during an fsync is read in the next round and shares the next one), then the
//   sends that waited for it. A leader's AppendEntries leave at once, before its own fsync
//   (Outgoing::before_sync), and so do answers to clients (they speak of committed
//   entries only); acknowledgements and votes wait.
// Bad frames never change state: they are dropped, counted and traced as msg.drop.
//
// Control: when the node has a control port, ftbus-ctl sends JSON requests to its control
// ROUTER ({"op":"status"}, {"op":"set","key":K,"value":V}, {"op":"leave"}) and gets one JSON
// reply ({"ok":true,...} or {"ok":false,"error":...}); docs/PROTOCOL.md, "Control".
//
// Not thread-safe: one thread runs everything. Stops on SIGINT/SIGTERM (a stop, not a leave:
// to the others it looks like a crash), or after `ftbus-ctl leave` (LEAVE sent to everyone
// first). SIGUSR1/SIGUSR2 cut it off from the network and reconnect it (fault injection).
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "bus/algorithm.hpp"
#include "bus/cluster.hpp"
#include "bus/loop.hpp"
#include "bus/node_core.hpp"
#include "bus/outbox.hpp"
#include "bus/raft_disk.hpp"
#include "bus/trace.hpp"
#include "bus/transport.hpp"

namespace bus {

struct NodeHostOptions {
    std::string role = "elect";  ///< node.start role field
    std::string trace_path;      ///< "" none, "-" stdout, else file
    TraceLevel trace_level = TraceLevel::state;
    /// Raft's data directory: term and vote, log and snapshot; required when the algorithm
    /// persists (Raft). Not owned. A failed write or fsync stops the process.
    RaftDisk* disk = nullptr;
    /// Not in the cluster file: join through the member whose peer ROUTER listens here
    /// ("tcp://host:port"); cfg.nodes then holds only this node.
    std::string join;
};

class NodeHost {
public:
    /// Binds sockets and opens the trace. `algo` may be null (heartbeats and detection only).
    /// \throws ConfigError (port in use, bad trace file).
    NodeHost(const ClusterConfig& cfg, NodeId self, const Clock& clock, NodeHostOptions opts,
             std::unique_ptr<Algorithm> algo = nullptr);
    ~NodeHost();

    /// Runs the loop until `stop` becomes true (signal handlers set it). \return exit code.
    /// A storage failure anywhere (the log, the state file, the state machine's own files)
    /// is traced as node.stop and \throws on: the replica must stop acknowledging.
    int run(const std::atomic<bool>& stop);

    Tracer& tracer() { return tracer_; }
    uint64_t inc() const { return inc_; }

    /// Counters, also reported in node.stop.
    struct Counters {
        uint64_t received = 0, dropped = 0, sent = 0, unsent = 0;
        uint64_t isolated = 0;  ///< frames discarded unread while isolated (fault injection)
    };
    const Counters& counters() const { return counters_; }

private:
    int run_loop(const std::atomic<bool>& stop);
    void handle_incoming(Incoming&& in, Time now);
    void handle_control(const Incoming& in, Time now);
    void apply_membership();
    void drop(const std::string& from, const std::string& reason);
    void carry_out(Actions&& a);
    /// End of a round: one fdatasync for every log write of the round (group commit), the
    /// algorithm told, then the sends that waited for it.
    void sync_log();
    /// Runs a storage operation; a failure is traced (node.stop) and stops the process.
    template <typename F>
    void storage_op(const char* op, F&& f);
    void send(const Outgoing& o);

    const ClusterConfig& cfg_;
    const NodeSpec& self_;
    const Clock& clock_;
    uint64_t inc_;
    Tracer tracer_;
    Transport transport_;
    Outbox outbox_;
    NodeCore core_;
    StallWatch stall_;
    Counters counters_;
    bool isolated_ = false;  ///< fault injection (SIGUSR1/SIGUSR2): nothing in, nothing out
    bool leaving_ = false;   ///< ftbus-ctl leave: announce, then stop
    std::vector<MemberInfo> to_connect_;  ///< membership changes, applied between rounds
    std::vector<NodeId> to_disconnect_;
    std::string role_;
    std::string join_;  ///< endpoint joined through; "" for a cluster-file node
    RaftDisk* disk_;
    std::vector<Outgoing> held_;  ///< sends waiting for this round's log fsync
    uint64_t reported_durable_ = 0;  ///< the durable index last reported to the algorithm
};

/// Installs SIGINT/SIGTERM handlers that set the returned flag (no SA_RESTART, so poll
/// wakes with EINTR), and ignores SIGPIPE. Also the fault-injection signals: SIGUSR1 cuts
/// the node off (every frame it would send or has received is lost, connections stay up:
/// a network partition around it, traced as node.isolated), SIGUSR2 reconnects it.
std::atomic<bool>& install_stop_signals();
/// The signal that set the stop flag (SIGTERM, SIGINT), or 0: for node.stop's reason.
int stop_signal();

}  // namespace bus
