// ftbus-elect: an election node. Heartbeats every peer over PUB/SUB, detects failures,
// and (with --algo) runs a leader election; everything it does goes to the trace.
#include <iostream>

#include "bus/bully.hpp"
#include "bus/flags.hpp"
#include "bus/node_host.hpp"

int main(int argc, char** argv) {
    CLI::App app{"ftbus-elect: heartbeats, failure detection and leader election for one node"};
    bus::CommonFlags f;
    std::string algo = "bully";
    std::string preempt;
    bus::add_cluster_flag(app, f);
    bus::add_id_flag(app, f);
    bus::add_trace_flags(app, f);
    bus::add_detector_flags(app, f);
    app.add_option("--algo", algo, "election algorithm (none = heartbeats and detection only)")
        ->check(CLI::IsMember({"bully", "none"}))
        ->capture_default_str();
    app.add_option("--preempt", preempt,
                   "bully: a better node that comes back takes over (on, classic bully) or not (off); "
                   "overrides cluster.preempt")
        ->check(CLI::IsMember({"on", "off"}));
    if (auto code = bus::parse_flags(app, argc, argv)) return *code;

    try {
        bus::ClusterConfig cfg = bus::load_cluster_with_flags(f);
        if (!preempt.empty()) cfg.tunables.preempt = preempt == "on";
        bus::RealClock clock;
        std::unique_ptr<bus::Algorithm> election;
        if (algo == "bully") election = std::make_unique<bus::Bully>(cfg, f.id);
        bus::NodeHost host(cfg, f.id, clock, {"elect", f.trace, f.level()}, std::move(election));
        auto& stop = bus::install_stop_signals();
        return host.run(stop);
    } catch (const bus::ConfigError& e) {
        std::cerr << "ftbus-elect: " << e.what() << "\n";
        return bus::kExitUsage;
    } catch (const std::exception& e) {
        std::cerr << "ftbus-elect: fatal: " << e.what() << "\n";
        return bus::kExitFailure;
    }
}
