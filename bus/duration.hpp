// Durations with units, as every ftbus flag and cluster-file tunable spells them:
// "250us", "20ms", "1.5s", "2m", "1h". A bare number is rejected on purpose: "300" could mean
// milliseconds or seconds, and guessing wrong turns a timeout into an outage.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace bus {

using Duration = std::chrono::microseconds;

/// Parses "<number><unit>" with unit us|ms|s|m|h; the number may have a fraction.
/// \return nullopt on anything else (empty, negative, no unit, unknown unit, overflow).
std::optional<Duration> parse_duration(std::string_view text);

/// A randomized range "150ms-300ms", or a single value (lo == hi).
struct DurationRange {
    Duration lo{};
    Duration hi{};
};
std::optional<DurationRange> parse_duration_range(std::string_view text);

/// Exact spelling in its natural unit, or a strictly shorter exact one:
/// 1500000us -> "1.5s", 250us -> "250us", 1500us -> "1.5ms", 120s -> "2m".
std::string format_duration(Duration d);

/// Whole milliseconds as a double, for trace fields and narratives.
inline double to_ms(Duration d) { return static_cast<double>(d.count()) / 1000.0; }

}  // namespace bus
