// LockClient against a scripted server: one ROUTER on a free loopback port, played by a
// thread of the test, so that the client meets exactly the message order a test wants
// (here, pushes that a real cluster sends only in rare interleavings). Real sockets:
// tagged integration; every wait is bounded.
#include <catch2/catch.hpp>

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
    CHECK(c.acquire("L", 300ms) == 0);  // still queued: the old push changes nothing
    CHECK(c.acquire("L", 5s) == 12);
    server.join();
    CHECK(seen == std::vector<std::string>{"open", "acquire", "release", "acquire", "acquire"});
}

TEST_CASE("lock client: each renewal of a held lock's lease is traced at the default level, so that ftbus-check can "
          "bound a hold longer than one lease",
          "[integration][lock]") {
    ScriptedServer s;
    s.ttl_ms = 300;  // a keepalive every 100 ms
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
    o.ttl_ms = 300;
    bus::LockClient c(s.cfg, o, &tracer);
    c.open();
    REQUIRE(c.acquire("L", 2s) == 10);
    c.pump(350ms);
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
