#include <algorithm>
#include <catch2/catch.hpp>

#include "bus/shiviz.hpp"
#include "bus/trace_check.hpp"
#include "bus/trace_summary.hpp"
#include "bus/raft_storage.hpp"
#include "harness.hpp"
#include "test_util.hpp"

#include <fstream>

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

// ---- election checks ------------------------------------------------------------------------

namespace {

/// A hand-made multi-emitter trace: seq and lc are numbered per (emitter, inc), times are
/// in ms after an arbitrary epoch. Nodes are numbers, the fault injector is "ctl".
struct Trace {
    static constexpr int64_t kBase = 1'700'000'000'000'000;  // µs
    std::map<std::pair<std::string, uint64_t>, uint64_t> seqs;
    std::vector<std::string> lines;

    void add(int64_t ms, const bus::Json& node, uint64_t inc, const std::string& name, bus::Json fields) {
        uint64_t& seq = seqs[{node.dump(), inc}];
        ++seq;
        fields["t"] = kBase + ms * 1000;
        fields["node"] = node;
        fields["inc"] = inc;
        fields["seq"] = seq;
        fields["lc"] = seq;
        fields["ev"] = name;
        lines.push_back(fields.dump());
    }
    void start(int64_t ms, int id, uint64_t inc = 1, const std::string& algo = "bully") {
        add(ms, id, inc, "node.start", {{"role", "elect"}, {"algo", algo}, {"pid", 100 + id}});
    }
    void stop(int64_t ms, int id, uint64_t inc = 1) { add(ms, id, inc, "node.stop", {{"reason", "SIGTERM"}}); }
    void elect(int64_t ms, int id, uint64_t term, uint64_t inc = 1, const std::string& algo = "bully") {
        add(ms, id, inc, "election.start", {{"algo", algo}, {"term", term}, {"reason", "test"}});
    }
    void role(int64_t ms, int id, const std::string& r, uint64_t term, uint64_t inc = 1) {
        add(ms, id, inc, "role", {{"role", r}, {"term", term}});
    }
    void leader(int64_t ms, int id, int lead, uint64_t term, uint64_t inc = 1, const std::string& algo = "bully") {
        add(ms, id, inc, "leader", {{"algo", algo}, {"leader", lead}, {"term", term}, {"backup", 0}});
    }
    void fault(int64_t ms, const std::string& action, int target) {
        add(ms, "ctl", 1, "fault", {{"action", action}, {"target", target}, {"pid", 0}});
    }
    void tick(int64_t ms, int id, uint64_t inc = 1) { add(ms, id, inc, "peer.alive", {{"peer", 1}}); }

    TraceChecker check(bus::Duration bound = std::chrono::seconds(5)) const {
        TraceChecker c({bound});
        for (size_t i = 0; i < lines.size(); ++i) c.add_line(lines[i], "t:" + std::to_string(i + 1));
        c.finish();
        return c;
    }
};

/// Nodes 1..n start at 0 ms and all follow n (term 1) by 100 ms.
Trace settled(int n) {
    Trace tr;
    for (int id = 1; id <= n; ++id) tr.start(0, id);
    for (int id = 1; id <= n; ++id) tr.leader(100, id, n, 1);
    return tr;
}

bool cites_node(const bus::Finding& f, const bus::Json& node) {
    for (auto& c : f.cites)
        if (c["node"] == node) return true;
    return false;
}

}  // namespace

TEST_CASE("checker reports two Raft leaders in one term, citing both", "[unit][check]") {
    Trace tr;
    for (int id = 1; id <= 3; ++id) tr.start(0, id, 1, "raft");
    tr.leader(100, 1, 1, 3, 1, "raft");
    tr.leader(110, 3, 1, 3, 1, "raft");
    tr.leader(120, 2, 2, 3, 1, "raft");  // split brain: 2 claims term 3 as well
    auto c = tr.check();
    REQUIRE(checks(c) == std::vector<std::string>{"raft-leader"});
    auto& f = c.findings()[0];
    CHECK(f.message.find("term 3") != std::string::npos);
    REQUIRE(f.cites.size() == 2);
    CHECK(f.cites[0]["node"] == 1);  // the earliest event naming leader 1
    CHECK(f.cites[1]["node"] == 2);
    CHECK(c.report_json()["elections"]["agreement"] == "not applicable");
}

TEST_CASE("checker accepts many nodes reporting the same Raft leader per term", "[unit][check]") {
    Trace tr;
    for (int id = 1; id <= 3; ++id) tr.start(0, id, 1, "raft");
    for (int id = 1; id <= 3; ++id) tr.leader(100, id, 1, 1, 1, "raft");
    for (int id = 1; id <= 3; ++id) tr.elect(200, id, 2, 1, "raft");
    for (int id = 1; id <= 3; ++id) tr.leader(300, id, 2, 2, 1, "raft");  // a new term, a new leader
    auto c = tr.check();
    CHECK(c.findings().empty());
    auto el = c.report_json()["elections"];
    CHECK(el["algos"] == bus::Json::array({"raft"}));
    CHECK(el["raft_terms"] == 2);
    CHECK(el["terms_checked"] == 9);
}

