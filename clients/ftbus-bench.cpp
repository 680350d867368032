// ftbus-bench: measures a running cluster from outside, as a client would (figures, not
// tests). Three benchmarks:
//
//   raft   N proposers, each with one PROPOSE in flight at a time (closed loop), against a
//          replicated log (ftbus-elect --algo raft on every node of --cluster). Prints
//          entries committed per second, commit latency (send of PROPOSE to its ok reply)
//          p50/p99/max, and the cluster's fsyncs per second over the same window (each
//          node's control port: `fsyncs` in its status) — fewer fsyncs than entries is
//          group commit at work.
//
//   lock   N clients of the lock service (ftbus-lockd), each in its own session:
//          cycles      each client acquires and releases its own lock in a loop (one
//                      client: one lock): cycles/s and cycle latency p50/p99/max;
//          contended   every client acquires and releases one shared lock: hand-overs/s
//                      (every grant is one; waiters are pushed their grant);
//          with the cluster's fsyncs/s beside. --gaps also prints the longest time between
//          two completed cycles (a failover shows as one; scripts/bench-lock kills the leader).
//
//   floor  what the machine allows, without ftbus: the p50 of a ZeroMQ DEALER->ROUTER round
//          trip on loopback (two contexts, as two processes have) and of a 128-byte write +
//          fdatasync into a preallocated file in --dir (as the Raft log does). A commit
//          needs two round trips (client-leader, leader-follower) and a follower's fsync;
//          a lock cycle is two commits. Then the same fsync with --writers (3) threads
//          doing it at once, each on its own file: replicas on one machine share its disk,
//          and their fsyncs of the same entry queue behind each other there. Printed beside
//          the figures above, because a shared VM's floor moves from hour to hour.
//
// Proposers find the leader themselves (a follower's reply names it) and re-send after a
// timeout. Results go to stdout (one line, or JSON with --json); progress to stderr.
// Exit codes: 0 figures printed; 1 nothing committed (raft: no figures, one line on stderr
// saying why: no replica answered, or no leader); 2 usage.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "bus/duration.hpp"
#include "bus/flags.hpp"
#include "bus/lock_client.hpp"
#include "bus/protocol.hpp"
#include "bus/transport.hpp"

namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

/// One JSON request to a node's control port; nullopt if it does not answer in time.
std::optional<Json> control(zmq::context_t& ctx, const std::string& endpoint, const Json& req) {
    zmq::socket_t s = bus::make_socket(ctx, zmq::socket_type::req);
    s.connect(endpoint);
    std::string body = req.dump();
    s.send(zmq::buffer(body), zmq::send_flags::dontwait);
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, std::chrono::milliseconds(1000)) <= 0) return std::nullopt;
    zmq::message_t msg;
    if (!s.recv(msg, zmq::recv_flags::dontwait)) return std::nullopt;
    Json j = Json::parse(msg.to_string(), nullptr, false);
    if (j.is_discarded()) return std::nullopt;
    return j;
}

/// fsyncs so far of each replica (its control port's status), and when it answered;
/// no count for one that does not answer (killed).
struct FsyncReading {
    std::optional<uint64_t> count;
    Clock::time_point at;
};
using FsyncCounts = std::vector<FsyncReading>;

/// nullopt if a node has no control port.
std::optional<FsyncCounts> cluster_fsyncs(zmq::context_t& ctx, const bus::ClusterConfig& cfg) {
    FsyncCounts counts;
    for (const bus::NodeSpec& n : cfg.nodes) {
        if (!n.control) return std::nullopt;
        auto s = control(ctx, n.endpoint(n.control), {{"op", "status"}});
        FsyncReading r{std::nullopt, Clock::now()};
        if (s && s->contains("fsyncs") && (*s)["fsyncs"].is_number_unsigned()) r.count = (*s)["fsyncs"].get<uint64_t>();
        counts.push_back(r);
    }
    return counts;
}

