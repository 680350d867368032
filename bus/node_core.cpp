#include "bus/node_core.hpp"

#include <charconv>
#include <cmath>

#include "bus/duration.hpp"
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

namespace {

/// A joiner not yet welcomed sends JOIN again this often (the member it names may not be up).
/// Once welcomed, it sends JOIN to one member after another at this period (anti-entropy):
/// the WELCOME tells it of nodes that joined concurrently elsewhere, and a member that lost
/// track of it (a lost MEMBER, a restart) admits it again. One message a second per joiner.
constexpr Duration kJoinRetry = std::chrono::seconds(1);

bool same_address(const MemberInfo& a, const MemberInfo& b) {
    return a.host == b.host && a.pub == b.pub && a.peer == b.peer;
}

}  // namespace

MemberInfo member_info(const NodeSpec& n, bool is_static) {
    return MemberInfo{n.id, n.name, n.priority, n.host, n.pub, n.peer, n.control, is_static};
}

NodeSpec node_spec(const MemberInfo& m) {
    if (!node_host_ok(m.host))
        throw ConfigError("member " + std::to_string(m.id) + "'s host '" + m.host + "' " + node_host_rule());
    NodeSpec n;
    n.id = m.id;
    n.name = m.name;
    n.priority = m.priority;
    n.host = m.host;
    n.pub = m.pub;
    n.peer = m.peer;
    n.control = m.control;
    return n;
}

NodeCore::NodeCore(const ClusterConfig& cfg, NodeId self, std::unique_ptr<Algorithm> algo, Time now,
                   std::string join_endpoint)
    : self_(self),
      tunables_(cfg.tunables),
      detector_(cfg.tunables.detector == "phi"
                    ? std::unique_ptr<FailureDetector>(std::make_unique<PhiAccrualDetector>(
                          PhiAccrualDetector::config_for(cfg.tunables), cfg.tunables.startup_grace))
                    : std::make_unique<FixedTimeoutDetector>(cfg.tunables)),
      heartbeat_(cfg.tunables.heartbeat, now),
      algo_(std::move(algo)),
      join_endpoint_(std::move(join_endpoint)),
      joined_(join_endpoint_.empty()) {
    for (const NodeSpec& n : cfg.nodes) {
        if (n.id == self) {
            self_info_ = member_info(n, join_endpoint_.empty());
            continue;
        }
        MemberInfo m = member_info(n, true);
        members_[n.id] = m;
        static_[n.id] = m;
        detector_->add_peer(n.id, now);
    }
    if (self_info_.id != self) throw std::logic_error("NodeCore: node " + std::to_string(self) + " is not in its config");
}

Actions NodeCore::start(Time now) {
    if (joined_) return algo_ ? algo_->start(now) : Actions{};
    Actions a;
    a.trace("node.join", {{"via", join_endpoint_}, {"state", "asking"}});
    a.join_via(join_endpoint_, Join{self_info_});
    next_join_ = now + kJoinRetry;
    return a;
}

bool NodeCore::accepts(NodeId from, MsgType type) const {
    return members_.count(from) || static_.count(from) || type == MsgType::join || type == MsgType::welcome;
}

void NodeCore::deliver_peer_events(const std::vector<PeerEvent>& evs, Time now, Actions& a) {
    for (const PeerEvent& e : evs) {
        a.events.push_back(peer_trace_event(e));
        if (e.state == PeerState::suspect) {
            a.send(e.peer, Ping{++ping_nonce_});  // probe it directly, at once
            probing_[e.peer] = now + tunables_.heartbeat;
        } else {
            probing_.erase(e.peer);  // alive again, or dead: no more probes
        }
        if (e.state == PeerState::dead) {
            dead_since_[e.peer] = now;
        } else if (e.state == PeerState::alive) {
            acked_[e.peer] = now;  // back (or new): give it a heartbeat period to ack before calling it deaf
            bool back = dead_since_.erase(e.peer) > 0 || e.restarted;
            // It may have forgotten us (restarted, or removed us while we were apart).
            if (back && !self_info_.is_static && joined_) a.send(e.peer, Join{self_info_});
        }
        if (algo_) a.append(algo_->on_peer(e, now));
    }
}

