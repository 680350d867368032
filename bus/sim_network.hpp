// SimNetwork: a deterministic in-memory network that drives N nodes — each a NodeCore, so
// heartbeats, failure detector and algorithm exactly as in a real process — under one fake
// clock, from a seed. It models what ZeroMQ over TCP does to messages: random delay, FIFO
// per channel (a DEALER->ROUTER link, a ROUTER reply path, a PUB->SUB feed), loss, and
// duplication if asked; and it injects the faults the real demos inject: crash (state
// lost), restart (new incarnation), pause/resume (SIGSTOP/SIGCONT: input queues, then the
// node notices its stall), link cuts, partitions, heal (seed 000's recover_network).
//
// Every message goes through the real codec (encode, then strict decode), so the simulator
// exercises the wire format too. With `trace` on, every node traces exactly as a real node
// (same events, seq, Lamport and vector clocks; `t` is simulated wall time), and the
// injected faults appear as `fault` events from emitter "ctl": the output is a trace that
// ftbus-check and the narrators read.
//
// Disks: term and vote are written synchronously; log writes are durable only once an
// fsync covering them completes (they take min_fsync..max_fsync of simulated time, and
// writes during one share the next); sends that are not Outgoing::before_sync wait for it,
// as in NodeHost. A crash keeps the synced log and a random prefix of the rest.
//
// Determinism: one seeded generator drives delays, loss and duplication; each algorithm
// incarnation gets its own generator seeded from (seed, node, inc). Same seed, same run.
// Not thread-safe.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "bus/algorithm.hpp"
#include "bus/cluster.hpp"
#include "bus/node_core.hpp"
#include "bus/outbox.hpp"
#include "bus/trace.hpp"

namespace bus {

struct SimOptions {
    uint64_t seed = 1;
    /// One-way delay of every message, uniform in [min_delay, max_delay].
    Duration min_delay = std::chrono::microseconds(100);
    Duration max_delay = std::chrono::milliseconds(2);
    /// Probability that a message is lost, and that it is delivered twice.
    double drop = 0.0;
    double duplicate = 0.0;
    /// How long a log fsync takes, uniform in [min_fsync, max_fsync]. Writes made while one
    /// runs share the next (group commit); a crash loses what no completed fsync covered
    /// (some prefix of it may survive, as on a real disk).
    Duration min_fsync = std::chrono::microseconds(100);
    Duration max_fsync = std::chrono::microseconds(1500);
    /// Keep every node's trace (JSON Lines) in trace_lines().
    bool trace = false;
    TraceLevel trace_level = TraceLevel::state;
};

/// Builds the algorithm of one node incarnation (null: heartbeats and detection only), from
/// what that node's disk holds (what earlier incarnations persisted; nothing else survives).
using AlgorithmFactory = std::function<std::unique_ptr<Algorithm>(NodeId id, uint64_t inc, const HardState& disk,
                                                                  std::mt19937_64& rng)>;

class SimNetwork {
public:
    SimNetwork(ClusterConfig cfg, AlgorithmFactory make, SimOptions opts = {});
    ~SimNetwork();
    SimNetwork(const SimNetwork&) = delete;
    SimNetwork& operator=(const SimNetwork&) = delete;

    // ---- nodes
    /// Starts node `id` now, with a new incarnation (a restart if it ran before; its old
    /// state is gone, messages in flight to the old incarnation are lost).
    void start(NodeId id);
    void start_all();
    /// Starts node `id`, not in the cluster file, as a joiner (--join): it sends JOIN to
    /// node `via` and learns the members from it. Later start(id) restarts it as a joiner.
    void join(NodeId id, NodeId via, int64_t priority = 0);
    /// A request from outside (a client's proposal): `f` runs on node `id`'s algorithm now
    /// and what it asks for is carried out. False if the node is not up.
    bool act(NodeId id, const std::function<void(Algorithm&, Time, Actions&)>& f);
    /// Graceful leave (ftbus-ctl leave): it sends LEAVE to every member, then stops.
    void leave(NodeId id);
    /// The configuration node `id` starts from: the cluster file, or for a joiner the
    /// tunables with only itself (algorithm factories for joiners build from this).
    ClusterConfig config_of(NodeId id) const;
    /// The endpoint of node `id`'s peer ROUTER, as a joiner names it.
    std::string endpoint_of(NodeId id) const;
    /// kill -9: the node's state and its queued input are lost.
    void crash(NodeId id);
    /// The operator's ways back from a damaged replica, on a node that is down: wipe_disk
    /// empties its data directory (term, vote, log and snapshot gone); cut_log keeps only its
    /// first `keep` log entries (a damaged tail cut at start-up).
    void wipe_disk(NodeId id);
    void cut_log(NodeId id, size_t keep);
    /// SIGSTOP: it runs nothing; messages to it queue. resume(): SIGCONT — as the real loop
    /// does, it notices a stall only if the pause overran the poll timeout it was in by more
    /// than suspect_after; then it reads the queued input, then runs its timers.
    void pause(NodeId id);
    void resume(NodeId id);
    bool is_running(NodeId id) const;  ///< started and not crashed (maybe paused)
    bool is_up(NodeId id) const;       ///< running and not paused

