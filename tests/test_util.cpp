#include "test_util.hpp"

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

std::vector<bus::Json> events_named(const bus::Actions& a, const std::string& ev) {
    std::vector<bus::Json> out;
    for (auto& e : a.events)
        if (e.ev == ev) out.push_back(e.fields);
    return out;
}

}  // namespace test
