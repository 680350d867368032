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

VirtualTime::VirtualTime(int64_t real_us, Duration skew, double drift_ppm)
    : drift_ppm_(drift_ppm), anchor_us_(real_us), offset_at_anchor_(static_cast<double>(skew.count())) {}

double VirtualTime::slew_progress(int64_t real_us) const {
    if (slew_total_ == 0 || real_us <= slew_start_) return 0;
    if (real_us >= slew_end_) return slew_total_;
    return slew_total_ * static_cast<double>(real_us - slew_start_) / static_cast<double>(slew_end_ - slew_start_);
}

double VirtualTime::offset(int64_t real_us) const {
    double elapsed = static_cast<double>(real_us - anchor_us_);
    return offset_at_anchor_ + elapsed * rate_ppm() / 1e6 + slew_progress(real_us);
}

void VirtualTime::re_anchor(int64_t real_us) {
    double done = slew_progress(real_us);
    offset_at_anchor_ = offset(real_us);
    anchor_us_ = real_us;
    // What the slew has applied is now part of the anchor; the rest stays pending.
    if (slew_total_ != 0) {
        if (real_us >= slew_end_) {
            slew_total_ = 0;
        } else {
            slew_total_ -= done;
            slew_start_ = real_us;
        }
    }
}

void VirtualTime::step(int64_t real_us, Duration delta) {
    re_anchor(real_us);
    slew_total_ = 0;
    offset_at_anchor_ += static_cast<double>(delta.count());
}

void VirtualTime::slew(int64_t real_us, Duration delta, Duration period) {
    re_anchor(real_us);
    if (period.count() <= 0) {  // no time to spread it over: a step
        slew_total_ = 0;
        offset_at_anchor_ += static_cast<double>(delta.count());
        return;
    }
    slew_total_ = static_cast<double>(delta.count());
    slew_start_ = real_us;
    slew_end_ = real_us + period.count();
}

void VirtualTime::adjust_rate(int64_t real_us, double delta_ppm) {
    re_anchor(real_us);
    rate_adj_ppm_ += delta_ppm;
}

}  // namespace bus
