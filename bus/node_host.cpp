#include "bus/node_host.hpp"

#include <csignal>
#include <iostream>
#include <unistd.h>

namespace bus {

namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_isolated{false};  // fault injection: SIGUSR1 sets, SIGUSR2 clears
std::atomic<int> g_signal{0};

extern "C" void on_isolate_signal(int sig) { g_isolated = sig == SIGUSR1; }

extern "C" void on_stop_signal(int sig) {
    g_signal = sig;
    g_stop = true;
}

/// Frames read from one socket before the loop runs its timers. Too small: a burst is
/// spread over many rounds for nothing; too large: a flood can delay heartbeats and
/// detection for as long as it takes to read it.
constexpr int kMaxFramesPerSocketPerRound = 10000;

/// A persist (write + fsync + rename + directory fsync) slower than this is traced as
/// storage.slow. On an idle SSD it takes about a millisecond.
constexpr Duration kSlowPersist = std::chrono::milliseconds(20);

/// How late the loop may wake before it counts as stalled (detector windows restarted). It
/// must be below the earliest moment the detector could suspect a peer: the fixed detector
/// suspects at suspect_after; phi can suspect after about first interval + acceptable pause
/// + a few deviations, i.e. a little over 3 heartbeats, so 3 heartbeats. (Peers' heartbeats
/// queued during a pause may reach the socket only after the loop has woken — ZeroMQ's I/O
/// thread was stopped too —, so "read all input first" alone cannot protect a waking node.)
Duration stall_threshold(const Tunables& t) {
    if (t.detector == "phi") return std::min(t.suspect_after, 3 * t.heartbeat);
    return t.suspect_after;
}

}  // namespace

std::atomic<bool>& install_stop_signals() {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    sa.sa_handler = on_isolate_signal;
    sigaction(SIGUSR1, &sa, nullptr);
    sigaction(SIGUSR2, &sa, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
    // A file-size limit (ulimit -f) makes the write fail with EFBIG, which is handled like a
    // full disk, instead of killing the process outright (as PostgreSQL does).
    std::signal(SIGXFSZ, SIG_IGN);
    return g_stop;
}

int stop_signal() { return g_signal.load(); }

NodeHost::NodeHost(const ClusterConfig& cfg, NodeId self, const Clock& clock, NodeHostOptions opts,
                   std::unique_ptr<Algorithm> algo)
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
                                  64, algo && algo->serves_clients()}),
      outbox_(self, inc_, &tracer_),
      core_(cfg, self, std::move(algo), clock.now(), opts.join),
      stall_(stall_threshold(cfg.tunables)),
      role_(opts.role),
      join_(opts.join),
      disk_(opts.disk) {
    tracer_.open(opts.trace_path);
    tracer_.set_buffered(true);  // flushed before every send and storage operation, and at the end of each round
    tracer_.add_sink([this](const std::string& line) { transport_.publish("trace", line); });
}

NodeHost::~NodeHost() = default;

void NodeHost::drop(const std::string& from, const std::string& reason) {
    ++counters_.dropped;
    tracer_.emit("msg.drop", {{"from", from}, {"reason", reason}});
}

void NodeHost::send(const Outgoing& o) {
    tracer_.flush();  // the events that led to a message are in the trace before it leaves
    Envelope env = outbox_.seal(o);
    if (isolated_) {  // fault injection: the network loses everything this node sends
        ++counters_.unsent;
        outbox_.record(o, env, SendResult::isolated);
        return;
    }
    std::string frame = encode(env);
    SendResult r = SendResult::sent;
    switch (o.route) {
        case Outgoing::Route::request: r = transport_.send_to(o.to, frame); break;
        case Outgoing::Route::reply: r = transport_.reply_to(std::to_string(o.to), frame); break;
        case Outgoing::Route::publish: r = transport_.publish(o.topic, frame); break;
        case Outgoing::Route::join: r = transport_.send_to_endpoint(o.topic, frame); break;
        case Outgoing::Route::client: r = transport_.reply_client(o.topic, frame); break;
    }
    if (r == SendResult::sent)
        ++counters_.sent;
    else
        ++counters_.unsent;  // never waited on: counted and traced
    outbox_.record(o, env, r);
}

