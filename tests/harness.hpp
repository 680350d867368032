// Integration-test harness: a local cluster of real ftbus processes on 127.0.0.1 with
// free ports, in a temporary directory. Every process it starts is recorded by pid and
// killed (SIGKILL) and reaped when the harness goes away, whatever the test did. Waits are
// for conditions with generous deadlines, never fixed sleeps.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <sys/types.h>
#include <vector>

#include "bus/trace.hpp"

namespace test {

/// A base port P such that P .. P + span - 1 are all free on 127.0.0.1 now, below the
/// ephemeral range.
int free_port_base(int span);

/// Runs a shell command; `out` (cleared first) receives its stdout. \return its exit status.
int run_command(const std::string& cmd, std::string* out = nullptr);

class Cluster {
public:
    /// Writes a cluster file for `n` nodes (scripts/gen-cluster) with `gen_args` appended.
    Cluster(int n, const std::string& gen_args = "");
    ~Cluster();
    Cluster(const Cluster&) = delete;
    Cluster& operator=(const Cluster&) = delete;

    /// Starts `program` (from build/bin) for node `id` with --cluster, --id and --trace
    /// set, plus `args`. stdout/stderr go to files in the directory.
    pid_t start(int id, const std::vector<std::string>& args = {},
                const std::string& program = "ftbus-elect");
    /// Starts any program from build/bin under `key` (a negative number, not a node id),
    /// stdout to `out_path`; cleaned up like the nodes.
    pid_t spawn(int key, const std::string& program, const std::vector<std::string>& args,
                const std::string& out_path);
    /// Sends `sig` to node `id`'s recorded process and records a `fault` event.
    void signal(int id, int sig, const std::string& action);
    void kill(int id) { signal(id, 9, "kill"); }
    /// SIGTERM, not recorded as a fault: a clean stop, which the node traces as node.stop.
    void terminate(int id);
    /// terminate() each of `ids`, then wait for them. \return true if all exited 0.
    bool stop_all(const std::vector<int>& ids, double seconds = 10);
    bool running(int id);
    /// Waits (up to `seconds`) for node `id` to exit; returns its exit status or -1.
    int wait_exit(int id, double seconds);

    /// Events of node `id`'s trace file (all incarnations), parsed.
    std::vector<bus::Json> events(int id) const;
    /// All trace files, for ftbus-check.
    std::string trace_files() const;
    /// Polls `cond` every 20 ms until true or `seconds` pass.
    static bool wait_for(const std::function<bool()>& cond, double seconds);

    const std::string& dir() const { return dir_; }
    const std::string& cluster_file() const { return cluster_file_; }
    std::string trace_path(int id) const { return dir_ + "/node" + std::to_string(id) + ".jsonl"; }
    int base_port() const { return base_; }

private:
    std::string dir_;
    std::string cluster_file_;
    int base_ = 0;
    std::map<int, pid_t> pids_;
    std::map<int, int> exit_status_;  ///< of processes running() found exited (reaped: never signalled again)
    bus::RealClock clock_;
    std::unique_ptr<bus::Tracer> ctl_;  // writes `fault` events to ctl.jsonl
};

/// The leader a node follows now, from its trace (docs/TRACE.md, "A node's leader"): 0 while
/// joining or electing; only the latest incarnation counts.
int current_leader(const std::vector<bus::Json>& evs);
/// True if every node in `ids` follows `leader` now (leader 0: any one, the same for all).
bool all_follow(const Cluster& c, const std::vector<int>& ids, int leader);
/// ftbus-check over the cluster's traces: "EXIT: OUTPUT".
std::string check_traces(const Cluster& c, const std::string& args = "");

/// Count of events in `evs` with ev == name and (if given) field == value.
size_t count_events(const std::vector<bus::Json>& evs, const std::string& name,
                    const std::string& field = "", const bus::Json& value = nullptr);

}  // namespace test