void NodeCore::admit(const MemberInfo& m, Time now, const std::string& reason, NodeId by, Actions& a) {
    members_[m.id] = m;
    if (m.is_static) static_[m.id] = m;
    left_inc_.erase(m.id);
    dead_since_.erase(m.id);
    tombstones_.erase(m.id);
    acked_[m.id] = now;  // a newcomer has had no chance to ack yet: not deaf from the start
    detector_->add_peer(m.id, now);
    a.connect.push_back(m);
    a.trace("peer.join", {{"peer", m.id},
                          {"reason", reason},
                          {"by", by},
                          {"host", m.host},
                          {"peer_port", m.peer},
                          {"static", m.is_static}});
    // Before a joiner's algorithm starts too: it must know the electorate it starts with.
    if (algo_) a.append(algo_->on_member(m, true, now));
}

void NodeCore::remove(NodeId id, const std::string& reason, Time now, Actions& a) {
    auto it = members_.find(id);
    if (it == members_.end()) return;
    MemberInfo m = it->second;
    members_.erase(it);
    tombstones_[id] = now + tunables_.remove_after;
    detector_->remove_peer(id);
    probing_.erase(id);
    dead_since_.erase(id);
    acked_.erase(id);
    deaf_.erase(id);
    // A static node's connections stay: they are how we hear it come back.
    if (!m.is_static) a.disconnect.push_back(id);
    a.trace("peer.leave", {{"peer", id}, {"reason", reason}});
    if (algo_) a.append(algo_->on_member(m, false, now));
}

bool NodeCore::on_join(NodeId from, const Join& j, Time now, Actions& a) {
    const MemberInfo& m = j.member;
    auto refuse = [&](const std::string& why) {
        a.trace("peer.refuse", {{"peer", from}, {"reason", why}});
        a.reply(from, Welcome{false, why, {}});
        return false;
    };
    if (!joined_) return false;  // not a member yet ourselves: it will ask again (or elsewhere)
    if (m.id != from)
        return refuse("JOIN for node " + std::to_string(m.id) + " sent by node " + std::to_string(from));
    if (static_.count(from) || m.is_static)
        return refuse("id " + std::to_string(from) + " is a cluster-file node: start it from the file, without --join");
    auto it = members_.find(from);
    if (it != members_.end() && !same_address(it->second, m)) {
        // Only a member declared dead gives up its id; one not heard from yet may be alive.
        if (detector_->state(from) != PeerState::dead)
            return refuse("id " + std::to_string(from) + " is taken by a member at " + it->second.host + ":" +
                          std::to_string(it->second.peer) + " that is not known to be dead");
        remove(from, "replaced", now, a);  // the old one is gone; the id moves to the new address
        it = members_.end();
    }
    if (it == members_.end()) {
        admit(m, now, "join", self_, a);
        for (auto& [id, other] : members_)
            if (id != from) a.send(id, Member{m});
    }
    Welcome w;
    w.members.push_back(self_info_);
    for (auto& [id, other] : members_)  // not the dead: the joiner would only have to time them out
        if (id != from && detector_->state(id) != PeerState::dead) w.members.push_back(other);
    a.reply(from, std::move(w));
    return true;
}

