// Cristian's algorithm (1989), with NTP's four timestamps: the estimator behind ftbus-time.
//
// One exchange gives t0 (client clock, request sent), t1 (server clock, request arrived),
// t2 (server clock, reply sent), t3 (client clock, reply arrived). Then
//   offset = ((t1 - t0) + (t2 - t3)) / 2      server clock minus client clock
//   rtt    = (t3 - t0) - (t2 - t1)            the round trip, without the server's own time
// and, whatever the split of the round trip between the two directions, the true offset
// lies within offset ± (rtt / 2 - min_one_way), min_one_way being a known lower bound on a
// one-way delay (0 unless configured). Cristian's rule: of several exchanges, trust the one
// with the smallest round trip — its bound is the tightest.
// Pure: no sockets, no clock. Not thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "bus/duration.hpp"

namespace bus {

struct TimeSample {
    int64_t t0 = 0, t1 = 0, t2 = 0, t3 = 0;  ///< µs; t0, t3 client clock; t1, t2 server clock
};

struct TimeEstimate {
    int64_t offset_us = 0;  ///< server minus client
    int64_t rtt_us = 0;
    int64_t bound_us = 0;   ///< |true offset - offset_us| <= bound_us
    size_t samples = 0;     ///< exchanges considered
};

class CristianEstimator {
public:
    explicit CristianEstimator(Duration min_one_way = Duration(0)) : min_one_way_(min_one_way) {}

    /// Adds one exchange. A sample with a negative round trip (clocks stepped mid-exchange)
    /// is not usable and is ignored; \return whether it was kept.
    bool add(const TimeSample& s);
    /// The estimate from the sample with the smallest round trip; nullopt before any.
    std::optional<TimeEstimate> best() const;
    size_t samples() const { return count_; }

    /// One exchange on its own.
    static TimeEstimate estimate(const TimeSample& s, Duration min_one_way);

private:
    Duration min_one_way_;
    std::optional<TimeSample> best_;
    int64_t best_rtt_ = 0;
    size_t count_ = 0;
};

/// Why `endpoint` cannot be a time server's address, or "" if it can: the client connects
/// over TCP only, `tcp://HOST:PORT` with a host name, an IPv4 address or a bracketed IPv6
/// one and a port 1..65535 (checked up front: ZeroMQ would fail later and less clearly, with
/// "Invalid argument", or accept a port it cannot reach and leave the client retrying).
std::string endpoint_problem(std::string_view endpoint);

}  // namespace bus
