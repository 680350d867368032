#include "bus/node_core.hpp"

#include <cmath>

#include "bus/phi_detector.hpp"

namespace bus {

TraceEvent peer_trace_event(const PeerEvent& e) {
    const char* ev = e.state == PeerState::alive     ? "peer.alive"
                     : e.state == PeerState::suspect ? "peer.suspect"
                                                     : "peer.dead";
    Json f = {{"peer", e.peer}};
    if (e.state == PeerState::alive) {
        f["peer_inc"] = e.inc;
        if (e.restarted) f["restarted"] = true;
    } else {
        f["silence_ms"] = to_ms(e.silence);
        if (e.phi > 0) f["phi"] = std::round(e.phi * 100) / 100;
    }
    return {ev, std::move(f), TraceLevel::state};
}

NodeCore::NodeCore(const ClusterConfig& cfg, NodeId self, std::unique_ptr<Algorithm> algo, Time now)
    : self_(self),
      tunables_(cfg.tunables),
      detector_(cfg.tunables.detector == "phi"
                    ? std::unique_ptr<FailureDetector>(std::make_unique<PhiAccrualDetector>(
                          PhiAccrualDetector::config_for(cfg.tunables), cfg.tunables.startup_grace))
                    : std::make_unique<FixedTimeoutDetector>(cfg.tunables)),
      heartbeat_(cfg.tunables.heartbeat, now),
      algo_(std::move(algo)) {
    for (const NodeSpec& n : cfg.nodes)
        if (n.id != self) detector_->add_peer(n.id, now);
}

Actions NodeCore::start(Time now) { return algo_ ? algo_->start(now) : Actions{}; }

void NodeCore::deliver_peer_events(const std::vector<PeerEvent>& evs, Time now, Actions& a) {
    for (const PeerEvent& e : evs) {
        a.events.push_back(peer_trace_event(e));
        if (e.state == PeerState::suspect) {
            a.send(e.peer, Ping{++ping_nonce_});  // probe it directly, at once
            probing_[e.peer] = now + tunables_.heartbeat;
        } else {
            probing_.erase(e.peer);  // alive again, or dead: no more probes
        }
        if (algo_) a.append(algo_->on_peer(e, now));
    }
}

Actions NodeCore::on_message(NodeId from, const Envelope& env, Time now) {
    Actions a;
    std::optional<uint64_t> hb_seq;
    if (env.type() == MsgType::heartbeat) hb_seq = env.seq;  // phi learns intervals from these
    deliver_peer_events(detector_->on_heard(from, env.inc, hb_seq, now), now, a);
    if (auto* p = std::get_if<Ping>(&env.body)) {
        a.reply(from, Pong{p->nonce});
        return a;
    }
    if (env.type() == MsgType::pong) return a;  // its life was counted above
    if (env.type() != MsgType::heartbeat && algo_) a.append(algo_->on_message(from, env, now));
    return a;
}

Actions NodeCore::on_tick(Time now) {
    Actions a;
    if (heartbeat_.due(now))
        a.publish("hb", Heartbeat{static_cast<uint64_t>(tunables_.heartbeat.count())});
    deliver_peer_events(detector_->on_tick(now), now, a);
    for (auto& [peer, next] : probing_)
        if (now >= next) {
            a.send(peer, Ping{++ping_nonce_});
            next = now + tunables_.heartbeat;
        }
    if (algo_ && algo_->next_deadline() <= now) a.append(algo_->on_tick(now));
    return a;
}

Actions NodeCore::on_stall(Time now) {
    detector_->reset(now);
    return algo_ ? algo_->on_stall(now) : Actions{};
}

Time NodeCore::next_deadline() const {
    Time t = std::min(heartbeat_.next(), detector_->next_deadline());
    for (auto& [peer, next] : probing_) t = std::min(t, next);
    if (algo_) t = std::min(t, algo_->next_deadline());
    return t;
}

}  // namespace bus
