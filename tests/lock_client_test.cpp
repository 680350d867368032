// LockClient against a scripted server: one ROUTER on a free loopback port, played by a
// thread of the test, so that the client meets exactly the message order a test wants
// (here, pushes that a real cluster sends only in rare interleavings). Real sockets:
// tagged integration; every wait is bounded.
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include "bus/lock_client.hpp"
#include "harness.hpp"

using namespace std::chrono_literals;

namespace {

/// The server side of one client, scripted step by step.
struct ScriptedServer {
    zmq::context_t ctx{1};
    zmq::socket_t router{ctx, zmq::socket_type::router};
    bus::ClusterConfig cfg;
    std::string route;  ///< the client's routing id, from its first request
    uint64_t seq = 0;
    uint64_t ttl_ms = 5000;  ///< the lease its keepalive answers grant

    ScriptedServer() {
        int base = test::free_port_base(10);
        router.set(zmq::sockopt::linger, 0);
        router.set(zmq::sockopt::rcvtimeo, 5000);
        router.bind("tcp://127.0.0.1:" + std::to_string(base + 2));
        cfg = bus::parse_cluster("[[node]]\nid = 1\npub = " + std::to_string(base) + "\npeer = " +
                                     std::to_string(base + 1) + "\nclient = " + std::to_string(base + 2) + "\n",
                                 "scripted");
    }

    /// The next request that is not a keepalive (keepalives are answered "alive"), or an
    /// empty op after 5 s without one.
    bus::LockRequest next() {
        for (;;) {
            zmq::message_t id, payload;
            if (!router.recv(id) || !router.recv(payload)) return {};
            route = id.to_string();
            bus::DecodeResult d = bus::decode(payload.to_string_view());
            const auto* r = d.env ? std::get_if<bus::LockRequest>(&d.env->body) : nullptr;
            if (!r) continue;
            if (r->op != "keepalive") return *r;
            bus::LockReplyMsg alive;
            alive.req = r->req;
            alive.status = "alive";
            alive.session = r->session;
            alive.ttl_ms = ttl_ms;
            send(alive);
        }
    }

    void send(const bus::LockReplyMsg& m) {
        bus::Envelope env;
        env.from = bus::NodeId{1};
        env.inc = 1;
        env.seq = ++seq;
        env.body = m;
        std::string frame = bus::encode(env);
        router.send(zmq::buffer(route), zmq::send_flags::sndmore);
        router.send(zmq::buffer(frame), zmq::send_flags::none);
    }

    /// Answers request `r` with `status` (and `token`, `pos`).
    void answer(const bus::LockRequest& r, const std::string& status, uint64_t token = 0, uint64_t pos = 0) {
        bus::LockReplyMsg m;
        m.req = r.req;
        m.status = status;
        m.session = status == "opened" ? 7 : r.session;
        m.lock = r.lock;
        m.token = token;
        m.pos = pos;
        m.leader = 1;
        send(m);
    }

    /// Pushes a grant of `lock` with `token` to session 7.
    void push_grant(const std::string& lock, uint64_t token) {
        bus::LockReplyMsg m;
        m.status = "granted";
        m.session = 7;
        m.lock = lock;
        m.token = token;
        send(m);
    }
};

}  // namespace

TEST_CASE("lock client: a pushed grant it already had — arriving late, after its release — is not taken for a new "
          "grant, while a grant with a higher token is",
          "[integration][lock]") {
    ScriptedServer s;
    std::vector<std::string> seen;  // the ops the server was asked, in order
    std::jthread server([&] {
        auto r = s.next();  // open
        seen.push_back(r.op);
        s.answer(r, "opened");
        r = s.next();  // acquire: granted with token 10
        seen.push_back(r.op);
        s.answer(r, "granted", 10);
        r = s.next();  // release
        seen.push_back(r.op);
        s.answer(r, "released");
        r = s.next();  // acquire again: someone else holds it now
        seen.push_back(r.op);
        s.answer(r, "queued", 0, 1);
        s.push_grant("L", 10);  // an earlier leader's push of the first grant, delayed until now
        r = s.next();  // not granted in time: the client leaves the queue
        seen.push_back(r.op);
        s.answer(r, "cancelled");
        r = s.next();  // acquire once more: this time the lock is handed on to it
        seen.push_back(r.op);
        s.answer(r, "queued", 0, 1);
        s.push_grant("L", 12);
    });
    bus::LockClientOptions o;
    o.deadline = 5s;
    bus::LockClient c(s.cfg, o);
    REQUIRE(c.open() == 7);
    REQUIRE(c.acquire("L", 2s) == 10);
    c.release("L", 10);
    CHECK(c.acquire("L", 300ms) == 0);  // not granted: the old push changes nothing
    CHECK(c.acquire("L", 5s) == 12);
    server.join();
    CHECK(seen == std::vector<std::string>{"open", "acquire", "release", "acquire", "cancel", "acquire"});
}

