// Codec tests: every message type round-trips, and every kind of malformed frame is
// dropped with its own reason. Malformed frames are built with msgpack::packer directly,
// not with encode(), so the decoder is checked against the wire format, not against itself.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <msgpack.hpp>
#include <random>
#include <string>
#include <vector>

#include "bus/protocol.hpp"

using namespace bus;
using Catch::Matchers::Contains;

namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

void pack_key(Packer& p, std::string_view k) {
    p.pack_str(static_cast<uint32_t>(k.size()));
    p.pack_str_body(k.data(), static_cast<uint32_t>(k.size()));
}

/// One map entry: a key and whatever packs its value.
struct Field {
    std::string key;
    std::function<void(Packer&)> value;
};
using Fields = std::vector<Field>;

void pack_fields(Packer& p, const Fields& fields) {
    p.pack_map(static_cast<uint32_t>(fields.size()));
    for (auto& f : fields) {
        pack_key(p, f.key);
        f.value(p);
    }
}

std::string to_frame(const Fields& fields) {
    msgpack::sbuffer buf;
    Packer p(buf);
    pack_fields(p, fields);
    return std::string(buf.data(), buf.size());
}

template <typename T>
std::function<void(Packer&)> val(T v) {
    return [v](Packer& p) { p.pack(v); };
}
std::function<void(Packer&)> str_val(std::string s) {
    return [s](Packer& p) { p.pack(s); };
}
std::function<void(Packer&)> map_val(Fields fields) {
    return [fields](Packer& p) { pack_fields(p, fields); };
}

/// A msgpack float64 (0xcb and 8 big-endian bytes), whatever its value.
std::string float64_bytes(double d) {
    uint64_t bits;
    std::memcpy(&bits, &d, sizeof bits);
    std::string out(1, '\xcb');
    for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((bits >> shift) & 0xff);
    return out;
}

/// A valid ELECTION body: {epoch: 5, priority: -3}.
Fields election_body() { return {{"epoch", val<uint64_t>(5)}, {"priority", val<int64_t>(-3)}}; }

/// A valid envelope carrying an ELECTION from node 3, with lc and vc.
Fields valid_envelope(Fields body = election_body()) {
    return {
        {"v", val<uint32_t>(1)},
        {"type", val<uint16_t>(2)},
        {"from", val<uint32_t>(3)},
        {"inc", val<uint64_t>(77)},
        {"seq", val<uint64_t>(9)},
        {"lc", val<uint64_t>(12)},
        {"vc", [](Packer& p) {
             p.pack_map(2);
             p.pack(uint32_t{1}), p.pack(uint64_t{4});
             p.pack(uint32_t{3}), p.pack(uint64_t{6});
         }},
        {"body", map_val(std::move(body))},
    };
}

/// `fields` with `key`'s value replaced (or the key appended if absent).
Fields with(Fields fields, const std::string& key, std::function<void(Packer&)> value) {
    for (auto& f : fields)
        if (f.key == key) {
            f.value = std::move(value);
            return fields;
        }
    fields.push_back({key, std::move(value)});
    return fields;
}

Fields without(Fields fields, const std::string& key) {
    std::erase_if(fields, [&](const Field& f) { return f.key == key; });
    return fields;
}

/// Decodes a frame that must be dropped and returns the reason.
std::string drop_reason(std::string_view frame) {
    DecodeResult r;
    REQUIRE_NOTHROW(r = decode(frame));
    REQUIRE_FALSE(r.env.has_value());
    REQUIRE_FALSE(r.error.empty());
    return r.error;
}

Envelope make_env(Sender from, Body body, std::optional<uint64_t> lc = std::nullopt) {
    Envelope env;
    env.from = std::move(from);
    env.inc = 5;
    env.seq = 1;
    env.lc = lc;
    env.body = std::move(body);
    return env;
}

Envelope roundtrip(const Envelope& env) {
    std::string frame = encode(env);
    DecodeResult r = decode(frame);
    INFO("frame for " << info(env.type()).name << ": " << r.error);
    REQUIRE(r.error.empty());
    REQUIRE(r.env.has_value());
    // Deterministic: encoding the decoded envelope gives the same bytes.
    CHECK(encode(*r.env) == frame);
    return *r.env;
}

