#include "bus/lock_server.hpp"

namespace bus {

namespace {

LockReplyMsg to_msg(const LockReply& r, uint64_t req) {
    LockReplyMsg m;
    m.req = req;
    m.status = r.status;
    m.error = r.error;
    m.session = r.session;
    m.lock = r.lock;
    m.token = r.token;
    m.pos = r.pos;
    m.file = r.file;
    m.offset = r.offset;
    m.bytes = r.bytes;
    if (!r.info.is_null()) m.info = r.info.dump();
    return m;
}

std::optional<LockCommand::Op> op_of(const std::string& op) {
    using Op = LockCommand::Op;
    if (op == "open") return Op::open;
    if (op == "close") return Op::close;
    if (op == "acquire") return Op::acquire;
    if (op == "release") return Op::release;
    if (op == "append") return Op::append;
    if (op == "status") return Op::status;
    if (op == "cancel") return Op::cancel;
    return std::nullopt;
}

}  // namespace

LockServer::LockServer(std::unique_ptr<Raft> raft, LockMachine* machine, Duration election_timeout_max)
    : raft_(std::move(raft)), m_(machine), grace_extra_(2 * election_timeout_max) {
    raft_->set_state_machine(m_);
}

void LockServer::reply(Actions& a, const std::string& route, LockReplyMsg m) {
    m.leader = raft_->leader();
    a.reply_client(route, std::move(m));
}

void LockServer::reject(Actions& a, const std::string& route, const std::string& client, const LockRequest& r,
                        const std::string& why, uint64_t current) {
    a.trace("rpc.reject", {{"client", client}, {"op", r.op}, {"req", r.req}, {"reason", why}, {"token", r.token},
                           {"current", current}});
    LockReplyMsg m;
    m.req = r.req;
    m.status = "rejected";
    m.error = why;
    m.session = r.session;
    m.lock = r.lock;
    m.token = current;
    reply(a, route, std::move(m));
}

Actions LockServer::on_client(const std::string& route, const Envelope& env, Time now) {
    Actions a;
    const auto* r = std::get_if<LockRequest>(&env.body);
    const std::string& client = std::get<std::string>(env.from);  // (the host admits client ids only)
    if (!r) {  // a well-formed message of another kind: answered, or its sender waits for nothing
        reject(a, route, client, LockRequest{}, std::string("not a lock request: a ") + info(env.type()).name + " message");
        return a;
    }
    auto answer = [&](const char* status, std::string error = {}) {
        LockReplyMsg m;
        m.req = r->req;
        m.status = status;
        m.error = std::move(error);
        m.session = r->session;
        reply(a, route, std::move(m));
    };
    if (raft_->role() != Raft::Role::leader) {
        answer("redirect", raft_->leader() ? "not the leader" : "no leader yet");
        return a;
    }
    if (!ready_) {
        answer("unavailable", "a new leader, not ready yet: retry");
        return a;
    }
    if (r->session != 0 && m_->sessions().count(r->session)) {
        bool first = route_of_.find(r->session) == route_of_.end();
        route_of_[r->session] = route;  // pushes go where the session last spoke from
        lease_until_[r->session] = now + std::chrono::milliseconds(m_->sessions().at(r->session).ttl_ms);
        // Its first word to this leader: grants an earlier leader decided may never have
        // been pushed (it fell before). Push them again; the client knows the ones it has.
        if (first)
            for (const std::string& name : m_->locks_of(r->session)) {
                LockReply g;
                g.session = r->session;
                g.status = "granted";
                g.lock = name;
                g.token = m_->holder(name).second;
                reply(a, route, to_msg(g, 0));
            }
    }
    if (r->op == "keepalive") {
        auto s = m_->sessions().find(r->session);
        if (s == m_->sessions().end()) {
            reject(a, route, client, *r, "no such session (expired or closed)");
            return a;
        }
        if (auto ex = expiring_.find(r->session); ex != expiring_.end() && ex->second == s->second.epoch) {
            // Its lease ran out here and the expiry is on its way to commit: an "alive" now
            // would let the client count a new lease on a session about to go (and its
            // locks to someone else). Not refused either: the expiry may yet not commit.
            answer("unavailable", "the session's lease ran out and its expiry is being committed");
            return a;
        }
        LockReplyMsg m;
        m.req = r->req;
        m.status = "alive";
        m.session = r->session;
        m.ttl_ms = s->second.ttl_ms;
        reply(a, route, std::move(m));
        return a;
    }
    auto op = op_of(r->op);
    if (!op) {
        reject(a, route, client, *r,
               "unknown op '" + r->op + "' (open, keepalive, close, acquire, release, cancel, append, status)");
        return a;
    }
    if (pending_.size() >= kMaxPendingLockRequests) {
        answer("busy", "too many requests waiting for commit: back off and retry");
        return a;
    }
    LockCommand c;
    c.op = *op;
    c.session = *op == LockCommand::Op::open ? 0 : r->session;
    c.req = r->req;
    c.client = client;  // the process: exactly-once is per (session, client, req)
    c.v = kCommandFormat;
    c.ttl_ms = r->ttl_ms;
    c.lock = r->lock;
    c.token = r->token;
    c.file = r->file;
    c.data = r->data;
    if (std::string bad = validate(c); !bad.empty()) {
        reject(a, route, client, *r, bad);
        return a;
    }
    uint64_t index = raft_->propose(encode_command(c), now, a);
    pending_[index] = Pending{route, client, r->op, r->req, r->session, r->token};
    return after(std::move(a), now);
}

Actions LockServer::on_bad_client(const std::string& route, const std::string& why, Time) {
    Actions a;
    LockRequest unreadable;  // nothing of it is known
    reject(a, route, route, unreadable, "malformed request: " + why);
    return a;
}

Actions LockServer::after(Actions a, Time now) {
    for (auto& e : m_->take_events()) a.trace(e.ev, std::move(e.fields), e.level);
    bool leading = raft_->role() == Raft::Role::leader;
    for (LockOutput& o : m_->take_outputs()) {
        if (!leading) continue;  // only the leader talks to clients
        if (o.push) {
            auto route = route_of_.find(o.reply.session);
            if (route != route_of_.end()) reply(a, route->second, to_msg(o.reply, 0));
            continue;
        }
        auto p = pending_.find(o.index);
        if (p == pending_.end()) continue;  // proposed by an earlier leader: its client retries
        Pending w = std::move(p->second);
        pending_.erase(p);
        if (o.reply.status == "opened") {
            // (Unless a close in the same batch already ended it: its id is guessable.)
            if (auto s = m_->sessions().find(o.reply.session); s != m_->sessions().end()) {
                route_of_[o.reply.session] = w.route;
                lease_until_[o.reply.session] = now + std::chrono::milliseconds(s->second.ttl_ms);
            }
        }
        if (o.reply.status == "rejected")
            a.trace("rpc.reject", {{"client", w.client}, {"op", w.op}, {"req", w.req}, {"reason", o.reply.error},
                                   {"token", w.token}, {"current", o.reply.token}});
        reply(a, w.route, to_msg(o.reply, w.req));
    }
    if (leading && !ready_ && raft_->term_at(raft_->commit_index()) == raft_->term()) {
        // The first entry of our term has committed: we know everything committed before
        // us. Leases we never saw renewed get a grace period first.
        ready_ = true;
        ready_term_ = raft_->term();
        lease_until_.clear();
        expiring_.clear();
        for (auto& [id, s] : m_->sessions())
            lease_until_[id] = now + std::chrono::milliseconds(s.ttl_ms) + std::max<Duration>(std::chrono::milliseconds(s.ttl_ms), grace_extra_);
        a.trace("lock.ready", {{"term", ready_term_}, {"sessions", m_->sessions().size()}});
    }
    if (!leading && (ready_ || !pending_.empty())) {
        ready_ = false;
        for (auto& [index, w] : pending_) {
            LockReplyMsg m;
            m.req = w.req;
            m.status = "unavailable";
            m.error = "leadership lost: retry the same request (it is applied at most once)";
            m.session = w.session;
            reply(a, w.route, std::move(m));
        }
        pending_.clear();
        lease_until_.clear();
        expiring_.clear();
        route_of_.clear();
    }
    return a;
}

Actions LockServer::on_tick(Time now) {
    Actions a = raft_->on_tick(now);
    if (ready_ && raft_->role() == Raft::Role::leader) {
        for (auto it = lease_until_.begin(); it != lease_until_.end();) {
            auto s = m_->sessions().find(it->first);
            if (s == m_->sessions().end()) {  // closed or expired
                expiring_.erase(it->first);
                route_of_.erase(it->first);
                it = lease_until_.erase(it);
                continue;
            }
            auto ex = expiring_.find(it->first);
            if (now >= it->second && (ex == expiring_.end() || ex->second != s->second.epoch)) {
                LockCommand c;
                c.op = LockCommand::Op::expire;
                c.session = it->first;
                c.epoch = s->second.epoch;
                c.v = kCommandFormat;
                raft_->propose(encode_command(c), now, a);
                expiring_[it->first] = c.epoch;
            }
            ++it;
        }
    }
    return after(std::move(a), now);
}

Time LockServer::next_deadline() const {
    Time t = raft_->next_deadline();
    if (!ready_) return t;
    for (auto& [id, until] : lease_until_) {
        auto s = m_->sessions().find(id);
        auto ex = expiring_.find(id);
        if (s != m_->sessions().end() && ex != expiring_.end() && ex->second == s->second.epoch) continue;  // proposed
        t = std::min(t, until);
    }
    return t;
}

std::vector<std::string> LockServer::check_invariants() const {
    auto bad = raft_->check_invariants();
    for (auto& v : m_->check_invariants()) bad.push_back("lock machine: " + v);
    if (ready_ && raft_->role() != Raft::Role::leader) bad.push_back("lock server ready but not leading");
    return bad;
}

Json LockServer::status() const {
    Json j = raft_->status();
    j["ready"] = ready_;
    j["pending"] = pending_.size();
    j["leases"] = lease_until_.size();
    return j;
}

}  // namespace bus