TEST_CASE("checker reports two votes by one node in one term, across its restarts", "[unit][check]") {
    Trace tr;
    for (int id = 1; id <= 3; ++id) tr.start(0, id, 1, "raft");
    tr.add(10, 2, 1, "vote", {{"term", 4}, {"candidate", 1}});
    tr.add(11, 2, 1, "vote", {{"term", 4}, {"candidate", 1}});  // a retry, same candidate: fine
    tr.add(12, 3, 1, "vote", {{"term", 4}, {"candidate", 1}});
    SECTION("one vote per term passes") {
        auto c = tr.check();
        CHECK(c.findings().empty());
        CHECK(c.report_json()["elections"]["votes_checked"] == 2);
    }
    SECTION("a restarted node that forgot its vote is caught") {
        tr.start(50, 2, 2, "raft");
        tr.add(60, 2, 2, "vote", {{"term", 4}, {"candidate", 3}});
        auto c = tr.check();
        REQUIRE(checks(c) == std::vector<std::string>{"vote"});
        CHECK(c.findings()[0].message.find("node 2 voted for 1 and 3 in term 4") != std::string::npos);
        CHECK(c.findings()[0].cites.size() == 2);
    }
}

TEST_CASE("checker reports a term that decreases within an incarnation, not across", "[unit][check]") {
    Trace tr;
    tr.start(0, 1, 1, "raft");
    tr.elect(10, 1, 5, 1, "raft");
    tr.role(20, 1, "candidate", 5);
    tr.role(30, 1, "follower", 4);  // back to an older term: lost state
    tr.start(100, 1, 2, "raft");    // a new incarnation may start lower
    tr.role(110, 1, "follower", 1, 2);
    tr.elect(120, 1, 2, 2, "raft");
    auto c = tr.check();
    REQUIRE(checks(c) == std::vector<std::string>{"term"});
    auto& f = c.findings()[0];
    CHECK(f.message.find("from 5") != std::string::npos);
    REQUIRE(f.cites.size() == 2);
    CHECK(f.cites[0]["seq"] == 3);
    CHECK(f.cites[1]["seq"] == 4);
    CHECK(f.cites[1]["inc"] == 1);
}

TEST_CASE("bully agreement: nodes agreeing within the bound after a kill pass", "[unit][check]") {
    Trace tr = settled(3);
    tr.fault(1000, "kill", 3);
    tr.elect(1500, 2, 2);
    tr.role(1510, 2, "candidate", 2);
    tr.elect(1520, 1, 2);
    tr.role(1600, 2, "leader", 2);
    tr.leader(1600, 2, 2, 2);
    tr.role(1700, 1, "follower", 2);
    tr.leader(1700, 1, 2, 2);
    tr.tick(8000, 1);
    tr.stop(9000, 1);
    tr.elect(9100, 2, 3);  // on the way down: past the start of the shutdown, ignored
    auto c = tr.check();
    CHECK(c.findings().empty());
    auto el = c.report_json()["elections"];
    CHECK(el["agreement"] == "ok");
    CHECK(el["leader"] == 2);
    CHECK(el["live"] == bus::Json::array({1, 2}));
}

TEST_CASE("bully agreement: disagreement past the bound is one violation", "[unit][check]") {
    Trace tr = settled(4);
    tr.fault(1000, "kill", 4);
    for (int id = 1; id <= 3; ++id) tr.elect(1500, id, 2);
    tr.leader(1600, 3, 3, 2);
    tr.leader(1700, 2, 3, 2);
    tr.leader(1700, 1, 2, 2);  // node 1 follows the wrong one
    tr.leader(7000, 1, 2, 3);  // and again later: still one finding
    tr.tick(8000, 1);
    auto c = tr.check();
    REQUIRE(checks(c) == std::vector<std::string>{"agreement"});
    auto& f = c.findings()[0];
    CHECK(f.message.find("5000 ms after the last fault (bound 5s)") != std::string::npos);
    CHECK(f.message.find("node 1 follows 2 and node 2 follows 3") != std::string::npos);
    CHECK(cites_node(f, 1));
    CHECK(cites_node(f, 2));
    CHECK(cites_node(f, "ctl"));
    CHECK(c.report_json()["elections"]["agreement"] == "violated");
    // With a longer bound the trace ends inside it, where the nodes still disagree.
    auto longer = tr.check(std::chrono::seconds(10));
    REQUIRE(checks(longer) == std::vector<std::string>{"agreement"});
    CHECK(longer.findings()[0].message.find("trace ends") != std::string::npos);
}

TEST_CASE("bully agreement: agreeing on a killed node is a violation", "[unit][check]") {
    Trace tr = settled(3);
    tr.fault(1000, "kill", 3);
    tr.tick(8000, 1);
    tr.tick(8000, 2);
    auto c = tr.check();
    REQUIRE(checks(c) == std::vector<std::string>{"agreement"});
    auto& f = c.findings()[0];
    CHECK(f.message.find("all live nodes follow 3, which is not live (killed)") != std::string::npos);
    CHECK(cites_node(f, "ctl"));
    auto el = c.report_json()["elections"];
    CHECK(el["leader"] == 3);
    CHECK(el["live"] == bus::Json::array({1, 2}));
}