std::vector<Body> sample_bodies() {
    return {
        Heartbeat{100'000},
        Election{42, -7},
        Answer{43},
        Coordinator{44, 3, 2},
        Leader{45, 4, 0},
        PreVote{7, 12, 6},
        PreVoteReply{7, true},
        RequestVote{8, 12, 6},
        Vote{8, false},
        AppendEntries{8, 12, 6, 11, {}},
        AppendEntries{8, 12, 6, 11, {{7, "set x"}, {8, std::string("\0\xff", 2)}, {8, ""}}},
        AppendReply{8, true, 12},
        TimeRequest{},
        TimeResponse{1'700'000'000'000'000, 1'700'000'000'000'042},
        ClockPoll{3, 17},
        ClockReading{3, 17, -5},
        ClockAdjust{3, 17, -1'500'000, -12.5},
        RingElection{4, 2, {2, 3, 5}},
        RingAck{4},
        Ping{99},
        Pong{99},
        HeartbeatAck{12},
        Join{MemberInfo{9, "late", -3, "127.0.0.1", 7191, 7192, 7194, false}},
        Welcome{true, "", {MemberInfo{1, "KMC", 10, "10.0.0.1", 7101, 7102, 0, true},
                           MemberInfo{9, "", 0, "127.0.0.1", 7191, 7192, 7194, false}}},
        Welcome{false, "id 2 is a cluster-file node", {}},
        Member{MemberInfo{9, "", 0, "localhost", 7191, 7192, 0, false}},
        Leave{},
        InstallSnapshot{9, 120, 8, 32768, std::string("chunk\0\xff", 7), true},
        SnapshotReply{9, 120, 32775, false},
        Propose{12, std::string("set\0x", 5)},
        ProposeReply{12, false, 0, 3, "not the leader"},
        LockRequest{5, "append", 77, 0, "L", 90, "out.txt", std::string("line\0\n", 6)},
        LockReplyMsg{5, "rejected", "you do not hold the lock", 77, "L", 91, 0, "out.txt", 0, 0, 2, 0, ""},
    };
}

}  // namespace

namespace {

Envelope member_envelope(Body b) {
    Envelope env;
    env.from = NodeId{9};
    env.inc = 1;
    env.seq = 1;
    env.body = std::move(b);
    return env;
}

}  // namespace

TEST_CASE("membership messages with bad member fields are rejected whole", "[unit][protocol]") {
    MemberInfo ok{9, "", 0, "127.0.0.1", 7191, 7192, 0, false};
    auto rejected = [](MemberInfo m) {
        DecodeResult r = decode(encode(member_envelope(Join{std::move(m)})));
        return r.env ? std::string() : r.error;
    };
    CHECK(rejected(ok).empty());
    MemberInfo m = ok;
    m.id = 0;
    CHECK_THAT(rejected(m), Catch::Contains("id is 0"));
    m = ok, m.host = "";
    CHECK_THAT(rejected(m), Catch::Contains("no host"));
    m = ok, m.pub = 0;
    CHECK_THAT(rejected(m), Catch::Contains("pub or peer"));
    m = ok, m.host = std::string(300, 'h');
    CHECK_THAT(rejected(m), Catch::Contains("longer than 253"));
    m = ok, m.name = std::string(65, 'n');
    CHECK_THAT(rejected(m), Catch::Contains("longer than 64"));
    // One bad member spoils a WELCOME: nothing of it is applied.
    MemberInfo bad = ok;
    bad.peer = 0;
    DecodeResult r = decode(encode(member_envelope(Welcome{true, "", {ok, bad}})));
    CHECK_FALSE(r.env.has_value());
    CHECK_THAT(r.error, Catch::Contains("entry 1: member 9 has no host"));
}

// ---- round trips -------------------------------------------------------------------------

TEST_CASE("every message type round-trips with and without clocks, from nodes and clients",
          "[unit][protocol]") {
    for (const Body& body : sample_bodies()) {
        for (Sender from : {Sender(NodeId{3}), Sender(std::string("c-ab12"))}) {
            Envelope env;
            env.from = from;
            env.inc = 1'700'000'000'123'456;
            env.seq = 17;
            env.body = body;
            INFO("type " << info(env.type()).name << " from " << to_string(from));

            SECTION("without lc and vc") {
                Envelope back = roundtrip(env);
                CHECK(back == env);
                CHECK_FALSE(back.lc.has_value());
                CHECK_FALSE(back.vc.has_value());
                CHECK(back.type() == env.type());
            }
            SECTION("with lc only") {
                env.lc = 5;
                CHECK(roundtrip(env) == env);
            }
            SECTION("with lc and vc") {
                env.lc = 9;
                env.vc = VectorClock{{1, 4}, {3, 9}, {65535, 1}};
                Envelope back = roundtrip(env);
                CHECK(back == env);
                REQUIRE(back.vc.has_value());
                CHECK(back.vc->size() == 3);
            }
            SECTION("with an empty vector clock") {
                env.lc = 1;
                env.vc = VectorClock{};
                CHECK(roundtrip(env) == env);
            }
        }
    }
}

