// Helpers shared by unit tests: cluster configurations built in memory and readable views
// of Actions. Pure: no sockets, no files, no clock.
#pragma once

#include <string>
#include <vector>

#include <random>

#include "bus/actions.hpp"
#include "bus/cluster.hpp"
#include "bus/sim_network.hpp"

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

/// An envelope from cluster node `from` carrying `b` (inc 1, seq 1), for feeding a state
/// machine by hand.
bus::Envelope envelope_from(bus::NodeId from, bus::Body b);

/// Injects `n` random faults into `net`, each after a random gap below `max_gap`: crash,
/// restart, pause, resume, isolate, a partition of two, heal. Then the last fault: every
/// node running and resumed, every link healed, no more loss.
void random_faults(bus::SimNetwork& net, std::mt19937_64& rng, int n, bus::Duration max_gap);

/// A fresh directory under /tmp, removed with everything in it when the object goes.
struct TempDir {
    std::string path;
    explicit TempDir(const std::string& prefix = "ftbus-test");
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

/// Trace events named `ev` in `a`.
std::vector<bus::Json> events_named(const bus::Actions& a, const std::string& ev);

}  // namespace test
