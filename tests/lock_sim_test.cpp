// The lock service in the simulator: three or five LockServer replicas (Raft + LockMachine, the
// code ftbus-lockd runs) and simulated clients, across many seeds, with crashed and
// restarted replicas (unsynced writes lost), partitions and lost messages. Clients behave
// as LockClient does: leader discovery by redirect, retries of the same request number,
// keepalives every ttl/3, a lease counted from the keepalive's send time minus 10 %.
// After every step:
//  - at most one client believes it holds the lock (granted, not released, and its lease
//    not past) — the property a lock service exists for;
//  - every replica's lock machine keeps its invariants, and a lock's token never goes back;
// and at the end, after quiet: every replica's file is the same, every append a client was
// told succeeded is in it exactly once, at the offset it was told, and the tokens its lines
// were appended under never go back (fencing).
// Each client has a helper: a second process on its session (as `ftbus-lock append` runs
// inside `hold`), appending alongside it while it holds, with its own id and numbers.
// Clients are also paused while they hold the lock (a GC pause, a stopped process) for
// longer than their lease: on waking, the append they had decided on before the pause goes
// out with their old token, as it would from a real program that checked its lease first.
#include <catch2/catch.hpp>

#include <deque>

#include "bus/lock_server.hpp"
#include "bus/sim_network.hpp"
#include "test_util.hpp"

using namespace bus;
using namespace std::chrono_literals;

namespace {

constexpr uint64_t kTtlMs = 1000;

struct Client {
    int k = 0;
    std::string id;
    NodeId node = 1;        ///< where it sends
    uint64_t req = 0;       ///< last request number used
    uint64_t session = 0;
    std::optional<LockRequest> pending;  ///< the request awaiting its answer
    Time sent{};
    Time next_try{};        ///< backoff
    Time next_keepalive{};
    uint64_t keepalive_req = 0;
    Time keepalive_sent{};
    Time valid_until{};     ///< its lease, as it counts it
    uint64_t token = 0;     ///< > 0 while it believes it holds the lock
    int appended = 0;       ///< lines appended in this holding
    bool dead = false;      ///< stopped (a client killed while holding)
    Time paused_until{};    ///< does nothing until then (a pause while holding)
    std::optional<LockRequest> stale;  ///< the append sent on waking from it
    std::deque<LockReplyMsg> inbox;
};

struct Acked {
    uint64_t offset;
    std::string data;
};

struct LockSim {
    NodeId replicas;
    SimNetwork net;
    std::map<NodeId, std::unique_ptr<LockMachine>> machines;
    std::vector<Client> clients;
    /// helpers[k]: a second process of clients[k]'s session (as `ftbus-lock append` runs
    /// inside `hold`): while clients[k] holds L it appends too, at the same time, with the
    /// session and token it was given and its own client id and request numbers.
    std::vector<Client> helpers;
    std::vector<Acked> acked;
    std::vector<std::string> violations;
    std::map<NodeId, std::pair<uint64_t, uint64_t>> last_token;  ///< node -> (inc, token)
    std::mt19937_64 rng;
    uint64_t grants = 0;
    int stale_sent = 0;      ///< appends sent on waking from a pause, with the old token
    int stale_refused = 0;   ///< ... refused because the lock had moved on
    int cancels = 0;         ///< waits given up (cancel answered)
    int helper_appends = 0;  ///< appends acknowledged to helpers