TEST_CASE("an INSTALL_SNAPSHOT chunk over 32 KiB, or of a snapshot from a later term than its leader's, is dropped",
          "[unit][protocol][badinput]") {
    Envelope env;
    env.from = NodeId{1};
    env.body = InstallSnapshot{3, 10, 2, 0, std::string(kMaxSnapshotChunk + 1, 'x'), false};
    DecodeResult d = decode(encode(env));
    CHECK_FALSE(d.env.has_value());
    CHECK_THAT(d.error, Contains("larger than 32768"));
    env.body = InstallSnapshot{3, 10, 4, 0, "x", true};
    d = decode(encode(env));
    CHECK_FALSE(d.env.has_value());
    CHECK_THAT(d.error, Contains("from a leader of term 3"));
    env.body = InstallSnapshot{3, 10, 3, 0, std::string(kMaxSnapshotChunk, 'x'), false};
    CHECK(decode(encode(env)).env.has_value());  // the largest chunk fits a frame
}

TEST_CASE("a LOCK_REQUEST's data is bounded by the frame alone: the lock service, not the codec, refuses a big "
          "append, with an answer",
          "[unit][protocol][badinput]") {
    Envelope env;
    env.from = std::string("client-1");
    LockRequest r;
    r.req = 1;
    r.op = "append";
    r.data = std::string(20 * 1024, 'x');
    env.body = r;
    DecodeResult d = decode(encode(env));
    REQUIRE(d.env.has_value());
    CHECK(std::get<LockRequest>(d.env->body).data.size() == 20 * 1024);
    r.data = std::string(kMaxFrameBytes, 'x');  // over the frame: dropped unread
    env.body = r;
    CHECK_THAT(decode(encode(env)).error, Contains("oversized"));
}

TEST_CASE("type() follows the body alternative and info() names every type",
          "[unit][protocol]") {
    CHECK(make_env(NodeId{1}, Heartbeat{}).type() == MsgType::heartbeat);
    CHECK(make_env(NodeId{1}, Election{}).type() == MsgType::election);
    CHECK(make_env(NodeId{1}, Answer{}).type() == MsgType::answer);
    CHECK(make_env(NodeId{1}, Coordinator{}).type() == MsgType::coordinator);

    CHECK(std::string(info(MsgType::heartbeat).name) == "HEARTBEAT");
    CHECK(std::string(info(MsgType::heartbeat).topic) == "hb");
    CHECK(info(MsgType::heartbeat).level == TraceLevel::all);
    CHECK(std::string(info(MsgType::election).name) == "ELECTION");
    CHECK(std::string(info(MsgType::election).topic).empty());
    CHECK(std::string(info(MsgType::answer).name) == "ANSWER");
    CHECK(std::string(info(MsgType::coordinator).name) == "COORDINATOR");
    CHECK(std::string(info(MsgType::coordinator).topic) == "leader");
    CHECK(info(MsgType::coordinator).level == TraceLevel::state);
    CHECK(make_env(NodeId{1}, Leader{}).type() == MsgType::leader);
    CHECK(std::string(info(MsgType::leader).name) == "LEADER");
    CHECK(std::string(info(MsgType::leader).topic) == "leader");
    CHECK(info(MsgType::leader).level == TraceLevel::msgs);
}

