#include "bus/protocol.hpp"

#include <cmath>
#include <msgpack.hpp>
#include <set>

namespace bus {

std::optional<TraceLevel> parse_trace_level(std::string_view s) {
    if (s == "state") return TraceLevel::state;
    if (s == "msgs") return TraceLevel::msgs;
    if (s == "all") return TraceLevel::all;
    return std::nullopt;
}

const char* to_string(TraceLevel l) {
    switch (l) {
        case TraceLevel::state: return "state";
        case TraceLevel::msgs: return "msgs";
        case TraceLevel::all: return "all";
    }
    return "?";
}

MsgInfo info(MsgType t) {
    switch (t) {
        case MsgType::heartbeat: return {"HEARTBEAT", TraceLevel::all, "hb"};
        case MsgType::election: return {"ELECTION", TraceLevel::state, ""};
        case MsgType::answer: return {"ANSWER", TraceLevel::state, ""};
        case MsgType::coordinator: return {"COORDINATOR", TraceLevel::state, "leader"};
        case MsgType::leader: return {"LEADER", TraceLevel::msgs, "leader"};
        case MsgType::pre_vote: return {"PRE_VOTE", TraceLevel::state, ""};
        case MsgType::pre_vote_reply: return {"PRE_VOTE_REPLY", TraceLevel::state, ""};
        case MsgType::request_vote: return {"REQUEST_VOTE", TraceLevel::state, ""};
        case MsgType::vote: return {"VOTE", TraceLevel::state, ""};
        case MsgType::append_entries: return {"APPEND_ENTRIES", TraceLevel::msgs, ""};
        case MsgType::append_reply: return {"APPEND_REPLY", TraceLevel::msgs, ""};
        case MsgType::time_request: return {"TIME_REQUEST", TraceLevel::msgs, ""};
        case MsgType::time_response: return {"TIME_RESPONSE", TraceLevel::msgs, ""};
        case MsgType::clock_poll: return {"CLOCK_POLL", TraceLevel::state, ""};
        case MsgType::clock_reading: return {"CLOCK_READING", TraceLevel::state, ""};
        case MsgType::clock_adjust: return {"CLOCK_ADJUST", TraceLevel::state, ""};
        case MsgType::ring_election: return {"RING_ELECTION", TraceLevel::state, ""};
        case MsgType::ring_ack: return {"RING_ACK", TraceLevel::msgs, ""};
        case MsgType::ping: return {"PING", TraceLevel::msgs, ""};
        case MsgType::pong: return {"PONG", TraceLevel::msgs, ""};
        case MsgType::heartbeat_ack: return {"HEARTBEAT_ACK", TraceLevel::all, ""};
        case MsgType::join: return {"JOIN", TraceLevel::state, ""};
        case MsgType::welcome: return {"WELCOME", TraceLevel::state, ""};
        case MsgType::member: return {"MEMBER", TraceLevel::state, ""};
        case MsgType::leave: return {"LEAVE", TraceLevel::state, ""};
        case MsgType::install_snapshot: return {"INSTALL_SNAPSHOT", TraceLevel::msgs, ""};
        case MsgType::snapshot_reply: return {"SNAPSHOT_REPLY", TraceLevel::msgs, ""};
        case MsgType::propose: return {"PROPOSE", TraceLevel::msgs, ""};
        case MsgType::propose_reply: return {"PROPOSE_REPLY", TraceLevel::msgs, ""};
        case MsgType::lock_request: return {"LOCK_REQUEST", TraceLevel::msgs, ""};
        case MsgType::lock_reply: return {"LOCK_REPLY", TraceLevel::msgs, ""};
    }
    return {"?", TraceLevel::state, ""};
}

std::string to_string(const Sender& s) {
    if (auto* id = std::get_if<NodeId>(&s)) return std::to_string(*id);
    return std::get<std::string>(s);
}

// ---- encoding -------------------------------------------------------------------------

namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

void pack_key(Packer& p, std::string_view k) { p.pack_str(static_cast<uint32_t>(k.size())), p.pack_str_body(k.data(), static_cast<uint32_t>(k.size())); }

struct BodyPacker {
    Packer& p;
    void operator()(const Heartbeat& b) {
        p.pack_map(1);
        pack_key(p, "interval_us"), p.pack(b.interval_us);
    }
    void operator()(const Election& b) {
        p.pack_map(2);
        pack_key(p, "epoch"), p.pack(b.epoch);
        pack_key(p, "priority"), p.pack(b.priority);
    }
    void operator()(const Answer& b) {
        p.pack_map(1);
        pack_key(p, "epoch"), p.pack(b.epoch);
    }
    void operator()(const Coordinator& b) { claim(b.epoch, b.leader, b.backup); }
    void operator()(const Leader& b) { claim(b.epoch, b.leader, b.backup); }
    void operator()(const PreVote& b) { ask(b.term, b.last_index, b.last_term); }
    void operator()(const RequestVote& b) { ask(b.term, b.last_index, b.last_term); }
    void operator()(const PreVoteReply& b) { answer(b.term, b.granted); }
    void operator()(const Vote& b) { answer(b.term, b.granted); }
    void operator()(const AppendEntries& b) {
        p.pack_map(5);
        pack_key(p, "term"), p.pack(b.term);
        pack_key(p, "prev_index"), p.pack(b.prev_index);
        pack_key(p, "prev_term"), p.pack(b.prev_term);
        pack_key(p, "commit"), p.pack(b.commit);
        pack_key(p, "entries"), p.pack_array(static_cast<uint32_t>(b.entries.size()));
        for (const WireEntry& e : b.entries) {
            p.pack_map(2);
            pack_key(p, "term"), p.pack(e.term);
            pack_key(p, "data"), p.pack_bin(static_cast<uint32_t>(e.data.size())),
                p.pack_bin_body(e.data.data(), static_cast<uint32_t>(e.data.size()));
        }
    }
    void operator()(const AppendReply& b) {
        p.pack_map(3);
        pack_key(p, "term"), p.pack(b.term);
        pack_key(p, "success"), p.pack(b.success);
        pack_key(p, "match"), p.pack(b.match);
    }
    void operator()(const TimeRequest&) { p.pack_map(0); }
    void operator()(const TimeResponse& b) {
        p.pack_map(2);
        pack_key(p, "t1"), p.pack(b.t1);
        pack_key(p, "t2"), p.pack(b.t2);
    }
    void operator()(const ClockPoll& b) {
        p.pack_map(2);
        pack_key(p, "epoch"), p.pack(b.epoch);
        pack_key(p, "round"), p.pack(b.round);
    }
    void operator()(const ClockReading& b) {
        p.pack_map(3);
        pack_key(p, "epoch"), p.pack(b.epoch);
        pack_key(p, "round"), p.pack(b.round);
        pack_key(p, "time_us"), p.pack(b.time_us);
    }
    void operator()(const ClockAdjust& b) {
        p.pack_map(4);
        pack_key(p, "epoch"), p.pack(b.epoch);
        pack_key(p, "round"), p.pack(b.round);
        pack_key(p, "delta_us"), p.pack(b.delta_us);
        pack_key(p, "rate_ppm"), p.pack(b.rate_ppm);
    }
    void operator()(const RingElection& b) {
        p.pack_map(3);
        pack_key(p, "epoch"), p.pack(b.epoch);
        pack_key(p, "initiator"), p.pack(b.initiator);
        pack_key(p, "ids"), p.pack_array(static_cast<uint32_t>(b.ids.size()));
        for (NodeId id : b.ids) p.pack(id);
    }
    void operator()(const RingAck& b) {
        p.pack_map(1);
        pack_key(p, "epoch"), p.pack(b.epoch);
    }
    void operator()(const Ping& b) { nonce(b.nonce); }
    void operator()(const Pong& b) { nonce(b.nonce); }
    void operator()(const HeartbeatAck& b) {
        p.pack_map(1);
        pack_key(p, "seq"), p.pack(b.seq);
    }
    void operator()(const Join& b) { member(b.member); }
    void operator()(const Member& b) { member(b.member); }
    void operator()(const Welcome& b) {
        p.pack_map(3);
        pack_key(p, "ok"), p.pack(b.ok);
        pack_key(p, "reason"), p.pack(b.reason);
        pack_key(p, "members"), p.pack_array(static_cast<uint32_t>(b.members.size()));
        for (const MemberInfo& m : b.members) member(m);
    }
    void operator()(const Leave&) { p.pack_map(0); }
    void operator()(const InstallSnapshot& b) {
        p.pack_map(6);
        pack_key(p, "term"), p.pack(b.term);
        pack_key(p, "last_index"), p.pack(b.last_index);
        pack_key(p, "last_term"), p.pack(b.last_term);
        pack_key(p, "offset"), p.pack(b.offset);
        pack_key(p, "data"), p.pack_bin(static_cast<uint32_t>(b.data.size())),
            p.pack_bin_body(b.data.data(), static_cast<uint32_t>(b.data.size()));
        pack_key(p, "done"), p.pack(b.done);
    }
    void operator()(const Propose& b) {
        p.pack_map(2);
        pack_key(p, "req"), p.pack(b.req);
        pack_key(p, "data"), p.pack_bin(static_cast<uint32_t>(b.data.size())),
            p.pack_bin_body(b.data.data(), static_cast<uint32_t>(b.data.size()));
    }
    void operator()(const ProposeReply& b) {
        p.pack_map(5);
        pack_key(p, "req"), p.pack(b.req);
        pack_key(p, "ok"), p.pack(b.ok);
        pack_key(p, "index"), p.pack(b.index);
        pack_key(p, "leader"), p.pack(b.leader);
        pack_key(p, "error"), p.pack(b.error);
    }
    void operator()(const LockRequest& b) {
        p.pack_map(8);
        pack_key(p, "req"), p.pack(b.req);
        pack_key(p, "op"), p.pack(b.op);
        pack_key(p, "session"), p.pack(b.session);
        pack_key(p, "ttl_ms"), p.pack(b.ttl_ms);
        pack_key(p, "lock"), p.pack(b.lock);
        pack_key(p, "token"), p.pack(b.token);
        pack_key(p, "file"), p.pack(b.file);
        pack_key(p, "data"), p.pack_bin(static_cast<uint32_t>(b.data.size())),
            p.pack_bin_body(b.data.data(), static_cast<uint32_t>(b.data.size()));
    }
    void operator()(const LockReplyMsg& b) {
        p.pack_map(13);
        pack_key(p, "req"), p.pack(b.req);
        pack_key(p, "status"), p.pack(b.status);
        pack_key(p, "error"), p.pack(b.error);
        pack_key(p, "session"), p.pack(b.session);
        pack_key(p, "lock"), p.pack(b.lock);
        pack_key(p, "token"), p.pack(b.token);
        pack_key(p, "pos"), p.pack(b.pos);
        pack_key(p, "file"), p.pack(b.file);
        pack_key(p, "offset"), p.pack(b.offset);
        pack_key(p, "bytes"), p.pack(b.bytes);
        pack_key(p, "leader"), p.pack(b.leader);
        pack_key(p, "ttl_ms"), p.pack(b.ttl_ms);
        pack_key(p, "info"), p.pack(b.info);
    }
    void operator()(const SnapshotReply& b) {
        p.pack_map(4);
        pack_key(p, "term"), p.pack(b.term);
        pack_key(p, "last_index"), p.pack(b.last_index);
        pack_key(p, "offset"), p.pack(b.offset);
        pack_key(p, "done"), p.pack(b.done);
    }
    void member(const MemberInfo& m) {
        p.pack_map(8);
        pack_key(p, "id"), p.pack(m.id);
        pack_key(p, "name"), p.pack(m.name);
        pack_key(p, "priority"), p.pack(m.priority);
        pack_key(p, "host"), p.pack(m.host);
        pack_key(p, "pub"), p.pack(m.pub);
        pack_key(p, "peer"), p.pack(m.peer);
        pack_key(p, "control"), p.pack(m.control);
        pack_key(p, "static"), p.pack(m.is_static);
    }
    void nonce(uint64_t n) {
        p.pack_map(1);
        pack_key(p, "nonce"), p.pack(n);
    }
    void ask(uint64_t term, uint64_t last_index, uint64_t last_term) {
        p.pack_map(3);
        pack_key(p, "term"), p.pack(term);
        pack_key(p, "last_index"), p.pack(last_index);
        pack_key(p, "last_term"), p.pack(last_term);
    }
    void answer(uint64_t term, bool granted) {
        p.pack_map(2);
        pack_key(p, "term"), p.pack(term);
        pack_key(p, "granted"), p.pack(granted);
    }
    void claim(uint64_t epoch, NodeId leader, NodeId backup) {
        p.pack_map(3);
        pack_key(p, "epoch"), p.pack(epoch);
        pack_key(p, "leader"), p.pack(leader);
        pack_key(p, "backup"), p.pack(backup);
    }
};

}  // namespace

