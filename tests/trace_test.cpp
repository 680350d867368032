#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "bus/cluster.hpp"
#include "bus/trace.hpp"

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