TEST_CASE("extreme field values round-trip unchanged", "[unit][protocol]") {
    constexpr uint64_t u64max = std::numeric_limits<uint64_t>::max();
    constexpr NodeId idmax = std::numeric_limits<NodeId>::max();
    Envelope env;
    env.from = idmax;
    env.inc = u64max;
    env.seq = u64max;
    env.lc = u64max;
    env.vc = VectorClock{{1, 0}, {idmax, u64max}};

    SECTION("zeroes and maxima in the envelope") {
        env.body = Heartbeat{0};
        CHECK(roundtrip(env) == env);
    }
    SECTION("most negative priority") {
        env.body = Election{u64max, std::numeric_limits<int64_t>::min()};
        CHECK(roundtrip(env) == env);
    }
    SECTION("most positive priority") {
        env.body = Election{0, std::numeric_limits<int64_t>::max()};
        CHECK(roundtrip(env) == env);
    }
    SECTION("largest node ids in a coordinator") {
        env.body = Coordinator{u64max, idmax, idmax};
        CHECK(roundtrip(env) == env);
    }
    SECTION("client id of exactly kMaxClientIdBytes") {
        env.from = std::string(kMaxClientIdBytes, 'c');
        env.vc.reset();
        env.body = Answer{1};
        CHECK(roundtrip(env) == env);
    }
}

TEST_CASE("a hand-packed frame decodes to the expected envelope, in any key order",
          "[unit][protocol]") {
    Fields fields = valid_envelope();
    Envelope want;
    want.from = NodeId{3};
    want.inc = 77;
    want.seq = 9;
    want.lc = 12;
    want.vc = VectorClock{{1, 4}, {3, 6}};
    want.body = Election{5, -3};

    SECTION("protocol order") {
        DecodeResult r = decode(to_frame(fields));
        INFO(r.error);
        REQUIRE(r.env.has_value());
        CHECK(*r.env == want);
    }
    SECTION("reversed order") {
        std::reverse(fields.begin(), fields.end());
        DecodeResult r = decode(to_frame(fields));
        INFO(r.error);
        REQUIRE(r.env.has_value());
        CHECK(*r.env == want);
    }
    SECTION("a small positive priority packed as an unsigned integer") {
        fields = valid_envelope({{"epoch", val<uint64_t>(5)}, {"priority", val<uint64_t>(8)}});
        DecodeResult r = decode(to_frame(fields));
        INFO(r.error);
        REQUIRE(r.env.has_value());
        CHECK(std::get<Election>(r.env->body).priority == 8);
    }
}

TEST_CASE("to_string spells node ids as numbers and client ids as themselves",
          "[unit][protocol]") {
    CHECK(to_string(Sender(NodeId{3})) == "3");
    CHECK(to_string(Sender(std::string("c-ab12"))) == "c-ab12");
}

// ---- malformed frames --------------------------------------------------------------------

TEST_CASE("the hand-packed baseline frame is valid, so each mutation below is the only fault",
          "[unit][protocol]") {
    DecodeResult r = decode(to_frame(valid_envelope()));
    INFO(r.error);
    CHECK(r.env.has_value());
    CHECK(r.error.empty());
}

TEST_CASE("an empty frame is dropped as empty", "[unit][protocol]") {
    CHECK_THAT(drop_reason(""), Contains("empty"));
}

TEST_CASE("every proper prefix of a valid frame is dropped as truncated", "[unit][protocol]") {
    for (const Body& body : sample_bodies()) {
        Envelope env;
        env.from = std::string("c-1");
        env.lc = 3;
        env.body = body;
        std::string frame = encode(env);
        for (size_t n = 1; n < frame.size(); ++n) {
            INFO(info(env.type()).name << " prefix of " << n << " of " << frame.size() << " bytes");
            CHECK_THAT(drop_reason(std::string_view(frame).substr(0, n)), Contains("truncated"));
        }
    }
}

TEST_CASE("a frame with bytes after the envelope is dropped as trailing bytes",
          "[unit][protocol]") {
    std::string frame = to_frame(valid_envelope());
    SECTION("one zero byte") { CHECK_THAT(drop_reason(frame + '\0'), Contains("trailing bytes")); }
    SECTION("a second whole envelope") {
        CHECK_THAT(drop_reason(frame + frame), Contains("trailing bytes"));
    }
}

TEST_CASE("a frame larger than kMaxFrameBytes is dropped as oversized before parsing",
          "[unit][protocol]") {
    // Starts like a valid frame, so only the size can be the reason.
    std::string frame = to_frame(valid_envelope());
    std::string big = frame + std::string(kMaxFrameBytes + 1 - frame.size(), '\0');
    REQUIRE(big.size() == kMaxFrameBytes + 1);
    CHECK_THAT(drop_reason(big), Contains("oversized"));
    // Exactly at the limit is not "oversized" (it is dropped for its trailing bytes).
    std::string at_limit = big.substr(0, kMaxFrameBytes);
    CHECK_THAT(drop_reason(at_limit), !Contains("oversized"));
    CHECK_THAT(drop_reason(at_limit), Contains("trailing bytes"));
}

