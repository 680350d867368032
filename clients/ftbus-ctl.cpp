// ftbus-ctl: talks to a running node's control endpoint (seed 000's update_configuration,
// Zyre's and etcdctl's member commands):
//   status           role, leader, members with their detector state and suspicion, config
//   set KEY VALUE    heartbeat, suspect_after, dead_after, remove_after, phi_threshold, live
//   leave            the node announces its leave to every member, then stops
// One JSON request over REQ, one JSON reply (docs/PROTOCOL.md, "Control"). A node that does
// not answer within --timeout never wedges it: one clear message and exit 1.
// Exit codes: 0 done; 1 the node refused (the reason is printed) or did not answer; 2 usage.
#include <iomanip>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "bus/flags.hpp"
#include "bus/transport.hpp"

namespace {

using Json = nlohmann::json;

std::string cell(const Json& j) {
    if (j.is_null()) return "-";
    if (j.is_string()) return j.get<std::string>();
    std::ostringstream o;
    if (j.is_number_float()) {
        o << std::fixed << std::setprecision(2) << j.get<double>();
        return o.str();
    }
    return j.dump();
}

void print_status(const Json& s) {
    std::cout << "node " << cell(s["id"]) << " (" << cell(s["algo"]) << ", inc " << cell(s["inc"])
              << (s.value("static", true) ? ", cluster file" : ", joined") << "): " << cell(s["role"]);
    if (s.value("leader", 0) != 0)
        std::cout << ", leader " << cell(s["leader"]) << " term " << cell(s["term"]) << " backup "
                  << (s.value("backup", 0) ? cell(s["backup"]) : "-");
    std::cout << "\n";
    const Json& c = s["config"];
    std::cout << "config: heartbeat " << cell(c["heartbeat"]) << ", suspect_after " << cell(c["suspect_after"])
              << ", dead_after " << cell(c["dead_after"]) << ", remove_after " << cell(c["remove_after"])
              << ", detector " << cell(c["detector"]);
    if (c.value("detector", "") == "phi") std::cout << " (threshold " << cell(c["phi_threshold"]) << ")";
    std::cout << "\n";
    if (s.contains("raft") && s["raft"].is_object()) {
        const Json& r = s["raft"];
        std::cout << "raft log: commit " << cell(r["commit"]) << ", applied " << cell(r["applied"]) << ", durable "
                  << cell(r["durable"]) << ", entries " << cell(r["first"]) << ".." << cell(r["last"])
                  << ", snapshot at " << cell(r["snapshot"]);
        if (r.contains("state") && r["state"].contains("crc32c"))
            std::cout << "; applied " << cell(r["state"]["entries"]) << " entries, " << cell(r["state"]["bytes"])
                      << " bytes, crc32c " << cell(r["state"]["crc32c"]);
        std::cout << "\n";
    }
    bool leader = s.value("role", "") == "leader";
    std::cout << "members: " << s["members"].size() << "\n";
    std::cout << "  " << std::left << std::setw(5) << "id" << std::setw(10) << "name" << std::setw(22) << "peer"
              << std::setw(9) << "state" << std::setw(10) << "silence" << std::setw(10) << "suspicion"
              << (leader ? "acked     " : "") << "origin\n";
    for (const Json& m : s["members"]) {
        std::string addr = cell(m["host"]) + ":" + cell(m["peer"]);
        std::cout << "  " << std::left << std::setw(5) << cell(m["id"]) << std::setw(10)
                  << (m.value("name", "").empty() ? "-" : cell(m["name"])) << std::setw(22) << addr << std::setw(9)
                  << cell(m["state"]) << std::setw(10)
                  << (m.contains("silence_ms") ? cell(m["silence_ms"]) + "ms" : "-") << std::setw(10)
                  << cell(m["suspicion"]);
        if (leader) {
            std::string acked = m["acked_ms"].is_null() ? "never" : cell(m["acked_ms"]) + "ms";
            if (m.value("deaf", false)) acked += " DEAF";
            std::cout << std::setw(10) << acked;
        }
        std::cout << (m.value("static", false) ? "file" : "joined") << "\n";
    }
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"ftbus-ctl: status, live settings and graceful leave of a running node"};
    bus::CommonFlags f;
    std::string endpoint, timeout_text = "2s", key, value;
    bool json = false;
    bus::add_cluster_flag(app, f, false);
    app.add_option("--id", f.id, "the node (with --cluster): its control port is in the file")->check(CLI::Range(1, 65535));
    app.add_option("--endpoint", endpoint, "the node's control endpoint, tcp://host:port (instead of --cluster/--id)");
    app.add_option("--timeout", timeout_text, "how long to wait for the answer")
        ->check(bus::duration_check())
        ->capture_default_str();
    app.add_flag("--json", json, "print the node's JSON answer as it is");
    app.require_subcommand(1);
    auto* status = app.add_subcommand("status", "role, leader, members (state, suspicion, acks), config");
    auto* set = app.add_subcommand("set", "change a setting at runtime (traced as config.set)");
    set->add_option("key", key, "heartbeat | suspect_after | dead_after | remove_after | phi_threshold")->required();
    set->add_option("value", value, "a duration (100ms, 2s) or, for phi_threshold, a number")->required();
    auto* leave = app.add_subcommand("leave", "announce a graceful leave to every member, then stop the node");
    if (auto code = bus::parse_flags(app, argc, argv)) return *code;

