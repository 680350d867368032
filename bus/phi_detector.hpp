// The phi-accrual failure detector (Hayashibara, Défago, Yared & Katayama, 2004; seed 001;
// as Akka implements it) as a pure state machine.
//
// Instead of a fixed timeout it keeps, per peer, a window of recent heartbeat inter-arrival
// times and turns the current silence into a suspicion level:
//   phi(t) = -log10(P(a heartbeat arrives later than t | the intervals seen so far))
// with the intervals modelled as normal (mean + acceptable_pause, standard deviation at least
// min_std; Akka's logistic approximation of the normal CDF). phi = 1 means a 10% chance the
// peer is merely slow, phi = 8 about one in 10^8. A peer is suspected when phi reaches
// `threshold` and declared dead when it reaches `dead_threshold`. A machine whose heartbeats
// are irregular (loaded, jittery) gets a wider distribution and so more patience, instead of
// false convictions.
//
// Only intervals between *consecutive* heartbeat sequence numbers are recorded: a lost
// heartbeat must not look like a long interval. Any message from a peer still counts as life
// (it resets the silence), but only heartbeats feed the window. After a local stall the
// windows restart (reset()): the burst of queued heartbeats read on waking has intervals of
// almost nothing, and the silence during the stall says nothing about the peers.
// Not thread-safe; owned by the node loop.
#pragma once

#include <deque>
#include <map>
#include <optional>
#include <vector>

#include "bus/failure_detector.hpp"

namespace bus {

struct PhiConfig {
    /// Suspect at this phi. Akka's default for a LAN is 8: one wrong suspicion in 10^8 if the
    /// intervals really are normal; they are not (bursts), hence acceptable_pause too.
    double threshold = 8.0;
    /// Declared dead at this phi.
    double dead_threshold = 16.0;
    /// Intervals remembered per peer. Too few: one outlier swings the estimate; too many: slow
    /// to follow a machine that got busier.
    size_t window = 200;
    /// Floor on the standard deviation. Loopback heartbeats can be so regular that the
    /// fitted deviation is microseconds, and the first scheduling hiccup would convict.
    Duration min_std = std::chrono::milliseconds(50);
    /// Added to the mean interval: a pause this long is tolerated outright (a GC-free process
    /// on a loaded machine still misses its turn now and then).
    Duration acceptable_pause = std::chrono::milliseconds(200);
    /// The interval assumed before any is measured (the configured heartbeat).
    Duration first_interval = std::chrono::milliseconds(100);
};

class PhiAccrualDetector final : public FailureDetector {
public:
    /// `startup_grace`: extra patience for a peer never heard (as the fixed detector).
    PhiAccrualDetector(PhiConfig c, Duration startup_grace) : cfg_(c), startup_grace_(startup_grace) {}

    void add_peer(NodeId peer, Time now) override;
    void remove_peer(NodeId peer) override { peers_.erase(peer); }
    /// A valid message from `peer`; `heartbeat_seq` set when it is a heartbeat (its envelope
    /// seq on the heartbeat channel).
    std::vector<PeerEvent> on_heard(NodeId peer, uint64_t inc, std::optional<uint64_t> heartbeat_seq,
                                    Time now) override;
    std::vector<PeerEvent> on_tick(Time now) override;
    /// When some peer's phi next reaches a threshold (searched numerically; phi grows with
    /// the silence, so the first crossing is well defined).
    Time next_deadline() const override;
    void reset(Time now) override;

    double phi(NodeId peer, Time now) const;
    PeerState state(NodeId peer) const override;
    double suspicion(NodeId peer, Time now) const override { return phi(peer, now); }
    std::optional<Time> last_heard(NodeId peer) const override;
    /// Keeps every peer's window; the thresholds and pauses follow the new tunables.
    void set_tunables(const Tunables& t) override {
        cfg_ = config_for(t);
        startup_grace_ = t.startup_grace;
    }
    std::vector<NodeId> peers() const override;
    std::vector<std::string> check_invariants() const override;

    /// The configuration for a cluster's tunables: first interval = the heartbeat, minimum
    /// deviation half of it, acceptable pause two heartbeats (docs/ARCHITECTURE.md).
    static PhiConfig config_for(const Tunables& t);

    /// phi of a silence `elapsed` against intervals of `mean` and `std` (exposed for tests).
    static double phi_of(Duration elapsed, double mean_us, double std_us);

private:
    struct Peer {
        PeerState state = PeerState::unknown;
        Time last_heard{};            ///< last message, or when watching started / was reset
        uint64_t inc = 0;
        std::optional<uint64_t> last_seq;  ///< heartbeat seq of the last heartbeat in the window
        Time last_beat{};             ///< when that heartbeat arrived
        std::deque<int64_t> intervals;  ///< µs, between consecutive heartbeats
        double sum = 0, sum_sq = 0;
    };
    double peer_phi(const Peer& p, Time now) const;
    /// The instant `p`'s phi reaches `level` (Time::max() if never within an hour).
    Time crossing(const Peer& p, double level) const;

    PhiConfig cfg_;
    Duration startup_grace_;
    Time reset_at_ = Time::min();  ///< last stall reset: beats read at that instant make no interval
    std::map<NodeId, Peer> peers_;
};

}  // namespace bus