TEST_CASE("bully agreement: disagreement inside the bound that settles in time passes", "[unit][check]") {
    Trace tr = settled(3);
    tr.fault(1000, "kill", 3);
    tr.elect(2000, 2, 2);
    tr.leader(2500, 2, 2, 2);  // node 1 still follows the dead 3 for a while
    tr.elect(3000, 1, 2);
    tr.leader(3200, 1, 2, 2);
    tr.tick(8000, 1);
    auto c = tr.check();
    CHECK(c.findings().empty());
    CHECK(c.report_json()["elections"]["agreement"] == "ok");
    // Had node 1 not caught up before the bound, it would be a violation.
    auto tight = tr.check(std::chrono::milliseconds(1800));
    CHECK(checks(tight) == std::vector<std::string>{"agreement"});
}

TEST_CASE("bully agreement: a killed node that stays down is ignored", "[unit][check]") {
    Trace tr = settled(3);
    tr.elect(900, 1, 2);  // node 1 was electing when it died: no leader, forever
    tr.fault(1000, "kill", 1);
    tr.tick(8000, 2);
    auto c = tr.check();
    CHECK(c.findings().empty());
    CHECK(c.report_json()["elections"]["live"] == bus::Json::array({2, 3}));
}

TEST_CASE("bully agreement: a restarted node is judged by its new incarnation", "[unit][check]") {
    Trace tr = settled(3);
    tr.fault(1000, "kill", 2);  // the old incarnation still "follows 3", but it is gone
    tr.start(1000, 2, 2);       // same instant as the kill, as in the simulator
    tr.fault(1000, "restart", 2);
    tr.role(1000, 2, "joining", 0, 2);
    tr.tick(8000, 1);
    auto c = tr.check();
    REQUIRE(checks(c) == std::vector<std::string>{"agreement"});
    CHECK(c.findings()[0].message.find("node 2 has no leader (last: role joining)") != std::string::npos);
    tr.leader(1500, 2, 3, 1, 2);
    CHECK(tr.check().findings().empty());
}

TEST_CASE("bully agreement: a paused leader is not live until resumed", "[unit][check]") {
    Trace tr = settled(3);
    tr.fault(1000, "pause", 3);
    tr.tick(8000, 1);
    auto c = tr.check();
    REQUIRE(checks(c) == std::vector<std::string>{"agreement"});
    CHECK(c.findings()[0].message.find("which is not live (paused)") != std::string::npos);
    tr.fault(1200, "resume", 3);
    CHECK(tr.check().findings().empty());
}

TEST_CASE("bully agreement: the leader stopping first at shutdown is no violation", "[unit][check]") {
    Trace tr = settled(3);
    tr.fault(1000, "kill", 1);
    tr.stop(8000, 3);  // the shutdown begins with the leader
    tr.elect(8100, 2, 2);
    tr.stop(8200, 2);
    auto c = tr.check();
    CHECK(c.findings().empty());
    CHECK(c.report_json()["elections"]["live"] == bus::Json::array({2, 3}));
}

TEST_CASE("bully agreement: a trace ending before the bound still reports disagreement", "[unit][check]") {
    Trace tr = settled(3);
    tr.fault(1000, "kill", 3);
    tr.elect(1500, 2, 2);
    tr.leader(1600, 2, 2, 2);
    tr.tick(2500, 1);  // node 1 still follows 3, and the trace ends
    auto c = tr.check();
    REQUIRE(checks(c) == std::vector<std::string>{"agreement"});
    auto& f = c.findings()[0];
    CHECK(f.message.find("the trace ends 1500 ms after the last fault, before the bound (5s)") != std::string::npos);
    CHECK(f.message.find("node 1 follows 3 and node 2 follows 2") != std::string::npos);
}

TEST_CASE("bully agreement: skipped while a partition is not healed", "[unit][check]") {
    Trace tr = settled(3);
    tr.fault(1000, "partition", 0);
    tr.elect(1500, 1, 2);
    tr.leader(1600, 1, 1, 2);  // the minority side elects its own
    tr.tick(8000, 2);
    auto c = tr.check();
    CHECK(c.findings().empty());
    CHECK(c.report_json()["elections"]["agreement"] == "skipped: partition not healed");
    tr.fault(2000, "heal", 0);  // healed, yet still split 6 s later: a violation
    tr.tick(9000, 2);
    CHECK(checks(tr.check()) == std::vector<std::string>{"agreement"});
}

TEST_CASE("bully agreement: a leader that leaves is a disturbance, not the shutdown", "[unit][check]") {
    Trace tr = settled(3);  // 3 leads
    tr.add(1000, 3, 1, "node.stop", {{"reason", "left"}});
    tr.elect(1010, 2, 2);
    tr.role(1020, 2, "leader", 2);
    tr.leader(1020, 2, 2, 2);
    SECTION("the others agree on a new live leader within the bound: ok") {
        tr.leader(1030, 1, 2, 2);
        tr.tick(8000, 1);
        auto c = tr.check();
        CHECK(c.findings().empty());
        CHECK(c.report_json()["elections"]["live"] == bus::Json::array({1, 2}));
    }
    SECTION("one stays with the node that left: a violation (a leave does not close the window)") {
        tr.tick(8000, 1);
        tr.stop(9000, 1);
        auto c = tr.check();
        REQUIRE(checks(c) == std::vector<std::string>{"agreement"});
    }
}

