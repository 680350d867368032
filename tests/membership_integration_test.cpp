// Integration: membership at runtime with real ftbus-elect processes — nodes not in the
// cluster file join (--join), are seen by everyone and take part in the election; a
// graceful leave (ftbus-ctl leave) removes a node at once, without waiting for detection;
// a killed joiner is declared dead, then forgotten after remove_after; a joiner claiming a
// live member's id is refused. ftbus-ctl status and set against the control endpoints.
#include <catch2/catch.hpp>

#include "harness.hpp"

using test::Cluster;
using test::count_events;

namespace {

const char* kLoose = "--heartbeat 50ms --suspect-after 500ms --dead-after 1s --startup-grace 3s --remove-after 2s";

std::string bin(const std::string& p) { return std::string(FTBUS_BIN_DIR) + "/" + p; }

/// Flags of a joiner with ports base..base+3, joining through `via`'s peer port.
std::vector<std::string> joiner_args(int base, int via_peer_port) {
    return {"--join", "tcp://127.0.0.1:" + std::to_string(via_peer_port), "--pub", std::to_string(base), "--peer",
            std::to_string(base + 1), "--control", std::to_string(base + 3)};
}

bool everyone_has(Cluster& c, const std::vector<int>& ids, const std::string& ev, int peer,
                  const std::string& field = "", const bus::Json& value = nullptr) {
    for (int id : ids) {
        size_t n = 0;
        for (auto& e : c.events(id))
            if (e["ev"] == ev && e.value("peer", 0) == peer && (field.empty() || e[field] == value)) ++n;
        if (n == 0) return false;
    }
    return true;
}

}  // namespace

TEST_CASE("runtime membership: join, status and set, a refused id, graceful leave, kill and clean-up",
          "[integration][membership]") {
    Cluster c(3, kLoose);
    int jports = test::free_port_base(20);  // two joiners: 9 at jports, 8 at jports + 10
    int peer1 = c.base_port() + 1, peer2 = c.base_port() + 11;
    std::vector<int> file = {1, 2, 3};
    for (int id : file) c.start(id);
    REQUIRE(Cluster::wait_for([&] { return test::all_follow(c, file, 3); }, 20));

    // 9 joins through node 1; everyone learns of it; it outranks all and takes over (preempt).
    c.start(9, joiner_args(jports, peer1));
    REQUIRE(Cluster::wait_for([&] { return everyone_has(c, file, "peer.join", 9); }, 20));
    REQUIRE(Cluster::wait_for([&] { return test::all_follow(c, {1, 2, 3, 9}, 9); }, 20));
    CHECK(count_events(c.events(9), "node.join", "state", "joined") == 1);

    // ftbus-ctl: status of the joiner by endpoint; a setting changed on node 1 by cluster/id.
    std::string out;
    int rc = test::run_command(bin("ftbus-ctl") + " --endpoint tcp://127.0.0.1:" + std::to_string(jports + 3) +
                                   " --json status",
                               &out);
    REQUIRE(rc == 0);
    bus::Json st = bus::Json::parse(out);
    CHECK(st["role"] == "leader");
    CHECK(st["members"].size() == 3);
    CHECK(st["static"] == false);
    rc = test::run_command(bin("ftbus-ctl") + " --cluster " + c.cluster_file() + " --id 1 set heartbeat 40ms", &out);
    CHECK(rc == 0);
    REQUIRE(Cluster::wait_for([&] { return count_events(c.events(1), "config.set", "key", "heartbeat") == 1; }, 10));
    rc = test::run_command(bin("ftbus-ctl") + " --cluster " + c.cluster_file() + " --id 1 set dead_after 1ms 2>&1", &out);
    CHECK(rc == 1);
    CHECK_THAT(out, Catch::Contains("must not be shorter"));

    // 8 joins through node 2, concurrently known to all; 9 still leads.
    c.start(8, joiner_args(jports + 10, peer2));
    REQUIRE(Cluster::wait_for([&] { return everyone_has(c, {1, 2, 3, 9}, "peer.join", 8); }, 20));
    REQUIRE(Cluster::wait_for([&] { return test::all_follow(c, {1, 2, 3, 8, 9}, 9); }, 20));

    // Another process claiming id 8 from elsewhere is refused while 8 lives: exit 1, one message.
    std::string dup_out = c.dir() + "/dup.out";
    std::vector<std::string> dup = {"--cluster", c.cluster_file(), "--id", "8", "--trace", c.dir() + "/dup.jsonl"};
    for (auto& a : joiner_args(test::free_port_base(10), peer1)) dup.push_back(a);
    c.spawn(-1, "ftbus-elect", dup, dup_out);
    CHECK(c.wait_exit(-1, 20) == 1);

    // 9 leaves gracefully: removed at once everywhere, 8 takes over, nobody declares 9 dead.
    rc = test::run_command(bin("ftbus-ctl") + " --endpoint tcp://127.0.0.1:" + std::to_string(jports + 3) + " leave",
                           &out);
    CHECK(rc == 0);
    CHECK(c.wait_exit(9, 10) == 0);
    std::vector<int> rest = {1, 2, 3, 8};
    REQUIRE(Cluster::wait_for([&] { return everyone_has(c, rest, "peer.leave", 9, "reason", "left"); }, 10));
    REQUIRE(Cluster::wait_for([&] { return test::all_follow(c, rest, 8); }, 20));
    for (int id : rest) CHECK(count_events(c.events(id), "peer.dead", "peer", 9) == 0);
    CHECK(count_events(c.events(9), "node.stop", "reason", "left") == 1);

    // 8 is killed: declared dead, a new election (3 leads again), then forgotten (remove_after 2 s).
    c.kill(8);
    REQUIRE(Cluster::wait_for([&] { return everyone_has(c, file, "peer.dead", 8); }, 20));
    REQUIRE(Cluster::wait_for([&] { return test::all_follow(c, file, 3); }, 20));
    REQUIRE(Cluster::wait_for([&] { return everyone_has(c, file, "peer.leave", 8, "reason", "dead"); }, 20));
    rc = test::run_command(bin("ftbus-ctl") + " --cluster " + c.cluster_file() + " --id 2 --json status", &out);
    REQUIRE(rc == 0);
    CHECK(bus::Json::parse(out)["members"].size() == 2);

    CHECK(c.stop_all(file));
}

