#include "bus/transport.hpp"

#include <algorithm>
#include <cerrno>
#include <system_error>

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

void Poller::set(const std::vector<void*>& sockets) {
    socks_ = sockets;
    fds_.assign(socks_.size(), pollfd{});
    recheck_.assign(socks_.size(), 1);
    ready_.assign(socks_.size(), 0);
    for (size_t i = 0; i < socks_.size(); ++i) {
        zmq::socket_ref s(zmq::from_handle, socks_[i]);
        fds_[i].fd = s.get(zmq::sockopt::fd);
        fds_[i].events = POLLIN;
    }
}

void Poller::touched_handle(void* socket) {
    for (size_t i = 0; i < socks_.size(); ++i)
        if (socks_[i] == socket) recheck_[i] = 1;
}

bool Poller::wait(std::chrono::milliseconds timeout) {
    bool any = false;
    for (size_t i = 0; i < socks_.size(); ++i) {
        ready_[i] = 0;
        if (!recheck_[i]) continue;
        int events = 0;
        size_t len = sizeof events;
        if (zmq_getsockopt(socks_[i], ZMQ_EVENTS, &events, &len) != 0) {
            if (zmq_errno() != EINTR) throw zmq::error_t();
            ready_[i] = 1;  // interrupted: the receive will tell
            any = true;
            continue;
        }
        // Ready stays to be asked again until a receive finds it empty (idle()): asking
        // may have taken its descriptor's signal, and the caller may not read it now.
        if (events & ZMQ_POLLIN)
            ready_[i] = 1, any = true;
        else
            recheck_[i] = 0;
    }
    for (auto& f : fds_) f.revents = 0;
    long ms = any ? 0 : std::clamp<long>(static_cast<long>(timeout.count()), 0, 60'000);
    int rc = ::poll(fds_.data(), fds_.size(), static_cast<int>(ms));
    if (rc < 0) {
        if (errno == EINTR) return any;
        throw std::system_error(errno, std::generic_category(), "poll");
    }
    // A descriptor that fired: commands wait in that socket's mailbox (maybe messages).
    for (size_t i = 0; i < fds_.size(); ++i)
        if (fds_[i].revents) ready_[i] = 1, any = true;
    return any;
}

namespace {

/// Sends the parts of one message on `s` without waiting.
SendResult send_all(zmq::socket_t& s, std::initializer_list<std::string_view> parts) {
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

SendResult Transport::send_parts(zmq::socket_t& s, std::initializer_list<std::string_view> parts) {
    SendResult r = send_all(s, parts);
    poller_.touched_handle(s.handle());  // the send may have taken the signal of input that came meanwhile
    return r;
}

Transport::Transport(const ClusterConfig& cfg, NodeId self, TransportOptions opts)
    : ctx_(1),
      self_(self),
      opts_(opts),
      pub_(make_socket(ctx_, zmq::socket_type::pub)),
      router_(make_socket(ctx_, zmq::socket_type::router)),
      sub_(make_socket(ctx_, zmq::socket_type::sub)) {
    const NodeSpec* me = cfg.find(self);
    if (!me) throw ConfigError("no node with id " + std::to_string(self));
    router_.set(zmq::sockopt::router_handover, 1);
    router_.set(zmq::sockopt::router_mandatory, 1);
    bind_or_throw(pub_, me->endpoint(me->pub), "the PUB port of node " + me->label());
    bind_or_throw(router_, me->endpoint(me->peer), "the peer port of node " + me->label());
    if (me->control) {
        control_ = make_socket(ctx_, zmq::socket_type::router);
        control_.set(zmq::sockopt::router_mandatory, 1);
        bind_or_throw(control_, me->endpoint(me->control), "the control port of node " + me->label());
    }
    if (opts_.clients) {
        if (!me->client) throw ConfigError("node " + me->label() + " serves clients but has no client port in the cluster file");
        client_ = make_socket(ctx_, zmq::socket_type::router);
        client_.set(zmq::sockopt::router_mandatory, 1);
        client_.set(zmq::sockopt::router_handover, 1);  // a client that reconnects keeps its id
        bind_or_throw(client_, me->endpoint(me->client), "the client port of node " + me->label());
    }

    // The SUB takes every topic: heartbeats, announcements; not the trace (that is for
    // collectors). Topic filtering is by prefix, so subscribe to the exact topics used.
    for (const char* topic : {"hb", "leader", "member"}) sub_.set(zmq::sockopt::subscribe, topic);
    for (const NodeSpec& n : cfg.nodes)
        if (n.id != self) {
            sub_.connect(n.endpoint(n.pub));
            sub_endpoint_[n.id] = n.endpoint(n.pub);
            dealers_.emplace(n.id, make_dealer(n.endpoint(n.peer)));
            dealer_endpoint_[n.id] = n.endpoint(n.peer);
        }
    rebuild_items();
}

zmq::socket_t Transport::make_dealer(const std::string& endpoint, bool immediate) {
    zmq::socket_t d = make_socket(ctx_, zmq::socket_type::dealer);
    d.set(zmq::sockopt::routing_id, std::to_string(self_));
    d.set(zmq::sockopt::immediate, immediate ? 1 : 0);
    d.set(zmq::sockopt::sndhwm, opts_.peer_send_hwm);
    // Within what libzmq takes: an int of ms, and a TTL it sends in tenths of a second in 16
    // bits (at most 6553.5 s; more is EINVAL). A cluster with --dead-after 1h gets that.
    auto ms = [](std::chrono::milliseconds v, int64_t most) { return static_cast<int>(std::min<int64_t>(v.count(), most)); };
    d.set(zmq::sockopt::heartbeat_ivl, ms(opts_.zmtp_heartbeat, 86'400'000));
    d.set(zmq::sockopt::heartbeat_timeout, ms(opts_.zmtp_timeout, 86'400'000));
    d.set(zmq::sockopt::heartbeat_ttl, ms(opts_.zmtp_timeout, 6'553'500));
    d.set(zmq::sockopt::reconnect_ivl, 100);
    // A restarted peer must hear from us within its shortest timeout (Raft: 150 ms):
    // back off to at most 250 ms, not libzmq's usual seconds. Cheap on a LAN.
    d.set(zmq::sockopt::reconnect_ivl_max, 250);
    try {
        d.connect(endpoint);
    } catch (const zmq::error_t& e) {
        throw ConfigError("cannot connect to " + endpoint + ": " + e.what());
    }
    return d;
}

void Transport::rebuild_items() {
    std::vector<void*> socks;
    item_source_.clear();
    // Priority order: peer traffic first (it carries elections), then replies, then PUB/SUB,
    // then control requests (a human can wait a millisecond).
    socks.push_back(router_.handle());
    item_source_.push_back({Channel::router, 0});
    for (auto& [id, d] : dealers_) {
        socks.push_back(d.handle());
        item_source_.push_back({Channel::dealer, id});
    }
    if (join_link_) {
        socks.push_back(join_link_->handle());
        item_source_.push_back({Channel::dealer, 0});
    }
    socks.push_back(sub_.handle());
    item_source_.push_back({Channel::sub, 0});
    if (control_.handle() != nullptr) {
        socks.push_back(control_.handle());
        item_source_.push_back({Channel::control, 0});
    }
    if (client_.handle() != nullptr) {
        socks.push_back(client_.handle());
        item_source_.push_back({Channel::client, 0});
    }
    poller_.set(socks);
}

void Transport::add_peer(const NodeSpec& peer) {
    if (peer.id == self_) return;
    std::string dealer_ep = peer.endpoint(peer.peer), sub_ep = peer.endpoint(peer.pub);
    auto d = dealer_endpoint_.find(peer.id);
    if (d != dealer_endpoint_.end() && d->second == dealer_ep && sub_endpoint_[peer.id] == sub_ep) return;
    remove_peer(peer.id);
    try {
        sub_.connect(sub_ep);
    } catch (const zmq::error_t& e) {
        throw ConfigError("cannot connect to " + sub_ep + ": " + e.what());
    }
    sub_endpoint_[peer.id] = sub_ep;
    dealers_.emplace(peer.id, make_dealer(dealer_ep));
    dealer_endpoint_[peer.id] = dealer_ep;
    rebuild_items();
}

void Transport::remove_peer(NodeId peer) {
    if (auto s = sub_endpoint_.find(peer); s != sub_endpoint_.end()) {
        try {
            sub_.disconnect(s->second);
        } catch (const zmq::error_t&) {  // ENOENT: never connected; nothing to undo
        }
        sub_endpoint_.erase(s);
    }
    dealers_.erase(peer);  // closes it (linger 0)
    dealer_endpoint_.erase(peer);
    rebuild_items();
}

SendResult Transport::send_to_endpoint(const std::string& endpoint, std::string_view payload) {
    if (!join_link_ || join_endpoint_ != endpoint) {
        join_link_.reset();
        // Not `immediate`: the JOIN waits in the queue for the connection being made.
        join_link_.emplace(make_dealer(endpoint, false));
        join_endpoint_ = endpoint;
        rebuild_items();
    }
    return send_parts(*join_link_, {payload});
}

void Transport::close_join_link() {
    if (!join_link_) return;
    join_link_.reset();
    join_endpoint_.clear();
    rebuild_items();
}

SendResult Transport::reply_client(const std::string& routing_id, std::string_view payload) {
    if (client_.handle() == nullptr) return SendResult::unroutable;
    return send_parts(client_, {routing_id, payload});
}

SendResult Transport::reply_control(const std::string& routing_id, std::string_view payload) {
    if (control_.handle() == nullptr) return SendResult::unroutable;
    return send_parts(control_, {routing_id, "", payload});
}

void Transport::linger_on_close(std::chrono::milliseconds ms) {
    int v = static_cast<int>(ms.count());
    for (auto& [id, d] : dealers_) d.set(zmq::sockopt::linger, v);
    pub_.set(zmq::sockopt::linger, v);
    if (control_.handle() != nullptr) control_.set(zmq::sockopt::linger, v);  // the answer to `leave`
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
    zmq::socket_ref sock(zmq::from_handle, poller_.socket(i));
    std::vector<zmq::message_t> parts;
    for (;;) {
        try {
            if (!zmq::recv_multipart(sock, std::back_inserter(parts), zmq::recv_flags::dontwait)) {
                poller_.idle(i);
                return std::nullopt;
            }
            poller_.touched(i);  // there may be more
            break;
        } catch (const zmq::error_t& e) {
            if (e.num() == EINTR) continue;
            throw;
        }
    }
    Incoming in;
    in.channel = channel;
    in.dealer_peer = peer;
    size_t want = channel == Channel::dealer ? 1 : channel == Channel::control ? 3 : 2;
    if (parts.size() != want || (channel == Channel::control && parts[1].size() != 0)) {
        // Counted as the sender sent them: a ROUTER adds the routing id frame itself.
        bool routed = channel == Channel::router || channel == Channel::control || channel == Channel::client;
        size_t added = routed ? 1 : 0;
        in.malformed = "expected " + std::to_string(want - added) + " frame(s)" +
                       (channel == Channel::control ? " (an empty delimiter, then the request)" : "") + ", got " +
                       std::to_string(parts.size() - std::min(parts.size(), added));
        if (routed) in.routing_id = parts[0].to_string();
        return in;
    }
    if (channel == Channel::control) in.routing_id = parts[0].to_string();
    if (channel == Channel::sub) in.topic = parts[0].to_string();
    if (channel == Channel::router || channel == Channel::client) in.routing_id = parts[0].to_string();
    in.payload = parts.back().to_string();
    return in;
}

}  // namespace bus