void NodeCore::on_welcome(NodeId from, const Welcome& w, Time now, Actions& a) {
    if (self_info_.is_static) return;  // a cluster-file node never sends JOIN: not an answer of ours
    if (joined_ && !w.ok) return;  // an answer to a re-JOIN: it knows us as someone else; detection sorts it out
    if (!w.ok) {
        refused_ = "node " + std::to_string(from) + " refused to admit us: " + w.reason;
        next_join_ = Time::max();  // the host stops; nothing more to ask
        a.trace("node.join", {{"via", from}, {"state", "refused"}, {"reason", w.reason}});
        return;
    }
    for (const MemberInfo& m : w.members) {
        if (m.id == self_) continue;
        auto it = members_.find(m.id);
        if (it == members_.end()) {
            // Removed here lately (left, or dead and forgotten): the answering member may not
            // know yet; it is not brought back from hearsay (it comes back by its own JOIN).
            if (auto t = tombstones_.find(m.id); t != tombstones_.end() && now < t->second) continue;
            admit(m, now, "welcome", from, a);
        } else if (!same_address(it->second, m) && detector_->state(m.id) == PeerState::dead && !it->second.is_static) {
            remove(m.id, "replaced", now, a);  // only a dead joined member's id moves
            admit(m, now, "welcome", from, a);
        }
    }
    if (!joined_) {
        joined_ = true;
        next_join_ = now + kJoinRetry;  // from now on: anti-entropy
        a.trace("node.join", {{"via", from}, {"state", "joined"}, {"members", members_.size()}});
        if (algo_) a.append(algo_->start(now));
    }
}

Actions NodeCore::on_message(NodeId from, const Envelope& env, Time now) {
    Actions a;
    MsgType type = env.type();
    if (type == MsgType::join) {
        // A refused JOIN is someone else using a member's id: it says nothing of the member's
        // life (counting it would make the impostor's incarnation the member's).
        if (!on_join(from, std::get<Join>(env.body), now, a)) return a;
    } else if (type == MsgType::welcome) {
        on_welcome(from, std::get<Welcome>(env.body), now, a);
        if (!members_.count(from)) return a;
    } else if (!members_.count(from)) {
        auto s = static_.find(from);
        if (s == static_.end() || type == MsgType::leave) return a;
        auto li = left_inc_.find(from);
        if (li != left_inc_.end() && li->second == env.inc) return a;  // late words of the one that left
        admit(s->second, now, "returned", from, a);  // a cluster-file node is back
    }
    std::optional<uint64_t> hb_seq;
    if (type == MsgType::heartbeat) hb_seq = env.seq;  // phi learns intervals from these
    deliver_peer_events(detector_->on_heard(from, env.inc, hb_seq, now), now, a);
    switch (type) {
        case MsgType::join:
        case MsgType::welcome: return a;
        case MsgType::ping: a.reply(from, Pong{std::get<Ping>(env.body).nonce}); return a;
        case MsgType::pong: return a;  // its life was counted above
        case MsgType::heartbeat:
            // Acknowledge our leader's heartbeats: it learns that we hear it.
            if (algo_ && algo_->view().leader == from) a.send(from, HeartbeatAck{env.seq});
            return a;
        case MsgType::heartbeat_ack:
            acked_[from] = now;
            if (deaf_.erase(from)) a.trace("follower.hears", {{"peer", from}});
            return a;
        case MsgType::member: {
            const MemberInfo& m = std::get<Member>(env.body).member;
            if (m.id == self_ || m.is_static) return a;  // static nodes are in everyone's file
            auto it = members_.find(m.id);
            if (it != members_.end() && same_address(it->second, m)) return a;
            if (it != members_.end()) {
                if (detector_->state(m.id) != PeerState::dead) return a;  // the one we know is alive
                remove(m.id, "replaced", now, a);
            }
            admit(m, now, "announced", from, a);
            return a;
        }
        case MsgType::leave:
            if (static_.count(from)) left_inc_[from] = env.inc;
            remove(from, "left", now, a);
            return a;
        default:
            if (algo_) a.append(algo_->on_message(from, env, now));
            return a;
    }
}

bool NodeCore::leading() const { return algo_ && joined_ && algo_->view().leader == self_; }

void NodeCore::check_followers(Time now, Actions& a) {
    bool lead = leading();
    if (lead && !was_leading_) {
        leading_since_ = now;
        acked_.clear();
        deaf_.clear();
    }
    was_leading_ = lead;
    if (!lead) return;
    for (auto& [id, m] : members_) {
        if (detector_->state(id) != PeerState::alive) continue;  // silent: the detector's business
        Time last = leading_since_;
        if (auto it = acked_.find(id); it != acked_.end()) last = std::max(last, it->second);
        if (now - last > tunables_.dead_after && deaf_.insert(id).second)
            a.trace("follower.deaf", {{"peer", id}, {"silence_ms", to_ms(now - last)}});
    }
}

