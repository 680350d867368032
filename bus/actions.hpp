// What a state machine asks its host to do: state to make durable, messages to send and
// events to trace. A plain value; the host (NodeHost, or the simulator) carries it out in
// that order: persist (write + fsync), trace, send — nothing leaves before the state it
// depends on is on disk.
#pragma once

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "bus/protocol.hpp"
#include "bus/trace.hpp"

namespace bus {

struct Outgoing {
    enum class Route {
        request,  ///< to `to`, over our DEALER to its ROUTER
        reply,    ///< to `to`, over our ROUTER back to its DEALER
        publish,  ///< to everyone, on PUB topic `topic`
        join,     ///< to the peer ROUTER at endpoint `topic` ("tcp://host:port"), id unknown
    };
    Route route = Route::request;
    NodeId to = 0;
    std::string topic;
    Body body;
};

/// One entry of the Raft log.
struct LogEntry {
    uint64_t index = 0;
    uint64_t term = 0;
    std::string data;  ///< empty: the no-op a new leader appends (§8)
    bool operator==(const LogEntry&) const = default;
};

/// Raft's durable state: the current term and the vote cast in it (0 = none). Raft §5,
/// Figure 2, "Persistent state on all servers".
struct HardState {
    uint64_t term = 0;
    NodeId vote = 0;
    bool operator==(const HardState&) const = default;
};

struct TraceEvent {
    std::string ev;
    Json fields = Json::object();
    TraceLevel level = TraceLevel::state;
};

struct Actions {
    /// Set when the durable state changed: the host writes and fsyncs it before sending.
    std::optional<HardState> persist;
    /// Log changes, durable before anything is sent (followers acknowledge only what is on
    /// disk): first drop the entries from this index on (a conflict, §5.3), then append.
    std::optional<uint64_t> log_truncate_from;
    std::vector<LogEntry> log_append;
    std::vector<Outgoing> out;
    std::vector<TraceEvent> events;
    /// Membership changes the transport must follow: start talking to these members
    /// (DEALER to their peer ROUTER, SUB to their PUB), stop talking to those.
    std::vector<MemberInfo> connect;
    std::vector<NodeId> disconnect;

    void send(NodeId to, Body b) { out.push_back({Outgoing::Route::request, to, {}, std::move(b)}); }
    void reply(NodeId to, Body b) { out.push_back({Outgoing::Route::reply, to, {}, std::move(b)}); }
    void publish(std::string topic, Body b) {
        out.push_back({Outgoing::Route::publish, 0, std::move(topic), std::move(b)});
    }
    void trace(std::string ev, Json fields, TraceLevel l = TraceLevel::state) {
        events.push_back({std::move(ev), std::move(fields), l});
    }
    void append(Actions&& other) {
        if (other.persist) persist = other.persist;  // the later state includes the earlier
        if (other.log_truncate_from) {
            log_truncate_from = log_truncate_from ? std::min(*log_truncate_from, *other.log_truncate_from)
                                                  : *other.log_truncate_from;
            std::erase_if(log_append, [&](const LogEntry& e) { return e.index >= *other.log_truncate_from; });
        }
        for (auto& e : other.log_append) log_append.push_back(std::move(e));
        for (auto& o : other.out) out.push_back(std::move(o));
        for (auto& e : other.events) events.push_back(std::move(e));
        for (auto& m : other.connect) connect.push_back(std::move(m));
        for (NodeId id : other.disconnect) disconnect.push_back(id);
    }
    void join_via(std::string endpoint, Body b) {
        out.push_back({Outgoing::Route::join, 0, std::move(endpoint), std::move(b)});
    }
};

}  // namespace bus
