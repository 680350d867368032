// Berkeley clock synchronisation (Gusella & Zatti 1989, TEMPO) as a pure state machine, run
// by every ftbus-berkeley daemon: a master, chosen by the bully election, polls every member,
// estimates each member's offset from its reading and the round trip, and sends each member
// its own correction as a delta — never an absolute time (seed 003's master sends absolute
// times, wrong by the latency).
//
// A round, on the master (Gusella & Zatti, "The accuracy of the clock synchronization
// achieved by TEMPO"):
//  1. CLOCK_POLL {epoch, round} to every member over DEALER; each answers CLOCK_READING with
//     its virtual clock. offset_i = reading + rtt / 2 - master's clock on arrival.
//  2. Readings with a round trip above max_rtt, or well above that member's usual round trip
//     (3 x its recent best, and at least 1 ms more), are discarded: the estimate is no better
//     than rtt / 2, and a reading delayed in one direction only is off by that much.
//  3. Fault-tolerant average: of the offsets (the master's own is 0), those further than
//     max_deviation from their median are left out (one clock an hour off must not drag the
//     others), and the rest are averaged.
//  4. Each member gets delta_i = average - offset_i (the left-out ones too: they are told how
//     far off they are), the master applies its own.
//  5. Frequency discipline (NTP's, chrony's idea): a member corrected to the average last
//     round that is off again by r_i after t seconds runs r_i / t fast or slow relative to
//     the ensemble. One round's r_i is mostly measurement error (±rtt/2 over 2 s is tens of
//     ppm), but summed over a window of rounds the errors telescope away (each round's error
//     is undone by the next correction), so the master sums residuals and elapsed time over
//     rate_window and then tells the member to change its rate by -rate_gain * sum_r / sum_t.
//     So the spread stays small between rounds, not only right after them.
// A member applies a correction by slewing it over slew_period, or by stepping when it is
// above step_threshold; a new slew replaces a pending one. It accepts corrections only from
// the current master in the master's epoch.
//
// Time: the algorithm keeps the node's VirtualTime (the only clock it may change); it reads
// real time as `real_minus_steady + now` from the steady `now` it is given, so it reads no
// clock. Leases and timeouts use steady time only.
// Members that join or leave at runtime (NodeCore's membership) are polled from the next
// round on, or no more; the master election follows them too.
// What it leaves out: authentication of the master.
// Not thread-safe; owned by the node loop.
#pragma once

#include <map>
#include <set>
#include <vector>

#include "bus/bully.hpp"

namespace bus {

struct BerkeleyConfig {
    /// Between rounds. Too small: traffic and slews that never finish; too large: drift
    /// builds up between rounds (±100 ppm is 200 µs/s between two clocks before discipline).
    Duration interval = std::chrono::seconds(2);
    /// A round's readings are collected until then; a member that has not answered is left
    /// out of that round.
    Duration reply_timeout = std::chrono::milliseconds(200);
    /// Readings with a longer round trip are discarded: their offset error can be rtt / 2.
    Duration max_rtt = std::chrono::milliseconds(50);
    /// Clocks further than this from the median are left out of the average. Larger than any
    /// honest start-up skew, much smaller than a broken clock.
    Duration max_deviation = std::chrono::seconds(60);
    /// Corrections larger than this are stepped; smaller ones are slewed.
    Duration step_threshold = std::chrono::seconds(1);
    /// A slew is spread over this; shorter than the interval, so it is done before the next.
    Duration slew_period = std::chrono::seconds(1);
    /// Rate errors are estimated over this much time (several rounds): the longer, the less
    /// measurement noise in the estimate, the slower the first correction.
    Duration rate_window = std::chrono::seconds(8);
    /// Fraction of a measured rate error corrected (damps what noise is left).
    double rate_gain = 0.8;
    /// The largest rate correction per round, ppm.
    double max_rate_step_ppm = 500;
    /// clock.offset is traced this often (and on every adjustment), so the true spread can be
    /// computed from the trace at any instant.
    Duration offset_trace = std::chrono::milliseconds(250);
    /// Fault injection: a broken clock that cannot be set — it ignores every correction, so
    /// started with a large skew it keeps reporting a wild time. The others must not follow.
    bool broken = false;
};

/// One member's reading in a round, as the master saw it.
struct ClockSample {
    NodeId node = 0;
    int64_t offset_us = 0;  ///< member minus master
    int64_t rtt_us = 0;
    /// This reading's own round-trip limit (from the member's usual round trip); 0 = none.
    int64_t rtt_limit_us = 0;
};

/// The outcome of one round's fault-tolerant average (Berkeley steps 2-4).
struct AverageResult {
    int64_t average_us = 0;               ///< relative to the master
    std::vector<NodeId> used;             ///< in the average
    std::vector<NodeId> too_far;          ///< beyond max_deviation from the median
    std::vector<NodeId> too_slow;         ///< round trip above max_rtt
    std::map<NodeId, int64_t> delta_us;   ///< the correction each node must apply
};
/// `samples` includes the master itself ({self, 0, 0}). Pure.
AverageResult berkeley_average(const std::vector<ClockSample>& samples, Duration max_rtt, Duration max_deviation);

class Berkeley final : public Algorithm {
public:
    /// `clock` is this node's virtual clock (skew, drift); `real_minus_steady_us` turns the
    /// steady `now` into real wall time.
    Berkeley(const ClusterConfig& cfg, NodeId self, VirtualTime clock, int64_t real_minus_steady_us,
             BerkeleyConfig bc = {});

