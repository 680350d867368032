// Tests of the analysis scripts (scripts/*.py) and scripts/gen-cluster, run as subprocesses
// on small trace fixtures written here event by event (docs/TRACE.md), so that every number
// they must print follows from the fixture: a crash at 1000 ms noticed at 1350 ms is "350.0 ms".
// Each script also gets bad input (missing or empty directories, unknown options, lines of the
// wrong shape): an exit code as its usage says, one message, and never a Python traceback.
// Plots need gnuplot; without it a stub stands in (the scripts would otherwise install it),
// and only the gnuplot scripts they write are checked.
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "bus/cluster.hpp"
#include "bus/trace.hpp"
#include "harness.hpp"
#include "test_util.hpp"

using bus::Json;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;

namespace {

const std::string kScripts = std::string(FTBUS_SOURCE_DIR) + "/scripts/";
/// Time zero of every fixture, µs since the epoch.
constexpr int64_t kT0 = 1'700'000'000'000'000;
/// An integer no 64-bit trace writer emits, too large for a float.
const std::string kHuge = "1" + std::string(400, '0');

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

bool has_real_gnuplot() {
    static const bool yes = test::run_command("command -v gnuplot >/dev/null 2>&1") == 0;
    return yes;
}

/// A run directory being written: one JSONL file per emitter, as the nodes and ctl write them.
struct RunDir {
    test::TempDir dir{"ftbus-scripts-run"};
    std::map<std::string, int> lines;  ///< file -> lines written
    std::map<std::string, int> seq;    ///< emitter -> last seq

    static std::string file_of(const Json& node) {
        if (node.is_number()) return "node" + std::to_string(node.get<int>()) + ".jsonl";
        return node.get<std::string>() + ".jsonl";
    }
    /// Appends event `ev` of `node` at `ms` after kT0, with the common fields and `fields`.
    void ev(double ms, const Json& node, const std::string& name,
            const Json& fields = Json::object(), int64_t inc = 1) {
        std::string key = node.dump();
        Json e = {{"t", kT0 + static_cast<int64_t>(ms * 1000)},
                  {"node", node},
                  {"inc", inc},
                  {"seq", ++seq[key]},
                  {"lc", seq[key]},
                  {"ev", name}};
        for (auto& [k, v] : fields.items()) e[k] = v;
        raw(file_of(node), e.dump());
    }
    void fault(double ms, const std::string& action, int target, int pid) {
        ev(ms, "ctl", "fault", {{"action", action}, {"target", target}, {"pid", pid}});
    }
    /// Appends `line` as is to `file`; \return its line number.
    int raw(const std::string& file, const std::string& line) {
        std::ofstream(dir.path + "/" + file, std::ios::app) << line << "\n";
        return ++lines[file];
    }
    const std::string& path() const { return dir.path; }
};

struct Result {
    int code = -1;
    std::string out, err;
};

/// Where scripts run and write their outputs (plots, stderr), and a gnuplot stub on PATH
/// when the real one is missing.
struct Scratch {
    test::TempDir dir{"ftbus-scripts-out"};
    Scratch() {
        if (has_real_gnuplot()) return;
        std::filesystem::create_directory(dir.path + "/bin");
        std::ofstream(dir.path + "/bin/gnuplot") << "#!/bin/sh\nexit 0\n";
        std::filesystem::permissions(dir.path + "/bin/gnuplot", std::filesystem::perms::owner_all);
    }
    /// Runs scripts/`cmdline` (a script name and its arguments) in this directory.
    Result run(const std::string& cmdline) const {
        std::string path = has_real_gnuplot() ? "" : "PATH=" + dir.path + "/bin:\"$PATH\" ";
        Result r;
        r.code = test::run_command(
            "cd " + dir.path + " && " + path + kScripts + cmdline + " 2>" + dir.path + "/stderr",
            &r.out);
        r.err = read_file(dir.path + "/stderr");
        INFO(cmdline << "\nstdout: " << r.out << "\nstderr: " << r.err);
        CHECK_THAT(r.err, !Contains("Traceback"));
        return r;
    }
    std::string file(const std::string& name) const { return dir.path + "/" + name; }
};

/// A refusal: exit `code`, one line on stderr holding `says`, nothing else.
void check_refused(const Result& r, int code, const std::string& says) {
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.code == code);
    CHECK_THAT(r.err, Contains(says));
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
}

/// An argparse refusal: exit 2, its usage and an "error:" line naming the problem.
void check_argparse_refused(const Result& r, const std::string& says) {
    INFO("stderr: " << r.err);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Contains("error: " + says));
}

/// True if every string of `parts` occurs in `text`, in this order.
bool in_order(const std::string& text, std::initializer_list<std::string> parts) {
    size_t at = 0;
    for (auto& p : parts) {
        at = text.find(p, at);
        if (at == std::string::npos) {
            UNSCOPED_INFO("not found (in order): " << p);
            return false;
        }
        at += p.size();
    }
    return true;
}

/// The rows of gnuplot data block `name` (`$name << EOD` .. `EOD`) in `gp`.
std::string data_block(const std::string& gp, const std::string& name) {
    std::string head = "$" + name + " << EOD\n";
    size_t from = gp.find(head);
    if (from == std::string::npos) return "(no block " + name + ")";
    from += head.size();
    return gp.substr(from, gp.find("\nEOD\n", from) - from);
}

/// The whitespace-separated words of the first line of `text` that starts with `first`.
std::vector<std::string> words_of_line(const std::string& text, const std::string& first) {
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        std::istringstream in(line);
        std::vector<std::string> w;
        for (std::string x; in >> x;) w.push_back(x);
        if (!w.empty() && w[0] == first) return w;
    }
    return {};
}

// ---- Fixtures ----------------------------------------------------------------------------

/// Bully, nodes 1-3, all following 3 by 102 ms. Node 3 is killed at 1000 ms; node 1 declares
/// it dead at 1350 (silent 600 ms), node 2 at 1400; both hold elections; node 2 wins at 1500
/// and node 1 follows it at 1520: leaderless 520 ms. One ELECTION, ANSWER and COORDINATOR,
/// each traced at both ends. Clean stops at 3000 and 3001 ms. 21 events.
void bully_failover(RunDir& r) {
    for (int n = 1; n <= 3; ++n)
        r.ev(n - 1, n, "node.start", {{"algo", "bully"}, {"role", "elect"}, {"pid", 100 + n}});
    for (int n = 3; n >= 1; --n)
        r.ev(100 + (3 - n), n, "leader",
             {{"algo", "bully"}, {"leader", 3}, {"term", 1}, {"backup", 2}});
    r.fault(1000, "kill", 3, 103);
    r.ev(1350, 1, "peer.dead", {{"peer", 3}, {"silence_ms", 600}});
    r.ev(1351, 1, "election.start",
         {{"algo", "bully"}, {"term", 2}, {"reason", "leader 3 dead"}, {"to", {2}}});
    r.ev(1352, 1, "msg.send", {{"to", 2}, {"type", "ELECTION"}, {"id", {1, 1, 1}}, {"ch", "req"}});
    r.ev(1360, 2, "msg.recv",
         {{"from", 1}, {"type", "ELECTION"}, {"id", {1, 1, 1}}, {"ch", "req"}});
    r.ev(1361, 2, "msg.send", {{"to", 1}, {"type", "ANSWER"}, {"id", {2, 1, 1}}, {"ch", "rep"}});
    r.ev(1365, 1, "msg.recv", {{"from", 2}, {"type", "ANSWER"}, {"id", {2, 1, 1}}, {"ch", "rep"}});
    r.ev(1400, 2, "peer.dead", {{"peer", 3}, {"silence_ms", 650.5}});
    r.ev(1401, 2, "election.start",
         {{"algo", "bully"}, {"term", 2}, {"reason", "leader 3 dead"}, {"to", Json::array()}});
    r.ev(1500, 2, "leader", {{"algo", "bully"}, {"leader", 2}, {"term", 2}, {"backup", 1}});
    r.ev(1501, 2, "msg.send",
         {{"to", 1}, {"type", "COORDINATOR"}, {"id", {2, 1, 2}}, {"ch", "req"}});
    r.ev(1505, 1, "msg.recv",
         {{"from", 2}, {"type", "COORDINATOR"}, {"id", {2, 1, 2}}, {"ch", "req"}});
    r.ev(1520, 1, "leader", {{"algo", "bully"}, {"leader", 2}, {"term", 2}, {"backup", 1}});
    r.ev(3000, 1, "node.stop", {{"reason", "SIGTERM"}});
    r.ev(3001, 2, "node.stop", {{"reason", "SIGTERM"}});
}

