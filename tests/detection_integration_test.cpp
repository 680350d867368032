// Integration: real ftbus-elect processes on 127.0.0.1 heartbeating each other.
// Timeouts here are looser than the defaults so that a loaded 2-core CI machine does not
// convict live nodes; deadlines are generous and every wait is for a condition.
#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>
#include <set>
#include <zmq.hpp>

#include "bus/protocol.hpp"
#include "harness.hpp"

using test::Cluster;
using test::count_events;

namespace {

const char* kLoose = "--heartbeat 50ms --suspect-after 500ms --dead-after 1s --startup-grace 3s";

bool all_alive(Cluster& c, const std::vector<int>& ids) {
    for (int id : ids) {
        auto evs = c.events(id);
        for (int peer : ids)
            if (peer != id && count_events(evs, "peer.alive", "peer", peer) == 0) return false;
    }
    return true;
}

std::string check(Cluster& c) {
    std::string out;
    int rc = test::run_command(std::string(FTBUS_BIN_DIR) + "/ftbus-check " + c.trace_files() + " 2>&1", &out);
    return std::to_string(rc) + ": " + out;
}

}  // namespace

TEST_CASE("every survivor declares a killed node dead, and the trace checks clean", "[integration][detector]") {
    Cluster c(5, kLoose);
    std::vector<int> ids = {1, 2, 3, 4, 5};
    for (int id : ids) c.start(id);
    REQUIRE(Cluster::wait_for([&] { return all_alive(c, ids); }, 20));

    c.kill(3);
    std::vector<int> survivors = {1, 2, 4, 5};
    REQUIRE(Cluster::wait_for([&] {
        for (int id : survivors)
            if (count_events(c.events(id), "peer.dead", "peer", 3) == 0) return false;
        return true;
    }, 20));
    for (int id : survivors) {
        auto evs = c.events(id);
        CHECK(count_events(evs, "peer.suspect", "peer", 3) >= 1);
        for (int other : survivors) CHECK(count_events(evs, "peer.dead", "peer", other) == 0);
    }
    for (int id : survivors) c.terminate(id);
    for (int id : survivors) CHECK(c.wait_exit(id, 10) == 0);
    for (int id : survivors) CHECK(count_events(c.events(id), "node.stop", "reason", "SIGTERM") == 1);
    CHECK(check(c).rfind("0: ok", 0) == 0);
}

TEST_CASE("a paused node is convicted, comes back alive, and convicts nobody on waking", "[integration][detector]") {
    Cluster c(3, kLoose);
    std::vector<int> ids = {1, 2, 3};
    for (int id : ids) c.start(id);
    REQUIRE(Cluster::wait_for([&] { return all_alive(c, ids); }, 20));

    c.signal(2, SIGSTOP, "pause");
    REQUIRE(Cluster::wait_for([&] {
        return count_events(c.events(1), "peer.dead", "peer", 2) && count_events(c.events(3), "peer.dead", "peer", 2);
    }, 20));
    c.signal(2, SIGCONT, "resume");
    REQUIRE(Cluster::wait_for([&] {
        return count_events(c.events(1), "peer.alive", "peer", 2) >= 2 &&
               count_events(c.events(3), "peer.alive", "peer", 2) >= 2 &&
               count_events(c.events(2), "node.stall") >= 1;
    }, 20));
    // Keep watching a while (bounded by a condition on the others' traces): node 2 must not
    // have convicted the nodes that kept heartbeating while it slept.
    auto n1 = c.events(1).size();
    Cluster::wait_for([&] { return c.events(1).size() > n1 + 5; }, 3);
    auto evs2 = c.events(2);
    CHECK(count_events(evs2, "peer.dead") == 0);
    CHECK(check(c).rfind("0: ok", 0) == 0);
}

