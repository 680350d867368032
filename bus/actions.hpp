// What a state machine asks its host to do: state to make durable, messages to send and
// events to trace. A plain value; the host (NodeHost, or the simulator) carries it out in
// that order: persist (write + fsync), trace, send — nothing leaves before the state it
// depends on is on disk.
#pragma once

#include <algorithm>
#include <optional>
#include <stdexcept>
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
        client,   ///< to the client whose routing id is `topic`, over our client ROUTER
    };
    Route route = Route::request;
    NodeId to = 0;
    std::string topic;
    Body body;
    /// May leave before this node's pending log writes are durable: a leader's
    /// AppendEntries go out while it writes its own log (Raft dissertation §10.2.1). Anything
    /// else — above all a follower's acknowledgement — waits for the log's fsync.
    bool before_sync = false;
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

/// A snapshot of the replicated state machine: its state after applying every entry up to
/// `index` (whose term is `term`). Replaces the log up to `index` (Raft §7).
struct Snapshot {
    uint64_t index = 0;
    uint64_t term = 0;
    std::string data;
    bool operator==(const Snapshot&) const = default;
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
    /// A new snapshot, after the log changes: the host makes it durable, then compacts its
    /// log to it (entries after snapshot.index stay only if the log holds the snapshot's
    /// last entry with its term, or starts right after it; otherwise the whole log goes).
    std::optional<Snapshot> snapshot;
    std::vector<Outgoing> out;
    std::vector<TraceEvent> events;
    /// Membership changes the transport must follow: start talking to these members
    /// (DEALER to their peer ROUTER, SUB to their PUB), stop talking to those.
    std::vector<MemberInfo> connect;
    std::vector<NodeId> disconnect;

    void send(NodeId to, Body b) { out.push_back({Outgoing::Route::request, to, {}, std::move(b)}); }
    /// A send that need not wait for this node's log writes (Outgoing::before_sync).
    void send_before_sync(NodeId to, Body b) {
        out.push_back({Outgoing::Route::request, to, {}, std::move(b), true});
    }
    void reply(NodeId to, Body b) { out.push_back({Outgoing::Route::reply, to, {}, std::move(b)}); }
    void publish(std::string topic, Body b) {
        out.push_back({Outgoing::Route::publish, 0, std::move(topic), std::move(b)});
    }
    void trace(std::string ev, Json fields, TraceLevel l = TraceLevel::state) {
        events.push_back({std::move(ev), std::move(fields), l});
    }
    void append(Actions&& other) {
        // The host applies log changes before the snapshot: log changes after a snapshot
        // cannot be merged into one Actions without reordering them.
        if (snapshot && (other.log_truncate_from || !other.log_append.empty()))
            throw std::logic_error("Actions::append: log changes after a snapshot");
        if (other.persist) persist = other.persist;  // the later state includes the earlier
        if (other.log_truncate_from) {
            log_truncate_from = log_truncate_from ? std::min(*log_truncate_from, *other.log_truncate_from)
                                                  : *other.log_truncate_from;
            std::erase_if(log_append, [&](const LogEntry& e) { return e.index >= *other.log_truncate_from; });
        }
        for (auto& e : other.log_append) log_append.push_back(std::move(e));
        if (other.snapshot) snapshot = std::move(other.snapshot);
        for (auto& o : other.out) out.push_back(std::move(o));
        for (auto& e : other.events) events.push_back(std::move(e));
        for (auto& m : other.connect) connect.push_back(std::move(m));
        for (NodeId id : other.disconnect) disconnect.push_back(id);
    }
    /// An answer to a client leaves at once, even while this node's log writes of the round
    /// wait for their fsync: it speaks of entries already committed (durable on a majority,
    /// whatever becomes of this node) or of nothing on disk at all (a refusal, a redirect, a
    /// keepalive), never of the entries those writes hold. Holding it would add a leader's
    /// fsync to every answer given in a round that also took new requests.
    void reply_client(std::string routing_id, Body b) {
        out.push_back({Outgoing::Route::client, 0, std::move(routing_id), std::move(b), true});
    }
    void join_via(std::string endpoint, Body b) {
        out.push_back({Outgoing::Route::join, 0, std::move(endpoint), std::move(b)});
    }
};

}  // namespace bus