template <typename F>
void NodeHost::storage_op(const char* op, F&& f) {
    if (!disk_) throw std::logic_error(std::string("the algorithm asks for storage (") + op + ") but the node has none");
    tracer_.flush();  // and before what they led to is on disk
    Time before = clock_.now();
    f(*disk_);  // a failure ends the run: run() traces it
    Duration took = clock_.now() - before;
    // Durable writes sit on the critical path (a vote waits for its fsync): make a slow
    // disk visible in the trace rather than a mystery in the timings.
    if (took > kSlowPersist) tracer_.emit("storage.slow", {{"op", op}, {"ms", to_ms(took)}});
}

void NodeHost::carry_out(Actions&& a) {
    // Durable state first: nothing that depends on it may leave before it is on disk.
    if (a.persist) storage_op("persist", [&](RaftDisk& d) { d.storage.save(*a.persist); });
    // Log writes now, their fsync at the end of the round (sync_log); what depends on them
    // is held until then.
    if (a.log_truncate_from || !a.log_append.empty())
        storage_op("log", [&](RaftDisk& d) {
            if (a.log_truncate_from) d.log.truncate_from(*a.log_truncate_from);
            d.log.append(a.log_append);
        });
    if (a.snapshot)  // the snapshot durable, then the log compacted to it (durable too)
        storage_op("snapshot", [&](RaftDisk& d) {
            d.storage.save_snapshot(*a.snapshot);
            d.log.compact(a.snapshot->index, a.snapshot->term);
        });
    // Trace the decision first, then send what follows from it.
    for (auto& e : a.events) tracer_.emit(e.ev, std::move(e.fields), e.level);
    // Membership: connect to new members before sending, so that what is sent to them has a
    // DEALER to go out on.
    for (auto& m : a.connect) to_connect_.push_back(std::move(m));
    for (NodeId id : a.disconnect) to_disconnect_.push_back(id);
    apply_membership();
    bool wait = disk_ && (disk_->log.dirty() || !held_.empty());
    for (auto& o : a.out) {
        if (wait && !o.before_sync)
            held_.push_back(std::move(o));
        else
            send(o);
    }
}

void NodeHost::sync_log() {
    if (!disk_) return;
    if (disk_->log.dirty()) storage_op("log", [](RaftDisk& d) { d.log.sync(); });
    // Tell the algorithm whenever more became durable: by this fsync, or by a truncation or
    // compaction during the round (they sync everything themselves).
    if (disk_->log.durable_index() != reported_durable_) {
        reported_durable_ = disk_->log.durable_index();
        carry_out(core_.on_log_durable(reported_durable_, clock_.now()));
    }
    auto held = std::move(held_);
    held_.clear();
    for (auto& o : held) send(o);
}

void NodeHost::apply_membership() {
    for (NodeId id : to_disconnect_) transport_.remove_peer(id);
    for (const MemberInfo& m : to_connect_) {
        try {
            transport_.add_peer(node_spec(m));
        } catch (const ConfigError& e) {  // a member's address from the network: never fatal
            tracer_.emit("peer.unreachable", {{"peer", m.id}, {"reason", e.what()}});
        }
    }
    to_connect_.clear();
    to_disconnect_.clear();
}

void NodeHost::handle_control(const Incoming& in, Time now) {
    Json reply;
    std::string op;
    try {
        Json req = Json::parse(in.payload);
        if (!req.is_object() || !req.contains("op") || !req["op"].is_string())
            throw std::invalid_argument("a request is a JSON object with a string field \"op\"");
        op = req["op"].get<std::string>();
        if (op == "status") {
            reply = core_.status(now);
            reply["inc"] = inc_;
            if (disk_) reply["fsyncs"] = disk_->fsyncs();
            reply["ok"] = true;
        } else if (op == "set") {
            if (!req.contains("key") || !req["key"].is_string() || !req.contains("value") || !req["value"].is_string())
                throw std::invalid_argument("set needs string fields \"key\" and \"value\"");
            Actions a;
            std::string err = core_.set(req["key"].get<std::string>(), req["value"].get<std::string>(), now, a);
            if (!err.empty()) throw std::invalid_argument(err);
            carry_out(std::move(a));
            reply = {{"ok", true}, {"config", core_.status(now)["config"]}};
        } else if (op == "leave") {
            leaving_ = true;
            reply = {{"ok", true}, {"members", core_.members().size()}};
        } else {
            throw std::invalid_argument("unknown op '" + op + "' (status, set, leave)");
        }
    } catch (const StorageError&) {  // not the request's fault: the replica must stop (run() says so)
        throw;
    } catch (const std::exception& e) {  // bad JSON or a refused request: one clear answer
        reply = {{"ok", false}, {"error", e.what()}};
        tracer_.emit("ctl.reject", {{"op", op}, {"error", e.what()}});
    }
    tracer_.flush();  // what the request did is in the trace before its answer leaves
    // Member names and hosts come from the network: never let a bad byte throw here.
    transport_.reply_control(in.routing_id, reply.dump(-1, ' ', false, Json::error_handler_t::replace));
}