std::string encode(const Envelope& env) {
    msgpack::sbuffer buf;
    Packer p(buf);
    p.pack_map(6 + (env.lc ? 1 : 0) + (env.vc ? 1 : 0));
    pack_key(p, "v"), p.pack(env.v);
    pack_key(p, "type"), p.pack(static_cast<uint16_t>(env.type()));
    pack_key(p, "from");
    if (auto* id = std::get_if<NodeId>(&env.from))
        p.pack(*id);
    else
        p.pack(std::get<std::string>(env.from));
    pack_key(p, "inc"), p.pack(env.inc);
    pack_key(p, "seq"), p.pack(env.seq);
    if (env.lc) pack_key(p, "lc"), p.pack(*env.lc);
    if (env.vc) {
        pack_key(p, "vc");
        p.pack_map(static_cast<uint32_t>(env.vc->size()));
        for (auto& [node, count] : *env.vc) p.pack(node), p.pack(count);
    }
    pack_key(p, "body");
    std::visit(BodyPacker{p}, env.body);
    return std::string(buf.data(), buf.size());
}

// ---- strict decoding ------------------------------------------------------------------

namespace {

/// Reads the fields of one msgpack map, remembering the first error. Every key must be a
/// string, appear once, and be read; check_done() reports any key nobody asked for.
class MapReader {
public:
    MapReader(const msgpack::object& o, std::string what) : what_(std::move(what)) {
        if (o.type != msgpack::type::MAP) {
            fail(what_ + " is not a map");
            return;
        }
        std::set<std::string_view> seen;
        for (uint32_t i = 0; i < o.via.map.size; ++i) {
            const auto& kv = o.via.map.ptr[i];
            if (kv.key.type != msgpack::type::STR) {
                fail(what_ + " has a non-string key");
                return;
            }
            std::string_view k(kv.key.via.str.ptr, kv.key.via.str.size);
            if (!seen.insert(k).second) {
                fail(what_ + " repeats field '" + std::string(k) + "'");
                return;
            }
            fields_.emplace(k, &kv.val);
        }
    }

