#include "test_util.hpp"

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

namespace test {

bus::ClusterConfig make_cluster(int n, const std::string& cluster_toml, const std::vector<int64_t>& priorities) {
    std::string t = "[cluster]\n" + cluster_toml + "\n";
    for (int i = 1; i <= n; ++i) {
        int64_t prio = static_cast<size_t>(i - 1) < priorities.size() ? priorities[static_cast<size_t>(i - 1)] : 0;
        t += "[[node]]\nid = " + std::to_string(i) + "\npriority = " + std::to_string(prio) +
             "\npub = " + std::to_string(20000 + 10 * i) + "\npeer = " + std::to_string(20001 + 10 * i) + "\n";
    }
    return bus::parse_cluster(t, "test-cluster");
}

TempDir::TempDir(const std::string& prefix) {
    std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
}

bus::Envelope envelope_from(bus::NodeId from, bus::Body b) {
    bus::Envelope e;
    e.from = from;
    e.inc = 1;
    e.seq = 1;
    e.body = std::move(b);
    return e;
}

void random_faults(bus::SimNetwork& net, std::mt19937_64& rng, int n, bus::Duration max_gap) {
    auto ids = net.ids();
    auto pick = [&] { return ids[rng() % ids.size()]; };
    for (int f = 0; f < n; ++f) {
        net.run_for(bus::Duration(static_cast<int64_t>(rng() % static_cast<uint64_t>(max_gap.count()))));
        bus::NodeId id = pick();
        switch (rng() % 7) {
            case 0: net.crash(id); break;
            case 1: net.start(id); break;  // restart (or start a crashed one), from its disk
            case 2: net.pause(id); break;
            case 3: net.resume(id); break;
            case 4: net.isolate(id); break;
            case 5: net.partition({{id, pick()}}); break;
            case 6: net.heal(); break;
        }
    }
    for (bus::NodeId id : ids) {
        if (!net.is_running(id)) net.start(id);
        net.resume(id);
    }
    net.heal();
    net.set_drop(0);
}

std::vector<bus::Json> events_named(const bus::Actions& a, const std::string& ev) {
    std::vector<bus::Json> out;
    for (auto& e : a.events)
        if (e.ev == ev) out.push_back(e.fields);
    return out;
}

}  // namespace test