void NodeHost::handle_incoming(Incoming&& in, Time now) {
    ++counters_.received;
    std::string origin = in.channel == Channel::router || in.channel == Channel::control || in.channel == Channel::client
                             ? in.routing_id
                         : in.channel == Channel::dealer ? (in.dealer_peer ? std::to_string(in.dealer_peer) : "join link")
                                                         : "sub:" + in.topic;
    if (in.channel == Channel::control) {
        if (!in.malformed.empty()) return drop("control:" + origin, in.malformed);
        return handle_control(in, now);
    }
    if (in.channel == Channel::client) {
        auto bad = [&](const std::string& why) {  // dropped, and the algorithm may answer
            drop("client:" + origin, why);
            carry_out(core_.on_bad_client(in.routing_id, why, now));
        };
        if (!in.malformed.empty()) return bad(in.malformed);
        DecodeResult d = decode(in.payload);
        if (!d.env) return bad(d.error);
        if (!std::holds_alternative<std::string>(d.env->from)) return bad("a node id as the sender of a client request");
        trace_receive(tracer_, d.env->from, *d.env, "req");
        return carry_out(core_.on_client(in.routing_id, *d.env, now));
    }
    if (!in.malformed.empty()) return drop(origin, in.malformed);
    DecodeResult d = decode(in.payload);
    if (!d.env) return drop(origin, d.error);
    Envelope& env = *d.env;
    const NodeId* from = std::get_if<NodeId>(&env.from);
    if (!from) return drop(origin, "sender " + to_string(env.from) + " is not a cluster node");
    if (*from == self_.id) return drop(origin, "sender claims to be this node");
    MsgType type = env.type();
    if (!core_.accepts(*from, type)) return drop(origin, "sender " + std::to_string(*from) + " is not a member");
    // The routing id (or the peer whose DEALER it came in on) must agree with the envelope.
    if (in.channel == Channel::router && in.routing_id != std::to_string(*from))
        return drop(origin, "envelope sender " + std::to_string(*from) + " disagrees with routing id " + in.routing_id);
    if (in.channel == Channel::dealer && in.dealer_peer == 0 && type != MsgType::welcome)
        return drop(origin, std::string(info(type).name) + " on the join link");
    // A WELCOME is only ever the answer to our JOIN: it comes back on a DEALER of ours.
    if (type == MsgType::welcome && in.channel != Channel::dealer)
        return drop(origin, "WELCOME that is not a reply to our JOIN");
    if (in.channel == Channel::dealer && in.dealer_peer != 0 && in.dealer_peer != *from)
        return drop(origin, "envelope sender " + std::to_string(*from) + " on the link to " +
                                std::to_string(in.dealer_peer));
    if (in.channel == Channel::sub && in.topic != info(type).topic)
        return drop(origin, std::string(info(type).name) + " on topic '" + in.topic + "'");
    trace_receive(tracer_, *from, env,
                  in.channel == Channel::router ? "req" : in.channel == Channel::dealer ? "rep" : "pub");
    carry_out(core_.on_message(*from, env, now));
}

int NodeHost::run(const std::atomic<bool>& stop) {
    try {
        return run_loop(stop);
    } catch (const StorageError& e) {
        tracer_.emit("node.stop", {{"reason", std::string("storage failure: ") + e.what()}});
        tracer_.flush();
        throw;
    } catch (const std::exception& e) {
        tracer_.emit("node.stop", {{"reason", std::string("failure: ") + e.what()}});
        tracer_.flush();
        throw;
    }
}

