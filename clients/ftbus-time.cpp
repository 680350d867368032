// ftbus-time: a Cristian time client. Each query sends --samples TIME_REQUESTs to a time
// server (ftbus-timed) and keeps the exchange with the smallest round trip (Cristian's rule);
// it reports the server's clock minus this one, with an error bound ±(rtt/2 − min one-way
// delay). With --adjust it steps this process's virtual clock (--skew, --drift-ppm) by the
// estimate. A server that does not answer never wedges it: each request waits --timeout,
// then the REQ socket is closed and reopened and the request retried, --retries times
// (the ZeroMQ guide's Lazy Pirate); then one clear message and exit 1.
#include <iostream>
#include <unistd.h>

#include "bus/cristian.hpp"
#include "bus/flags.hpp"
#include "bus/trace.hpp"
#include "bus/transport.hpp"

namespace {

struct Options {
    std::string endpoint;
    int samples = 8;
    int count = 1;
    int retries = 3;
    bus::Duration timeout = std::chrono::milliseconds(500);
    bus::Duration interval = std::chrono::milliseconds(0);
    bus::Duration min_delay = bus::Duration(0);
    bool adjust = false;
    bool json = false;
};

/// One request/reply with Lazy Pirate retries. \return the sample, or nullopt after retries.
class Pirate {
public:
    Pirate(zmq::context_t& ctx, std::string endpoint, std::string id) : ctx_(ctx), endpoint_(std::move(endpoint)), id_(std::move(id)) {
        open();
    }
    std::optional<bus::TimeSample> ask(bus::VirtualClock& clock, const Options& o, bus::Tracer& tracer) {
        for (int attempt = 0; attempt <= o.retries; ++attempt) {
            if (attempt > 0) {
                tracer.emit("rpc.retry", {{"op", "time"}, {"attempt", attempt}, {"endpoint", endpoint_}});
                open();  // a REQ that got no reply is stuck: close it, open a new one
            }
            bus::Envelope env;
            env.from = id_;
            env.inc = inc_;
            env.seq = ++seq_;
            env.body = bus::TimeRequest{};
            std::string frame = bus::encode(env);
            int64_t t0 = clock.wall_us();
            if (!sock_.send(zmq::buffer(frame), zmq::send_flags::dontwait)) continue;
            std::vector<zmq::pollitem_t> items = {{sock_.handle(), 0, ZMQ_POLLIN, 0}};
            try {
                zmq::poll(items, std::chrono::duration_cast<std::chrono::milliseconds>(o.timeout));
            } catch (const zmq::error_t& e) {
                if (e.num() != EINTR) throw;
            }
            if (!(items[0].revents & ZMQ_POLLIN)) continue;
            zmq::message_t reply;
            if (!sock_.recv(reply, zmq::recv_flags::dontwait)) continue;
            int64_t t3 = clock.wall_us();
            bus::DecodeResult d = bus::decode(reply.to_string_view());
            auto* r = d.env ? std::get_if<bus::TimeResponse>(&d.env->body) : nullptr;
            if (!r) {
                tracer.emit("msg.drop", {{"from", endpoint_}, {"reason", d.env ? "not a TIME_RESPONSE" : d.error}});
                continue;
            }
            return bus::TimeSample{t0, r->t1, r->t2, t3};
        }
        return std::nullopt;
    }

private:
    void open() {
        sock_ = bus::make_socket(ctx_, zmq::socket_type::req);
        try {
            sock_.connect(endpoint_);
        } catch (const zmq::error_t& e) {
            throw bus::ConfigError("cannot connect to " + endpoint_ + ": " + e.what());
        }
    }
    zmq::context_t& ctx_;
    std::string endpoint_, id_;
    zmq::socket_t sock_;
    uint64_t inc_ = static_cast<uint64_t>(::getpid());
    uint64_t seq_ = 0;
};

std::string fmt_ms(int64_t us, bool sign) {
    char b[64];
    std::snprintf(b, sizeof b, sign ? "%+.3f ms" : "%.3f ms", static_cast<double>(us) / 1000.0);
    return b;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"ftbus-time: Cristian's algorithm against an ftbus-timed server"};
    bus::CommonFlags f;
    bus::ClockFlags cf;
    Options o;
    bus::NodeId server = 0;
    std::string timeout, interval, min_delay, name;
    bus::add_cluster_flag(app, f, /*required=*/false);
    app.add_option("--server", server, "the time server's node id in the cluster file (its client port)");
    app.add_option("--endpoint", o.endpoint, "or the server's endpoint, e.g. tcp://127.0.0.1:7103");
    app.add_option("--samples", o.samples, "exchanges per query; the smallest round trip wins")
        ->check(CLI::Range(1, 10000))
        ->capture_default_str();
    app.add_option("--count", o.count, "queries to make")->check(CLI::Range(1, 10000000))->capture_default_str();
    app.add_option("--interval", interval, "pause between queries (default none)")->check(bus::duration_check());
    app.add_option("--timeout", timeout, "wait for each reply (default 500ms)")->check(bus::duration_check());
    app.add_option("--retries", o.retries, "reopen and retry a request this many times (Lazy Pirate)")
        ->check(CLI::Range(0, 100))
        ->capture_default_str();
    app.add_option("--min-delay", min_delay, "a known minimum one-way delay: tightens the bound (default 0)")
        ->check(bus::duration_check());
    app.add_flag("--adjust", o.adjust, "step this process's virtual clock by each estimate");
    app.add_flag("--json", o.json, "one JSON object per query on stdout");
    app.add_option("--name", name, "client id in messages and the trace (default time-PID)");
    bus::add_trace_flags(app, f);
    bus::add_clock_flags(app, cf);
    if (auto code = bus::parse_flags(app, argc, argv)) return *code;
    if (!timeout.empty()) o.timeout = *bus::parse_duration(timeout);
    if (!interval.empty()) o.interval = *bus::parse_duration(interval);
    if (!min_delay.empty()) o.min_delay = *bus::parse_duration(min_delay);
    if (name.empty()) name = "time-" + std::to_string(::getpid());

