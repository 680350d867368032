#include "bus/ring.hpp"

#include <algorithm>

namespace bus {

const char* to_string(Ring::Phase p) {
    switch (p) {
        case Ring::Phase::joining: return "joining";
        case Ring::Phase::electing: return "candidate";
        case Ring::Phase::leader: return "leader";
        case Ring::Phase::follower: return "follower";
    }
    return "?";
}

Ring::Ring(const ClusterConfig& cfg, NodeId self)
    : self_(self),
      hop_timeout_(cfg.tunables.answer_timeout),
      coordinator_timeout_(cfg.tunables.coordinator_timeout),
      join_wait_(cfg.tunables.join_wait),
      beacon_period_(cfg.tunables.heartbeat),
      beacon_timeout_(2 * cfg.tunables.dead_after),
      preempt_(cfg.tunables.preempt) {
    for (const NodeSpec& n : cfg.nodes) {
        ranks_[n.id] = {n.priority, n.id};
        if (n.id != self) peers_[n.id] = PeerState::unknown;
    }
}

bool Ring::outranks(NodeId a, NodeId b) const {
    auto ia = ranks_.find(a), ib = ranks_.find(b);
    return ia != ranks_.end() && ib != ranks_.end() && ia->second > ib->second;
}

NodeId Ring::successor(NodeId after) const {
    // Ring order is id order; the next member after `after`, wrapping, that is not this node,
    // not declared dead and not skipped in this election.
    std::vector<NodeId> ids;
    for (auto& [id, r] : ranks_) ids.push_back(id);
    auto it = std::upper_bound(ids.begin(), ids.end(), after);
    for (size_t k = 0; k < ids.size(); ++k, ++it) {
        if (it == ids.end()) it = ids.begin();
        NodeId id = *it;
        if (id == self_) continue;
        auto p = peers_.find(id);
        if (p != peers_.end() && p->second == PeerState::dead) continue;
        if (skipped_epoch_ == epoch_ && skipped_.count(id)) continue;
        return id;
    }
    return 0;
}

// ---- transitions --------------------------------------------------------------------------

void Ring::set_phase(Phase p, uint64_t term, Actions& a) {
    if (p == phase_) return;
    phase_ = p;
    a.trace("role", {{"role", to_string(p)}, {"term", term}});
}

void Ring::trace_leader(Actions& a) const {
    a.trace("leader", {{"algo", "ring"}, {"leader", leader_}, {"term", leader_epoch_}, {"backup", backup_}});
}

void Ring::send_hop(Hop h, Time now, Actions& a) {
    h.deadline = now + hop_timeout_;
    a.send(h.to, h.body);
    hops_.push_back(std::move(h));
}

void Ring::pass_on(Body b, Time now, Actions& a) {
    NodeId to = successor(self_);
    if (to == 0) {
        // Alone on the ring: a token of ours has "come back" at once; a coordinator stops.
        if (auto* t = std::get_if<RingElection>(&b); t && t->initiator == self_) conclude(t->ids, now, a);
        return;
    }
    send_hop(Hop{std::move(b), to, {}, 1}, now, a);
}

void Ring::start_election(Time now, const std::string& reason, Actions& a, uint64_t epoch) {
    epoch_ = epoch == 0 ? epoch_ + 1 : std::max(epoch_, epoch);
    election_epoch_ = epoch_;
    initiated_ = true;
    leader_ = 0;
    backup_ = 0;
    next_beacon_ = Time::max();
    deadline_ = now + coordinator_timeout_;
    NodeId next = successor(self_);
    a.trace("election.start", {{"algo", "ring"}, {"term", epoch_}, {"reason", reason},
                               {"to", next ? Json::array({next}) : Json::array()}});
    Phase before = phase_;
    phase_ = Phase::electing;
    if (before != Phase::electing) a.trace("role", {{"role", "candidate"}, {"term", epoch_}});
    pass_on(RingElection{epoch_, self_, {self_}}, now, a);
}

void Ring::conclude(const std::vector<NodeId>& ids, Time now, Actions& a) {
    // The token has been round: the best of those it collected leads, the next is the backup.
    // Only ids still on the ring: one that left while the token went round has no rank (and
    // sorting by rank with it would not be a strict weak order), one declared dead cannot lead.
    std::vector<NodeId> all;
    for (NodeId id : ids) {
        auto p = peers_.find(id);
        if (ranks_.count(id) && (id == self_ || (p != peers_.end() && p->second != PeerState::dead))) all.push_back(id);
    }
    if (std::find(all.begin(), all.end(), self_) == all.end()) all.push_back(self_);
    std::sort(all.begin(), all.end(), [&](NodeId x, NodeId y) { return outranks(x, y); });
    NodeId winner = all[0], backup = all.size() > 1 ? all[1] : 0;
    a.trace("ring.result", {{"term", election_epoch_}, {"ids", ids}, {"leader", winner}, {"backup", backup}});
    if (winner == self_) return become_leader(backup, now, a);
    adopt(winner, election_epoch_, backup, now, a);
    pass_on(Coordinator{election_epoch_, winner, backup}, now, a);
}

void Ring::become_leader(NodeId backup, Time now, Actions& a) {
    set_phase(Phase::leader, election_epoch_, a);
    leader_ = self_;
    leader_epoch_ = election_epoch_;
    backup_ = backup;
    deadline_ = Time::max();
    next_beacon_ = now + beacon_period_;
    trace_leader(a);
    Coordinator c{leader_epoch_, self_, backup_};
    a.publish("leader", c);
    pass_on(c, now, a);  // around the ring
}

void Ring::adopt(NodeId leader, uint64_t epoch, NodeId backup, Time now, Actions& a) {
    bool changed = leader != leader_ || epoch != leader_epoch_ || backup != backup_;
    set_phase(Phase::follower, epoch, a);
    leader_ = leader;
    leader_epoch_ = epoch;
    backup_ = backup;
    leader_heard_ = now;
    deadline_ = Time::max();
    next_beacon_ = Time::max();
    initiated_ = false;
    if (changed) trace_leader(a);
}

// ---- events ---------------------------------------------------------------------------------

Actions Ring::start(Time now) {
    Actions a;
    phase_ = Phase::joining;
    deadline_ = now + join_wait_;
    a.trace("role", {{"role", "joining"}, {"term", epoch_}});
    return a;
}

Actions Ring::on_stall(Time now) {
    Actions a;
    leader_ = 0;
    backup_ = 0;
    next_beacon_ = Time::max();
    hops_.clear();
    set_phase(Phase::joining, epoch_, a);
    deadline_ = now + join_wait_;
    join_reason_ = "resumed after a stall";
    return a;
}

Actions Ring::on_message(NodeId from, const Envelope& env, Time now) {
    Actions a;
    if (!ranks_.count(from)) return a;
    if (auto* t = std::get_if<RingElection>(&env.body)) {
        handle_token(from, *t, now, a);
    } else if (auto* k = std::get_if<RingAck>(&env.body)) {
        auto it = std::find_if(hops_.begin(), hops_.end(), [&](const Hop& h) { return h.to == from; });
        if (it != hops_.end()) hops_.erase(it);
        (void)k;
    } else if (auto* c = std::get_if<Coordinator>(&env.body)) {
        a.reply(from, RingAck{c->epoch});
        handle_claim(from, c->epoch, c->leader, c->backup, true, now, a);
    } else if (auto* l = std::get_if<Leader>(&env.body)) {
        handle_claim(from, l->epoch, l->leader, l->backup, false, now, a);
    }
    return a;
}

void Ring::handle_token(NodeId from, const RingElection& m, Time now, Actions& a) {
    a.reply(from, RingAck{m.epoch});
    if (m.epoch < epoch_ || !ranks_.count(m.initiator)) {
        a.trace("election.ignore", {{"from", from}, {"type", "RING_ELECTION"}, {"epoch", m.epoch}, {"current", epoch_},
                                    {"reason", "stale epoch"}}, TraceLevel::msgs);
        return;
    }
    epoch_ = std::max(epoch_, m.epoch);
    bool in_this = phase_ == Phase::electing && election_epoch_ == m.epoch;
    if (m.initiator == self_) {
        if (in_this && initiated_) conclude(m.ids, now, a);  // back home: everyone is in it
        return;
    }
    if (outranks(m.initiator, self_)) {
        // A better initiator: join its token and pass it on.
        if (!in_this) {
            election_epoch_ = m.epoch;
            initiated_ = false;
            leader_ = 0;
            next_beacon_ = Time::max();
            deadline_ = now + coordinator_timeout_;
            set_phase(Phase::electing, m.epoch, a);
        }
        RingElection t = m;
        if (std::find(t.ids.begin(), t.ids.end(), self_) == t.ids.end()) t.ids.push_back(self_);
        pass_on(std::move(t), now, a);
    } else if (!in_this) {
        // A worse initiator, and we are not in this election yet: our own token replaces it.
        start_election(now, "token from a lower initiator " + std::to_string(m.initiator), a, m.epoch);
    }
    // else: swallowed — our own (or a better) token covers this election.
}

void Ring::handle_claim(NodeId from, uint64_t epoch, NodeId leader, NodeId backup, bool forward, Time now,
                        Actions& a) {
    if (!ranks_.count(leader) || (backup != 0 && !ranks_.count(backup))) return;
    if (epoch < epoch_) return;  // stale
    if (leader == leader_ && epoch == leader_epoch_) {
        leader_heard_ = now;
        if (phase_ == Phase::follower && backup != backup_) {
            backup_ = backup;
            trace_leader(a);
        }
        return;  // a coordinator that has come full circle stops here
    }
    if (epoch == leader_epoch_ && leader_ != 0 && outranks(leader_, leader)) return;
    epoch_ = std::max(epoch_, epoch);
    if (leader == self_) {
        if (phase_ != Phase::leader) start_election(now, "told it leads epoch " + std::to_string(epoch), a);
        return;
    }
    if ((preempt_ || phase_ == Phase::leader) && outranks(self_, leader)) {
        if (phase_ == Phase::electing && election_epoch_ >= epoch) return;
        start_election(now, "outranks leader " + std::to_string(leader), a);
        return;
    }
    adopt(leader, epoch, backup, now, a);
    if (forward) pass_on(Coordinator{epoch, leader, backup}, now, a);
    (void)from;
}

Actions Ring::on_peer(const PeerEvent& ev, Time now) {
    Actions a;
    if (!peers_.count(ev.peer)) return a;
    peers_[ev.peer] = ev.state;
    if (ev.peer == leader_ && phase_ == Phase::follower &&
        (ev.state == PeerState::dead || (ev.state == PeerState::alive && ev.restarted))) {
        start_election(now, "leader " + std::to_string(ev.peer) + (ev.restarted ? " restarted" : " dead"), a);
    } else if (ev.state == PeerState::dead) {
        for (Hop& h : hops_)
            if (h.to == ev.peer) h.deadline = now, h.tries = 2;  // skip it at once (ring repair)
    }
    return a;
}

Actions Ring::on_member(const MemberInfo& m, bool joined, Time now) {
    if (m.id == self_) return {};
    if (joined) {
        ranks_[m.id] = {m.priority, m.id};  // its place on the ring
        peers_.try_emplace(m.id, PeerState::unknown);
        return {};
    }
    Actions a;
    if (peers_.count(m.id) && m.id == leader_ && phase_ == Phase::follower) {
        peers_[m.id] = PeerState::dead;
        start_election(now, "leader " + std::to_string(m.id) + " left", a);
    } else {
        a = on_peer(PeerEvent{m.id, PeerState::dead, {}, 0, false, 0}, now);
    }
    peers_.erase(m.id);
    ranks_.erase(m.id);  // off the ring
    return a;
}

Actions Ring::on_tick(Time now) {
    Actions a;
    // Unacknowledged hops: try once more, then skip that successor for this election.
    std::vector<Hop> due;
    for (auto it = hops_.begin(); it != hops_.end();) {
        if (it->deadline <= now) {
            due.push_back(std::move(*it));
            it = hops_.erase(it);
        } else {
            ++it;
        }
    }
    for (Hop& h : due) {
        if (h.tries < 2) {
            ++h.tries;
            send_hop(std::move(h), now, a);
            continue;
        }
        if (skipped_epoch_ != epoch_) skipped_.clear(), skipped_epoch_ = epoch_;
        skipped_.insert(h.to);
        a.trace("ring.skip", {{"peer", h.to}, {"term", epoch_}, {"reason", "no RING_ACK"}}, TraceLevel::state);
        pass_on(std::move(h.body), now, a);
    }
    if (now >= deadline_) {
        deadline_ = Time::max();
        if (phase_ == Phase::joining) start_election(now, join_reason_, a);
        else if (phase_ == Phase::electing) start_election(now, "no COORDINATOR came round", a);
    }
    if (phase_ == Phase::leader && now >= next_beacon_) {
        a.publish("leader", Leader{leader_epoch_, self_, backup_});
        next_beacon_ = now + beacon_period_;
    }
    if (phase_ == Phase::follower && now >= leader_heard_ + beacon_timeout_)
        start_election(now, "leader " + std::to_string(leader_) + " stopped announcing", a);
    return a;
}

Time Ring::next_deadline() const {
    Time t = std::min(deadline_, next_beacon_);
    if (phase_ == Phase::follower) t = std::min(t, leader_heard_ + beacon_timeout_);
    for (const Hop& h : hops_) t = std::min(t, h.deadline);
    return t;
}

LeaderView Ring::view() const {
    if (phase_ != Phase::leader && phase_ != Phase::follower) return {};
    return {leader_, leader_epoch_, backup_};
}

std::vector<std::string> Ring::check_invariants() const {
    std::vector<std::string> bad;
    auto say = [&](const std::string& s) { bad.push_back("ring " + std::to_string(self_) + ": " + s); };
    if (phase_ == Phase::leader && leader_ != self_) say("leads but follows " + std::to_string(leader_));
    if (phase_ == Phase::follower && (leader_ == 0 || leader_ == self_)) say("follower without a leader");
    if (leader_epoch_ > epoch_) say("leader epoch above the newest seen");
    if (phase_ == Phase::electing && election_epoch_ > epoch_) say("election epoch above the newest seen");
    if ((phase_ == Phase::joining || phase_ == Phase::electing) && deadline_ == Time::max())
        say(std::string(to_string(phase_)) + " without a deadline");
    return bad;
}

}  // namespace bus
