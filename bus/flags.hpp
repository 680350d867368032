// The common command-line flags (the design brief, "Cluster file and flags"), defined once with
// CLI11 so that every program spells and validates them the same way, plus the exit-code
// convention every program follows:
//   0 success · 1 runtime failure (or, for checkers, a violation) · 2 usage or
//   configuration error (bad flag, bad duration, unreadable cluster file, unknown id,
//   port in use).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <string>

#include "bus/cluster.hpp"
#include "bus/duration.hpp"
#include "bus/trace_level.hpp"

namespace bus {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

/// Flags every node and most clients share.
struct CommonFlags {
    std::string cluster;
    NodeId id = 0;
    std::string trace;  ///< "" = none, "-" = stdout, else a file (appended)
    std::string trace_level = "state";
    std::string heartbeat;      ///< override of cluster.heartbeat ("" = keep)
    std::string suspect_after;  ///< override of cluster.suspect_after
    std::string dead_after;     ///< override of cluster.dead_after
    std::string detector;       ///< override of cluster.detector ("fixed" | "phi")
    std::string election_timeout;  ///< override of cluster.election_timeout ("150ms-300ms")
    std::string raft_heartbeat;    ///< override of cluster.raft_heartbeat
    std::optional<uint64_t> snapshot_entries;  ///< override of cluster.snapshot_entries
    std::string data;              ///< --data DIR (durable state)

    TraceLevel level() const { return *parse_trace_level(trace_level); }
};

/// --skew DUR (may be negative: "-1.5s") and --drift-ppm N: a virtual clock's errors.
struct ClockFlags {
    std::string skew_text = "0us";
    double drift_ppm = 0;
    Duration skew() const;
};
void add_clock_flags(CLI::App& app, ClockFlags& f);

/// CLI11 validator: a duration with a unit ("250us", "20ms", "1.5s").
CLI::Validator duration_check();
/// A duration above zero (a period or a timeout that zero would turn into a busy loop).
CLI::Validator positive_duration_check();

void add_cluster_flag(CLI::App& app, CommonFlags& f, bool required = true);
void add_id_flag(CLI::App& app, CommonFlags& f);
void add_trace_flags(CLI::App& app, CommonFlags& f);
void add_detector_flags(CLI::App& app, CommonFlags& f);
/// --election-timeout, --raft-heartbeat, --data.
void add_raft_flags(CLI::App& app, CommonFlags& f);

/// Parses argv. \return nullopt to go on, or the exit code to return now (0 after
/// --help, 2 after a usage error, with the message printed on stderr).
std::optional<int> parse_flags(CLI::App& app, int argc, char** argv);

/// Runs a program's body with the exit-code convention: a ConfigError is one line on stderr
/// and exit 2; any other exception is "fatal: ..." and exit 1. `prog` prefixes the message.
int run_program(const char* prog, const std::function<int()>& body);

/// Loads the cluster file, applies the flag overrides and checks that `f.id` (if nonzero)
/// is listed. \throws ConfigError with one readable message.
ClusterConfig load_cluster_with_flags(const CommonFlags& f);

/// A node that is not in the cluster file and joins at runtime (--join ENDPOINT): its own
/// addresses come from flags.
struct JoinFlags {
    std::string join;  ///< "tcp://host:port": the peer port of any member
    std::string host = "127.0.0.1";
    uint16_t pub = 0, peer = 0, control = 0;
    int64_t priority = 0;
    std::string name;
};
/// --join, --host, --pub, --peer, --control, --priority, --name; and makes --cluster optional
/// when --join is given (call instead of add_cluster_flag).
void add_membership_flags(CLI::App& app, CommonFlags& f, JoinFlags& j);
/// The configuration a node starts from: the cluster file (plus overrides); or, with --join,
/// the file's tunables (or the defaults without --cluster) and only this node, whose id must
/// not be in the file. \throws ConfigError.
ClusterConfig load_node_config(const CommonFlags& f, const JoinFlags& j);

}  // namespace bus
