// Integration: the lock service with real processes on 127.0.0.1 — three ftbus-lockd
// replicas with their own data directories, and ftbus-lock clients — through seed 004's
// failure cases: a client dies holding the lock; a single server fails with the lock free
// and held; the leader is killed during appends; replicas restart and catch up; the whole
// cluster restarts with a lock held and queued; a duplicated request; and the ftbus-lock
// command line and bad input at the client port.
// Every wait is for a condition with a generous deadline.
#include <catch2/catch.hpp>
#include <csignal>
#include <sys/resource.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <zmq.hpp>

#include "bus/lock_client.hpp"
#include "bus/raft_storage.hpp"
#include "harness.hpp"

using test::Cluster;

namespace {

const char* kLoose = "--heartbeat 50ms --suspect-after 500ms --dead-after 1s --startup-grace 3s";

std::string bin(const std::string& p) { return std::string(FTBUS_BIN_DIR) + "/" + p; }

std::vector<std::string> lockd_args(const Cluster& c, int id) {
    return {"--data", c.dir() + "/data" + std::to_string(id), "--election-timeout", "300ms-600ms", "--raft-heartbeat",
            "50ms"};
}

void start(Cluster& c, int id) { c.start(id, lockd_args(c, id), "ftbus-lockd"); }

/// `ftbus-lock status` as JSON (null if it failed).
bus::Json status(const Cluster& c) {
    std::string out;
    if (test::run_command(bin("ftbus-lock") + " --timeout 2s --cluster " + c.cluster_file() + " status 2>/dev/null", &out) != 0)
        return nullptr;
    bus::Json j = bus::Json::parse(out, nullptr, false);
    return j.is_discarded() ? bus::Json(nullptr) : j;
}

std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<bus::Json> events(const std::string& path) {
    std::vector<bus::Json> out;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        bus::Json j = bus::Json::parse(line, nullptr, false);
        if (!j.is_discarded()) out.push_back(j);
    }
    return out;
}

/// Waits (30 s at most) until the service answers `status` (a leader serves).
bool serving(const Cluster& c) {
    return Cluster::wait_for([&] { return !status(c).is_null(); }, 30);
}

/// Starts replicas `ids` and waits until the service serves.
bool start_all(Cluster& c, const std::vector<int>& ids = {1, 2, 3}) {
    for (int id : ids) start(c, id);
    return serving(c);
}

/// The fencing token a command wrote to `path` (`echo $FTBUS_TOKEN > path`).
uint64_t token_in(const std::string& path) {
    std::string t = slurp(path);
    REQUIRE_FALSE(t.empty());
    return std::stoull(t);
}

/// Waits (30 s at most) until `lock` has a holder: the status then, or null.
bus::Json wait_held(const Cluster& c, const std::string& lock) {
    bus::Json s;
    bool held = Cluster::wait_for([&] {
        s = status(c);
        return !s.is_null() && s["locks"].contains(lock) && !s["locks"][lock]["holder"].is_null();
    }, 30);
    return held ? s : bus::Json(nullptr);
}

/// Waits (30 s at most) until `n` sessions wait for `lock`.
bool wait_waiters(const Cluster& c, const std::string& lock, size_t n) {
    return Cluster::wait_for([&] {
        bus::Json s = status(c);
        return !s.is_null() && s["locks"].contains(lock) && s["locks"][lock]["waiters"].size() == n;
    }, 30);
}

int leader_of(const Cluster& c, const std::vector<int>& ids) {
    for (int id : ids) {
        int l = test::current_leader(c.events(id));
        if (l != 0) return l;
    }
    return 0;
}

}  // namespace

TEST_CASE("lock service: a client dies holding the lock — its lease expires and the next waiter gets it with a "
          "higher token",
          "[integration][lock]") {
    Cluster c(3, kLoose);
    REQUIRE(start_all(c));
    std::string F = c.cluster_file();
    // A holds L with a 1 s lease, running a command that lives as long as A does.
    c.spawn(-1, "ftbus-lock",
            {"--cluster", F, "--ttl", "1s", "--trace", c.dir() + "/a.jsonl", "hold", "L", "--", "sh", "-c",
             "while kill -0 $PPID 2>/dev/null; do sleep 0.1; done"},
            c.dir() + "/a.out");
    REQUIRE_FALSE(wait_held(c, "L").is_null());
    // B queues for it.
    c.spawn(-2, "ftbus-lock",
            {"--cluster", F, "--ttl", "1s", "--trace", c.dir() + "/b.jsonl", "hold", "L", "--wait", "60s", "--", "sh",
             "-c", "echo $FTBUS_TOKEN > " + c.dir() + "/b.token"},
            c.dir() + "/b.out");
    REQUIRE(wait_waiters(c, "L", 1));
    c.signal(-1, SIGKILL, "kill");  // A dies with the lock
    CHECK(c.wait_exit(-2, 60) == 0);  // B got it (after A's lease ran out), ran, released
    uint64_t token_a = 0;
    for (auto& e : events(c.dir() + "/a.jsonl"))
        if (e["ev"] == "lock.acquired") token_a = e["token"].get<uint64_t>();
    CHECK(token_in(c.dir() + "/b.token") > token_a);
    size_t expired = 0;
    for (int id : {1, 2, 3}) expired += test::count_events(c.events(id), "lock.expire");
    CHECK(expired == 3);  // applied by every replica
    CHECK(c.stop_all({1, 2, 3}));
    CHECK(test::check_traces(c).rfind("0: ok", 0) == 0);
}

