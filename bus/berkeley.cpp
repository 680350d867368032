#include "bus/berkeley.hpp"

#include <algorithm>
#include <cmath>

namespace bus {

AverageResult berkeley_average(const std::vector<ClockSample>& samples, Duration max_rtt, Duration max_deviation) {
    AverageResult r;
    std::vector<const ClockSample*> ok;
    for (const ClockSample& s : samples) {
        int64_t limit = s.rtt_limit_us > 0 ? std::min<int64_t>(s.rtt_limit_us, max_rtt.count()) : max_rtt.count();
        if (s.rtt_us > limit)
            r.too_slow.push_back(s.node);  // Berkeley step 2: its estimate could be off by rtt/2
        else
            ok.push_back(&s);
    }
    if (ok.empty()) return r;
    // Step 3: the median is robust to a minority of wild clocks; the average of those near it
    // is the fault-tolerant average.
    std::vector<int64_t> offs;
    for (auto* s : ok) offs.push_back(s->offset_us);
    std::sort(offs.begin(), offs.end());
    size_t n = offs.size();
    double median = n % 2 ? static_cast<double>(offs[n / 2])
                          : (static_cast<double>(offs[n / 2 - 1]) + static_cast<double>(offs[n / 2])) / 2;
    double sum = 0;
    for (auto* s : ok) {
        if (std::abs(static_cast<double>(s->offset_us) - median) > static_cast<double>(max_deviation.count())) {
            r.too_far.push_back(s->node);
        } else {
            r.used.push_back(s->node);
            sum += static_cast<double>(s->offset_us);
        }
    }
    r.average_us = static_cast<int64_t>(std::llround(sum / static_cast<double>(r.used.size())));
    // Step 4: each its own delta, the clocks left out of the average included.
    for (auto* s : ok) r.delta_us[s->node] = r.average_us - s->offset_us;
    return r;
}

Berkeley::Berkeley(const ClusterConfig& cfg, NodeId self, VirtualTime clock, int64_t real_minus_steady_us,
                   BerkeleyConfig bc)
    : self_(self), bc_(bc), bully_(cfg, self), clock_(clock), real_minus_steady_(real_minus_steady_us) {
    for (const NodeSpec& n : cfg.nodes)
        if (n.id != self) peers_.push_back(n.id);
}

Actions Berkeley::start(Time now) {
    Actions a = bully_.start(now);
    next_offset_trace_ = now;  // the first clock.offset at once: the "before" of every story
    trace_offset(now, a);
    return a;
}

void Berkeley::trace_offset(Time now, Actions& a) {
    int64_t real = real_us(now);
    a.trace("clock.offset", {{"offset_us", clock_.offset_us(real)}, {"rate_ppm", clock_.rate_ppm()}});
    next_offset_trace_ = now + bc_.offset_trace;
}

void Berkeley::after_election(Time now, Actions& a) {
    uint64_t epoch = is_master() ? bully_.view().term : 0;
    if (epoch == master_epoch_) return;
    // A new master (maybe us) or none: rounds of the old epoch are over, and rate estimates
    // against the old reference mean nothing.
    master_epoch_ = epoch;
    collecting_ = false;
    polled_at_.clear();
    samples_.clear();
    corrected_at_.clear();
    rate_window_.clear();
    best_rtt_.clear();
    round_deadline_ = Time::max();
    next_round_ = epoch ? now : Time::max();
    if (epoch) a.trace("clock.master", {{"epoch", epoch}});
}

Actions Berkeley::on_peer(const PeerEvent& ev, Time now) {
    if (ev.state == PeerState::dead)
        dead_.insert(ev.peer);
    else if (ev.state == PeerState::alive)
        dead_.erase(ev.peer);
    Actions a = bully_.on_peer(ev, now);
    after_election(now, a);
    return a;
}

Actions Berkeley::on_member(const MemberInfo& m, bool joined, Time now) {
    if (m.id == self_) return {};
    auto it = std::find(peers_.begin(), peers_.end(), m.id);
    if (joined && it == peers_.end()) peers_.push_back(m.id);
    if (!joined && it != peers_.end()) peers_.erase(it);
    if (!joined) dead_.erase(m.id), polled_at_.erase(m.id);
    Actions a = bully_.on_member(m, joined, now);
    after_election(now, a);
    return a;
}

void Berkeley::start_round(Time now, Actions& a) {
    ++round_;
    collecting_ = true;
    samples_ = {ClockSample{self_, 0, 0}};  // the master's own clock, offset 0 by definition
    polled_at_.clear();
    for (NodeId p : peers_) {
        if (dead_.count(p)) continue;
        polled_at_[p] = now;
        a.send(p, ClockPoll{master_epoch_, round_});
    }
    round_deadline_ = now + bc_.reply_timeout;
    next_round_ = now + bc_.interval;
    if (polled_at_.empty()) finish_round(now, a);
}

void Berkeley::finish_round(Time now, Actions& a) {
    collecting_ = false;
    round_deadline_ = Time::max();
    AverageResult r = berkeley_average(samples_, bc_.max_rtt, bc_.max_deviation);
    Json missing = Json::array();
    for (auto& [p, t] : polled_at_) missing.push_back(p);
    Json dead = Json::array();
    for (NodeId p : dead_) dead.push_back(p);
    a.trace("clock.round", {{"round", round_},
                            {"epoch", master_epoch_},
                            {"average_us", r.average_us},
                            {"used", r.used},
                            {"too_far", r.too_far},
                            {"too_slow", r.too_slow},
                            {"missing", missing},
                            {"dead", dead}});
    std::set<NodeId> used(r.used.begin(), r.used.end());
    for (auto& [node, delta] : r.delta_us) {
        // Step 5, frequency discipline: corrected to the average last round, off again by
        // -delta now: it runs -delta / elapsed fast relative to the ensemble.
        double rate = 0;
        auto last = corrected_at_.find(node);
        if (used.count(node) && last != corrected_at_.end() && now > last->second) {
            RateWindow& w = rate_window_[node];
            w.residual_us += -static_cast<double>(delta);
            w.elapsed_us += static_cast<double>((now - last->second).count());
            if (w.elapsed_us >= static_cast<double>(bc_.rate_window.count())) {
                double rel_ppm = w.residual_us / w.elapsed_us * 1e6;  // it runs this fast relative to the ensemble
                rate = std::clamp(-bc_.rate_gain * rel_ppm, -bc_.max_rate_step_ppm, bc_.max_rate_step_ppm);
                w = RateWindow{};
            }
        }
        if (used.count(node)) {
            corrected_at_[node] = now;
        } else {
            corrected_at_.erase(node);  // too far from the others: its history is no reference
            rate_window_.erase(node);
        }
        if (node == self_)
            apply(now, delta, rate, round_, self_, a);
        else
            a.send(node, ClockAdjust{master_epoch_, round_, delta, rate});
    }
    ++rounds_completed_;
}

void Berkeley::apply(Time now, int64_t delta_us, double rate_ppm, uint64_t round, NodeId from, Actions& a) {
    if (bc_.broken) {
        a.trace("clock.ignore", {{"from", from}, {"round", round}, {"reason", "broken clock: cannot be set"}});
        return;
    }
    int64_t real = real_us(now);
    bool step = std::abs(delta_us) >= bc_.step_threshold.count();
    if (step)
        clock_.step(real, Duration(delta_us));
    else
        clock_.slew(real, Duration(delta_us), bc_.slew_period);  // replaces a pending slew
    if (rate_ppm != 0) clock_.adjust_rate(real, rate_ppm);
    a.trace("clock.adjust", {{"delta_us", delta_us},
                             {"rate_ppm", rate_ppm},
                             {"mode", step ? "step" : "slew"},
                             {"round", round},
                             {"from", from}});
    trace_offset(now, a);
}

Actions Berkeley::on_message(NodeId from, const Envelope& env, Time now) {
    Actions a;
    if (auto* m = std::get_if<ClockPoll>(&env.body)) {
        a.reply(from, ClockReading{m->epoch, m->round, clock_.at(real_us(now))});
    } else if (auto* r = std::get_if<ClockReading>(&env.body)) {
        auto it = polled_at_.find(from);
        if (collecting_ && r->epoch == master_epoch_ && r->round == round_ && it != polled_at_.end()) {
            int64_t rtt = (now - it->second).count();
            int64_t offset = r->time_us + rtt / 2 - clock_.at(real_us(now));
            // Judge this round trip against the member's usual one (Berkeley step 2).
            auto [b, fresh] = best_rtt_.emplace(from, rtt);
            int64_t limit = fresh ? 0 : std::max(3 * b->second, b->second + 1000);
            b->second = std::min(rtt, b->second + 50);
            samples_.push_back({from, offset, rtt, limit});
            polled_at_.erase(it);
            a.trace("clock.sample", {{"peer", from}, {"rtt_us", rtt}, {"offset_us", offset}});
            if (polled_at_.empty()) finish_round(now, a);
        }
    } else if (auto* c = std::get_if<ClockAdjust>(&env.body)) {
        LeaderView v = bully_.view();
        if (from == v.leader && c->epoch == v.term && from != self_)
            apply(now, c->delta_us, c->rate_ppm, c->round, from, a);
        else
            a.trace("clock.ignore", {{"from", from}, {"round", c->round}, {"epoch", c->epoch},
                                     {"reason", "not from the current master's epoch"}});
    } else {
        a = bully_.on_message(from, env, now);
    }
    after_election(now, a);
    return a;
}

Actions Berkeley::on_tick(Time now) {
    Actions a;
    if (bully_.next_deadline() <= now) a = bully_.on_tick(now);
    after_election(now, a);
    if (now >= next_offset_trace_) trace_offset(now, a);
    if (collecting_ && now >= round_deadline_) finish_round(now, a);
    if (is_master() && !collecting_ && now >= next_round_) start_round(now, a);
    return a;
}

Time Berkeley::next_deadline() const {
    Time t = std::min({bully_.next_deadline(), next_offset_trace_, round_deadline_});
    if (is_master() && !collecting_) t = std::min(t, next_round_);
    return t;
}

}  // namespace bus
