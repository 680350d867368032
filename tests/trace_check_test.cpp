#include <algorithm>
#include <catch2/catch.hpp>

#include "bus/trace_check.hpp"

using bus::TraceChecker;

namespace {

std::string ev(int node, uint64_t seq, uint64_t lc, const std::string& name = "peer.alive",
               const std::string& extra = ",\"peer\":2") {
    return "{\"t\":" + std::to_string(1000 + seq) + ",\"node\":" + std::to_string(node) +
           ",\"inc\":7,\"seq\":" + std::to_string(seq) + ",\"lc\":" + std::to_string(lc) +
           ",\"ev\":\"" + name + "\"" + extra + "}";
}

std::vector<std::string> checks(const TraceChecker& c) {
    std::vector<std::string> out;
    for (auto& f : c.findings()) out.push_back(f.check);
    return out;
}

}  // namespace

TEST_CASE("checker passes a well-formed trace from several emitters", "[unit][check]") {
    TraceChecker c;
    c.add_line(ev(1, 1, 1), "a:1");
    c.add_line(ev(2, 1, 1), "b:1");
    c.add_line(ev(1, 2, 5), "a:2");
    c.add_line("", "a:3");  // blank lines are ignored
    c.finish();
    CHECK(c.findings().empty());
    CHECK(c.events() == 3);
    CHECK(c.emitters() == 2);
    CHECK(c.report_json()["ok"] == true);
}

TEST_CASE("checker reports a line that is not JSON with its file and line", "[unit][check]") {
    TraceChecker c;
    c.add_line(ev(1, 1, 1), "n1.jsonl:1");
    c.add_line("{\"t\":1, broken", "n1.jsonl:2");
    c.finish();
    REQUIRE(c.findings().size() == 1);
    CHECK(c.findings()[0].check == "parse");
    CHECK(c.findings()[0].message.find("n1.jsonl:2") != std::string::npos);
}

TEST_CASE("checker reports seq gaps and duplicates per emitter, citing the events", "[unit][check]") {
    TraceChecker c;
    c.add_line(ev(1, 1, 1), "a:1");
    c.add_line(ev(1, 2, 2), "a:2");
    c.add_line(ev(1, 5, 5), "a:3");
    c.add_line(ev(1, 5, 5), "a:4");
    c.finish();
    auto got = checks(c);
    REQUIRE(got.size() == 2);
    CHECK(std::count(got.begin(), got.end(), "seq") == 2);
    bool gap_found = false;
    for (auto& f : c.findings())
        if (f.message.find("seq 3..4 missing") != std::string::npos) {
            gap_found = true;
            REQUIRE(f.cites.size() == 2);
            CHECK(f.cites[0]["seq"] == 2);
            CHECK(f.cites[1]["seq"] == 5);
        }
    CHECK(gap_found);
}

TEST_CASE("checker reports missing common and event fields", "[unit][check]") {
    TraceChecker c;
    c.add_line(R"({"t":1,"node":1,"inc":7,"seq":1,"ev":"peer.dead","peer":2})", "a:1");  // no lc
    c.add_line(ev(1, 2, 2, "peer.dead", ""), "a:2");                                     // no peer
    c.add_line(ev(1, 3, 3, "leader", R"(,"algo":"bully","leader":3,"term":1)"), "a:3");  // no backup
    c.finish();
    auto got = checks(c);
    REQUIRE(got == std::vector<std::string>{"fields", "fields", "fields"});
    CHECK(c.findings()[0].message.find("lc") != std::string::npos);
    CHECK(c.findings()[1].message.find("peer") != std::string::npos);
    CHECK(c.findings()[2].message.find("backup") != std::string::npos);
}

TEST_CASE("checker reports a Lamport clock that does not increase with seq", "[unit][check]") {
    TraceChecker c;
    c.add_line(ev(1, 1, 4), "a:1");
    c.add_line(ev(1, 2, 4), "a:2");
    c.finish();
    CHECK(checks(c) == std::vector<std::string>{"lamport"});
}

TEST_CASE("checker keeps incarnations of one node apart", "[unit][check]") {
    TraceChecker c;
    c.add_line(ev(1, 1, 1), "a:1");
    c.add_line(R"({"t":5,"node":1,"inc":8,"seq":1,"lc":1,"ev":"node.stop","reason":"x"})", "a:2");
    c.finish();
    CHECK(c.findings().empty());
    CHECK(c.emitters() == 2);
}