    return bus::run_program("ftbus-time", [&]() -> int {
        const bool endpoint_given = !o.endpoint.empty();
        if (!endpoint_given) {
            if (f.cluster.empty() || server == 0) throw bus::ConfigError("give --cluster FILE --server ID, or --endpoint");
            bus::ClusterConfig cfg = bus::load_cluster(f.cluster);
            const bus::NodeSpec* s = cfg.find(server);
            if (!s) throw bus::ConfigError(f.cluster + ": no node with id " + std::to_string(server));
            if (s->client == 0) throw bus::ConfigError(f.cluster + ": node " + s->label() + " has no client port");
            o.endpoint = s->endpoint(s->client);
        }
        if (std::string why = bus::endpoint_problem(o.endpoint); !why.empty())
            throw bus::ConfigError((endpoint_given ? "--endpoint " : "endpoint ") + o.endpoint + ": " + why);
        bus::RealClock real;
        bus::VirtualClock clock(real, cf.skew(), cf.drift_ppm);
        bus::Tracer tracer(real, bus::Json(name), static_cast<uint64_t>(real.wall_us()), f.level());
        tracer.open(f.trace);
        tracer.emit("node.start", {{"role", "time"}, {"algo", "cristian"}, {"pid", static_cast<int64_t>(::getpid())}});
        tracer.emit("clock.offset", {{"offset_us", clock.offset_us()}, {"rate_ppm", clock.rate_ppm()}});
        zmq::context_t ctx(1);
        Pirate pirate(ctx, o.endpoint, name);
        for (int q = 0; q < o.count; ++q) {
            bus::CristianEstimator est(o.min_delay);
            for (int i = 0; i < o.samples; ++i) {
                auto sample = pirate.ask(clock, o, tracer);
                if (!sample) {
                    std::string why = "no answer from " + o.endpoint + " after " + std::to_string(o.retries + 1) +
                                      (o.retries == 0 ? " try of " : " tries of ") + bus::format_duration(o.timeout) +
                                      " each";
                    std::cerr << "ftbus-time: " << why << "\n";
                    tracer.emit("node.stop", {{"reason", "failure: " + why}});
                    return bus::kExitFailure;
                }
                est.add(*sample);
            }
            if (!est.best()) {  // every round trip came out negative: a clock was stepped meanwhile
                std::string why = "no usable sample from " + o.endpoint + " (every round trip came out negative)";
                std::cerr << "ftbus-time: " << why << "\n";
                tracer.emit("node.stop", {{"reason", "failure: " + why}});
                return bus::kExitFailure;
            }
            bus::TimeEstimate e = *est.best();
            tracer.emit("clock.sample", {{"peer", o.endpoint}, {"rtt_us", e.rtt_us}, {"offset_us", e.offset_us},
                                         {"bound_us", e.bound_us}, {"samples", e.samples}});
            if (o.adjust) {
                clock.step(bus::Duration(e.offset_us));
                tracer.emit("clock.adjust", {{"delta_us", e.offset_us}, {"rate_ppm", 0.0}, {"mode", "step"}, {"from", o.endpoint}});
                tracer.emit("clock.offset", {{"offset_us", clock.offset_us()}, {"rate_ppm", clock.rate_ppm()}});
            }
            if (o.json) {
                bus::Json j = {{"offset_us", e.offset_us}, {"bound_us", e.bound_us}, {"rtt_us", e.rtt_us},
                               {"samples", e.samples}, {"server", o.endpoint}, {"t", real.wall_us()},
                               {"adjusted", o.adjust}};
                std::cout << j.dump() << std::endl;
            } else {
                std::cout << "offset " << fmt_ms(e.offset_us, true) << " ± " << fmt_ms(e.bound_us, false)
                          << "  (server minus this clock; rtt " << fmt_ms(e.rtt_us, false) << ", best of " << e.samples
                          << " samples)" << (o.adjust ? "; clock stepped by it" : "") << std::endl;
            }
            if (o.interval.count() > 0 && q + 1 < o.count) ::usleep(static_cast<useconds_t>(o.interval.count()));
        }
        tracer.emit("node.stop", {{"reason", "stopped"}});  // every query made (docs/TRACE.md)
        return bus::kExitOk;
    });
}
