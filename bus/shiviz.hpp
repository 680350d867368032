// ShiViz export: turns ftbus trace events into a log ShiViz (https://bestchai.bitbucket.io/
// shiviz/) draws as a space-time diagram. Used by `ftbus-check --export shiviz` (files) and
// `ftbus-trace --format shiviz` (live).
//
// The log is ShiViz's default format, two lines per event, parsed with its default regular
// expression  (?<event>.*)\n(?<host>\S*) (?<clock>{.*})
//     node.start role=elect algo=bully pid=4242
//     3@1763820000123456 {"3@1763820000123456":1}
// ShiViz's rules, which the output keeps by construction:
//  - a host is one process incarnation, "node@inc" (a restart is a new host: ShiViz has no
//    notion of a process whose clock starts again);
//  - each host's own entry counts its events from 1, rising by exactly 1 per event, and
//    every clock names its own host;
//  - another host's entry is the count of an event of that host that happened before
//    (merged from the matching msg.send when a msg.recv is exported).
// A message `id` (sender, inc, seq) is unique per channel only: a receive is matched to the
// send addressed to its receiver, or else to a published send with that id (see
// message_send_key / message_recv_keys in bus/trace.hpp).
// The trace's own `vc` is not reused: it counts only traced sends and receives and is keyed
// by node, not incarnation. The clocks are recomputed here from send/receive pairs (`id`).
//
// Input per host must be in seq order (each node's file is; a live stream is per emitter).
// A msg.recv whose msg.send has not been seen waits until it is (events of other hosts are
// exported meanwhile); at finish(), or when too many events wait, it is exported as a local
// event and counted in unmatched(). Not thread-safe.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <string>

#include "bus/trace.hpp"

namespace bus {

/// ShiViz's default parser regular expression, matching what ShivizExporter writes.
inline constexpr const char* kShivizRegex = R"((?<event>.*)\n(?<host>\S*) (?<clock>{.*}))";

class ShivizExporter {
public:
    /// `out` receives the log text, two lines per event (each ending in '\n').
    /// `max_waiting`: events a host may hold back behind an unmatched receive before it is
    /// released as a local event (a live stream may have lost the send).
    explicit ShivizExporter(std::function<void(const std::string&)> out, size_t max_waiting = 10000)
        : out_(std::move(out)), max_waiting_(max_waiting) {}

    /// One trace event (a parsed line). Events without node/inc/ev are skipped (counted).
    void add(const Json& event);
    /// Exports everything still waiting (receives without a send become local events).
    void finish();

    size_t exported() const { return exported_; }
    size_t unmatched() const { return unmatched_; }
    size_t skipped() const { return skipped_; }
    size_t hosts() const { return hosts_.size(); }

    /// "3@1763820000123456", or "c-ab12@..." for a client.
    static std::string host_of(const Json& event);
    /// One line describing the event: its name, then key=value for its own fields.
    static std::string describe(const Json& event);

private:
    struct Host {
        uint64_t count = 0;
        std::map<std::string, uint64_t> clock;
        std::deque<Json> waiting;
    };
    /// Exports what can be exported now, across all hosts, until nothing moves.
    void drain(bool force);
    /// Exports the head of `h`'s queue if it can go now (or `force`). \return true if it did.
    bool step(const std::string& name, Host& h, bool force);

    std::function<void(const std::string&)> out_;
    size_t max_waiting_;
    std::map<std::string, Host> hosts_;
    /// send key (message_key) -> clock at send
    std::map<std::string, std::map<std::string, uint64_t>> sends_;
    size_t exported_ = 0, unmatched_ = 0, skipped_ = 0;
};

}  // namespace bus
