#include "bus/cristian.hpp"

#include <algorithm>
#include <cctype>

#include "bus/cluster.hpp"

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

std::string endpoint_problem(std::string_view ep) {
    constexpr std::string_view kScheme = "tcp://";
    if (ep.substr(0, kScheme.size()) != kScheme) return "not tcp://HOST:PORT";
    std::string_view rest = ep.substr(kScheme.size());
    size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos) return "no :PORT (tcp://HOST:PORT)";
    std::string_view host = rest.substr(0, colon), port = rest.substr(colon + 1);
    if (!plausible_host(host)) return "'" + std::string(host) + "' is not a host name or an IP address";
    bool digits = !port.empty() && port.size() <= 5;
    for (char c : port) digits = digits && std::isdigit(static_cast<unsigned char>(c));
    if (!digits || std::stoi(std::string(port)) < 1 || std::stoi(std::string(port)) > 65535)
        return "port '" + std::string(port) + "' is not a number in 1..65535";
    return "";
}

}  // namespace bus
