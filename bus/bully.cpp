#include "bus/bully.hpp"

namespace bus {

const char* to_string(Bully::Phase p) {
    switch (p) {
        case Bully::Phase::joining: return "joining";
        case Bully::Phase::candidate: return "candidate";
        case Bully::Phase::waiting: return "waiting";
        case Bully::Phase::leader: return "leader";
        case Bully::Phase::follower: return "follower";
    }
    return "?";
}

Bully::Bully(const ClusterConfig& cfg, NodeId self)
    : self_(self),
      answer_timeout_(cfg.tunables.answer_timeout),
      coordinator_timeout_(cfg.tunables.coordinator_timeout),
      join_wait_(cfg.tunables.join_wait),
      beacon_period_(cfg.tunables.heartbeat),
      beacon_timeout_(2 * cfg.tunables.dead_after),
      preempt_(cfg.tunables.preempt) {
    for (const NodeSpec& n : cfg.nodes) {
        ranks_[n.id] = Rank{n.priority, n.id};
        if (n.id != self) peers_[n.id] = PeerState::unknown;
    }
}

bool Bully::outranks(NodeId a, NodeId b) const {
    auto ia = ranks_.find(a), ib = ranks_.find(b);
    if (ia == ranks_.end() || ib == ranks_.end()) return false;
    return ia->second > ib->second;
}

NodeId Bully::next_in_line() const {
    NodeId best = 0;
    for (auto& [id, st] : peers_) {
        if (st != PeerState::alive) continue;  // a suspect is likely gone: not a good successor
        if (best == 0 || outranks(id, best)) best = id;
    }
    return best;
}

// ---- transitions --------------------------------------------------------------------------

void Bully::set_phase(Phase p, uint64_t term, Actions& a) {
    if (p == phase_) return;
    phase_ = p;
    a.trace("role", {{"role", to_string(p)}, {"term", term}});
}

void Bully::trace_leader(Actions& a) const {
    a.trace("leader", {{"algo", "bully"}, {"leader", leader_}, {"term", leader_epoch_}, {"backup", backup_}});
}

void Bully::ignore(NodeId from, MsgType type, uint64_t epoch, const std::string& why, Actions& a) const {
    a.trace("election.ignore",
            {{"from", from}, {"type", info(type).name}, {"epoch", epoch}, {"current", epoch_}, {"reason", why}},
            TraceLevel::msgs);
}

void Bully::hold_election(Time now, const std::string& reason, Actions& a, uint64_t epoch) {
    epoch_ = epoch == 0 ? epoch_ + 1 : std::max(epoch_, epoch);
    election_epoch_ = epoch_;
    leader_ = 0;
    backup_ = 0;
    next_beacon_ = Time::max();
    Json to = Json::array();
    for (auto& [id, st] : peers_)
        if (outranks(id, self_) && st != PeerState::dead) to.push_back(id);
    a.trace("election.start", {{"algo", "bully"}, {"term", epoch_}, {"reason", reason}, {"to", to}});
    // The phase is traced before the messages go, so a trace reads cause -> effect.
    Phase before = phase_;
    phase_ = Phase::candidate;
    if (before != Phase::candidate) a.trace("role", {{"role", "candidate"}, {"term", epoch_}});
    if (to.empty()) return become_leader(now, a);  // nobody better is alive: win at once
    int64_t priority = ranks_.at(self_).priority;
    asked_.clear();
    for (auto& id : to) {
        a.send(id.get<NodeId>(), Election{epoch_, priority});
        asked_.insert(id.get<NodeId>());
    }
    deadline_ = now + answer_timeout_;
}

void Bully::become_leader(Time now, Actions& a) {
    set_phase(Phase::leader, election_epoch_, a);
    leader_ = self_;
    leader_epoch_ = election_epoch_;
    backup_ = next_in_line();
    deadline_ = Time::max();
    next_beacon_ = now + beacon_period_;
    trace_leader(a);
    Coordinator c{leader_epoch_, self_, backup_};
    // To every peer, even those declared dead: a node on the far side of a healed
    // partition, or one wrongly convicted, learns of us at once.
    for (auto& [id, st] : peers_) a.send(id, c);
    a.publish("leader", c);
}

void Bully::adopt(NodeId leader, uint64_t epoch, NodeId backup, Time now, Actions& a) {
    bool changed = leader != leader_ || epoch != leader_epoch_ || backup != backup_;
    leader_heard_ = now;
    set_phase(Phase::follower, epoch, a);
    leader_ = leader;
    leader_epoch_ = epoch;
    backup_ = backup;
    deadline_ = Time::max();
    next_beacon_ = Time::max();
    if (changed) trace_leader(a);
}

void Bully::refresh_backup(Actions& a) {
    if (phase_ != Phase::leader) return;
    NodeId b = next_in_line();
    if (b == backup_) return;
    backup_ = b;
    trace_leader(a);  // followers learn it from the next beacon
}

// ---- events ---------------------------------------------------------------------------------

Actions Bully::start(Time now) {
    Actions a;
    phase_ = Phase::joining;
    deadline_ = now + join_wait_;
    a.trace("role", {{"role", "joining"}, {"term", epoch_}});
    return a;
}

Actions Bully::on_stall(Time now) {
    // Whatever we led or followed may be stale: rejoin, listening for the current leader.
    Actions a;
    stalled_at_ = now;
    leader_ = 0;
    backup_ = 0;
    next_beacon_ = Time::max();
    asked_.clear();
    set_phase(Phase::joining, epoch_, a);
    deadline_ = now + join_wait_;
    join_reason_ = "resumed after a stall";
    return a;
}

Actions Bully::on_message(NodeId from, const Envelope& env, Time now) {
    Actions a;
    if (!is_node(from)) return a;
    std::visit(
        [&](const auto& m) {
            using T = std::decay_t<decltype(m)>;
            if constexpr (std::is_same_v<T, Election>)
                handle_election(from, m, now, a);
            else if constexpr (std::is_same_v<T, Answer>)
                handle_answer(from, m, now, a);
            else if constexpr (std::is_same_v<T, Coordinator>)
                handle_claim(from, MsgType::coordinator, m.epoch, m.leader, m.backup, now, a);
            else if constexpr (std::is_same_v<T, Leader>)
                handle_claim(from, MsgType::leader, m.epoch, m.leader, m.backup, now, a);
        },
        env.body);
    return a;
}

void Bully::handle_election(NodeId from, const Election& m, Time now, Actions& a) {
    if (!outranks(self_, from))
        return ignore(from, MsgType::election, m.epoch, "ELECTION from a node that outranks us", a);
    if (now == stalled_at_) return ignore(from, MsgType::election, m.epoch, "queued while this node was stopped", a);
    // "I outrank you and I am alive": the sender must not win.
    a.reply(from, Answer{m.epoch});
    if (leader_ != 0 && m.epoch <= leader_epoch_) {
        // That election is already decided here: catch the sender up instead of re-running it.
        a.send(from, Coordinator{leader_epoch_, leader_, backup_});
        return;
    }
    epoch_ = std::max(epoch_, m.epoch);
    if (electing() && election_epoch_ >= m.epoch) return;  // already holding one at least as new
    // Joining: a leader's beacon may still tell us the election is long decided (the sender
    // may be stale: input queued while we were stopped). Hold ours when the wait ends.
    if (phase_ == Phase::joining) return;
    // Join the sender's election if it is the newest we know; epochs climbing one per rank
    // would make every node above re-run its election for each step.
    hold_election(now, "ELECTION from " + std::to_string(from), a, m.epoch == epoch_ ? m.epoch : 0);
}

void Bully::handle_answer(NodeId from, const Answer& m, Time now, Actions& a) {
    if (phase_ != Phase::candidate || m.epoch != election_epoch_)
        return ignore(from, MsgType::answer, m.epoch, "not holding that election", a);
    if (!outranks(from, self_))
        return ignore(from, MsgType::answer, m.epoch, "ANSWER from a node we outrank", a);
    set_phase(Phase::waiting, election_epoch_, a);
    deadline_ = now + coordinator_timeout_;
}

void Bully::handle_claim(NodeId from, MsgType type, uint64_t epoch, NodeId leader, NodeId backup, Time now,
                         Actions& a) {
    if (!is_node(leader) || (backup != 0 && !is_node(backup)))
        return ignore(from, type, epoch, "names a node not in the cluster file", a);
    if (epoch < epoch_) return ignore(from, type, epoch, "stale epoch", a);
    if (leader == leader_ && epoch == leader_epoch_) {
        leader_heard_ = now;
        // The leader we follow: only the backup may have moved on.
        if (phase_ == Phase::follower && backup != backup_) {
            backup_ = backup;
            trace_leader(a);
        }
        return;
    }
    if (epoch == leader_epoch_ && leader_ != 0 && outranks(leader_, leader))
        return ignore(from, type, epoch, "same epoch, our leader outranks it", a);
    epoch_ = std::max(epoch_, epoch);
    if (leader == self_) {
        // Someone relays a claim for us that this incarnation never made: re-establish it.
        if (phase_ != Phase::leader || epoch > leader_epoch_)
            hold_election(now, "told it leads epoch " + std::to_string(epoch), a);
        return;
    }
    // A sitting leader yields only to a better one, whatever `preempt` says: a lower node
    // that won an election alone (cut off, it heard nobody) must not depose it after a heal.
    if ((preempt_ || phase_ == Phase::leader) && outranks(self_, leader)) {
        if (electing() && election_epoch_ >= epoch) return;  // our election will settle it
        hold_election(now, std::string(phase_ == Phase::leader ? "re-asserts against leader " : "outranks leader ") +
                               std::to_string(leader), a);
        return;
    }
    adopt(leader, epoch, backup, now, a);
}

Actions Bully::on_peer(const PeerEvent& ev, Time now) {
    Actions a;
    if (!peers_.count(ev.peer)) return a;
    peers_[ev.peer] = ev.state;
    if (ev.peer == leader_ && phase_ == Phase::follower &&
        (ev.state == PeerState::dead || (ev.state == PeerState::alive && ev.restarted))) {
        // A restarted leader is a new incarnation that leads nothing.
        hold_election(now, "leader " + std::to_string(ev.peer) + (ev.restarted ? " restarted" : " dead"), a);
    } else if (ev.state == PeerState::dead && phase_ == Phase::candidate && asked_.erase(ev.peer) &&
               asked_.empty()) {
        become_leader(now, a);  // everyone we asked is dead: nobody better is left to answer
    } else {
        refresh_backup(a);
    }
    return a;
}

Actions Bully::on_member(const MemberInfo& m, bool joined, Time now) {
    if (m.id == self_) return {};
    if (joined) {
        ranks_[m.id] = Rank{m.priority, m.id};
        peers_.try_emplace(m.id, PeerState::unknown);
        return {};
    }
    // Gone at once: as if declared dead (an election if it led), then forgotten. Its rank
    // stays, so that messages still on their way from it are ordered as before.
    Actions a;
    if (peers_.count(m.id) && m.id == leader_ && phase_ == Phase::follower) {
        peers_[m.id] = PeerState::dead;
        hold_election(now, "leader " + std::to_string(m.id) + " left", a);
    } else {
        a = on_peer(PeerEvent{m.id, PeerState::dead, {}, 0, false, 0}, now);
    }
    peers_.erase(m.id);
    asked_.erase(m.id);
    return a;
}

Actions Bully::on_tick(Time now) {
    Actions a;
    if (now >= deadline_) {
        deadline_ = Time::max();
        switch (phase_) {
            case Phase::joining: hold_election(now, join_reason_, a); break;
            case Phase::candidate: become_leader(now, a); break;  // no ANSWER: nobody better is alive
            case Phase::waiting: hold_election(now, "no COORDINATOR after ANSWER", a); break;
            default: break;
        }
    }
    if (phase_ == Phase::follower && now >= leader_heard_ + beacon_timeout_)
        hold_election(now, "leader " + std::to_string(leader_) + " stopped announcing", a);
    if (phase_ == Phase::leader && now >= next_beacon_) {
        a.publish("leader", Leader{leader_epoch_, self_, backup_});
        next_beacon_ = now + beacon_period_;
    }
    return a;
}

Time Bully::next_deadline() const {
    Time t = std::min(deadline_, next_beacon_);
    if (phase_ == Phase::follower) t = std::min(t, leader_heard_ + beacon_timeout_);
    return t;
}

LeaderView Bully::view() const {
    if (phase_ != Phase::leader && phase_ != Phase::follower) return {};
    return {leader_, leader_epoch_, backup_};
}

std::vector<std::string> Bully::check_invariants() const {
    std::vector<std::string> bad;
    auto say = [&](const std::string& s) { bad.push_back("bully " + std::to_string(self_) + ": " + s); };
    if (phase_ == Phase::leader && leader_ != self_) say("leads but follows " + std::to_string(leader_));
    if (phase_ == Phase::follower && (leader_ == 0 || leader_ == self_))
        say("follower of " + std::to_string(leader_));
    if ((phase_ == Phase::joining || electing()) && leader_ != 0)
        say(std::string(to_string(phase_)) + " with a leader");
    if (leader_epoch_ > epoch_) say("leader epoch above the newest epoch seen");
    if (election_epoch_ > epoch_) say("election epoch above the newest epoch seen");
    if (electing() && election_epoch_ != epoch_) say("electing in an epoch older than the newest seen");
    if ((phase_ == Phase::joining || electing()) && deadline_ == Time::max())
        say(std::string(to_string(phase_)) + " without a deadline");
    if ((phase_ == Phase::leader) != (next_beacon_ != Time::max())) say("beacon scheduled iff leading, violated");
    return bad;
}

}  // namespace bus