int NodeHost::run_loop(const std::atomic<bool>& stop) {
    tracer_.emit("node.start", {{"role", role_},
                                {"algo", core_.algorithm() ? core_.algorithm()->name() : "none"},
                                {"pid", static_cast<int64_t>(::getpid())},
                                {"heartbeat_ms", to_ms(cfg_.tunables.heartbeat)},
                                {"suspect_ms", to_ms(cfg_.tunables.suspect_after)},
                                {"dead_ms", to_ms(cfg_.tunables.dead_after)},
                                {"detector", cfg_.tunables.detector},
                                {"control", self_.control},
                                {"join", join_}});
    if (disk_ && disk_->log.recovery().bytes > 0) {  // a torn tail cut at open: say so, once
        const RaftLog::Recovery& r = disk_->log.recovery();
        tracer_.emit("storage.recover", {{"file", disk_->log.path()},
                                         {"offset", r.offset},
                                         {"bytes", r.bytes},
                                         {"reason", r.why}});
        std::cerr << "ftbus-" << role_ << ": " << disk_->log.path() << ": cut " << r.bytes << " bytes at offset "
                  << r.offset << " (" << r.why << "): entries there were never acknowledged, or this replica "
                  << "catches up on them from the leader\n";
    }
    Time now = clock_.now();
    carry_out(core_.start(now));
    sync_log();
    Time after = clock_.now();
    std::string stop_reason;
    while (!stop) {
        now = clock_.now();
        long timeout = poll_timeout_ms(core_.next_deadline(), now);
        transport_.wait(std::chrono::milliseconds(timeout));  // a signal ends it early
        now = clock_.now();
        Duration stalled = stall_.check(after, std::chrono::milliseconds(timeout), now);
        if (stalled.count() > 0) {
            tracer_.emit("node.stall", {{"stalled_ms", to_ms(stalled)}});
            carry_out(core_.on_stall(now));
        }
        if (isolated_ != g_isolated.load()) {
            isolated_ = !isolated_;
            tracer_.emit("node.isolated", {{"isolated", isolated_}});
        }
        // All input first, in socket priority order. The cap only matters under a flood:
        // then timers still run, and the rest is read on the next (immediate) poll.
        // Only the sockets the wait found ready: asking an idle ZeroMQ socket costs system
        // calls, and what arrives meanwhile is read next round. Membership changes may add
        // or remove sockets while we read: the bounds are rechecked.
        for (size_t i = 0; i < transport_.inputs(); ++i) {
            if (!transport_.ready(i)) continue;
            for (int n = 0; n < kMaxFramesPerSocketPerRound && i < transport_.inputs(); ++n) {
                auto in = transport_.receive(i);
                if (!in) break;
                if (isolated_) {  // fault injection: lost on the way in
                    ++counters_.isolated;
                    continue;
                }
                handle_incoming(std::move(*in), now);
            }
        }
        if (!core_.refused().empty()) {  // our JOIN was refused: there is nothing to run
            std::cerr << "ftbus-" << role_ << ": " << core_.refused() << "\n";
            stop_reason = "join refused: " + core_.refused();
            break;
        }
        if (leaving_) {  // ftbus-ctl leave: tell everyone, give the LEAVEs time to go, stop
            carry_out(core_.leave(clock_.now()));
            sync_log();
            transport_.linger_on_close(std::chrono::milliseconds(500));
            stop_reason = "left";
            break;
        }
        if (core_.joined()) transport_.close_join_link();  // welcomed: no more use for it
        // Then timers; then what the round batched up (a leader's AppendEntries for every
        // proposal of the round in one message per follower); then the round's one fsync.
        carry_out(core_.on_tick(now));
        carry_out(core_.on_round_end(now));
        sync_log();
        tracer_.flush();
        // The next stall check measures from here: this round's own work (fsyncs, a burst of
        // input) is not a stall.
        after = clock_.now();
    }
    int sig = g_signal.load();
    if (stop_reason.empty()) stop_reason = sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "stopped";
    tracer_.emit("node.stop", {{"reason", stop_reason},
                               {"received", counters_.received},
                               {"dropped", counters_.dropped},
                               {"sent", counters_.sent},
                               {"unsent", counters_.unsent},
                               {"isolated", counters_.isolated},
                               {"fsyncs", disk_ ? disk_->fsyncs() : 0}});
    tracer_.flush();
    return core_.refused().empty() ? 0 : 1;
}

}  // namespace bus
