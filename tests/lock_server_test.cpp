// LockServer driven by hand: a one-replica cluster (it leads alone, and an entry commits
// when the test says its log write is durable), so that a test can put a client request
// exactly between a proposal and its commit. No network, no sleeps: time is an argument.
#include <catch2/catch.hpp>

#include "bus/lock_server.hpp"
#include "test_util.hpp"

using namespace bus;
using namespace std::chrono_literals;

namespace {

struct Solo {
    ClusterConfig cfg = test::make_cluster(1);
    LockMachine machine;
    LockServer server;
    Time now{};
    uint64_t appended = 0;  ///< the last index handed to the "disk", not yet durable
    std::vector<LockReplyMsg> replies;
    std::vector<TraceEvent> events;

    std::vector<LogEntry> log;  ///< what the "disk" holds (a restart starts from it)
    HardState hard;

    Solo() : Solo(HardState{}, {}) {}
    /// A replica restarted from `h` and `l` (another Solo's disk).
    Solo(HardState h, std::vector<LogEntry> l)
        : server(std::make_unique<Raft>(cfg, 1, h, 7, l), &machine, cfg.tunables.election_timeout_max),
          log(std::move(l)), hard(h) {
        carry(server.start(now));
        for (int i = 0; i < 1000 && !server.ready(); ++i) tick(10ms);
        REQUIRE(server.ready());
    }

    void carry(Actions a) {
        if (a.persist) hard = *a.persist;
        REQUIRE_FALSE(a.log_truncate_from);  // (a lone leader never truncates)
        for (auto& e : a.log_append) log.push_back(e);
        if (!a.log_append.empty()) appended = a.log_append.back().index;
        for (auto& e : a.events) events.push_back(e);
        for (auto& o : a.out)
            if (const auto* m = std::get_if<LockReplyMsg>(&o.body); m && o.route == Outgoing::Route::client)
                replies.push_back(*m);
    }
    /// The end of a loop round: batched proposals go out.
    void round() { carry(server.on_round_end(now)); }
    /// The log write of everything appended so far is durable: a lone replica commits it.
    void durable() {
        if (appended) carry(server.on_log_durable(appended, now));
    }
    void tick(Duration d) {
        now += d;
        carry(server.on_tick(now));
        round();
        durable();
    }
    /// Sends `r` from client `who` (not made durable: the caller says when).
    void send(const LockRequest& r, const std::string& who = "c") {
        Envelope env;
        env.from = who;
        env.inc = 1;
        env.seq = r.req;
        env.body = r;
        carry(server.on_client(who, env, now));
        round();
    }
    /// The pushes (req 0) sent so far.
    std::vector<LockReplyMsg> pushes() const {
        std::vector<LockReplyMsg> out;
        for (auto& m : replies)
            if (m.req == 0) out.push_back(m);
        return out;
    }
    std::vector<Json> traced(const std::string& ev) const {
        std::vector<Json> out;
        for (auto& e : events)
            if (e.ev == ev) out.push_back(e.fields);
        return out;
    }
    /// The reply to request `req` (status "" if none).
    LockReplyMsg reply_to(uint64_t req) const {
        for (auto it = replies.rbegin(); it != replies.rend(); ++it)
            if (it->req == req) return *it;
        return {};
    }
    /// Acquires `lock` for `session` with request `req`, made durable at once: the reply.
    LockReplyMsg acquire(uint64_t req, uint64_t session, const std::string& lock) {
        LockRequest r;
        r.req = req;
        r.op = "acquire";
        r.session = session;
        r.lock = lock;
        send(r);
        durable();
        return reply_to(req);
    }
    uint64_t open(uint64_t req, uint64_t ttl_ms) {
        LockRequest r;
        r.req = req;
        r.op = "open";
        r.ttl_ms = ttl_ms;
        send(r);
        durable();
        REQUIRE(reply_to(req).status == "opened");
        return reply_to(req).session;
    }
};

LockRequest request(uint64_t req, const std::string& op, uint64_t session) {
    LockRequest r;
    r.req = req;
    r.op = op;
    r.session = session;
    return r;
}

}  // namespace

TEST_CASE("lock server: a keepalive that arrives once the session's expiry is proposed is not answered alive — the "
          "client must not count a new lease on a session about to go",
          "[unit][lock]") {
    Solo s;
    uint64_t session = s.open(1, 1000);
    REQUIRE(s.acquire(2, session, "L").status == "granted");
    // Silence past the lease and its grace period: the leader proposes the expiry, and it
    // has not committed yet (its log write is not durable).
    for (int i = 0; i < 100 && s.appended == s.server.raft().commit_index(); ++i) {
        s.now += 100ms;
        s.carry(s.server.on_tick(s.now));
        s.round();
    }
    REQUIRE(s.appended > s.server.raft().commit_index());  // the expiry, in flight
    s.send(request(3, "keepalive", session));  // late: sent before the lease ran out, say
    CHECK(s.reply_to(3).status != "alive");
    s.durable();  // the expiry commits: the session and its hold are gone
    CHECK(s.machine.holder("L").first == 0);
    s.send(request(4, "keepalive", session));
    CHECK(s.reply_to(4).status == "rejected");
}