/// Three kills of leader 3, restarted in between. Trial 1: kill at 1000, first notice 1150,
/// all follow 2 at 1250 (250 ms, 3 election messages). Trial 2: kill at 3000, notice 3300,
/// agreement at 3400 (400 ms, 1 unsent message). Trial 3: kill at 5000, nodes 1 and 2 follow
/// different leaders: no agreement.
void failover_trials(RunDir& r) {
    auto all_follow_3 = [&](double ms, int term, int64_t inc3) {
        r.ev(ms, 3, "leader", {{"leader", 3}, {"term", term}}, inc3);
        r.ev(ms + 1, 2, "leader", {{"leader", 3}, {"term", term}});
        r.ev(ms + 2, 1, "leader", {{"leader", 3}, {"term", term}});
    };
    for (int n = 1; n <= 3; ++n) r.ev(n - 1, n, "node.start", {{"algo", "bully"}});
    all_follow_3(10, 1, 1);
    r.fault(1000, "kill", 3, 103);
    r.ev(1150, 2, "peer.dead", {{"peer", 3}});
    r.ev(1151, 2, "msg.send", {{"to", 3}, {"type", "ELECTION"}});
    r.ev(1180, 1, "peer.dead", {{"peer", 3}});
    r.ev(1181, 1, "msg.send", {{"to", 2}, {"type", "ELECTION"}});
    r.ev(1199, 2, "msg.send", {{"to", 1}, {"type", "COORDINATOR"}});
    r.ev(1200, 2, "leader", {{"leader", 2}, {"term", 2}});
    r.ev(1250, 1, "leader", {{"leader", 2}, {"term", 2}});
    r.fault(2000, "restart", 3, 203);
    r.ev(2001, 3, "node.start", {{"algo", "bully"}}, 2);
    all_follow_3(2100, 3, 2);
    r.fault(3000, "kill", 3, 203);
    r.ev(3300, 1, "peer.dead", {{"peer", 3}});
    r.ev(3301, 1, "msg.unsent", {{"to", 3}, {"type", "ELECTION"}});
    r.ev(3350, 2, "leader", {{"leader", 2}, {"term", 4}});
    r.ev(3400, 1, "leader", {{"leader", 2}, {"term", 4}});
    r.fault(4000, "restart", 3, 303);
    r.ev(4001, 3, "node.start", {{"algo", "bully"}}, 3);
    all_follow_3(4100, 5, 3);
    r.fault(5000, "kill", 3, 303);
    r.ev(5050, 1, "msg.send", {{"to", 2}, {"type", "ELECTION"}});
    r.ev(5100, 1, "leader", {{"leader", 2}, {"term", 6}});
    r.ev(5200, 2, "leader", {{"leader", 1}, {"term", 6}});
}

/// Failure detection only (no elections), nodes 1-3. Kill 2 at 1000: suspected by 1 at 1300
/// and 3 at 1310, declared dead by 3 at 1600 and 1 at 1620; node 1 also wrongly convicts 3 at
/// 1650 (and 3 briefly suspects 1 at 1005). Pause 3 at 2000: suspected by 1 at 2300, nobody
/// declares it dead. Resume at 3000: it notices a 1000 ms stall at 3005, node 1 hears it at 3050,
/// it convicts node 2 at 3060. 16 events.
void detection(RunDir& r) {
    for (int n = 1; n <= 3; ++n)
        r.ev(n - 1, n, "node.start", {{"algo", "none"}, {"pid", 100 * n + n}});
    r.fault(1000, "kill", 2, 202);
    r.ev(1005, 3, "peer.suspect", {{"peer", 1}, {"silence_ms", 300}});  // not the fault's target
    r.ev(1300, 1, "peer.suspect", {{"peer", 2}, {"silence_ms", 300}});
    r.ev(1310, 3, "peer.suspect", {{"peer", 2}, {"silence_ms", 310}});
    r.ev(1600, 3, "peer.dead", {{"peer", 2}, {"silence_ms", 600}});
    r.ev(1620, 1, "peer.dead", {{"peer", 2}, {"silence_ms", 620}});
    r.ev(1650, 1, "peer.dead", {{"peer", 3}, {"silence_ms", 400}});
    r.fault(2000, "pause", 3, 303);
    r.ev(2300, 1, "peer.suspect", {{"peer", 3}, {"silence_ms", 300}});
    r.fault(3000, "resume", 3, 303);
    r.ev(3005, 3, "node.stall", {{"stalled_ms", 1000}});
    r.ev(3050, 1, "peer.alive", {{"peer", 3}, {"peer_inc", 1}});
    r.ev(3060, 3, "peer.dead", {{"peer", 2}, {"silence_ms", 2060}});
}

/// Berkeley, nodes 1 ("Master" in cluster.toml), 2, 3. Clocks start at 0, +2 s, -1 s (drift
/// 0, +50, -20 ppm). Round 1 by master 1 at 200 ms brings them to 333333, 333433, 333283 µs
/// (spread 150 µs); round 2 at 1200 leaves node 3 out as too far. Node 1 is killed at 2000;
/// node 3 becomes master at 2300 and completes its first round at 2450 (failover 450 ms).
/// Offsets are sampled at 1, 202, 1500 ms and (nodes 2, 3) 4000 ms.
void berkeley(RunDir& r) {
    std::ofstream(r.path() + "/cluster.toml")
        << "[[node]]\nid = 1\nname = \"Master\"\npub = 7101\npeer = 7102\n"
           "[[node]]\nid = 2\npub = 7111\npeer = 7112\n"
           "[[node]]\nid = 3\npub = 7121\npeer = 7122\n";
    const std::map<int, int64_t> after = {{1, 333333}, {2, 333433}, {3, 333283}};
    auto offsets = [&](double ms, std::initializer_list<int> nodes) {
        for (int n : nodes)
            r.ev(ms, n, "clock.offset", {{"offset_us", after.at(n)}, {"rate_ppm", 0.0}});
    };
    for (int n = 1; n <= 3; ++n) r.ev(0, n, "node.start", {{"algo", "berkeley"}});
    r.ev(1, 1, "clock.offset", {{"offset_us", 0}, {"rate_ppm", 0.0}});
    r.ev(1, 2, "clock.offset", {{"offset_us", 2000000}, {"rate_ppm", 50.0}});
    r.ev(1, 3, "clock.offset", {{"offset_us", -1000000}, {"rate_ppm", -20.0}});
    r.ev(100, 1, "clock.master", {{"epoch", 1}});
    r.ev(200, 1, "clock.round",
         {{"round", 1},
          {"epoch", 1},
          {"average_us", 333333},
          {"used", {1, 2, 3}},
          {"too_far", Json::array()},
          {"too_slow", Json::array()},
          {"missing", Json::array()}});
    r.ev(201, 1, "clock.adjust",
         {{"delta_us", 333333}, {"rate_ppm", 0.0}, {"mode", "slew"}, {"round", 1}, {"from", 1}});
    r.ev(201, 2, "clock.adjust",
         {{"delta_us", -1666567}, {"rate_ppm", 0.0}, {"mode", "step"}, {"round", 1}, {"from", 1}});
    r.ev(201, 3, "clock.adjust",
         {{"delta_us", 1333283}, {"rate_ppm", 0.0}, {"mode", "step"}, {"round", 1}, {"from", 1}});
    offsets(202, {1, 2, 3});
    r.ev(1200, 1, "clock.round",
         {{"round", 2}, {"epoch", 1}, {"average_us", 10}, {"used", {1, 2}}, {"too_far", {3}}});
    offsets(1500, {1, 2, 3});
    r.fault(2000, "kill", 1, 101);
    r.ev(2300, 3, "clock.master", {{"epoch", 2}});
    r.ev(2450, 3, "clock.round",
         {{"round", 1}, {"epoch", 2}, {"average_us", -5}, {"used", {2, 3}}});
    offsets(4000, {2, 3});
}