TEST_CASE("lock client: a grant given up by a cancel (it got there before the cancel) and pushed late is not taken "
          "for a new grant",
          "[integration][lock]") {
    ScriptedServer s;
    std::vector<std::string> seen;
    std::jthread server([&] {
        auto r = s.next();
        seen.push_back(r.op);
        s.answer(r, "opened");
        r = s.next();  // acquire: queued
        seen.push_back(r.op);
        s.answer(r, "queued", 0, 1);
        r = s.next();  // its wait ran out: cancel — but the grant (token 12) was applied first
        seen.push_back(r.op);
        s.answer(r, "cancelled", 12);
        s.push_grant("L", 12);  // the push of that grant, late (from an earlier leader)
        r = s.next();  // acquire again: queued behind someone else
        seen.push_back(r.op);
        s.answer(r, "queued", 0, 1);
        r = s.next();  // and its wait runs out too
        seen.push_back(r.op);
        s.answer(r, "cancelled");
    });
    bus::LockClientOptions o;
    o.deadline = 5s;
    bus::LockClient c(s.cfg, o);
    REQUIRE(c.open() == 7);
    CHECK(c.acquire("L", 200ms) == 0);
    CHECK(c.acquire("L", 300ms) == 0);  // not the token it gave up
    server.join();
    CHECK(seen == std::vector<std::string>{"open", "acquire", "cancel", "acquire", "cancel"});
}

TEST_CASE("lock client: each renewal of a held lock's lease is traced at the default level, so that ftbus-check can "
          "bound a hold longer than one lease",
          "[integration][lock]") {
    ScriptedServer s;
    s.ttl_ms = 1500;  // a keepalive every 500 ms
    std::jthread server([&] {
        auto r = s.next();
        s.answer(r, "opened");
        r = s.next();
        s.answer(r, "granted", 10);
        r = s.next();  // the release, after keepalives (answered "alive" meanwhile)
        s.answer(r, "released");
    });
    bus::RealClock clock;
    bus::Tracer tracer(clock, "c", 1, bus::TraceLevel::state);
    std::vector<bus::Json> lines;
    tracer.add_sink([&](const std::string& line) { lines.push_back(bus::Json::parse(line)); });
    bus::LockClientOptions o;
    o.deadline = 5s;
    o.ttl_ms = 1500;
    bus::LockClient c(s.cfg, o, &tracer);
    c.open();
    REQUIRE(c.acquire("L", 2s) == 10);
    c.pump(1700ms);  // about three keepalives
    c.release("L", 10);
    server.join();
    int renewed = 0;
    int64_t valid_until = 0;
    for (auto& j : lines)
        if (j["ev"] == "lock.renewed") {
            ++renewed;
            CHECK(j["token"] == 10);
            CHECK(j["valid_until"].get<int64_t>() > valid_until);  // each one later than the last
            valid_until = j["valid_until"].get<int64_t>();
        }
    CHECK(renewed >= 2);
}