TEST_CASE("lock server: a session opened and closed in the same commit batch does not bring the leader down",
          "[unit][lock][badinput]") {
    Solo s;
    LockRequest open;
    open.req = 1;
    open.op = "open";
    open.ttl_ms = 1000;
    s.send(open);
    // The session's id will be the open's log index: a client can guess it and close it in
    // the same batch, before the open is answered.
    uint64_t guessed = s.appended;
    s.send(request(1, "close", guessed));
    REQUIRE_NOTHROW(s.durable());
    CHECK(s.reply_to(1).status != "");  // answered, whatever it was
    CHECK(s.server.check_invariants().empty());
    // And it goes on serving.
    uint64_t session = s.open(2, 1000);
    CHECK(session > guessed);
}

TEST_CASE("lock server: an append over 16 KiB, a frame that could not be read, and a message that is not a lock "
          "request get a rejected answer traced as rpc.reject, and nothing is applied",
          "[unit][lock][badinput]") {
    Solo s;
    uint64_t session = s.open(1, 5000);
    uint64_t token = s.acquire(2, session, "L").token;
    REQUIRE(token > 0);
    uint64_t before = s.appended;
    LockRequest big = request(3, "append", session);
    big.lock = "L";
    big.token = token;
    big.file = "f";
    big.data = std::string(kMaxAppendBytes + 1, 'x');
    s.send(big);
    s.durable();
    CHECK(s.reply_to(3).status == "rejected");
    CHECK(s.reply_to(3).error == "an append of 16385 bytes (at most 16384)");
    CHECK(s.appended == before);  // never proposed
    CHECK(s.machine.files().count("f") == 0);
    REQUIRE(s.traced("rpc.reject").size() == 1);
    CHECK(s.traced("rpc.reject")[0]["req"] == 3);
    // A frame the host could not read: answered with request number 0, since none is known.
    s.carry(s.server.on_bad_client("c", "oversized", s.now));
    CHECK(s.replies.back().req == 0);
    CHECK(s.replies.back().status == "rejected");
    CHECK(s.replies.back().error == "malformed request: oversized");
    REQUIRE(s.traced("rpc.reject").size() == 2);
    CHECK(s.traced("rpc.reject")[1]["reason"] == "malformed request: oversized");
    CHECK(s.appended == before);
    // A well-formed message of another kind (a replicated log's PROPOSE): answered likewise.
    Envelope other;
    other.from = std::string("c");
    other.inc = 1;
    other.seq = 9;
    other.body = Propose{9, "x"};
    s.carry(s.server.on_client("c", other, s.now));
    s.round();
    CHECK(s.replies.back().req == 0);
    CHECK(s.replies.back().status == "rejected");
    CHECK(s.replies.back().error == "not a lock request: a PROPOSE message");
    REQUIRE(s.traced("rpc.reject").size() == 3);
    CHECK(s.appended == before);
}

TEST_CASE("lock server: a new leader pushes a session the grants it holds when it first hears from it — a grant an "
          "earlier leader decided may never have reached its waiter",
          "[unit][lock]") {
    Solo s;
    uint64_t a = s.open(1, 5000), b = s.open(2, 5000);
    uint64_t ta = s.acquire(3, a, "L").token;
    REQUIRE(s.acquire(4, b, "L").status == "queued");
    LockRequest rel = request(5, "release", a);
    rel.lock = "L";
    rel.token = ta;
    s.send(rel);
    s.durable();
    REQUIRE(s.reply_to(5).status == "released");
    uint64_t tb = s.machine.holder("L").second;  // b's grant, pushed by this leader (say the push was lost)
    REQUIRE(s.machine.holder("L").first == b);
    // The replica comes back from its disk in a new term, knowing nothing of where b is.
    Solo t(s.hard, s.log);
    REQUIRE(t.machine.holder("L") == std::pair<uint64_t, uint64_t>{b, tb});
    REQUIRE(t.pushes().empty());
    t.send(request(6, "keepalive", a), "ca");  // a holds nothing: nothing to push
    t.send(request(7, "keepalive", b), "cb");
    auto p = t.pushes();
    REQUIRE(p.size() == 1);
    CHECK(p[0].session == b);
    CHECK(p[0].status == "granted");
    CHECK(p[0].lock == "L");
    CHECK(p[0].token == tb);
    t.send(request(8, "keepalive", b), "cb");  // only on its first word to this leader
    CHECK(t.pushes().size() == 1);
}

TEST_CASE("lock server: over its intake cap of requests waiting for commit, the leader answers busy and proposes "
          "nothing more, once they commit it takes requests again",
          "[unit][lock]") {
    Solo s;
    for (uint64_t req = 1; req <= kMaxPendingLockRequests; ++req) s.send(request(req, "status", 0));  // none durable yet
    uint64_t proposed = s.appended;
    s.send(request(kMaxPendingLockRequests + 1, "status", 0));
    CHECK(s.reply_to(kMaxPendingLockRequests + 1).status == "busy");
    CHECK(s.appended == proposed);  // not proposed
    CHECK(s.reply_to(1).status.empty());  // the others wait for their commit
    s.durable();
    CHECK(s.reply_to(1).status == "status");
    CHECK(s.reply_to(kMaxPendingLockRequests).status == "status");
    s.send(request(kMaxPendingLockRequests + 2, "status", 0));
    s.durable();
    CHECK(s.reply_to(kMaxPendingLockRequests + 2).status == "status");
}
