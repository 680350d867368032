// Helpers shared by unit tests: cluster configurations built in memory and readable views
// of Actions. Pure: no sockets, no files, no clock.
#pragma once

#include <string>
#include <vector>

#include "bus/actions.hpp"
#include "bus/cluster.hpp"

namespace test {

/// A cluster of nodes 1..n on 127.0.0.1 (ports are never bound in unit tests), with
/// `cluster_toml` lines added to [cluster] and optional priorities (index i -> node i+1).
bus::ClusterConfig make_cluster(int n, const std::string& cluster_toml = "",
                                const std::vector<int64_t>& priorities = {});

/// Messages of one body type in `a`, in order.
template <typename Body>
std::vector<std::pair<bus::Outgoing, Body>> sent_of(const bus::Actions& a) {
    std::vector<std::pair<bus::Outgoing, Body>> out;
    for (auto& o : a.out)
        if (auto* b = std::get_if<Body>(&o.body)) out.emplace_back(o, *b);
    return out;
}

/// Trace events named `ev` in `a`.
std::vector<bus::Json> events_named(const bus::Actions& a, const std::string& ev);

}  // namespace test