    bool ok() const { return error_.empty(); }
    const std::string& error() const { return error_; }

    const msgpack::object* take(std::string_view key, bool required = true) {
        if (!ok()) return nullptr;
        auto it = fields_.find(key);
        if (it == fields_.end()) {
            if (required) fail(what_ + " lacks field '" + std::string(key) + "'");
            return nullptr;
        }
        const msgpack::object* o = it->second;
        fields_.erase(it);
        return o;
    }

    template <typename T>
    bool get_uint(std::string_view key, T& out, uint64_t max = std::numeric_limits<T>::max()) {
        const msgpack::object* o = take(key);
        if (!o) return false;
        if (o->type != msgpack::type::POSITIVE_INTEGER || o->via.u64 > max)
            return mistyped(key, "an unsigned integer");
        out = static_cast<T>(o->via.u64);
        return true;
    }

    bool get_int(std::string_view key, int64_t& out) {
        const msgpack::object* o = take(key);
        if (!o) return false;
        if (o->type == msgpack::type::POSITIVE_INTEGER && o->via.u64 <= INT64_MAX)
            out = static_cast<int64_t>(o->via.u64);
        else if (o->type == msgpack::type::NEGATIVE_INTEGER)
            out = o->via.i64;
        else
            return mistyped(key, "an integer");
        return true;
    }

