// Integration: real ftbus-elect --algo bully processes on 127.0.0.1. Faults are real signals
// (kill -9, SIGSTOP/SIGCONT) recorded as `fault` events; outcomes are read from the traces and
// the traces must pass ftbus-check (which checks agreement within a bound after the last
// fault). Timeouts are looser than the defaults so a loaded 2-core machine convicts nobody
// by mistake; every wait is for a condition, with a generous deadline.
#include <catch2/catch.hpp>
#include <csignal>

#include "harness.hpp"

using test::all_follow;
using test::Cluster;

namespace {

const char* kLoose = "--heartbeat 50ms --suspect-after 500ms --dead-after 1s --startup-grace 3s";


}  // namespace

TEST_CASE("bully: kill -9 the leader, the survivors agree on the backup — the old leader returns and takes over",
          "[integration][bully]") {
    Cluster c(5, kLoose);
    std::vector<int> all = {1, 2, 3, 4, 5}, survivors = {1, 2, 3, 4};
    for (int id : all) c.start(id, {"--algo", "bully"});
    REQUIRE(Cluster::wait_for([&] { return all_follow(c, all, 5); }, 30));
    // The leader names node 4 as its backup, and every node knows it.
    for (int id : all) {
        auto evs = c.events(id);
        bus::Json last;
        for (auto& e : evs)
            if (e["ev"] == "leader") last = e;
        CHECK(last["backup"] == 4);
        CHECK(last["algo"] == "bully");
    }

    c.kill(5);
    REQUIRE(Cluster::wait_for([&] { return all_follow(c, survivors, 4); }, 30));
    // Somebody noticed and started an election for that reason.
    size_t noticed = 0;
    for (int id : survivors)
        for (auto& e : c.events(id))
            if (e["ev"] == "election.start" && e["reason"] == "leader 5 dead") ++noticed;
    CHECK(noticed >= 1);

    c.start(5, {"--algo", "bully"});  // a new incarnation of the best node: preempt is on by default
    REQUIRE(Cluster::wait_for([&] { return all_follow(c, all, 5); }, 30));

    CHECK(c.stop_all(all));
    CHECK(test::check_traces(c).rfind("0: ok", 0) == 0);
}

TEST_CASE("bully: SIGSTOP the leader, then SIGCONT — replaced while stopped — on waking it takes over "
          "(preempt on) or follows (preempt off)",
          "[integration][bully]") {
    for (bool preempt : {true, false}) {
        INFO("preempt " << preempt);
        Cluster c(4, std::string(kLoose) + (preempt ? "" : " --preempt false"));
        std::vector<int> all = {1, 2, 3, 4}, others = {1, 2, 3};
        for (int id : all) c.start(id, {"--algo", "bully"});
        REQUIRE(Cluster::wait_for([&] { return all_follow(c, all, 4); }, 30));

        c.signal(4, SIGSTOP, "pause");
        REQUIRE(Cluster::wait_for([&] { return all_follow(c, others, 3); }, 30));
        c.signal(4, SIGCONT, "resume");
        int want = preempt ? 4 : 3;
        REQUIRE(Cluster::wait_for([&] { return all_follow(c, all, want); }, 30));
        // Node 4 noticed its stall and rejoined rather than carrying on as leader.
        auto evs4 = c.events(4);
        CHECK(test::count_events(evs4, "node.stall") >= 1);
        CHECK(test::count_events(evs4, "role", "role", "joining") >= 2);

        CHECK(c.stop_all(all));
        CHECK(test::check_traces(c).rfind("0: ok", 0) == 0);
    }
}
