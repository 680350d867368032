// Transport: sends never block the loop, whatever the peer is doing.
// Uses real sockets on 127.0.0.1, so it is an integration test (no sleeps: bounded loops).
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>

#include "bus/transport.hpp"
#include "harness.hpp"

namespace {

bus::ClusterConfig two_nodes() {
    int base = test::free_port_base(20);
    std::string toml;
    for (int id : {1, 2})
        toml += "[[node]]\nid = " + std::to_string(id) + "\npub = " + std::to_string(base + 10 * (id - 1)) +
                "\npeer = " + std::to_string(base + 10 * (id - 1) + 1) + "\n";
    return bus::parse_cluster(toml, "test");
}

/// Two PAIR sockets joined in-process; `p` watches `a`, which `b` sends to.
struct PolledPair {
    zmq::context_t ctx{1};
    zmq::socket_t a{ctx, zmq::socket_type::pair}, b{ctx, zmq::socket_type::pair};
    bus::Poller p;
    explicit PolledPair(const std::string& endpoint) {
        a.bind(endpoint);
        b.connect(endpoint);
        p.set({a.handle()});
    }
};

}  // namespace

TEST_CASE("a send to a dead peer returns at once instead of blocking", "[integration][transport]") {
    auto cfg = two_nodes();
    bus::Transport t(cfg, 1);  // node 2 never starts
    size_t blocked = 0;
    for (int i = 0; i < 10000; ++i)
        if (t.send_to(2, "x") == bus::SendResult::would_block) ++blocked;
    // `immediate`: nothing is queued for a peer with no live connection.
    CHECK(blocked == 10000);
    CHECK(t.send_to(99, "x") == bus::SendResult::unroutable);
}

TEST_CASE("a send to a paused peer fills a small queue, then reports would-block", "[integration][transport]") {
    auto cfg = two_nodes();
    bus::Transport t(cfg, 1);
    // The "paused" peer: a ROUTER bound on node 2's peer port that never reads.
    zmq::context_t ctx;
    zmq::socket_t paused = bus::make_socket(ctx, zmq::socket_type::router);
    paused.set(zmq::sockopt::rcvhwm, 1);
    paused.bind(cfg.find(2)->endpoint(cfg.find(2)->peer));
    std::string payload(16 * 1024, 'p');  // large frames fill the TCP buffers quickly
    size_t sent = 0, blocked = 0;
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    // Bounded: stop at the first would-block after the connection came up.
    while (std::chrono::steady_clock::now() < until && (sent == 0 || blocked == 0)) {
        auto r = t.send_to(2, payload);
        if (r == bus::SendResult::sent) ++sent;
        if (r == bus::SendResult::would_block && sent > 0) ++blocked;
    }
    CHECK(sent > 0);
    CHECK(blocked > 0);
}

TEST_CASE("peer connections with a keepalive timeout beyond libzmq's limit (a cluster's dead_after of 1h) are "
          "made with the limit, not refused",
          "[integration][transport]") {
    auto cfg = two_nodes();
    bus::TransportOptions o;
    o.zmtp_heartbeat = std::chrono::hours(30);
    o.zmtp_timeout = std::chrono::hours(2);  // libzmq's TTL stops at 6553.5 s
    std::unique_ptr<bus::Transport> t;
    CHECK_NOTHROW(t = std::make_unique<bus::Transport>(cfg, 1, o));
    REQUIRE(t);
    CHECK(t->send_to(2, "x") != bus::SendResult::unroutable);
}

TEST_CASE("a reply to an unknown routing id is reported, not lost silently", "[integration][transport]") {
    auto cfg = two_nodes();
    bus::Transport t(cfg, 1);
    CHECK(t.reply_to("nobody", "x") == bus::SendResult::unroutable);
}

TEST_CASE("poller: a socket is ready when input came, idle after a receive found nothing, and rechecked after use "
          "(ZMQ_FD is edge-triggered)",
          "[unit][transport]") {
    PolledPair pair("inproc://poller-test");
    auto &a = pair.a, &b = pair.b;
    bus::Poller& p = pair.p;
    zmq::message_t m;
    auto drain = [&] {
        int got = 0;
        while (a.recv(m, zmq::recv_flags::dontwait)) {
            p.touched(0);
            ++got;
        }
        p.idle(0);
        return got;
    };
    CHECK_FALSE(p.wait(std::chrono::milliseconds(0)));  // nothing yet
    CHECK_FALSE(p.ready(0));

    b.send(zmq::str_buffer("x"), zmq::send_flags::none);
    // Its descriptor fires; bounded by the timeout, not a sleep (the message is already queued).
    REQUIRE(p.wait(std::chrono::milliseconds(5000)));
    CHECK(p.ready(0));
    CHECK(drain() == 1);
    CHECK_FALSE(p.wait(std::chrono::milliseconds(0)));

    // Input arrives, then something else uses the socket first and takes the descriptor's
    // signal (here: asking for its events, as a send may do). Reported as used, it is asked
    // again before the next wait: the message is not left waiting behind a silent descriptor.
    b.send(zmq::str_buffer("y"), zmq::send_flags::none);
    CHECK((a.get(zmq::sockopt::events) & ZMQ_POLLIN) != 0);
    p.touched(0);
    CHECK(p.wait(std::chrono::milliseconds(0)));
    CHECK(p.ready(0));
    CHECK(drain() == 1);

    // A new set of sockets: each is asked at the next wait.
    b.send(zmq::str_buffer("z"), zmq::send_flags::none);
    CHECK((a.get(zmq::sockopt::events) & ZMQ_POLLIN) != 0);
    p.set({a.handle()});
    CHECK(p.wait(std::chrono::milliseconds(0)));
    CHECK(drain() == 1);
}

TEST_CASE("poller: a socket found ready but not read stays ready at the next wait", "[unit][transport]") {
    PolledPair pair("inproc://poller-unread");
    auto &a = pair.a, &b = pair.b;
    bus::Poller& p = pair.p;
    b.send(zmq::str_buffer("x"), zmq::send_flags::none);
    REQUIRE(p.wait(std::chrono::milliseconds(5000)));  // found by asking the socket (it was just set)
    CHECK(p.ready(0));
    // The caller had other things to do and did not read it.
    CHECK(p.wait(std::chrono::milliseconds(0)));
    CHECK(p.ready(0));
    zmq::message_t m;
    CHECK(a.recv(m, zmq::recv_flags::dontwait));
}