TEST_CASE("lock client: a replica that knows no leader does not hold the client: it asks the next one",
          "[integration][lock]") {
    // Two replicas on free ports: 1 knows no leader (it answers every request `redirect`
    // with leader 0: cut off from the rest), 2 leads. Clients pick their first replica at
    // random; each round makes a new client until one has asked replica 1 first.
    int base = test::free_port_base(20);
    std::string toml;
    for (int id : {1, 2})
        toml += "[[node]]\nid = " + std::to_string(id) + "\npub = " + std::to_string(base + 10 * (id - 1)) +
                "\npeer = " + std::to_string(base + 10 * (id - 1) + 1) +
                "\nclient = " + std::to_string(base + 10 * (id - 1) + 2) + "\n";
    bus::ClusterConfig cfg = bus::parse_cluster(toml, "two");
    zmq::context_t ctx(1);
    zmq::socket_t r1(ctx, zmq::socket_type::router), r2(ctx, zmq::socket_type::router);
    for (auto* r : {&r1, &r2}) r->set(zmq::sockopt::linger, 0);
    r1.bind("tcp://127.0.0.1:" + std::to_string(base + 2));
    r2.bind("tcp://127.0.0.1:" + std::to_string(base + 12));
    std::atomic<int> first_at{0};  // the replica the current client asked first
    std::jthread server([&](std::stop_token stop) {  // stopped and joined when the test ends, however
        uint64_t seq = 0, next_session = 100;
        while (!stop.stop_requested()) {
            zmq::pollitem_t items[] = {{r1.handle(), 0, ZMQ_POLLIN, 0}, {r2.handle(), 0, ZMQ_POLLIN, 0}};
            zmq::poll(items, 2, std::chrono::milliseconds(20));
            for (int k = 0; k < 2; ++k) {
                if (!(items[k].revents & ZMQ_POLLIN)) continue;
                zmq::socket_t& r = k == 0 ? r1 : r2;
                zmq::message_t id, payload;
                if (!r.recv(id) || !r.recv(payload)) continue;
                bus::DecodeResult d = bus::decode(payload.to_string_view());
                const auto* q = d.env ? std::get_if<bus::LockRequest>(&d.env->body) : nullptr;
                if (!q) continue;
                int expected = 0;
                first_at.compare_exchange_strong(expected, k + 1);
                bus::LockReplyMsg m;
                m.req = q->req;
                m.session = q->session;
                if (k == 0) {
                    m.status = "redirect";
                    m.error = "no leader yet";
                } else if (q->op == "open") {
                    m.status = "opened";
                    m.session = ++next_session;
                    m.leader = 2;
                } else {
                    m.status = q->op == "keepalive" ? "alive" : "closed";
                    m.ttl_ms = 5000;
                    m.leader = 2;
                }
                bus::Envelope env;
                env.from = bus::NodeId{static_cast<bus::NodeId>(k + 1)};
                env.inc = 1;
                env.seq = ++seq;
                env.body = m;
                std::string frame = bus::encode(env);
                r.send(id, zmq::send_flags::sndmore);
                r.send(zmq::buffer(frame), zmq::send_flags::none);
            }
        }
    });
    bool asked_the_cut_off_one = false;
    for (int round = 0; round < 30 && !asked_the_cut_off_one; ++round) {
        first_at = 0;
        bus::LockClientOptions o;
        o.deadline = 5s;
        o.context = &ctx;
        bus::LockClient c(cfg, o);
        uint64_t session = 0;
        REQUIRE_NOTHROW(session = c.open());  // before: stuck on replica 1 until the deadline
        CHECK(session > 100);
        asked_the_cut_off_one = first_at == 1;
    }
    CHECK(asked_the_cut_off_one);
}

TEST_CASE("lock client: a request the server could not read is refused without its number — that refusal ends "
          "the call at once with the server's words, not after the deadline",
          "[integration][lock][badinput]") {
    ScriptedServer s;
    std::jthread server([&] {
        auto r = s.next();  // open
        s.answer(r, "opened");
        r = s.next();  // acquire: "could not read it" (the server's answer to a frame it cannot decode)
        bus::LockReplyMsg m;
        m.status = "rejected";
        m.error = "malformed request: body field 'lock' is longer than 256 bytes";
        s.send(m);  // req 0
    });
    bus::LockClientOptions o;
    o.deadline = 20s;
    bus::LockClient c(s.cfg, o);
    REQUIRE(c.open() == 7);
    auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_WITH(c.acquire("L", 10s), Catch::Matchers::Contains("longer than 256 bytes"));
    CHECK(std::chrono::steady_clock::now() - start < 10s);  // (the deadline is 20 s)
    server.join();
}

TEST_CASE("lock client: an interrupt (a signal's flag) while waiting in the queue leaves the queue and returns 0 — "
          "the cancel is retried through a leader change, the interrupt notwithstanding",
          "[integration][lock]") {
    ScriptedServer s;
    std::atomic<bool> stop{false};
    std::vector<std::string> seen;
    std::jthread server([&] {
        auto r = s.next();  // open
        s.answer(r, "opened");
        r = s.next();  // acquire: queued behind someone
        seen.push_back(r.op);
        s.answer(r, "queued", 0, 1);
        stop = true;  // Ctrl-C
        r = s.next();
        seen.push_back(r.op);
        s.answer(r, "unavailable");  // a leader change: the cancel must be retried, interrupt or not
        r = s.next();
        seen.push_back(r.op);
        s.answer(r, "cancelled");
    });
    bus::LockClientOptions o;
    o.deadline = 5s;
    o.interrupt = &stop;
    bus::LockClient c(s.cfg, o);
    REQUIRE(c.open() == 7);
    auto start = std::chrono::steady_clock::now();
    CHECK(c.acquire("L", 60s) == 0);
    CHECK(std::chrono::steady_clock::now() - start < 30s);  // (the wait was 60 s)
    server.join();
    CHECK(seen == std::vector<std::string>{"acquire", "cancel", "cancel"});
}