/// Lock service, replicas 1 and 2 (node 2 repeats what node 1 applied, a little later).
/// alice holds L (token 5) 200-1200 ms; bob waits from 300, gets L (token 7) at 1200 and
/// loses it to expiry at 2500; carol holds M (token 22) from 2700 to the end of the trace
/// (3000). Replica 1 is killed at 2000.
void locks(RunDir& r) {
    r.ev(0, 1, "node.start", {{"algo", "raft"}});
    r.ev(1, 2, "node.start", {{"algo", "raft"}});
    auto applied = [&](double ms, const std::string& ev, Json fields, bool both = true) {
        r.ev(ms, 1, ev, fields);
        if (both) r.ev(ms + 1, 2, ev, fields);
    };
    applied(100, "session.open",
            {{"session", 3}, {"client", "alice"}, {"ttl_ms", 2000}, {"index", 3}, {"term", 1}});
    applied(110, "session.open",
            {{"session", 4}, {"client", "bob"}, {"ttl_ms", 2000}, {"index", 4}, {"term", 1}});
    applied(200, "lock.grant",
            {{"lock", "L"},
             {"session", 3},
             {"client", "alice"},
             {"token", 5},
             {"index", 5},
             {"term", 1}});
    applied(300, "lock.queue",
            {{"lock", "L"}, {"session", 4}, {"pos", 1}, {"index", 6}, {"term", 1}});
    r.ev(1200, 1, "lock.release",
         {{"lock", "L"}, {"session", 3}, {"token", 5}, {"index", 7}, {"term", 1}});
    r.ev(1200, 1, "lock.grant",
         {{"lock", "L"},
          {"session", 4},
          {"client", "bob"},
          {"token", 7},
          {"index", 7},
          {"term", 1}});
    r.ev(1201, 2, "lock.release",
         {{"lock", "L"}, {"session", 3}, {"token", 5}, {"index", 7}, {"term", 1}});
    r.ev(1201, 2, "lock.grant",
         {{"lock", "L"},
          {"session", 4},
          {"client", "bob"},
          {"token", 7},
          {"index", 7},
          {"term", 1}});
    r.fault(2000, "kill", 1, 101);
    r.ev(2500, 2, "session.expire", {{"session", 4}, {"index", 20}, {"term", 2}});
    r.ev(2500, 2, "lock.expire",
         {{"lock", "L"}, {"session", 4}, {"token", 7}, {"index", 20}, {"term", 2}});
    r.ev(2600, 2, "session.open",
         {{"session", 21}, {"client", "carol"}, {"ttl_ms", 2000}, {"index", 21}, {"term", 2}});
    r.ev(2700, 2, "lock.grant",
         {{"lock", "M"},
          {"session", 21},
          {"client", "carol"},
          {"token", 22},
          {"index", 22},
          {"term", 2}});
    r.ev(3000, 2, "node.stop", {{"reason", "SIGTERM"}});
}

}  // namespace

// ---- narrate.py --------------------------------------------------------------------------

TEST_CASE(
    "scripts: narrate tells who declared the crashed leader dead, how many ms later, who won, "
    "and how long the cluster was leaderless",
    "[unit][scripts]") {
    RunDir run;
    bully_failover(run);
    run.ev(1450, 1, "peer.dead",
           {{"peer", 3}, {"silence_ms", 700}});  // again: only the first counts
    Scratch s;
    Result r = s.run("narrate.py " + run.path());
    REQUIRE(r.code == 0);
    CHECK(r.err.empty());
    CHECK(in_order(
        r.out,
        {
            "3 nodes started (3 process starts), algorithm bully.",
            "start-up",
            "node 3 won epoch 1 and named node 2 its backup",
            "all 3 nodes followed node 3 after 102.0 ms",
            "1000.0 ms] fault: kill node 3 (pid 103) — it was the leader (epoch 1, backup 2)",
            "node 1 declared node 3 dead after 350.0 ms (silent 600 ms)",
            "node 1 started an election (epoch 2): leader 3 dead — asking 2",
            "node 2 declared node 3 dead after 400.0 ms (silent 650.5 ms)",
            "node 2 started an election (epoch 2): leader 3 dead — asking nobody",
            "node 2 won epoch 2 and named node 1 its backup",
            "all 2 live nodes followed node 2 after 520.0 ms — the backup named before the fault",
            "the cluster was leaderless for 520.0 ms",
            "election messages sent in all: ELECTION 1, ANSWER 1, COORDINATOR 1",
            "2 node(s) stopped cleanly; 22 trace events in all.",
        }));
    CHECK_THAT(r.out, !Contains("dead after 450.0 ms"));
    CHECK_THAT(r.out, !Contains("-> node"));  // messages only with --messages
}

TEST_CASE("scripts: narrate --messages lists each election message with sender and addressee",
          "[unit][scripts]") {
    RunDir run;
    bully_failover(run);
    Scratch s;
    Result r = s.run("narrate.py " + run.path() + " --messages");
    REQUIRE(r.code == 0);
    CHECK(in_order(r.out,
                   {"node 1 -> node 2: ELECTION", "node 2 -> node 1: ANSWER (\"OK, I take over\")",
                    "node 2 -> node 1: COORDINATOR", "the cluster was leaderless for 520.0 ms"}));
}

TEST_CASE(
    "scripts: narrate without elections tells who suspected and declared each fault's target "
    "and what a paused node did on waking",
    "[unit][scripts]") {
    RunDir run;
    detection(run);
    Scratch s;
    Result r = s.run("narrate.py " + run.path());
    REQUIRE(r.code == 0);
    CHECK(in_order(r.out, {
                              "3 nodes started (3 process starts), algorithm none.",
                              "1000.0 ms] fault: kill node 2 (pid 202)",
                              "node 1 suspects node 2 after 300.0 ms (silent 300 ms)",
                              "node 3 suspects node 2 after 310.0 ms (silent 310 ms)",
                              "node 3 declares dead node 2 after 600.0 ms (silent 600 ms)",
                              "node 1 declares dead node 2 after 620.0 ms (silent 620 ms)",
                              "note: node 1 also declared node 3 dead",
                              "2000.0 ms] fault: pause node 3 (pid 303)",
                              "node 1 suspects node 3 after 300.0 ms (silent 300 ms)",
                              "nobody traced peer.dead for node 3 before the next fault",
                              "3000.0 ms] fault: resume node 3 (pid 303)",
                              "node 1 hears node 3 again after 50.0 ms",
                              "node 3 notices it was stalled for 1000 ms",
                              "node 3 declared 1 peer(s) dead after waking",
                              "0 node(s) stopped cleanly; 16 trace events in all.",
                          }));
}

