#include "bus/clock.hpp"

#include <cmath>

namespace bus {

Time RealClock::now() const {
    return std::chrono::duration_cast<Time>(
        std::chrono::steady_clock::now().time_since_epoch());
}

int64_t RealClock::wall_us() const {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

VirtualClock::VirtualClock(const Clock& base, Duration skew, double drift_ppm)
    : base_(base),
      drift_ppm_(drift_ppm),
      anchor_wall_us_(base.wall_us()),
      offset_at_anchor_(static_cast<double>(skew.count())) {}

int64_t VirtualClock::wall_us() const {
    int64_t base = base_.wall_us();
    double elapsed = static_cast<double>(base - anchor_wall_us_);
    double offset = offset_at_anchor_ + elapsed * rate_ppm() / 1e6;
    return base + static_cast<int64_t>(std::llround(offset));
}

void VirtualClock::re_anchor() {
    int64_t base = base_.wall_us();
    double elapsed = static_cast<double>(base - anchor_wall_us_);
    offset_at_anchor_ += elapsed * rate_ppm() / 1e6;
    anchor_wall_us_ = base;
}

void VirtualClock::step(Duration delta) {
    re_anchor();
    offset_at_anchor_ += static_cast<double>(delta.count());
}

void VirtualClock::adjust_rate(double delta_ppm) {
    re_anchor();
    rate_adj_ppm_ += delta_ppm;
}

}  // namespace bus