    LockSim(const ClusterConfig& cfg, SimOptions o, int n_clients)
        : replicas(static_cast<NodeId>(cfg.nodes.size())),
          net(cfg,
              [cfg, this](NodeId id, uint64_t, const HardState& disk, std::mt19937_64& r) {
                  machines[id] = std::make_unique<LockMachine>();
                  auto raft = std::make_unique<Raft>(cfg, id, disk, r(), net.disk_log(id), net.disk_snapshot(id));
                  return std::make_unique<LockServer>(std::move(raft), machines[id].get(), cfg.tunables.election_timeout_max);
              },
              o),
          rng(o.seed) {
        for (int k = 0; k < n_clients; ++k) {
            Client c;
            c.k = k;
            c.id = "client" + std::to_string(k);
            c.node = static_cast<NodeId>(1 + k % replicas);
            clients.push_back(c);
            Client h;
            h.k = k;
            h.id = c.id + "-helper";
            h.node = c.node;
            helpers.push_back(h);
        }
        net.set_client_sink([this](NodeId, const std::string& route, const Envelope& env) {
            const auto* m = std::get_if<LockReplyMsg>(&env.body);
            if (!m) return;
            for (auto* v : {&clients, &helpers})
                for (auto& c : *v)
                    if (c.id == route) c.inbox.push_back(*m);
        });
        net.set_observer([this] { observe(); });
    }

    void bad(const std::string& s) {
        if (violations.size() < 20) violations.push_back(s);
    }

    void observe() {
        for (auto& v : net.check_invariants()) bad(v);
        // Mutual exclusion as the clients see it.
        int holders = 0;
        for (auto& c : clients)
            if (c.token && !c.dead && net.now() < c.valid_until) ++holders;
        if (holders > 1) {
            std::string who;
            for (auto& c : clients)
                if (c.token && !c.dead && net.now() < c.valid_until)
                    who += " " + c.id + " (session " + std::to_string(c.session) + ", token " + std::to_string(c.token) +
                           ", valid until " + std::to_string(c.valid_until.count()) + ")";
            bad("two clients believe they hold L at " + std::to_string(net.now().count()) + ":" + who);
        }
        // A lock's token never goes back on any replica (within one incarnation).
        for (NodeId id : net.ids()) {
            auto it = machines.find(id);
            if (it == machines.end() || !net.is_running(id) || !it->second->locks().count("L")) continue;  // (idle: forgotten)
            uint64_t token = it->second->holder("L").second;
            auto& [inc, last] = last_token[id];
            if (inc == net.inc(id) && token < last) bad("node " + std::to_string(id) + ": L's token went back");
            inc = net.inc(id);
            last = token;
        }
    }

    void send(Client& c, LockRequest r) {
        if (r.req == 0) r.req = ++c.req;
        c.pending = r;
        c.sent = net.now();
        Envelope env;
        env.from = c.id;
        env.inc = 1;
        env.seq = c.req;
        env.body = r;
        net.client_request(c.node, c.id, env);
    }

    void next_node(Client& c) { c.node = static_cast<NodeId>(1 + rng() % replicas); }

    /// An append to "f" under L, for `holder`'s session and token; `who` names the line.
    static LockRequest append_of(const Client& holder, const std::string& who, const std::string& what) {
        LockRequest r;
        r.op = "append";
        r.session = holder.session;
        r.lock = "L";
        r.token = holder.token;
        r.file = "f";
        r.data = who + " token " + std::to_string(holder.token) + " " + what + "\n";
        return r;
    }

