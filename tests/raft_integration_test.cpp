// Integration: real ftbus-elect --algo raft processes on 127.0.0.1, each with its own data
// directory. Faults are real signals recorded as `fault` events (kill -9, SIGSTOP/SIGCONT,
// SIGUSR1/SIGUSR2 to cut a node off and reconnect it); outcomes are read from the traces, and
// every trace must pass ftbus-check (at most one leader per term, terms never decrease).
// Election timeouts are looser than the defaults so a loaded 2-core machine does not start
// needless elections; every wait is for a condition, with a generous deadline.
#include <catch2/catch.hpp>
#include <algorithm>
#include <csignal>
#include <iterator>
#include <filesystem>
#include <fstream>
#include <zmq.hpp>

#include "harness.hpp"
#include "test_util.hpp"

using test::all_follow;
using test::Cluster;
using test::count_events;
using test::current_leader;

namespace {

const char* kLoose = "--heartbeat 50ms --suspect-after 500ms --dead-after 1s --startup-grace 3s";

std::vector<std::string> raft_args(const Cluster& c, int id) {
    return {"--algo", "raft", "--data", c.dir() + "/data" + std::to_string(id), "--election-timeout",
            "300ms-600ms", "--raft-heartbeat", "50ms"};
}

void start_all(Cluster& c, const std::vector<int>& ids) {
    for (int id : ids) c.start(id, raft_args(c, id));
}

/// The term of node `id`'s latest `leader` event (0 if none).
uint64_t leader_term(const Cluster& c, int id) {
    uint64_t term = 0;
    for (auto& e : c.events(id))
        if (e["ev"] == "leader") term = e["term"].get<uint64_t>();
    return term;
}


}  // namespace

TEST_CASE("raft: kill -9 the leader — the survivors elect one in a higher term — it restarts with its state",
          "[integration][raft]") {
    Cluster c(5, kLoose);
    std::vector<int> all = {1, 2, 3, 4, 5};
    start_all(c, all);
    REQUIRE(Cluster::wait_for([&] { return all_follow(c, all, 0); }, 30));
    int leader = current_leader(c.events(1));
    uint64_t term = leader_term(c, leader);
    std::vector<int> survivors;
    for (int id : all)
        if (id != leader) survivors.push_back(id);

    c.kill(leader);
    REQUIRE(Cluster::wait_for([&] {
        return all_follow(c, survivors, 0) && current_leader(c.events(survivors[0])) != leader;
    }, 30));
    int next = current_leader(c.events(survivors[0]));
    CHECK(leader_term(c, next) > term);

    // Back with its durable state: the term and vote it had, then it follows the new leader.
    c.start(leader, raft_args(c, leader));
    REQUIRE(Cluster::wait_for([&] { return all_follow(c, all, next); }, 30));
    size_t restores = 0;
    for (auto& e : c.events(leader))
        if (e["ev"] == "raft.restore" && e["term"].get<uint64_t>() >= term) ++restores;
    CHECK(restores == 1);  // the second incarnation restored at least the term it led in

    CHECK(c.stop_all(all));
    CHECK(test::check_traces(c).rfind("0: ok", 0) == 0);
}

TEST_CASE("raft: SIGSTOP the leader, then SIGCONT — replaced while stopped, it steps down on waking",
          "[integration][raft]") {
    Cluster c(3, kLoose);
    std::vector<int> all = {1, 2, 3};
    start_all(c, all);
    REQUIRE(Cluster::wait_for([&] { return all_follow(c, all, 0); }, 30));
    int leader = current_leader(c.events(1));
    std::vector<int> others;
    for (int id : all)
        if (id != leader) others.push_back(id);

    c.signal(leader, SIGSTOP, "pause");
    REQUIRE(Cluster::wait_for([&] {
        return all_follow(c, others, 0) && current_leader(c.events(others[0])) != leader;
    }, 30));
    int next = current_leader(c.events(others[0]));
    c.signal(leader, SIGCONT, "resume");
    // It wakes as leader of an old term, hears the new term, and follows.
    REQUIRE(Cluster::wait_for([&] { return all_follow(c, all, next); }, 30));

    CHECK(c.stop_all(all));
    CHECK(test::check_traces(c).rfind("0: ok", 0) == 0);
}