TEST_CASE("lock service: the leader is killed during appends — every acknowledged line is in the file exactly once, "
          "in order, on every replica — the killed replica catches up, and so does a follower restarted after missing "
          "appends — the whole cluster restarts hard and keeps the file, a held lock and its queue",
          "[integration][lock]") {
    Cluster c(3, kLoose);
    REQUIRE(start_all(c));
    std::string F = c.cluster_file();
    const int kLines = 60;
    std::string writer = "for i in $(seq 1 " + std::to_string(kLines) + "); do " + bin("ftbus-lock") +
                         " --trace " + c.dir() + "/w.jsonl append out.txt \"line $i\n\" >/dev/null || exit 1; sleep 0.02; done";
    c.spawn(-1, "ftbus-lock", {"--cluster", F, "--ttl", "3s", "hold", "F", "--", "sh", "-c", writer}, c.dir() + "/w.out");
    auto file_bytes = [&] {
        bus::Json s = status(c);
        return s.is_null() || !s["files"].contains("out.txt") ? uint64_t{0} : s["files"]["out.txt"]["bytes"].get<uint64_t>();
    };
    REQUIRE(Cluster::wait_for([&] { return file_bytes() >= 100; }, 30));
    int leader = leader_of(c, {1, 2, 3});
    REQUIRE(leader != 0);
    c.kill(leader);
    CHECK(c.wait_exit(-1, 90) == 0);  // every append acknowledged, through the failover
    std::string expected;
    for (int i = 1; i <= kLines; ++i) expected += "line " + std::to_string(i) + "\n";
    size_t acks = 0;
    for (auto& e : events(c.dir() + "/w.jsonl")) acks += e["ev"] == "rpc.ack";
    CHECK(acks == kLines);
    start(c, leader);  // back: it catches up from the new leader
    auto file_of = [&](int id) { return slurp(c.dir() + "/data" + std::to_string(id) + "/files/out.txt"); };
    CHECK(Cluster::wait_for([&] { return file_of(1) == expected && file_of(2) == expected && file_of(3) == expected; }, 30));

    // A follower is down while more lines are appended; back, it catches up.
    int now_leader = 0;
    REQUIRE(Cluster::wait_for([&] { return (now_leader = leader_of(c, {1, 2, 3})) != 0; }, 30));
    int follower = now_leader == 1 ? 2 : 1;
    c.kill(follower);
    std::string more = "for i in $(seq 1 10); do " + bin("ftbus-lock") + " append out.txt \"more $i\n\" >/dev/null || exit 1; done";
    CHECK(test::run_command(bin("ftbus-lock") + " --cluster " + F + " hold F -- sh -c '" + more + "'") == 0);
    for (int i = 1; i <= 10; ++i) expected += "more " + std::to_string(i) + "\n";
    CHECK(file_of(follower) != expected);  // it missed them
    start(c, follower);
    CHECK(Cluster::wait_for([&] { return file_of(1) == expected && file_of(2) == expected && file_of(3) == expected; }, 30));

    // A lock is held, another client waits for it, and the whole cluster goes down hard.
    std::string go = c.dir() + "/go";
    c.spawn(-2, "ftbus-lock",
            {"--cluster", F, "--ttl", "20s", "--trace", c.dir() + "/h.jsonl", "hold", "H", "--", "sh", "-c",
             "for i in $(seq 1200); do [ -e " + go + " ] && exit 0; sleep 0.05; done; exit 1"},
            c.dir() + "/h.out");
    bus::Json held = wait_held(c, "H");
    REQUIRE_FALSE(held.is_null());
    c.spawn(-3, "ftbus-lock",
            {"--cluster", F, "--ttl", "20s", "hold", "H", "--wait", "60s", "--", "sh", "-c",
             "echo $FTBUS_TOKEN > " + c.dir() + "/next.token"},
            c.dir() + "/next.out");
    REQUIRE(wait_waiters(c, "H", 1));
    held = status(c);
    for (int id : {1, 2, 3}) c.kill(id);
    for (int id : {1, 2, 3}) start(c, id);
    bus::Json s;
    REQUIRE(Cluster::wait_for([&] { return !(s = status(c)).is_null(); }, 30));
    CHECK(s["files"]["out.txt"]["bytes"].get<uint64_t>() == expected.size());
    CHECK(s["files"]["out.txt"]["crc32c"].get<uint64_t>() == bus::crc32c(expected));
    CHECK(s["files"]["out.txt"]["lock"] == "F");
    for (int id : {1, 2, 3}) CHECK(file_of(id) == expected);
    CHECK(s["locks"]["H"] == held["locks"]["H"]);  // the same holder, token and queue
    { std::ofstream(go) << "go\n"; }
    CHECK(c.wait_exit(-2, 30) == 0);  // it kept the lock through the outage (its lease: 20 s)
    CHECK(c.wait_exit(-3, 30) == 0);  // and the waiter got it next
    CHECK(token_in(c.dir() + "/next.token") > held["locks"]["H"]["holder"]["token"].get<uint64_t>());
    size_t lost = 0;
    for (auto& e : events(c.dir() + "/h.jsonl")) lost += e["ev"] == "lock.lost";
    CHECK(lost == 0);
    CHECK(c.stop_all({1, 2, 3}));
    CHECK(test::check_traces(c).rfind("0: ok", 0) == 0);
}