    /// One client's turn: read its answers, then act.
    void run(Client& c) {
        if (c.dead) return;
        Time now = net.now();
        if (c.paused_until != Time{}) {
            if (now < c.paused_until) return;
            c.paused_until = Time{};
            if (c.token) {  // it checked its lease before the pause; its next append goes out now
                send(c, append_of(c, c.id, "after a pause"));
                c.stale = c.pending;  // (numbered by send) followed to its answer, even once the lease is given up
                ++stale_sent;
            }
        }
        if (c.token && now >= c.valid_until) {  // lease gone: it may no longer act as holder
            c.token = 0;
            c.session = 0;
            c.pending.reset();
        }
        while (!c.inbox.empty()) {
            LockReplyMsg m = c.inbox.front();
            c.inbox.pop_front();
            if (m.req == 0) {  // a push
                if (m.session == c.session && m.status == "granted" && c.pending && c.pending->op == "acquire" &&
                    now < c.valid_until) {
                    c.token = m.token;
                    c.appended = 0;
                    c.pending.reset();
                }
                continue;
            }
            if (c.stale && m.req == c.stale->req) {
                if (m.status == "appended") acked.push_back({m.offset, c.stale->data});  // the lock had not moved
                if (m.status == "rejected") ++stale_refused;
                if (m.status == "appended" || m.status == "rejected") c.stale.reset();
            }
            if (m.req == c.keepalive_req) {
                if (m.status == "alive") c.valid_until = c.keepalive_sent + std::chrono::milliseconds(kTtlMs * 9 / 10);
                if (m.status == "rejected") c.token = 0, c.session = 0, c.pending.reset();
                if (m.status == "redirect" && m.leader) c.node = m.leader;
                continue;
            }
            if (!c.pending || m.req != c.pending->req) continue;  // stale
            if (m.status == "redirect") {
                if (m.leader) c.node = m.leader; else next_node(c);
                c.next_try = now + 20ms;
                continue;
            }
            if (m.status == "unavailable" || m.status == "busy") {
                c.next_try = now + 20ms;
                continue;
            }
            LockRequest p = *c.pending;
            c.pending.reset();
            if (p.op == "open" && m.status == "opened") {
                c.session = m.session;
                c.valid_until = c.sent + std::chrono::milliseconds(kTtlMs * 9 / 10);
                c.next_keepalive = now + std::chrono::milliseconds(kTtlMs / 3);
            } else if (p.op == "acquire" && m.status == "granted") {
                if (now < c.valid_until) {
                    c.token = m.token;
                    c.appended = 0;
                }
            } else if (p.op == "acquire" && m.status == "queued") {
                c.pending = p;  // keep waiting for the push (re-ask after a while)
            } else if (p.op == "append" && m.status == "appended") {
                acked.push_back({m.offset, p.data});
                ++c.appended;
            } else if (p.op == "release") {
                c.token = 0;
            } else if (p.op == "cancel" && m.status == "cancelled") {
                ++cancels;
                c.next_try = now + 50ms;  // and later it wants the lock again
            } else if (m.status == "rejected") {
                c.token = 0;
                if (m.error.rfind("no such session", 0) == 0) c.session = 0;
            }
        }
        if (c.session && now >= c.next_keepalive) {
            LockRequest k;
            k.req = c.keepalive_req = ++c.req;
            k.op = "keepalive";
            k.session = c.session;
            c.keepalive_sent = now;
            Envelope env;
            env.from = c.id;
            env.inc = 1;
            env.seq = c.req;
            env.body = k;
            if (!net.client_request(c.node, c.id, env)) next_node(c);
            c.next_keepalive = now + std::chrono::milliseconds(kTtlMs / 3);
        }
        if (c.pending) {
            // No answer for a while (lost, dead server), or a queued acquire to re-ask: again,
            // same request number, maybe elsewhere.
            if (now - c.sent > 300ms && now >= c.next_try) {
                if (c.pending->op != "acquire") next_node(c);
                LockRequest again = *c.pending;
                if (again.op == "acquire") {
                    again.req = 0;  // re-asking is a new request
                    if (rng() % 4 == 0) again.op = "cancel";  // or giving up waiting, as acquire's timeout does
                }
                send(c, again);
            }
            return;
        }
        if (now < c.next_try) return;
        LockRequest r;
        r.session = c.session;
        if (!c.session) {
            r.op = "open";
            r.ttl_ms = kTtlMs;
        } else if (!c.token) {
            r.op = "acquire";
            r.lock = "L";
        } else if (c.appended < 3) {
            r = append_of(c, c.id, "line " + std::to_string(c.appended));
        } else {
            r.op = "release";
            r.lock = "L";
            r.token = c.token;
            c.token = 0;  // from the moment it asks to release, it no longer acts as holder
        }
        send(c, r);
    }

