#include "bus/flags.hpp"

#include <iostream>

namespace bus {

namespace {

CLI::Validator duration_validator(bool positive) {
    return CLI::Validator(
        [positive](std::string& s) -> std::string {
            auto d = parse_duration(s);
            if (!d) return "'" + s + "' is not a duration with a unit (e.g. 250us, 20ms, 1.5s)";
            if (positive && d->count() <= 0) return "'" + s + "': must be positive";
            return {};
        },
        "DUR");
}

}  // namespace

CLI::Validator duration_check() { return duration_validator(false); }

CLI::Validator positive_duration_check() { return duration_validator(true); }

void add_cluster_flag(CLI::App& app, CommonFlags& f, bool required) {
    auto* o = app.add_option("--cluster", f.cluster, "cluster file (TOML; see scripts/gen-cluster)");
    if (required) o->required();
}

void add_id_flag(CLI::App& app, CommonFlags& f) {
    app.add_option("--id", f.id, "this node's id in the cluster file")
        ->required()
        ->check(CLI::Range(1, 65535));
}

void add_trace_flags(CLI::App& app, CommonFlags& f) {
    app.add_option("--trace", f.trace, "JSON Lines trace: append to FILE, or '-' for stdout");
    app.add_option("--trace-level", f.trace_level,
                   "state (state changes + ordinary messages) | msgs (+ keepalive) | all (+ heartbeats)")
        ->check(CLI::IsMember({"state", "msgs", "all"}))
        ->capture_default_str();
}

void add_detector_flags(CLI::App& app, CommonFlags& f) {
    app.add_option("--heartbeat", f.heartbeat, "heartbeat period (overrides the cluster file)")
        ->check(positive_duration_check());
    app.add_option("--suspect-after", f.suspect_after, "silence before a peer is suspected")
        ->check(positive_duration_check());
    app.add_option("--dead-after", f.dead_after, "silence before a peer is declared dead")
        ->check(positive_duration_check());
    app.add_option("--detector", f.detector, "failure detector: fixed (timeouts) or phi (phi accrual)")
        ->check(CLI::IsMember({"fixed", "phi"}));
}

void add_raft_flags(CLI::App& app, CommonFlags& f) {
    app.add_option("--election-timeout", f.election_timeout,
                   "raft: randomized election timeout, DUR or DUR-DUR (overrides cluster.election_timeout)")
        ->check(CLI::Validator(
            [](std::string& s) -> std::string {
                auto r = parse_duration_range(s);
                if (r && r->lo.count() > 0 && r->hi >= r->lo) return {};
                return "'" + s + "' is not a duration or a range like 150ms-300ms";
            },
            "DUR[-DUR]"));
    app.add_option("--raft-heartbeat", f.raft_heartbeat,
                   "raft: the leader's AppendEntries period (0: a third of the minimum election timeout)")
        ->check(duration_check());
    app.add_option("--snapshot-entries", f.snapshot_entries,
                   "raft: snapshot and compact the log every N applied entries, 0 = never "
                   "(overrides cluster.snapshot_entries)")
        ->check(CLI::Range(uint64_t{0}, uint64_t{1'000'000'000}));
    app.add_option("--data", f.data, "raft: directory for durable state (term, vote, log, snapshot); created if missing");
}

Duration ClockFlags::skew() const {
    bool neg = !skew_text.empty() && skew_text[0] == '-';
    Duration d = *parse_duration(neg ? skew_text.substr(1) : skew_text);
    return neg ? -d : d;
}

void add_clock_flags(CLI::App& app, ClockFlags& f) {
    app.add_option("--skew", f.skew_text, "the virtual clock's start offset from the real clock, e.g. 2s or -1.5s")
        ->check(CLI::Validator(
            [](std::string& s) -> std::string {
                std::string_view v = s;
                if (!v.empty() && v[0] == '-') v.remove_prefix(1);
                if (parse_duration(v)) return {};
                return "'" + s + "' is not a duration with a unit (e.g. 2s, -1.5s)";
            },
            "DUR"))
        ->capture_default_str();
    app.add_option("--drift-ppm", f.drift_ppm, "the virtual clock's rate error, parts per million (e.g. -80)")
        ->check(CLI::Validator(
            [](std::string& s) -> std::string {  // CLI::Range lets NaN through (every comparison is false)
                double v = 0;
                try {
                    size_t used = 0;
                    v = std::stod(s, &used);
                    if (used != s.size()) return "'" + s + "' is not a number";
                } catch (const std::exception&) {
                    return "'" + s + "' is not a number";
                }
                if (!(v >= -100000.0 && v <= 100000.0)) return "'" + s + "' is not a number in [-100000, 100000]";
                return {};
            },
            "PPM"))
        ->capture_default_str();
}

std::optional<int> parse_flags(CLI::App& app, int argc, char** argv) {
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);  // help on stdout, 0
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        // CLI11 checks required flags and subcommands before it complains of arguments it
        // did not recognise: a mistyped flag would be reported as a missing one.
        std::vector<std::string> extra = app.remaining();
        std::string what = e.what();
        if (!extra.empty() && (dynamic_cast<const CLI::RequiredError*>(&e) != nullptr))
            what = "unknown argument '" + extra.front() + "'" + (extra.size() > 1 ? " (and more)" : "");
        std::cerr << app.get_name() << ": " << what << "\n"
                  << "Run with --help for usage.\n";
        return kExitUsage;
    }
    return std::nullopt;
}

int run_program(const char* prog, const std::function<int()>& body) {
    try {
        return body();
    } catch (const ConfigError& e) {
        std::cerr << prog << ": " << e.what() << "\n";
        return kExitUsage;
    } catch (const std::exception& e) {
        std::cerr << prog << ": fatal: " << e.what() << "\n";
        return kExitFailure;
    }
}

namespace {

void apply_overrides(const CommonFlags& f, ClusterConfig& cfg) {
    Tunables& t = cfg.tunables;
    if (!f.heartbeat.empty()) t.heartbeat = *parse_duration(f.heartbeat);
    if (!f.suspect_after.empty()) t.suspect_after = *parse_duration(f.suspect_after);
    if (!f.dead_after.empty()) t.dead_after = *parse_duration(f.dead_after);
    if (!f.detector.empty()) t.detector = f.detector;
    if (!f.election_timeout.empty()) {
        auto r = *parse_duration_range(f.election_timeout);
        t.election_timeout_min = r.lo;
        t.election_timeout_max = r.hi;
    }
    if (!f.raft_heartbeat.empty()) t.raft_heartbeat = *parse_duration(f.raft_heartbeat);
    if (f.snapshot_entries) t.snapshot_entries = *f.snapshot_entries;
    if (t.suspect_after <= t.heartbeat)
        throw ConfigError("the suspect timeout (" + format_duration(t.suspect_after) +
                          ") must be longer than the heartbeat (" + format_duration(t.heartbeat) + ")");
    if (t.dead_after < t.suspect_after)
        throw ConfigError("the dead timeout (" + format_duration(t.dead_after) +
                          ") must not be shorter than the suspect timeout (" +
                          format_duration(t.suspect_after) + ")");
    check_raft_timing(t, "the flags");
}

}  // namespace

ClusterConfig load_cluster_with_flags(const CommonFlags& f) {
    ClusterConfig cfg = load_cluster(f.cluster);
    apply_overrides(f, cfg);
    if (f.id != 0 && !cfg.find(f.id))
        throw ConfigError(f.cluster + ": no node with id " + std::to_string(f.id));
    return cfg;
}

}  // namespace bus

namespace bus {

void add_membership_flags(CLI::App& app, CommonFlags& f, JoinFlags& j) {
    app.add_option("--cluster", f.cluster,
                   "cluster file (TOML; see scripts/gen-cluster); with --join optional, for its tunables");
    app.add_option("--join", j.join,
                   "not in the cluster file: join at runtime through the member whose peer port is "
                   "ENDPOINT (tcp://host:port); needs --pub and --peer");
    app.add_option("--host", j.host, "with --join: this node's host (an IPv4 address)")->capture_default_str();
    app.add_option("--pub", j.pub, "with --join: this node's PUB port")->check(CLI::Range(1, 65535));
    app.add_option("--peer", j.peer, "with --join: this node's peer ROUTER port")->check(CLI::Range(1, 65535));
    app.add_option("--control", j.control, "with --join: this node's control port (ftbus-ctl); 0 = none")
        ->check(CLI::Range(0, 65535));
    app.add_option("--priority", j.priority, "with --join: bully priority (higher wins; then id)");
    app.add_option("--name", j.name, "with --join: a label");
}

ClusterConfig load_node_config(const CommonFlags& f, const JoinFlags& j) {
    if (j.join.empty()) {
        if (f.cluster.empty()) throw ConfigError("--cluster FILE is required (or --join ENDPOINT to join at runtime)");
        return load_cluster_with_flags(f);
    }
    if (j.join.rfind("tcp://", 0) != 0 || j.join.find(':', 6) == std::string::npos)
        throw ConfigError("--join wants a member's peer endpoint such as tcp://127.0.0.1:7102, not '" + j.join + "'");
    if (j.pub == 0 || j.peer == 0) throw ConfigError("--join needs this node's --pub and --peer ports");
    if (j.name.size() > kMaxNameBytes) throw ConfigError("--name is longer than " + std::to_string(kMaxNameBytes) + " bytes");
    if (!node_host_ok(j.host)) throw ConfigError("--host '" + j.host + "' " + node_host_rule());
    ClusterConfig cfg;
    if (!f.cluster.empty()) {
        cfg = load_cluster(f.cluster);
        if (cfg.find(f.id))
            throw ConfigError(f.cluster + " lists node " + std::to_string(f.id) +
                              ": start it from the file, without --join (or pick an id not in the file)");
    }
    apply_overrides(f, cfg);
    NodeSpec me;
    me.id = f.id;
    me.name = j.name;
    me.priority = j.priority;
    me.host = j.host;
    me.pub = j.pub;
    me.peer = j.peer;
    me.control = j.control;
    cfg.nodes = {me};
    return cfg;
}

}  // namespace bus