TEST_CASE("bytes that are not msgpack are dropped as not msgpack", "[unit][protocol]") {
    SECTION("0xc1, the byte msgpack never uses") {
        CHECK_THAT(drop_reason(std::string(1, '\xc1')), Contains("not msgpack"));
    }
    SECTION("0xc1 inside a map") {
        CHECK_THAT(drop_reason(std::string("\x81\xa1v\xc1", 4)), Contains("not msgpack"));
    }
    SECTION("an array header claiming more elements than the unpack limit") {
        // array32 with 2^32-1 elements: rejected by the limit, not allocated.
        CHECK_THAT(drop_reason(std::string("\xdd\xff\xff\xff\xff", 5)), Contains("not msgpack"));
    }
}

TEST_CASE("an envelope that is not a map is dropped", "[unit][protocol]") {
    msgpack::sbuffer buf;
    Packer p(buf);
    SECTION("an array") {
        p.pack_array(2);
        p.pack(1), p.pack(2);
    }
    SECTION("an integer") { p.pack(5); }
    SECTION("a string") { p.pack(std::string("hello")); }
    SECTION("nil") { p.pack_nil(); }
    CHECK_THAT(drop_reason(std::string(buf.data(), buf.size())), Contains("envelope is not a map"));
}

TEST_CASE("an envelope with a non-string key is dropped", "[unit][protocol]") {
    msgpack::sbuffer buf;
    Packer p(buf);
    p.pack_map(1);
    p.pack(1), p.pack(1);
    CHECK_THAT(drop_reason(std::string(buf.data(), buf.size())), Contains("non-string key"));
}

TEST_CASE("an envelope that repeats a field is dropped", "[unit][protocol]") {
    Fields f = valid_envelope();
    f.push_back({"seq", val<uint64_t>(10)});
    CHECK_THAT(drop_reason(to_frame(f)), Contains("repeats field 'seq'"));
}

TEST_CASE("a frame with a version other than 1 is dropped naming the version",
          "[unit][protocol]") {
    SECTION("version 7") {
        CHECK_THAT(drop_reason(to_frame(with(valid_envelope(), "v", val<uint32_t>(7)))),
                   Contains("version 7"));
    }
    SECTION("version 0") {
        CHECK_THAT(drop_reason(to_frame(with(valid_envelope(), "v", val<uint32_t>(0)))),
                   Contains("version 0"));
    }
    SECTION("version 2 with an otherwise valid frame") {
        CHECK_THAT(drop_reason(to_frame(with(valid_envelope(), "v", val<uint32_t>(2)))),
                   Contains("version 2"));
    }
}

TEST_CASE("a frame with an unknown message type is dropped naming the type",
          "[unit][protocol]") {
    SECTION("type 0") {
        CHECK_THAT(drop_reason(to_frame(with(valid_envelope(), "type", val<uint16_t>(0)))),
                   Contains("unknown type 0"));
    }
    SECTION("type 32, one past the last") {
        CHECK_THAT(drop_reason(to_frame(with(valid_envelope(), "type", val<uint16_t>(32)))),
                   Contains("unknown type 32"));
    }
    SECTION("type 65535") {
        CHECK_THAT(drop_reason(to_frame(with(valid_envelope(), "type", val<uint16_t>(65535)))),
                   Contains("unknown type 65535"));
    }
}

