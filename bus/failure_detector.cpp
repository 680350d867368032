#include "bus/failure_detector.hpp"
#include <algorithm>

namespace bus {

const char* to_string(PeerState s) {
    switch (s) {
        case PeerState::unknown: return "unknown";
        case PeerState::alive: return "alive";
        case PeerState::suspect: return "suspect";
        case PeerState::dead: return "dead";
    }
    return "?";
}

void FixedTimeoutDetector::add_peer(NodeId peer, Time now) {
    peers_.try_emplace(peer, Peer{PeerState::unknown, now, 0});
}

std::vector<PeerEvent> FixedTimeoutDetector::on_heard(NodeId peer, uint64_t inc, Time now) {
    auto it = peers_.find(peer);
    if (it == peers_.end()) return {};
    Peer& p = it->second;
    // A frame from an older incarnation still in flight after a restart: not a sign of life
    // (and not another restart). Incarnations are start times, so they only grow.
    if (inc < p.inc) return {};
    bool restarted = p.inc != 0 && inc != p.inc;
    std::vector<PeerEvent> out;
    if (p.state != PeerState::alive || restarted)
        out.push_back({peer, PeerState::alive, now - p.last_heard, inc, restarted});
    p.state = PeerState::alive;
    p.last_heard = std::max(p.last_heard, now);
    p.inc = inc;
    return out;
}

std::vector<PeerEvent> FixedTimeoutDetector::on_tick(Time now) {
    std::vector<PeerEvent> out;
    for (auto& [id, p] : peers_) {
        if (p.state == PeerState::dead) continue;
        Duration silence = now - p.last_heard;
        if (p.state != PeerState::suspect && silence >= tunables_.suspect_after + grace(p)) {
            p.state = PeerState::suspect;
            out.push_back({id, PeerState::suspect, silence, p.inc, false});
        }
        if (p.state == PeerState::suspect && silence >= tunables_.dead_after + grace(p)) {
            p.state = PeerState::dead;
            out.push_back({id, PeerState::dead, silence, p.inc, false});
        }
    }
    return out;
}

Time FixedTimeoutDetector::next_deadline() const {
    Time next = Time::max();
    for (auto& [id, p] : peers_) {
        if (p.state == PeerState::dead) continue;
        Duration after = p.state == PeerState::suspect ? tunables_.dead_after : tunables_.suspect_after;
        next = std::min(next, p.last_heard + after + grace(p));
    }
    return next;
}

void FixedTimeoutDetector::reset(Time now) {
    for (auto& [id, p] : peers_)
        if (p.state != PeerState::dead) p.last_heard = std::max(p.last_heard, now);
}

PeerState FixedTimeoutDetector::state(NodeId peer) const {
    auto it = peers_.find(peer);
    return it == peers_.end() ? PeerState::unknown : it->second.state;
}

double FixedTimeoutDetector::suspicion(NodeId peer, Time now) const {
    auto it = peers_.find(peer);
    if (it == peers_.end() || tunables_.suspect_after.count() <= 0) return 0;
    Duration silence = now - it->second.last_heard - grace(it->second);
    return std::max(0.0, static_cast<double>(silence.count()) / static_cast<double>(tunables_.suspect_after.count()));
}

std::optional<Time> FixedTimeoutDetector::last_heard(NodeId peer) const {
    auto it = peers_.find(peer);
    if (it == peers_.end()) return std::nullopt;
    return it->second.last_heard;
}

std::vector<NodeId> FixedTimeoutDetector::peers() const {
    std::vector<NodeId> ids;
    for (auto& [id, p] : peers_) ids.push_back(id);
    return ids;
}

std::vector<std::string> FixedTimeoutDetector::check_invariants() const {
    std::vector<std::string> bad;
    for (auto& [id, p] : peers_) {
        if (p.state == PeerState::alive && p.inc == 0)
            bad.push_back("peer " + std::to_string(id) + " is alive but was never heard");
        if (p.state == PeerState::unknown && p.inc != 0)
            bad.push_back("peer " + std::to_string(id) + " was heard but is unknown");
    }
    return bad;
}

}  // namespace bus
