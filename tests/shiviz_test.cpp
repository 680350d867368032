// The ShiViz export, validated by ShiViz's own parsing rules (applied here as ShiViz applies
// them: its default regex, then the vector-clock checks of its parser): hand-made traces with
// events out of order, restarts and lost sends, and a real simulator trace.
#include <catch2/catch.hpp>

#include <regex>
#include <sstream>

#include "bus/bully.hpp"
#include "bus/shiviz.hpp"
#include "bus/sim_network.hpp"
#include "test_util.hpp"

using namespace bus;
using namespace std::chrono_literals;

namespace {

struct Parsed {
    std::vector<std::string> hosts;  // per event
    std::vector<Json> clocks;
    std::vector<std::string> texts;
};

/// Parses `log` with ShiViz's default regex and checks ShiViz's rules; "" if it would load.
std::string shiviz_violation(const std::string& log, Parsed* parsed = nullptr) {
    // ShiViz applies (?<event>.*)\n(?<host>\S*) (?<clock>{.*}) to the whole text.
    static const std::regex kPair(R"(([^\n]*)\n(\S*) (\{[^\n]*\})\n)");
    Parsed p;
    size_t consumed = 0;
    for (auto it = std::sregex_iterator(log.begin(), log.end(), kPair); it != std::sregex_iterator(); ++it) {
        if (static_cast<size_t>(it->position()) != consumed) return "text ShiViz cannot parse at offset " + std::to_string(consumed);
        consumed += static_cast<size_t>(it->length());
        Json clock = Json::parse((*it)[3].str(), nullptr, false);
        if (!clock.is_object()) return "a clock that is not a JSON object: " + (*it)[3].str();
        p.texts.push_back((*it)[1].str());
        p.hosts.push_back((*it)[2].str());
        p.clocks.push_back(clock);
    }
    if (consumed != log.size()) return "trailing text ShiViz cannot parse";
    std::map<std::string, uint64_t> own;        // host -> last own count
    std::map<std::string, Json> last_clock;     // host -> its previous clock
    for (size_t i = 0; i < p.hosts.size(); ++i) {
        const std::string& h = p.hosts[i];
        const Json& c = p.clocks[i];
        if (!c.contains(h)) return "event " + std::to_string(i) + ": the clock does not name its own host " + h;
        for (auto& [k, v] : c.items())
            if (!v.is_number_unsigned() || v.get<uint64_t>() == 0) return "event " + std::to_string(i) + ": entry " + k + " is not a positive integer";
        uint64_t mine = c[h].get<uint64_t>();
        if (mine != own[h] + 1)
            return "event " + std::to_string(i) + ": host " + h + " counts " + std::to_string(mine) + " after " +
                   std::to_string(own[h]);
        own[h] = mine;
        if (last_clock.count(h))
            for (auto& [k, v] : last_clock[h].items())
                if (!c.contains(k) || c[k].get<uint64_t>() < v.get<uint64_t>())
                    return "event " + std::to_string(i) + ": host " + h + "'s clock went back for " + k;
        last_clock[h] = c;
    }
    // Every other-host entry names an event that exists.
    for (size_t i = 0; i < p.hosts.size(); ++i)
        for (auto& [k, v] : p.clocks[i].items())
            if (!own.count(k) || v.get<uint64_t>() > own[k])
                return "event " + std::to_string(i) + ": refers to event " + v.dump() + " of " + k + ", which does not exist";
    if (parsed) *parsed = p;
    return "";
}

Json ev(const Json& node, uint64_t inc, uint64_t seq, const std::string& name, Json fields = Json::object()) {
    fields["t"] = 1'700'000'000'000'000 + seq;
    fields["node"] = node;
    fields["inc"] = inc;
    fields["seq"] = seq;
    fields["lc"] = seq;
    fields["ev"] = name;
    return fields;
}

std::string export_all(const std::vector<Json>& events, ShivizExporter** keep = nullptr) {
    std::string out;
    static std::unique_ptr<ShivizExporter> ex;
    ex = std::make_unique<ShivizExporter>([&out](const std::string& s) { out += s; });
    for (auto& e : events) ex->add(e);
    ex->finish();
    if (keep) *keep = ex.get();
    return out;
}

}  // namespace