    const char* name() const override { return "berkeley"; }
    Actions start(Time now) override;
    Actions on_message(NodeId from, const Envelope& env, Time now) override;
    Actions on_peer(const PeerEvent& ev, Time now) override;
    /// Members joining or leaving at runtime: polled from the next round on (or no more);
    /// the master election (bully) follows them too.
    Actions on_member(const MemberInfo& m, bool joined, Time now) override;
    Actions on_stall(Time now) override { return bully_.on_stall(now); }
    Actions on_tick(Time now) override;
    Time next_deadline() const override;
    LeaderView view() const override { return bully_.view(); }
    std::vector<std::string> check_invariants() const override { return bully_.check_invariants(); }

    const VirtualTime& clock() const { return clock_; }
    int64_t real_us(Time now) const { return real_minus_steady_ + now.count(); }
    bool is_master() const { return bully_.phase() == Bully::Phase::leader; }
    uint64_t rounds_completed() const { return rounds_completed_; }
    const Bully& election() const { return bully_; }

private:
    void after_election(Time now, Actions& a);
    void start_round(Time now, Actions& a);
    void finish_round(Time now, Actions& a);
    void apply(Time now, int64_t delta_us, double rate_ppm, uint64_t round, NodeId from, Actions& a);
    void trace_offset(Time now, Actions& a);

    NodeId self_;
    std::vector<NodeId> peers_;
    BerkeleyConfig bc_;
    Bully bully_;
    VirtualTime clock_;
    int64_t real_minus_steady_;

    // ---- master state (valid while is_master())
    uint64_t master_epoch_ = 0;     ///< the epoch this node leads, 0 when not master
    uint64_t round_ = 0;            ///< the round in progress or last held
    bool collecting_ = false;
    Time round_deadline_ = Time::max();
    Time next_round_ = Time::max();
    std::map<NodeId, Time> polled_at_;
    std::vector<ClockSample> samples_;
    /// Per node: when it was last corrected in this master's epoch (rate estimates need it),
    /// and the residuals and time summed since its last rate correction.
    std::map<NodeId, Time> corrected_at_;
    struct RateWindow {
        double residual_us = 0;
        double elapsed_us = 0;
    };
    std::map<NodeId, RateWindow> rate_window_;
    /// Per member: its recent best round trip, µs (creeps up 50 µs a round, so that a path
    /// that got slower for good is learned again).
    std::map<NodeId, int64_t> best_rtt_;
    uint64_t rounds_completed_ = 0;

    Time next_offset_trace_ = Time::max();
    /// Peers the failure detector has declared dead: not polled (a round would only wait
    /// reply_timeout for them).
    std::set<NodeId> dead_;
};

}  // namespace bus