Actions NodeCore::on_tick(Time now) {
    Actions a;
    if (now >= next_join_) {
        if (!joined_) {
            a.join_via(join_endpoint_, Join{self_info_});
        } else if (!members_.empty()) {
            auto it = members_.upper_bound(sync_cursor_);
            if (it == members_.end()) it = members_.begin();
            sync_cursor_ = it->first;
            a.send(it->first, Join{self_info_});
        }
        next_join_ = now + kJoinRetry;
    }
    if (heartbeat_.due(now)) {
        a.publish("hb", Heartbeat{static_cast<uint64_t>(tunables_.heartbeat.count())});
        check_followers(now, a);
    }
    deliver_peer_events(detector_->on_tick(now), now, a);
    for (auto& [peer, next] : probing_)
        if (now >= next) {
            a.send(peer, Ping{++ping_nonce_});
            next = now + tunables_.heartbeat;
        }
    for (auto it = tombstones_.begin(); it != tombstones_.end();)
        it = now >= it->second ? tombstones_.erase(it) : std::next(it);
    std::vector<NodeId> forget;
    for (auto& [id, since] : dead_since_)
        if (now >= since + tunables_.remove_after && members_.count(id) && !members_.at(id).is_static)
            forget.push_back(id);
    for (NodeId id : forget) remove(id, "dead", now, a);
    if (algo_ && joined_ && algo_->next_deadline() <= now) a.append(algo_->on_tick(now));
    return a;
}

Actions NodeCore::on_stall(Time now) {
    detector_->reset(now);
    Actions a;
    // While we were stopped the others may have forgotten us: ask again to be admitted.
    if (!self_info_.is_static && joined_)
        for (auto& [id, m] : members_) a.send(id, Join{self_info_});
    if (algo_ && joined_) a.append(algo_->on_stall(now));
    return a;
}

Actions NodeCore::on_client(const std::string& route, const Envelope& env, Time now) {
    return algo_ && joined_ ? algo_->on_client(route, env, now) : Actions{};
}

Actions NodeCore::on_bad_client(const std::string& route, const std::string& why, Time now) {
    return algo_ && joined_ ? algo_->on_bad_client(route, why, now) : Actions{};
}

Actions NodeCore::on_round_end(Time now) {
    return algo_ && joined_ ? algo_->on_round_end(now) : Actions{};
}

Actions NodeCore::on_log_durable(uint64_t index, Time now) {
    return algo_ && joined_ ? algo_->on_log_durable(index, now) : Actions{};
}

Time NodeCore::next_deadline() const {
    Time t = std::min(heartbeat_.next(), detector_->next_deadline());
    t = std::min(t, next_join_);
    for (auto& [peer, next] : probing_) t = std::min(t, next);
    for (auto& [id, since] : dead_since_) {
        auto m = members_.find(id);
        if (m != members_.end() && !m->second.is_static) t = std::min(t, since + tunables_.remove_after);
    }
    if (algo_ && joined_) t = std::min(t, algo_->next_deadline());
    return t;
}

// ---- control --------------------------------------------------------------------------------