/// fsyncs per second between two readings: the sum of each replica's rate over its own
/// interval (a replica that does not answer costs the others a timeout), over the replicas
/// that answered both; one restarted in between (its count went back) counts from its
/// restart. nullopt if none answered both.
std::optional<double> fsync_rate(const std::optional<FsyncCounts>& before, const std::optional<FsyncCounts>& after) {
    if (!before || !after || before->size() != after->size()) return std::nullopt;
    double rate = 0;
    bool any = false;
    for (size_t i = 0; i < before->size(); ++i) {
        const FsyncReading &b = (*before)[i], &a = (*after)[i];
        double secs = std::chrono::duration<double>(a.at - b.at).count();
        if (!a.count || !b.count || secs <= 0) continue;
        uint64_t n = *a.count >= *b.count ? *a.count - *b.count : *a.count;
        rate += static_cast<double>(n) / secs;
        any = true;
    }
    if (!any) return std::nullopt;
    return rate;
}

struct Proposer {
    zmq::socket_t sock;
    std::string id;
    bus::NodeId node = 0;  ///< the node it talks to
    uint64_t seq = 0, req = 0;
    bool waiting = false;
    Clock::time_point sent{};
    Clock::time_point retry_at{};  ///< no leader known: try again then
};

double percentile(std::vector<double>& v, double p) {
    if (v.empty()) return 0;
    size_t k = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

int bench_raft(const bus::ClusterConfig& cfg, int proposers, bus::Duration duration, bus::Duration warmup,
               size_t size, bus::Duration timeout, bool json) {
    std::vector<const bus::NodeSpec*> nodes;
    for (const bus::NodeSpec& n : cfg.nodes)
        if (n.client) nodes.push_back(&n);
    if (nodes.empty()) throw bus::ConfigError(cfg.path + ": no node has a client port");
    zmq::context_t ctx(1);
    auto endpoint_of = [&](bus::NodeId id) {
        for (auto* n : nodes)
            if (n->id == id) return n->endpoint(n->client);
        return std::string();
    };
    std::mt19937_64 rng(static_cast<uint64_t>(::getpid()));
    std::string data(size, 'x');
    uint64_t inc = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
    std::vector<Proposer> ps(static_cast<size_t>(proposers));
    for (int k = 0; k < proposers; ++k) {
        Proposer& p = ps[static_cast<size_t>(k)];
        p.id = "bench-" + std::to_string(::getpid()) + "-" + std::to_string(k);
        p.node = nodes[static_cast<size_t>(k) % nodes.size()]->id;
        p.sock = bus::make_socket(ctx, zmq::socket_type::dealer);
        p.sock.set(zmq::sockopt::routing_id, p.id);
        p.sock.connect(endpoint_of(p.node));
    }
    auto go_to = [&](Proposer& p, bus::NodeId node) {
        if (node == p.node) return;
        p.sock.disconnect(endpoint_of(p.node));
        p.node = node;
        p.sock.connect(endpoint_of(p.node));
    };
    auto send = [&](Proposer& p) {
        bus::Envelope env;
        env.from = p.id;
        env.inc = inc;
        env.seq = ++p.seq;
        env.body = bus::Propose{++p.req, data};
        std::string frame = bus::encode(env);
        p.sent = Clock::now();
        p.waiting = p.sock.send(zmq::buffer(frame), zmq::send_flags::dontwait).has_value();
        if (!p.waiting) p.retry_at = p.sent + std::chrono::milliseconds(10);
    };
    auto fsyncs = [&] { return cluster_fsyncs(ctx, cfg); };

    std::vector<double> lat_ms;
    uint64_t committed = 0, refused = 0, timeouts = 0;
    uint64_t answers = 0;  // PROPOSE_REPLYs received, over the whole run: none means no replica is up
    bool leader_named = false;  // a reply (ok, or a refusal naming one) showed a leader
    Clock::time_point start = Clock::now(), measure_from = start + warmup, end = measure_from + duration;
    std::optional<FsyncCounts> fsyncs_before, fsyncs_after;
    bool measuring = false;
    for (auto& p : ps) send(p);
    std::vector<zmq::pollitem_t> items;
    for (auto& p : ps) items.push_back({p.sock.handle(), 0, ZMQ_POLLIN, 0});
    for (;;) {
        Clock::time_point now = Clock::now();
        if (!measuring && now >= measure_from) {
            measuring = true;
            fsyncs_before = fsyncs();
            measure_from = Clock::now();  // the status queries are not part of the window
            end = measure_from + duration;
            lat_ms.clear();
            committed = 0;
        }
        if (measuring && now >= end) break;
        zmq::poll(items, std::chrono::milliseconds(5));
        now = Clock::now();
        for (size_t k = 0; k < ps.size(); ++k) {
            Proposer& p = ps[k];
            for (;;) {
                zmq::message_t msg;
                if (!p.sock.recv(msg, zmq::recv_flags::dontwait)) break;
                bus::DecodeResult d = bus::decode(msg.to_string_view());
                const bus::ProposeReply* r = d.env ? std::get_if<bus::ProposeReply>(&d.env->body) : nullptr;
                if (r) ++answers;
                if (r && (r->ok || r->leader != 0)) leader_named = true;
                if (!r || r->req != p.req || !p.waiting) continue;  // a stale or foreign answer
                p.waiting = false;
                if (r->ok) {
                    if (measuring) {
                        ++committed;
                        lat_ms.push_back(std::chrono::duration<double, std::milli>(now - p.sent).count());
                    }
                    send(p);
                } else {
                    ++refused;
                    bus::NodeId next = r->leader;
                    if (next == 0 || next == p.node) {  // no leader known: try another node soon
                        next = nodes[rng() % nodes.size()]->id;
                        p.retry_at = now + std::chrono::milliseconds(50);
                    } else {
                        p.retry_at = now;
                    }
                    go_to(p, next);
                }
            }
            if (!p.waiting && now >= p.retry_at) send(p);
            if (p.waiting && now - p.sent > timeout) {  // lost, or a dead node: elsewhere
                ++timeouts;
                go_to(p, nodes[rng() % nodes.size()]->id);
                send(p);
            }
        }
    }
    double secs = std::chrono::duration<double>(Clock::now() - measure_from).count();
    if (committed == 0) {  // no figures to print: say why, on stderr (exit 1)
        char why[160];
        if (answers == 0)
            std::snprintf(why, sizeof why, "no replica answered in %.1f s (%llu timeouts): is the cluster running?",
                          std::chrono::duration<double>(Clock::now() - start).count(),
                          static_cast<unsigned long long>(timeouts));
        else if (!leader_named)
            std::snprintf(why, sizeof why, "nothing committed in %.1f s: no leader (%llu refusals)", secs,
                          static_cast<unsigned long long>(refused));
        else
            std::snprintf(why, sizeof why, "nothing committed in %.1f s (%llu refusals, %llu timeouts)", secs,
                          static_cast<unsigned long long>(refused), static_cast<unsigned long long>(timeouts));
        std::cerr << "ftbus-bench: raft: " << why << "\n";
        return bus::kExitFailure;
    }
    fsyncs_after = fsyncs();
    double rate = static_cast<double>(committed) / secs;
    std::optional<double> fsyncs_per_s = fsync_rate(fsyncs_before, fsyncs_after);
    double p50 = percentile(lat_ms, 0.50), p99 = percentile(lat_ms, 0.99);
    double max = lat_ms.empty() ? 0 : *std::max_element(lat_ms.begin(), lat_ms.end());
    if (json) {
        Json j = {{"bench", "raft"}, {"proposers", proposers}, {"size", size}, {"seconds", secs},
                  {"committed", committed}, {"per_s", rate}, {"p50_ms", p50}, {"p99_ms", p99}, {"max_ms", max},
                  {"refused", refused}, {"timeouts", timeouts}};
        j["fsyncs_per_s"] = fsyncs_per_s ? Json(*fsyncs_per_s) : Json(nullptr);
        std::cout << j.dump() << "\n";
    } else {
        std::printf("raft: %d proposer%s, %zu-byte entries, %.1f s: %.0f entries/s committed, latency p50 %.2f ms "
                    "p99 %.2f ms max %.2f ms; fsyncs %s/s (all replicas)%s\n",
                    proposers, proposers == 1 ? "" : "s", size, secs, rate, p50, p99, max,
                    fsyncs_per_s ? std::to_string(static_cast<long>(*fsyncs_per_s)).c_str() : "?",
                    timeouts ? (", " + std::to_string(timeouts) + " timeouts").c_str() : "");
    }
    return bus::kExitOk;
}

/// Times `rounds` write+fdatasync of 128 bytes (each at the end of what was written, in a
/// preallocated file, as the Raft log does) in each of `writers` threads at once, each on its
/// own file in `dir`: every latency, in µs. The files are unlinked at once: nothing is left behind.
/// \throws bus::ConfigError if a file cannot be made or a write or fsync fails.
std::vector<double> time_fsyncs(const std::string& dir, int rounds, int writers) {
    using Us = std::chrono::duration<double, std::micro>;
    std::vector<int> fds;
    auto close_all = [&] {
        for (int fd : fds) ::close(fd);
    };
    for (int w = 0; w < writers; ++w) {
        std::string path = dir + "/ftbus-bench-fsync" + std::to_string(w) + ".tmp";
        int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            std::string why = std::strerror(errno);
            close_all();
            throw bus::ConfigError("cannot create " + path + ": " + why);
        }
        ::unlink(path.c_str());
        fds.push_back(fd);
        if ((::fallocate(fd, 0, 0, static_cast<off_t>(rounds + 1) * 128) != 0 && errno != EOPNOTSUPP) ||
            ::fsync(fd) != 0) {
            std::string why = std::strerror(errno);
            close_all();
            throw bus::ConfigError("cannot preallocate a file in " + dir + ": " + why);
        }
    }
    std::vector<std::vector<double>> took(writers);
    std::vector<std::string> failed(writers);
    {
        std::vector<std::jthread> threads;
        for (int w = 0; w < writers; ++w)
            threads.emplace_back([&, w] {
                char buf[128];
                std::memset(buf, 'x', sizeof buf);
                for (int i = 0; i < rounds; ++i) {
                    auto t0 = Clock::now();
                    if (::pwrite(fds[w], buf, sizeof buf, static_cast<off_t>(i) * 128) != static_cast<ssize_t>(sizeof buf) ||
                        ::fdatasync(fds[w]) != 0) {
                        failed[w] = std::strerror(errno);
                        return;
                    }
                    took[w].push_back(Us(Clock::now() - t0).count());
                }
            });
    }  // joined here
    close_all();
    std::vector<double> all;
    for (int w = 0; w < writers; ++w) {
        if (!failed[w].empty()) throw bus::ConfigError("write+fdatasync in " + dir + " failed: " + failed[w]);
        all.insert(all.end(), took[w].begin(), took[w].end());
    }
    return all;
}

