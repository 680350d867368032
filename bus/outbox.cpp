#include "bus/outbox.hpp"

namespace bus {

std::string Outbox::channel(const Outgoing& o) {
    switch (o.route) {
        case Outgoing::Route::request: return "req:" + std::to_string(o.to);
        case Outgoing::Route::reply: return "rep:" + std::to_string(o.to);
        case Outgoing::Route::publish: return "pub:" + o.topic;
        case Outgoing::Route::join: return "join:" + o.topic;
        case Outgoing::Route::client: return "cli:" + o.topic;
    }
    return "?";
}

Envelope Outbox::seal(const Outgoing& o) {
    Envelope env;
    env.from = self_;
    env.inc = inc_;
    env.body = o.body;
    env.seq = ++seq_[channel(o)];
    if (tracer_ && tracer_->enabled(info(env.type()).level)) {
        env.lc = tracer_->next_lc();
        env.vc = tracer_->next_vc();
    }
    return env;
}

void Outbox::record(const Outgoing& o, const Envelope& env, SendResult r) {
    if (!tracer_) return;
    MsgInfo mi = info(env.type());
    // Published: the topic. A JOIN to a member not known yet: the endpoint it went to.
    Json to = o.route == Outgoing::Route::publish || o.route == Outgoing::Route::join ||
                      o.route == Outgoing::Route::client
                  ? Json(o.topic)
                  : Json(o.to);
    Json id = message_id(env.from, env.inc, env.seq);
    // The kind of channel: with `id` and the addressee it names the message uniquely.
    const char* ch = o.route == Outgoing::Route::reply || o.route == Outgoing::Route::client ? "rep"
                     : o.route == Outgoing::Route::publish ? "pub"
                     : o.route == Outgoing::Route::join    ? "join"
                                                           : "req";
    if (r == SendResult::sent) {
        tracer_->emit("msg.send", {{"to", to}, {"type", mi.name}, {"id", id}, {"ch", ch}}, mi.level);
    } else {
        // Never waited on: traced at level msgs or above (a full queue to a dead peer would
        // otherwise flood the default trace).
        tracer_->emit("msg.unsent", {{"to", to}, {"type", mi.name}, {"id", id}, {"reason", to_string(r)}},
                      std::max(mi.level, TraceLevel::msgs));
    }
}

void trace_receive(Tracer& tracer, const Sender& from, const Envelope& env, const char* ch) {
    MsgInfo mi = info(env.type());
    if (tracer.enabled(mi.level) && env.lc) tracer.merge(env.lc, env.vc);
    Json who = std::holds_alternative<NodeId>(from) ? Json(std::get<NodeId>(from)) : Json(std::get<std::string>(from));
    tracer.emit("msg.recv",
                {{"from", who}, {"type", mi.name}, {"id", message_id(env.from, env.inc, env.seq)}, {"ch", ch}},
                mi.level);
}

}  // namespace bus