TEST_CASE("an envelope field of the wrong msgpack type is dropped naming the field",
          "[unit][protocol]") {
    Fields base = valid_envelope();
    SECTION("v as a string") {
        CHECK_THAT(drop_reason(to_frame(with(base, "v", str_val("1")))),
                   Contains("field 'v' is not an unsigned integer"));
    }
    SECTION("type as a negative integer") {
        CHECK_THAT(drop_reason(to_frame(with(base, "type", val<int64_t>(-2)))),
                   Contains("field 'type' is not an unsigned integer"));
    }
    SECTION("type beyond 16 bits") {
        CHECK_THAT(drop_reason(to_frame(with(base, "type", val<uint32_t>(65536 + 2)))),
                   Contains("field 'type' is not an unsigned integer"));
    }
    SECTION("inc as a float") {
        CHECK_THAT(drop_reason(to_frame(with(base, "inc", val<double>(77.5)))),
                   Contains("field 'inc' is not an unsigned integer"));
    }
    SECTION("inc as a whole-valued float64, as other msgpack libraries may send it") {
        // msgpack-c packs 77.0 as an integer, so put the float64 bytes in by hand.
        std::string frame = to_frame(with(base, "inc", val<double>(77.5)));
        std::string placeholder = float64_bytes(77.5);
        auto at = frame.find(placeholder);
        REQUIRE(at != std::string::npos);
        frame.replace(at, placeholder.size(), float64_bytes(77.0));
        CHECK_THAT(drop_reason(frame), Contains("field 'inc' is not an unsigned integer"));
    }
    SECTION("seq as nil") {
        CHECK_THAT(drop_reason(to_frame(with(base, "seq", [](Packer& p) { p.pack_nil(); }))),
                   Contains("field 'seq' is not an unsigned integer"));
    }
    SECTION("lc as a negative integer") {
        CHECK_THAT(drop_reason(to_frame(with(base, "lc", val<int64_t>(-1)))),
                   Contains("field 'lc' is not an unsigned integer"));
    }
    SECTION("vc as an array") {
        CHECK_THAT(drop_reason(to_frame(with(base, "vc", [](Packer& p) { p.pack_array(0); }))),
                   Contains("field 'vc' is not a map"));
    }
    SECTION("vc with a string key") {
        auto vc = [](Packer& p) {
            p.pack_map(1);
            p.pack(std::string("1")), p.pack(uint64_t{4});
        };
        CHECK_THAT(drop_reason(to_frame(with(base, "vc", vc))),
                   Contains("'vc' is not a map of node id to counter"));
    }
    SECTION("vc with node id 0") {
        auto vc = [](Packer& p) {
            p.pack_map(1);
            p.pack(uint32_t{0}), p.pack(uint64_t{4});
        };
        CHECK_THAT(drop_reason(to_frame(with(base, "vc", vc))),
                   Contains("'vc' is not a map of node id to counter"));
    }
    SECTION("vc with a node id beyond 32 bits") {
        auto vc = [](Packer& p) {
            p.pack_map(1);
            p.pack(uint64_t{1} << 32), p.pack(uint64_t{4});
        };
        CHECK_THAT(drop_reason(to_frame(with(base, "vc", vc))),
                   Contains("'vc' is not a map of node id to counter"));
    }
    SECTION("vc with a negative counter") {
        auto vc = [](Packer& p) {
            p.pack_map(1);
            p.pack(uint32_t{1}), p.pack(int64_t{-4});
        };
        CHECK_THAT(drop_reason(to_frame(with(base, "vc", vc))),
                   Contains("'vc' is not a map of node id to counter"));
    }
    SECTION("body as an array") {
        CHECK_THAT(drop_reason(to_frame(with(base, "body", [](Packer& p) { p.pack_array(0); }))),
                   Contains("body is not a map"));
    }
    SECTION("from as a boolean") {
        CHECK_THAT(drop_reason(to_frame(with(base, "from", val<bool>(true)))),
                   Contains("'from' is not a node or client id"));
    }
    SECTION("from as a negative integer") {
        CHECK_THAT(drop_reason(to_frame(with(base, "from", val<int64_t>(-3)))),
                   Contains("'from' is not a node or client id"));
    }
}

