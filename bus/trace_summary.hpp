// Trace summaries for pipes (`ftbus-check --summary`), the clock-spread check
// (`ftbus-check --max-spread DUR`), and the live collector's reading of a stream
// (`ftbus-trace`: LiveTrace). Pure: events in, JSON out.
//
// Summary (one JSON object):
//  - messages: per message type, sends and receives traced (msg.send / msg.recv);
//  - nodes: per emitter incarnation ("node@inc"), events, span and events per second;
//  - leaderless: per election node incarnation, the time without a leader (from its start
//    until it first adopts one, and from each election.start or joining/electing role until
//    the next `leader`), as total_ms and the intervals;
//  - clocks: the spread (max - min) of the nodes' latest clock.offset, sampled at every
//    clock.offset event once each node has one, as median / p99 / max, after sync (once every
//    such node has traced a clock.adjust) and overall.
//  - unusable_lines: JSON objects that are not trace events (is_trace_event): left out;
//    `events` counts the others (0: nothing to summarize);
//  - locks: per lock (each log entry counted once, however many replicas applied it),
//    grants, expiries, and the hold (grant to release or expiry) and wait (queued to
//    granted) times as median / p99 / max.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bus/duration.hpp"
#include "bus/trace.hpp"

namespace bus {

/// Whether `e` has the common fields a summary, a ShiViz export or ftbus-check's "is there
/// anything to check" need (docs/TRACE.md, "Common fields"): `t` an integer, `node` an
/// integer or a string, `inc` and `seq` integers of 0 or more, `ev` a string. (`lc` and `vc`
/// are not needed: the checker reports them missing; the export recomputes clocks.)
bool is_trace_event(const Json& e);

/// `events`: parsed trace lines, any order (sorted by time inside); those that are not
/// trace events (is_trace_event) are counted in `unusable_lines` and left out.
Json summarize(std::vector<Json> events);

/// A clock spread above `max` after sync: the instant, the spread and the two nodes at the
/// extremes, with their clock.offset events (for citations).
struct SpreadViolation {
    int64_t t = 0;
    int64_t spread_us = 0;
    Json low, high;  ///< the clock.offset events of the lowest and highest node
};
/// The first instant after sync (every clock node has adjusted at least once) where the
/// spread of the latest offsets exceeds `max`; nullopt if none (or no clocks).
std::optional<SpreadViolation> check_spread(std::vector<Json> events, Duration max);

/// `first`..`last` (inclusive) of one emitter incarnation's seq were not received.
struct SeqGap {
    std::string emitter;
    uint64_t inc = 0;
    uint64_t first = 0, last = 0;
    uint64_t missing() const { return last - first + 1; }
};

/// ftbus-trace's reading of a live stream: one published message (topic, trace line) in,
/// the line to print (or why not) out. Per (emitter, inc) it keeps the highest seq received:
/// a seq above it by more than one reveals a gap (reported once); one at or below it is a
/// late or repeated line, never a gap, so a forged seq near 2^64 cannot make the arithmetic
/// wrap. Not thread-safe.
class LiveTrace {
public:
    struct Line {
        enum class Kind {
            event,      ///< a trace event: print `text`
            malformed,  ///< not a JSON object with unsigned `inc` and `seq` (counted)
            other_topic ///< ZeroMQ subscriptions are prefixes: "tracex" arrives too (ignored)
        } kind = Kind::malformed;
        Json event;                 ///< kind event: the parsed line
        std::string text;           ///< kind event: the line as one JSON Lines line (no '\n')
        std::optional<SeqGap> gap;  ///< kind event: the gap just before it, if any
    };

    /// `topic` must be exactly `trace`. A line that is valid JSON but spread over several
    /// lines (or holding a carriage return) is re-serialized onto one line.
    Line add(std::string_view topic, std::string_view payload);

    size_t streams() const { return highest_.size(); }
    uint64_t gaps() const { return gaps_; }
    /// Events not received, summed over the gaps (saturating at 2^64 - 1).
    uint64_t lost() const { return lost_; }
    uint64_t malformed() const { return malformed_; }

private:
    std::map<std::pair<std::string, uint64_t>, uint64_t> highest_;  ///< (emitter, inc) -> highest seq
    uint64_t gaps_ = 0, lost_ = 0, malformed_ = 0;
};

}  // namespace bus
