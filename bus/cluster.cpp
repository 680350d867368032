#include "bus/cluster.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>
#include <toml++/toml.h>

namespace bus {

std::string NodeSpec::label() const {
    return name.empty() ? std::to_string(id) : std::to_string(id) + " (" + name + ")";
}

const NodeSpec* ClusterConfig::find(NodeId id) const {
    for (auto& n : nodes)
        if (n.id == id) return &n;
    return nullptr;
}

namespace {

[[noreturn]] void fail(const std::string& origin, const std::string& what) {
    throw ConfigError(origin + ": " + what);
}

std::string where(const toml::node& n) {
    const auto& src = n.source();
    return "line " + std::to_string(src.begin.line);
}

Duration read_duration(const toml::table& t, std::string_view key, Duration dflt,
                       const std::string& origin) {
    const toml::node* n = t.get(key);
    if (!n) return dflt;
    auto s = n->value<std::string>();
    std::optional<Duration> d = s ? parse_duration(*s) : std::nullopt;
    if (!d)
        fail(origin, where(*n) + ": cluster." + std::string(key) +
                         " must be a duration string with a unit, like \"100ms\"");
    return *d;
}

bool read_bool(const toml::table& t, std::string_view key, bool dflt, const std::string& origin) {
    const toml::node* n = t.get(key);
    if (!n) return dflt;
    auto v = n->value_exact<bool>();
    if (!v) fail(origin, where(*n) + ": cluster." + std::string(key) + " must be true or false");
    return *v;
}

int64_t read_int(const toml::table& t, std::string_view key, int64_t lo, int64_t hi,
                 std::optional<int64_t> dflt, const std::string& ctx, const std::string& origin) {
    const toml::node* n = t.get(key);
    if (!n) {
        if (dflt) return *dflt;
        fail(origin, ctx + " lacks '" + std::string(key) + "'");
    }
    auto v = n->value_exact<int64_t>();
    if (!v || *v < lo || *v > hi)
        fail(origin, where(*n) + ": " + ctx + " '" + std::string(key) + "' must be an integer in [" +
                         std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return *v;
}

}  // namespace

ClusterConfig parse_cluster(std::string_view text, const std::string& origin) {
    toml::table root;
    try {
        root = toml::parse(text, origin);
    } catch (const toml::parse_error& e) {
        fail(origin, "line " + std::to_string(e.source().begin.line) + ": " +
                         std::string(e.description()));
    }
    ClusterConfig cfg;
    cfg.path = origin;
    for (auto& [key, _] : root)
        if (key != "cluster" && key != "node")
            fail(origin, "unknown top-level key '" + std::string(key.str()) + "'");

    if (const toml::node* c = root.get("cluster")) {
        const toml::table* t = c->as_table();
        if (!t) fail(origin, "'cluster' must be a table");
        static const std::set<std::string_view> known = {
            "heartbeat",      "suspect_after",       "dead_after", "startup_grace",
            "answer_timeout", "coordinator_timeout", "join_wait",  "preempt",
            "election_timeout", "raft_heartbeat", "pre_vote", "check_quorum", "detector", "phi_threshold",
            "remove_after", "snapshot_entries"};
        for (auto& [key, _] : *t)
            if (!known.count(key.str()))
                fail(origin, "unknown tunable cluster." + std::string(key.str()));
        Tunables& tu = cfg.tunables;
        tu.heartbeat = read_duration(*t, "heartbeat", tu.heartbeat, origin);
        tu.suspect_after = read_duration(*t, "suspect_after", tu.suspect_after, origin);
        tu.dead_after = read_duration(*t, "dead_after", tu.dead_after, origin);
        tu.startup_grace = read_duration(*t, "startup_grace", tu.startup_grace, origin);
        tu.answer_timeout = read_duration(*t, "answer_timeout", tu.answer_timeout, origin);
        tu.coordinator_timeout =
            read_duration(*t, "coordinator_timeout", tu.coordinator_timeout, origin);
        tu.join_wait = read_duration(*t, "join_wait", tu.join_wait, origin);
        tu.remove_after = read_duration(*t, "remove_after", tu.remove_after, origin);
        tu.preempt = read_bool(*t, "preempt", tu.preempt, origin);
        if (const toml::node* n = t->get("detector")) {
            auto v = n->value<std::string>();
            if (!v || (*v != "fixed" && *v != "phi")) fail(origin, where(*n) + ": cluster.detector must be \"fixed\" or \"phi\"");
            tu.detector = *v;
        }
        if (const toml::node* n = t->get("phi_threshold")) {
            auto v = n->value<double>();
            if (!v || *v <= 0 || *v > 100) fail(origin, where(*n) + ": cluster.phi_threshold must be a number in (0, 100]");
            tu.phi_threshold = *v;
        }
        tu.pre_vote = read_bool(*t, "pre_vote", tu.pre_vote, origin);
        tu.check_quorum = read_bool(*t, "check_quorum", tu.check_quorum, origin);
        tu.raft_heartbeat = read_duration(*t, "raft_heartbeat", tu.raft_heartbeat, origin);
        tu.snapshot_entries = static_cast<uint64_t>(
            read_int(*t, "snapshot_entries", 0, 1'000'000'000, static_cast<int64_t>(tu.snapshot_entries), "cluster", origin));
        if (const toml::node* n = t->get("election_timeout")) {
            auto v = n->value<std::string>();
            auto r = v ? parse_duration_range(*v) : std::nullopt;
            if (!r || r->lo.count() <= 0 || r->hi < r->lo)
                fail(origin, where(*n) + ": cluster.election_timeout must be a duration or a range like "
                                         "\"150ms-300ms\"");
            tu.election_timeout_min = r->lo;
            tu.election_timeout_max = r->hi;
        }
    }

    const toml::array* arr = root["node"].as_array();
    if (!arr || arr->empty()) fail(origin, "no [[node]] entries");
    std::set<std::pair<std::string, int64_t>> ports;
    static const std::set<std::string_view> known = {"id",   "name", "priority", "host",
                                                     "pub",  "peer", "client",   "control"};
    for (const toml::node& n : *arr) {
        const toml::table* t = n.as_table();
        if (!t) fail(origin, "every 'node' must be a table ([[node]])");
        NodeSpec s;
        s.id = static_cast<NodeId>(read_int(*t, "id", 1, 65535, std::nullopt, "a [[node]]", origin));
        std::string ctx = "node " + std::to_string(s.id);
        for (auto& [key, _] : *t)
            if (!known.count(key.str()))
                fail(origin, ctx + " has unknown key '" + std::string(key.str()) + "'");
        if (cfg.find(s.id)) fail(origin, "duplicate node id " + std::to_string(s.id));
        if (const toml::node* nm = t->get("name")) {
            auto v = nm->value<std::string>();
            if (!v) fail(origin, ctx + " 'name' must be a string");
            s.name = *v;
        }
        if (const toml::node* h = t->get("host")) {
            auto v = h->value<std::string>();
            if (!v || v->empty()) fail(origin, ctx + " 'host' must be a non-empty string");
            if (!node_host_ok(*v)) fail(origin, ctx + " 'host' '" + *v + "' " + node_host_rule());
            s.host = *v;
        }
        s.priority = read_int(*t, "priority", INT32_MIN, INT32_MAX, 0, ctx, origin);
        auto port = [&](std::string_view key, bool required) -> uint16_t {
            int64_t p = read_int(*t, key, 0, 65535, required ? std::nullopt : std::optional<int64_t>(0),
                                 ctx, origin);
            if (required && p == 0) fail(origin, ctx + " '" + std::string(key) + "' must be a port");
            if (p != 0 && !ports.insert({s.host, p}).second)
                fail(origin, ctx + " port " + std::to_string(p) + " on " + s.host +
                                 " is used twice in the cluster file");
            return static_cast<uint16_t>(p);
        };
        s.pub = port("pub", true);
        s.peer = port("peer", true);
        s.client = port("client", false);
        s.control = port("control", false);
        cfg.nodes.push_back(std::move(s));
    }
    std::sort(cfg.nodes.begin(), cfg.nodes.end(),
              [](auto& a, auto& b) { return a.id < b.id; });
    const Tunables& tu = cfg.tunables;
    if (tu.heartbeat.count() <= 0) fail(origin, "cluster.heartbeat must be positive");
    if (tu.suspect_after <= tu.heartbeat)
        fail(origin, "cluster.suspect_after must be longer than cluster.heartbeat");
    if (tu.dead_after < tu.suspect_after)
        fail(origin, "cluster.dead_after must not be shorter than cluster.suspect_after");
    if (tu.answer_timeout.count() <= 0) fail(origin, "cluster.answer_timeout must be positive");
    if (tu.coordinator_timeout.count() <= 0)
        fail(origin, "cluster.coordinator_timeout must be positive");
    check_raft_timing(tu, origin);
    return cfg;
}

Duration effective_raft_heartbeat(const Tunables& t) {
    return t.raft_heartbeat.count() > 0 ? t.raft_heartbeat : t.election_timeout_min / 3;
}

void check_raft_timing(const Tunables& t, const std::string& origin) {
    if (t.election_timeout_min.count() <= 0 || t.election_timeout_max < t.election_timeout_min)
        throw ConfigError(origin + ": the election timeout must be a positive duration or range");
    Duration hb = effective_raft_heartbeat(t);
    if (hb.count() <= 0 || hb >= t.election_timeout_min)
        throw ConfigError(origin + ": the Raft heartbeat (" + format_duration(hb) +
                          ") must be positive and shorter than the minimum election timeout (" +
                          format_duration(t.election_timeout_min) + ")");
}

bool plausible_host(std::string_view h) {
    if (h.empty() || h.size() > 253) return false;
    if (h.front() == '[') {
        if (h.size() < 3 || h.back() != ']') return false;
        for (char c : h.substr(1, h.size() - 2))
            if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return false;
        return true;
    }
    if (h.front() == '-' || h.front() == '.') return false;
    for (char c : h)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') return false;
    return true;
}

bool node_host_ok(std::string_view h) {
    in_addr a{};
    return h.size() < 16 && ::inet_pton(AF_INET, std::string(h).c_str(), &a) == 1;
}

std::string node_host_rule() {
    return "is not an IPv4 address (a node binds its host, and ZeroMQ binds addresses, not names: "
           "e.g. 127.0.0.1)";
}

ClusterConfig load_cluster(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw ConfigError(path + ": cannot read the cluster file");
    std::stringstream ss;
    ss << in.rdbuf();
    return parse_cluster(ss.str(), path);
}

}  // namespace bus