TEST_CASE("raft: a follower cut off and reconnected does not depose the leader (PreVote)", "[integration][raft]") {
    Cluster c(3, kLoose);
    std::vector<int> all = {1, 2, 3};
    start_all(c, all);
    REQUIRE(Cluster::wait_for([&] { return all_follow(c, all, 0); }, 30));
    int leader = current_leader(c.events(1));
    uint64_t term = leader_term(c, leader);
    int f = leader % 3 + 1;

    size_t elections_before = 0;
    for (int id : all) elections_before += count_events(c.events(id), "election.start");
    c.signal(f, SIGUSR1, "partition");
    // Cut off, it times out again and again: wait until it has run several pre-votes.
    REQUIRE(Cluster::wait_for([&] { return count_events(c.events(f), "role", "role", "pre-candidate") >= 3; }, 30));
    c.signal(f, SIGUSR2, "heal");
    REQUIRE(Cluster::wait_for([&] {
        auto evs = c.events(f);
        return count_events(evs, "node.isolated", "isolated", false) == 1 && current_leader(evs) == leader;
    }, 30));
    CHECK(all_follow(c, all, leader));
    CHECK(leader_term(c, leader) == term);  // no election happened, anywhere
    size_t elections_after = 0;
    for (int id : all) elections_after += count_events(c.events(id), "election.start");
    CHECK(elections_after == elections_before);

    CHECK(c.stop_all(all));
    CHECK(test::check_traces(c).rfind("0: ok", 0) == 0);
}

TEST_CASE("raft: a corrupt state file, a data directory in use, no --data, or a port in use refuse start-up with exit 2",
          "[integration][raft][badinput]") {
    Cluster c(3, kLoose);
    SECTION("corrupt state file") {
        std::string dir = c.dir() + "/data1";
        test::run_command("mkdir -p " + dir);
        std::ofstream(dir + "/raft-state") << "ftbus raft-state 1\nterm 7\nvote 3\ncrc32c 00000000\n";
        c.start(1, raft_args(c, 1));
        CHECK(c.wait_exit(1, 10) == 2);
        std::string log;
        test::run_command("cat " + c.dir() + "/node1.log", &log);
        CHECK(log.find("corrupt Raft state (checksum mismatch)") != std::string::npos);
        CHECK(log.find(dir + "/raft-state") != std::string::npos);
    }
    SECTION("data directory in use") {
        c.start(1, raft_args(c, 1));
        REQUIRE(Cluster::wait_for([&] { return count_events(c.events(1), "raft.restore") == 1; }, 10));
        c.start(2, raft_args(c, 1));  // node 2 pointed at node 1's directory
        CHECK(c.wait_exit(2, 10) == 2);
        std::string log;
        test::run_command("cat " + c.dir() + "/node2.log", &log);
        CHECK(log.find("is in use by another process") != std::string::npos);
    }
    SECTION("no --data") {
        c.start(1, {"--algo", "raft"});
        CHECK(c.wait_exit(1, 10) == 2);
    }
    SECTION("a port in use: the data directory this start created is removed again") {
        zmq::context_t ctx;
        zmq::socket_t squatter(ctx, zmq::socket_type::pub);  // holds node 1's PUB port
        squatter.set(zmq::sockopt::linger, 0);
        squatter.bind("tcp://127.0.0.1:" + std::to_string(c.base_port()));
        c.start(1, raft_args(c, 1));
        CHECK(c.wait_exit(1, 10) == 2);
        std::string log;
        test::run_command("cat " + c.dir() + "/node1.log", &log);
        CHECK(log.find("address already in use") != std::string::npos);
        CHECK_FALSE(std::filesystem::exists(c.dir() + "/data1"));
    }
}

namespace {

std::string bin(const std::string& program) { return std::string(FTBUS_BIN_DIR) + "/" + program; }

/// Node `id`'s `ftbus-ctl status --json` answer (null if it did not answer).
bus::Json status(const Cluster& c, int id) {
    std::string out;
    if (test::run_command(bin("ftbus-ctl") + " --json --timeout 1s --cluster " + c.cluster_file() + " --id " +
                              std::to_string(id) + " status 2>/dev/null",
                          &out) != 0)
        return nullptr;
    bus::Json j = bus::Json::parse(out, nullptr, false);
    return j.is_discarded() ? bus::Json(nullptr) : j;
}

/// Proposals for `seconds` through the client ports (ftbus-bench raft); \return how many
/// were acknowledged as committed.
uint64_t propose_for(const Cluster& c, const std::string& seconds) {
    std::string out;
    test::run_command(bin("ftbus-bench") + " raft --json --proposers 4 --warmup 0 --timeout 500ms --duration " + seconds +
                          " --cluster " + c.cluster_file() + " 2>/dev/null",
                      &out);
    bus::Json j = bus::Json::parse(out, nullptr, false);
    return j.is_discarded() ? 0 : j.value("committed", uint64_t{0});
}

/// True when every node in `ids` answers and all applied the same entries (same digest),
/// at least `min_entries` of them.
bool same_state(const Cluster& c, const std::vector<int>& ids, uint64_t min_entries) {
    bus::Json first;
    for (int id : ids) {
        bus::Json s = status(c, id);
        if (s.is_null() || !s.contains("raft") || !s["raft"].contains("state")) return false;
        bus::Json st = s["raft"]["state"];
        if (st["entries"].get<uint64_t>() < min_entries) return false;
        if (first.is_null()) first = st;
        if (st != first) return false;
    }
    return true;
}

}  // namespace