TEST_CASE("a body field of the wrong msgpack type is dropped naming the field",
          "[unit][protocol]") {
    SECTION("ELECTION epoch negative") {
        Fields body = {{"epoch", val<int64_t>(-5)}, {"priority", val<int64_t>(1)}};
        CHECK_THAT(drop_reason(to_frame(valid_envelope(body))),
                   Contains("body field 'epoch' is not an unsigned integer"));
    }
    SECTION("ELECTION priority as a string") {
        Fields body = {{"epoch", val<uint64_t>(5)}, {"priority", str_val("high")}};
        CHECK_THAT(drop_reason(to_frame(valid_envelope(body))),
                   Contains("body field 'priority' is not an integer"));
    }
    SECTION("ELECTION priority beyond int64") {
        Fields body = {{"epoch", val<uint64_t>(5)},
                       {"priority", val<uint64_t>(uint64_t{1} << 63)}};
        CHECK_THAT(drop_reason(to_frame(valid_envelope(body))),
                   Contains("body field 'priority' is not an integer"));
    }
    SECTION("HEARTBEAT interval_us as a float") {
        Fields env = with(valid_envelope({{"interval_us", val<double>(1.5)}}), "type",
                          val<uint16_t>(1));
        CHECK_THAT(drop_reason(to_frame(env)),
                   Contains("body field 'interval_us' is not an unsigned integer"));
    }
    SECTION("COORDINATOR leader beyond 32 bits") {
        Fields body = {{"epoch", val<uint64_t>(1)},
                       {"leader", val<uint64_t>(uint64_t{1} << 32)},
                       {"backup", val<uint32_t>(0)}};
        Fields env = with(valid_envelope(body), "type", val<uint16_t>(4));
        CHECK_THAT(drop_reason(to_frame(env)),
                   Contains("body field 'leader' is not an unsigned integer"));
    }
    SECTION("CLOCK_ADJUST rate_ppm as a string") {
        Fields body = {{"epoch", val<uint64_t>(1)}, {"round", val<uint64_t>(1)}, {"delta_us", val<int64_t>(-3)},
                       {"rate_ppm", str_val("fast")}};
        Fields env = with(valid_envelope(body), "type", val<uint16_t>(16));
        CHECK_THAT(drop_reason(to_frame(env)), Contains("body field 'rate_ppm' is not a number"));
    }
    SECTION("RING_ELECTION without its ids") {
        Fields body = {{"epoch", val<uint64_t>(1)}, {"initiator", val<uint64_t>(2)}};
        Fields env = with(valid_envelope(body), "type", val<uint16_t>(17));
        CHECK_THAT(drop_reason(to_frame(env)), Contains("body lacks field 'ids'"));
    }
    SECTION("VOTE granted as an integer") {
        Fields body = {{"term", val<uint64_t>(3)}, {"granted", val<uint64_t>(1)}};
        Fields env = with(valid_envelope(body), "type", val<uint16_t>(9));
        CHECK_THAT(drop_reason(to_frame(env)), Contains("body field 'granted' is not a boolean"));
    }
    SECTION("a body of another type's shape") {
        // type says COORDINATOR, body is an ELECTION.
        Fields env = with(valid_envelope(), "type", val<uint16_t>(4));
        CHECK_THAT(drop_reason(to_frame(env)), Contains("body lacks field 'leader'"));
    }
}

TEST_CASE("a missing required field is dropped naming the field", "[unit][protocol]") {
    SECTION("each required envelope field") {
        for (const char* key : {"v", "type", "from", "inc", "seq", "body"}) {
            INFO("without " << key);
            CHECK_THAT(drop_reason(to_frame(without(valid_envelope(), key))),
                       Contains(std::string("envelope lacks field '") + key + "'"));
        }
    }
    SECTION("body without priority") {
        CHECK_THAT(drop_reason(to_frame(valid_envelope({{"epoch", val<uint64_t>(5)}}))),
                   Contains("body lacks field 'priority'"));
    }
    SECTION("COORDINATOR body without backup") {
        Fields body = {{"epoch", val<uint64_t>(1)}, {"leader", val<uint32_t>(2)}};
        CHECK_THAT(drop_reason(to_frame(with(valid_envelope(body), "type", val<uint16_t>(4)))),
                   Contains("body lacks field 'backup'"));
    }
}

TEST_CASE("lc and vc are optional", "[unit][protocol]") {
    DecodeResult r = decode(to_frame(without(without(valid_envelope(), "lc"), "vc")));
    INFO(r.error);
    REQUIRE(r.env.has_value());
    CHECK_FALSE(r.env->lc.has_value());
    CHECK_FALSE(r.env->vc.has_value());
}

// Repeated envelope and body fields are rejected; a vector clock that names a node twice is
// as ambiguous, but decode() keeps the last count (protocol.cpp, the vc loop).
TEST_CASE("a vector clock that names a node twice is dropped",
          "[unit][protocol]") {
    auto vc = [](Packer& p) {
        p.pack_map(2);
        p.pack(uint32_t{1}), p.pack(uint64_t{4});
        p.pack(uint32_t{1}), p.pack(uint64_t{9});
    };
    DecodeResult r = decode(to_frame(with(valid_envelope(), "vc", vc)));
    CHECK_FALSE(r.env.has_value());
    CHECK_THAT(r.error, Contains("'vc'"));
}