TEST_CASE(
    "scripts: narrate of a Berkeley run gives the start offsets, each round, the first "
    "corrections and the end spread",
    "[unit][scripts]") {
    RunDir run;
    berkeley(run);
    Scratch s;
    Result r = s.run("narrate.py " + run.path());
    REQUIRE(r.code == 0);
    CHECK(in_order(
        r.out, {
                   "3 nodes started (3 process starts), algorithm berkeley.",
                   "Clocks at start (virtual minus real): 1 (Master) +0.000 ms, 2 +2.000000 s, 3 "
                   "-1.000000 s",
                   "Drift (ppm): 1 (Master) +0, 2 +50, 3 -20",
                   "Spread at start: 3.000000 s",
                   "100.0 ms] node 1 (Master) is master (bully epoch 1)",
                   "round 1 by 1 (Master): average +0.333333 s relative to the master; 3 clocks "
                   "used; spread after: 0.150 ms",
                   "round 2 by 1 (Master): average +0.010 ms relative to the master; 2 clocks "
                   "used; left out — too far from "
                   "the median: 3\n",
                   "2000.0 ms] fault: kill node 1 (Master) (pid 101)",
                   "2300.0 ms] node 3 is master (bully epoch 2)",
                   "round 1 by 3: average -0.005 ms relative to the master; 2 clocks used; spread "
                   "after: 0.150 ms",
                   "Round 1 corrections, each node its own delta:",
                   "1 (Master): +0.333333 s (slew)",
                   "2: -1.666567 s (step)",
                   "3: +1.333283 s (step)",
                   "At the end (virtual minus real): 2 +0.333433 s, 3 +0.333283 s; spread 0.150 ms",
               }));
}

TEST_CASE("scripts: narrate lists and skips trace lines of the wrong shape",
          "[unit][scripts][badinput]") {
    RunDir run;
    detection(run);
    // Had it been read, the first would say node 1 suspected node 2 after 200 ms.
    int bad1 = run.raw(
        "node1.jsonl",
        R"({"t":)" + std::to_string(kT0 + 1'200'000) +
            R"(,"node":1,"inc":1,"seq":99,"ev":"peer.suspect","peer":2,"silence_ms":"soon"})");
    int bad2 = run.raw("node1.jsonl", "this is not JSON");
    int bad3 = run.raw("node3.jsonl", "[1, 2, 3]");
    Scratch s;
    Result r = s.run("narrate.py " + run.path());
    REQUIRE(r.code == 0);
    for (auto [file, line] :
         {std::pair{"node1.jsonl", bad1}, {"node1.jsonl", bad2}, {"node3.jsonl", bad3}})
        CHECK_THAT(r.out, Contains("(unreadable or malformed trace line " + run.path() + "/" +
                                   file + ":" + std::to_string(line) + ", skipped)"));
    CHECK_THAT(r.out, Contains("node 1 suspects node 2 after 300.0 ms"));
    CHECK_THAT(r.out, !Contains("after 200.0 ms"));
    CHECK_THAT(r.out, Contains("16 trace events in all."));
}

TEST_CASE("scripts: narrate refuses a missing directory, an unknown option and an empty directory",
          "[unit][scripts][badinput]") {
    RunDir run;
    bully_failover(run);
    test::TempDir empty("ftbus-scripts-empty");
    Scratch s;
    check_refused(s.run("narrate.py " + run.path() + "/missing"), 2,
                  "narrate: " + run.path() + "/missing: no such file or directory");
    check_refused(s.run("narrate.py " + run.path() + " --bogus"), 2,
                  "narrate: unknown option --bogus");
    check_refused(s.run("narrate.py " + empty.path), 2, "narrate: no trace events");
    Result two = s.run("narrate.py " + run.path() + " " + empty.path);  // one RUN_DIR: the usage
    CHECK(two.code == 2);
    CHECK_THAT(two.out, Contains("usage: scripts/narrate.py RUN_DIR"));
    Result help = s.run("narrate.py --help");
    CHECK(help.code == 0);
    CHECK_THAT(help.out, Contains("usage: scripts/narrate.py RUN_DIR"));
}

// ---- leaders.py --------------------------------------------------------------------------

TEST_CASE(
    "scripts: leaders.py prints whom each node follows now, cleared by an election, a "
    "candidate role or a new incarnation",
    "[unit][scripts]") {
    RunDir run;
    for (int n = 1; n <= 4; ++n) run.ev(n - 1, n, "node.start", {{"algo", "bully"}});
    for (int n = 1; n <= 4; ++n) run.ev(100 + n, n, "leader", {{"leader", 3}, {"term", 1}});
    run.ev(200, 1, "election.start", {{"algo", "bully"}, {"term", 2}, {"reason", "leader 3 dead"}});
    run.ev(210, 2, "role", {{"role", "candidate"}, {"term", 2}});
    run.ev(220, 4, "role", {{"role", "follower"}, {"term", 1}});  // still follows 3
    run.ev(300, 3, "node.start", {{"algo", "bully"}}, 2);
    run.ev(310, 3, "leader", {{"leader", 3}, {"term", 1}});  // inc 1's last words: ignored
    // Of the wrong shape, skipped: had they been read, node 4 would follow "9" or nobody.
    run.raw("node4.jsonl", R"({"t":)" + std::to_string(kT0 + 500'000) +
                               R"(,"node":4,"inc":1,"seq":9,"ev":"leader","leader":"9","term":4})");
    run.raw("node4.jsonl", R"({"t":"later","node":4,"inc":1,"seq":10,"ev":"election.start"})");
    run.raw("node4.jsonl", "not JSON");
    Scratch s;
    Result all = s.run("leaders.py " + run.path());
    CHECK(all.code == 0);
    CHECK(all.out == "1 0\n2 0\n3 0\n4 3\n");
    Result some = s.run("leaders.py " + run.path() + " 4 1 7");
    CHECK(some.code == 0);
    CHECK(some.out == "4 3\n1 0\n7 0\n");  // in the order asked; 7 never started
}

TEST_CASE("scripts: leaders.py after a failover, and its refusals", "[unit][scripts][badinput]") {
    RunDir run;
    bully_failover(run);
    test::TempDir empty("ftbus-scripts-empty");
    Scratch s;
    Result r = s.run("leaders.py " + run.path() + " 1 2");
    CHECK(r.code == 0);
    CHECK(r.out == "1 2\n2 2\n");
    Result none = s.run("leaders.py " + empty.path + " 1");
    CHECK(none.code == 0);
    CHECK(none.out == "1 0\n");
    check_refused(s.run("leaders.py " + run.path() + "/missing"), 2,
                  "leaders: " + run.path() + "/missing: no such file or directory");
    check_refused(s.run("leaders.py " + run.path() + " --bogus"), 2,
                  "leaders: unknown option --bogus");
    check_refused(s.run("leaders.py " + run.path() + " two"), 2, "leaders: 'two' is not a node id");
    CHECK(s.run("leaders.py").code == 2);
}

// ---- failover.py -------------------------------------------------------------------------

TEST_CASE(
    "scripts: failover.py measures from the leader's kill to the survivors' agreement, the "
    "first detection and the election messages",
    "[unit][scripts]") {
    RunDir run;
    bully_failover(run);
    Scratch s;
    Result r = s.run("failover.py " + run.path());
    REQUIRE(r.code == 0);
    REQUIRE(std::count(r.out.begin(), r.out.end(), '\n') == 1);
    Json j = Json::parse(r.out);
    CHECK(j["fault_t"] == kT0 + 1'000'000);
    CHECK(j["old"] == 3);
    CHECK(j["new"] == 2);
    CHECK(j["failover_ms"].get<double>() == Approx(520.0));
    CHECK(j["first_notice_ms"].get<double>() == Approx(350.0));
    CHECK(j["messages"] == Json({{"ELECTION", 1}, {"ANSWER", 1}, {"COORDINATOR", 1}}));
    CHECK(j["sent"] == 3);
}

TEST_CASE(
    "scripts: failover.py reports every leader kill, with new null where the survivors never "
    "agreed",
    "[unit][scripts]") {
    RunDir run;
    failover_trials(run);
    run.fault(5500, "kill", 1, 101);  // not the leader (none is agreed): not measured
    Scratch s;
    Result r = s.run("failover.py " + run.path());
    REQUIRE(r.code == 0);
    std::vector<Json> res;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) res.push_back(Json::parse(line));
    REQUIRE(res.size() == 3);
    CHECK(res[0]["failover_ms"].get<double>() == Approx(250.0));
    CHECK(res[0]["first_notice_ms"].get<double>() == Approx(150.0));
    CHECK(res[0]["sent"] == 3);
    CHECK(res[1]["fault_t"] == kT0 + 3'000'000);
    CHECK(res[1]["failover_ms"].get<double>() == Approx(400.0));
    CHECK(res[1]["first_notice_ms"].get<double>() == Approx(300.0));
    CHECK(res[1]["messages"] == Json({{"ELECTION", 1}}));  // the unsent one counts
    CHECK(res[2]["new"].is_null());
    CHECK(res[2]["failover_ms"].is_null());
    CHECK(res[2]["sent"] == 1);
}