int bench_floor(const std::string& dir, int rounds, int writers, bool json) {
    using Us = std::chrono::duration<double, std::micro>;
    // ZeroMQ round trip: an echoing ROUTER in a thread with its own context (and I/O thread).
    // Every socket is made before the thread starts, and the thread is joined on every path.
    zmq::context_t server_ctx(1), client_ctx(1);
    zmq::socket_t router(server_ctx, zmq::socket_type::router);
    router.set(zmq::sockopt::linger, 0);
    router.set(zmq::sockopt::rcvtimeo, 5000);
    router.bind("tcp://127.0.0.1:*");
    zmq::socket_t dealer(client_ctx, zmq::socket_type::dealer);
    dealer.set(zmq::sockopt::linger, 0);
    dealer.set(zmq::sockopt::rcvtimeo, 5000);
    dealer.connect(router.get(zmq::sockopt::last_endpoint));
    std::vector<double> rtt_us;
    bool echoed = true;
    {
        std::jthread echo([&] {
            try {
                for (int i = 0; i <= rounds; ++i) {
                    zmq::message_t id, m;
                    if (!router.recv(id) || !router.recv(m)) return;  // 5 s of silence: the client gave up
                    (void)router.send(id, zmq::send_flags::sndmore);
                    (void)router.send(m, zmq::send_flags::none);
                }
            } catch (const zmq::error_t&) {  // the client sees no echo and says so
            }
        });
        for (int i = 0; i <= rounds && echoed; ++i) {
            auto t0 = Clock::now();
            echoed = dealer.send(zmq::str_buffer("ping 0123456789abcdef0123456789abcdef"), zmq::send_flags::none)
                         .has_value();
            zmq::message_t m;
            echoed = echoed && dealer.recv(m).has_value();
            if (i > 0) rtt_us.push_back(Us(Clock::now() - t0).count());  // the first one connects
        }
    }  // joined here
    if (!echoed) throw bus::ConfigError("no echo from a local ZeroMQ socket within 5 s");
    std::vector<double> sync_us = time_fsyncs(dir, rounds, 1);
    std::vector<double> shared_us = time_fsyncs(dir, rounds, writers);
    double rtt = percentile(rtt_us, 0.5), sync = percentile(sync_us, 0.5), shared = percentile(shared_us, 0.5);
    double commit_us = 2 * rtt + sync, cycle_ms = 2 * commit_us / 1000;
    double shared_commit_us = 2 * rtt + shared, shared_cycle_ms = 2 * shared_commit_us / 1000;
    if (json) {
        std::cout << Json{{"bench", "floor"},
                          {"rounds", rounds},
                          {"writers", writers},
                          {"zmq_rtt_p50_us", rtt},
                          {"fdatasync_p50_us", sync},
                          {"commit_floor_us", commit_us},
                          {"lock_cycle_floor_ms", cycle_ms},
                          {"fdatasync_shared_p50_us", shared},
                          {"commit_floor_shared_us", shared_commit_us},
                          {"lock_cycle_floor_shared_ms", shared_cycle_ms}}
                         .dump()
                  << "\n";
    } else {
        std::printf("machine floor: ZeroMQ round trip on loopback p50 %.0f us, 128-byte write+fdatasync p50 %.0f us "
                    "(in %s): a commit needs at least 2 round trips + 1 fsync = %.0f us, a lock cycle (2 commits) "
                    "%.2f ms, i.e. at most %.0f cycles/s for one client before any processing; with %d writers "
                    "fsyncing at once on this disk (as %d replicas on one machine do) an fsync takes %.0f us: "
                    "%.0f us per commit, at most %.0f cycles/s\n",
                    rtt, sync, dir.c_str(), commit_us, cycle_ms, 1000 / cycle_ms, writers, writers, shared,
                    shared_commit_us, 1000 / shared_cycle_ms);
    }
    return bus::kExitOk;
}