    bool get_double(std::string_view key, double& out) {
        const msgpack::object* o = take(key);
        if (!o) return false;
        if (o->type == msgpack::type::FLOAT32 || o->type == msgpack::type::FLOAT64)
            out = o->via.f64;
        else if (o->type == msgpack::type::POSITIVE_INTEGER)
            out = static_cast<double>(o->via.u64);
        else if (o->type == msgpack::type::NEGATIVE_INTEGER)
            out = static_cast<double>(o->via.i64);
        else
            return mistyped(key, "a number");
        if (!std::isfinite(out)) return fail(what_ + " field '" + std::string(key) + "' is not finite");
        return true;
    }

    bool get_ids(std::string_view key, std::vector<NodeId>& out) {
        const msgpack::object* o = take(key);
        if (!o) return false;
        if (o->type != msgpack::type::ARRAY) return mistyped(key, "an array of node ids");
        for (uint32_t i = 0; i < o->via.array.size; ++i) {
            const msgpack::object& e = o->via.array.ptr[i];
            if (e.type != msgpack::type::POSITIVE_INTEGER || e.via.u64 < 1 || e.via.u64 > std::numeric_limits<NodeId>::max())
                return mistyped(key, "an array of node ids");
            out.push_back(static_cast<NodeId>(e.via.u64));
        }
        return true;
    }

