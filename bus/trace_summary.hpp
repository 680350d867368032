// Trace summaries for pipes (`ftbus-check --summary`) and the clock-spread check
// (`ftbus-check --max-spread DUR`). Pure: events in, JSON out.
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
//  - locks: per lock (each log entry counted once, however many replicas applied it),
//    grants, expiries, and the hold (grant to release or expiry) and wait (queued to
//    granted) times as median / p99 / max.
#pragma once

#include <optional>
#include <vector>

#include "bus/duration.hpp"
#include "bus/trace.hpp"

namespace bus {

/// `events`: parsed trace lines, any order (sorted by time inside).
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

}  // namespace bus