    /// A helper's turn: while its client holds L (as the client believes), up to two appends
    /// per grant, each retried with the same number until answered.
    void run_helper(Client& h, const Client& c) {
        Time now = net.now();
        while (!h.inbox.empty()) {
            LockReplyMsg m = h.inbox.front();
            h.inbox.pop_front();
            if (!h.pending || m.req != h.pending->req) continue;  // a push to the session, or stale
            if (m.status == "redirect" || m.status == "unavailable" || m.status == "busy") {
                if (m.status == "redirect" && m.leader)
                    h.node = m.leader;
                else if (m.status == "redirect")
                    next_node(h);
                h.next_try = now + 20ms;
                continue;
            }
            if (m.status == "appended") {
                acked.push_back({m.offset, h.pending->data});
                ++helper_appends;
            }
            h.pending.reset();  // appended, or refused (the lock moved on): done either way
        }
        if (h.pending) {
            if (now - h.sent > 300ms && now >= h.next_try) {
                next_node(h);
                send(h, *h.pending);  // the same number
            }
            return;
        }
        bool holds = c.token && !c.dead && c.paused_until == Time{} && now < c.valid_until;
        if (!holds || now < h.next_try) return;
        if (h.token != c.token) h.token = c.token, h.appended = 0;  // a new grant
        if (h.appended >= 2) return;
        send(h, append_of(c, h.id, "line " + std::to_string(h.appended++)));
    }

    /// Pauses the client that believes it holds L (if any) for `d`.
    void pause_holder(Duration d) {
        for (auto& c : clients)
            if (c.token && !c.dead && c.paused_until == Time{}) {
                c.paused_until = net.now() + d;
                return;
            }
    }

    void run_for(Duration d) {
        Time end = net.now() + d;
        while (net.now() < end) {
            net.run_until(std::min(end, net.now() + 1ms));
            for (auto& c : clients) run(c);
            for (auto& h : helpers) run_helper(h, clients[static_cast<size_t>(h.k)]);
        }
    }
};

/// What one seed's run saw, for the totals a test checks (so that the faults did happen).
struct SeedStats {
    int with_appends = 0, stale_sent = 0, stale_refused = 0, cancels = 0, helper_appends = 0;
    uint64_t installs = 0;  ///< INSTALL_SNAPSHOT messages sent
    void add(const SeedStats& o) {
        installs += o.installs;
        with_appends += o.with_appends;
        stale_sent += o.stale_sent;
        stale_refused += o.stale_refused;
        cancels += o.cancels;
        helper_appends += o.helper_appends;
    }
};

/// One seed: `rounds` rounds of faults, then quiet; checks the invariants after every step
/// (in LockSim) and the files at the end.
SeedStats run_seed(uint64_t seed, NodeId n, int snapshot_entries, int rounds) {
    INFO("seed " << seed << ", " << n << " replicas, snapshot_entries " << snapshot_entries);
    SimOptions o;
    o.seed = seed;
    o.drop = 0.02;
    LockSim s(test::make_cluster(n, "snapshot_entries = " + std::to_string(snapshot_entries) + "\n"), o,
              n == 3 ? 4 : 6);
    s.net.start_all();
    std::mt19937_64 rng(seed * 7919);
    for (int round = 0; round < rounds; ++round) {
        s.run_for(std::chrono::milliseconds(300 + rng() % 500));
        NodeId a = static_cast<NodeId>(1 + rng() % n), b = static_cast<NodeId>(1 + rng() % n);
        switch (rng() % 6) {
            case 0: s.net.crash(a); break;
            case 1: s.net.start(a); break;
            case 2: n == 5 && a != b ? s.net.partition({{a, b}}) : s.net.partition({{a}}); break;
            case 3: s.net.heal(); break;
            case 4:  // a client dies; its lease must run out before anyone else holds
                if (round == 5) s.clients[0].dead = true;
                break;
            case 5:  // the holder stops for longer than its lease and then goes on
                s.pause_holder(std::chrono::milliseconds(kTtlMs * 5 / 2));
                break;
            default: break;
        }
        for (NodeId id = 1; id <= n; ++id)  // keep a majority able to make progress most of the time
            if (!s.net.is_running(id) && rng() % 2) s.net.start(id);
    }
    s.net.heal();
    s.net.set_drop(0);
    for (NodeId id = 1; id <= n; ++id)
        if (!s.net.is_running(id)) s.net.start(id);
    s.run_for(3s);
    for (auto& c : s.clients) c.dead = true;  // clients stop; the replicas settle
    s.run_for(1s);
    for (auto& v : s.violations) UNSCOPED_INFO(v);
    CHECK(s.violations.empty());
    // Every replica has the same file, and every acknowledged append is in it once, at its offset.
    std::string f1;
    for (NodeId id = 1; id <= n; ++id) {
        const auto& files = s.machines[id]->files();
        std::string f = files.count("f") ? files.at("f").data : std::string();
        if (id == 1) f1 = f;
        CHECK(f == f1);
    }
    for (const Acked& a : s.acked) {
        INFO(a.data);
        REQUIRE(a.offset + a.data.size() <= f1.size());
        CHECK(f1.substr(a.offset, a.data.size()) == a.data);
        CHECK(f1.find(a.data) == a.offset);  // and nowhere else (lines are unique)
    }
    // Fencing: each line was appended under the token current then, so they never go back.
    uint64_t last = 0;
    for (size_t at = f1.find(" token "); at != std::string::npos; at = f1.find(" token ", at + 1)) {
        uint64_t token = std::stoull(f1.substr(at + 7));
        INFO("line at offset " << at);
        CHECK(token >= last);
        last = token;
    }
    auto installs = s.net.sent().find("INSTALL_SNAPSHOT");
    return {!s.acked.empty(), s.stale_sent, s.stale_refused, s.cancels, s.helper_appends,
            installs == s.net.sent().end() ? 0 : installs->second};
}

}  // namespace

