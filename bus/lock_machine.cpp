#include "bus/lock_machine.hpp"

#include <algorithm>

#include "bus/raft_storage.hpp"

namespace bus {

namespace {

constexpr const char* kNotHolder = "you do not hold the lock";
const std::string kOneStream;  ///< the dedupe key of format-0 entries: one per session

Json bin(const std::string& s) { return Json::binary(std::vector<uint8_t>(s.begin(), s.end())); }
std::string unbin(const Json& j) {
    const auto& b = j.get_binary();
    return std::string(b.begin(), b.end());
}

Json reply_json(const LockReply& r) {
    Json j = {{"session", r.session}, {"req", r.req}, {"status", r.status}};
    if (!r.error.empty()) j["error"] = r.error;
    if (!r.lock.empty()) j["lock"] = r.lock;
    if (r.token) j["token"] = r.token;
    if (r.pos) j["pos"] = r.pos;
    if (!r.file.empty()) j["file"] = r.file;
    if (r.status == "appended") j["offset"] = r.offset, j["bytes"] = r.bytes;
    if (!r.info.is_null()) j["info"] = r.info;
    return j;
}

LockReply reply_from(const Json& j) {
    LockReply r;
    r.session = j.at("session").get<uint64_t>();
    r.req = j.at("req").get<uint64_t>();
    r.status = j.at("status").get<std::string>();
    r.error = j.value("error", "");
    r.lock = j.value("lock", "");
    r.token = j.value("token", uint64_t{0});
    r.pos = j.value("pos", uint64_t{0});
    r.file = j.value("file", "");
    r.offset = j.value("offset", uint64_t{0});
    r.bytes = j.value("bytes", uint64_t{0});
    if (j.contains("info")) r.info = j["info"];
    return r;
}

LockReply make_reply(uint64_t session, uint64_t req, std::string status = {}) {
    LockReply r;
    r.session = session;
    r.req = req;
    r.status = std::move(status);
    return r;
}

}  // namespace

const char* to_string(LockCommand::Op op) {
    switch (op) {
        case LockCommand::Op::open: return "open";
        case LockCommand::Op::close: return "close";
        case LockCommand::Op::acquire: return "acquire";
        case LockCommand::Op::release: return "release";
        case LockCommand::Op::append: return "append";
        case LockCommand::Op::status: return "status";
        case LockCommand::Op::expire: return "expire";
        case LockCommand::Op::cancel: return "cancel";
    }
    return "?";
}

std::string encode_command(const LockCommand& c) {
    Json j = {{"op", static_cast<int>(c.op)}};
    if (c.session) j["session"] = c.session;
    if (c.req) j["req"] = c.req;
    if (!c.client.empty()) j["client"] = c.client;
    if (c.ttl_ms) j["ttl_ms"] = c.ttl_ms;
    if (!c.lock.empty()) j["lock"] = c.lock;
    if (c.token) j["token"] = c.token;
    if (!c.file.empty()) j["file"] = c.file;
    if (c.op == LockCommand::Op::append) j["data"] = bin(c.data);
    if (c.epoch) j["epoch"] = c.epoch;
    if (c.v) j["v"] = c.v;
    std::vector<uint8_t> b = Json::to_msgpack(j);
    return std::string(b.begin(), b.end());
}

std::optional<LockCommand> decode_command(std::string_view bytes, std::string& why, bool* newer) {
    Json j = Json::from_msgpack(bytes.begin(), bytes.end(), true, false);
    if (j.is_discarded() || !j.is_object()) return why = "not a msgpack map", std::nullopt;
    LockCommand c;
    auto uint = [&](const char* k, uint64_t& out) {
        if (!j.contains(k)) return true;
        if (!j[k].is_number_unsigned()) return why = std::string("field '") + k + "' is not an unsigned integer", false;
        out = j[k].get<uint64_t>();
        return true;
    };
    auto str = [&](const char* k, std::string& out) {
        if (!j.contains(k)) return true;
        if (!j[k].is_string()) return why = std::string("field '") + k + "' is not a string", false;
        out = j[k].get<std::string>();
        return true;
    };
    // The format first: a newer one may have changed any other field.
    if (j.contains("v") && (!j["v"].is_number_unsigned() || j["v"].get<uint64_t>() > kCommandFormat)) {
        if (newer) *newer = true;
        return why = "unknown command format " + j["v"].dump(), std::nullopt;
    }
    uint64_t op = 0;
    if (!j.contains("op") || !uint("op", op)) return why = why.empty() ? "no op" : why, std::nullopt;
    if (op < 1) return why = "op 0", std::nullopt;
    if (op > static_cast<uint64_t>(LockCommand::Op::cancel)) {
        if (newer) *newer = true;
        return why = "unknown op " + std::to_string(op), std::nullopt;
    }
    c.op = static_cast<LockCommand::Op>(op);
    if (!uint("session", c.session) || !uint("req", c.req) || !str("client", c.client) || !uint("ttl_ms", c.ttl_ms) ||
        !str("lock", c.lock) || !uint("token", c.token) || !str("file", c.file) || !uint("epoch", c.epoch) ||
        !uint("v", c.v))
        return std::nullopt;
    if (j.contains("data")) {
        if (!j["data"].is_binary()) return why = "field 'data' is not bytes", std::nullopt;
        c.data = unbin(j["data"]);
    }
    return c;
}

std::string validate(const LockCommand& c) {
    using Op = LockCommand::Op;
    if (c.op == Op::open) {
        if (!name_ok(c.client, kMaxClientName)) return name_rule("a client id", kMaxClientName);
        if (c.ttl_ms < kMinTtlMs || c.ttl_ms > kMaxTtlMs)
            return "a ttl of " + std::to_string(c.ttl_ms) + " ms (from " + std::to_string(kMinTtlMs) + " ms to " +
                   std::to_string(kMaxTtlMs / 60000) + " min)";
        return "";
    }
    if (!c.client.empty() && !name_ok(c.client, kMaxClientName))
        return name_rule("a client id", kMaxClientName);
    if (c.session == 0 && c.op != Op::status) return "no session";
    if (c.op == Op::expire) return c.epoch ? "" : "an expiry without an epoch";
    if (c.req == 0) return "no request number";
    if (c.op == Op::acquire || c.op == Op::release || c.op == Op::append || c.op == Op::cancel) {
        if (!name_ok(c.lock, kMaxLockName)) return name_rule("a lock name", kMaxLockName);
    }
    if (c.op == Op::status && !c.lock.empty() && !name_ok(c.lock, kMaxLockName)) return name_rule("a lock name", kMaxLockName);
    if (c.op == Op::append) {
        if (!name_ok(c.file, kMaxFileName)) return name_rule("a file name", kMaxFileName);
        if (c.data.size() > kMaxAppendBytes)
            return "an append of " + std::to_string(c.data.size()) + " bytes (at most " + std::to_string(kMaxAppendBytes) + ")";
    }
    return "";
}

// ---- applying -------------------------------------------------------------------------------

void LockMachine::trace(std::string ev, Json fields, const LogEntry& e) {
    fields["index"] = e.index;
    fields["term"] = e.term;
    events_.push_back({std::move(ev), std::move(fields), TraceLevel::state});
}

std::pair<uint64_t, uint64_t> LockMachine::holder(const std::string& lock) const {
    auto it = locks_.find(lock);
    return it == locks_.end() ? std::pair<uint64_t, uint64_t>{0, 0} : std::pair{it->second.holder, it->second.token};
}

void LockMachine::apply(const LogEntry& e) {
    if (e.data.empty()) return;  // a leader's no-op
    std::string why;
    bool newer = false;
    std::optional<LockCommand> c = decode_command(e.data, why, &newer);
    if (newer)
        throw UnknownCommand("entry " + std::to_string(e.index) + " holds an " + why +
                             ", which this version does not know (a newer replica proposed it): stopping rather than "
                             "parting from the replicas that apply it; run one version on every replica");
    if (!c) return;  // never proposed by a correct leader; every replica ignores it alike
    using Op = LockCommand::Op;
    if (c->op == Op::expire) {
        auto it = sessions_.find(c->session);
        if (it == sessions_.end() || it->second.epoch != c->epoch) return;  // gone, or renewed since: stale
        end_session(*c, e, true);
        return;
    }
    LockReply r;
    r.session = c->op == Op::open ? e.index : c->session;
    r.req = c->req;
    if (std::string bad = validate(*c); !bad.empty()) {
        r.status = "rejected";
        r.error = bad;
    } else if (c->op == Op::open) {
        const bool old = c->v == 0;  // (opens were not deduplicated then)
        auto again = old || c->req == 0 ? opened_.end() : opened_.find({c->client, c->req});
        if (again != opened_.end()) {
            r.session = again->second;  // a retried open: the session it made, not a second one
            sessions_.at(again->second).epoch = e.index;  // and, as any command of it, it renews
        } else {
            sessions_[e.index] = Session{c->client, c->ttl_ms, e.index, old ? 0 : c->req, {}, 0};
            if (!old && c->req) opened_[{c->client, c->req}] = e.index;
            trace("session.open", {{"session", e.index}, {"client", c->client}, {"ttl_ms", c->ttl_ms}}, e);
        }
        r.status = "opened";
    } else if (c->op == Op::status && c->session == 0) {
        r = status(*c);  // a read by someone without a session: nothing to remember
    } else if (auto it = sessions_.find(c->session); it == sessions_.end()) {
        r.status = "rejected";
        r.error = "no such session (expired or closed)";
    } else if (c->op == Op::status && c->v != 0) {
        it->second.epoch = e.index;  // a read: it renews the session, nothing to remember
        r = status(*c);
    } else {
        Session& s = it->second;
        const std::string& client = c->v == 0 ? kOneStream : c->client;  // (format 0: one stream per session)
        auto last = s.last.find(client);
        if (last != s.last.end() && c->req == last->second.req) {
            r = last->second.reply;  // a retry: the same answer, nothing applied again
        } else if (last != s.last.end() && c->req < last->second.req) {
            r.status = "rejected";
            r.error = "request " + std::to_string(c->req) + " is older than the last one (" +
                      std::to_string(last->second.req) + ")";
        } else if (last == s.last.end() && c->req <= s.forgotten) {
            r.status = "rejected";
            r.error = "request " + std::to_string(c->req) + " is not above " + std::to_string(s.forgotten) +
                      ", the newest request of a client this session no longer remembers (it remembers " +
                      std::to_string(kMaxClientsPerSession) + "): it may have been applied, so it is not applied now";
        } else {
            s.epoch = e.index;  // any command renews: a pending expiry is stale now
            r = run(*c, e);
            if (auto still = sessions_.find(c->session); still != sessions_.end())  // (close removed it)
                remember(still->second, client, c->req, e.index, r, c->v == 0);
        }
    }
    outputs_.push_back({e.index, false, std::move(r)});
}

void LockMachine::remember(Session& s, const std::string& client, uint64_t req, uint64_t index, const LockReply& r,
                           bool old) {
    if (old) s.forgotten = std::max(s.forgotten, req);
    if (!s.last.count(client) && s.last.size() >= kMaxClientsPerSession) {
        auto least = std::min_element(s.last.begin(), s.last.end(),
                                      [](auto& a, auto& b) { return a.second.index < b.second.index; });
        s.forgotten = std::max(s.forgotten, least->second.req);
        s.last.erase(least);
    }
    s.last[client] = Last{req, index, r};
}

LockReply LockMachine::run(const LockCommand& c, const LogEntry& e) {
    using Op = LockCommand::Op;
    switch (c.op) {
        case Op::acquire: return acquire(c, e);
        case Op::release: return release(c, e);
        case Op::cancel: return cancel(c, e);
        case Op::append: return append(c, e);
        case Op::status: return status(c);
        case Op::close: {
            end_session(c, e, false);
            return make_reply(c.session, c.req, "closed");
        }
        default: {
            LockReply r = make_reply(c.session, c.req, "rejected");
            r.error = "not a client command";
            return r;
        }
    }
}

LockReply LockMachine::acquire(const LockCommand& c, const LogEntry& e) {
    LockReply r = make_reply(c.session, c.req);
    r.lock = c.lock;
    Lock& l = locks_[c.lock];
    if (l.holder == c.session) {  // already ours (a client that lost our push asks again)
        r.status = "granted";
        r.token = l.token;
        return r;
    }
    if (l.holder == 0) {
        set_holder(c.lock, l, c.session);
        l.token = e.index;
        r.status = "granted";
        r.token = l.token;
        trace("lock.grant", {{"lock", c.lock}, {"session", c.session}, {"client", sessions_[c.session].client}, {"token", l.token}}, e);
        return r;
    }
    auto w = std::find(l.waiters.begin(), l.waiters.end(), c.session);
    if (w == l.waiters.end()) {
        l.waiters.push_back(c.session);
        w = l.waiters.end() - 1;
        trace("lock.queue", {{"lock", c.lock}, {"session", c.session}, {"pos", l.waiters.size()}}, e);
    }
    r.status = "queued";
    r.pos = static_cast<uint64_t>(w - l.waiters.begin()) + 1;
    return r;
}

LockMachine::Lock* LockMachine::held_by(const LockCommand& c, LockReply& r) {
    auto it = locks_.find(c.lock);
    if (it != locks_.end() && it->second.holder == c.session && it->second.token == c.token) return &it->second;
    r.status = "rejected";
    r.error = kNotHolder;
    r.token = it == locks_.end() || it->second.holder == 0 ? 0 : it->second.token;
    return nullptr;
}

LockReply LockMachine::release(const LockCommand& c, const LogEntry& e) {
    LockReply r = make_reply(c.session, c.req);
    r.lock = c.lock;
    Lock* held = held_by(c, r);
    if (!held) return r;
    Lock& l = *held;
    trace("lock.release", {{"lock", c.lock}, {"session", c.session}, {"token", l.token}}, e);
    set_holder(c.lock, l, 0);
    hand_on(c.lock, l, e);
    forget_if_idle(c, c.lock);
    r.status = "released";
    r.token = c.token;
    return r;
}

LockReply LockMachine::cancel(const LockCommand& c, const LogEntry& e) {
    LockReply r = make_reply(c.session, c.req, "cancelled");
    r.lock = c.lock;
    auto it = locks_.find(c.lock);
    if (it == locks_.end()) return r;
    Lock& l = it->second;
    if (l.holder == c.session) {  // granted before the cancel got here: give it up
        trace("lock.release", {{"lock", c.lock}, {"session", c.session}, {"token", l.token}}, e);
        r.token = l.token;
        set_holder(c.lock, l, 0);
        hand_on(c.lock, l, e);
        forget_if_idle(c, c.lock);
    } else if (auto w = std::find(l.waiters.begin(), l.waiters.end(), c.session); w != l.waiters.end()) {
        trace("lock.leave", {{"lock", c.lock}, {"session", c.session}, {"pos", static_cast<uint64_t>(w - l.waiters.begin()) + 1}}, e);
        l.waiters.erase(w);
    }
    return r;
}

LockReply LockMachine::append(const LockCommand& c, const LogEntry& e) {
    LockReply r = make_reply(c.session, c.req);
    r.lock = c.lock;
    r.file = c.file;
    if (!held_by(c, r)) return r;
    auto [f, fresh] = files_.try_emplace(c.file, File{c.lock, {}});
    if (fresh) guarded_.insert(c.lock);
    if (f->second.lock != c.lock) {
        r.status = "rejected";
        r.error = "file " + c.file + " is guarded by lock " + f->second.lock + ", not " + c.lock;
        return r;
    }
    r.offset = f->second.data.size();
    r.bytes = c.data.size();
    f->second.data += c.data;
    if (sink_) sink_(c.file, r.offset, c.data, false);
    r.status = "appended";
    r.token = c.token;
    trace("file.append", {{"file", c.file}, {"lock", c.lock}, {"token", c.token}, {"offset", r.offset},
                          {"bytes", r.bytes}, {"crc32c", crc32c(c.data)}, {"client", sessions_[c.session].client},
                          {"req", c.req}}, e);
    return r;
}

LockReply LockMachine::status(const LockCommand& c) const {
    LockReply r = make_reply(c.session, c.req, "status");
    Json locks = Json::object(), files = Json::object();
    for (auto& [name, l] : locks_) {
        if (!c.lock.empty() && name != c.lock) continue;
        Json w = Json::array();
        for (uint64_t s : l.waiters) w.push_back(s);
        Json h = nullptr;
        if (l.holder) h = {{"session", l.holder}, {"client", sessions_.at(l.holder).client}, {"token", l.token}};
        locks[name] = {{"holder", h}, {"waiters", w}};
    }
    for (auto& [name, f] : files_)
        if (c.lock.empty() || f.lock == c.lock) files[name] = {{"lock", f.lock}, {"bytes", f.data.size()}, {"crc32c", crc32c(f.data)}};
    r.lock = c.lock;
    r.info = {{"locks", locks}, {"files", files}, {"sessions", sessions_.size()}};
    return r;
}

void LockMachine::set_holder(const std::string& name, Lock& l, uint64_t session) {
    if (l.holder) {
        auto h = holding_.find(l.holder);
        h->second.erase(name);
        if (h->second.empty()) holding_.erase(h);
    }
    l.holder = session;
    if (session) holding_[session].insert(name);
}

std::vector<std::string> LockMachine::locks_of(uint64_t session) const {
    auto h = holding_.find(session);
    return h == holding_.end() ? std::vector<std::string>{} : std::vector<std::string>(h->second.begin(), h->second.end());
}

void LockMachine::hand_on(const std::string& name, Lock& l, const LogEntry& e) {
    if (l.holder != 0 || l.waiters.empty()) return;
    set_holder(name, l, l.waiters.front());
    l.waiters.pop_front();
    l.token = e.index;
    trace("lock.grant", {{"lock", name}, {"session", l.holder}, {"client", sessions_.at(l.holder).client}, {"token", l.token}}, e);
    LockReply push = make_reply(l.holder, 0, "granted");
    push.lock = name;
    push.token = l.token;
    outputs_.push_back({e.index, true, std::move(push)});
    // Everyone behind moved up one place.
    for (size_t i = 0; i < l.waiters.size(); ++i) {
        LockReply moved = make_reply(l.waiters[i], 0, "queued");
        moved.lock = name;
        moved.pos = i + 1;
        outputs_.push_back({e.index, true, std::move(moved)});
    }
}

void LockMachine::forget_if_idle(const LockCommand& c, const std::string& name) {
    if (c.v == 0) return;  // (format 0: locks were kept then)
    if (auto it = locks_.find(name); it != locks_.end() && idle(name, it->second)) locks_.erase(it);
}

void LockMachine::end_session(const LockCommand& c, const LogEntry& e, bool expired) {
    const uint64_t session = c.session;
    trace(expired ? "session.expire" : "session.close", {{"session", session}}, e);
    for (auto& [name, l] : locks_) {
        std::erase(l.waiters, session);
        if (l.holder == session) {
            trace(expired ? "lock.expire" : "lock.release", {{"lock", name}, {"session", session}, {"token", l.token}}, e);
            set_holder(name, l, 0);
        }
    }
    if (auto s = sessions_.find(session); s != sessions_.end()) {
        if (auto o = opened_.find({s->second.client, s->second.open_req}); o != opened_.end() && o->second == session)
            opened_.erase(o);
        sessions_.erase(s);
    }
    for (auto& [name, l] : locks_) hand_on(name, l, e);
    if (c.v != 0)
        std::erase_if(locks_, [&](auto& kv) { return idle(kv.first, kv.second); });
}

// ---- snapshots ------------------------------------------------------------------------------

std::string LockMachine::snapshot() const {
    Json sessions = Json::array(), locks = Json::array(), files = Json::array();
    for (auto& [id, s] : sessions_) {
        Json last = Json::array();
        for (auto& [client, l] : s.last)
            last.push_back({{"client", client}, {"req", l.req}, {"index", l.index}, {"reply", reply_json(l.reply)}});
        sessions.push_back({{"id", id}, {"client", s.client}, {"ttl_ms", s.ttl_ms}, {"epoch", s.epoch},
                            {"open_req", s.open_req}, {"last", last}, {"forgotten", s.forgotten}});
    }
    for (auto& [name, l] : locks_) {
        Json w = Json::array();
        for (uint64_t s : l.waiters) w.push_back(s);
        locks.push_back({{"name", name}, {"holder", l.holder}, {"token", l.token}, {"waiters", w}});
    }
    for (auto& [name, f] : files_) files.push_back({{"name", name}, {"lock", f.lock}, {"data", bin(f.data)}});
    Json j = {{"v", 2}, {"sessions", sessions}, {"locks", locks}, {"files", files}};
    std::vector<uint8_t> b = Json::to_msgpack(j);
    return std::string(b.begin(), b.end());
}

void LockMachine::restore(const std::string& data) {
    Json j = Json::from_msgpack(data.begin(), data.end(), true, false);
    uint64_t v = j.is_object() && j.contains("v") && j["v"].is_number_unsigned() ? j["v"].get<uint64_t>() : 0;
    if (v > 2) throw std::invalid_argument("LockMachine: a snapshot of format " + std::to_string(v) + ", newer than this version's (2)");
    if (v < 1) throw std::invalid_argument("LockMachine: not a lock service snapshot");
    std::map<uint64_t, Session> sessions;
    std::map<std::string, Lock> locks;
    std::map<std::string, File> files;
    try {
        for (const Json& s : j.at("sessions")) {
            Session x{s.at("client").get<std::string>(), s.at("ttl_ms").get<uint64_t>(), s.at("epoch").get<uint64_t>(), 0, {}, 0};
            if (v == 1) {  // one stream per session: as its format-0 entries replayed would leave it
                uint64_t req = s.at("last_req").get<uint64_t>();
                if (req) x.last[""] = Last{req, x.epoch, reply_from(s.at("last_reply"))};
                x.forgotten = req;
            } else {
                x.open_req = s.at("open_req").get<uint64_t>();
                x.forgotten = s.at("forgotten").get<uint64_t>();
                for (const Json& l : s.at("last"))
                    x.last[l.at("client").get<std::string>()] =
                        Last{l.at("req").get<uint64_t>(), l.at("index").get<uint64_t>(), reply_from(l.at("reply"))};
            }
            sessions[s.at("id").get<uint64_t>()] = std::move(x);
        }
        for (const Json& l : j.at("locks")) {
            Lock x{l.at("holder").get<uint64_t>(), l.at("token").get<uint64_t>(), {}};
            for (const Json& w : l.at("waiters")) x.waiters.push_back(w.get<uint64_t>());
            locks[l.at("name").get<std::string>()] = std::move(x);
        }
        for (const Json& f : j.at("files"))
            files[f.at("name").get<std::string>()] = File{f.at("lock").get<std::string>(), unbin(f.at("data"))};
    } catch (const Json::exception& e) {
        throw std::invalid_argument(std::string("LockMachine: a damaged snapshot: ") + e.what());
    }
    sessions_ = std::move(sessions);
    locks_ = std::move(locks);
    files_ = std::move(files);
    guarded_.clear();
    for (auto& [name, f] : files_) guarded_.insert(f.lock);
    opened_.clear();
    for (auto& [id, x] : sessions_)
        if (x.open_req) opened_[{x.client, x.open_req}] = id;
    holding_.clear();
    for (auto& [name, l] : locks_)
        if (l.holder) holding_[l.holder].insert(name);
    if (sink_)
        for (auto& [name, f] : files_) sink_(name, 0, f.data, true);
}

Json LockMachine::summary() const {
    size_t held = 0, waiting = 0;
    for (auto& [name, l] : locks_) held += l.holder != 0, waiting += l.waiters.size();
    uint64_t bytes = 0;
    for (auto& [name, f] : files_) bytes += f.data.size();
    return {{"sessions", sessions_.size()}, {"locks", locks_.size()}, {"held", held},
            {"waiting", waiting}, {"files", files_.size()}, {"file_bytes", bytes}};
}

std::vector<std::string> LockMachine::check_invariants() const {
    std::vector<std::string> bad;
    for (auto& [name, l] : locks_) {
        if (l.holder && !sessions_.count(l.holder)) bad.push_back("lock " + name + " held by a session that is gone");
        if (l.holder == 0 && !l.waiters.empty()) bad.push_back("lock " + name + " is free with waiters");
        std::vector<uint64_t> w(l.waiters.begin(), l.waiters.end());
        std::sort(w.begin(), w.end());
        if (std::adjacent_find(w.begin(), w.end()) != w.end()) bad.push_back("lock " + name + " has a waiter twice");
        for (uint64_t s : l.waiters) {
            if (!sessions_.count(s)) bad.push_back("lock " + name + " has a waiter that is gone");
            if (s == l.holder) bad.push_back("lock " + name + "'s holder also waits for it");
        }
    }
    std::set<std::string> guarded;
    for (auto& [name, f] : files_) {
        guarded.insert(f.lock);
        if (!locks_.count(f.lock)) bad.push_back("file " + name + " guarded by an unknown lock");
    }
    if (guarded != guarded_) bad.push_back("the index of file-guarding locks disagrees with the files");
    std::map<std::pair<std::string, uint64_t>, uint64_t> opened;
    for (auto& [id, s] : sessions_)
        if (s.open_req) opened[{s.client, s.open_req}] = id;
    if (opened != opened_) bad.push_back("the index of opens disagrees with the sessions");
    std::map<uint64_t, std::set<std::string>> holding;
    for (auto& [name, l] : locks_)
        if (l.holder) holding[l.holder].insert(name);
    if (holding != holding_) bad.push_back("the index of holders disagrees with the locks");
    return bad;
}

bool name_ok(std::string_view s, size_t max) {
    if (s.empty() || s.size() > max || s[0] == '.' || s[0] == '-') return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
               c == '-';
    });
}

std::string name_rule(const char* what, size_t max) {
    return std::string(what) + " of 1.." + std::to_string(max) + " characters [A-Za-z0-9._-], not starting with '.' or '-'";
}

}  // namespace bus
