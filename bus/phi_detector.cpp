#include "bus/phi_detector.hpp"

#include <cmath>

namespace bus {

double PhiAccrualDetector::phi_of(Duration elapsed, double mean_us, double std_us) {
    // Akka's logistic approximation of the normal CDF, in log form so that a long silence
    // gives a large finite phi rather than infinity.
    double y = (static_cast<double>(elapsed.count()) - mean_us) / std_us;
    double k = y * (1.5976 + 0.070566 * y * y);  // -ln(e) in Akka's e = exp(-k)
    if (y > 0) return k / std::log(10.0) + std::log10(1.0 + std::exp(-k));  // -log10(e / (1 + e))
    return -std::log10(1.0 - 1.0 / (1.0 + std::exp(-k)));
}

PhiConfig PhiAccrualDetector::config_for(const Tunables& t) {
    PhiConfig c;
    c.first_interval = t.heartbeat;
    c.min_std = t.heartbeat / 2;
    c.acceptable_pause = 2 * t.heartbeat;
    c.threshold = t.phi_threshold;
    c.dead_threshold = 2 * t.phi_threshold;
    return c;
}

double PhiAccrualDetector::peer_phi(const Peer& p, Time now) const {
    Duration elapsed = now - p.last_heard;
    if (p.inc == 0) elapsed -= startup_grace_;  // never heard: the same grace as the fixed detector
    if (elapsed.count() < 0) elapsed = Duration(0);
    size_t n = p.intervals.size();
    double mean = n ? p.sum / static_cast<double>(n) : static_cast<double>(cfg_.first_interval.count());
    double var = n ? std::max(0.0, p.sum_sq / static_cast<double>(n) - mean * mean) : 0.0;
    double sd = std::max(std::sqrt(var), static_cast<double>(cfg_.min_std.count()));
    return phi_of(elapsed, mean + static_cast<double>(cfg_.acceptable_pause.count()), sd);
}

void PhiAccrualDetector::add_peer(NodeId peer, Time now) {
    Peer p;
    p.last_heard = now;
    peers_.try_emplace(peer, std::move(p));
}

std::vector<PeerEvent> PhiAccrualDetector::on_heard(NodeId peer, uint64_t inc, std::optional<uint64_t> hb_seq,
                                                    Time now) {
    auto it = peers_.find(peer);
    if (it == peers_.end()) return {};
    Peer& p = it->second;
    if (inc < p.inc) return {};  // an older incarnation's frame still in flight
    bool restarted = p.inc != 0 && inc != p.inc;
    std::vector<PeerEvent> out;
    if (p.state != PeerState::alive || restarted) {
        PeerEvent e{peer, PeerState::alive, now - p.last_heard, inc, restarted};
        out.push_back(e);
    }
    if (restarted) {  // a new process: its rhythm is learned afresh
        p.intervals.clear();
        p.sum = p.sum_sq = 0;
        p.last_seq.reset();
    }
    p.state = PeerState::alive;
    p.last_heard = std::max(p.last_heard, now);
    p.inc = inc;
    if (hb_seq) {
        // Only consecutive heartbeats make an interval (a lost one would look like a long
        // gap), and only if both arrived after the last reset (not the burst read on waking).
        if (p.last_seq && *hb_seq == *p.last_seq + 1 && p.last_beat > reset_at_ && now > reset_at_) {
            int64_t iv = (now - p.last_beat).count();
            p.intervals.push_back(iv);
            p.sum += static_cast<double>(iv);
            p.sum_sq += static_cast<double>(iv) * static_cast<double>(iv);
            if (p.intervals.size() > cfg_.window) {
                double old = static_cast<double>(p.intervals.front());
                p.sum -= old;
                p.sum_sq -= old * old;
                p.intervals.pop_front();
            }
        }
        p.last_seq = hb_seq;
        p.last_beat = now;
    }
    return out;
}

std::vector<PeerEvent> PhiAccrualDetector::on_tick(Time now) {
    std::vector<PeerEvent> out;
    for (auto& [id, p] : peers_) {
        if (p.state == PeerState::dead) continue;
        double phi = peer_phi(p, now);
        Duration silence = now - p.last_heard;
        if (p.state != PeerState::suspect && phi >= cfg_.threshold) {
            p.state = PeerState::suspect;
            PeerEvent e{id, PeerState::suspect, silence, p.inc, false};
            e.phi = phi;
            out.push_back(e);
        }
        if (p.state == PeerState::suspect && phi >= cfg_.dead_threshold) {
            p.state = PeerState::dead;
            PeerEvent e{id, PeerState::dead, silence, p.inc, false};
            e.phi = phi;
            out.push_back(e);
        }
    }
    return out;
}

Time PhiAccrualDetector::crossing(const Peer& p, double level) const {
    // phi grows with the silence: bisect for the first instant it reaches `level`.
    int64_t lo = 0, hi = int64_t{3'600'000'000};
    Time base = p.last_heard;
    if (peer_phi(p, base + Duration(hi)) < level) return Time::max();
    while (hi - lo > 100) {  // to 0.1 ms: the loop rounds its poll timeout to ms anyway
        int64_t mid = lo + (hi - lo) / 2;
        if (peer_phi(p, base + Duration(mid)) >= level)
            hi = mid;
        else
            lo = mid;
    }
    return base + Duration(hi);
}

Time PhiAccrualDetector::next_deadline() const {
    Time next = Time::max();
    for (auto& [id, p] : peers_) {
        if (p.state == PeerState::dead) continue;
        next = std::min(next, crossing(p, p.state == PeerState::suspect ? cfg_.dead_threshold : cfg_.threshold));
    }
    return next;
}

void PhiAccrualDetector::reset(Time now) {
    reset_at_ = now;
    for (auto& [id, p] : peers_) {
        if (p.state == PeerState::dead) continue;
        p.last_heard = std::max(p.last_heard, now);
        p.intervals.clear();  // the rhythm is learned again after the stall
        p.sum = p.sum_sq = 0;
        p.last_seq.reset();
    }
}

double PhiAccrualDetector::phi(NodeId peer, Time now) const {
    auto it = peers_.find(peer);
    return it == peers_.end() ? 0.0 : peer_phi(it->second, now);
}

std::optional<Time> PhiAccrualDetector::last_heard(NodeId peer) const {
    auto it = peers_.find(peer);
    if (it == peers_.end()) return std::nullopt;
    return it->second.last_heard;
}

PeerState PhiAccrualDetector::state(NodeId peer) const {
    auto it = peers_.find(peer);
    return it == peers_.end() ? PeerState::unknown : it->second.state;
}

std::vector<NodeId> PhiAccrualDetector::peers() const {
    std::vector<NodeId> ids;
    for (auto& [id, p] : peers_) ids.push_back(id);
    return ids;
}

std::vector<std::string> PhiAccrualDetector::check_invariants() const {
    std::vector<std::string> bad;
    for (auto& [id, p] : peers_) {
        if (p.state == PeerState::alive && p.inc == 0)
            bad.push_back("peer " + std::to_string(id) + " is alive but was never heard");
        if (p.intervals.size() > cfg_.window) bad.push_back("peer " + std::to_string(id) + " window overflows");
    }
    return bad;
}

}  // namespace bus
