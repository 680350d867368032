#include "bus/lock_client.hpp"

#include <atomic>
#include <cstring>
#include <unistd.h>

#include "bus/duration.hpp"
#include "bus/lock_machine.hpp"
#include "bus/raft_storage.hpp"
#include "bus/transport.hpp"

namespace bus {

namespace {

int64_t margin_us(uint64_t ttl_ms) { return static_cast<int64_t>(ttl_ms) * 1000 / 10; }

}  // namespace

LockClient::LockClient(const ClusterConfig& cfg, LockClientOptions o, Tracer* tracer)
    : opts_(o),
      tracer_(tracer),
      own_ctx_(o.context ? nullptr : std::make_unique<zmq::context_t>(1)),
      ctx_(o.context ? o.context : own_ctx_.get()),
      rng_(static_cast<uint64_t>(::getpid()) ^ static_cast<uint64_t>(clock_.wall_us())) {
    inc_ = static_cast<uint64_t>(clock_.wall_us());
    // A fresh client id, never reused: pid, start time, and the count of clients made in
    // this process (several may start in the same microsecond).
    static std::atomic<uint64_t> made{0};
    uint64_t nth = made++;
    id_ = "c" + std::to_string(::getpid()) + "-" + std::to_string(inc_ % 1000000) + (nth ? "-" + std::to_string(nth) : "");
    for (const NodeSpec& n : cfg.nodes) {
        if (!n.client) continue;
        Endpoint e;
        e.id = n.id;
        e.address = n.endpoint(n.client);
        e.sock = make_socket(*ctx_, zmq::socket_type::dealer);
        e.sock.set(zmq::sockopt::routing_id, id_);
        e.sock.set(zmq::sockopt::immediate, 1);
        e.sock.set(zmq::sockopt::reconnect_ivl, 50);
        e.sock.set(zmq::sockopt::reconnect_ivl_max, 250);
        std::string mon = "inproc://lock-client-monitor-" + id_ + "-" + std::to_string(endpoints_.size());
        if (zmq_socket_monitor(e.sock.handle(), mon.c_str(), ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED) != 0)
            throw std::runtime_error("zmq_socket_monitor failed");
        e.monitor = zmq::socket_t(*ctx_, zmq::socket_type::pair);
        e.monitor.set(zmq::sockopt::linger, 0);
        e.monitor.connect(mon);
        e.sock.connect(e.address);
        endpoints_.push_back(std::move(e));
    }
    if (endpoints_.empty()) throw ConfigError(cfg.path + ": no node has a client port");
    std::vector<void*> socks;
    for (auto& e : endpoints_) socks.push_back(e.sock.handle());
    for (auto& e : endpoints_) socks.push_back(e.monitor.handle());
    poller_.set(socks);
    current_ = static_cast<size_t>(rng_() % endpoints_.size());
}

LockClient::~LockClient() = default;

uint64_t LockClient::next_req() {
    last_req_ = std::max(last_req_ + 1, static_cast<uint64_t>(clock_.wall_us()));
    return last_req_;
}

void LockClient::failed_current() {
    Endpoint& e = endpoints_[current_];
    if (++e.failures >= opts_.breaker_failures) e.open_until = clock_.now() + opts_.breaker_open;
    current_ = pick_next();
}

size_t LockClient::pick_next() {
    Time now = clock_.now();
    for (size_t k = 1; k <= endpoints_.size(); ++k) {
        size_t i = (current_ + k) % endpoints_.size();
        if (endpoints_[i].open_until <= now) return i;
    }
    return (current_ + 1) % endpoints_.size();  // every breaker open: try anyway
}

Duration LockClient::backoff(int attempt) {
    // Exponential with full jitter (AWS architecture blog): uniform in [0, min(max, min·2^n)].
    int64_t cap = std::min<int64_t>(opts_.backoff_max.count(), opts_.backoff_min.count() << std::min(attempt, 20));
    return Duration(static_cast<int64_t>(rng_() % static_cast<uint64_t>(std::max<int64_t>(cap, 1))));
}

bool LockClient::send(const LockRequest& r) {
    Envelope env;
    env.from = id_;
    env.inc = inc_;
    env.seq = ++seq_;
    env.body = r;
    std::string frame = encode(env);
    for (size_t tried = 0; tried < endpoints_.size(); ++tried) {
        bool sent = endpoints_[current_].sock.send(zmq::buffer(frame), zmq::send_flags::dontwait).has_value();
        poller_.touched(current_);
        if (sent) return true;  // lost later: the timeout retries
        failed_current();
    }
    return false;
}

void LockClient::read_monitors() {
    const size_t n = endpoints_.size();
    for (size_t i = 0; i < n; ++i) {
        if (!poller_.ready(n + i)) continue;
        Endpoint& e = endpoints_[i];
        for (;;) {
            zmq::message_t ev, addr;
            if (!e.monitor.recv(ev, zmq::recv_flags::dontwait)) break;
            if (ev.more()) (void)e.monitor.recv(addr, zmq::recv_flags::dontwait);
            if (ev.size() < 2) continue;
            uint16_t kind;
            std::memcpy(&kind, ev.data(), sizeof kind);
            if (kind == ZMQ_EVENT_DISCONNECTED) e.down = true;
            if (kind == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) e.down = false;
        }
        poller_.idle(n + i);
    }
}

void LockClient::lose(const std::string& why) {
    if (lost_) return;
    lost_ = true;
    lost_why_ = why;
    if (tracer_)
        for (auto& [lock, token] : held_) tracer_->emit("lock.lost", {{"lock", lock}, {"token", token}, {"reason", why}});
}

void LockClient::handle_push(const LockReplyMsg& m) {
    if (m.session != session_) return;
    // Tokens only increase: a grant we already had (and maybe released) is not a new one.
    if (m.status == "granted" && m.token <= last_token_[m.lock]) return;
    pushed_[m.lock] = m;
}

void LockClient::maybe_keepalive() {
    if (session_ == 0 || lost_) return;
    if (valid_until_us_ && clock_.wall_us() > valid_until_us_) return lose("lease expired: no keepalive was answered in time");
    if (clock_.now() < next_keepalive_) return;
    if (keepalive_req_ != 0 && !keepalive_answered_) {
        // The last one went unanswered: that server may be gone. Try the next one, and
        // sooner than usual.
        failed_current();
    }
    LockRequest k;
    k.req = keepalive_req_ = next_req();
    k.op = "keepalive";
    k.session = session_;
    keepalive_sent_us_ = clock_.wall_us();
    keepalive_answered_ = false;
    send(k);
    // Every ttl/3; but an unanswered one is retried elsewhere after attempt_timeout.
    next_keepalive_ = clock_.now() + std::min<Duration>(std::chrono::milliseconds(std::max<uint64_t>(opts_.ttl_ms / 3, 10)),
                                                        opts_.attempt_timeout);
}

std::optional<LockReplyMsg> LockClient::receive(Duration timeout) {
    Time end = clock_.now() + timeout;
    for (;;) {
        maybe_keepalive();
        Time now = clock_.now();
        if (now >= end) return std::nullopt;
        Time wake = std::min(end, next_keepalive_ > now && session_ ? next_keepalive_ : end);
        auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(wake - now) + std::chrono::milliseconds(1);
        if (!poller_.wait(wait)) continue;
        bool was_down = endpoints_[current_].down;
        read_monitors();
        if (!was_down && endpoints_[current_].down) return std::nullopt;  // our server is gone: the caller moves on
        zmq::message_t msg;
        bool got = false;
        for (size_t i = 0; i < endpoints_.size() && !got; ++i) {
            if (!poller_.ready(i)) continue;
            got = endpoints_[i].sock.recv(msg, zmq::recv_flags::dontwait).has_value();
            if (got) {
                poller_.touched(i);  // there may be more
                last_from_ = i;
            } else {
                poller_.idle(i);
            }
        }
        if (!got) continue;
        DecodeResult d = decode(msg.to_string_view());
        const LockReplyMsg* m = d.env ? std::get_if<LockReplyMsg>(&d.env->body) : nullptr;
        if (!m) continue;  // not for us: ignored
        // A request the server could not read is refused without its number (it could not
        // read that either): the answer to the one in flight (call() takes it).
        if (m->req == 0 && m->status == "rejected") return *m;
        if (m->req == 0) {
            handle_push(*m);
            return std::nullopt;  // the caller looks at what was pushed
        }
        if (m->req == keepalive_req_ && keepalive_req_ != 0) {
            keepalive_answered_ = true;
            endpoints_[current_].failures = 0;
            if (m->status == "alive" && valid_until_us_ && clock_.wall_us() > valid_until_us_) {
                // Answered too late: the lease ran out meanwhile, and the server may have
                // expired the session since it answered. Lost, whatever the answer says.
                lose("lease expired: the keepalive's answer came after the lease ran out");
            } else if (m->status == "alive") {
                next_keepalive_ = clock_.now() + std::chrono::milliseconds(std::max<uint64_t>(m->ttl_ms / 3, 10));
                valid_until_us_ = keepalive_sent_us_ + static_cast<int64_t>(m->ttl_ms) * 1000 - margin_us(m->ttl_ms);
                if (tracer_)
                    for (auto& [lock, token] : held_)
                        tracer_->emit("lock.renewed", {{"lock", lock}, {"token", token}, {"valid_until", valid_until_us_}},
                                      TraceLevel::state);  // ftbus-check bounds holds with them
            } else if (m->status == "rejected") {
                lose("session gone: " + m->error);
            } else if (m->status == "redirect") {  // ask the leader, soon
                auto it = std::find_if(endpoints_.begin(), endpoints_.end(), [&](auto& e) { return e.id == m->leader; });
                if (it != endpoints_.end())
                    connect_to(static_cast<size_t>(it - endpoints_.begin()));
                else
                    current_ = pick_next();  // it knows no leader: ask another
                next_keepalive_ = clock_.now() + std::chrono::milliseconds(20);
            } else {
                next_keepalive_ = clock_.now() + std::chrono::milliseconds(20);
            }
            continue;
        }
        return *m;
    }
}

LockReplyMsg LockClient::call(LockRequest r, Duration deadline, bool waiting) {
    if (r.req == 0) r.req = next_req();
    Time start = clock_.now(), end = start + deadline;
    int attempt = 0;
    for (bool first = true;; first = false) {
        // Told to stop (Ctrl-C) while only waiting: no more retries (the first try still goes).
        if (waiting && !first && opts_.interrupt && opts_.interrupt->load())
            throw LockError("interrupted while waiting for an answer to " + r.op);
        Time now = clock_.now();
        if (now >= end)
            throw LockError("no answer to " + r.op + " within " + format_duration(deadline) +
                            " (every server tried; is a majority of the cluster up?)");
        if (endpoints_[current_].open_until > now) connect_to(pick_next());
        if (!send(r)) {  // no server reachable right now
            ++retries_;
            (void)receive(backoff(attempt++));
            continue;
        }
        Time attempt_end = std::min(end, now + opts_.attempt_timeout);
        std::optional<LockReplyMsg> m;
        size_t asked = current_;
        while (!m) {
            Duration left = attempt_end - clock_.now();
            if (left <= Duration(0) || endpoints_[asked].down) break;  // no answer coming from there
            m = receive(left);
            // An answer to an earlier attempt of something else (a refusal without a number is
            // ours: see receive()).
            if (m && m->req != r.req && !(m->req == 0 && m->status == "rejected" && last_from_ == asked)) m.reset();
        }
        // A keepalive answered meanwhile may have moved current_: what follows is about the
        // endpoint this request went to.
        current_ = asked;
        if (!m) {  // no answer: this endpoint failed; try the next
            ++retries_;
            failed_current();
            continue;
        }
        endpoints_[current_].failures = 0;
        if (m->status == "redirect") {
            ++retries_;
            auto it = std::find_if(endpoints_.begin(), endpoints_.end(), [&](auto& e) { return e.id == m->leader; });
            if (m->leader != 0 && it != endpoints_.end() && static_cast<size_t>(it - endpoints_.begin()) != current_) {
                connect_to(static_cast<size_t>(it - endpoints_.begin()));
                continue;
            }
            // It knows no leader (an election, or it is cut off from the rest): ask the next
            // one after a little while, rather than wait for this one to learn.
            current_ = pick_next();
            (void)receive(backoff(attempt++));
            continue;
        }
        if (m->status == "unavailable" || m->status == "busy") {
            ++retries_;
            (void)receive(backoff(attempt++));
            continue;
        }
        return *m;
    }
}

uint64_t LockClient::open() {
    LockRequest r;
    r.op = "open";
    r.ttl_ms = opts_.ttl_ms;
    int64_t sent = clock_.wall_us();
    LockReplyMsg m = call(r, opts_.deadline, true);
    if (m.status != "opened") throw LockError("cannot open a session: " + m.error);
    session_ = m.session;
    lost_ = false;
    valid_until_us_ = sent + static_cast<int64_t>(opts_.ttl_ms) * 1000 - margin_us(opts_.ttl_ms);
    next_keepalive_ = clock_.now() + std::chrono::milliseconds(std::max<uint64_t>(opts_.ttl_ms / 3, 10));
    return session_;
}

void LockClient::close() {
    if (session_ == 0) return;
    LockRequest r;
    r.op = "close";
    r.session = session_;
    try {
        call(r, std::min<Duration>(opts_.deadline, std::chrono::seconds(3)));
    } catch (const LockError&) {
        // The lease runs out on its own.
    }
    session_ = 0;
    held_.clear();
}

void LockClient::pump(Duration d) {
    Time end = clock_.now() + d;
    while (clock_.now() < end && !lost_) {
        auto m = receive(end - clock_.now());
        (void)m;  // a late answer to an abandoned request: nothing to do
    }
}

uint64_t LockClient::acquire(const std::string& lock, Duration wait) {
    Time end = clock_.now() + wait;
    // A push from before this call (an earlier wait, a grant given up) is not for it: the
    // grant for this one is applied after its request, and pushed after its answer.
    pushed_.erase(lock);
    for (;;) {
        LockRequest r;
        r.op = "acquire";
        r.session = session_;
        r.lock = lock;
        LockReplyMsg m = call(r, opts_.deadline, true);
        if (m.status == "rejected") throw LockError(m.error);
        if (m.status == "granted") return granted(lock, m.token);
        // Queued: wait for the grant to be pushed. Ask again now and then: a push can be lost
        // (a new leader does not know where we are), asking again is answered "granted".
        Time ask_again = clock_.now() + std::chrono::milliseconds(500);
        auto interrupted = [&] { return opts_.interrupt && opts_.interrupt->load(); };
        while (clock_.now() < std::min(end, ask_again) && !lost_ && !interrupted()) {
            // (In slices, when a signal may end the wait: poll's EINTR is not seen here.)
            Time until = std::min(end, ask_again);
            if (opts_.interrupt) until = std::min(until, clock_.now() + std::chrono::milliseconds(100));
            (void)receive(until - clock_.now());
            auto p = pushed_.find(lock);
            if (!lost_ && p != pushed_.end() && p->second.status == "granted") return granted(lock, p->second.token);
        }
        if (lost_) throw LockError("the session was lost while waiting for " + lock);
        if (clock_.now() >= end || interrupted()) {
            // Not granted in time (or told to stop waiting): leave the queue, or a later grant would hold the lock for
            // nobody until the session ends (etcd's mutex deletes its key likewise).
            cancel(lock);
            return 0;
        }
    }
}

void LockClient::cancel(const std::string& lock) {
    if (lost_) throw LockError("the session was lost while waiting for " + lock);
    LockRequest r;
    r.op = "cancel";
    r.session = session_;
    r.lock = lock;
    r.req = next_req();  // (its time, for the trace below)
    LockReplyMsg m = call(r, opts_.deadline);
    if (m.status != "cancelled") throw LockError("cannot leave the queue for " + lock + ": " + (m.error.empty() ? m.status : m.error));
    // A grant that came first was given up with it: its push, now or late, is old news.
    last_token_[lock] = std::max(last_token_[lock], m.token);
    pushed_.erase(lock);
    if (auto h = held_.find(lock); h != held_.end()) {  // we knew we held it: a release, for the trace
        if (tracer_) tracer_->emit("rpc.ack", {{"op", "release"}, {"req", r.req}, {"lock", lock}, {"token", h->second}});
        held_.erase(h);
    }
}

uint64_t LockClient::granted(const std::string& lock, uint64_t token) {
    held_[lock] = token;
    last_token_[lock] = std::max(last_token_[lock], token);
    pushed_.erase(lock);
    if (tracer_) tracer_->emit("lock.acquired", {{"lock", lock}, {"token", token}, {"valid_until", valid_until_us_}});
    return token;
}

void LockClient::release(const std::string& lock, uint64_t token) {
    LockRequest r;
    r.op = "release";
    r.session = session_;
    r.lock = lock;
    r.token = token;
    LockReplyMsg m = call(r, opts_.deadline);
    if (m.status != "released") throw LockError(m.error.empty() ? m.status : m.error);
    held_.erase(lock);
    if (tracer_) tracer_->emit("rpc.ack", {{"op", "release"}, {"req", r.req}, {"lock", lock}, {"token", token}});
}

uint64_t LockClient::append(const std::string& lock, uint64_t token, const std::string& file, const std::string& data) {
    // The service would refuse it (and a frame over ZeroMQ's limit would not even arrive):
    // say so now, in its words.
    if (data.size() > kMaxAppendBytes)
        throw LockError("an append of " + std::to_string(data.size()) + " bytes (at most " +
                        std::to_string(kMaxAppendBytes) + ")");
    LockRequest r;
    r.op = "append";
    r.session = session_;
    r.lock = lock;
    r.token = token;
    r.file = file;
    r.data = data;
    r.req = next_req();
    LockReplyMsg m = call(r, opts_.deadline);
    if (m.status != "appended") throw LockError(m.error.empty() ? m.status : m.error);
    if (tracer_)
        tracer_->emit("rpc.ack", {{"op", "append"}, {"req", r.req}, {"lock", lock}, {"token", token}, {"file", file},
                                  {"offset", m.offset}, {"bytes", m.bytes}, {"crc32c", crc32c(data)}});
    return m.offset;
}

Json LockClient::status(const std::string& lock) {
    LockRequest r;
    r.op = "status";
    r.session = session_;
    r.lock = lock;
    LockReplyMsg m = call(r, opts_.deadline);
    if (m.status != "status") throw LockError(m.error.empty() ? m.status : m.error);
    return Json::parse(m.info);
}

}  // namespace bus