namespace {

std::string line(const bus::Json& node, uint64_t seq, uint64_t lc, const std::string& ev, bus::Json vc, bus::Json more = bus::Json::object()) {
    more["t"] = 1'700'000'000'000'000 + static_cast<int64_t>(seq);
    more["node"] = node;
    more["inc"] = 1;
    more["seq"] = seq;
    more["lc"] = lc;
    if (!vc.is_null()) more["vc"] = vc;
    more["ev"] = ev;
    return more.dump();
}

std::vector<std::string> run(const std::vector<std::string>& lines) {
    bus::TraceChecker c;
    for (size_t i = 0; i < lines.size(); ++i) c.add_line(lines[i], "t:" + std::to_string(i + 1));
    c.finish();
    std::vector<std::string> out;
    for (auto& f : c.findings()) out.push_back(f.check);
    return out;
}

}  // namespace

TEST_CASE("checker: send/receive pairs must agree with Lamport and vector clocks", "[unit][check]") {
    bus::Json id = bus::Json::array({1, 1, 1});
    auto send = line(1, 1, 5, "msg.send", {{"1", 1}}, {{"to", 2}, {"type", "ELECTION"}, {"id", id}, {"ch", "req"}});
    SECTION("a consistent pair passes") {
        CHECK(run({send, line(2, 1, 6, "msg.recv", {{"1", 1}, {"2", 1}}, {{"from", 1}, {"type", "ELECTION"}, {"id", id}, {"ch", "req"}})})
                  .empty());
    }
    SECTION("received at a Lamport time not after the send") {
        CHECK(run({send, line(2, 1, 5, "msg.recv", {{"1", 1}, {"2", 1}}, {{"from", 1}, {"type", "ELECTION"}, {"id", id}, {"ch", "req"}})}) ==
              std::vector<std::string>{"lamport"});
    }
    SECTION("a reply with the same id is another message: not matched to the request") {
        CHECK(run({send, line(2, 1, 5, "msg.recv", {{"1", 1}, {"2", 1}},
                              {{"from", 1}, {"type", "ANSWER"}, {"id", id}, {"ch", "rep"}})})
                  .empty());
    }
    SECTION("pairs from before `ch` get no verdict (request or reply cannot be told apart)") {
        bus::Json old_send = bus::Json::parse(send);
        old_send.erase("ch");
        CHECK(run({old_send.dump(), line(2, 1, 5, "msg.recv", {{"2", 1}}, {{"from", 1}, {"type", "ELECTION"}, {"id", id}})})
                  .empty());
    }
    SECTION("a receive whose vector clock lacks the send's") {
        CHECK(run({send, line(2, 1, 6, "msg.recv", {{"2", 1}}, {{"from", 1}, {"type", "ELECTION"}, {"id", id}, {"ch", "req"}})}) ==
              std::vector<std::string>{"vclock"});
    }
}

TEST_CASE("checker: broken vector clocks are reported", "[unit][check]") {
    CHECK(run({line(1, 1, 1, "follower.hears", {{"1", 1}}), line(1, 2, 2, "follower.hears", {{"1", 2}, {"2", 4}}),
               line(1, 3, 3, "follower.hears", {{"1", 3}, {"2", 5}})})
              .empty());
    CHECK(run({line(1, 1, 1, "follower.hears", {{"2", 1}})}) == std::vector<std::string>{"vclock"});   // not its own
    CHECK(run({line(1, 1, 1, "follower.hears", {{"1", 0}})}) == std::vector<std::string>{"vclock"});   // zero
    CHECK(run({line(1, 1, 1, "follower.hears", {{"a", 1}, {"1", 1}})}) == std::vector<std::string>{"vclock"});
    CHECK(run({line(1, 1, 1, "follower.hears", bus::Json::array({1}))}) == std::vector<std::string>{"vclock"});
    CHECK(run({line(1, 1, 1, "follower.hears", {{"1", 2}}), line(1, 2, 2, "follower.hears", {{"1", 2}})}) ==
          std::vector<std::string>{"vclock"});  // own entry does not increase
    CHECK(run({line(1, 1, 1, "follower.hears", {{"1", 1}, {"3", 7}}), line(1, 2, 2, "follower.hears", {{"1", 2}, {"3", 6}})}) ==
          std::vector<std::string>{"vclock"});  // another entry decreases
}

