// LockClient: the lock service's client library (ftbus-lock, ftbus-bench). Synchronous: a
// call sends one LOCK_REQUEST and waits for its LOCK_REPLY, doing meanwhile what a session
// needs (keepalives when due, pushes remembered).
//
// Finding the leader and surviving failures (docs/LOCKS.md, "Clients"):
//  - a follower's `redirect` names the leader: go there at once; no leader known yet,
//    `unavailable` or `busy`: back off (exponential, full jitter) and retry;
//  - no answer within attempt_timeout: the endpoint counts a failure and the next one is
//    tried; an endpoint that failed breaker_failures times in a row is skipped for
//    breaker_open (a short circuit breaker: well under a failover time);
//  - every retry re-sends the same request number, so the server applies it at most once;
//  - everything gives up at the call's deadline with LockError (a clear message).
// Request numbers are max(previous + 1, wall-clock µs), so that other processes acting for
// the same session (`ftbus-lock append` inside `ftbus-lock hold`) use later numbers.
//
// The lease: a keepalive leaves every ttl/3; the client counts its lease from when it
// *sent* the keepalive that was answered, minus a margin (valid_until). If that instant
// passes, or the server says the session is gone, the lock is lost (lease_lost()).
// Not thread-safe.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <zmq.hpp>

#include "bus/cluster.hpp"
#include "bus/protocol.hpp"
#include "bus/trace.hpp"
#include "bus/transport.hpp"

namespace bus {

struct LockError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct LockClientOptions {
    Duration deadline = std::chrono::seconds(10);           ///< per call
    Duration attempt_timeout = std::chrono::milliseconds(300);
    Duration backoff_min = std::chrono::milliseconds(10);
    Duration backoff_max = std::chrono::milliseconds(400);
    int breaker_failures = 3;
    Duration breaker_open = std::chrono::milliseconds(200);
    uint64_t ttl_ms = 5000;
    /// The ZeroMQ context to make sockets in (the guide's advice: one per process, shared
    /// by its clients); null: the client makes its own. It must outlive the client.
    zmq::context_t* context = nullptr;
    /// Set (by a signal handler, say): a waiting acquire stops waiting as if its wait had run
    /// out — it leaves the queue and returns 0 —, and a request that must be retried (no
    /// answer yet) is not retried: LockError. Null: never.
    const std::atomic<bool>* interrupt = nullptr;
};

class LockClient {
public:
    /// `tracer` (may be null) gets rpc.ack / lock.acquired / lock.renewed / lock.lost.
    LockClient(const ClusterConfig& cfg, LockClientOptions o = {}, Tracer* tracer = nullptr);
    ~LockClient();

    const std::string& id() const { return id_; }
    /// Traces rpc.ack, lock.acquired, lock.renewed, lock.lost from now on (null: none).
    void set_tracer(Tracer* t) { tracer_ = t; }

    // ---- sessions
    /// Opens a session with this client's ttl. \throws LockError.
    uint64_t open();
    /// Uses an existing session (another process opened it: FTBUS_SESSION).
    void attach(uint64_t session) { session_ = session; }
    uint64_t session() const { return session_; }
    /// Ends the session (its locks are released). Best effort within the deadline.
    void close();
    /// Keeps the session alive and collects pushes for `d` (or until the lease is lost).
    void pump(Duration d);
    bool lease_lost() const { return lost_; }
    /// Why, once lease_lost(): "lease expired: ..." or "session gone: ..." (a session ends
    /// by expiry, or closed by a process sharing it, e.g. `ftbus-lock release`).
    const std::string& lost_reason() const { return lost_why_; }
    /// Real-clock µs until which this client may still act as holder (0: no lease yet).
    int64_t valid_until_us() const { return valid_until_us_; }

    // ---- locks
    /// Acquires `lock`, waiting up to `wait` in the queue. \return the fencing token, or 0
    /// if not granted within `wait` (the session then leaves the queue: cancel()).
    uint64_t acquire(const std::string& lock, Duration wait);
    /// The session no longer wants `lock`: it leaves the queue (or gives the lock up, if a
    /// grant got there first). \throws LockError.
    void cancel(const std::string& lock);
    /// \throws LockError with the server's reason ("you do not hold the lock").
    void release(const std::string& lock, uint64_t token);
    /// \return the offset the data landed at. \throws LockError.
    uint64_t append(const std::string& lock, uint64_t token, const std::string& file, const std::string& data);
    /// Linearizable: holders, queues, files (JSON). \throws LockError.
    Json status(const std::string& lock);

    /// One request (req filled in), answered or \throws LockError at the deadline.
    /// `waiting`: a request that only waits (open, acquire) — an interrupt ends its retries.
    /// What cleans up after one (cancel, release, close) keeps retrying to its deadline.
    LockReplyMsg call(LockRequest r, Duration deadline, bool waiting = false);
    uint64_t retries() const { return retries_; }

private:
    struct Endpoint {
        NodeId id;
        std::string address;
        zmq::socket_t sock;  ///< connected from the start, `immediate`: a dead server refuses at once
        zmq::socket_t monitor;  ///< the socket's connection events (a server that dies is seen at once)
        bool down = false;      ///< disconnected since the last handshake
        int failures = 0;
        Time open_until{};
    };
    /// Talk to endpoint `i` from now on.
    void connect_to(size_t i) { current_ = i; }
    size_t pick_next();
    /// The current endpoint failed (no connection, no answer): count it against its circuit
    /// breaker and move on to the next.
    void failed_current();
    /// `lock` is ours with `token`: remembered, traced (lock.acquired). \return token.
    uint64_t granted(const std::string& lock, uint64_t token);
    Duration backoff(int attempt);
    /// Sends to the current endpoint, moving on past those that refuse at once (no
    /// connection: the server is down). False if every one refused.
    bool send(const LockRequest& r);
    /// Receives one answer within `timeout`; keepalive answers are handled here, and so are
    /// pushes, which return nullopt at once (the caller looks at pushed_).
    std::optional<LockReplyMsg> receive(Duration timeout);
    void maybe_keepalive();
    /// Reads the connection events of endpoints whose monitor the last wait found ready:
    /// marks them down (disconnected) or up (handshake done).
    void read_monitors();
    void handle_push(const LockReplyMsg& m);
    uint64_t next_req();
    void lose(const std::string& why);

    LockClientOptions opts_;
    Tracer* tracer_;
    RealClock clock_;
    std::string id_;
    uint64_t inc_;
    uint64_t seq_ = 0;
    uint64_t last_req_ = 0;
    std::unique_ptr<zmq::context_t> own_ctx_;  ///< when no context was given
    zmq::context_t* ctx_;
    std::vector<Endpoint> endpoints_;
    Poller poller_;  ///< endpoints' sockets, then their monitors
    size_t current_ = 0;
    size_t last_from_ = 0;  ///< the endpoint the last message received came from
    std::mt19937_64 rng_;
    uint64_t session_ = 0;
    bool lost_ = false;
    std::string lost_why_;
    int64_t valid_until_us_ = 0;
    Time next_keepalive_{};
    uint64_t keepalive_req_ = 0;
    bool keepalive_answered_ = true;
    int64_t keepalive_sent_us_ = 0;
    std::map<std::string, LockReplyMsg> pushed_;  ///< lock -> latest push for it
    /// lock -> the highest token this client was granted it with: a pushed grant with a
    /// token no higher is old news (a delayed push from an earlier leader), never a new grant.
    std::map<std::string, uint64_t> last_token_;
    std::map<std::string, uint64_t> held_;         ///< lock -> token, for lock.lost
    uint64_t retries_ = 0;
};

}  // namespace bus