TEST_CASE("lock sim: with replicas crashing and restarting, partitions, lost messages and holders paused past "
          "their lease, never two holders, tokens never go back, every acknowledged append is on every replica "
          "exactly once, and a paused holder's late append is fenced off",
          "[unit][lock][sim]") {
    SeedStats t;
    // 30 seeds of 3 replicas and 4 clients, then 10 of 5 replicas and 6 clients, where a
    // partition may cut off two replicas at once.
    for (uint64_t seed = 1; seed <= 40; ++seed) t.add(run_seed(seed, seed <= 30 ? 3 : 5, 40, 12));
    INFO("appends sent after a pause: " << t.stale_sent << ", refused: " << t.stale_refused << "; cancels: "
                                          << t.cancels << "; helpers' appends acknowledged: " << t.helper_appends);
    CHECK(t.with_appends >= 34);
    // The pauses happened, and under some the lease had run out: the late append was refused.
    CHECK(t.stale_sent >= 5);
    CHECK(t.stale_refused >= 3);
    CHECK(t.cancels >= 10);  // waiters gave up, too
    CHECK(t.helper_appends >= 100);  // and second processes of the holders' sessions appended alongside
}

TEST_CASE("lock sim, long: 200 more seeds, twice the faults, a snapshot every 8 entries (so restarted and "
          "lagging replicas are brought up by snapshot and the session table goes through it often)",
          "[slow][lock][sim]") {
    SeedStats t;
    for (uint64_t seed = 1001; seed <= 1200; ++seed) t.add(run_seed(seed, seed % 4 == 0 ? 5 : 3, 8, 24));
    INFO("appends sent after a pause: " << t.stale_sent << ", refused: " << t.stale_refused << "; cancels: "
                                          << t.cancels << "; helpers' appends acknowledged: " << t.helper_appends
                                          << "; snapshots sent: " << t.installs);
    CHECK(t.with_appends >= 190);
    CHECK(t.installs >= 1000);  // lagging and restarted replicas were brought up by snapshot
    CHECK(t.stale_refused >= 100);
    CHECK(t.helper_appends >= 10000);
}
