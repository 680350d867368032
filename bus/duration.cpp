#include "bus/duration.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>

namespace bus {

std::optional<Duration> parse_duration(std::string_view text) {
    size_t unit_at = 0;
    while (unit_at < text.size() &&
           ((text[unit_at] >= '0' && text[unit_at] <= '9') || text[unit_at] == '.'))
        ++unit_at;
    if (unit_at == 0 || unit_at == text.size()) return std::nullopt;
    std::string_view number = text.substr(0, unit_at);
    std::string_view unit = text.substr(unit_at);
    double value = 0;
    auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (ec != std::errc() || end != number.data() + number.size()) return std::nullopt;
    double scale = 0;
    if (unit == "us")
        scale = 1;
    else if (unit == "ms")
        scale = 1e3;
    else if (unit == "s")
        scale = 1e6;
    else if (unit == "m")
        scale = 60e6;
    else if (unit == "h")
        scale = 3600e6;
    else
        return std::nullopt;
    double us = std::round(value * scale);
    if (!std::isfinite(us) || us < 0 || us > 1e15) return std::nullopt;
    return Duration(static_cast<int64_t>(us));
}

std::optional<DurationRange> parse_duration_range(std::string_view text) {
    auto dash = text.find('-');
    if (dash == std::string_view::npos) {
        auto d = parse_duration(text);
        if (!d) return std::nullopt;
        return DurationRange{*d, *d};
    }
    auto lo = parse_duration(text.substr(0, dash));
    auto hi = parse_duration(text.substr(dash + 1));
    if (!lo || !hi || *hi < *lo) return std::nullopt;
    return DurationRange{*lo, *hi};
}

std::string format_duration(Duration d) {
    int64_t us = d.count();
    // Exact decimal of us / per, with the unit; fractions only as far as needed.
    auto fmt = [us](int64_t per, const char* unit) {
        std::string s = std::to_string(us / per);
        if (int64_t frac = us % per) {
            std::string f = std::to_string(frac);
            f.insert(0, std::to_string(per).size() - 1 - f.size(), '0');
            while (!f.empty() && f.back() == '0') f.pop_back();
            s += "." + f;
        }
        return s + unit;
    };
    if (us == 0) return "0ms";
    // The natural unit (us below a whole ms, ms below 1 s, else s), unless another exact
    // spelling is strictly shorter and not a fraction of its unit: 1500us -> "1.5ms",
    // 120s -> "2m", but 100ms stays "100ms", not "0.1s".
    std::string best = us % 1000 != 0 ? std::to_string(us) + "us"
                       : us < 1'000'000 ? fmt(1000, "ms")
                                        : fmt(1'000'000, "s");
    for (std::string c : {std::to_string(us) + "us", fmt(1000, "ms"), fmt(1'000'000, "s")})
        if (c.size() < best.size() && c.rfind("0.", 0) != 0) best = c;
    if (us != 0 && us % 60'000'000 == 0) {
        std::string m = std::to_string(us / 60'000'000) + "m";
        if (m.size() < best.size()) best = m;
    }
    if (us != 0 && us % 3'600'000'000 == 0) {
        std::string h = std::to_string(us / 3'600'000'000) + "h";
        if (h.size() < best.size()) best = h;
    }
    return best;
}

}  // namespace bus