TEST_CASE("lock service: five replicas — with two down, the leader among them, locks and appends go on, with "
          "three down there is no majority and a client says so, with one back, it goes on with everything kept",
          "[integration][lock]") {
    Cluster c(5, kLoose);
    const std::vector<int> all = {1, 2, 3, 4, 5};
    REQUIRE(start_all(c, all));
    std::string F = c.cluster_file(), L = bin("ftbus-lock");
    auto hold_append = [&](const std::string& data) {
        return test::run_command(L + " --cluster " + F + " hold L -- " + L + " append out.txt '" + data + "' >/dev/null");
    };
    REQUIRE(hold_append("one;") == 0);
    int leader = 0;
    REQUIRE(Cluster::wait_for([&] { return (leader = leader_of(c, all)) != 0; }, 30));
    int other = leader == 1 ? 2 : 1;
    c.kill(leader);
    c.kill(other);
    CHECK(hold_append("two;") == 0);  // (its --timeout, 10 s, covers the election)
    std::vector<int> up;
    for (int id : all)
        if (id != leader && id != other) up.push_back(id);
    c.kill(up[0]);  // two of five left
    std::string out;
    CHECK(test::run_command(L + " --cluster " + F + " --timeout 2s status 2>&1", &out) == 1);
    CHECK_THAT(out, Catch::Matchers::Contains("majority"));
    start(c, leader);  // three of five
    bus::Json s;
    REQUIRE(Cluster::wait_for([&] { return !(s = status(c)).is_null(); }, 30));
    CHECK(s["files"]["out.txt"]["bytes"] == 8);
    CHECK(hold_append("three;") == 0);
    auto file_of = [&](int id) { return slurp(c.dir() + "/data" + std::to_string(id) + "/files/out.txt"); };
    CHECK(Cluster::wait_for([&] {
        return file_of(leader) == "one;two;three;" && file_of(up[1]) == "one;two;three;" && file_of(up[2]) == "one;two;three;";
    }, 30));
    CHECK(c.stop_all({leader, up[1], up[2]}));
    CHECK(test::check_traces(c).rfind("0: ok", 0) == 0);
}

