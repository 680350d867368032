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
#include "bus/trace_summary.hpp"
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
    app.add_option("--count", count, "exit after N printed events (0: no limit)")
        ->check(CLI::Validator(
            [](std::string& s) -> std::string {
                bool digits = !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
                return digits ? "" : "'" + s + "' is not a count (0 or more)";
            },
            "N"));
    std::string format = "json";
    app.add_option("--format", format,
                   "json: the trace lines as they come; shiviz: a ShiViz log (two lines per event, clocks "
                   "recomputed per node@inc from send/receive pairs; parse it with ShiViz's default regex)")
        ->check(CLI::IsMember({"json", "shiviz"}))
        ->capture_default_str();
    if (auto code = bus::parse_flags(app, argc, argv)) return *code;

    return bus::run_program("ftbus-trace", [&]() -> int {
        bus::ClusterConfig cfg = bus::load_cluster_with_flags(f);
        std::set<std::string> wanted(evs.begin(), evs.end());
        auto& stop = bus::install_stop_signals();
        bus::RealClock clock;
        bus::Time until = duration.empty() ? bus::Time::max() : clock.now() + *bus::parse_duration(duration);

        zmq::context_t ctx(1);
        zmq::socket_t sub = bus::make_socket(ctx, zmq::socket_type::sub);
        sub.set(zmq::sockopt::subscribe, "trace");  // a prefix: LiveTrace checks the topic exactly
        for (const bus::NodeSpec& n : cfg.nodes) {
            std::string endpoint = n.endpoint(n.pub);
            try {
                sub.connect(endpoint);
            } catch (const zmq::error_t& e) {
                throw bus::ConfigError("cannot connect to " + endpoint + ": " + e.what());
            }
        }

        bus::LiveTrace live;
        uint64_t printed = 0, bad_frames = 0;
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
                    ++bad_frames;
                    continue;
                }
                bus::LiveTrace::Line l = live.add(parts[0].to_string_view(), parts[1].to_string_view());
                if (l.kind == bus::LiveTrace::Line::Kind::malformed)
                    std::cerr << "ftbus-trace: dropped a malformed trace line\n";
                if (l.kind != bus::LiveTrace::Line::Kind::event) continue;
                if (l.gap)
                    std::cerr << "ftbus-trace: gap: node " << l.gap->emitter << " inc " << l.gap->inc << ": seq "
                              << l.gap->first << ".." << l.gap->last << " not received\n";
                const bus::Json& ev = l.event;
                std::string name = ev.contains("ev") && ev["ev"].is_string() ? ev["ev"].get<std::string>() : "";
                if (!wanted.empty() && !wanted.count(name)) continue;
                if (format == "shiviz") {
                    shiviz.add(ev);
                } else {
                    l.text += '\n';
                    write_out(l.text);
                }
                if (reader_gone) return bus::kExitOk;
                ++printed;
            }
        }
        if (format == "shiviz") {
            shiviz.finish();
            if (shiviz.unmatched())
                std::cerr << "ftbus-trace: " << shiviz.unmatched() << " receives without their send (exported as local events)\n";
        }
        std::cerr << "ftbus-trace: " << printed << " events printed from " << live.streams()
                  << " emitter incarnations; " << live.gaps() << " gaps (" << live.lost() << " events not received)";
        if (uint64_t bad = bad_frames + live.malformed()) std::cerr << "; " << bad << " malformed";
        std::cerr << "\n";
        return bus::kExitOk;
    });
}