TEST_CASE("summary: messages per type, events per node, leaderless time, clock spread", "[unit][check][summary]") {
    std::vector<bus::Json> evs;
    auto add = [&](int64_t ms, int node, const std::string& ev, bus::Json f = bus::Json::object()) {
        f["t"] = 1'700'000'000'000'000 + ms * 1000;
        f["node"] = node;
        f["inc"] = 1;
        f["seq"] = evs.size() + 1;
        f["ev"] = ev;
        evs.push_back(f);
    };
    add(0, 1, "node.start");
    add(0, 2, "node.start");
    add(300, 1, "election.start", {{"algo", "bully"}, {"term", 1}});
    add(310, 1, "msg.send", {{"type", "ELECTION"}, {"to", 2}, {"id", bus::Json::array({1, 1, 1})}});
    add(311, 2, "msg.recv", {{"type", "ELECTION"}, {"from", 1}, {"id", bus::Json::array({1, 1, 1})}});
    add(500, 1, "leader", {{"algo", "bully"}, {"leader", 2}, {"term", 1}});
    add(600, 2, "leader", {{"algo", "bully"}, {"leader", 2}, {"term", 1}});
    add(700, 1, "clock.offset", {{"offset_us", 100}});
    add(700, 2, "clock.offset", {{"offset_us", 900}});
    add(800, 1, "clock.adjust", {{"delta_us", 400}});
    add(800, 2, "clock.adjust", {{"delta_us", -400}});
    add(900, 1, "clock.offset", {{"offset_us", 490}});
    add(900, 2, "clock.offset", {{"offset_us", 510}});
    add(1000, 2, "node.stop", {{"reason", "SIGTERM"}});
    bus::Json s = bus::summarize(evs);
    INFO(s.dump());
    CHECK(s["messages"]["ELECTION"]["sent"] == 1);
    CHECK(s["messages"]["ELECTION"]["received"] == 1);
    CHECK(s["nodes"]["1@1"]["events"] == 7);
    CHECK(s["leaderless"]["1@1"]["total_ms"] == 500.0);  // from its start to its first leader
    CHECK(s["leaderless"]["2@1"]["total_ms"] == 600.0);
    CHECK(s["clocks"]["spread"]["max_ms"] == 0.8);
    CHECK(s["clocks"]["spread_after_sync"]["max_ms"] == 0.02);
    CHECK_FALSE(bus::check_spread(evs, std::chrono::microseconds(50)).has_value());
    auto v = bus::check_spread(evs, std::chrono::microseconds(10));
    REQUIRE(v.has_value());
    CHECK(v->spread_us == 20);
    CHECK(v->high["node"] == 2);
}

