// The transport: every ZeroMQ socket of a node is made here, with the traps of
// DESIGN.md ("ZeroMQ patterns and their traps") handled once:
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

#include <map>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "bus/cluster.hpp"

namespace bus {

/// Where an incoming frame arrived.
enum class Channel { sub, router, dealer };

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

struct TransportOptions {
    /// ZMTP heartbeat on peer DEALERs: a connection silent this long is dropped with its queue.
    std::chrono::milliseconds zmtp_heartbeat{250};
    std::chrono::milliseconds zmtp_timeout{1500};
    /// Messages queued per peer DEALER before sends report would_block.
    int peer_send_hwm = 64;
};

class Transport {
public:
    /// Binds PUB and the peer ROUTER of `self`, connects SUB and one DEALER to every other
    /// node in `cfg`. \throws ConfigError if a port is in use or an endpoint is bad.
    Transport(const ClusterConfig& cfg, NodeId self, TransportOptions opts = {});

    SendResult publish(std::string_view topic, std::string_view payload);
    /// Request to `peer`, over our DEALER to its ROUTER.
    SendResult send_to(NodeId peer, std::string_view payload);
    /// Reply to whoever has routing id `routing_id`, over our ROUTER.
    SendResult reply_to(const std::string& routing_id, std::string_view payload);

    /// Poll items, input sockets in priority order: peer ROUTER, DEALERs, SUB.
    std::vector<zmq::pollitem_t>& poll_items() { return items_; }
    /// Receives one frame from poll item `i` without waiting; nullopt if none is queued.
    std::optional<Incoming> receive(size_t i);

    NodeId self() const { return self_; }

private:
    zmq::context_t ctx_;
    NodeId self_;
    zmq::socket_t pub_;
    zmq::socket_t router_;
    zmq::socket_t sub_;
    std::map<NodeId, zmq::socket_t> dealers_;
    std::vector<zmq::pollitem_t> items_;
    std::vector<std::pair<Channel, NodeId>> item_source_;  // parallel to items_
};

/// Binds `sock` to `endpoint`, turning EADDRINUSE and friends into a ConfigError that
/// names `what` ("PUB port of node 3").
void bind_or_throw(zmq::socket_t& sock, const std::string& endpoint, const std::string& what);

}  // namespace bus