    return bus::run_program("ftbus-ctl", [&]() -> int {
        if (endpoint.empty()) {
            if (f.cluster.empty() || f.id == 0) throw bus::ConfigError("give --endpoint tcp://host:port, or --cluster FILE --id N");
            bus::ClusterConfig cfg = bus::load_cluster_with_flags(f);
            const bus::NodeSpec& n = *cfg.find(f.id);
            if (n.control == 0) throw bus::ConfigError(f.cluster + ": node " + n.label() + " has no control port");
            endpoint = n.endpoint(n.control);
        }
        Json req;
        if (status->parsed()) req = {{"op", "status"}};
        if (set->parsed()) req = {{"op", "set"}, {"key", key}, {"value", value}};
        if (leave->parsed()) req = {{"op", "leave"}};

        zmq::context_t ctx(1);
        zmq::socket_t s = bus::make_socket(ctx, zmq::socket_type::req);
        try {
            s.connect(endpoint);
        } catch (const zmq::error_t& e) {
            throw bus::ConfigError("cannot connect to " + endpoint + ": " + e.what());
        }
        std::string body = req.dump();
        s.send(zmq::buffer(body), zmq::send_flags::dontwait);
        auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(*bus::parse_duration(timeout_text));
        zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
        auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                std::cerr << "ftbus-ctl: no answer from " << endpoint << " within " << timeout_text
                          << " (is the node running, with a control port?)\n";
                return bus::kExitFailure;
            }
            try {
                if (zmq::poll(&item, 1, left) > 0) break;
            } catch (const zmq::error_t& e) {
                if (e.num() != EINTR) throw;
            }
        }
        zmq::message_t msg;
        (void)s.recv(msg, zmq::recv_flags::dontwait);
        Json reply = Json::parse(msg.to_string(), nullptr, false);
        if (reply.is_discarded() || !reply.is_object()) {
            std::cerr << "ftbus-ctl: " << endpoint << " answered something that is not a JSON object\n";
            return bus::kExitFailure;
        }
        if (!reply.value("ok", false)) {
            std::cerr << "ftbus-ctl: refused: " << reply.value("error", std::string("(no reason given)")) << "\n";
            return bus::kExitFailure;
        }
        if (json) {
            std::cout << reply.dump() << "\n";
        } else if (status->parsed()) {
            print_status(reply);
        } else if (set->parsed()) {
            std::cout << key << " = " << cell(reply["config"][key]) << "\n";
        } else {
            std::cout << "leaving: LEAVE sent to " << cell(reply["members"]) << " member(s)\n";
        }
        return bus::kExitOk;
    });
}