    bool get_str(std::string_view key, std::string& out, size_t max_bytes) {
        const msgpack::object* o = take(key);
        if (!o) return false;
        if (o->type != msgpack::type::STR) return mistyped(key, "a string");
        if (o->via.str.size > max_bytes)
            return fail(what_ + " field '" + std::string(key) + "' is longer than " + std::to_string(max_bytes) + " bytes");
        out.assign(o->via.str.ptr, o->via.str.size);
        return true;
    }

    bool get_bool(std::string_view key, bool& out) {
        const msgpack::object* o = take(key);
        if (!o) return false;
        if (o->type != msgpack::type::BOOLEAN) return mistyped(key, "a boolean");
        out = o->via.boolean;
        return true;
    }

    bool check_done() {
        if (ok() && !fields_.empty())
            fail(what_ + " has unexpected field '" + std::string(fields_.begin()->first) + "'");
        return ok();
    }

    bool fail(std::string e) {
        if (error_.empty()) error_ = std::move(e);
        return false;
    }

private:
    bool mistyped(std::string_view key, const char* want) {
        return fail(what_ + " field '" + std::string(key) + "' is not " + want);
    }

    std::string what_;
    std::map<std::string_view, const msgpack::object*> fields_;
    std::string error_;
};

bool read_body(MapReader& r, Heartbeat& b) { return r.get_uint("interval_us", b.interval_us); }
bool read_body(MapReader& r, Election& b) {
    return r.get_uint("epoch", b.epoch) && r.get_int("priority", b.priority);
}
bool read_body(MapReader& r, Answer& b) { return r.get_uint("epoch", b.epoch); }
template <typename Claim>
bool read_claim(MapReader& r, Claim& b) {
    return r.get_uint("epoch", b.epoch) && r.get_uint("leader", b.leader) &&
           r.get_uint("backup", b.backup);
}
bool read_body(MapReader& r, Coordinator& b) { return read_claim(r, b); }
bool read_body(MapReader& r, Leader& b) { return read_claim(r, b); }
template <typename Ask>
bool read_ask(MapReader& r, Ask& b) {
    return r.get_uint("term", b.term) && r.get_uint("last_index", b.last_index) &&
           r.get_uint("last_term", b.last_term);
}
bool read_body(MapReader& r, PreVote& b) { return read_ask(r, b); }
bool read_body(MapReader& r, RequestVote& b) { return read_ask(r, b); }
template <typename Answer_>
bool read_answer(MapReader& r, Answer_& b) { return r.get_uint("term", b.term) && r.get_bool("granted", b.granted); }
bool read_body(MapReader& r, PreVoteReply& b) { return read_answer(r, b); }
bool read_body(MapReader& r, Vote& b) { return read_answer(r, b); }
bool read_body(MapReader& r, AppendEntries& b) {
    if (!(r.get_uint("term", b.term) && r.get_uint("prev_index", b.prev_index) &&
          r.get_uint("prev_term", b.prev_term) && r.get_uint("commit", b.commit)))
        return false;
    const msgpack::object* o = r.take("entries");
    if (!o) return false;
    if (o->type != msgpack::type::ARRAY) return r.fail("body field 'entries' is not an array");
    if (o->via.array.size > kMaxWireEntries) return r.fail("body field 'entries' has more than " + std::to_string(kMaxWireEntries));
    for (uint32_t i = 0; i < o->via.array.size; ++i) {
        MapReader er(o->via.array.ptr[i], "entries[" + std::to_string(i) + "]");
        WireEntry e;
        const msgpack::object* d = nullptr;
        if (!er.get_uint("term", e.term) || !(d = er.take("data"))) return r.fail(er.error());
        if (d->type != msgpack::type::BIN) return r.fail("entries[" + std::to_string(i) + "] field 'data' is not bytes");
        e.data.assign(d->via.bin.ptr, d->via.bin.size);
        if (!er.check_done()) return r.fail(er.error());
        if (e.term == 0 || e.term > b.term) return r.fail("entries[" + std::to_string(i) + "] has term " + std::to_string(e.term) + ", not in 1.." + std::to_string(b.term));
        b.entries.push_back(std::move(e));
    }
    return true;
}
bool read_body(MapReader&, TimeRequest&) { return true; }
bool read_body(MapReader& r, TimeResponse& b) { return r.get_int("t1", b.t1) && r.get_int("t2", b.t2); }
bool read_body(MapReader& r, ClockPoll& b) { return r.get_uint("epoch", b.epoch) && r.get_uint("round", b.round); }
bool read_body(MapReader& r, ClockReading& b) {
    return r.get_uint("epoch", b.epoch) && r.get_uint("round", b.round) && r.get_int("time_us", b.time_us);
}
bool read_body(MapReader& r, ClockAdjust& b) {
    return r.get_uint("epoch", b.epoch) && r.get_uint("round", b.round) && r.get_int("delta_us", b.delta_us) &&
           r.get_double("rate_ppm", b.rate_ppm);
}
bool read_body(MapReader& r, RingElection& b) {
    return r.get_uint("epoch", b.epoch) && r.get_uint("initiator", b.initiator) && r.get_ids("ids", b.ids);
}
bool read_body(MapReader& r, RingAck& b) { return r.get_uint("epoch", b.epoch); }
bool read_body(MapReader& r, Ping& b) { return r.get_uint("nonce", b.nonce); }
bool read_body(MapReader& r, Pong& b) { return r.get_uint("nonce", b.nonce); }
bool read_body(MapReader& r, AppendReply& b) {
    return r.get_uint("term", b.term) && r.get_bool("success", b.success) && r.get_uint("match", b.match);
}

bool read_member(MapReader& r, MemberInfo& m) {
    if (!(r.get_uint("id", m.id) && r.get_str("name", m.name, kMaxNameBytes) && r.get_int("priority", m.priority) &&
          r.get_str("host", m.host, kMaxHostBytes) && r.get_uint("pub", m.pub) && r.get_uint("peer", m.peer) &&
          r.get_uint("control", m.control) && r.get_bool("static", m.is_static)))
        return false;
    if (m.id == 0) return r.fail("member id is 0");
    if (m.host.empty() || m.pub == 0 || m.peer == 0) return r.fail("member " + std::to_string(m.id) + " has no host, pub or peer port");
    return true;
}
bool read_body(MapReader& r, HeartbeatAck& b) { return r.get_uint("seq", b.seq); }
bool read_body(MapReader& r, Join& b) { return read_member(r, b.member); }
bool read_body(MapReader& r, Member& b) { return read_member(r, b.member); }
bool read_body(MapReader&, Leave&) { return true; }
bool read_body(MapReader& r, InstallSnapshot& b) {
    if (!(r.get_uint("term", b.term) && r.get_uint("last_index", b.last_index) &&
          r.get_uint("last_term", b.last_term) && r.get_uint("offset", b.offset)))
        return false;
    const msgpack::object* d = r.take("data");
    if (!d) return false;
    if (d->type != msgpack::type::BIN) return r.fail("body field 'data' is not bytes");
    if (d->via.bin.size > kMaxSnapshotChunk)
        return r.fail("body field 'data' is larger than " + std::to_string(kMaxSnapshotChunk) + " bytes");
    b.data.assign(d->via.bin.ptr, d->via.bin.size);
    if (!r.get_bool("done", b.done)) return false;
    if (b.last_index == 0 || b.last_term == 0 || b.last_term > b.term)
        return r.fail("snapshot of index " + std::to_string(b.last_index) + " term " + std::to_string(b.last_term) +
                      " from a leader of term " + std::to_string(b.term));
    return true;
}
bool read_body(MapReader& r, Propose& b) {
    if (!r.get_uint("req", b.req)) return false;
    const msgpack::object* d = r.take("data");
    if (!d) return false;
    if (d->type != msgpack::type::BIN) return r.fail("body field 'data' is not bytes");
    if (d->via.bin.size > 32 * 1024) return r.fail("body field 'data' is larger than 32768 bytes");
    b.data.assign(d->via.bin.ptr, d->via.bin.size);
    return true;
}
bool read_body(MapReader& r, ProposeReply& b) {
    return r.get_uint("req", b.req) && r.get_bool("ok", b.ok) && r.get_uint("index", b.index) &&
           r.get_uint("leader", b.leader) && r.get_str("error", b.error, 1024);
}
bool read_body(MapReader& r, LockRequest& b) {
    if (!(r.get_uint("req", b.req) && r.get_str("op", b.op, 16) && r.get_uint("session", b.session) &&
          r.get_uint("ttl_ms", b.ttl_ms) && r.get_str("lock", b.lock, 256) && r.get_uint("token", b.token) &&
          r.get_str("file", b.file, 256)))
        return false;
    const msgpack::object* d = r.take("data");
    if (!d) return false;
    if (d->type != msgpack::type::BIN) return r.fail("body field 'data' is not bytes");
    // (No limit of its own here but the frame's: the lock service refuses an append over
    // its limit with an answer that says so, which a dropped frame could not.)
    b.data.assign(d->via.bin.ptr, d->via.bin.size);
    return true;
}
bool read_body(MapReader& r, LockReplyMsg& b) {
    return r.get_uint("req", b.req) && r.get_str("status", b.status, 32) && r.get_str("error", b.error, 1024) &&
           r.get_uint("session", b.session) && r.get_str("lock", b.lock, 256) && r.get_uint("token", b.token) &&
           r.get_uint("pos", b.pos) && r.get_str("file", b.file, 256) && r.get_uint("offset", b.offset) &&
           r.get_uint("bytes", b.bytes) && r.get_uint("leader", b.leader) && r.get_uint("ttl_ms", b.ttl_ms) &&
           r.get_str("info", b.info, 60000);
}
bool read_body(MapReader& r, SnapshotReply& b) {
    return r.get_uint("term", b.term) && r.get_uint("last_index", b.last_index) && r.get_uint("offset", b.offset) &&
           r.get_bool("done", b.done);
}
bool read_body(MapReader& r, Welcome& b) {
    if (!(r.get_bool("ok", b.ok) && r.get_str("reason", b.reason, 256))) return false;
    const msgpack::object* o = r.take("members");
    if (!o) return false;
    if (o->type != msgpack::type::ARRAY) return r.fail("body field 'members' is not an array");
    if (o->via.array.size > kMaxMembers) return r.fail("body field 'members' lists more than " + std::to_string(kMaxMembers));
    for (uint32_t i = 0; i < o->via.array.size; ++i) {
        MapReader mr(o->via.array.ptr[i], "members[" + std::to_string(i) + "]");
        MemberInfo m;
        if (!read_member(mr, m) || !mr.check_done())
            return r.fail("body field 'members' entry " + std::to_string(i) + ": " + mr.error());
        b.members.push_back(std::move(m));
    }
    return true;
}

template <size_t I = 0>
bool read_typed_body(size_t index, const msgpack::object& o, Body& out, std::string& error) {
    if constexpr (I < std::variant_size_v<Body>) {
        if (index != I) return read_typed_body<I + 1>(index, o, out, error);
        std::variant_alternative_t<I, Body> body{};
        MapReader r(o, "body");
        if (!read_body(r, body) || !r.check_done()) {
            error = r.error();
            return false;
        }
        out = body;
        return true;
    } else {
        error = "unknown type";
        return false;
    }
}

std::optional<Sender> read_sender(const msgpack::object& o) {
    if (o.type == msgpack::type::POSITIVE_INTEGER && o.via.u64 >= 1 &&
        o.via.u64 <= std::numeric_limits<NodeId>::max())
        return Sender(static_cast<NodeId>(o.via.u64));
    if (o.type == msgpack::type::STR && o.via.str.size >= 1 &&
        o.via.str.size <= kMaxClientIdBytes)
        return Sender(std::string(o.via.str.ptr, o.via.str.size));
    return std::nullopt;
}

}  // namespace