TEST_CASE("an unexpected extra field is dropped naming the field", "[unit][protocol]") {
    SECTION("in the envelope") {
        Fields f = valid_envelope();
        f.push_back({"x", val<uint32_t>(1)});
        CHECK_THAT(drop_reason(to_frame(f)), Contains("envelope has unexpected field 'x'"));
    }
    SECTION("in the body") {
        Fields body = election_body();
        body.push_back({"leader", val<uint32_t>(1)});
        CHECK_THAT(drop_reason(to_frame(valid_envelope(body))),
                   Contains("body has unexpected field 'leader'"));
    }
}

TEST_CASE("a sender that is neither a node id nor a client id is dropped", "[unit][protocol]") {
    Fields base = valid_envelope();
    SECTION("node id 0") {
        CHECK_THAT(drop_reason(to_frame(with(base, "from", val<uint32_t>(0)))),
                   Contains("'from' is not a node or client id"));
    }
    SECTION("node id beyond 32 bits") {
        CHECK_THAT(drop_reason(to_frame(with(base, "from", val<uint64_t>(uint64_t{1} << 32)))),
                   Contains("'from' is not a node or client id"));
    }
    SECTION("empty client id") {
        CHECK_THAT(drop_reason(to_frame(with(base, "from", str_val("")))),
                   Contains("'from' is not a node or client id"));
    }
    SECTION("client id one byte too long") {
        CHECK_THAT(
            drop_reason(to_frame(with(base, "from", str_val(std::string(kMaxClientIdBytes + 1, 'c'))))),
            Contains("'from' is not a node or client id"));
    }
    SECTION("encode() of sender 0 does not produce a decodable frame") {
        Envelope env;
        env.from = NodeId{0};
        env.body = Heartbeat{1};
        CHECK_THAT(drop_reason(encode(env)), Contains("'from'"));
    }
}

// ---- totality ----------------------------------------------------------------------------

TEST_CASE("decode never throws and always gives either an envelope or a reason",
          "[unit][protocol]") {
    std::mt19937 rng(20240601);
    auto byte = [&] { return static_cast<char>(rng() & 0xff); };
    int thrown = 0, neither = 0, both = 0, reencode_mismatch = 0;
    auto probe = [&](const std::string& frame) {
        try {
            DecodeResult r = decode(frame);
            if (!r.env && r.error.empty()) ++neither;
            if (r.env && !r.error.empty()) ++both;
            // Whatever decodes must survive a round trip unchanged.
            if (r.env) {
                DecodeResult again = decode(encode(*r.env));
                if (!again.env || !(*again.env == *r.env)) ++reencode_mismatch;
            }
        } catch (...) {
            ++thrown;
        }
    };

    SECTION("random bytes") {
        for (int i = 0; i < 2000; ++i) {
            std::string frame(rng() % 200, '\0');
            for (char& c : frame) c = byte();
            // Half of them start with a map header, to get past the first byte more often.
            if (i % 2 == 0 && !frame.empty()) frame[0] = static_cast<char>(0x80 | (rng() % 9));
            probe(frame);
        }
    }
    SECTION("valid frames with random bytes changed") {
        const std::vector<std::string> seeds = {
            to_frame(valid_envelope()),
            encode(make_env(std::string("c-x"), Coordinator{1, 2, 3}, 1)),
            encode(make_env(NodeId{2}, Heartbeat{100})),
        };
        for (int i = 0; i < 2000; ++i) {
            std::string frame = seeds[static_cast<size_t>(i) % seeds.size()];
            int changes = 1 + static_cast<int>(rng() % 3);
            for (int c = 0; c < changes; ++c) frame[rng() % frame.size()] = byte();
            probe(frame);
        }
    }
    CHECK(thrown == 0);
    CHECK(neither == 0);
    CHECK(both == 0);
    CHECK(reencode_mismatch == 0);
}

TEST_CASE("an AppendEntries entry from a later term than the message, or with non-bytes data, is rejected whole",
          "[unit][protocol]") {
    Envelope env;
    env.from = NodeId{1};
    env.inc = 1;
    env.seq = 1;
    env.body = AppendEntries{3, 0, 0, 0, {{2, "a"}, {4, "b"}}};
    DecodeResult r = decode(encode(env));
    CHECK_FALSE(r.env.has_value());
    CHECK_THAT(r.error, Catch::Contains("entries[1] has term 4"));
}