int bench_lock(const bus::ClusterConfig& cfg, int clients, bool contended, bus::Duration duration, bus::Duration warmup,
               bool gaps, bool json) {
    zmq::context_t ctx(1);
    auto fsyncs = [&] { return cluster_fsyncs(ctx, cfg); };
    std::atomic<bool> measuring{false}, stop{false};
    std::mutex mu;
    std::vector<double> lat_ms;
    std::vector<double> gap_ms;
    std::atomic<uint64_t> cycles{0}, errors{0};
    std::vector<std::thread> threads;
    for (int k = 0; k < clients; ++k) {
        threads.emplace_back([&, k] {
            bus::LockClientOptions o;
            o.deadline = std::chrono::seconds(30);
            o.ttl_ms = 5000;
            o.context = &ctx;  // one context (and I/O thread) for the process, as an application would
            std::string lock = contended ? "bench-shared" : "bench-" + std::to_string(k);
            try {
                bus::LockClient c(cfg, o);
                c.open();
                Clock::time_point last = Clock::now();
                double worst_gap = 0;
                std::vector<double> mine;
                while (!stop) {
                    Clock::time_point t0 = Clock::now();
                    try {
                        uint64_t token = c.acquire(lock, std::chrono::seconds(30));
                        if (!token) {  // not granted in 30 s: not a cycle
                            ++errors;
                            continue;
                        }
                        c.release(lock, token);
                    } catch (const bus::LockError&) {
                        ++errors;
                        continue;
                    }
                    Clock::time_point t1 = Clock::now();
                    if (measuring) {
                        ++cycles;
                        mine.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
                        worst_gap = std::max(worst_gap, std::chrono::duration<double, std::milli>(t1 - last).count());
                    }
                    last = t1;
                }
                c.close();
                std::lock_guard<std::mutex> g(mu);
                lat_ms.insert(lat_ms.end(), mine.begin(), mine.end());
                gap_ms.push_back(worst_gap);
            } catch (const std::exception& e) {
                std::cerr << "ftbus-bench: client " << k << ": " << e.what() << "\n";
                ++errors;
            }
        });
    }
    std::this_thread::sleep_for(warmup);
    auto before = fsyncs();
    Clock::time_point from = Clock::now();
    measuring = true;
    std::this_thread::sleep_for(duration);
    measuring = false;
    double secs = std::chrono::duration<double>(Clock::now() - from).count();
    auto after = fsyncs();
    stop = true;
    for (auto& t : threads) t.join();
    double rate = static_cast<double>(cycles.load()) / secs;
    std::optional<double> fsyncs_per_s = fsync_rate(before, after);
    double p50 = percentile(lat_ms, 0.50), p99 = percentile(lat_ms, 0.99);
    double max = lat_ms.empty() ? 0 : *std::max_element(lat_ms.begin(), lat_ms.end());
    double gap = gap_ms.empty() ? 0 : *std::max_element(gap_ms.begin(), gap_ms.end());
    const char* what = contended ? "hand-overs" : "cycles";
    if (json) {
        Json j = {{"bench", contended ? "lock-contended" : "lock-cycles"}, {"clients", clients}, {"seconds", secs},
                  {what, cycles.load()}, {"per_s", rate}, {"p50_ms", p50}, {"p99_ms", p99}, {"max_ms", max},
                  {"errors", errors.load()}, {"longest_gap_ms", gap}};
        j["fsyncs_per_s"] = fsyncs_per_s ? Json(*fsyncs_per_s) : Json(nullptr);
        std::cout << j.dump() << "\n";
    } else {
        std::printf("lock %s: %d client%s%s, %.1f s: %.0f %s/s (acquire+release), latency p50 %.2f ms p99 %.2f ms "
                    "max %.2f ms; fsyncs %s/s (all replicas)%s",
                    contended ? "contended" : "cycles", clients, clients == 1 ? "" : "s",
                    contended ? " on one lock" : (clients == 1 ? "" : " on their own locks"), secs, rate, what, p50, p99,
                    max, fsyncs_per_s ? std::to_string(static_cast<long>(*fsyncs_per_s)).c_str() : "?",
                    errors ? (", " + std::to_string(errors.load()) + " errors").c_str() : "");
        if (gaps) std::printf("; longest gap between cycles %.1f ms", gap);
        std::printf("\n");
    }
    return cycles > 0 ? bus::kExitOk : bus::kExitFailure;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"ftbus-bench: measures a running cluster from outside, as a client would"};
    app.require_subcommand(1);
    bus::CommonFlags f;
    int proposers = 1;
    std::string duration_text = "10s", warmup_text = "1s", timeout_text = "2s";
    size_t size = 64;
    bool json = false;
    CLI::App* raft = app.add_subcommand("raft", "PROPOSE entries to a replicated log (ftbus-elect --algo raft)");
    bus::add_cluster_flag(*raft, f);
    raft->add_option("--proposers", proposers, "proposers, each with one PROPOSE in flight")
        ->check(CLI::Range(1, 1000))
        ->capture_default_str();
    raft->add_option("--duration", duration_text, "how long to measure")->capture_default_str();
    raft->add_option("--warmup", warmup_text, "run this long before measuring (leader found, connections up)")
        ->capture_default_str();
    raft->add_option("--size", size, "bytes per entry")->check(CLI::Range(0, 32 * 1024))->capture_default_str();
    raft->add_option("--timeout", timeout_text, "re-send a PROPOSE unanswered this long (elsewhere)")
        ->capture_default_str();
    raft->add_flag("--json", json, "one JSON object instead of a line of text");
    CLI::App* lock = app.add_subcommand("lock", "acquire+release cycles against the lock service (ftbus-lockd)");
    bus::add_cluster_flag(*lock, f);
    int clients = 1;
    std::string mode = "cycles";
    bool gaps = false;
    lock->add_option("mode", mode, "cycles (own locks) or contended (one lock)")
        ->check(CLI::IsMember({"cycles", "contended"}))
        ->capture_default_str();
    lock->add_option("--clients", clients, "clients, each with its own session")->check(CLI::Range(1, 64))->capture_default_str();
    lock->add_option("--duration", duration_text, "how long to measure")->capture_default_str();
    lock->add_option("--warmup", warmup_text, "run this long before measuring")->capture_default_str();
    lock->add_flag("--gaps", gaps, "also print the longest time between two completed cycles");
    lock->add_flag("--json", json, "one JSON object instead of a line of text");
    CLI::App* floor = app.add_subcommand("floor", "what the machine allows: a ZeroMQ round trip and an fdatasync (no cluster)");
    std::string dir = ".";
    int rounds = 3000;
    floor->add_option("--dir", dir, "where to time write+fdatasync (the replicas' file system)")->capture_default_str();
    floor->add_option("--rounds", rounds, "round trips and fsyncs to time")->check(CLI::Range(10, 1000000))->capture_default_str();
    int writers = 3;
    floor->add_option("--writers", writers, "files fsynced at once for the shared-disk figure (one per replica)")
        ->check(CLI::Range(1, 64))
        ->capture_default_str();
    floor->add_flag("--json", json, "one JSON object instead of a line of text");
    if (auto code = bus::parse_flags(app, argc, argv)) return *code;
    return bus::run_program("ftbus-bench", [&]() -> int {
        auto dur = [](const std::string& text, const char* what, bool zero_ok = false) {
            auto d = text == "0" && zero_ok ? std::optional<bus::Duration>(bus::Duration(0)) : bus::parse_duration(text);
            if (!d)
                throw bus::ConfigError(std::string("--") + what + ": '" + text +
                                       "' is not a duration with a unit (e.g. 250us, 20ms, 1.5s)");
            if (d->count() < 0 || (d->count() == 0 && !zero_ok))
                throw bus::ConfigError(std::string("--") + what + ": '" + text + "': must be " +
                                       (zero_ok ? "0 or more" : "positive"));
            return *d;
        };
        bus::Duration duration = dur(duration_text, "duration"), timeout = dur(timeout_text, "timeout");
        bus::Duration warmup = dur(warmup_text, "warmup", /*zero_ok=*/true);
        if (*floor) return bench_floor(dir, rounds, writers, json);
        bus::ClusterConfig cfg = bus::load_cluster_with_flags(f);
        if (*lock) return bench_lock(cfg, clients, mode == "contended", duration, warmup, gaps, json);
        return bench_raft(cfg, proposers, duration, warmup, size, timeout, json);
    });
}