    // ---- links (a cut link loses what is sent over it, both at send and at delivery)
    void cut(NodeId a, NodeId b);  ///< both directions
    void cut_one_way(NodeId from, NodeId to);
    void isolate(NodeId id);
    /// Cuts every link between different groups; nodes not named form one more group.
    void partition(const std::vector<std::vector<NodeId>>& groups);
    void heal();
    bool link_open(NodeId from, NodeId to) const { return !cuts_.count({from, to}); }
    void set_drop(double p) { opts_.drop = p; }

    // ---- time
    Time now() const { return clock_.now(); }
    /// Runs the earliest pending event (a delivery, or a node's tick). False if none.
    bool step();
    /// Runs every event up to and including `t`, then sets the clock to `t`.
    void run_until(Time t);
    void run_for(Duration d) { run_until(now() + d); }
    /// Called after every step (tests check invariants there).
    void set_observer(std::function<void()> f) { observer_ = std::move(f); }
    /// Clients (tests model them): what nodes send to clients (Outgoing::Route::client) goes
    /// to the sink at once, with the client's routing id; a client's request reaches a node
    /// with client_request (false if the node is not up: the request is lost).
    using ClientSink = std::function<void(NodeId from, const std::string& route, const Envelope& env)>;
    void set_client_sink(ClientSink f) { client_sink_ = std::move(f); }
    bool client_request(NodeId id, const std::string& route, const Envelope& env);
    /// Called for every message a node sends (before the network decides its fate).
    using SendObserver = std::function<void(NodeId from, const Outgoing& o, const Envelope& env)>;
    void set_send_observer(SendObserver f) { send_observer_ = std::move(f); }
    /// Node `id`'s log as its disk holds it: for a node that is down, what survived (the
    /// synced entries, and maybe a prefix of the rest); for a running one, what it wrote.
    std::vector<LogEntry> disk_log(NodeId id) const {
        auto it = disks_.find(id);
        return it == disks_.end() ? std::vector<LogEntry>{} : it->second.written;
    }
    /// Node `id`'s latest durable snapshot (index 0: none).
    Snapshot disk_snapshot(NodeId id) const {
        auto it = disks_.find(id);
        return it == disks_.end() ? Snapshot{} : it->second.snapshot;
    }
    /// Node `id`'s disk: the durable state it last persisted (survives crashes).
    HardState disk(NodeId id) const {
        auto it = disks_.find(id);
        return it == disks_.end() ? HardState{} : it->second.state;
    }
    /// The last index node `id`'s disk holds for sure (synced log, or its snapshot).
    uint64_t synced_index(NodeId id) const {
        auto it = disks_.find(id);
        if (it == disks_.end()) return 0;
        const Disk& d = it->second;
        return d.synced_len ? d.written[d.synced_len - 1].index : d.snapshot.index;
    }
    /// Log entries written by every node (each counted once per write).
    uint64_t log_writes() const { return log_writes_; }
    /// Log fsyncs completed by every node (group commit shows as fewer than writes).
    uint64_t fsyncs() const { return fsyncs_; }

