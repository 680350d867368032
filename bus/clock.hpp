// Clocks. Every ftbus program reads time through one of these, never directly, so that
// state machines can be driven by a fake clock in tests and clock sync can act on a
// virtual clock instead of the machine's.
//
// Two kinds of time:
//  - Time: steady (monotonic) microseconds since an arbitrary start. Timeouts, leases and
//    heartbeats use it; it never jumps.
//  - wall_us(): microseconds since the Unix epoch on the real system clock. Trace `t`.
// VirtualClock adds a third: the wall clock as this node believes it, with skew and drift,
// which Cristian and Berkeley adjust. Leases never use it.
//
// Not thread-safe; each clock is owned by one node loop.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>

#include "bus/duration.hpp"

namespace bus {

/// A steady time point, microseconds since an arbitrary epoch (process start, or 0 in tests).
using Time = std::chrono::microseconds;

class Clock {
public:
    virtual ~Clock() = default;
    /// Steady time: monotonic, for timers and leases.
    virtual Time now() const = 0;
    /// Real system time in microseconds since the Unix epoch, for trace timestamps.
    virtual int64_t wall_us() const = 0;
};

/// The machine's clocks: steady_clock for now(), system_clock for wall_us().
class RealClock final : public Clock {
public:
    Time now() const override;
    int64_t wall_us() const override;
};

/// A clock that moves only when told. For unit tests and the simulator.
class FakeClock final : public Clock {
public:
    explicit FakeClock(Time start = Time(0), int64_t wall_start_us = 1'700'000'000'000'000)
        : now_(start), wall_offset_(wall_start_us - start.count()) {}
    Time now() const override { return now_; }
    int64_t wall_us() const override { return now_.count() + wall_offset_; }
    void advance(Duration d) { now_ += d; }
    void set(Time t) { now_ = t; }

private:
    Time now_;
    int64_t wall_offset_;
};

/// The wall clock a node believes in, as a pure function of real wall time (µs since the
/// epoch): a skew, a drift in ppm, and the corrections clock synchronisation applies —
/// steps (a jump), slews (an offset correction spread over a period, by running faster or
/// slower meanwhile; a new slew replaces a pending one) and rate corrections (frequency
/// discipline). Every operation takes the real time it happens at; nothing reads a clock.
///
///   virtual(t) = t + offset(t)
///   offset(t)  = offset at the anchor + (t - anchor) * rate / 1e6 + the slew's progress at t
///   rate       = drift + rate correction
class VirtualTime {
public:
    VirtualTime(int64_t real_us, Duration skew, double drift_ppm);

    /// Virtual wall time at real time `real_us` (not before the last operation).
    int64_t at(int64_t real_us) const { return real_us + static_cast<int64_t>(std::llround(offset(real_us))); }
    /// Virtual minus real, µs (the `clock.offset` trace field).
    int64_t offset_us(int64_t real_us) const { return at(real_us) - real_us; }
    /// Effective rate error in ppm: drift plus rate correction (a slew in progress not
    /// included: it is a temporary, bounded change).
    double rate_ppm() const { return drift_ppm_ + rate_adj_ppm_; }
    double drift_ppm() const { return drift_ppm_; }

    /// Jumps by `delta` at `real_us`; cancels a pending slew.
    void step(int64_t real_us, Duration delta);
    /// Corrects the offset by `delta` gradually, evenly over `period` from `real_us`. What a
    /// pending slew had not yet applied is dropped: the new correction was measured with it.
    void slew(int64_t real_us, Duration delta, Duration period);
    /// Adds `delta_ppm` to the rate correction from `real_us` on (the drift itself is fixed).
    void adjust_rate(int64_t real_us, double delta_ppm);
    /// True while a slew is still being applied at `real_us`.
    bool slewing(int64_t real_us) const { return slew_total_ != 0 && real_us < slew_end_; }

private:
    double offset(int64_t real_us) const;
    double slew_progress(int64_t real_us) const;
    /// Moves the anchor to `real_us`, folding in what rate and slew did until then.
    void re_anchor(int64_t real_us);

    double drift_ppm_;
    double rate_adj_ppm_ = 0;
    int64_t anchor_us_;
    double offset_at_anchor_;
    // The slew in progress: `slew_total_` µs applied evenly over [slew_start_, slew_end_).
    int64_t slew_start_ = 0, slew_end_ = 0;
    double slew_total_ = 0;
};

/// A VirtualTime driven by a base clock's wall time: the clock a program reads. Reads its
/// base clock, never sets the machine's.
class VirtualClock {
public:
    VirtualClock(const Clock& base, Duration skew, double drift_ppm)
        : base_(base), time_(base.wall_us(), skew, drift_ppm) {}

    /// This node's virtual wall time, µs since the epoch.
    int64_t wall_us() const { return time_.at(base_.wall_us()); }
    /// Virtual minus real wall time, µs (the `clock.offset` trace field).
    int64_t offset_us() const { return time_.offset_us(base_.wall_us()); }
    /// Effective rate error in ppm: drift plus any correction applied.
    double rate_ppm() const { return time_.rate_ppm(); }

    void step(Duration delta) { time_.step(base_.wall_us(), delta); }
    void slew(Duration delta, Duration period) { time_.slew(base_.wall_us(), delta, period); }
    void adjust_rate(double delta_ppm) { time_.adjust_rate(base_.wall_us(), delta_ppm); }
    const VirtualTime& time() const { return time_; }

private:
    const Clock& base_;
    VirtualTime time_;
};

}  // namespace bus
