#include "bus/cristian.hpp"

#include <algorithm>

namespace bus {

TimeEstimate CristianEstimator::estimate(const TimeSample& s, Duration min_one_way) {
    TimeEstimate e;
    // Halves rounded toward zero; the error of that is under a microsecond.
    e.offset_us = ((s.t1 - s.t0) + (s.t2 - s.t3)) / 2;
    e.rtt_us = (s.t3 - s.t0) - (s.t2 - s.t1);
    e.bound_us = std::max<int64_t>(0, (e.rtt_us + 1) / 2 - min_one_way.count());
    e.samples = 1;
    return e;
}

bool CristianEstimator::add(const TimeSample& s) {
    int64_t rtt = (s.t3 - s.t0) - (s.t2 - s.t1);
    if (rtt < 0) return false;
    ++count_;
    if (!best_ || rtt < best_rtt_) {
        best_ = s;
        best_rtt_ = rtt;
    }
    return true;
}

std::optional<TimeEstimate> CristianEstimator::best() const {
    if (!best_) return std::nullopt;
    TimeEstimate e = estimate(*best_, min_one_way_);
    e.samples = count_;
    return e;
}

}  // namespace bus