TEST_CASE("summary: JSON objects without the common fields are counted as unusable_lines and left out",
          "[unit][check][summary][badinput]") {
    bus::Json good = {{"t", 1'700'000'000'000'000}, {"node", 1}, {"inc", 7}, {"seq", 1}, {"ev", "node.start"}};
    CHECK(bus::is_trace_event(good));
    for (const char* k : {"t", "node", "inc", "seq", "ev"}) {
        bus::Json bad = good;
        bad.erase(k);
        INFO(k);
        CHECK_FALSE(bus::is_trace_event(bad));
    }
    bus::Json s = bus::summarize({bus::Json::object(), bus::Json{{"ev", "leader"}}});
    CHECK(s["events"] == 0);
    CHECK(s["unusable_lines"] == 2);
    s = bus::summarize({good, bus::Json::object()});
    CHECK(s["events"] == 1);
    CHECK(s["unusable_lines"] == 1);
    CHECK(s["nodes"]["1@7"]["events"] == 1);
}

namespace {

std::string check_bin() { return std::string(FTBUS_BIN_DIR) + "/ftbus-check"; }

/// A file `name` in `d` holding `text`; \return its path.
std::string write_file(const test::TempDir& d, const std::string& name, const std::string& text) {
    std::string path = d.path + "/" + name;
    std::ofstream(path) << text;
    return path;
}

}  // namespace

TEST_CASE("ftbus-check: an input that is a directory or missing is exit 2 naming it and why, beside good files too",
          "[integration][check][badinput]") {
    test::TempDir d("ftbus-check");
    std::string good = write_file(d, "good.jsonl", ev(1, 1, 1) + "\n");
    std::string out;
    REQUIRE(test::run_command(check_bin() + " " + good + " 2>&1", &out) == 0);
    CHECK(test::run_command(check_bin() + " " + good + " " + d.path + " 2>&1", &out) == 2);
    CHECK(out == "ftbus-check: cannot read " + d.path + ": Is a directory\n");
    CHECK(test::run_command(check_bin() + " " + d.path + " 2>&1", &out) == 2);
    CHECK(out == "ftbus-check: cannot read " + d.path + ": Is a directory\n");
    for (const char* mode : {"--summary", "--export shiviz"}) {
        INFO(mode);
        CHECK(test::run_command(check_bin() + " " + mode + " " + good + " " + d.path + " 2>&1 >/dev/null", &out) == 2);
        CHECK(out == "ftbus-check: cannot read " + d.path + ": Is a directory\n");
    }
    CHECK(test::run_command(check_bin() + " " + d.path + "/missing.jsonl 2>&1", &out) == 2);
    CHECK(out == "ftbus-check: cannot read " + d.path + "/missing.jsonl: No such file or directory\n");
}

TEST_CASE("ftbus-check: JSON objects that are not trace events are counted, and none usable is exit 2 in every mode",
          "[integration][check][summary][badinput]") {
    test::TempDir d("ftbus-check");
    std::string junk = write_file(d, "junk.jsonl", "{}\n{\"ev\":\"leader\"}\n");
    std::string mixed = write_file(d, "mixed.jsonl", ev(1, 1, 1) + "\n{}\nnot json\n");
    std::string out;
    for (const char* mode : {"", "--json", "--summary", "--export shiviz"}) {
        INFO(mode);
        CHECK(test::run_command(check_bin() + " " + mode + " " + junk + " 2>&1", &out) == 2);
        CHECK(out == "ftbus-check: no trace events in the input (2 JSON objects without the common fields: t, node, "
                     "inc, seq, ev)\n");
    }
    // With a usable event beside them: the summary counts them apart from unparsed lines.
    REQUIRE(test::run_command(check_bin() + " --summary " + mixed + " 2>/dev/null", &out) == 0);
    bus::Json s = bus::Json::parse(out);
    CHECK(s["events"] == 1);
    CHECK(s["unusable_lines"] == 1);
    CHECK(s["unparsed_lines"] == 1);
    CHECK(test::run_command(check_bin() + " --export shiviz " + mixed + " 2>&1 >/dev/null", &out) == 0);
    CHECK(out.find("2 lines skipped (not trace events)") != std::string::npos);
    // Text mode reports them (`fields`, `parse`): violations, exit 1.
    CHECK(test::run_command(check_bin() + " " + mixed + " 2>&1", &out) == 1);
    CHECK(out.find("[fields]") != std::string::npos);
    // One output at a time.
    CHECK(test::run_command(check_bin() + " --summary --export shiviz " + mixed + " 2>&1", &out) == 2);
    CHECK(out.find("--summary excludes --export") != std::string::npos);
}

TEST_CASE("checker: unknown event names and timestamps going back are reported with their lines",
          "[unit][check][badinput]") {
    bus::TraceChecker c;
    c.add_line(R"({"t":100,"node":1,"inc":1,"seq":1,"lc":1,"ev":"node.stall","stalled_ms":5})", "f:1");
    c.add_line(R"({"t":90,"node":1,"inc":1,"seq":2,"lc":2,"ev":"peer.alive","peer":2})", "f:2");
    c.add_line(R"({"t":95,"node":1,"inc":1,"seq":3,"lc":3,"ev":"node.explode"})", "f:3");
    c.add_line(R"({"t":96,"node":1,"inc":1,"seq":4,"lc":4,"ev":"lock.acquired"})", "f:4");  // reserved family
    c.add_line(R"({"t":97,"node":1,"inc":1,"seq":5,"lc":5,"ev":"peer.al)", "f:5");            // truncated (killed)
    c.finish();
    std::vector<std::string> kinds;
    for (auto& f : c.findings()) kinds.push_back(f.check);
    std::sort(kinds.begin(), kinds.end());
    CHECK(kinds == std::vector<std::string>{"event", "parse", "time"});
    for (auto& f : c.findings()) {
        if (f.check == "event") CHECK(f.message.find("f:3: unknown event 'node.explode'") != std::string::npos);
        if (f.check == "time") CHECK(f.message.find("time goes back from seq 1 to 2") != std::string::npos);
        if (f.check == "parse") CHECK(f.message.find("f:5") != std::string::npos);
    }
}

TEST_CASE("checker, summary, spread check and ShiViz export survive every field of every event mistyped",
          "[unit][check][badinput]") {
    std::vector<std::string> good = {
        R"({"t":1700000000000000,"node":1,"inc":5,"seq":1,"lc":1,"vc":{"1":1},"ev":"node.start","role":"elect","algo":"bully","pid":1})",
        R"({"t":1700000000000100,"node":1,"inc":5,"seq":2,"lc":2,"vc":{"1":2},"ev":"msg.send","to":2,"type":"ELECTION","id":[1,5,1],"ch":"req"})",
        R"({"t":1700000000000200,"node":2,"inc":6,"seq":1,"lc":3,"vc":{"1":2,"2":1},"ev":"msg.recv","from":1,"type":"ELECTION","id":[1,5,1],"ch":"req"})",
        R"({"t":1700000000000300,"node":2,"inc":6,"seq":2,"lc":4,"vc":{"1":2,"2":2},"ev":"leader","algo":"bully","leader":2,"term":1,"backup":0})",
        R"({"t":1700000000000400,"node":2,"inc":6,"seq":3,"lc":5,"vc":{"1":2,"2":3},"ev":"clock.offset","offset_us":5,"rate_ppm":0})",
        R"({"t":1700000000000500,"node":"ctl","inc":1,"seq":1,"lc":1,"ev":"fault","action":"kill","target":1,"pid":3})",
        R"({"t":1700000000000600,"node":2,"inc":6,"seq":4,"lc":6,"vc":{"1":2,"2":4},"ev":"node.stop","reason":"left"})",
    };
    const std::vector<bus::Json> odd = {nullptr, "s", -3, 2.5, true, bus::Json::array({1, "x"}), bus::Json::object({{"k", 1}})};
    size_t runs = 0;
    for (size_t i = 0; i < good.size(); ++i) {
        bus::Json base = bus::Json::parse(good[i]);
        for (auto& [key, value] : base.items()) {
            for (const bus::Json& o : odd) {
                std::vector<std::string> lines = good;
                bus::Json bad = base;
                bad[key] = o;
                lines[i] = bad.dump();
                INFO(lines[i]);
                bus::TraceChecker c;
                std::vector<bus::Json> evs;
                std::string shiviz;
                REQUIRE_NOTHROW([&] {
                    for (auto& l : lines) c.add_line(l, "x");
                    c.finish();
                    c.report_json().dump();
                    for (auto& l : lines) evs.push_back(bus::Json::parse(l));
                    bus::summarize(evs).dump();
                    bus::check_spread(evs, std::chrono::microseconds(1));
                    bus::ShivizExporter ex([&](const std::string& s) { shiviz += s; });
                    for (auto& e : evs) ex.add(e);
                    ex.finish();
                }());
                ++runs;
            }
        }
    }
    CHECK(runs > 300);
}

namespace {

/// A lock-service event applied by replica `node` (its seq-th event), at time 1000 + seq.
std::string lk(int node, uint64_t seq, const std::string& name, const std::string& fields) {
    return ev(node, seq, seq, name, "," + fields);
}

}  // namespace

TEST_CASE("checker: the lock service's history from the replicas' traces — one holder at a time, tokens up, "
          "appends by the holder at the file's end, replicas agreeing",
          "[unit][check][lock]") {
    auto run = [](std::vector<std::string> lines) {
        TraceChecker c;
        int n = 0;
        for (auto& l : lines) c.add_line(l, "t:" + std::to_string(++n));
        c.finish();
        std::vector<std::string> msgs;
        for (auto& f : c.findings()) msgs.push_back(f.check + ": " + f.message);
        return msgs;
    };
    std::string grant5 = R"("lock":"L","session":3,"client":"a","token":5,"index":5,"term":1)";
    std::string append6 = R"("file":"f","lock":"L","token":5,"offset":0,"bytes":4,"crc32c":1,"client":"a","req":9,"index":6,"term":1)";
    std::string release7 = R"("lock":"L","session":3,"token":5,"index":7,"term":1)";
    std::string grant7 = R"("lock":"L","session":4,"client":"b","token":7,"index":7,"term":1)";
    SECTION("a clean history, applied by two replicas: nothing to report") {
        auto m = run({lk(1, 1, "lock.grant", grant5), lk(1, 2, "file.append", append6), lk(1, 3, "lock.release", release7),
                      lk(1, 4, "lock.grant", grant7), lk(2, 1, "lock.grant", grant5), lk(2, 2, "file.append", append6),
                      lk(2, 3, "lock.release", release7), lk(2, 4, "lock.grant", grant7)});
        CHECK(m.empty());
    }
    SECTION("a grant while held") {
        auto m = run({lk(1, 1, "lock.grant", grant5), lk(1, 2, "lock.grant", grant7)});
        REQUIRE(m.size() == 1);
        CHECK(m[0] == "lock: lock service: L granted to session 4 (token 7) while session 3 held it (token 5)");
    }
    SECTION("an append with a stale token, and at the wrong offset") {
        std::string stale = R"("file":"f","lock":"L","token":5,"offset":2,"bytes":4,"crc32c":1,"client":"a","req":9,"index":8,"term":1)";
        auto m = run({lk(1, 1, "lock.grant", grant5), lk(1, 2, "file.append", append6), lk(1, 3, "lock.release", release7),
                      lk(1, 4, "lock.grant", grant7), lk(1, 5, "file.append", stale)});
        REQUIRE(m.size() == 2);
        CHECK(m[0] == "lock: lock service: an append to f at offset 2 where the file ended at 4");
        CHECK(m[1] == "lock: lock service: an append to f under L with token 5, which is not the current one (7)");
    }
    SECTION("a token going back") {
        std::string grant3 = R"("lock":"L","session":4,"client":"b","token":3,"index":8,"term":1)";
        auto m = run({lk(1, 1, "lock.grant", grant5), lk(1, 2, "lock.release", release7), lk(1, 3, "lock.grant", grant3)});
        REQUIRE(m.size() == 1);
        CHECK(m[0] == "lock: lock service: L's token went from 5 to 3 (tokens only increase)");
    }
    SECTION("replicas that applied an entry differently") {
        std::string other = R"("lock":"L","session":3,"client":"a","token":5,"index":5,"term":2)";
        auto m = run({lk(1, 1, "lock.grant", grant5), lk(2, 1, "lock.grant", other)});
        REQUIRE(m.size() == 1);
        CHECK(m[0] == "lock: lock service: replicas applied entry 5 differently");
    }
    SECTION("an expiry while the client's lease still ran (lease safety)") {
        std::string expire = R"("lock":"L","session":3,"token":5,"index":9,"term":1)";
        std::string acquired = R"({"t":1001,"node":"a","inc":1,"seq":1,"lc":1,"ev":"lock.acquired","lock":"L","token":5,"valid_until":9002})";
        auto m = run({lk(1, 1, "lock.grant", grant5), acquired, lk(1, 2, "lock.expire", expire)});
        for (auto& x : m) UNSCOPED_INFO(x);
        REQUIRE(m.size() == 1);
        CHECK(m[0] == "lock: lock service: L (token 5) expired while client a could still act as holder: its lease ran "
                      "to 8 ms after the expiry");
        // Had the client seen its lease run out first (lock.lost), or its lease ended earlier: fine.
        std::string lost = R"({"t":1002,"node":"a","inc":1,"seq":2,"lc":2,"ev":"lock.lost","lock":"L","token":5,"reason":"x"})";
        CHECK(run({lk(1, 1, "lock.grant", grant5), acquired, lost, lk(1, 2, "lock.expire", expire)}).empty());
        std::string early = R"({"t":1001,"node":"a","inc":1,"seq":1,"lc":1,"ev":"lock.acquired","lock":"L","token":5,"valid_until":1001})";
        CHECK(run({lk(1, 1, "lock.grant", grant5), early, lk(1, 2, "lock.expire", expire)}).empty());
    }
}

TEST_CASE("checker --file: an acknowledged append missing from the file, changed in it, or bytes past the applied "
          "appends are reported",
          "[unit][check][lock]") {
    auto ack = [](uint64_t seq, uint64_t off, const std::string& data) {
        return "{\"t\":" + std::to_string(2000 + seq) + ",\"node\":\"a\",\"inc\":1,\"seq\":" + std::to_string(seq) +
               ",\"lc\":" + std::to_string(seq) + ",\"ev\":\"rpc.ack\",\"op\":\"append\",\"req\":" + std::to_string(seq) +
               ",\"lock\":\"L\",\"token\":5,\"file\":\"f.txt\",\"offset\":" + std::to_string(off) +
               ",\"bytes\":" + std::to_string(data.size()) + ",\"crc32c\":" + std::to_string(bus::crc32c(data)) + "}";
    };
    auto applied = [](uint64_t seq, uint64_t off, const std::string& data) {
        return lk(1, seq, "file.append", "\"file\":\"f.txt\",\"lock\":\"L\",\"token\":5,\"offset\":" + std::to_string(off) +
                                             ",\"bytes\":" + std::to_string(data.size()) + ",\"crc32c\":" +
                                             std::to_string(bus::crc32c(data)) + ",\"client\":\"a\",\"req\":" +
                                             std::to_string(seq) + ",\"index\":" + std::to_string(10 + seq) + ",\"term\":1");
    };
    auto check = [&](const std::string& content) {
        TraceChecker c;
        c.add_line(applied(1, 0, "one\n"), "n:1");
        c.add_line(applied(2, 4, "two\n"), "n:2");
        c.add_line(ack(1, 0, "one\n"), "a:1");
        c.add_line(ack(2, 4, "two\n"), "a:2");
        c.finish();
        c.check_file("f.txt", content, "/data/f.txt");
        std::vector<std::string> m;
        for (auto& f : c.findings()) m.push_back(f.message);
        return m;
    };
    CHECK(check("one\ntwo\n").empty());
    auto lost = check("one\n");
    REQUIRE(lost.size() == 1);
    CHECK(lost[0] == "/data/f.txt: an acknowledged append (4 bytes at offset 4) is missing: the file has 4 bytes");
    auto changed = check("one\ntwX\n");
    REQUIRE(changed.size() == 2);
    CHECK(changed[0] == "/data/f.txt: the bytes at offset 4 are not the acknowledged append's (checksum mismatch)");
    CHECK(changed[1] == "/data/f.txt: the bytes at offset 4 are not those of the append applied there");
    {  // a server told the client request 2 failed, yet it was applied
        TraceChecker c;
        c.add_line(applied(1, 0, "one\n"), "n:1");
        c.add_line(applied(2, 4, "two\n"), "n:2");
        c.add_line(lk(2, 1, "rpc.reject", R"("client":"a","op":"append","req":2,"reason":"x","token":5,"current":6)"), "m:1");
        c.finish();
        c.check_file("f.txt", "one\ntwo\n", "/data/f.txt");
        REQUIRE(c.findings().size() == 1);
        CHECK(c.findings()[0].message ==
              "/data/f.txt: the append at offset 4 (request 2) was applied although a client was told it failed");
    }
    auto extra = check("one\ntwo\nghost\n");
    REQUIRE(extra.size() == 1);
    CHECK(extra[0] == "/data/f.txt: 6 bytes past the last append the replicas applied (8)");
}

TEST_CASE("checker: two clients whose holds of a lock overlap in time (lock.acquired to release, loss or lease end) "
          "are reported, holds one after the other are not",
          "[unit][check][lock]") {
    auto acquired = [](const std::string& c, uint64_t seq, int64_t t, uint64_t token, int64_t valid) {
        return "{\"t\":" + std::to_string(t) + ",\"node\":\"" + c + "\",\"inc\":1,\"seq\":" + std::to_string(seq) +
               ",\"lc\":" + std::to_string(seq) + ",\"ev\":\"lock.acquired\",\"lock\":\"L\",\"token\":" + std::to_string(token) +
               ",\"valid_until\":" + std::to_string(valid) + "}";
    };
    auto release = [](const std::string& c, uint64_t seq, int64_t t, uint64_t token, int64_t req) {
        return "{\"t\":" + std::to_string(t) + ",\"node\":\"" + c + "\",\"inc\":1,\"seq\":" + std::to_string(seq) +
               ",\"lc\":" + std::to_string(seq) + ",\"ev\":\"rpc.ack\",\"op\":\"release\",\"req\":" + std::to_string(req) +
               ",\"lock\":\"L\",\"token\":" + std::to_string(token) + "}";
    };
    auto run = [](std::vector<std::string> lines) {
        TraceChecker c;
        for (auto& l : lines) c.add_line(l, "x");
        c.finish();
        std::vector<std::string> m;
        for (auto& f : c.findings()) m.push_back(f.message);
        return m;
    };
    // a holds 5 from 1000 until it asks to release at 3000 (acked at 3200); b holds 8 from 3100.
    CHECK(run({acquired("a", 1, 1000, 5, 90000), release("a", 2, 3200, 5, 3000), acquired("b", 1, 3100, 8, 90000)}).empty());
    // b acquires at 2500, while a could still act (its release left at 3000).
    auto m = run({acquired("a", 1, 1000, 5, 90000), release("a", 2, 3200, 5, 3000), acquired("b", 1, 2500, 8, 90000)});
    REQUIRE(m.size() == 1);
    CHECK(m[0] == "lock service: clients a (token 5) and b (token 8) could both act as holders of L for 0.5 ms");
    // a never released, but its lease ended at 2000: b from 2500 is fine.
    CHECK(run({acquired("a", 1, 1000, 5, 2000), acquired("b", 1, 2500, 8, 90000)}).empty());
}
