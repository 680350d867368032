// Small pure helpers of the node loop, kept apart so they can be unit-tested.
#pragma once

#include <chrono>

#include "bus/clock.hpp"

namespace bus {

/// Poll timeout for a deadline: rounded up to whole milliseconds so the loop never spins
/// on a sub-millisecond remainder, clamped to [0, cap].
inline long poll_timeout_ms(Time deadline, Time now,
                            std::chrono::milliseconds cap = std::chrono::milliseconds(1000)) {
    if (deadline <= now) return 0;
    auto left = deadline - now;
    if (left >= cap) return static_cast<long>(cap.count());
    return static_cast<long>((left.count() + 999) / 1000);
}

/// Notices that the loop itself was stalled (SIGSTOP, swapping, a debugger): an iteration
/// that took far longer than the poll timeout it asked for.
class StallWatch {
public:
    explicit StallWatch(Duration threshold) : threshold_(threshold) {}
    /// Call after each poll with the time before it, the timeout used, and the time after.
    /// \return how long the loop was stalled beyond the timeout, or 0 if not stalled.
    Duration check(Time before, std::chrono::milliseconds timeout, Time after) const {
        Duration over = (after - before) - std::chrono::duration_cast<Duration>(timeout);
        return over > threshold_ ? over : Duration(0);
    }
    void set_threshold(Duration t) { threshold_ = t; }

private:
    Duration threshold_;
};

}  // namespace bus