TEST_CASE("bad frames on every socket are dropped and traced, and the node carries on", "[integration][badinput]") {
    Cluster c(3, kLoose);
    c.start(1);
    c.start(2);
    REQUIRE(Cluster::wait_for([&] { return all_alive(c, {1, 2}); }, 20));

    zmq::context_t ctx;
    // Through node 2's peer ROUTER.
    auto to_router = [&](const std::string& routing_id, const std::string& frame) {
        zmq::socket_t d(ctx, zmq::socket_type::dealer);
        d.set(zmq::sockopt::linger, 1000);
        d.set(zmq::sockopt::routing_id, routing_id);
        d.connect("tcp://127.0.0.1:" + std::to_string(c.base_port() + 11));
        d.send(zmq::buffer(frame), zmq::send_flags::none);
    };
    bus::Envelope env;
    env.from = bus::NodeId(1);
    env.inc = 7;
    env.seq = 1;
    env.body = bus::Election{1, 0};
    std::string good = bus::encode(env);
    // Distinct routing ids: a second connection with the same id would take the ROUTER's
    // route over (router_handover) and could drop the first one's frame unread.
    to_router("101", "garbage");
    to_router("102", good.substr(0, good.size() / 2));
    to_router("9", good);  // routing id disagrees with envelope sender
    env.from = bus::NodeId(42);
    to_router("42", bus::encode(env));  // not a cluster node
    // On the PUB/SUB side: pose as node 3's PUB (node 3 is not running).
    zmq::socket_t pub(ctx, zmq::socket_type::pub);
    pub.set(zmq::sockopt::linger, 0);
    pub.bind("tcp://127.0.0.1:" + std::to_string(c.base_port() + 20));
    REQUIRE(Cluster::wait_for([&] {
        pub.send(zmq::str_buffer("hb"), zmq::send_flags::sndmore);
        pub.send(zmq::str_buffer("\xc1"), zmq::send_flags::none);
        return count_events(c.events(2), "msg.drop", "from", "sub:hb") > 0 &&
               count_events(c.events(2), "msg.drop") >= 5;
    }, 20));
    auto evs = c.events(2);
    std::vector<std::string> reasons;
    for (auto& e : evs)
        if (e["ev"] == "msg.drop") reasons.push_back(e["reason"].get<std::string>());
    auto has = [&](const std::string& part) {
        for (auto& r : reasons)
            if (r.find(part) != std::string::npos) return true;
        return false;
    };
    CHECK(has("not msgpack"));
    CHECK(has("truncated"));
    CHECK(has("disagrees with routing id"));
    CHECK(has("is not a member"));
    // Still running, still heartbeating: node 1 never lost it.
    CHECK(c.running(2));
    CHECK(count_events(c.events(1), "peer.dead", "peer", 2) == 0);
}

TEST_CASE("bad configuration ends the program with one message and exit code 2", "[integration][badinput]") {
    Cluster c(2);
    std::string bin = std::string(FTBUS_BIN_DIR) + "/ftbus-elect";
    auto run = [&](const std::string& args, std::string& out) {
        out.clear();
        return test::run_command("timeout 20 " + bin + " " + args + " 2>&1", &out);
    };
    std::string out;
    CHECK(run("--cluster /nonexistent.toml --id 1", out) == 2);
    CHECK(out.find("cannot read the cluster file") != std::string::npos);
    CHECK(run("--cluster " + c.cluster_file() + " --id 9", out) == 2);
    CHECK(out.find("no node with id 9") != std::string::npos);
    CHECK(run("--cluster " + c.cluster_file() + " --id 1 --heartbeat 100", out) == 2);
    CHECK(out.find("not a duration") != std::string::npos);
    CHECK(run("--cluster " + c.cluster_file() + " --id 1 --bogus", out) == 2);
    std::string broken = c.dir() + "/broken.toml";
    std::ofstream(broken) << "[[node]]\nid = 1\npub = 7000\n[[node]]\nid = 1\npub = 7010\npeer = 7011\n";
    CHECK(run("--cluster " + broken + " --id 1", out) == 2);
    CHECK(out.find(broken) != std::string::npos);
    // Port in use: hold node 1's PUB port.
    zmq::context_t ctx;
    zmq::socket_t squatter(ctx, zmq::socket_type::pub);
    squatter.set(zmq::sockopt::linger, 0);
    squatter.bind("tcp://127.0.0.1:" + std::to_string(c.base_port()));
    CHECK(run("--cluster " + c.cluster_file() + " --id 1", out) == 2);
    CHECK(out.find("address already in use") != std::string::npos);
    CHECK(run("--help", out) == 0);
    CHECK(out.find("--cluster") != std::string::npos);
}