    // ---- inspection
    const ClusterConfig& config() const { return cfg_; }
    /// Every node: the cluster file's, and the joiners.
    std::vector<NodeId> ids() const;
    /// The running node's algorithm (null if not running).
    Algorithm* algorithm(NodeId id) const;
    template <typename T>
    T* as(NodeId id) const { return dynamic_cast<T*>(algorithm(id)); }
    const NodeCore* core(NodeId id) const;
    uint64_t inc(NodeId id) const;
    /// Nodes that are up and connected to `id` both ways through open links (id included).
    std::vector<NodeId> component(NodeId id) const;
    /// Invariant violations of every running node's detector and algorithm.
    std::vector<std::string> check_invariants() const;
    /// Messages handed to the network since the start (or reset_counts), per type name;
    /// heartbeats included under "HEARTBEAT".
    const std::map<std::string, uint64_t>& sent() const { return sent_; }
    void reset_counts() { sent_.clear(); }
    /// The trace of every node and of the fault injector, in emission order (opts.trace).
    const std::vector<std::string>& trace_lines() const { return lines_; }
    uint64_t steps() const { return steps_; }

private:
    struct Node {
        uint64_t inc = 0;
        bool paused = false;
        Time paused_at{};
        Time deadline_at_pause{};  ///< its next deadline when paused: the poll timeout it was in
        std::unique_ptr<Tracer> tracer;
        std::unique_ptr<Outbox> outbox;
        std::unique_ptr<NodeCore> core;
        struct Held {
            NodeId from;
            std::string frame;
            const char* ch;
        };
        std::deque<Held> held;  ///< queued while paused
        /// Sends waiting for the log fsync that covers write number `seq`.
        std::deque<std::pair<uint64_t, Outgoing>> unsynced_sends;
        bool sync_done_while_paused = false;
    };
    /// What a node's disk holds; survives crashes.
    struct Disk {
        HardState state;
        Snapshot snapshot;
        std::vector<LogEntry> written;  ///< the log as written (synced or not)
        uint64_t synced_len = 0;        ///< entries of `written` known durable
        uint64_t write_seq = 0;         ///< log writes so far
        uint64_t synced_seq = 0;        ///< writes covered by a completed fsync
        bool syncing = false;           ///< an fsync is under way
        uint64_t sync_seq = 0, sync_len = 0;  ///< what it covers
    };
    struct Delivery {
        Time at;
        uint64_t order;  ///< tie-break: first sent, first delivered
        NodeId from;
        NodeId to;
        uint64_t to_inc;
        std::string frame;
        const char* ch;  ///< "req", "rep" or "pub", as traced; null: node `to`'s fsync completes
        bool operator>(const Delivery& o) const { return at != o.at ? at > o.at : order > o.order; }
    };

    void carry_out(NodeId id, Actions&& a);
    /// Starts an fsync of node `id`'s log if it has unsynced writes and none is under way.
    void maybe_sync(NodeId id);
    void complete_sync(NodeId id);
    /// The process is gone (crash, leave, refused join): its state and queued input too.
    void end_process(NodeId id);
    void transmit(NodeId from, const Outgoing& o, const std::string& frame);
    void deliver(NodeId from, NodeId to, const std::string& frame, const char* ch);
    void fault(const std::string& action, NodeId target);
    Node* running(NodeId id);
    const Node* running(NodeId id) const;

    ClusterConfig cfg_;
    AlgorithmFactory make_;
    SimOptions opts_;
    FakeClock clock_;
    std::mt19937_64 rng_;
    std::map<NodeId, Node> nodes_;  ///< started at least once; core null once crashed
    std::map<NodeId, uint64_t> inc_seen_;  ///< last incarnation used per node
    std::set<std::pair<NodeId, NodeId>> cuts_;  ///< (from, to) links that lose everything
    std::priority_queue<Delivery, std::vector<Delivery>, std::greater<>> queue_;
    std::map<std::string, Time> fifo_;  ///< channel -> latest scheduled delivery
    uint64_t order_ = 0;
    uint64_t steps_ = 0;
    Time spin_at_{};      ///< the instant of the last tick, and how many ticks ran at it
    uint64_t spins_ = 0;
    std::map<std::string, uint64_t> sent_;
    std::vector<std::string> lines_;
    std::unique_ptr<Tracer> ctl_;  ///< `fault` events
    std::function<void()> observer_;
    SendObserver send_observer_;
    ClientSink client_sink_;
    std::map<NodeId, Disk> disks_;
    std::mt19937_64 disk_rng_;  ///< fsync durations and what survives a crash
    uint64_t fsyncs_ = 0;
    uint64_t log_writes_ = 0;
    std::map<NodeId, NodeSpec> joiners_;  ///< nodes not in the file, and whom they join through
    std::map<NodeId, NodeId> join_via_;
    uint64_t rejected_ = 0;  ///< messages a node's core did not accept (from strangers)
public:
    /// Messages dropped because the receiver did not accept the sender (not a member).
    uint64_t rejected() const { return rejected_; }
};

}  // namespace bus
