#include "bus/node_host.hpp"

#include <csignal>
#include <unistd.h>

namespace bus {

namespace {

std::atomic<bool> g_stop{false};
std::atomic<int> g_signal{0};

extern "C" void on_stop_signal(int sig) {
    g_signal = sig;
    g_stop = true;
}

/// Frames read from one socket before the loop runs its timers. Too small: a burst is
/// spread over many rounds for nothing; too large: a flood can delay heartbeats and
/// detection for as long as it takes to read it.
constexpr int kMaxFramesPerSocketPerRound = 10000;

Json peer_fields(const PeerEvent& e) {
    Json f = {{"peer", e.peer}};
    if (e.state == PeerState::alive) {
        f["peer_inc"] = e.inc;
        if (e.restarted) f["restarted"] = true;
    } else {
        f["silence_ms"] = to_ms(e.silence);
    }
    return f;
}

}  // namespace

std::atomic<bool>& install_stop_signals() {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
    return g_stop;
}

NodeHost::NodeHost(const ClusterConfig& cfg, NodeId self, const Clock& clock, NodeHostOptions opts)
    : cfg_(cfg),
      self_(*cfg.find(self)),
      clock_(clock),
      inc_(static_cast<uint64_t>(clock.wall_us())),
      tracer_(clock, Json(self), inc_, opts.trace_level, self),
      transport_(cfg, self,
                 TransportOptions{std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::max(cfg.tunables.heartbeat, Duration(100'000))),
                                  std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::max(2 * cfg.tunables.dead_after, Duration(1'000'000))),
                                  64}),
      detector_(cfg.tunables),
      heartbeat_(cfg.tunables.heartbeat, clock.now()),
      stall_(cfg.tunables.suspect_after),
      role_(opts.role) {
    tracer_.open(opts.trace_path);
    tracer_.add_sink([this](const std::string& line) { transport_.publish("trace", line); });
    Time now = clock.now();
    for (const NodeSpec& n : cfg.nodes)
        if (n.id != self) detector_.add_peer(n.id, now);
}

NodeHost::~NodeHost() = default;

void NodeHost::drop(const std::string& from, const std::string& reason) {
    ++counters_.dropped;
    tracer_.emit("msg.drop", {{"from", from}, {"reason", reason}});
}

void NodeHost::send(const Outgoing& o) {
    Envelope env;
    env.from = self_.id;
    env.inc = inc_;
    env.body = o.body;
    std::string channel;
    switch (o.route) {
        case Outgoing::Route::request: channel = "req:" + std::to_string(o.to); break;
        case Outgoing::Route::reply: channel = "rep:" + std::to_string(o.to); break;
        case Outgoing::Route::publish: channel = "pub:" + o.topic; break;
    }
    env.seq = ++channel_seq_[channel];
    MsgInfo mi = info(env.type());
    bool traced = tracer_.enabled(mi.level);
    if (traced) {
        env.lc = tracer_.next_lc();
        env.vc = tracer_.next_vc();
    }
    std::string frame = encode(env);
    SendResult r = SendResult::sent;
    switch (o.route) {
        case Outgoing::Route::request: r = transport_.send_to(o.to, frame); break;
        case Outgoing::Route::reply: r = transport_.reply_to(std::to_string(o.to), frame); break;
        case Outgoing::Route::publish: r = transport_.publish(o.topic, frame); break;
    }
    Json to = o.route == Outgoing::Route::publish ? Json(o.topic) : Json(o.to);
    Json id = message_id(env.from, env.inc, env.seq);
    if (r == SendResult::sent) {
        ++counters_.sent;
        tracer_.emit("msg.send", {{"to", to}, {"type", mi.name}, {"id", id}}, mi.level);
    } else {
        // Never waited on: counted, and traced at level msgs or above (a full queue to a
        // dead peer would otherwise flood the default trace).
        ++counters_.unsent;
        tracer_.emit("msg.unsent", {{"to", to}, {"type", mi.name}, {"id", id}, {"reason", to_string(r)}},
                     std::max(mi.level, TraceLevel::msgs));
    }
}

void NodeHost::send_heartbeat() {
    send({Outgoing::Route::publish, 0, "hb",
          Heartbeat{static_cast<uint64_t>(cfg_.tunables.heartbeat.count())}});
}

void NodeHost::carry_out(Actions&& a) {
    // Trace the decision first, then send what follows from it.
    for (auto& e : a.events) tracer_.emit(e.ev, std::move(e.fields), e.level);
    for (auto& o : a.out) send(o);
}

void NodeHost::deliver_peer_events(const std::vector<PeerEvent>& evs, Time now) {
    for (const PeerEvent& e : evs) {
        const char* ev = e.state == PeerState::alive     ? "peer.alive"
                         : e.state == PeerState::suspect ? "peer.suspect"
                                                         : "peer.dead";
        tracer_.emit(ev, peer_fields(e));
        if (algo_) carry_out(algo_->on_peer(e, now));
    }
}

void NodeHost::handle_incoming(Incoming&& in, Time now) {
    ++counters_.received;
    std::string origin = in.channel == Channel::router   ? in.routing_id
                         : in.channel == Channel::dealer ? std::to_string(in.dealer_peer)
                                                         : "sub:" + in.topic;
    if (!in.malformed.empty()) return drop(origin, in.malformed);
    DecodeResult d = decode(in.payload);
    if (!d.env) return drop(origin, d.error);
    Envelope& env = *d.env;
    const NodeId* from = std::get_if<NodeId>(&env.from);
    if (!from || !cfg_.find(*from)) return drop(origin, "sender " + to_string(env.from) + " is not a cluster node");
    if (*from == self_.id) return drop(origin, "sender claims to be this node");
    // The routing id (or the peer whose DEALER it came in on) must agree with the envelope.
    if (in.channel == Channel::router && in.routing_id != std::to_string(*from))
        return drop(origin, "envelope sender " + std::to_string(*from) + " disagrees with routing id " + in.routing_id);
    if (in.channel == Channel::dealer && in.dealer_peer != *from)
        return drop(origin, "envelope sender " + std::to_string(*from) + " on the link to " +
                                std::to_string(in.dealer_peer));
    MsgType type = env.type();
    bool is_heartbeat = type == MsgType::heartbeat;
    if (in.channel == Channel::sub && in.topic != info(type).topic)
        return drop(origin, std::string(info(type).name) + " on topic '" + in.topic + "'");

    MsgInfo mi = info(type);
    if (tracer_.enabled(mi.level) && env.lc) tracer_.merge(env.lc, env.vc);
    tracer_.emit("msg.recv", {{"from", *from}, {"type", mi.name}, {"id", message_id(env.from, env.inc, env.seq)}},
                 mi.level);
    // Any valid message is a sign of life.
    deliver_peer_events(detector_.on_heard(*from, env.inc, now), now);
    if (!is_heartbeat && algo_) carry_out(algo_->on_message(*from, env, now));
}

Time NodeHost::next_deadline() const {
    Time t = std::min(heartbeat_.next(), detector_.next_deadline());
    if (algo_) t = std::min(t, algo_->next_deadline());
    return t;
}

int NodeHost::run(const std::atomic<bool>& stop) {
    tracer_.emit("node.start", {{"role", role_},
                                {"algo", algo_ ? algo_->name() : "none"},
                                {"pid", static_cast<int64_t>(::getpid())},
                                {"heartbeat_ms", to_ms(cfg_.tunables.heartbeat)},
                                {"suspect_ms", to_ms(cfg_.tunables.suspect_after)},
                                {"dead_ms", to_ms(cfg_.tunables.dead_after)}});
    Time now = clock_.now();
    if (algo_) carry_out(algo_->start(now));
    Time after = clock_.now();
    while (!stop) {
        now = clock_.now();
        long timeout = poll_timeout_ms(next_deadline(), now);
        try {
            zmq::poll(transport_.poll_items(), std::chrono::milliseconds(timeout));
        } catch (const zmq::error_t& e) {
            if (e.num() != EINTR) throw;
        }
        now = clock_.now();
        Duration stalled = stall_.check(after, std::chrono::milliseconds(timeout), now);
        after = now;
        if (stalled.count() > 0) {
            tracer_.emit("node.stall", {{"stalled_ms", to_ms(stalled)}});
            detector_.reset(now);
        }
        // All input first, in socket priority order. The cap only matters under a flood:
        // then timers still run, and the rest is read on the next (immediate) poll.
        auto& items = transport_.poll_items();
        for (size_t i = 0; i < items.size(); ++i) {
            for (int n = 0; n < kMaxFramesPerSocketPerRound; ++n) {
                auto in = transport_.receive(i);
                if (!in) break;
                handle_incoming(std::move(*in), now);
            }
        }
        // Then timers.
        if (heartbeat_.due(now)) send_heartbeat();
        deliver_peer_events(detector_.on_tick(now), now);
        if (algo_ && algo_->next_deadline() <= now) carry_out(algo_->on_tick(now));
    }
    int sig = g_signal.load();
    tracer_.emit("node.stop", {{"reason", sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "stopped"},
                               {"received", counters_.received},
                               {"dropped", counters_.dropped},
                               {"sent", counters_.sent},
                               {"unsent", counters_.unsent}});
    return 0;
}

}  // namespace bus
