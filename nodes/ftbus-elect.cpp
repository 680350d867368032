// ftbus-elect: an election node. Heartbeats every peer over PUB/SUB, detects failures,
// and runs a leader election (bully, or Raft with durable term and vote in --data DIR);
// everything it does goes to the trace.
#include <iostream>
#include <optional>
#include <random>

#include "bus/bully.hpp"
#include "bus/flags.hpp"
#include "bus/node_host.hpp"
#include "bus/raft.hpp"
#include "bus/raft_disk.hpp"
#include "bus/raft_server.hpp"
#include "bus/ring.hpp"

int main(int argc, char** argv) {
    CLI::App app{"ftbus-elect: heartbeats, failure detection and leader election for one node"};
    bus::CommonFlags f;
    std::string algo = "bully";
    std::string preempt;
    bus::JoinFlags jf;
    bus::add_membership_flags(app, f, jf);
    bus::add_id_flag(app, f);
    bus::add_trace_flags(app, f);
    bus::add_detector_flags(app, f);
    app.add_option("--algo", algo, "election algorithm (none = heartbeats and detection only)")
        ->check(CLI::IsMember({"bully", "ring", "raft", "none"}))
        ->capture_default_str();
    app.add_option("--preempt", preempt,
                   "bully: a better node that comes back takes over (on, classic bully) or not (off); "
                   "overrides cluster.preempt")
        ->check(CLI::IsMember({"on", "off"}));
    bus::add_raft_flags(app, f);
    if (auto code = bus::parse_flags(app, argc, argv)) return *code;

    return bus::run_program("ftbus-elect", [&]() -> int {
        try {
            if (algo == "raft" && !jf.join.empty())
                throw bus::ConfigError("--algo raft cannot --join: Raft's voters are exactly the cluster file's nodes");
            bus::ClusterConfig cfg = bus::load_node_config(f, jf);
            if (!preempt.empty()) cfg.tunables.preempt = preempt == "on";
            bus::RealClock clock;
            bus::NodeHostOptions opts{"elect", f.trace, f.level(), nullptr, jf.join};
            std::unique_ptr<bus::Algorithm> election;
            std::unique_ptr<bus::RaftDisk> disk;
            bus::LogDigest digest;
            if (algo == "bully") {
                election = std::make_unique<bus::Bully>(cfg, f.id);
            } else if (algo == "ring") {
                election = std::make_unique<bus::Ring>(cfg, f.id);
            } else if (algo == "raft") {
                if (f.data.empty()) throw bus::ConfigError("--algo raft needs --data DIR (its term and vote must survive restarts)");
                disk = std::make_unique<bus::RaftDisk>(f.data, bus::RaftLogOptions{.sync = {}, .preallocate = bus::kLogPreallocate});
                // The algorithm takes a seed, never a global generator; the program draws it.
                auto raft = std::make_unique<bus::Raft>(cfg, f.id, disk->storage.state(), std::random_device{}(),
                                                        disk->log.entries(), disk->storage.snapshot());
                raft->set_batching(true);  // a round's proposals share one AppendEntries per follower
                // A replicated log: clients PROPOSE entries on the node's client port
                // (ftbus-bench raft); the state machine digests them.
                election = std::make_unique<bus::RaftServer>(std::move(raft), &digest);
                opts.disk = disk.get();
            }
            std::optional<bus::NodeHost> host;
            try {  // (binds the ports)
                host.emplace(cfg, f.id, clock, std::move(opts), std::move(election));
            } catch (...) {
                if (disk) disk->remove_if_created();
                throw;
            }
            auto& stop = bus::install_stop_signals();
            return host->run(stop);
        } catch (const bus::StorageError& e) {
            std::cerr << "ftbus-elect: storage failure, stopping: " << e.what() << "\n";
            return bus::kExitFailure;
        }
    });
}
