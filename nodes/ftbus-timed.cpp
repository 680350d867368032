// ftbus-timed: a Cristian time server. A REP socket on the node's `client` port answers
// each TIME_REQUEST with its virtual clock stamped on arrival (t1) and on departure (t2), so
// the client can leave the server's processing time out of the round trip (NTP's four
// timestamps). The clock served is this process's virtual clock (--skew, --drift-ppm).
// Traces clock.offset at start and every second, TIME_* messages at level msgs.
#include <csignal>
#include <iostream>
#include <vector>

#include "bus/flags.hpp"
#include "bus/loop.hpp"
#include "bus/node_host.hpp"
#include "bus/trace.hpp"
#include "bus/transport.hpp"

namespace {

/// One reply for one request: REP must answer every request, even a bad one (an empty frame).
/// A request is read whole, every frame of it: REP refuses to send while a frame of the
/// request is unread (EFSM), so a multipart request must be drained before the reply.
void serve(zmq::socket_t& rep, bus::VirtualClock& vclock, bus::Tracer& tracer, bus::NodeId self, uint64_t inc,
           uint64_t& seq, uint64_t& dropped) {
    std::vector<zmq::message_t> parts;
    if (!zmq::recv_multipart(rep, std::back_inserter(parts), zmq::recv_flags::dontwait)) return;
    int64_t t1 = vclock.wall_us();  // stamped on arrival
    bus::DecodeResult d = bus::decode(parts[0].to_string_view());
    std::string from = d.env ? bus::to_string(d.env->from) : "?";
    std::string reason;
    if (parts.size() != 1)
        reason = std::to_string(parts.size()) + " frames, expected 1";
    else if (!d.env)
        reason = d.error;
    else if (!std::holds_alternative<bus::TimeRequest>(d.env->body))
        reason = "not a TIME_REQUEST";
    if (!reason.empty()) {
        ++dropped;
        tracer.emit("msg.drop", {{"from", from}, {"reason", reason}});
        rep.send(zmq::message_t(), zmq::send_flags::dontwait);
        return;
    }
    tracer.emit("msg.recv", {{"from", from}, {"type", "TIME_REQUEST"}, {"id", bus::message_id(d.env->from, d.env->inc, d.env->seq)}},
                bus::TraceLevel::msgs);
    bus::Envelope env;
    env.from = self;
    env.inc = inc;
    env.seq = ++seq;
    env.body = bus::TimeResponse{t1, 0};
    std::get<bus::TimeResponse>(env.body).t2 = vclock.wall_us();  // stamped on departure
    rep.send(zmq::buffer(bus::encode(env)), zmq::send_flags::dontwait);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"ftbus-timed: a Cristian time server (REP) serving its virtual clock"};
    bus::CommonFlags f;
    bus::ClockFlags cf;
    bus::add_cluster_flag(app, f);
    bus::add_id_flag(app, f);
    bus::add_trace_flags(app, f);
    bus::add_clock_flags(app, cf);
    if (auto code = bus::parse_flags(app, argc, argv)) return *code;
    return bus::run_program("ftbus-timed", [&]() -> int {
        bus::ClusterConfig cfg = bus::load_cluster_with_flags(f);
        const bus::NodeSpec& me = *cfg.find(f.id);
        if (me.client == 0) throw bus::ConfigError(cfg.path + ": node " + me.label() + " has no client port");
        bus::RealClock clock;
        bus::VirtualClock vclock(clock, cf.skew(), cf.drift_ppm);
        uint64_t inc = static_cast<uint64_t>(clock.wall_us());
        bus::Tracer tracer(clock, bus::Json(f.id), inc, f.level(), f.id);
        tracer.open(f.trace);
        zmq::context_t ctx(1);
        zmq::socket_t rep = bus::make_socket(ctx, zmq::socket_type::rep);
        bus::bind_or_throw(rep, me.endpoint(me.client), "the time server port of node " + me.label());
        auto& stop = bus::install_stop_signals();
        tracer.emit("node.start", {{"role", "timed"}, {"algo", "cristian"}, {"pid", static_cast<int64_t>(::getpid())}});
        uint64_t seq = 0, dropped = 0, served = 0;
        bus::Time next_offset = clock.now();
        std::vector<zmq::pollitem_t> items = {{rep.handle(), 0, ZMQ_POLLIN, 0}};
        try {
            while (!stop) {
                bus::Time now = clock.now();
                if (now >= next_offset) {
                    tracer.emit("clock.offset", {{"offset_us", vclock.offset_us()}, {"rate_ppm", vclock.rate_ppm()}});
                    next_offset = now + std::chrono::seconds(1);
                }
                try {
                    zmq::poll(items, std::chrono::milliseconds(bus::poll_timeout_ms(next_offset, now)));
                } catch (const zmq::error_t& e) {
                    if (e.num() != EINTR) throw;
                }
                if (items[0].revents & ZMQ_POLLIN) {
                    uint64_t before = seq;
                    serve(rep, vclock, tracer, f.id, inc, seq, dropped);
                    served += seq - before;
                }
            }
        } catch (const std::exception& e) {
            tracer.emit("node.stop", {{"reason", std::string("failure: ") + e.what()}});
            throw;
        }
        int sig = bus::stop_signal();
        tracer.emit("node.stop", {{"reason", sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "stopped"},
                                  {"served", served},
                                  {"dropped", dropped}});
        return bus::kExitOk;
    });
}