TEST_CASE("scripts: failover.py --summary gives min, median, mean, p99 and max over the trials",
          "[unit][scripts]") {
    RunDir run;
    failover_trials(run);
    Scratch s;
    Result r = s.run("failover.py " + run.path() + " --summary");
    REQUIRE(r.code == 0);
    // Trials of 250 and 400 ms (nearest-rank median: 250), 3 and 1 messages; the third never
    // agreed.
    CHECK(r.out ==
          "trials 2  min 250.0  median 250.0  mean 325.0  p99 400.0  max 400.0 ms;  election "
          "messages per "
          "failover: mean 2.0, min 1, max 3;  1 without agreement\n");
}

TEST_CASE("scripts: failover.py exit codes for missing, empty, unusable and fault-free traces",
          "[unit][scripts][badinput]") {
    RunDir run;
    bully_failover(run);
    test::TempDir empty("ftbus-scripts-empty");
    Scratch s;
    check_refused(s.run("failover.py " + run.path() + "/missing"), 2,
                  "failover: " + run.path() + "/missing: no such file or directory");
    check_refused(s.run("failover.py " + run.path() + " --bogus"), 2,
                  "failover: unknown option --bogus");
    check_refused(s.run("failover.py " + empty.path), 1,
                  "failover: no usable trace events in " + empty.path);
    CHECK(s.run("failover.py").code == 2);
    {
        RunDir junk;
        junk.raw("node1.jsonl", "not JSON");
        junk.raw("node1.jsonl", R"({"t":1,"node":1,"ev":"leader"})");  // no `leader`
        check_refused(s.run("failover.py " + junk.path()), 1,
                      "(2 line(s) unreadable or of the wrong shape)");
    }
    {
        RunDir calm;  // a leader, and no fault
        calm.ev(0, 1, "node.start", {{"algo", "bully"}});
        calm.ev(10, 1, "leader", {{"leader", 1}, {"term", 1}});
        check_refused(s.run("failover.py " + calm.path()), 1,
                      "failover: no fault events in " + calm.path());
    }
    {
        RunDir split;  // the one leader kill never ends in agreement: 1 follows 2, 2 follows 1
        for (int n = 1; n <= 3; ++n) split.ev(n - 1, n, "node.start", {{"algo", "bully"}});
        for (int n = 1; n <= 3; ++n) split.ev(10 + n, n, "leader", {{"leader", 3}, {"term", 1}});
        split.fault(1000, "kill", 3, 103);
        split.ev(1100, 1, "leader", {{"leader", 2}, {"term", 2}});
        split.ev(1200, 2, "leader", {{"leader", 1}, {"term", 2}});
        Result r = s.run("failover.py " + split.path() + " --summary");
        CHECK(r.code == 1);
        CHECK(r.out == "no measured failovers (1 without agreement)\n");
    }
}

// ---- clock-report.py ---------------------------------------------------------------------

TEST_CASE(
    "scripts: clock-report.py gives the start spread, the spread after round 1, the master "
    "failover and rounds with a clock too far",
    "[unit][scripts]") {
    RunDir run;
    berkeley(run);
    run.fault(3000, "kill", 2, 202);  // not the master (3): no failover to measure
    run.ev(3500, 3, "clock.round", {{"round", 2}, {"epoch", 2}, {"average_us", 0}, {"used", {3}}});
    Scratch s;
    Result r = s.run("clock-report.py " + run.path());
    REQUIRE(r.code == 0);
    CHECK(r.err.empty());
    CHECK(in_order(r.out, {
                              "nodes [1, 2, 3]\n",
                              "spread at start 3.000000 s; after round 1 150 us, 3 -, 10 - (each "
                              "just before the next round)",
                              "spread over a window: none — the run ends 3.8 s after round 1, "
                              "before the default window starts",
                              "master failover (kill -> next round by another node): 1 kills, min "
                              "450 median 450 max 450 ms",
                              "1 of 4 rounds left a clock out as too far from the median",
                          }));
}

TEST_CASE(
    "scripts: clock-report.py --json with a window from --from and nodes left out by "
    "--skip-nodes",
    "[unit][scripts]") {
    RunDir run;
    berkeley(run);
    Scratch s;
    Result r = s.run("clock-report.py " + run.path() + " --json --from 0.5");
    REQUIRE(r.code == 0);
    Json j = Json::parse(r.out);
    CHECK(j["nodes"] == Json({1, 2, 3}));
    CHECK(j["spread_start_us"] == 3000000);
    CHECK(j["spread_after_round_1_us"].get<double>() == Approx(150));
    CHECK(j["master_failover_ms"] == Json({450.0}));
    CHECK(j["rounds"] == 3);
    CHECK(j["rounds_with_too_far"] == 1);
    // From 0.5 s after the first sample (1 ms) to the last (4000 ms); nothing within 5 s of the
    // kill.
    CHECK(j["window_s"].get<double>() == Approx(3.5));
    CHECK(j["max_spread_in_window_us"].get<double>() == Approx(150));
    CHECK(j["p50_spread_in_window_us"].get<double>() == Approx(150));

    Result skip = s.run("clock-report.py " + run.path() + " --json --skip-nodes 3");
    REQUIRE(skip.code == 0);
    Json k = Json::parse(skip.out);
    CHECK(k["nodes"] == Json({1, 2}));
    CHECK(k["skipped"] == Json({3}));
    CHECK(k["spread_start_us"] == 2000000);
    CHECK(k["window_s"].is_null());  // the run is shorter than the default window
}

TEST_CASE("scripts: clock-report.py --plot writes each node's offsets over time",
          "[unit][scripts]") {
    RunDir run;
    berkeley(run);
    Scratch s;
    Result r = s.run("clock-report.py " + run.path() + " --plot " + s.file("clocks"));
    REQUIRE(r.code == 0);
    std::string dat = read_file(s.file("clocks.dat"));
    // Seconds since the first sample (1 ms), offsets in ms.
    CHECK_THAT(dat, Contains("# 1 (Master)\n0.000 0.000\n0.201 333.333\n1.499 333.333\n\n\n"));
    CHECK_THAT(dat,
               Contains("# 2\n0.000 2000.000\n0.201 333.433\n1.499 333.433\n3.999 333.433\n\n\n"));
    CHECK_THAT(dat, Contains("# 3\n0.000 -1000.000\n"));
    if (has_real_gnuplot()) CHECK_THAT(read_file(s.file("clocks.svg")), Contains("<svg"));
}