TEST_CASE("lock service: a duplicated request is applied once — the retry gets the first answer, from the same "
          "leader and from the next one, a stale token is refused and changes nothing",
          "[integration][lock]") {
    Cluster c(3, kLoose);
    REQUIRE(start_all(c));
    bus::ClusterConfig cfg = bus::load_cluster(c.cluster_file());
    bus::LockClient client(cfg);
    client.open();
    uint64_t token = client.acquire("D", std::chrono::seconds(10));
    REQUIRE(token != 0);
    bus::LockRequest r;
    r.req = 4242424242424242;  // later than any number the client used
    r.op = "append";
    r.session = client.session();
    r.lock = "D";
    r.token = token;
    r.file = "dup.txt";
    r.data = "exactly once\n";
    bus::LockReplyMsg first = client.call(r, std::chrono::seconds(10));
    bus::LockReplyMsg again = client.call(r, std::chrono::seconds(10));
    CHECK(first.status == "appended");
    CHECK(again.status == first.status);
    CHECK(again.offset == first.offset);
    // Applied, then its leader dies: the retry, answered by the next leader, is not applied again.
    r.req += 1;
    r.data = "once more\n";
    bus::LockReplyMsg before = client.call(r, std::chrono::seconds(10));
    REQUIRE(before.status == "appended");
    int leader = leader_of(c, {1, 2, 3});
    REQUIRE(leader != 0);
    c.kill(leader);
    bus::LockReplyMsg after = client.call(r, std::chrono::seconds(20));
    CHECK(after.status == "appended");
    CHECK(after.offset == before.offset);
    r.req += 1;
    r.token = token - 1;
    r.data = "stale\n";
    bus::LockReplyMsg stale = client.call(r, std::chrono::seconds(10));
    CHECK(stale.status == "rejected");
    CHECK(stale.error == "you do not hold the lock");
    bus::Json s = status(c);
    CHECK(s["files"]["dup.txt"]["bytes"].get<uint64_t>() == std::string("exactly once\nonce more\n").size());
    // Another client that gives up waiting for D leaves its queue.
    bus::LockClient other(cfg);
    other.open();
    CHECK(other.acquire("D", std::chrono::milliseconds(200)) == 0);
    s = status(c);
    CHECK(s["locks"]["D"]["waiters"].empty());
    other.close();
    client.close();
    std::vector<int> others;
    for (int id : {1, 2, 3})
        if (id != leader) others.push_back(id);
    CHECK(c.stop_all(others));
}

TEST_CASE("lock service: a single server fails — with the lock free, the next acquire works, with it held, the "
          "holder keeps it through the failover and the waiter gets it after",
          "[integration][lock]") {
    Cluster c(3, kLoose);
    REQUIRE(start_all(c));
    std::string F = c.cluster_file();
    auto hold_true = [&] {
        return test::run_command(bin("ftbus-lock") + " --cluster " + F + " --timeout 10s hold L --wait 10s -- true") == 0;
    };
    // The lock is free; the leader dies; the next acquire works once a new leader is up.
    int leader = leader_of(c, {1, 2, 3});
    REQUIRE(leader != 0);
    c.kill(leader);
    CHECK(hold_true());
    start(c, leader);
    REQUIRE(serving(c));
    // The lock is held (6 s lease) by a command that waits for a file; the leader dies.
    std::string go = c.dir() + "/go";
    c.spawn(-1, "ftbus-lock",
            {"--cluster", F, "--ttl", "6s", "--trace", c.dir() + "/h.jsonl", "hold", "L", "--", "sh", "-c",
             "for i in $(seq 1200); do [ -e " + go + " ] && exit 0; sleep 0.05; done; exit 1"},
            c.dir() + "/h.out");
    bus::Json held = wait_held(c, "L");
    REQUIRE_FALSE(held.is_null());
    // A waiter queues behind it.
    c.spawn(-2, "ftbus-lock",
            {"--cluster", F, "--ttl", "6s", "--trace", c.dir() + "/w.jsonl", "hold", "L", "--wait", "60s", "--", "sh",
             "-c", "echo $FTBUS_TOKEN > " + c.dir() + "/w.token"},
            c.dir() + "/w.out");
    REQUIRE(wait_waiters(c, "L", 1));
    leader = 0;
    REQUIRE(Cluster::wait_for([&] { return (leader = leader_of(c, {1, 2, 3})) != 0; }, 30));
    c.kill(leader);
    // Through the failover and the new leader's grace, the holder keeps its lease.
    std::vector<int> others;
    for (int id : {1, 2, 3})
        if (id != leader) others.push_back(id);
    REQUIRE(Cluster::wait_for([&] { return test::all_follow(c, others, 0) && leader_of(c, others) != leader; }, 30));
    REQUIRE(serving(c));
    bus::Json s = status(c);
    // Still held by the same session with the same token, and the waiter still waits.
    CHECK(s["locks"]["L"]["holder"] == held["locks"]["L"]["holder"]);  // session, client, token
    CHECK(s["locks"]["L"]["waiters"].size() == 1);
    { std::ofstream(go) << "go\n"; }
    CHECK(c.wait_exit(-1, 30) == 0);
    size_t lost = 0;
    for (auto& e : events(c.dir() + "/h.jsonl")) lost += e["ev"] == "lock.lost";
    CHECK(lost == 0);
    CHECK(c.wait_exit(-2, 30) == 0);  // the waiter got it next, with a higher token
    CHECK(token_in(c.dir() + "/w.token") > held["locks"]["L"]["holder"]["token"].get<uint64_t>());
    CHECK(hold_true());  // and then anyone
    CHECK(c.stop_all(others));
    CHECK(test::check_traces(c).rfind("0: ok", 0) == 0);
}