TEST_CASE("raft log: entries proposed through the client port reach every replica — kill -9 a follower, then the "
          "leader — the restarted replicas catch up (by INSTALL_SNAPSHOT when behind the snapshot)",
          "[integration][raft][replication]") {
    Cluster c(3, kLoose);
    std::vector<int> all = {1, 2, 3};
    auto args = [&](int id) {
        auto a = raft_args(c, id);
        a.insert(a.end(), {"--snapshot-entries", "50"});
        return a;
    };
    for (int id : all) c.start(id, args(id));
    REQUIRE(Cluster::wait_for([&] { return all_follow(c, all, 0); }, 30));
    uint64_t acked = propose_for(c, "1s");
    REQUIRE(acked > 0);
    REQUIRE(Cluster::wait_for([&] { return same_state(c, all, acked); }, 30));

    int leader = current_leader(c.events(1));
    int follower = leader % 3 + 1;
    c.kill(follower);
    uint64_t more = propose_for(c, "1s");  // a majority is up: it goes on
    REQUIRE(more > 60);                    // more than a snapshot's worth: the follower is behind it
    c.start(follower, args(follower));
    REQUIRE(Cluster::wait_for([&] { return same_state(c, all, acked + more); }, 30));
    CHECK(count_events(c.events(follower), "raft.snapshot.install") >= 1);

    c.kill(leader);
    std::vector<int> survivors;
    for (int id : all)
        if (id != leader) survivors.push_back(id);
    REQUIRE(Cluster::wait_for([&] { return all_follow(c, survivors, 0) && current_leader(c.events(survivors[0])) != leader; }, 30));
    uint64_t after = propose_for(c, "1s");
    CHECK(after > 0);
    c.start(leader, args(leader));
    // Everything acknowledged before and after the kill is on every replica.
    REQUIRE(Cluster::wait_for([&] { return same_state(c, all, acked + more + after); }, 30));
    CHECK(c.stop_all(all));
    CHECK(test::check_traces(c).rfind("0: ok", 0) == 0);
}

TEST_CASE("ftbus-bench floor times a ZeroMQ round trip and an fdatasync, alone and with three writers at once, and "
          "leaves no file behind",
          "[integration][bench]") {
    test::TempDir d("ftbus-floor");
    std::string out;
    REQUIRE(test::run_command(bin("ftbus-bench") + " floor --json --rounds 50 --dir " + d.path + " 2>/dev/null", &out) ==
            0);
    bus::Json j = bus::Json::parse(out, nullptr, false);
    REQUIRE(j.is_object());
    CHECK(j["zmq_rtt_p50_us"].get<double>() > 0);
    CHECK(j["fdatasync_p50_us"].get<double>() > 0);
    // The floor of a commit is two round trips and one fsync; a lock cycle is two commits.
    CHECK(j["commit_floor_us"].get<double>() ==
          Approx(2 * j["zmq_rtt_p50_us"].get<double>() + j["fdatasync_p50_us"].get<double>()));
    CHECK(j["lock_cycle_floor_ms"].get<double>() == Approx(2 * j["commit_floor_us"].get<double>() / 1000));
    // The same with three writers fsyncing at once, as three replicas on one disk do.
    CHECK(j["writers"] == 3);
    CHECK(j["fdatasync_shared_p50_us"].get<double>() > 0);
    CHECK(j["commit_floor_shared_us"].get<double>() ==
          Approx(2 * j["zmq_rtt_p50_us"].get<double>() + j["fdatasync_shared_p50_us"].get<double>()));
    CHECK(j["lock_cycle_floor_shared_ms"].get<double>() == Approx(2 * j["commit_floor_shared_us"].get<double>() / 1000));
    CHECK(std::filesystem::is_empty(d.path));
    // A directory it cannot write in: one message, exit 2.
    CHECK(test::run_command(bin("ftbus-bench") + " floor --rounds 50 --dir " + d.path + "/missing 2>&1", &out) == 2);
    CHECK(out.find("cannot create") != std::string::npos);
}

TEST_CASE("ftbus-bench raft with no replica up prints no figures: one line on stderr and exit 1, and a zero "
          "duration is a usage error",
          "[integration][bench]") {
    test::Cluster c(3);
    std::string out, err = c.dir() + "/bench.err";
    CHECK(test::run_command(bin("ftbus-bench") + " raft --cluster " + c.cluster_file() +
                                " --warmup 0 --duration 300ms --timeout 100ms 2>" + err,
                            &out) == 1);
    CHECK(out.empty());
    std::ifstream in(err);
    std::string all((std::istreambuf_iterator<char>(in)), {});
    CHECK(all.find("ftbus-bench: raft: no replica answered") == 0);
    CHECK(std::count(all.begin(), all.end(), '\n') == 1);
    CHECK(test::run_command(bin("ftbus-bench") + " raft --cluster " + c.cluster_file() + " --duration 0ms 2>&1", &out) == 2);
    CHECK(out.find("'0ms': must be positive") != std::string::npos);
}