TEST_CASE("ftbus-trace merges the live trace and filters by event name", "[integration][collector]") {
    Cluster c(3, kLoose);
    std::string all = c.dir() + "/collected.jsonl", dead = c.dir() + "/dead.jsonl";
    c.spawn(-1, "ftbus-trace", {"--cluster", c.cluster_file(), "--duration", "60s"}, all);
    c.spawn(-2, "ftbus-trace", {"--cluster", c.cluster_file(), "--ev", "peer.dead", "--count", "2"}, dead);
    // At level `all` heartbeats are traced too, so there is a steady stream to hear even
    // if the collector subscribes after the nodes' first events.
    for (int id : {1, 2, 3}) c.start(id, {"--trace-level", "all"});
    auto lines = [](const std::string& path) {
        std::vector<bus::Json> out;
        std::ifstream in(path);
        std::string l;
        while (std::getline(in, l)) out.push_back(bus::Json::parse(l, nullptr, false));
        return out;
    };
    // Wait until the collector hears every node (it subscribes late: it may miss the start).
    REQUIRE(Cluster::wait_for([&] {
        std::set<std::string> seen;
        for (auto& e : lines(all))
            if (e.is_object()) seen.insert(bus::emitter_of(e));
        return seen.size() == 3 && all_alive(c, {1, 2, 3});
    }, 20));
    c.kill(3);
    REQUIRE(c.wait_exit(-2, 20) == 0);  // exits by itself after two peer.dead lines
    auto got = lines(dead);
    REQUIRE(got.size() == 2);
    for (auto& e : got) {
        CHECK(e["ev"] == "peer.dead");
        CHECK(e["peer"] == 3);
    }
}

TEST_CASE("phi detector: a killed node is convicted — a node stopped for 3x the timeout is suspected, comes back, "
          "and convicts nobody",
          "[integration][detector][phi]") {
    Cluster c(4, "--heartbeat 50ms --suspect-after 500ms --dead-after 1s --startup-grace 3s --detector phi");
    std::vector<int> ids = {1, 2, 3, 4};
    for (int id : ids) c.start(id, {"--algo", "none"});
    REQUIRE(Cluster::wait_for([&] { return all_alive(c, ids); }, 20));
    for (auto& e : c.events(1))
        if (e["ev"] == "node.start") CHECK(e["detector"] == "phi");

    c.kill(4);
    REQUIRE(Cluster::wait_for([&] {
        for (int id : {1, 2, 3})
            if (count_events(c.events(id), "peer.dead", "peer", 4) == 0) return false;
        return true;
    }, 20));
    for (auto& e : c.events(1))
        if (e["ev"] == "peer.suspect" && e["peer"] == 4) CHECK(e["phi"].get<double>() >= 8.0);

    // Stopped for about 3x the time phi takes to convict (~0.3 s at 50 ms heartbeats).
    c.signal(2, SIGSTOP, "pause");
    REQUIRE(Cluster::wait_for([&] {
        return count_events(c.events(1), "peer.dead", "peer", 2) && count_events(c.events(3), "peer.dead", "peer", 2);
    }, 20));
    c.signal(2, SIGCONT, "resume");
    REQUIRE(Cluster::wait_for([&] {
        return count_events(c.events(1), "peer.alive", "peer", 2) >= 2 && count_events(c.events(3), "peer.alive", "peer", 2) >= 2;
    }, 20));
    auto n1 = c.events(1).size();
    Cluster::wait_for([&] { return c.events(1).size() > n1 + 5; }, 3);
    // Node 2 convicted nobody that kept heartbeating (only 4, which is really dead).
    for (auto& e : c.events(2))
        if (e["ev"] == "peer.dead") {
            std::string story;
            for (auto& x : c.events(2))
                if (x["ev"] != "msg.send" && x["ev"] != "msg.recv") story += x.dump() + "\n";
            INFO(story);
            CHECK(e["peer"] == 4);
        }
    for (int id : {1, 3})
        for (auto& e : c.events(id))
            if (e["ev"] == "peer.dead") CHECK((e["peer"] == 4 || e["peer"] == 2));
    CHECK(c.stop_all({1, 2, 3}));
    CHECK(test::check_traces(c).rfind("0: ok", 0) == 0);
}
