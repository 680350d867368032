// The transport: every ZeroMQ socket of a node is made here, with the traps of
// The design brief's "ZeroMQ patterns and their traps", handled once:
//  - every send is non-blocking (dontwait); "would block" is a result, never a wait;
//  - linger 0 everywhere, so closing never hangs on unsent messages;
//  - peer DEALERs: routing id = own node id, `immediate` (queue only on live connections),
//    a small send HWM, and ZMTP heartbeats, so a dead or paused peer's queue is dropped
//    rather than delivered stale much later;
//  - the peer ROUTER: `router_handover` (a restarted peer with the same routing id is
//    accepted) and `router_mandatory` (an unroutable reply is reported, not silently lost);
//  - EINTR from recv is retried; a bind failure (port in use) becomes one ConfigError.
// make_socket() is the single place sockets are created, so security (CURVE) can later be
// switched on for all of them by configuration.
//
// It moves bytes, not messages: decoding and sender checks are the caller's (NodeHost).
// Not thread-safe; owned by the node loop.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <poll.h>
#include <string>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "bus/cluster.hpp"

namespace bus {

/// Where an incoming frame arrived.
enum class Channel {
    sub,
    router,
    dealer,   ///< a peer's DEALER link, or (dealer_peer 0) the link to a join endpoint
    control,  ///< the control ROUTER (ftbus-ctl): routing_id + JSON payload
    client,   ///< the client ROUTER (clients' requests): routing_id + envelope
};

struct Incoming {
    Channel channel = Channel::sub;
    std::string topic;       ///< sub: the topic frame
    std::string routing_id;  ///< router: the sender's routing id
    NodeId dealer_peer = 0;  ///< dealer: which peer's DEALER it came in on
    std::string payload;
    std::string malformed;   ///< non-empty: the frame layout was wrong (reason)
};

/// Outcome of a non-blocking send.
enum class SendResult { sent, would_block, unroutable, isolated };
const char* to_string(SendResult r);

/// Socket options shared by all sockets of a kind (sockets are made in one place).
zmq::socket_t make_socket(zmq::context_t& ctx, zmq::socket_type type);

/// Waits for input on ZeroMQ sockets with one poll(2) over their ZMQ_FDs, and asks a socket
/// for its events (ZMQ_EVENTS: a check of its command mailbox, two system calls) only when
/// its descriptor fired or it was used since it was last found idle. zmq_poll asks every
/// socket, twice per wait: with a node's seven sockets that is 30 system calls per wake-up,
/// most of a replica's per-request cost on a small VM.
/// ZMQ_FD is edge-triggered: a send or receive on a socket may consume the signal of
/// messages that arrived meanwhile. So every use of a socket is reported (touched(), or
/// idle() after a receive found nothing) and a touched socket is asked again before the
/// next wait blocks — the rule libzmq's documentation of ZMQ_FD gives.
class Poller {
public:
    /// The sockets to watch (raw handles), in order; every one is asked at the next wait.
    void set(const std::vector<void*>& sockets);
    size_t size() const { return socks_.size(); }
    void* socket(size_t i) const { return socks_.at(i); }
    /// Waits up to `timeout` for input on any socket (0: only looks). \return whether some
    /// socket may have input; ready(i) says which. A signal (EINTR) ends the wait early.
    bool wait(std::chrono::milliseconds timeout);
    /// Socket `i` may have input (found by the last wait).
    bool ready(size_t i) const { return i < ready_.size() && ready_[i]; }
    /// Socket `i` (or the one with this handle) was sent on or received from.
    void touched(size_t i) { recheck_.at(i) = 1; }
    void touched_handle(void* socket);
    /// A receive on socket `i` found nothing: its mailbox is empty, its ZMQ_FD will fire.
    void idle(size_t i) { recheck_.at(i) = 0; }

private:
    std::vector<void*> socks_;
    std::vector<pollfd> fds_;
    std::vector<char> recheck_, ready_;
};

struct TransportOptions {
    /// ZMTP heartbeat on peer DEALERs: a connection silent this long is dropped with its queue.
    std::chrono::milliseconds zmtp_heartbeat{250};
    std::chrono::milliseconds zmtp_timeout{1500};
    /// Messages queued per peer DEALER before sends report would_block.
    int peer_send_hwm = 64;
    /// Bind the node's client ROUTER (its `client` port), for a node that serves clients.
    bool clients = false;
};

class Transport {
public:
    /// Binds PUB, the peer ROUTER and (if it has a port) the control ROUTER of `self`,
    /// connects SUB and one DEALER to every other node in `cfg`.
    /// \throws ConfigError if a port is in use or an endpoint is bad.
    Transport(const ClusterConfig& cfg, NodeId self, TransportOptions opts = {});

