// The cluster file: one TOML file listing the nodes and the cluster-wide tunables, read
// with toml++. Raft's voters are exactly the nodes listed here. Flags override tunables.
//
//   [cluster]
//   heartbeat = "100ms"          # tunables, all optional (defaults in Tunables below)
//   suspect_after = "300ms"
//   dead_after = "600ms"
//   answer_timeout = "200ms"     # elections (bully)
//   coordinator_timeout = "1s"
//   join_wait = "300ms"
//   remove_after = "10s"         # membership: forget a dead node that joined at runtime
//   preempt = true
//   election_timeout = "150ms-300ms"   # Raft
//   raft_heartbeat = "50ms"
//   pre_vote = true
//   check_quorum = true
//
//   [[node]]
//   id = 1                       # small positive integer, unique
//   name = "KMC"                 # optional label
//   priority = 10                # optional, default 0; bully: priority then id decides
//   host = "127.0.0.1"           # optional, default 127.0.0.1
//   pub = 7101                   # PUB port (heartbeats, announcements, trace)
//   peer = 7102                  # peer ROUTER port (election / Raft traffic)
//   client = 7103                # client ROUTER port (lock RPCs), optional
//   control = 7104               # control endpoint (ftbus-ctl), optional
//
// Loading validates everything up front and throws ConfigError with one readable message.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "bus/duration.hpp"
#include "bus/protocol.hpp"

namespace bus {

struct ConfigError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct NodeSpec {
    NodeId id = 0;
    std::string name;   ///< label; empty if none
    int64_t priority = 0;
    std::string host = "127.0.0.1";
    uint16_t pub = 0;
    uint16_t peer = 0;
    uint16_t client = 0;   ///< 0 = none
    uint16_t control = 0;  ///< 0 = none

    std::string endpoint(uint16_t port) const {
        return "tcp://" + host + ":" + std::to_string(port);
    }
    /// "3" or "3 (KMC)", for messages and narratives.
    std::string label() const;
};

/// Failure-detection tunables. Defaults are for loopback and LAN, where a round trip is
/// well under a millisecond and the real risk is scheduling delay on a busy machine
/// (docs/ARCHITECTURE.md, "Failure detection defaults").
struct Tunables {
    /// Heartbeat period. Too small: CPU and trace volume grow with N^2 for nothing. Too
    /// large: detection can be no faster than a few periods.
    Duration heartbeat = std::chrono::milliseconds(100);
    /// Silence after which a peer is suspected. Too small: a GC-free process is still
    /// suspected whenever the scheduler delays it by a few heartbeats.
    Duration suspect_after = std::chrono::milliseconds(300);
    /// Silence after which a peer is declared dead. Too small: a brief stall convicts a
    /// live peer; too large: failover waits on it.
    Duration dead_after = std::chrono::milliseconds(600);
    /// Extra silence allowed for a peer never heard from since we started, so that nodes
    /// started one after another by a script are not declared dead before they are up.
    Duration startup_grace = std::chrono::seconds(2);
    /// "fixed" (suspect_after / dead_after) or "phi" (phi accrual, bus/phi_detector.hpp).
    std::string detector = "fixed";
    /// phi: suspect at this phi, dead at twice it. 8 is Akka's LAN default.
    double phi_threshold = 8.0;
    /// A node that joined at runtime (not in the cluster file) and stays dead this long is
    /// removed from the membership (peer.leave, reason "dead"). Too small: a node paused by
    /// its operator for a minute is forgotten and must re-join (it does so by itself); too
    /// large: dead joiners linger in status and in every election's list of peers.
    Duration remove_after = std::chrono::seconds(10);

