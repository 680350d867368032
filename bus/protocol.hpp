// The wire protocol: one envelope for every message, and one struct per message type, in
// the order of the table in docs/PROTOCOL.md. Change that document and this header in the
// same commit.
//
// Encoding is msgpack: the envelope is a map with string keys, the body a map too, so a
// frame can be read by any msgpack tool (python3-msgpack, for example). Decoding is strict
// and total: a frame that is oversized, not msgpack, has trailing bytes, a wrong version,
// an unknown type, or a missing, mistyped or unexpected field is rejected with a reason and
// never partly applied. decode() never throws.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "bus/trace_level.hpp"

namespace bus {

using NodeId = uint32_t;
/// A node id (cluster node, integer) or a client id (string).
using Sender = std::variant<NodeId, std::string>;
/// Vector clock over cluster nodes only.
using VectorClock = std::map<NodeId, uint64_t>;

inline constexpr uint32_t kProtocolVersion = 1;
/// Frames larger than this are dropped unread ("oversized").
inline constexpr size_t kMaxFrameBytes = 64 * 1024;
inline constexpr size_t kMaxClientIdBytes = 64;

/// Message type ids: docs/PROTOCOL.md, "Message types".
enum class MsgType : uint16_t {
    heartbeat = 1,
    election = 2,
    answer = 3,
    coordinator = 4,
    leader = 5,
    pre_vote = 6,
    pre_vote_reply = 7,
    request_vote = 8,
    vote = 9,
    append_entries = 10,
    append_reply = 11,
    time_request = 12,
    time_response = 13,
    clock_poll = 14,
    clock_reading = 15,
    clock_adjust = 16,
    ring_election = 17,
    ring_ack = 18,
    ping = 19,
    pong = 20,
    heartbeat_ack = 21,
    join = 22,
    welcome = 23,
    member = 24,
    leave = 25,
    install_snapshot = 26,
    snapshot_reply = 27,
    propose = 28,
    propose_reply = 29,
    lock_request = 30,
    lock_reply = 31,
};

/// Host names longer than this (DNS's limit) and labels longer than kMaxNameBytes are
/// rejected when decoding membership messages.
inline constexpr size_t kMaxHostBytes = 253;
inline constexpr size_t kMaxNameBytes = 64;
/// Members a WELCOME may list.
inline constexpr size_t kMaxMembers = 1000;

/// A member as membership messages carry it: what a node needs to reach it (the fields of a
/// cluster file's [[node]]), and whether it is one of the cluster file's nodes ("static":
/// never forgotten, watched for its return) or joined at runtime.
struct MemberInfo {
    NodeId id = 0;
    std::string name;
    int64_t priority = 0;
    std::string host;
    uint16_t pub = 0;
    uint16_t peer = 0;
    uint16_t control = 0;
    bool is_static = false;
    bool operator==(const MemberInfo&) const = default;
};

/// 1 HEARTBEAT, PUB topic "hb": "I am alive; expect the next one within interval_us".
struct Heartbeat {
    uint64_t interval_us = 0;
    bool operator==(const Heartbeat&) const = default;
};
/// 2 ELECTION, DEALER -> ROUTER (bully): "I am holding an election in this epoch".
struct Election {
    uint64_t epoch = 0;
    int64_t priority = 0;
    bool operator==(const Election&) const = default;
};
/// 3 ANSWER, ROUTER -> DEALER, reply to ELECTION (bully): "I outrank you; I take over".
struct Answer {
    uint64_t epoch = 0;
    bool operator==(const Answer&) const = default;
};
/// 4 COORDINATOR, DEALER -> ROUTER and PUB topic "leader" (bully): "`leader` leads in this
/// epoch; backup is next in line (0 = none)". Sent by the winner to every peer and once on
/// PUB; also sent by any node to catch up one that is behind (then `leader` != sender).
struct Coordinator {
    uint64_t epoch = 0;
    NodeId leader = 0;
    NodeId backup = 0;
    bool operator==(const Coordinator&) const = default;
};
/// 5 LEADER, PUB topic "leader": the leader's periodic beacon, "I still lead in this epoch",
/// once per heartbeat period. Late joiners and observers learn the leader from it, and lost
/// COORDINATORs and split views heal through it. Same fields as COORDINATOR.
struct Leader {
    uint64_t epoch = 0;
    NodeId leader = 0;
    NodeId backup = 0;
    bool operator==(const Leader&) const = default;
};

/// 6 PRE_VOTE, DEALER -> ROUTER (Raft §9.6): "would you vote for me in `term` (current + 1)
/// if I held an election?" Changes no term. Log position for the up-to-date check.
struct PreVote {
    uint64_t term = 0;
    uint64_t last_index = 0;
    uint64_t last_term = 0;
    bool operator==(const PreVote&) const = default;
};
/// 7 PRE_VOTE_REPLY, ROUTER -> DEALER: `term` is the pre-vote's term if granted, else the
/// replier's current term.
struct PreVoteReply {
    uint64_t term = 0;
    bool granted = false;
    bool operator==(const PreVoteReply&) const = default;
};
/// 8 REQUEST_VOTE, DEALER -> ROUTER (Raft §5.2): "vote for me in `term`".
struct RequestVote {
    uint64_t term = 0;
    uint64_t last_index = 0;
    uint64_t last_term = 0;
    bool operator==(const RequestVote&) const = default;
};
/// 9 VOTE, ROUTER -> DEALER, the reply to REQUEST_VOTE.
struct Vote {
    uint64_t term = 0;
    bool granted = false;
    bool operator==(const Vote&) const = default;
};
/// An entry as AppendEntries carries it: its index is prev_index + its position (from 1).
struct WireEntry {
    uint64_t term = 0;
    std::string data;  ///< msgpack bin
    bool operator==(const WireEntry&) const = default;
};
/// Entries one AppendEntries may carry (the frame limit bounds their bytes too).
inline constexpr size_t kMaxWireEntries = 1000;

/// 10 APPEND_ENTRIES, DEALER -> ROUTER (Raft §5.3), from the leader of `term`: the entries
/// after prev_index (none: the leader's heartbeat) and the leader's commit index.
struct AppendEntries {
    uint64_t term = 0;
    uint64_t prev_index = 0;
    uint64_t prev_term = 0;
    uint64_t commit = 0;
    std::vector<WireEntry> entries;
    bool operator==(const AppendEntries&) const = default;
};
/// 11 APPEND_REPLY, ROUTER -> DEALER: `match` is the last index known to match the
/// leader's log when `success`; when not, a hint: the leader may retry from match + 1.
struct AppendReply {
    uint64_t term = 0;
    bool success = false;
    uint64_t match = 0;
    bool operator==(const AppendReply&) const = default;
};

/// 12 TIME_REQUEST, REQ -> REP (Cristian): "what time is it on your clock?" No fields.
struct TimeRequest {
    bool operator==(const TimeRequest&) const = default;
};
/// 13 TIME_RESPONSE, REP -> REQ: the server's virtual clock when the request arrived (t1)
/// and when the reply left (t2), µs since the epoch, so its processing time is excluded.
struct TimeResponse {
    int64_t t1 = 0;
    int64_t t2 = 0;
    bool operator==(const TimeResponse&) const = default;
};
/// 14 CLOCK_POLL, DEALER -> ROUTER, Berkeley master to member: "read your clock", for
/// round `round` of the master elected in `epoch`.
struct ClockPoll {
    uint64_t epoch = 0;
    uint64_t round = 0;
    bool operator==(const ClockPoll&) const = default;
};
/// 15 CLOCK_READING, ROUTER -> DEALER, the member's virtual clock when it answered.
struct ClockReading {
    uint64_t epoch = 0;
    uint64_t round = 0;
    int64_t time_us = 0;
    bool operator==(const ClockReading&) const = default;
};
/// 16 CLOCK_ADJUST, DEALER -> ROUTER, master to member: the member's own correction, a
/// delta (never an absolute time), and a rate correction in ppm.
struct ClockAdjust {
    uint64_t epoch = 0;
    uint64_t round = 0;
    int64_t delta_us = 0;
    double rate_ppm = 0;
    bool operator==(const ClockAdjust&) const = default;
};

/// 17 RING_ELECTION, DEALER -> ROUTER, to the successor on the ring (Chang-Roberts): the
/// token of `initiator`'s election in `epoch`, with the ids it has collected so far.
struct RingElection {
    uint64_t epoch = 0;
    NodeId initiator = 0;
    std::vector<NodeId> ids;
    bool operator==(const RingElection&) const = default;
};
/// 18 RING_ACK, ROUTER -> DEALER: "I have the token (or coordinator) of `epoch`": without it
/// the sender skips this successor (ring repair).
struct RingAck {
    uint64_t epoch = 0;
    bool operator==(const RingAck&) const = default;
};

/// 19 PING, DEALER -> ROUTER: a direct probe of a suspected peer (Zyre's "evasive" peer gets
/// pinged): its heartbeats may be lost on PUB/SUB while it is alive.
struct Ping {
    uint64_t nonce = 0;
    bool operator==(const Ping&) const = default;
};
/// 20 PONG, ROUTER -> DEALER, the answer: like any message, a sign of life.
struct Pong {
    uint64_t nonce = 0;
    bool operator==(const Pong&) const = default;
};

/// 21 HEARTBEAT_ACK, DEALER -> ROUTER, follower to the leader it follows: "I heard your
/// heartbeat `seq`", so that a leader knows which followers hear it (seed 002).
struct HeartbeatAck {
    uint64_t seq = 0;
    bool operator==(const HeartbeatAck&) const = default;
};
/// 22 JOIN, DEALER -> ROUTER: "admit me": a node started with --join, to the member it names
/// (and again to a member that restarted or after its own stall, in case it was forgotten).
/// The body is the joiner's MemberInfo; its id must be the envelope's sender.
struct Join {
    MemberInfo member;
    bool operator==(const Join&) const = default;
};
/// 23 WELCOME, ROUTER -> DEALER, the answer to JOIN: every member the answering node knows,
/// itself included; or `ok` = false and why (an id already taken).
struct Welcome {
    bool ok = true;
    std::string reason;
    std::vector<MemberInfo> members;
    bool operator==(const Welcome&) const = default;
};
/// 24 MEMBER, DEALER -> ROUTER: the node that admitted a joiner tells every other member.
struct Member {
    MemberInfo member;
    bool operator==(const Member&) const = default;
};
/// 25 LEAVE, DEALER -> ROUTER, to every member: "I am leaving; remove me now" (graceful
/// leave: no detection timeout to wait out).
struct Leave {
    bool operator==(const Leave&) const = default;
};

/// Bytes of snapshot one INSTALL_SNAPSHOT carries at most (well inside kMaxFrameBytes).
inline constexpr size_t kMaxSnapshotChunk = 32 * 1024;

/// 26 INSTALL_SNAPSHOT, DEALER -> ROUTER (Raft §7), from the leader of `term` to a follower
/// that needs entries it has compacted away: bytes [offset, offset + data.size()) of the
/// snapshot of everything up to last_index (whose term is last_term); `done` on the last.
struct InstallSnapshot {
    uint64_t term = 0;
    uint64_t last_index = 0;
    uint64_t last_term = 0;
    uint64_t offset = 0;
    std::string data;  ///< msgpack bin
    bool done = false;
    bool operator==(const InstallSnapshot&) const = default;
};
/// 27 SNAPSHOT_REPLY, ROUTER -> DEALER: the follower holds `offset` bytes of the snapshot
/// of last_index (the leader goes on from there), or, when `done`, has installed it (or
/// already had everything up to last_index).
struct SnapshotReply {
    uint64_t term = 0;
    uint64_t last_index = 0;
    uint64_t offset = 0;
    bool done = false;
    bool operator==(const SnapshotReply&) const = default;
};

/// 28 PROPOSE, client DEALER -> a node's client ROUTER (a replicated-log node: ftbus-elect
/// --algo raft): append `data` to the replicated log. Request number `req` is the client's
/// own, echoed in the reply.
struct Propose {
    uint64_t req = 0;
    std::string data;  ///< msgpack bin, at most 32 KiB (kMaxEntryBytes)
    bool operator==(const Propose&) const = default;
};
/// 29 PROPOSE_REPLY, client ROUTER -> DEALER: `ok` once the entry is committed and applied
/// at `index`; otherwise `error` says why, and `leader` (0: unknown) is where to go instead.
struct ProposeReply {
    uint64_t req = 0;
    bool ok = false;
    uint64_t index = 0;
    NodeId leader = 0;
    std::string error;
    bool operator==(const ProposeReply&) const = default;
};

/// 30 LOCK_REQUEST, client DEALER -> a lock server's client ROUTER (docs/LOCKS.md). `op`:
/// open {ttl_ms}, keepalive {session}, close {session}, acquire {session, lock}, release
/// {session, lock, token}, append {session, lock, token, file, data}, status {session,
/// lock ("" = all)}. Every field is always present (empty or 0 when unused).
struct LockRequest {
    uint64_t req = 0;
    std::string op;
    uint64_t session = 0;
    uint64_t ttl_ms = 0;
    std::string lock;
    uint64_t token = 0;
    std::string file;
    std::string data;  ///< msgpack bin (the lock service refuses appends over 16 KiB)
    bool operator==(const LockRequest&) const = default;
};
/// 31 LOCK_REPLY, client ROUTER -> DEALER: the answer to request `req`, or (req 0) a push:
/// a grant to a waiter, or its new place in the queue. `status`: opened, alive, granted,
/// queued, released, cancelled, appended, closed, status, rejected (error says why: "you do not hold
/// the lock", "no such session ..."), redirect (go to `leader`; 0 = unknown yet), busy,
/// unavailable (a new leader not ready yet, or leadership lost: retry the same req).
struct LockReplyMsg {
    uint64_t req = 0;
    std::string status;
    std::string error;
    uint64_t session = 0;
    std::string lock;
    uint64_t token = 0;
    uint64_t pos = 0;
    std::string file;
    uint64_t offset = 0;
    uint64_t bytes = 0;
    NodeId leader = 0;
    uint64_t ttl_ms = 0;
    std::string info;  ///< status: JSON text
    bool operator==(const LockReplyMsg&) const = default;
};

/// Alternative index + 1 == MsgType value.
using Body = std::variant<Heartbeat, Election, Answer, Coordinator, Leader, PreVote, PreVoteReply, RequestVote,
                          Vote, AppendEntries, AppendReply, TimeRequest, TimeResponse, ClockPoll, ClockReading,
                          ClockAdjust, RingElection, RingAck, Ping, Pong, HeartbeatAck, Join, Welcome, Member,
                          Leave, InstallSnapshot, SnapshotReply, Propose, ProposeReply, LockRequest, LockReplyMsg>;

struct Envelope {
    uint32_t v = kProtocolVersion;
    Sender from;
    uint64_t inc = 0;  ///< sender incarnation, new on every process start
    uint64_t seq = 0;  ///< per (sender, channel) counter, from 1
    std::optional<uint64_t> lc;     ///< Lamport clock, only on messages whose send is traced
    std::optional<VectorClock> vc;  ///< vector clock, ditto, cluster nodes only
    Body body;

    MsgType type() const { return static_cast<MsgType>(body.index() + 1); }
    bool operator==(const Envelope&) const = default;
};

/// Per-type facts from the PROTOCOL.md table.
struct MsgInfo {
    const char* name;    ///< "HEARTBEAT"
    TraceLevel level;    ///< trace level of its msg.send / msg.recv events
    const char* topic;   ///< PUB topic it may be published on; "" = never on PUB
};
MsgInfo info(MsgType t);

std::string encode(const Envelope& env);

struct DecodeResult {
    std::optional<Envelope> env;
    std::string error;  ///< reason when env is empty: "oversized", "unsupported version 7", ...
};
/// Strict decode of one frame. Never throws.
DecodeResult decode(std::string_view frame);

/// "3" for node 3, "c-ab12" for a client: the routing id and the trace spelling.
std::string to_string(const Sender& s);

}  // namespace bus
