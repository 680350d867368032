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

/// The wall clock this node believes in: base wall time plus a skew, running fast or slow
/// by `drift_ppm`, adjustable by stepping (a jump) or by a rate correction. Reads its base
/// clock, never sets the machine's.
///
///   virtual(t) = base(t) + offset_at_anchor + (base(t) - anchor) * (drift + rate_adj) / 1e6
class VirtualClock {
public:
    VirtualClock(const Clock& base, Duration skew, double drift_ppm);

    /// This node's virtual wall time, µs since the epoch.
    int64_t wall_us() const;
    /// Virtual minus real wall time, µs (the `clock.offset` trace field).
    int64_t offset_us() const { return wall_us() - base_.wall_us(); }
    /// Effective rate error in ppm: drift plus any correction applied.
    double rate_ppm() const { return drift_ppm_ + rate_adj_ppm_; }

    /// Jump the virtual clock by delta (may be negative).
    void step(Duration delta);
    /// Add a rate correction (ppm) on top of the current one; the drift itself is fixed.
    void adjust_rate(double delta_ppm);

private:
    void re_anchor();

    const Clock& base_;
    double drift_ppm_;
    double rate_adj_ppm_ = 0;
    int64_t anchor_wall_us_;   // base wall time at the last re-anchoring
    double offset_at_anchor_;  // virtual minus base at the anchor, µs
};

}  // namespace bus
