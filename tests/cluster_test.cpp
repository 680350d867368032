#include <catch2/catch.hpp>

#include <string>

#include "bus/cluster.hpp"

using namespace bus;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;

namespace {

const char* const kTwoNodes = R"(
[[node]]
id = 2
pub = 7201
peer = 7202

[[node]]
id = 1
name = "KMC"
priority = 10
host = "10.0.0.1"
pub = 7101
peer = 7102
client = 7103
control = 7104
)";

/// The ConfigError message parsing `text` gives; fails the test if it parses.
std::string config_error(const std::string& text) {
    try {
        parse_cluster(text, "test.toml");
    } catch (const ConfigError& e) {
        return e.what();
    }
    FAIL("parse_cluster accepted:\n" << text);
    return {};
}

}  // namespace

TEST_CASE("a valid cluster file is read with defaults filled in", "[unit][cluster]") {
    ClusterConfig cfg = parse_cluster(kTwoNodes, "test.toml");
    CHECK(cfg.path == "test.toml");
    REQUIRE(cfg.nodes.size() == 2);

    SECTION("nodes are sorted by id") {
        CHECK(cfg.nodes[0].id == 1);
        CHECK(cfg.nodes[1].id == 2);
    }
    SECTION("every field of a fully specified node") {
        const NodeSpec& n = cfg.nodes[0];
        CHECK(n.name == "KMC");
        CHECK(n.priority == 10);
        CHECK(n.host == "10.0.0.1");
        CHECK(n.pub == 7101);
        CHECK(n.peer == 7102);
        CHECK(n.client == 7103);
        CHECK(n.control == 7104);
        CHECK(n.endpoint(n.peer) == "tcp://10.0.0.1:7102");
        CHECK(n.label() == "1 (KMC)");
    }
    SECTION("defaults of a minimal node") {
        const NodeSpec& n = cfg.nodes[1];
        CHECK(n.name.empty());
        CHECK(n.priority == 0);
        CHECK(n.host == "127.0.0.1");
        CHECK(n.client == 0);
        CHECK(n.control == 0);
        CHECK(n.label() == "2");
    }
    SECTION("default tunables") {
        CHECK(cfg.tunables.heartbeat == 100ms);
        CHECK(cfg.tunables.suspect_after == 300ms);
        CHECK(cfg.tunables.dead_after == 600ms);
        CHECK(cfg.tunables.startup_grace == 2s);
    }
    SECTION("find() by id") {
        REQUIRE(cfg.find(2) != nullptr);
        CHECK(cfg.find(2)->pub == 7201);
        CHECK(cfg.find(3) == nullptr);
    }
}