TEST_CASE("ftbus-lock: hold gives the command the lock's environment and passes its exit code, acquire and release "
          "keep a session for a script (exit 3 when not granted in time), a lost lease stops the command, with "
          "SIGKILL if it ignores SIGTERM",
          "[integration][lock]") {
    Cluster c(3, kLoose);
    REQUIRE(start_all(c));
    std::string F = c.cluster_file(), L = bin("ftbus-lock"), D = c.dir();
    // hold: the environment, an append under the lock from inside, the exit code.
    CHECK(test::run_command(L + " --cluster " + F + " hold L -- sh -c 'echo \"$FTBUS_LOCK $FTBUS_SESSION $FTBUS_TOKEN\" > " +
                            D + "/env; " + L + " append out.txt hello >/dev/null && exit 7'") == 7);
    std::istringstream env(slurp(D + "/env"));
    std::string lock;
    uint64_t session = 0, token = 0;
    env >> lock >> session >> token;
    CHECK(lock == "L");
    CHECK(session > 0);
    CHECK(token > 0);
    bus::Json s = status(c);
    REQUIRE_FALSE(s.is_null());
    CHECK(s["files"]["out.txt"]["bytes"] == 5);
    CHECK(s["locks"]["L"]["holder"].is_null());  // released when the command exited
    // Appends made at once by several processes of the one session (each its own client):
    // every one acknowledged, and in the file exactly once.
    CHECK(test::run_command(L + " --cluster " + F + " hold L -- sh -c 'for i in 1 2 3 4 5 6 7 8; do (" + L +
                            " append par.txt \"p$i;\" >/dev/null 2>>" + D + "/par.err || echo $i >> " + D +
                            "/par.failed) & done; wait'") == 0);
    CHECK(slurp(D + "/par.failed").empty());
    CHECK(slurp(D + "/par.err").empty());
    REQUIRE(Cluster::wait_for([&] {  // every replica has applied them all
        for (int id : {1, 2, 3})
            if (slurp(D + "/data" + std::to_string(id) + "/files/par.txt").size() != 8 * 3) return false;
        return true;
    }, 30));
    std::string par = slurp(D + "/data1/files/par.txt");
    for (int i = 1; i <= 8; ++i) {
        std::string line = "p" + std::to_string(i) + ";";
        size_t at = par.find(line);
        CHECK(at != std::string::npos);
        CHECK(par.find(line, at + 1) == std::string::npos);
    }
    // acquire / release for a script; the common flags after the subcommand work too.
    std::string out;
    CHECK(test::run_command("eval \"$(" + L + " acquire L --cluster " + F + " --ttl 2s)\" && " + L + " --cluster " + F +
                                " acquire L --wait 300ms 2>/dev/null; echo second:$?; " + L + " release; echo release:$?; " +
                                L + " --cluster " + F + " hold L --wait 5s -- true; echo after:$?",
                            &out) == 0);
    CHECK(out == "second:3\nrelease:0\nafter:0\n");
    // A release from inside hold ends hold's session with the lock: hold says why, stops CMD.
    CHECK(test::run_command(L + " --cluster " + F + " --ttl 1s hold L -- sh -c '" + L + " release && sleep 20' 2>&1",
                            &out) == 128 + SIGTERM);
    CHECK_THAT(out, Catch::Matchers::Contains("the lock L was lost (session gone: "));
    // A lost lease: the whole cluster dies, the keepalives go unanswered, and the command —
    // which ignores SIGTERM — is killed --kill-after later, with what it started (its process
    // group). (Bounded: everything it runs ends by itself within 30 s.)
    c.spawn(-1, "ftbus-lock",
            {"--cluster", F, "--ttl", "1s", "hold", "L", "--kill-after", "500ms", "--", "sh", "-c",
             "sleep 30 & echo $! > " + D + "/grandchild; trap '' TERM; touch " + D +
                 "/started; for i in $(seq 600); do sleep 0.05; done"},
            D + "/hold.out");
    REQUIRE(Cluster::wait_for([&] { return std::ifstream(D + "/started").good(); }, 30));
    pid_t grandchild = 0;
    std::ifstream(D + "/grandchild") >> grandchild;
    REQUIRE(grandchild > 0);
    for (int id : {1, 2, 3}) c.kill(id);
    CHECK(c.wait_exit(-1, 20) == 128 + SIGKILL);
    std::string err = slurp(D + "/hold.out.err");
    CHECK(err.find("was lost (lease expired: ") != std::string::npos);
    CHECK(err.find("SIGKILL") != std::string::npos);
    auto gone = [](pid_t p) {  // no such process, or only its zombie left for init to reap
        std::string stat = slurp("/proc/" + std::to_string(p) + "/stat");
        size_t paren = stat.rfind(')');
        return stat.empty() || (paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z');
    };
    CHECK(Cluster::wait_for([&] { return gone(grandchild); }, 10));
    // Again, with a command that stops on SIGTERM but started something that ignores it: that
    // is killed too, before ftbus-lock is done (the lock is not its either).
    REQUIRE(start_all(c));
    c.spawn(-2, "ftbus-lock",
            {"--cluster", F, "--ttl", "1s", "hold", "L", "--kill-after", "500ms", "--", "sh", "-c",
             "sh -c \"trap '' TERM; exec sleep 30\" & echo $! > " + D + "/straggler; touch " + D +
                 "/started2; for i in $(seq 600); do sleep 0.05; done"},
            D + "/hold2.out");
    REQUIRE(Cluster::wait_for([&] { return std::ifstream(D + "/started2").good(); }, 30));
    pid_t straggler = 0;
    std::ifstream(D + "/straggler") >> straggler;
    REQUIRE(straggler > 0);
    for (int id : {1, 2, 3}) c.kill(id);
    CHECK(c.wait_exit(-2, 20) == 128 + SIGTERM);  // the command's own end
    CHECK(gone(straggler));                       // and nothing of it outlived ftbus-lock
    CHECK(slurp(D + "/hold2.out.err").find("process group still running") != std::string::npos);
}

TEST_CASE("ftbus-lock: interrupted while waiting, hold and acquire leave the queue, end their session and exit "
          "128+signal, acquire's export lines survive eval whatever the cluster file's path, bad names, ttls, "
          "sessions and tokens are usage errors before anything is asked",
          "[integration][lock][badinput]") {
    Cluster c(3, kLoose);
    REQUIRE(start_all(c));
    std::string F = c.cluster_file(), L = bin("ftbus-lock"), D = c.dir();
    // Someone holds Q; a hold and an acquire queue behind it, and are interrupted there.
    c.spawn(-1, "ftbus-lock", {"--cluster", F, "hold", "Q", "--", "sh", "-c", "touch " + D + "/held; sleep 30"}, D + "/h.out");
    REQUIRE(Cluster::wait_for([&] { return std::ifstream(D + "/held").good(); }, 30));
    // (Their leases are long: had they left their sessions behind, nothing would clean up.)
    c.spawn(-2, "ftbus-lock", {"--cluster", F, "--ttl", "10m", "hold", "Q", "--", "touch", D + "/never"}, D + "/w.out");
    c.spawn(-3, "ftbus-lock", {"--cluster", F, "--ttl", "10m", "acquire", "Q"}, D + "/a.out");
    REQUIRE(wait_waiters(c, "Q", 2));
    c.signal(-2, SIGINT, "interrupt");
    c.signal(-3, SIGTERM, "interrupt");
    CHECK(c.wait_exit(-2, 20) == 128 + SIGINT);
    CHECK(c.wait_exit(-3, 20) == 128 + SIGTERM);
    CHECK(slurp(D + "/w.out.err").find("interrupted") != std::string::npos);
    CHECK(slurp(D + "/a.out").empty());  // no export lines
    CHECK(wait_waiters(c, "Q", 0));
    // Their sessions are closed, not left to expire: only the holder's is left.
    CHECK(Cluster::wait_for([&] { bus::Json s = status(c); return !s.is_null() && s["sessions"] == 1; }, 30));
    c.signal(-1, SIGTERM, "interrupt");
    CHECK(c.wait_exit(-1, 20) == 128 + SIGTERM);  // the command's own end, passed through
    CHECK_FALSE(std::ifstream(D + "/never").good());

    // A cluster file whose path holds a quote and a command substitution: eval exports it as
    // it is (absolute), and runs nothing.
    auto sq = [](const std::string& x) {  // a shell word
        std::string q = "'";
        for (char ch : x) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
        return q + "'";
    };
    std::string odd = "it's $(touch pwned).toml";  // relative: exported absolute
    std::filesystem::copy_file(F, D + "/" + odd);
    std::string out;
    CHECK(test::run_command("cd " + sq(D) + " && eval \"$(" + L + " --cluster " + sq(odd) +
                                " acquire Z)\" && cd / && printf '%s\\n' \"$FTBUS_CLUSTER\" && " + L + " release",
                            &out) == 0);
    CHECK(out == std::filesystem::absolute(D + "/" + odd).string() + "\n");
    CHECK_FALSE(std::ifstream(D + "/pwned").good());

    // Usage errors (exit 2), each before anything is sent.
    for (const std::string& args : std::vector<std::string>{"hold " + std::string(257, 'a') + " -- true", "hold .x -- true", "acquire 'a b'", "--ttl 50ms hold L -- true",
          "--ttl 11m hold L -- true", "append --lock L --session 7 --token 12junk f.txt x",
          "append --lock L --session -3 --token 12 f.txt x", "append --lock L --session 99999999999999999999 --token 1 f.txt x",
          "append --lock L --session 7 --token 12 ../f.txt x", "acquire L --trace -", "--timeout 0s status"}) {
        INFO(args);
        CHECK(test::run_command(L + " --cluster " + F + " " + args + " 2>" + D + "/usage.err") == 2);
        CHECK_FALSE(slurp(D + "/usage.err").empty());
    }
    CHECK(test::run_command("FTBUS_SESSION=7x FTBUS_TOKEN=12 " + L + " --cluster " + F + " append --lock L f.txt x 2>/dev/null") == 2);
    // No NAME before --: the command is taken for the name, and the message gives the usage.
    CHECK(test::run_command(L + " --cluster " + F + " hold -- true 2>" + D + "/usage.err") == 2);
    CHECK_THAT(slurp(D + "/usage.err"), Catch::Matchers::Contains("hold NAME [--ttl DUR] -- CMD"));
}

TEST_CASE("lock service: at the client port, a frame that is not a request, a message of another kind and an append "
          "over the limit each get a rejected answer, traced as rpc.reject, and nothing is applied",
          "[integration][lock][badinput]") {
    Cluster c(3, kLoose);
    REQUIRE(start_all(c));
    int leader = leader_of(c, {1, 2, 3});
    REQUIRE(leader != 0);
    bus::ClusterConfig cfg = bus::load_cluster(c.cluster_file());
    zmq::context_t ctx(1);
    zmq::socket_t s(ctx, zmq::socket_type::dealer);
    s.set(zmq::sockopt::linger, 0);
    s.set(zmq::sockopt::rcvtimeo, 10000);
    s.set(zmq::sockopt::routing_id, "raw-client");
    const bus::NodeSpec* n = cfg.find(leader);
    REQUIRE(n);
    s.connect(n->endpoint(n->client));
    auto answer = [&]() -> bus::LockReplyMsg {
        zmq::message_t m;
        if (!s.recv(m)) return {};
        bus::DecodeResult d = bus::decode(m.to_string_view());
        const auto* r = d.env ? std::get_if<bus::LockReplyMsg>(&d.env->body) : nullptr;
        return r ? *r : bus::LockReplyMsg{};
    };
    s.send(zmq::str_buffer("\xc1 not msgpack"), zmq::send_flags::none);
    bus::LockReplyMsg r = answer();
    CHECK(r.status == "rejected");
    CHECK(r.req == 0);
    CHECK(r.error.rfind("malformed request: ", 0) == 0);
    // Three frames where one is expected: counted as sent (the ROUTER's own routing id frame
    // is not the client's doing).
    s.send(zmq::str_buffer("a"), zmq::send_flags::sndmore);
    s.send(zmq::str_buffer("b"), zmq::send_flags::sndmore);
    s.send(zmq::str_buffer("c"), zmq::send_flags::none);
    r = answer();
    CHECK(r.status == "rejected");
    CHECK(r.error == "malformed request: expected 1 frame(s), got 3");
    // A well-formed append of 20 KiB (over the 16 KiB limit), from a session that exists.
    bus::Envelope env;
    env.from = std::string("raw-client");
    env.inc = 1;
    bus::LockRequest open;
    open.req = 1;
    open.op = "open";
    open.ttl_ms = 5000;
    env.seq = 1;
    env.body = open;
    s.send(zmq::buffer(bus::encode(env)), zmq::send_flags::none);
    r = answer();
    REQUIRE(r.status == "opened");
    bus::LockRequest big;
    big.req = 2;
    big.op = "append";
    big.session = r.session;
    big.lock = "L";
    big.token = 1;
    big.file = "big.txt";
    big.data = std::string(20 * 1024, 'x');
    env.seq = 2;
    env.body = big;
    s.send(zmq::buffer(bus::encode(env)), zmq::send_flags::none);
    r = answer();
    CHECK(r.req == 2);
    CHECK(r.status == "rejected");
    CHECK(r.error == "an append of 20480 bytes (at most 16384)");
    // A well-formed message that is not a lock request (a replicated log's PROPOSE).
    env.seq = 3;
    env.body = bus::Propose{3, "x"};
    s.send(zmq::buffer(bus::encode(env)), zmq::send_flags::none);
    r = answer();
    CHECK(r.status == "rejected");
    CHECK(r.error == "not a lock request: a PROPOSE message");
    bus::Json st = status(c);
    REQUIRE_FALSE(st.is_null());
    CHECK_FALSE(st["files"].contains("big.txt"));
    int rejects = 0, drops = 0;
    for (auto& e : c.events(leader)) {
        rejects += e["ev"] == "rpc.reject";
        if (e["ev"] == "msg.drop") {  // named by the client's routing id
            ++drops;
            CHECK(e["from"] == "client:raw-client");
        }
    }
    CHECK(rejects == 4);  // the frame that is not msgpack, the three frames, the big append, the PROPOSE
    CHECK(drops == 2);    // the frames that could not be read
    // The client library says the same at once, without a round trip.
    std::string out;
    CHECK(test::run_command("head -c 20000 /dev/zero | " + bin("ftbus-lock") + " --cluster " + c.cluster_file() +
                                " append --lock L --session 1 --token 1 big.txt - 2>&1",
                            &out) == 1);
    CHECK(out.find("at most 16384") != std::string::npos);
}

TEST_CASE("lock service: a replica whose disk fills up stops acknowledging and says so, the other two carry on, "
          "and every acknowledged append is on both",
          "[integration][lock][badinput]") {
    Cluster c(3, kLoose);
    start(c, 1);
    start(c, 2);
    {  // Replica 3 may not grow a file past 1 MiB: writes beyond fail (EFBIG), as on a full disk.
        rlimit old{};
        ::getrlimit(RLIMIT_FSIZE, &old);
        rlimit small = old;
        small.rlim_cur = 1 << 20;
        ::setrlimit(RLIMIT_FSIZE, &small);  // inherited by the child
        start(c, 3);
        ::setrlimit(RLIMIT_FSIZE, &old);
    }
    REQUIRE(serving(c));
    bus::ClusterConfig cfg = bus::load_cluster(c.cluster_file());
    bus::LockClient client(cfg);
    client.open();
    uint64_t token = client.acquire("D", std::chrono::seconds(10));
    REQUIRE(token != 0);
    std::string acked;
    int after_stop = 0;
    for (int i = 0; i < 400 && after_stop < 10; ++i) {
        std::string chunk = std::to_string(i) + ":" + std::string(16 * 1024 - 16, 'x') + "\n";
        REQUIRE_NOTHROW(client.append("D", token, "big.txt", chunk));  // a majority is healthy throughout
        acked += chunk;
        if (!c.running(3)) ++after_stop;
    }
    CHECK(after_stop == 10);  // replica 3 stopped, and appends went on without it
    CHECK(c.wait_exit(3, 30) == 1);
    std::string log3 = slurp(c.dir() + "/node3.log");
    CHECK(log3.find("storage failure") != std::string::npos);
    bool said = false;
    for (auto& e : c.events(3))
        said = said || (e["ev"] == "node.stop" && e["reason"].get<std::string>().find("storage failure") == 0);
    CHECK(said);
    auto file_of = [&](int id) { return slurp(c.dir() + "/data" + std::to_string(id) + "/files/big.txt"); };
    CHECK(Cluster::wait_for([&] { return file_of(1) == acked && file_of(2) == acked; }, 30));
    client.close();
    CHECK(c.stop_all({1, 2}));
}

TEST_CASE("ftbus-lockd with a port in use exits 2 and removes the data directory it created, never one that was "
          "there",
          "[integration][lock][badinput]") {
    Cluster c(3, kLoose);
    zmq::context_t ctx;
    zmq::socket_t squatter(ctx, zmq::socket_type::pub);  // holds node 1's PUB port
    squatter.set(zmq::sockopt::linger, 0);
    squatter.bind("tcp://127.0.0.1:" + std::to_string(c.base_port()));
    std::string dir = c.dir() + "/data1";
    auto refused = [&] {
        start(c, 1);
        CHECK(c.wait_exit(1, 10) == 2);
        CHECK(slurp(c.dir() + "/node1.log").find("address already in use") != std::string::npos);
    };
    SECTION("a first start leaves no data directory behind") {
        refused();
        CHECK_FALSE(std::filesystem::exists(dir));
    }
    SECTION("a data directory that was there stays, with what it held") {
        std::filesystem::create_directories(dir);
        std::ofstream(dir + "/keep") << "x";
        refused();
        CHECK(slurp(dir + "/keep") == "x");
        CHECK(std::filesystem::exists(dir + "/LOCK"));
    }
}
