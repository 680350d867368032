// The trace emitter: structured events as JSON Lines (docs/TRACE.md).
//
// Every event carries t (µs since the epoch, real clock), node, inc, seq (per emitter and
// incarnation, from 1, no gaps), lc (Lamport clock after the event) and, for cluster
// nodes, vc (vector clock after the event); then ev and its fields. Lines go to a file
// opened with O_APPEND and are written whole with one write(2), unbuffered, so a SIGKILLed
// process loses nothing it emitted and `| jq` sees each line at once; and to any extra
// sinks (the node's PUB trace topic, tests).
//
// Events below the configured level are not emitted at all: they take no seq and do not
// advance the clocks. Not thread-safe; owned by one loop.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "bus/clock.hpp"
#include "bus/protocol.hpp"
#include "bus/trace_level.hpp"

namespace bus {

using Json = nlohmann::ordered_json;

class Tracer {
public:
    /// \param emitter node id (integer) for nodes, a string for clients and "ctl"
    /// \param self    this node's id when the emitter is a cluster node (keeps a vector
    ///                clock), 0 otherwise
    Tracer(const Clock& clock, Json emitter, uint64_t inc, TraceLevel level, NodeId self = 0);
    ~Tracer();
    Tracer(const Tracer&) = delete;
    Tracer& operator=(const Tracer&) = delete;

    /// Appends to `path`, or writes to stdout for "-"; "" means no file.
    /// \throws ConfigError when the file cannot be opened.
    void open(const std::string& path);
    /// Every emitted line (without its newline) is also handed to `sink`.
    void add_sink(std::function<void(const std::string& line)> sink);

    bool enabled(TraceLevel l) const { return l <= level_; }
    TraceLevel level() const { return level_; }

    /// Emits `ev` with `fields` (an object) if `l` is enabled. Advances seq and clocks.
    void emit(std::string_view ev, Json fields = Json::object(), TraceLevel l = TraceLevel::state);

    /// The Lamport and vector clock the next emitted event will carry: stamp an outgoing
    /// envelope with it, send, then emit msg.send.
    uint64_t next_lc() const { return lc_ + 1; }
    VectorClock next_vc() const;
    /// Folds in the clocks of a received message before its msg.recv is emitted.
    void merge(std::optional<uint64_t> lc, const std::optional<VectorClock>& vc);

    /// Buffered: emitted lines are kept until flush() (or destruction) and written in one
    /// write, instead of one write each. A node loop flushes before anything it sends and
    /// before each fsync, so no message leaves and nothing becomes durable ahead of the
    /// events that led to it. A kill -9 loses the lines of the round it hit: events whose
    /// effects had not left the process, and the msg.send of messages that had (emitted
    /// after their send, as always): a peer's msg.recv may then have no send to match,
    /// which checkers already allow. Sinks still get each line at once.
    void set_buffered(bool on) { buffered_ = on; }
    void flush();

    uint64_t seq() const { return seq_; }
    uint64_t inc() const { return inc_; }

private:
    const Clock& clock_;
    std::string emitter_text_;  ///< the emitter as JSON, written into every line
    uint64_t inc_;
    TraceLevel level_;
    NodeId self_;
    uint64_t seq_ = 0;
    uint64_t lc_ = 0;
    VectorClock vc_;
    int fd_ = -1;
    bool own_fd_ = false;
    bool buffered_ = false;
    std::string pending_;  ///< lines not yet written (buffered)
    std::vector<std::function<void(const std::string&)>> sinks_;
};

/// The emitter of a trace event as text: 3, "c-1a2b", "ctl" ("?" if absent).
std::string emitter_of(const Json& ev);

/// The id of a message in the trace: [sender, inc, seq]. `seq` counts per channel (a PUB
/// topic, a link to one peer), so an id is unique per channel, not per sender: a sender's
/// first ANSWER to node 1 and its first ANSWER to node 2 share it.
Json message_id(const Sender& from, uint64_t inc, uint64_t seq);

/// Matching msg.send to msg.recv: the key of a send — its id, its channel kind (`ch`: req,
/// rep) and its addressee, or its id alone when published —, and the keys a receive may
/// match (by its own `ch` and node), most specific first.
std::string message_send_key(const Json& send);
std::vector<std::string> message_recv_keys(const Json& recv);

}  // namespace bus
