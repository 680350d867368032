#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "bus/cluster.hpp"
#include "bus/trace.hpp"
#include "bus/trace_summary.hpp"
#include "bus/transport.hpp"
#include "harness.hpp"

using namespace bus;
using namespace std::chrono_literals;

namespace {

/// A tracer for node `self` (0 = not a cluster node) whose lines are kept in memory.
struct Captured {
    FakeClock clock;
    Tracer tracer;
    std::vector<std::string> lines;

    explicit Captured(TraceLevel level = TraceLevel::state, NodeId self = 3, uint64_t inc = 77)
        : tracer(clock, self ? Json(self) : Json("c-1"), inc, level, self) {
        tracer.add_sink([this](const std::string& line) { lines.push_back(line); });
    }
    Json last() const { return Json::parse(lines.back()); }
    Json line(size_t i) const { return Json::parse(lines.at(i)); }
};

std::vector<std::string> keys(const Json& j) {
    std::vector<std::string> out;
    for (auto& [k, v] : j.items()) out.push_back(k);
    return out;
}

std::vector<std::string> read_lines(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> out;
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

/// A fresh path in the temp directory, removed when the test ends.
struct TempPath {
    std::string path;
    TempPath() {
        static int n = 0;
        path = (std::filesystem::temp_directory_path() /
                ("ftbus-trace-test-" + std::to_string(::getpid()) + "-" + std::to_string(++n) +
                 ".jsonl"))
                   .string();
        std::filesystem::remove(path);
    }
    ~TempPath() { std::filesystem::remove(path); }
};

}  // namespace

TEST_CASE("a trace line has t, node, inc, seq, lc, vc, ev, then the fields, in that order",
          "[unit][trace]") {
    Captured c;
    c.clock.advance(1500us);
    c.tracer.emit("peer.suspect", {{"peer", 2}, {"silence_ms", 300.0}});
    REQUIRE(c.lines.size() == 1);
    Json j = c.last();
    CHECK(keys(j) == std::vector<std::string>{"t", "node", "inc", "seq", "lc", "vc", "ev", "peer",
                                              "silence_ms"});
    CHECK(j["t"] == c.clock.wall_us());
    CHECK(j["node"] == 3);
    CHECK(j["inc"] == 77);
    CHECK(j["seq"] == 1);
    CHECK(j["lc"] == 1);
    CHECK(j["vc"] == Json{{"3", 1}});
    CHECK(j["ev"] == "peer.suspect");
    CHECK(j["peer"] == 2);
    CHECK(c.lines.back().find('\n') == std::string::npos);  // one line
}

TEST_CASE("a trace line of a non-node emitter has no vc", "[unit][trace]") {
    Captured c(TraceLevel::state, /*self*/ 0);
    c.tracer.emit("rpc.ack");
    Json j = c.last();
    CHECK(keys(j) == std::vector<std::string>{"t", "node", "inc", "seq", "lc", "ev"});
    CHECK(j["node"] == "c-1");
}

TEST_CASE("t is the clock's wall time at emission", "[unit][trace]") {
    Captured c;
    c.tracer.emit("a");
    c.clock.advance(2s);
    c.tracer.emit("b");
    CHECK(c.line(1)["t"].get<int64_t>() - c.line(0)["t"].get<int64_t>() == 2'000'000);
}

TEST_CASE("seq counts events from 1 without gaps", "[unit][trace]") {
    Captured c;
    CHECK(c.tracer.seq() == 0);
    for (int i = 0; i < 50; ++i) c.tracer.emit("x", {{"i", i}});
    REQUIRE(c.lines.size() == 50);
    for (size_t i = 0; i < c.lines.size(); ++i) {
        INFO("line " << i);
        CHECK(c.line(i)["seq"] == i + 1);
        CHECK(c.line(i)["lc"] == i + 1);
        CHECK(c.line(i)["vc"]["3"] == i + 1);
    }
    CHECK(c.tracer.seq() == 50);
}

TEST_CASE("events below the trace level are not emitted and take no seq or clock tick",
          "[unit][trace]") {
    Captured c(TraceLevel::state);
    CHECK(c.tracer.enabled(TraceLevel::state));
    CHECK_FALSE(c.tracer.enabled(TraceLevel::msgs));
    c.tracer.emit("a");
    c.tracer.emit("msg.send", {}, TraceLevel::all);
    c.tracer.emit("msg.send", {}, TraceLevel::msgs);
    CHECK(c.tracer.next_lc() == 2);
    CHECK(c.tracer.next_vc() == VectorClock{{3, 2}});
    c.tracer.emit("b");
    REQUIRE(c.lines.size() == 2);
    CHECK(c.line(1)["ev"] == "b");
    CHECK(c.line(1)["seq"] == 2);
    CHECK(c.line(1)["lc"] == 2);
    CHECK(c.line(1)["vc"]["3"] == 2);

    SECTION("at level all everything is emitted") {
        Captured all(TraceLevel::all);
        all.tracer.emit("a", {}, TraceLevel::all);
        all.tracer.emit("b", {}, TraceLevel::msgs);
        all.tracer.emit("c", {}, TraceLevel::state);
        CHECK(all.lines.size() == 3);
    }
}

TEST_CASE("merge makes the next event's Lamport clock max(local, received) + 1",
          "[unit][trace]") {
    Captured c;
    c.tracer.emit("a");
    c.tracer.emit("b");
    c.tracer.emit("c");  // lc 3

    SECTION("a larger received clock") {
        c.tracer.merge(10, std::nullopt);
        CHECK(c.tracer.next_lc() == 11);
        c.tracer.emit("msg.recv");
        CHECK(c.last()["lc"] == 11);
    }
    SECTION("a smaller received clock") {
        c.tracer.merge(1, std::nullopt);
        c.tracer.emit("msg.recv");
        CHECK(c.last()["lc"] == 4);
    }
    SECTION("an equal received clock") {
        c.tracer.merge(3, std::nullopt);
        c.tracer.emit("msg.recv");
        CHECK(c.last()["lc"] == 4);
    }
    SECTION("no clock at all") {
        c.tracer.merge(std::nullopt, std::nullopt);
        c.tracer.emit("msg.recv");
        CHECK(c.last()["lc"] == 4);
    }
    SECTION("merge alone emits nothing and takes no seq") {
        c.tracer.merge(10, std::nullopt);
        CHECK(c.lines.size() == 3);
        CHECK(c.tracer.seq() == 3);
    }
}

TEST_CASE("merge takes the element-wise max of vector clocks, then ticks its own entry",
          "[unit][trace]") {
    Captured c;  // node 3
    c.tracer.emit("a");
    c.tracer.emit("b");  // vc {3: 2}
    c.tracer.merge(5, VectorClock{{1, 4}, {2, 1}, {3, 1}});
    CHECK(c.tracer.next_vc() == VectorClock{{1, 4}, {2, 1}, {3, 3}});
    c.tracer.emit("msg.recv");
    CHECK(c.last()["vc"] == Json{{"1", 4}, {"2", 1}, {"3", 3}});
    c.tracer.merge(std::nullopt, VectorClock{{1, 2}, {2, 7}});
    c.tracer.emit("msg.recv");
    CHECK(c.last()["vc"] == Json{{"1", 4}, {"2", 7}, {"3", 4}});

    SECTION("a non-node emitter keeps no vector clock") {
        Captured client(TraceLevel::state, 0);
        client.tracer.merge(5, VectorClock{{1, 4}});
        CHECK(client.tracer.next_vc().empty());
        client.tracer.emit("msg.recv");
        CHECK_FALSE(client.last().contains("vc"));
        CHECK(client.last()["lc"] == 6);
    }
}

TEST_CASE("next_lc and next_vc equal what the next emitted event carries", "[unit][trace]") {
    Captured c;
    c.tracer.merge(4, VectorClock{{1, 9}});
    for (int i = 0; i < 5; ++i) {
        uint64_t lc = c.tracer.next_lc();
        VectorClock vc = c.tracer.next_vc();
        CHECK(c.tracer.next_lc() == lc);  // asking does not advance anything
        CHECK(c.tracer.next_vc() == vc);
        c.tracer.emit("msg.send");
        Json j = c.last();
        CHECK(j["lc"] == lc);
        VectorClock carried;
        for (auto& [k, v] : j["vc"].items())
            carried[static_cast<NodeId>(std::stoul(k))] = v.get<uint64_t>();
        CHECK(carried == vc);
    }
}

TEST_CASE("message_id is [sender, inc, seq]", "[unit][trace]") {
    CHECK(message_id(Sender(NodeId{3}), 77, 9) == Json::array({3, 77, 9}));
    CHECK(message_id(Sender(std::string("c-1")), 1, 2) == Json::array({"c-1", 1, 2}));
}

TEST_CASE("a trace file is appended to in whole lines, by several tracers", "[unit][trace]") {
    TempPath tmp;
    {
        std::ofstream pre(tmp.path);
        pre << "{\"existing\":true}\n";
    }
    FakeClock clock;
    Tracer a(clock, Json(1), 11, TraceLevel::state, 1);
    Tracer b(clock, Json(2), 22, TraceLevel::state, 2);
    a.open(tmp.path);
    b.open(tmp.path);
    a.emit("a.one");
    b.emit("b.one", {{"text", std::string(5000, 'x')}});  // a long line
    a.emit("a.two");
    b.emit("b.two");

    std::vector<std::string> lines = read_lines(tmp.path);
    REQUIRE(lines.size() == 5);
    CHECK(lines[0] == "{\"existing\":true}");  // opened for append, not truncated
    std::vector<std::string> evs;
    for (size_t i = 1; i < lines.size(); ++i) {
        INFO(lines[i]);
        Json j;
        REQUIRE_NOTHROW(j = Json::parse(lines[i]));
        evs.push_back(j["ev"]);
    }
    CHECK(evs == std::vector<std::string>{"a.one", "b.one", "a.two", "b.two"});
    CHECK(Json::parse(lines[3])["node"] == 1);
    CHECK(Json::parse(lines[3])["seq"] == 2);
    CHECK(Json::parse(lines[4])["node"] == 2);
}

TEST_CASE("a trace file and a sink see the same lines", "[unit][trace]") {
    TempPath tmp;
    Captured c;
    c.tracer.open(tmp.path);
    c.tracer.emit("a", {{"k", "v"}});
    c.tracer.emit("b");
    CHECK(read_lines(tmp.path) == c.lines);
}

TEST_CASE("opening a trace file that cannot be created is a ConfigError", "[unit][trace]") {
    FakeClock clock;
    Tracer t(clock, Json(1), 1, TraceLevel::state, 1);
    CHECK_THROWS_AS(t.open("/nonexistent-ftbus-dir/trace.jsonl"), ConfigError);
    CHECK_NOTHROW(t.open(""));  // no file
    t.emit("still.works");
    CHECK(t.seq() == 1);
}

TEST_CASE("a buffered tracer writes nothing until flush, then every line whole and in order, destruction flushes",
          "[unit][trace]") {
    TempPath tmp;
    FakeClock clock;
    std::vector<std::string> sunk;
    {
        Tracer t(clock, Json(1), 11, TraceLevel::state, 1);
        t.open(tmp.path);
        t.add_sink([&](const std::string& l) { sunk.push_back(l); });
        t.set_buffered(true);
        t.emit("one");
        t.emit("two", {{"text", std::string(5000, 'x')}});
        CHECK(read_lines(tmp.path).empty());  // held in memory
        CHECK(sunk.size() == 2);              // sinks (the live PUB stream) see each line at once
        t.flush();
        CHECK(read_lines(tmp.path) == sunk);
        t.flush();  // nothing pending: nothing written twice
        CHECK(read_lines(tmp.path).size() == 2);
        t.emit("three");
    }
    std::vector<std::string> lines = read_lines(tmp.path);
    REQUIRE(lines.size() == 3);
    CHECK(lines == sunk);
    CHECK(Json::parse(lines[2])["ev"] == "three");
}

TEST_CASE("fields named like the line's own keys never duplicate them: a line stays valid JSON", "[unit][trace]") {
    Captured c;
    c.tracer.emit("odd", {{"seq", 999}, {"node", "x"}, {"ok", true}, {"text", "quote \" and \xff byte"}});
    Json j;
    REQUIRE_NOTHROW(j = Json::parse(c.lines.back()));
    CHECK(j["seq"] == 1);
    CHECK(j["node"] == 3);
    CHECK(j["ok"] == true);
    CHECK(keys(j) == std::vector<std::string>{"t", "node", "inc", "seq", "lc", "vc", "ev", "ok", "text"});
}

namespace {

std::string live_line(const Json& node, uint64_t inc, uint64_t seq, const std::string& ev) {
    return Json{{"t", 1}, {"node", node}, {"inc", inc}, {"seq", seq}, {"lc", 1}, {"ev", ev}}.dump();
}

}  // namespace

TEST_CASE("live trace: a gap is reported once per emitter incarnation, a late or repeated line is no gap",
          "[unit][trace]") {
    LiveTrace live;
    CHECK_FALSE(live.add("trace", live_line(3, 9, 40, "a")).gap);  // first heard: no gap before it
    auto l = live.add("trace", live_line(3, 9, 44, "b"));
    REQUIRE(l.kind == LiveTrace::Line::Kind::event);
    REQUIRE(l.gap);
    CHECK(l.gap->emitter == "3");
    CHECK(l.gap->inc == 9);
    CHECK(l.gap->first == 41);
    CHECK(l.gap->last == 43);
    CHECK_FALSE(live.add("trace", live_line(3, 9, 42, "late")).gap);
    CHECK_FALSE(live.add("trace", live_line(3, 9, 44, "again")).gap);
    CHECK_FALSE(live.add("trace", live_line(3, 9, 45, "c")).gap);
    CHECK_FALSE(live.add("trace", live_line(3, 10, 7, "restarted")).gap);  // another incarnation
    CHECK(live.gaps() == 1);
    CHECK(live.lost() == 3);
    CHECK(live.streams() == 2);
}

TEST_CASE("live trace: after seq 2^64-1 a lower seq is no wrapped gap, and huge gaps saturate the lost count",
          "[unit][trace][badinput]") {
    LiveTrace live;
    CHECK_FALSE(live.add("trace", live_line(1, 1, UINT64_MAX, "a")).gap);
    CHECK_FALSE(live.add("trace", live_line(1, 1, 5, "b")).gap);
    CHECK(live.gaps() == 0);
    CHECK(live.lost() == 0);
    CHECK_FALSE(live.add("trace", live_line(2, 1, 1, "a")).gap);
    auto l = live.add("trace", live_line(2, 1, UINT64_MAX, "b"));
    REQUIRE(l.gap);
    CHECK(l.gap->first == 2);
    CHECK(l.gap->last == UINT64_MAX - 1);
    CHECK(l.gap->missing() == UINT64_MAX - 2);
    live.add("trace", live_line(4, 1, 1, "a"));
    live.add("trace", live_line(4, 1, UINT64_MAX, "b"));
    CHECK(live.gaps() == 2);
    CHECK(live.lost() == UINT64_MAX);  // saturated, not wrapped round to a small number
}

TEST_CASE("live trace: a line spread over several lines is printed on one, as the same JSON", "[unit][trace][badinput]") {
    LiveTrace live;
    std::string spread = "{\"t\":1,\n\"node\":1,\r\n\"inc\":1,\"seq\":1,\"lc\":1,\"ev\":\"a\",\"k\":[1,\n2]}";
    auto l = live.add("trace", spread);
    REQUIRE(l.kind == LiveTrace::Line::Kind::event);
    CHECK(l.text.find_first_of("\r\n") == std::string::npos);
    CHECK(Json::parse(l.text) == Json::parse(spread));
    std::string plain = live_line(1, 1, 2, "b");
    CHECK(live.add("trace", plain).text == plain);  // a one-line line goes through as it came
}

TEST_CASE("live trace: only the topic trace itself is taken, not a topic it is a prefix of, and junk is counted",
          "[unit][trace][badinput]") {
    LiveTrace live;
    CHECK(live.add("tracex", live_line(1, 1, 1, "a")).kind == LiveTrace::Line::Kind::other_topic);
    CHECK(live.add("trac", live_line(1, 1, 1, "a")).kind == LiveTrace::Line::Kind::other_topic);
    CHECK(live.add("trace", "{\"seq\":-1,\"inc\":1}").kind == LiveTrace::Line::Kind::malformed);
    CHECK(live.add("trace", "[1,2]").kind == LiveTrace::Line::Kind::malformed);
    CHECK(live.add("trace", "{\"t\":1,").kind == LiveTrace::Line::Kind::malformed);
    CHECK(live.malformed() == 3);
    CHECK(live.streams() == 0);
    CHECK(live.add("trace", live_line(1, 1, 1, "a")).kind == LiveTrace::Line::Kind::event);
}

TEST_CASE("ftbus-trace prints one line per event, takes only the topic trace, and sees no gap below seq 2^64-1",
          "[integration][trace][badinput]") {
    test::Cluster c(1);
    ClusterConfig cfg = load_cluster(c.cluster_file());
    const NodeSpec& n = *cfg.find(1);
    zmq::context_t ctx(1);
    zmq::socket_t pub = make_socket(ctx, zmq::socket_type::xpub);  // XPUB: tells us of the subscription
    pub.bind(n.endpoint(n.pub));
    std::string out = c.dir() + "/ftbus-trace.out";
    c.spawn(-1, "ftbus-trace", {"--cluster", c.cluster_file(), "--count", "3", "--duration", "60s"}, out);
    zmq::pollitem_t item{pub.handle(), 0, ZMQ_POLLIN, 0};
    REQUIRE(zmq::poll(&item, 1, std::chrono::seconds(30)) == 1);
    zmq::message_t subscription;
    REQUIRE(pub.recv(subscription));
    CHECK(subscription.to_string() == std::string("\x01trace"));  // subscribed: nothing sent now is lost
    auto publish = [&](const std::string& topic, const std::string& line) {
        pub.send(zmq::buffer(topic), zmq::send_flags::sndmore);
        pub.send(zmq::buffer(line), zmq::send_flags::none);
    };
    publish("tracex", live_line(1, 1, 1, "not-ours"));
    publish("trace", "{\"t\":1,\n\"node\":1,\"inc\":1,\"seq\":18446744073709551615,\"lc\":1,\"ev\":\"a\"}");
    publish("trace", live_line(1, 1, 5, "b"));
    publish("trace", live_line(2, 1, 1, "c"));
    REQUIRE(c.wait_exit(-1, 30) == 0);
    std::vector<std::string> lines = read_lines(out);
    std::vector<std::string> names;
    for (auto& l : lines) names.push_back(Json::parse(l)["ev"].get<std::string>());
    CHECK(names == std::vector<std::string>{"a", "b", "c"});
    std::string err;
    for (auto& l : read_lines(out + ".err")) err += l + "\n";
    INFO(err);
    CHECK(err.find("gap:") == std::string::npos);
    CHECK(err.find("3 events printed from 2 emitter incarnations; 0 gaps (0 events not received)") != std::string::npos);
}

TEST_CASE("ftbus-trace: a negative --count or a node it cannot connect to is one line on stderr and exit 2",
          "[integration][trace][badinput]") {
    test::Cluster c(1);
    std::string bin = std::string(FTBUS_BIN_DIR) + "/ftbus-trace --cluster ";
    std::string out;
    CHECK(test::run_command(bin + c.cluster_file() + " --count -1 --duration 1ms 2>&1", &out) == 2);
    CHECK(out.find("--count: '-1' is not a count (0 or more)") != std::string::npos);
    // A host ZeroMQ refuses: one line naming it, never an abort (the cluster loader may refuse it first).
    std::string bad = c.dir() + "/bad-host.toml";
    std::ofstream(bad) << "[[node]]\nid = 1\nhost = \"bad host!\"\npub = " << c.base_port() << "\npeer = "
                       << c.base_port() + 1 << "\n";
    CHECK(test::run_command(bin + bad + " --duration 1ms 2>&1", &out) == 2);
    CHECK(out.rfind("ftbus-trace: ", 0) == 0);
    CHECK(out.find("bad host!") != std::string::npos);
    CHECK(std::count(out.begin(), out.end(), '\n') == 1);
}