TEST_CASE(
    "scripts: clock-report.py refuses bad arguments and runs without clocks, and counts lines "
    "of the wrong shape",
    "[unit][scripts][badinput]") {
    RunDir run;
    berkeley(run);
    test::TempDir empty("ftbus-scripts-empty");
    Scratch s;
    check_refused(s.run("clock-report.py " + run.path() + "/missing"), 2,
                  "clock-report: " + run.path() + "/missing: no such directory");
    check_refused(s.run("clock-report.py " + run.path() + " --bogus"), 2,
                  "clock-report: unknown option --bogus");
    check_refused(s.run("clock-report.py " + run.path() + " --from -1"), 2,
                  "--from takes a number of seconds >= 0");
    check_refused(s.run("clock-report.py " + run.path() + " --from"), 2, "--from needs a value");
    check_refused(s.run("clock-report.py " + run.path() + " --skip-nodes a,b"), 2,
                  "--skip-nodes takes node ids separated by commas");
    check_refused(s.run("clock-report.py " + run.path() + " " + empty.path), 2, "one RUN_DIR only");
    check_refused(s.run("clock-report.py " + empty.path), 2,
                  "clock-report: no clock.offset events");
    check_refused(s.run("clock-report.py " + run.path() + " --skip-nodes 1,2,3"), 2,
                  "no clock.offset events");
    // Of the wrong shape: a spread from it would be 1 s at the start.
    int bad = run.raw("node2.jsonl",
                      R"({"t":)" + std::to_string(kT0) +
                          R"(,"node":2,"inc":1,"seq":0,"ev":"clock.offset","offset_us":"1s"})");
    Result r = s.run("clock-report.py " + run.path() + " --json");
    CHECK(r.code == 0);
    CHECK(Json::parse(r.out)["spread_start_us"] == 3000000);
    CHECK(r.err ==
          "clock-report: skipped 1 trace line(s) that are not JSON events of the expected shape "
          "(the first: " +
              run.path() + "/node2.jsonl:" + std::to_string(bad) + ")\n");
}

// ---- lamport-diagram.py ------------------------------------------------------------------

TEST_CASE(
    "scripts: lamport-diagram.py draws each matched message as an arrow, leader bands and "
    "marks",
    "[unit][scripts]") {
    RunDir run;
    bully_failover(run);
    Scratch s;
    Result r = s.run("lamport-diagram.py " + run.path() + " --out " + s.file("d.svg"));
    REQUIRE(r.code == 0);
    // Bands: 3 before the kill (node 3's ends at it, 1's and 2's at their elections), then
    // 1 and 2 follow 2 until they stop. Marks: 3 starts, the kill, 2 peer.dead.
    CHECK(r.out == s.file("d.svg") + ": 3 lanes, 3 arrows, 5 leader bands, 6 marks\n");
    std::string gp = read_file(s.file("d.gp"));
    // Sorted by type: ANSWER, COORDINATOR, ELECTION; rows are (x, lane, dx, dlane), ms.
    CHECK(data_block(gp, "msg0") == "1361.0 1 4.0 -1");
    CHECK(data_block(gp, "msg1") == "1501.0 1 4.0 -1");
    CHECK(data_block(gp, "msg2") == "1352.0 0 8.0 1");
    CHECK_THAT(gp, Contains("title 'ELECTION (1)'"));
    CHECK_THAT(gp, Contains("title 'follows 2'"));
    CHECK_THAT(gp, Contains("title 'follows 3'"));
    CHECK_THAT(data_block(gp, "fault"), Contains("1000.0 2 \"kill\""));
    CHECK_THAT(gp, Contains("3 nodes, 3 messages, 3001 ms"));
    if (has_real_gnuplot()) CHECK_THAT(read_file(s.file("d.svg")), Contains("<svg"));
}

TEST_CASE("scripts: lamport-diagram.py --timeline, --types and a --from/--to window",
          "[unit][scripts]") {
    RunDir run;
    bully_failover(run);
    Scratch s;
    std::string base = "lamport-diagram.py " + run.path() + " --out " + s.file("d.svg");
    Result timeline = s.run(base + " --timeline");
    CHECK(timeline.code == 0);
    CHECK_THAT(timeline.out, Contains(": 3 lanes, 0 arrows, 5 leader bands, 6 marks"));
    Result types = s.run(base + " --types ELECTION,COORDINATOR");
    CHECK(types.code == 0);
    CHECK_THAT(types.out, Contains(": 3 lanes, 2 arrows, 5 leader bands, 6 marks"));
    // 1300-1600 ms: every message; node 3's band (ended at 1000) and the marks before are out.
    Result window = s.run(base + " --from 1300 --to 1600");
    CHECK(window.code == 0);
    CHECK_THAT(window.out, Contains(": 3 lanes, 3 arrows, 4 leader bands, 2 marks"));
    CHECK(data_block(read_file(s.file("d.gp")), "msg2") == "52.0 0 8.0 1");  // ms since 1300
    Result nothing = s.run(base + " --from 5000 --to 6000");
    check_refused(nothing, 2, "lamport-diagram: nothing to draw in that window");
}

TEST_CASE(
    "scripts: lamport-diagram.py counts skipped lines and refuses missing, empty and "
    "node-less traces",
    "[unit][scripts][badinput]") {
    RunDir run;
    bully_failover(run);
    run.raw("node1.jsonl", R"({"t":)" + std::to_string(kT0 + 2'000'000) +
                               R"(,"node":1,"ev":"peer.dead"})");  // no peer
    run.raw("ctl.jsonl", "{\"t\":");
    Scratch s;
    std::string out = " --out " + s.file("d.svg");
    Result r = s.run("lamport-diagram.py " + run.path() + out);
    CHECK(r.code == 0);
    CHECK_THAT(r.out, Contains(": 3 lanes, 3 arrows, 5 leader bands, 6 marks"));  // no seventh mark
    CHECK(r.err ==
          "lamport-diagram: skipped 2 trace line(s) that are not JSON events of the expected shape "
          "(the "
          "first: " +
              run.path() + "/ctl.jsonl:2)\n");
    test::TempDir empty("ftbus-scripts-empty");
    check_refused(s.run("lamport-diagram.py " + empty.path + out), 2,
                  "lamport-diagram: no trace events");
    check_refused(s.run("lamport-diagram.py " + run.path() + "/missing" + out), 2,
                  "lamport-diagram: " + run.path() + "/missing: no such file or directory");
    RunDir ctl_only;
    ctl_only.fault(0, "kill", 1, 101);
    check_refused(s.run("lamport-diagram.py " + ctl_only.path() + out), 2,
                  "lamport-diagram: no node events");
    check_argparse_refused(s.run("lamport-diagram.py " + run.path() + out + " --bogus"),
                           "unrecognized arguments: --bogus");
    check_argparse_refused(s.run("lamport-diagram.py " + run.path() + out + " --width 50"),
                           "--width must be at least 100 pixels");
    check_argparse_refused(s.run("lamport-diagram.py " + run.path() + out + " --from soon"),
                           "argument --from");
}

// ---- lock-holders.py ---------------------------------------------------------------------