TEST_CASE("joining wrongly: a cluster-file id, a bad endpoint, Raft, no answer from ftbus-ctl",
          "[integration][membership][badinput]") {
    Cluster c(2);
    std::string out;
    auto elect = [&](const std::string& args) {
        return test::run_command(bin("ftbus-elect") + " --cluster " + c.cluster_file() + " " + args + " 2>&1", &out);
    };
    CHECK(elect("--id 2 --join tcp://127.0.0.1:7102 --pub 7190 --peer 7191") == 2);
    CHECK_THAT(out, Catch::Contains("without --join"));
    CHECK(elect("--id 9 --join 127.0.0.1:7102 --pub 7190 --peer 7191") == 2);
    CHECK_THAT(out, Catch::Contains("tcp://"));
    CHECK(elect("--id 9 --join tcp://127.0.0.1:7102") == 2);
    CHECK_THAT(out, Catch::Contains("--pub and --peer"));
    CHECK(elect("--id 9 --algo raft --data /tmp --join tcp://127.0.0.1:7102 --pub 7190 --peer 7191") == 2);
    CHECK_THAT(out, Catch::Contains("Raft's voters"));
    // Nobody listens on that control port: one message, exit 1, quickly.
    int port = test::free_port_base(1);
    CHECK(test::run_command(bin("ftbus-ctl") + " --endpoint tcp://127.0.0.1:" + std::to_string(port) +
                                " --timeout 300ms status 2>&1",
                            &out) == 1);
    CHECK_THAT(out, Catch::Contains("no answer"));
    CHECK(test::run_command(bin("ftbus-ctl") + " --cluster " + c.cluster_file() + " --id 1 frobnicate 2>&1", &out) == 2);
}
