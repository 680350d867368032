// A fixed-timeout failure detector, as a pure state machine (no sockets, no clock reads).
//
// Each peer is unknown (never heard), alive, suspect (silent past suspect_after) or dead
// (silent past dead_after). Any valid message from a peer counts as life, heartbeats or
// not. A peer heard again comes back to alive; a new incarnation (restart) is reported as
// alive with restarted = true. Peers never heard get startup_grace on top of both
// timeouts, so nodes started one after another are not convicted before they are up.
//
// After the owning loop was stalled (SIGSTOP, swap), reset() restarts every window at
// `now`, so a paused observer does not convict everyone when it wakes.
//
// What it leaves out on purpose: adaptive thresholds (phi accrual) and direct probing of
// suspects are later work; this is the baseline they are measured against.
// Not thread-safe; owned by the node loop.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bus/clock.hpp"
#include "bus/cluster.hpp"

namespace bus {

enum class PeerState { unknown, alive, suspect, dead };
const char* to_string(PeerState s);

/// A state change of one peer, to be traced as peer.alive / peer.suspect / peer.dead.
struct PeerEvent {
    NodeId peer = 0;
    PeerState state = PeerState::unknown;
    Duration silence{};     ///< how long the peer had been silent (suspect/dead)
    uint64_t inc = 0;       ///< peer's incarnation (alive)
    bool restarted = false; ///< alive with an incarnation different from the last one seen
    double phi = 0;         ///< suspicion level (phi-accrual detector; 0 from the fixed one)
    bool operator==(const PeerEvent&) const = default;
};

/// What NodeCore needs of a failure detector (fixed timeout or phi accrual). Pure state
/// machines: time is an argument; state changes come back as PeerEvents.
class FailureDetector {
public:
    virtual ~FailureDetector() = default;
    /// Starts watching `peer` from `now`.
    virtual void add_peer(NodeId peer, Time now) = 0;
    /// Stops watching `peer` (it left, or was forgotten); later messages from it are ignored.
    virtual void remove_peer(NodeId peer) = 0;
    /// A valid message from `peer` (incarnation `inc`) arrived at `now`; `heartbeat_seq` is
    /// set when it is a heartbeat (its seq on the heartbeat channel).
    virtual std::vector<PeerEvent> on_heard(NodeId peer, uint64_t inc, std::optional<uint64_t> heartbeat_seq,
                                            Time now) = 0;
    /// Time has passed; returns the peers whose state changed.
    virtual std::vector<PeerEvent> on_tick(Time now) = 0;
    /// When on_tick next has something to do; Time::max() if nothing can change.
    virtual Time next_deadline() const = 0;
    /// The local loop was stalled: restart every live or suspected peer's window at `now`.
    virtual void reset(Time now) = 0;
    virtual PeerState state(NodeId peer) const = 0;
    /// How suspicious `peer`'s silence is at `now`: phi for the phi detector; silence over
    /// suspect_after for the fixed one (1 = suspected). For status displays.
    virtual double suspicion(NodeId peer, Time now) const = 0;
    /// When `peer` was last heard from (or watching started / was reset); nullopt if unknown.
    virtual std::optional<Time> last_heard(NodeId peer) const = 0;
    /// Runtime change of the timeouts (ftbus-ctl set); takes effect at the next tick.
    virtual void set_tunables(const Tunables& t) = 0;
    virtual std::vector<NodeId> peers() const = 0;
    /// Violations of the detector's own invariants (empty when fine).
    virtual std::vector<std::string> check_invariants() const = 0;
};

class FixedTimeoutDetector final : public FailureDetector {
public:
    explicit FixedTimeoutDetector(const Tunables& t) : tunables_(t) {}

    void add_peer(NodeId peer, Time now) override;
    void remove_peer(NodeId peer) override { peers_.erase(peer); }
    /// A valid message from `peer` (incarnation `inc`) arrived at `now`.
    std::vector<PeerEvent> on_heard(NodeId peer, uint64_t inc, Time now);
    std::vector<PeerEvent> on_heard(NodeId peer, uint64_t inc, std::optional<uint64_t>, Time now) override {
        return on_heard(peer, inc, now);
    }
    std::vector<PeerEvent> on_tick(Time now) override;
    Time next_deadline() const override;
    void reset(Time now) override;
    void set_tunables(const Tunables& t) override { tunables_ = t; }

    PeerState state(NodeId peer) const override;
    double suspicion(NodeId peer, Time now) const override;
    std::optional<Time> last_heard(NodeId peer) const override;
    std::vector<NodeId> peers() const override;
    std::vector<std::string> check_invariants() const override;

private:
    struct Peer {
        PeerState state = PeerState::unknown;
        Time last_heard{};  ///< last message, or when watching started / was reset
        uint64_t inc = 0;   ///< 0 until heard
    };
    Duration grace(const Peer& p) const {
        return p.inc == 0 ? tunables_.startup_grace : Duration(0);
    }

    Tunables tunables_;
    std::map<NodeId, Peer> peers_;
};

/// When to send the next heartbeat. Pure: the loop asks due(now) and sends if true.
class HeartbeatSchedule {
public:
    HeartbeatSchedule(Duration period, Time start) : period_(period), next_(start) {}
    /// True at most once per period; after a stall it does not try to catch up.
    bool due(Time now) {
        if (now < next_) return false;
        next_ = now + period_;
        return true;
    }
    Time next() const { return next_; }
    void set_period(Duration p) { period_ = p; }

private:
    Duration period_;
    Time next_;
};

}  // namespace bus