    // ---- Leader election (bully) -------------------------------------------------------
    /// How long a candidate waits for an ANSWER from a higher-ranked node before it declares
    /// itself leader. Too small: a live but busy higher node is bullied and then preempts,
    /// two leader changes for one. Too large: failover waits on it whenever a higher node
    /// is dead but not yet declared dead. Loopback answers in well under 1 ms.
    Duration answer_timeout = std::chrono::milliseconds(200);
    /// After an ANSWER, how long to wait for that node's COORDINATOR before holding a new
    /// election. Too small: a slow winner is interrupted; too large: if the answerer died
    /// mid-election the cluster stays leaderless this long (plus its detection).
    Duration coordinator_timeout = std::chrono::seconds(1);
    /// At start-up (and restart), how long a node listens for a leader's beacon before it
    /// holds its own election. Must exceed a heartbeat period plus connection set-up, or a
    /// node joining a led cluster holds a needless election.
    Duration join_wait = std::chrono::milliseconds(300);
    /// Bully: does a higher-ranked node that (re)joins, or hears a lower-ranked leader,
    /// take over? true = classic bully (the best live node always ends up leading); false =
    /// a sitting leader keeps the job until it fails (fewer leader changes).
    bool preempt = true;

    // ---- Raft (docs/RAFT.md) -----------------------------------------------------------
    /// Randomized election timeout range (Raft §5.2), cluster.election_timeout =
    /// "150ms-300ms". Too small: a busy machine or a lost heartbeat starts needless
    /// elections; too large: failover waits on it (the Raft paper's Figure 16).
    Duration election_timeout_min = std::chrono::milliseconds(150);
    Duration election_timeout_max = std::chrono::milliseconds(300);
    /// The leader's AppendEntries period; 0 = a third of election_timeout_min, so a
    /// follower hears about three before its shortest timeout.
    Duration raft_heartbeat = Duration(0);
    /// PreVote (dissertation §9.6): a node returning from a partition cannot depose a
    /// healthy leader. Off only to demonstrate the disruption it prevents.
    bool pre_vote = true;
    /// CheckQuorum: a leader that has not heard from a majority within election_timeout_max
    /// steps down; followers that hear a leader ignore higher-term vote requests (§4.2.3).
    bool check_quorum = true;
    /// Raft takes a snapshot of its state machine and compacts its log once this many
    /// entries were applied since the last one (§7); 0 = never. Too small: snapshots cost
    /// more than they save; too large: the log (on disk and in memory) and a restart's
    /// replay grow with it.
    uint64_t snapshot_entries = 10000;
};

struct ClusterConfig {
    std::vector<NodeSpec> nodes;  ///< sorted by id
    Tunables tunables;
    std::string path;  ///< where it was read from

    const NodeSpec* find(NodeId id) const;
};

/// The leader heartbeat Raft uses: raft_heartbeat, or a third of the minimum timeout.
Duration effective_raft_heartbeat(const Tunables& t);
/// Raft's timing must make sense: 0 < heartbeat < election_timeout_min <= max (a heartbeat
/// of 0 would spin the loop; one as long as the timeout deposes healthy leaders).
/// \throws ConfigError naming `origin`.
void check_raft_timing(const Tunables& t, const std::string& origin);

/// Reads and validates a cluster file. \throws ConfigError naming the file and the problem.
ClusterConfig load_cluster(const std::string& path);
/// The same, from TOML text (tests). `origin` names it in errors.
ClusterConfig parse_cluster(std::string_view toml_text, const std::string& origin);

/// A host name, an IPv4 address or a bracketed IPv6 one, as a tcp:// endpoint takes it to
/// connect: letters, digits, '.', '-', '_' (or, in brackets, hex digits, ':' and '.'). The
/// check a server's endpoint passes (ftbus-time), so that a bad one is refused with its name
/// rather than failing deep in ZeroMQ as "Invalid argument".
bool plausible_host(std::string_view host);
/// A dotted IPv4 address: what a node's host must be (a cluster file's, a joining member's).
/// Each node binds its own host and the others connect to it; ZeroMQ binds addresses, not
/// host names (and IPv6 is not switched on), so `localhost` would pass every check and then
/// fail at the bind.
bool node_host_ok(std::string_view host);
/// The one message for a host node_host_ok refuses.
std::string node_host_rule();

}  // namespace bus