TEST_CASE(
    "scripts: lock-holders.py draws each hold once, in order, with waits, expiries and faults",
    "[unit][scripts]") {
    RunDir run;
    locks(run);
    Scratch s;
    Result r = s.run("lock-holders.py " + run.path() + " --out " + s.file("h.svg"));
    REQUIRE(r.code == 0);
    CHECK(r.out == s.file("h.svg") + ": 3 holds by 3 clients, 1 waits, 1 faults\n");
    std::string gp = read_file(s.file("h.gp"));
    // Rows: (from ms, client row, length ms, 0); alice 0, bob 1, carol 2.
    CHECK(data_block(gp, "held") == "200.0 0 1000.0 0\n2700.0 2 300.0 0");
    CHECK(data_block(gp, "expired") == "1200.0 1 1300.0 0");
    CHECK(data_block(gp, "waits") == "300.0 1 900.0 0");
    CHECK(data_block(gp, "labels") ==
          "700.0 0.3 \"L #5\"\n1850.0 1.3 \"L #7\"\n2850.0 2.3 \"M #22\"");
    CHECK(data_block(gp, "faults") == "2000.0 -0.6 \"kill 1\"");
    CHECK_THAT(gp, Contains("set ytics (\"alice\" 0, \"bob\" 1, \"carol\" 2)"));
    if (has_real_gnuplot()) CHECK_THAT(read_file(s.file("h.svg")), Contains("<svg"));
}

TEST_CASE("scripts: lock-holders.py shows two overlapping holds of one lock as two bars",
          "[unit][scripts]") {
    RunDir run;
    run.ev(0, 1, "node.start", {{"algo", "raft"}});
    run.ev(100, 1, "session.open", {{"session", 3}, {"client", "alice"}, {"index", 3}});
    run.ev(110, 1, "session.open", {{"session", 4}, {"client", "bob"}, {"index", 4}});
    run.ev(200, 1, "lock.grant", {{"lock", "L"}, {"session", 3}, {"token", 5}, {"index", 5}});
    run.ev(500, 1, "lock.grant",
           {{"lock", "L"}, {"session", 4}, {"token", 6}, {"index", 6}});  // while 3 holds it
    run.ev(800, 1, "lock.release", {{"lock", "L"}, {"session", 3}, {"token", 5}, {"index", 7}});
    run.ev(1000, 1, "lock.release", {{"lock", "L"}, {"session", 4}, {"token", 6}, {"index", 8}});
    Scratch s;
    Result r = s.run("lock-holders.py " + run.path() + " --out " + s.file("h"));
    REQUIRE(r.code == 0);
    CHECK(r.out == s.file("h") + ".svg: 2 holds by 2 clients, 0 waits, 0 faults\n");
    std::string gp = read_file(s.file("h.gp"));
    CHECK(data_block(gp, "held") == "200.0 0 600.0 0\n500.0 1 500.0 0");  // 500-800 ms: both
    CHECK(data_block(gp, "labels") == "500.0 0.3 \"L #5\"\n750.0 1.3 \"L #6\"");
}

TEST_CASE(
    "scripts: lock-holders.py refuses traces without grants and bad arguments, and counts "
    "skipped lines",
    "[unit][scripts][badinput]") {
    RunDir run;
    locks(run);
    RunDir elect;
    bully_failover(elect);
    test::TempDir empty("ftbus-scripts-empty");
    Scratch s;
    std::string out = " --out " + s.file("h.svg");
    check_refused(s.run("lock-holders.py " + elect.path() + out), 2,
                  "lock-holders: no lock grants in the traces");
    check_refused(s.run("lock-holders.py " + empty.path + out), 2, "lock-holders: no trace events");
    check_refused(s.run("lock-holders.py " + run.path() + "/missing" + out), 2,
                  "lock-holders: " + run.path() + "/missing: no such file or directory");
    check_refused(s.run("lock-holders.py " + run.path() + " --out " + s.file("no/such/dir/h.svg")),
                  1, "lock-holders: cannot write " + s.file("no/such/dir/h.gp"));
    check_argparse_refused(s.run("lock-holders.py " + run.path() + out + " --bogus"),
                           "unrecognized arguments: --bogus");
    check_argparse_refused(s.run("lock-holders.py " + run.path() + out + " --width 99"),
                           "--width must be at least 100 pixels");
    // A grant without its lock is of the wrong shape: skipped, not a fourth hold.
    int bad = run.raw("node1.jsonl",
                      R"({"t":)" + std::to_string(kT0 + 2'800'000) +
                          R"(,"node":1,"ev":"lock.grant","session":3,"token":30,"index":30})");
    Result r = s.run("lock-holders.py " + run.path() + out);
    CHECK(r.code == 0);
    CHECK_THAT(r.out, Contains(": 3 holds by 3 clients"));
    CHECK(r.err ==
          "lock-holders: skipped 1 trace line(s) that are not JSON events of the expected shape "
          "(the first: " +
              run.path() + "/node1.jsonl:" + std::to_string(bad) + ")\n");
}

// ---- plot-failover.py --------------------------------------------------------------------

TEST_CASE("scripts: plot-failover.py tabulates each configuration and writes its CDF points",
          "[unit][scripts]") {
    RunDir one, trials;
    bully_failover(one);
    failover_trials(trials);
    Scratch s;
    Result r = s.run("plot-failover.py --title T --out " + s.file("fo") + " crash=" + one.path() +
                     " trials=" + trials.path());
    REQUIRE(r.code == 0);
    // label, trials, min, median, mean, p99, max, without agreement
    CHECK(words_of_line(r.out, "crash") ==
          std::vector<std::string>{"crash", "1", "520.0", "520.0", "520.0", "520.0", "520.0", "0"});
    CHECK(words_of_line(r.out, "trials") == std::vector<std::string>{"trials", "2", "250.0",
                                                                     "250.0", "325.0", "400.0",
                                                                     "400.0", "1"});
    CHECK(read_file(s.file("fo.dat")) ==
          "# crash\n520.000 1.0000\n\n\n# trials\n250.000 0.5000\n400.000 1.0000\n\n\n");
    if (has_real_gnuplot()) CHECK_THAT(read_file(s.file("fo.svg")), Contains("<svg"));
}

TEST_CASE("scripts: plot-failover.py refuses bad arguments and says when no failover was measured",
          "[unit][scripts][badinput]") {
    RunDir one;
    bully_failover(one);
    test::TempDir empty("ftbus-scripts-empty");
    Scratch s;
    std::string out = " --out " + s.file("fo");
    check_refused(s.run("plot-failover.py" + out + " " + one.path()), 2,
                  "'" + one.path() + "' is not LABEL=DIR");
    check_refused(s.run("plot-failover.py" + out + " =" + one.path()), 2, "is not LABEL=DIR");
    check_refused(s.run("plot-failover.py" + out + " a=" + one.path() + "/missing"), 2,
                  "plot-failover: " + one.path() + "/missing: no such file or directory");
    check_refused(s.run("plot-failover.py --bogus a=" + one.path()), 2,
                  "plot-failover: unknown option --bogus");
    check_refused(s.run("plot-failover.py a=" + one.path() + " --out"), 2,
                  "plot-failover: --out needs a value");
    Result none = s.run("plot-failover.py");
    CHECK(none.code == 2);
    CHECK_THAT(none.out, Contains("usage: scripts/plot-failover.py"));
    Result nothing = s.run("plot-failover.py" + out + " idle=" + empty.path);
    check_refused(nothing, 1, "plot-failover: no failover measured in any configuration");
    CHECK(words_of_line(nothing.out, "idle") ==
          std::vector<std::string>{"idle", "0", "-", "-", "-", "-", "-", "0"});
}

// ---- gen-cluster -------------------------------------------------------------------------

