// Trace levels, shared by the tracer and the protocol table (each message type says at
// which level its msg.send / msg.recv events appear).
#pragma once

#include <optional>
#include <string_view>

namespace bus {

/// state: state changes and ordinary messages (default). msgs: + replication and keepalive
/// traffic. all: + heartbeats.
enum class TraceLevel { state = 0, msgs = 1, all = 2 };

std::optional<TraceLevel> parse_trace_level(std::string_view s);
const char* to_string(TraceLevel l);

}  // namespace bus