TEST_CASE("cluster tunables are parsed from duration strings", "[unit][cluster]") {
    ClusterConfig cfg = parse_cluster(std::string(R"(
[cluster]
heartbeat = "50ms"
suspect_after = "1.5s"
dead_after = "2s"
startup_grace = "500us"
)") + kTwoNodes, "t.toml");
    CHECK(cfg.tunables.heartbeat == 50ms);
    CHECK(cfg.tunables.suspect_after == 1500ms);
    CHECK(cfg.tunables.dead_after == 2s);
    CHECK(cfg.tunables.startup_grace == 500us);
}

TEST_CASE("a partial [cluster] table keeps the other defaults", "[unit][cluster]") {
    ClusterConfig cfg =
        parse_cluster(std::string("[cluster]\ndead_after = \"1s\"\n") + kTwoNodes, "t.toml");
    CHECK(cfg.tunables.heartbeat == 100ms);
    CHECK(cfg.tunables.suspect_after == 300ms);
    CHECK(cfg.tunables.dead_after == 1s);
}

TEST_CASE("the same port on different hosts is allowed", "[unit][cluster]") {
    ClusterConfig cfg = parse_cluster(R"(
[[node]]
id = 1
host = "10.0.0.1"
pub = 7101
peer = 7102
[[node]]
id = 2
host = "10.0.0.2"
pub = 7101
peer = 7102
)", "t.toml");
    CHECK(cfg.nodes.size() == 2);
}

TEST_CASE("a TOML syntax error is a ConfigError naming the file and line", "[unit][cluster]") {
    std::string e = config_error("[[node]]\nid = 1\npub = = 7101\n");
    CHECK_THAT(e, Contains("test.toml"));
    CHECK_THAT(e, Contains("line 3"));
}

TEST_CASE("a cluster file without nodes is a ConfigError", "[unit][cluster]") {
    SECTION("empty") { CHECK_THAT(config_error(""), Contains("no [[node]]")); }
    SECTION("tunables only") {
        CHECK_THAT(config_error("[cluster]\nheartbeat = \"100ms\"\n"), Contains("no [[node]]"));
    }
}

TEST_CASE("a duplicate node id is a ConfigError", "[unit][cluster]") {
    std::string e = config_error(R"(
[[node]]
id = 1
pub = 7101
peer = 7102
[[node]]
id = 1
pub = 7201
peer = 7202
)");
    CHECK_THAT(e, Contains("duplicate node id 1"));
}

TEST_CASE("a port used twice on one host is a ConfigError", "[unit][cluster]") {
    SECTION("across nodes") {
        std::string e = config_error(R"(
[[node]]
id = 1
pub = 7101
peer = 7102
[[node]]
id = 2
pub = 7201
peer = 7101
)");
        CHECK_THAT(e, Contains("port 7101"));
        CHECK_THAT(e, Contains("used twice"));
    }
    SECTION("within one node") {
        std::string e = config_error("[[node]]\nid = 1\npub = 7101\npeer = 7101\n");
        CHECK_THAT(e, Contains("port 7101"));
        CHECK_THAT(e, Contains("used twice"));
    }
}

TEST_CASE("a node without a required port is a ConfigError", "[unit][cluster]") {
    SECTION("missing pub") {
        CHECK_THAT(config_error("[[node]]\nid = 1\npeer = 7102\n"), Contains("lacks 'pub'"));
    }
    SECTION("missing peer") {
        CHECK_THAT(config_error("[[node]]\nid = 1\npub = 7101\n"), Contains("lacks 'peer'"));
    }
    SECTION("pub = 0") {
        CHECK_THAT(config_error("[[node]]\nid = 1\npub = 0\npeer = 7102\n"),
                   Contains("'pub' must be a port"));
    }
    SECTION("missing id") {
        CHECK_THAT(config_error("[[node]]\npub = 7101\npeer = 7102\n"), Contains("lacks 'id'"));
    }
}

TEST_CASE("out-of-range or mistyped node values are a ConfigError", "[unit][cluster]") {
    SECTION("id 0") {
        CHECK_THAT(config_error("[[node]]\nid = 0\npub = 7101\npeer = 7102\n"), Contains("'id'"));
    }
    SECTION("port above 65535") {
        CHECK_THAT(config_error("[[node]]\nid = 1\npub = 70000\npeer = 7102\n"),
                   Contains("'pub' must be an integer in [0, 65535]"));
    }
    SECTION("port as a string") {
        CHECK_THAT(config_error("[[node]]\nid = 1\npub = \"7101\"\npeer = 7102\n"),
                   Contains("'pub'"));
    }
    SECTION("empty host") {
        CHECK_THAT(config_error("[[node]]\nid = 1\nhost = \"\"\npub = 7101\npeer = 7102\n"),
                   Contains("'host'"));
    }
    SECTION("a host a node could not bind: anything but an IPv4 address") {
        for (const char* h : {"bad host!", "-x", "a/b", "[::1", "[zz]", "host:1", "localhost", "[::1]", "1.2.3",
                              "1.2.3.256", "01.2.3.4", " 1.2.3.4"})
            CHECK_THAT(config_error(std::string("[[node]]\nid = 1\nhost = \"") + h + "\"\npub = 7101\npeer = 7102\n"),
                       Contains(std::string("'host' '") + h + "' is not an IPv4 address"));
    }
}

TEST_CASE("plausible hosts: names, IPv4 and bracketed IPv6 pass, spaces, slashes, ports and stray brackets do not",
          "[unit][cluster][badinput]") {
    for (const char* h : {"127.0.0.1", "localhost", "node-1.example.org", "my_host", "[::1]", "[fe80::1]"})
        CHECK(plausible_host(h));
    for (const char* h : {"", "bad host!", "-x", ".x", "a/b", "[::1", "[zz]", "host:1", "a\nb"}) CHECK_FALSE(plausible_host(h));
}

TEST_CASE("an unknown key is a ConfigError naming it", "[unit][cluster]") {
    SECTION("in a node") {
        CHECK_THAT(config_error("[[node]]\nid = 1\npub = 7101\npeer = 7102\nport = 1\n"),
                   Contains("unknown key 'port'"));
    }
    SECTION("in [cluster]") {
        CHECK_THAT(config_error(std::string("[cluster]\nheartbeats = \"1s\"\n") + kTwoNodes),
                   Contains("cluster.heartbeats"));
    }
    SECTION("at top level") {
        CHECK_THAT(config_error(std::string("nodes = 3\n") + kTwoNodes),
                   Contains("unknown top-level key 'nodes'"));
    }
}

TEST_CASE("a tunable that is not a duration string with a unit is a ConfigError",
          "[unit][cluster]") {
    SECTION("bare number string") {
        CHECK_THAT(config_error(std::string("[cluster]\nheartbeat = \"100\"\n") + kTwoNodes),
                   Contains("cluster.heartbeat must be a duration"));
    }
    SECTION("TOML integer") {
        CHECK_THAT(config_error(std::string("[cluster]\nsuspect_after = 300\n") + kTwoNodes),
                   Contains("cluster.suspect_after must be a duration"));
    }
    SECTION("unknown unit") {
        CHECK_THAT(config_error(std::string("[cluster]\ndead_after = \"1hr\"\n") + kTwoNodes),
                   Contains("cluster.dead_after must be a duration"));
    }
    SECTION("the error names the line") {
        CHECK_THAT(config_error(std::string("[cluster]\n\nheartbeat = \"x\"\n") + kTwoNodes),
                   Contains("line 3"));
    }
}

TEST_CASE("suspect_after not longer than heartbeat is a ConfigError", "[unit][cluster]") {
    SECTION("equal") {
        CHECK_THAT(config_error(std::string("[cluster]\nheartbeat = \"300ms\"\n"
                                            "suspect_after = \"300ms\"\n") +
                                kTwoNodes),
                   Contains("suspect_after must be longer than cluster.heartbeat"));
    }
    SECTION("shorter, against the default suspect_after") {
        CHECK_THAT(config_error(std::string("[cluster]\nheartbeat = \"500ms\"\n") + kTwoNodes),
                   Contains("suspect_after must be longer than cluster.heartbeat"));
    }
}

TEST_CASE("other inconsistent tunables are a ConfigError", "[unit][cluster]") {
    SECTION("zero heartbeat") {
        CHECK_THAT(config_error(std::string("[cluster]\nheartbeat = \"0ms\"\n") + kTwoNodes),
                   Contains("heartbeat must be positive"));
    }
    SECTION("dead_after shorter than suspect_after") {
        CHECK_THAT(config_error(std::string("[cluster]\ndead_after = \"200ms\"\n") + kTwoNodes),
                   Contains("dead_after must not be shorter"));
    }
}

TEST_CASE("load_cluster on a missing file is a ConfigError naming the path", "[unit][cluster]") {
    const std::string path = "/nonexistent-ftbus-dir/cluster.toml";
    try {
        load_cluster(path);
        FAIL("load_cluster did not throw");
    } catch (const ConfigError& e) {
        CHECK_THAT(std::string(e.what()), Contains(path));
        CHECK_THAT(std::string(e.what()), Contains("cannot read"));
    }
}

TEST_CASE("election tunables are read, and Raft's timing must make sense", "[unit][cluster]") {
    ClusterConfig cfg = parse_cluster(std::string(R"([cluster]
answer_timeout = "100ms"
coordinator_timeout = "2s"
join_wait = "1s"
preempt = false
election_timeout = "50ms-100ms"
raft_heartbeat = "10ms"
pre_vote = false
check_quorum = false
)") + kTwoNodes, "t.toml");
    const Tunables& t = cfg.tunables;
    CHECK(t.answer_timeout == 100ms);
    CHECK(t.coordinator_timeout == 2s);
    CHECK(t.join_wait == 1s);
    CHECK_FALSE(t.preempt);
    CHECK(t.election_timeout_min == 50ms);
    CHECK(t.election_timeout_max == 100ms);
    CHECK(effective_raft_heartbeat(t) == 10ms);
    CHECK_FALSE(t.pre_vote);
    CHECK_FALSE(t.check_quorum);
    SECTION("defaults: 150-300 ms, heartbeat a third of the minimum") {
        ClusterConfig d = parse_cluster(kTwoNodes, "t.toml");
        CHECK(d.tunables.election_timeout_min == 150ms);
        CHECK(d.tunables.election_timeout_max == 300ms);
        CHECK(effective_raft_heartbeat(d.tunables) == 50ms);
        CHECK(d.tunables.preempt);
    }
    SECTION("errors") {
        CHECK_THAT(config_error(std::string("[cluster]\npreempt = \"yes\"\n") + kTwoNodes),
                   Contains("cluster.preempt must be true or false"));
        CHECK_THAT(config_error(std::string("[cluster]\nelection_timeout = \"300ms-100ms\"\n") + kTwoNodes),
                   Contains("cluster.election_timeout must be a duration or a range"));
        CHECK_THAT(config_error(std::string("[cluster]\nelection_timeout = \"100ms\"\nraft_heartbeat = \"100ms\"\n") +
                                kTwoNodes),
                   Contains("must be positive and shorter than the minimum election timeout"));
        CHECK_THAT(config_error(std::string("[cluster]\nelection_timeout = \"2us\"\n") + kTwoNodes),
                   Contains("Raft heartbeat"));  // a third of 2 µs is 0: it would spin
    }
}
