#include "bus/transport.hpp"

namespace bus {

const char* to_string(SendResult r) {
    switch (r) {
        case SendResult::sent: return "sent";
        case SendResult::would_block: return "would block (peer queue full or not connected)";
        case SendResult::unroutable: return "unroutable (no such connection)";
        case SendResult::isolated: return "isolated (fault injection: the node is cut off)";
    }
    return "?";
}

zmq::socket_t make_socket(zmq::context_t& ctx, zmq::socket_type type) {
    zmq::socket_t s(ctx, type);
    s.set(zmq::sockopt::linger, 0);
    // Frames beyond the protocol's limit are refused by libzmq itself (the codec drops
    // oversized frames below this, with a reason).
    s.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(1) << 20);
    return s;
}

void bind_or_throw(zmq::socket_t& sock, const std::string& endpoint, const std::string& what) {
    try {
        sock.bind(endpoint);
    } catch (const zmq::error_t& e) {
        std::string why = e.num() == EADDRINUSE ? "address already in use" : e.what();
        throw ConfigError("cannot bind " + what + " at " + endpoint + ": " + why);
    }
}

namespace {

SendResult send_parts(zmq::socket_t& s, std::initializer_list<std::string_view> parts) {
    size_t i = 0, n = parts.size();
    for (auto part : parts) {
        auto flags = zmq::send_flags::dontwait;
        if (++i < n) flags = flags | zmq::send_flags::sndmore;
        try {
            // A multipart message is queued atomically: if the first part goes, so do the rest.
            if (!s.send(zmq::buffer(part.data(), part.size()), flags)) return SendResult::would_block;
        } catch (const zmq::error_t& e) {
            if (e.num() == EHOSTUNREACH) return SendResult::unroutable;
            if (e.num() == EAGAIN) return SendResult::would_block;
            throw;
        }
    }
    return SendResult::sent;
}

}  // namespace

Transport::Transport(const ClusterConfig& cfg, NodeId self, TransportOptions opts)
    : ctx_(1),
      self_(self),
      pub_(make_socket(ctx_, zmq::socket_type::pub)),
      router_(make_socket(ctx_, zmq::socket_type::router)),
      sub_(make_socket(ctx_, zmq::socket_type::sub)) {
    const NodeSpec* me = cfg.find(self);
    if (!me) throw ConfigError("no node with id " + std::to_string(self));
    router_.set(zmq::sockopt::router_handover, 1);
    router_.set(zmq::sockopt::router_mandatory, 1);
    bind_or_throw(pub_, me->endpoint(me->pub), "the PUB port of node " + me->label());
    bind_or_throw(router_, me->endpoint(me->peer), "the peer port of node " + me->label());

    // The SUB takes every topic: heartbeats, announcements; not the trace (that is for
    // collectors). Topic filtering is by prefix, so subscribe to the exact topics used.
    for (const char* topic : {"hb", "leader", "member"}) sub_.set(zmq::sockopt::subscribe, topic);
    std::string routing_id = std::to_string(self);
    for (const NodeSpec& n : cfg.nodes) {
        if (n.id == self) continue;
        sub_.connect(n.endpoint(n.pub));
        zmq::socket_t d = make_socket(ctx_, zmq::socket_type::dealer);
        d.set(zmq::sockopt::routing_id, routing_id);
        d.set(zmq::sockopt::immediate, 1);
        d.set(zmq::sockopt::sndhwm, opts.peer_send_hwm);
        d.set(zmq::sockopt::heartbeat_ivl, static_cast<int>(opts.zmtp_heartbeat.count()));
        d.set(zmq::sockopt::heartbeat_timeout, static_cast<int>(opts.zmtp_timeout.count()));
        d.set(zmq::sockopt::heartbeat_ttl, static_cast<int>(opts.zmtp_timeout.count()));
        d.set(zmq::sockopt::reconnect_ivl, 100);
        // A restarted peer must hear from us within its shortest timeout (Raft: 150 ms):
        // back off to at most 250 ms, not libzmq's usual seconds. Cheap on a LAN.
        d.set(zmq::sockopt::reconnect_ivl_max, 250);
        d.connect(n.endpoint(n.peer));
        dealers_.emplace(n.id, std::move(d));
    }

    // Priority order: peer traffic first (it carries elections), then replies, then PUB/SUB.
    items_.push_back({router_.handle(), 0, ZMQ_POLLIN, 0});
    item_source_.push_back({Channel::router, 0});
    for (auto& [id, d] : dealers_) {
        items_.push_back({d.handle(), 0, ZMQ_POLLIN, 0});
        item_source_.push_back({Channel::dealer, id});
    }
    items_.push_back({sub_.handle(), 0, ZMQ_POLLIN, 0});
    item_source_.push_back({Channel::sub, 0});
}

SendResult Transport::publish(std::string_view topic, std::string_view payload) {
    return send_parts(pub_, {topic, payload});
}

SendResult Transport::send_to(NodeId peer, std::string_view payload) {
    auto it = dealers_.find(peer);
    if (it == dealers_.end()) return SendResult::unroutable;
    return send_parts(it->second, {payload});
}

SendResult Transport::reply_to(const std::string& routing_id, std::string_view payload) {
    return send_parts(router_, {routing_id, payload});
}

std::optional<Incoming> Transport::receive(size_t i) {
    auto [channel, peer] = item_source_.at(i);
    zmq::socket_ref sock(zmq::from_handle, items_[i].socket);
    std::vector<zmq::message_t> parts;
    for (;;) {
        try {
            if (!zmq::recv_multipart(sock, std::back_inserter(parts), zmq::recv_flags::dontwait))
                return std::nullopt;
            break;
        } catch (const zmq::error_t& e) {
            if (e.num() == EINTR) continue;
            throw;
        }
    }
    Incoming in;
    in.channel = channel;
    in.dealer_peer = peer;
    size_t want = channel == Channel::dealer ? 1 : 2;
    if (parts.size() != want) {
        in.malformed = "expected " + std::to_string(want) + " frame(s), got " +
                       std::to_string(parts.size());
        if (channel == Channel::router) in.routing_id = parts[0].to_string();
        return in;
    }
    if (channel == Channel::sub) in.topic = parts[0].to_string();
    if (channel == Channel::router) in.routing_id = parts[0].to_string();
    in.payload = parts.back().to_string();
    return in;
}

}  // namespace bus