TEST_CASE("shiviz: a receive is ordered after its send, whatever the input order", "[unit][shiviz]") {
    Json id = Json::array({1, 100, 1});
    std::vector<Json> events = {
        ev(2, 200, 1, "node.start"),
        ev(2, 200, 2, "msg.recv", {{"from", 1}, {"type", "ELECTION"}, {"id", id}}),  // before its send
        ev(2, 200, 3, "leader", {{"leader", 2}}),
        ev(1, 100, 1, "msg.send", {{"to", 2}, {"type", "ELECTION"}, {"id", id}}),
        ev(1, 100, 2, "node.stop", {{"reason", "SIGTERM"}}),
    };
    ShivizExporter* ex = nullptr;
    std::string log = export_all(events, &ex);
    Parsed p;
    INFO(log);
    REQUIRE(shiviz_violation(log, &p).empty());
    REQUIRE(p.hosts.size() == 5);
    CHECK(ex->unmatched() == 0);
    // The receive knows of the send: 1@100's entry is 1 there.
    size_t recv = 0;
    for (size_t i = 0; i < p.texts.size(); ++i)
        if (p.texts[i].rfind("msg.recv", 0) == 0) recv = i;
    CHECK(p.hosts[recv] == "2@200");
    CHECK(p.clocks[recv]["1@100"] == 1);
    CHECK(p.clocks[recv]["2@200"] == 2);
    CHECK(p.texts[recv].find("type=ELECTION") != std::string::npos);
}

TEST_CASE("shiviz: a restart is a new host — a lost send leaves a local event — junk is skipped", "[unit][shiviz]") {
    std::vector<Json> events = {
        ev(1, 100, 1, "node.start"),
        ev(1, 101, 1, "node.start"),  // restarted: its own host, counting from 1
        ev(2, 200, 1, "msg.recv", {{"from", 1}, {"type", "LEADER"}, {"id", Json::array({1, 99, 7})}}),
        Json::array({1, 2}),
        Json{{"ev", "no node"}},
        ev("c-ab12", 5, 1, "rpc.ack", {{"op", "append"}}),  // a client host
    };
    ShivizExporter* ex = nullptr;
    std::string log = export_all(events, &ex);
    Parsed p;
    REQUIRE(shiviz_violation(log, &p).empty());
    CHECK(std::set<std::string>(p.hosts.begin(), p.hosts.end()) ==
          std::set<std::string>{"1@100", "1@101", "2@200", "c-ab12@5"});
    CHECK(ex->unmatched() == 1);
    CHECK(ex->skipped() == 2);
}

TEST_CASE("shiviz: the validator itself catches what ShiViz would reject", "[unit][shiviz]") {
    CHECK(shiviz_violation("a\n1@1 {\"1@1\":1}\n").empty());
    CHECK_FALSE(shiviz_violation("a\n1@1 {\"2@1\":1}\n").empty());                    // no own entry
    CHECK_FALSE(shiviz_violation("a\n1@1 {\"1@1\":2}\n").empty());                    // not from 1
    CHECK_FALSE(shiviz_violation("a\n1@1 {\"1@1\":1}\nb\n1@1 {\"1@1\":3}\n").empty());  // skips 2
    CHECK_FALSE(shiviz_violation("a\n1@1 {\"1@1\":1,\"2@1\":4}\n").empty());          // no such event
    CHECK_FALSE(shiviz_violation("a\n1@1 not json\n").empty());
}

TEST_CASE("shiviz: a real simulator trace (bully, a crash, a restart) exports to a valid ShiViz log",
          "[unit][shiviz]") {
    SimOptions o;
    o.seed = 7;
    o.trace = true;
    o.trace_level = TraceLevel::msgs;
    ClusterConfig cfg = test::make_cluster(4);
    SimNetwork net(cfg, [cfg](NodeId id, uint64_t, const HardState&, std::mt19937_64&) { return std::make_unique<Bully>(cfg, id); }, o);
    net.start_all();
    net.run_for(2s);
    net.crash(4);
    net.run_for(2s);
    net.start(4);
    net.run_for(2s);
    std::vector<Json> events;
    for (auto& l : net.trace_lines()) events.push_back(Json::parse(l));
    ShivizExporter* ex = nullptr;
    std::string log = export_all(events, &ex);
    Parsed p;
    REQUIRE(shiviz_violation(log, &p).empty());
    CHECK(ex->exported() == events.size());
    CHECK(ex->unmatched() == 0);
    CHECK(ex->hosts() == 6);  // 4 nodes, 4's second incarnation, and "ctl"
    // Some receives carry another host's entry: the arrows ShiViz draws.
    size_t merged = 0;
    for (size_t i = 0; i < p.clocks.size(); ++i) merged += p.clocks[i].size() > 1;
    CHECK(merged > 10);
}