    /// Membership at runtime. Starts talking to `peer` (DEALER to its peer ROUTER, SUB to its
    /// PUB); a peer already connected at the same address is left alone, one at a new
    /// address is reconnected. Poll items change: call between rounds, not while reading.
    void add_peer(const NodeSpec& peer);
    /// Stops talking to `peer` (closes its DEALER, unsubscribes from its PUB).
    void remove_peer(NodeId peer);
    /// Sends to the peer ROUTER at `endpoint`, whose node id we do not know yet (JOIN), over
    /// a DEALER of its own; the answer comes back on it (Channel::dealer, dealer_peer 0).
    SendResult send_to_endpoint(const std::string& endpoint, std::string_view payload);
    /// Closes the join link (once welcomed).
    void close_join_link();
    /// Reply on the client ROUTER.
    SendResult reply_client(const std::string& routing_id, std::string_view payload);
    /// Reply on the control ROUTER.
    SendResult reply_control(const std::string& routing_id, std::string_view payload);
    /// From now on, closing waits up to `ms` for queued messages to leave (a graceful leave
    /// must not lose its LEAVEs); everything else closes at once (linger 0).
    void linger_on_close(std::chrono::milliseconds ms);

    SendResult publish(std::string_view topic, std::string_view payload);
    /// Request to `peer`, over our DEALER to its ROUTER.
    SendResult send_to(NodeId peer, std::string_view payload);
    /// Reply to whoever has routing id `routing_id`, over our ROUTER.
    SendResult reply_to(const std::string& routing_id, std::string_view payload);

    /// Input sockets, in priority order: peer ROUTER, DEALERs, SUB, control, client
    /// (bulkhead: client load never starves replication).
    size_t inputs() const { return poller_.size(); }
    /// Waits up to `timeout` for input (see Poller); then ready(i) says which input to read.
    bool wait(std::chrono::milliseconds timeout) { return poller_.wait(timeout); }
    bool ready(size_t i) const { return poller_.ready(i); }
    /// Receives one frame from input `i` without waiting; nullopt if none is queued.
    std::optional<Incoming> receive(size_t i);

    NodeId self() const { return self_; }

private:
    zmq::socket_t make_dealer(const std::string& endpoint, bool immediate = true);
    void rebuild_items();
    /// Sends the parts of one message on `s` without waiting.
    SendResult send_parts(zmq::socket_t& s, std::initializer_list<std::string_view> parts);

    zmq::context_t ctx_;
    NodeId self_;
    TransportOptions opts_;
    zmq::socket_t control_;  ///< unbound (null handle) when the node has no control port
    zmq::socket_t client_;   ///< unbound (null handle) unless the node serves clients
    std::optional<zmq::socket_t> join_link_;
    std::string join_endpoint_;
    std::map<NodeId, std::string> dealer_endpoint_;
    std::map<NodeId, std::string> sub_endpoint_;
    zmq::socket_t pub_;
    zmq::socket_t router_;
    zmq::socket_t sub_;
    std::map<NodeId, zmq::socket_t> dealers_;
    Poller poller_;
    std::vector<std::pair<Channel, NodeId>> item_source_;  // parallel to the poller's sockets
};

/// Binds `sock` to `endpoint`, turning EADDRINUSE and friends into a ConfigError that
/// names `what` ("PUB port of node 3").
void bind_or_throw(zmq::socket_t& sock, const std::string& endpoint, const std::string& what);

}  // namespace bus