Json NodeCore::status(Time now) const {
    LeaderView v = algo_ ? algo_->view() : LeaderView{};
    const char* role = !joined_                ? "joining"
                       : !algo_                ? "member"
                       : v.leader == self_     ? "leader"
                       : v.leader == 0         ? "electing"
                                               : "follower";
    Json members = Json::array();
    for (auto& [id, m] : members_) {
        Json e = {{"id", id},           {"name", m.name}, {"host", m.host},       {"pub", m.pub},
                  {"peer", m.peer},     {"control", m.control}, {"static", m.is_static},
                  {"state", to_string(detector_->state(id))},
                  {"suspicion", std::round(detector_->suspicion(id, now) * 100) / 100}};
        if (auto heard = detector_->last_heard(id)) e["silence_ms"] = to_ms(now - *heard);
        if (leading()) {
            auto ack = acked_.find(id);
            e["acked_ms"] = ack == acked_.end() ? Json(nullptr) : Json(to_ms(now - ack->second));
            e["deaf"] = deaf_.count(id) > 0;
        }
        members.push_back(std::move(e));
    }
    Json st = {{"id", self_},
            {"algo", algo_ ? algo_->name() : "none"},
            {"role", role},
            {"leader", v.leader},
            {"term", v.term},
            {"backup", v.backup},
            {"static", self_info_.is_static},
            {"members", std::move(members)},
            {"config",
             {{"heartbeat", format_duration(tunables_.heartbeat)},
              {"suspect_after", format_duration(tunables_.suspect_after)},
              {"dead_after", format_duration(tunables_.dead_after)},
              {"remove_after", format_duration(tunables_.remove_after)},
              {"detector", tunables_.detector},
              {"phi_threshold", tunables_.phi_threshold}}}};
    if (algo_) {
        Json extra = algo_->status();
        if (!extra.empty()) st[algo_->name()] = std::move(extra);
    }
    return st;
}

std::string NodeCore::set(const std::string& key, const std::string& value, Time /*now*/, Actions& a) {
    Tunables t = tunables_;
    std::string old;
    if (key == "phi_threshold") {
        double v = 0;
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
        if (ec != std::errc() || end != value.data() + value.size() || !(v > 0 && v <= 100))
            return "phi_threshold must be a number in (0, 100], not '" + value + "'";
        old = Json(t.phi_threshold).dump();
        t.phi_threshold = v;
    } else {
        Duration* field = key == "heartbeat"       ? &t.heartbeat
                          : key == "suspect_after" ? &t.suspect_after
                          : key == "dead_after"    ? &t.dead_after
                          : key == "remove_after"  ? &t.remove_after
                                                   : nullptr;
        if (!field)
            return "unknown setting '" + key + "' (heartbeat, suspect_after, dead_after, remove_after, phi_threshold)";
        auto d = parse_duration(value);
        if (!d || d->count() <= 0) return key + " must be a positive duration such as 100ms or 2s, not '" + value + "'";
        old = format_duration(*field);
        *field = *d;
    }
    if (t.suspect_after <= t.heartbeat) return "suspect_after must stay longer than heartbeat";
    if (t.dead_after < t.suspect_after) return "dead_after must not be shorter than suspect_after";
    tunables_ = t;
    heartbeat_.set_period(t.heartbeat);
    detector_->set_tunables(t);
    std::string now_value = key == "phi_threshold" ? Json(t.phi_threshold).dump() : format_duration(*parse_duration(value));
    a.trace("config.set", {{"key", key}, {"old", old}, {"value", now_value}});
    return "";
}

Actions NodeCore::leave(Time /*now*/) {
    Actions a;
    a.trace("node.leave", {{"members", members_.size()}});
    for (auto& [id, m] : members_) a.send(id, Leave{});
    return a;
}

std::vector<std::string> NodeCore::check_invariants() const {
    std::vector<std::string> bad = detector_->check_invariants();
    auto say = [&](const std::string& s) { bad.push_back("node " + std::to_string(self_) + ": " + s); };
    std::vector<NodeId> watched = detector_->peers();
    std::set<NodeId> w(watched.begin(), watched.end());
    for (auto& [id, m] : members_) {
        if (!w.count(id)) say("member " + std::to_string(id) + " is not watched");
        if (id == self_) say("is its own member");
    }
    for (NodeId id : w)
        if (!members_.count(id)) say("watches " + std::to_string(id) + ", not a member");
    for (auto& [id, t] : probing_)
        if (!members_.count(id)) say("probes " + std::to_string(id) + ", not a member");
    return bad;
}

}  // namespace bus