DecodeResult decode(std::string_view frame) {
    if (frame.size() > kMaxFrameBytes) return {std::nullopt, "oversized"};
    if (frame.empty()) return {std::nullopt, "empty frame"};
    msgpack::object_handle handle;
    size_t offset = 0;
    try {
        // Limits bound what a hostile frame can make us allocate (bytes: the frame's own size,
        // so that a snapshot chunk or a log entry may use most of a frame).
        msgpack::unpack_limit limit(/*array*/ 1024, /*map*/ 256, /*str*/ kMaxFrameBytes, /*bin*/ kMaxFrameBytes,
                                    /*ext*/ 0, /*depth*/ 4);
        handle = msgpack::unpack(frame.data(), frame.size(), offset, nullptr, nullptr, limit);
    } catch (const msgpack::insufficient_bytes&) {
        return {std::nullopt, "truncated"};
    } catch (const std::exception& e) {
        return {std::nullopt, std::string("not msgpack: ") + e.what()};
    }
    if (offset != frame.size()) return {std::nullopt, "trailing bytes"};

    MapReader r(handle.get(), "envelope");
    Envelope env;
    if (!r.get_uint("v", env.v)) return {std::nullopt, r.error()};
    if (env.v != kProtocolVersion)
        return {std::nullopt, "unsupported version " + std::to_string(env.v)};
    uint16_t type = 0;
    if (!r.get_uint("type", type)) return {std::nullopt, r.error()};
    if (type < 1 || type > std::variant_size_v<Body>)
        return {std::nullopt, "unknown type " + std::to_string(type)};
    const msgpack::object* from = r.take("from");
    if (!from) return {std::nullopt, r.error()};
    auto sender = read_sender(*from);
    if (!sender) return {std::nullopt, "envelope field 'from' is not a node or client id"};
    env.from = *sender;
    if (!r.get_uint("inc", env.inc) || !r.get_uint("seq", env.seq))
        return {std::nullopt, r.error()};
    if (const msgpack::object* lc = r.take("lc", false)) {
        if (lc->type != msgpack::type::POSITIVE_INTEGER)
            return {std::nullopt, "envelope field 'lc' is not an unsigned integer"};
        env.lc = lc->via.u64;
    }
    if (const msgpack::object* vc = r.take("vc", false)) {
        if (vc->type != msgpack::type::MAP)
            return {std::nullopt, "envelope field 'vc' is not a map"};
        VectorClock clock;
        for (uint32_t i = 0; i < vc->via.map.size; ++i) {
            const auto& kv = vc->via.map.ptr[i];
            if (kv.key.type != msgpack::type::POSITIVE_INTEGER || kv.key.via.u64 < 1 ||
                kv.key.via.u64 > std::numeric_limits<NodeId>::max() ||
                kv.val.type != msgpack::type::POSITIVE_INTEGER)
                return {std::nullopt, "envelope field 'vc' is not a map of node id to counter"};
            if (!clock.emplace(static_cast<NodeId>(kv.key.via.u64), kv.val.via.u64).second)
                return {std::nullopt, "envelope field 'vc' names node " +
                                          std::to_string(kv.key.via.u64) + " twice"};
        }
        env.vc = std::move(clock);
    }
    const msgpack::object* body = r.take("body");
    if (!body) return {std::nullopt, r.error()};
    if (!r.check_done()) return {std::nullopt, r.error()};
    std::string error;
    if (!read_typed_body(type - 1u, *body, env.body, error)) return {std::nullopt, error};
    return {std::move(env), {}};
}

}  // namespace bus