TEST_CASE(
    "scripts: gen-cluster writes a cluster file the programs accept, with its ports, names, "
    "priorities and tunables",
    "[unit][scripts]") {
    Scratch s;
    Result r = s.run(
        "gen-cluster 3 --base-port 7300 --names 'KMC,B\"x\\y' --priorities 5,,-2 --heartbeat 50ms "
        "--suspect-after 200ms --dead-after 1s --join-wait 0.5s --detector phi --preempt false");
    REQUIRE(r.code == 0);
    CHECK(r.err.empty());
    CHECK_THAT(r.out, Contains("# ftbus cluster file: 3 nodes on 127.0.0.1 (scripts/gen-cluster)"));
    bus::ClusterConfig c = bus::parse_cluster(r.out, "gen-cluster");
    REQUIRE(c.nodes.size() == 3);
    for (int i = 0; i < 3; ++i) {
        const bus::NodeSpec& n = c.nodes[static_cast<size_t>(i)];
        CHECK(n.id == bus::NodeId(i + 1));
        CHECK(n.host == "127.0.0.1");
        CHECK(n.pub == 7300 + 10 * i);
        CHECK(n.peer == 7301 + 10 * i);
        CHECK(n.client == 7302 + 10 * i);
        CHECK(n.control == 7303 + 10 * i);
    }
    CHECK(c.nodes[0].name == "KMC");
    CHECK(c.nodes[1].name == "B\"x\\y");  // escaped in TOML, read back as given
    CHECK(c.nodes[2].name.empty());
    CHECK(c.nodes[0].priority == 5);
    CHECK(c.nodes[1].priority == 0);
    CHECK(c.nodes[2].priority == -2);
    CHECK(c.tunables.heartbeat == 50ms);
    CHECK(c.tunables.suspect_after == 200ms);
    CHECK(c.tunables.dead_after == 1s);
    CHECK(c.tunables.join_wait == 500ms);
    CHECK(c.tunables.detector == "phi");
    CHECK_FALSE(c.tunables.preempt);
    CHECK(c.tunables.answer_timeout == 200ms);  // not given: the default

    Result host = s.run("gen-cluster 1 --host 10.0.0.5");
    REQUIRE(host.code == 0);
    bus::ClusterConfig h = bus::parse_cluster(host.out, "gen-cluster");
    REQUIRE(h.nodes.size() == 1);
    CHECK(h.nodes[0].host == "10.0.0.5");
    CHECK(h.nodes[0].pub == 7100);                 // the default base port
    CHECK_THAT(host.out, !Contains("[cluster]"));  // no tunables given

    Result help = s.run("gen-cluster --help");
    CHECK(help.code == 0);
    CHECK_THAT(help.out, Contains("scripts/gen-cluster N [--base-port P]"));
}

TEST_CASE(
    "scripts: gen-cluster refuses a duration without a unit, a zero heartbeat, a heartbeat "
    "not below suspect_after and a bad host",
    "[unit][scripts][badinput]") {
    Scratch s;
    auto refused = [&](const std::string& args, const std::string& says) {
        Result r = s.run("gen-cluster " + args);
        INFO(args);
        check_refused(r, 2, "gen-cluster: " + says);
        CHECK(r.out.empty());  // never half a file
    };
    refused("3 --heartbeat 100",
            "--heartbeat 100: cluster.heartbeat must be a duration with a unit");
    refused("3 --suspect-after 1.5",
            "--suspect-after 1.5: cluster.suspect_after must be a duration with a unit");
    refused("3 --heartbeat 0ms", "cluster.heartbeat must be positive");
    refused("3 --heartbeat 300ms",
            "cluster.suspect_after must be longer than cluster.heartbeat (--heartbeat 300ms; "
            "suspect_after 300ms by "
            "default)");
    refused("3 --heartbeat 400ms --suspect-after 300ms",
            "cluster.suspect_after must be longer than cluster.heartbeat (--heartbeat 400ms; "
            "--suspect-after 300ms)");
    refused("3 --dead-after 200ms",
            "cluster.dead_after must not be shorter than cluster.suspect_after");
    refused("3 --host 'bad host'", "--host: 'bad host' is not an IPv4 address");
    refused("3 --host '[::1'", "--host: '[::1' is not an IPv4 address");
    refused("3 --host localhost", "--host: 'localhost' is not an IPv4 address (a node binds its host");
    refused("3 --host 10.0.0.256", "--host: '10.0.0.256' is not an IPv4 address");
    refused("3 --host", "--host needs a value");
    refused("0", "N must be 1..500");
    refused("3 4", "one N only");
    refused("3 --bogus", "unknown option --bogus");
    refused("3 --priorities 1,x", "--priorities: 'x' must be an integer");
    refused("3 --detector chi", "--detector takes fixed or phi");
    refused("3 --base-port 80", "--base-port must be a number >= 1024");
}

// ---- All of them -------------------------------------------------------------------------

TEST_CASE("scripts: integers beyond 64 bits are skipped as the wrong shape, never a traceback",
          "[unit][scripts][badinput]") {
    // Nodes 1 and 2 follow 2; 2 is killed at 1000 ms; node 1 follows itself at 1300. A forged
    // peer.dead dated 10^400 µs (too large for a float) and an offset of 10^400 µs must be
    // skipped: read, they overflowed every script's arithmetic.
    RunDir run;
    for (int n = 1; n <= 2; ++n) {
        run.ev(0, n, "node.start", {{"algo", "bully"}});
        run.ev(0, n, "clock.offset", {{"offset_us", 5 * (n - 1)}});
        run.ev(10, n, "leader", {{"leader", 2}, {"term", 1}});
    }
    run.ev(500, 1, "lock.grant", {{"lock", "L"}, {"session", 3}, {"token", 4}, {"index", 4}});
    run.fault(1000, "kill", 2, 202);
    run.raw("node1.jsonl",
            R"({"t":)" + kHuge + R"(,"node":1,"inc":1,"seq":50,"ev":"peer.dead","peer":2})");
    run.raw("node2.jsonl", R"({"t":)" + std::to_string(kT0 + 100'000) +
                               R"(,"node":2,"inc":1,"seq":50,"ev":"clock.offset","offset_us":)" +
                               kHuge + "}");
    run.ev(1300, 1, "leader", {{"leader", 1}, {"term", 2}});
    Scratch s;
    std::string dir = " " + run.path();

    Result narrate = s.run("narrate.py" + dir);
    CHECK(narrate.code == 0);
    CHECK_THAT(narrate.out, Contains("the cluster was leaderless for 300.0 ms"));
    Result fo = s.run("failover.py" + dir);
    REQUIRE(fo.code == 0);
    Json j = Json::parse(fo.out);
    CHECK(j["failover_ms"].get<double>() == Approx(300.0));
    CHECK(j["first_notice_ms"].is_null());
    Result plot = s.run("plot-failover.py --out " + s.file("fo") + " a=" + run.path());
    CHECK(plot.code == 0);
    CHECK(words_of_line(plot.out, "a") ==
          std::vector<std::string>{"a", "1", "300.0", "300.0", "300.0", "300.0", "300.0", "0"});
    Result lamport = s.run("lamport-diagram.py" + dir + " --out " + s.file("d.svg"));
    CHECK(lamport.code == 0);
    CHECK_THAT(lamport.err, Contains("skipped 2 trace line(s)"));
    Result holders = s.run("lock-holders.py" + dir + " --out " + s.file("h.svg"));
    CHECK(holders.code == 0);
    CHECK(data_block(read_file(s.file("h.gp")), "held") ==
          "500.0 0 800.0 0");  // to the last event, 1300 ms
    Result clocks = s.run("clock-report.py" + dir + " --json");
    REQUIRE(clocks.code == 0);
    CHECK(Json::parse(clocks.out)["spread_start_us"] == 5);
    CHECK_THAT(clocks.err, Contains("clock-report: skipped 2 trace line(s)"));
    Result leaders = s.run("leaders.py" + dir);
    CHECK(leaders.code == 0);
    CHECK(leaders.out == "1 1\n2 2\n");
}
