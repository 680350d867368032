// ftbus-trace: the live trace collector. Subscribes to the trace topic of every node in a
// cluster file and writes one merged JSON Lines stream to stdout, line by line. Per-emitter
// seq gaps are reported on stderr, never hidden. A live subscriber misses what was emitted
// before it connected: the per-node trace files are the source of truth.
#include <csignal>
#include <iostream>
#include <map>
#include <set>
#include <unistd.h>

#include "bus/flags.hpp"
#include "bus/shiviz.hpp"
#include "bus/node_host.hpp"
#include "bus/trace.hpp"
#include "bus/transport.hpp"

int main(int argc, char** argv) {
    CLI::App app{"ftbus-trace: merged live trace of a cluster on stdout (JSON Lines)"};
    bus::CommonFlags f;
    std::vector<std::string> evs;
    std::string duration;
    size_t count = 0;
    bus::add_cluster_flag(app, f);
    app.add_option("--ev", evs, "only events with this name (repeatable), e.g. --ev leader");
    app.add_option("--duration", duration, "exit after DUR")->check(bus::duration_check());
    app.add_option("--count", count, "exit after N printed events");
    std::string format = "json";
    app.add_option("--format", format,
                   "json: the trace lines as they come; shiviz: a ShiViz log (two lines per event, clocks "
                   "recomputed per node@inc from send/receive pairs; parse it with ShiViz's default regex)")
        ->check(CLI::IsMember({"json", "shiviz"}))
        ->capture_default_str();
    if (auto code = bus::parse_flags(app, argc, argv)) return *code;

    bus::ClusterConfig cfg;
    try {
        cfg = bus::load_cluster_with_flags(f);
    } catch (const bus::ConfigError& e) {
        std::cerr << "ftbus-trace: " << e.what() << "\n";
        return bus::kExitUsage;
    }
    std::set<std::string> wanted(evs.begin(), evs.end());
    auto& stop = bus::install_stop_signals();
    bus::RealClock clock;
    bus::Time until = duration.empty() ? bus::Time::max() : clock.now() + *bus::parse_duration(duration);

    zmq::context_t ctx(1);
    zmq::socket_t sub = bus::make_socket(ctx, zmq::socket_type::sub);
    sub.set(zmq::sockopt::subscribe, "trace");
    for (const bus::NodeSpec& n : cfg.nodes) sub.connect(n.endpoint(n.pub));

    std::map<std::pair<std::string, uint64_t>, uint64_t> last_seq;  // (emitter, inc) -> seq
    uint64_t printed = 0, gaps = 0, lost = 0, bad = 0;
    bool reader_gone = false;
    auto write_out = [&](const std::string& text) {
        if (!reader_gone && ::write(STDOUT_FILENO, text.data(), text.size()) < 0) reader_gone = true;
    };
    // Live ShiViz: a receive waits for its send (another node's line may come later); a
    // send that never comes (PUB/SUB dropped it) releases it after 10000 events.
    bus::ShivizExporter shiviz(write_out);
    std::vector<zmq::pollitem_t> items = {{sub.handle(), 0, ZMQ_POLLIN, 0}};
    while (!stop && clock.now() < until && (count == 0 || printed < count)) {
        try {
            zmq::poll(items, std::chrono::milliseconds(bus::poll_timeout_ms(until, clock.now(), std::chrono::milliseconds(200))));
        } catch (const zmq::error_t& e) {
            if (e.num() != EINTR) throw;
            continue;
        }
        std::vector<zmq::message_t> parts;
        while (!stop && (count == 0 || printed < count)) {
            parts.clear();
            if (!zmq::recv_multipart(sub, std::back_inserter(parts), zmq::recv_flags::dontwait)) break;
            if (parts.size() != 2) {
                ++bad;
                continue;
            }
            std::string line = parts[1].to_string();
            bus::Json ev = bus::Json::parse(line, nullptr, false);
            if (ev.is_discarded() || !ev.is_object() || !ev.contains("seq") || !ev.contains("inc") ||
                !ev["seq"].is_number_unsigned() || !ev["inc"].is_number_unsigned()) {
                ++bad;
                std::cerr << "ftbus-trace: dropped a malformed trace line\n";
                continue;
            }
            auto key = std::make_pair(bus::emitter_of(ev), ev["inc"].get<uint64_t>());
            uint64_t seq = ev["seq"].get<uint64_t>();
            auto it = last_seq.find(key);
            if (it != last_seq.end() && seq > it->second + 1) {
                ++gaps;
                lost += seq - it->second - 1;
                std::cerr << "ftbus-trace: gap: node " << key.first << " inc " << key.second << ": seq "
                          << it->second + 1 << ".." << seq - 1 << " not received\n";
            }
            last_seq[key] = std::max(seq, it == last_seq.end() ? 0 : it->second);
            std::string name = ev.contains("ev") && ev["ev"].is_string() ? ev["ev"].get<std::string>() : "";
            if (!wanted.empty() && !wanted.count(name))
                continue;
            if (format == "shiviz") {
                shiviz.add(ev);
            } else {
                line += '\n';
                write_out(line);
            }
            if (reader_gone) return bus::kExitOk;
            ++printed;
        }
    }
    if (format == "shiviz") {
        shiviz.finish();
        if (shiviz.unmatched()) std::cerr << "ftbus-trace: " << shiviz.unmatched() << " receives without their send (exported as local events)\n";
    }
    std::cerr << "ftbus-trace: " << printed << " events printed from " << last_seq.size()
              << " emitter incarnations; " << gaps << " gaps (" << lost << " events not received)";
    if (bad) std::cerr << "; " << bad << " malformed";
    std::cerr << "\n";
    return bus::kExitOk;
}
