#include "bus/trace_check.hpp"

#include "bus/raft_storage.hpp"

#include <algorithm>
#include <optional>

namespace bus {

namespace {

/// Fields each known event must carry, beyond the common ones (docs/TRACE.md).
const std::map<std::string, std::vector<const char*>>& required_fields() {
    static const std::map<std::string, std::vector<const char*>> table = {
        {"node.start", {"role", "algo", "pid"}},
        {"node.stop", {"reason"}},
        {"node.stall", {"stalled_ms"}},
        {"node.isolated", {"isolated"}},
        {"storage.slow", {"op", "ms"}},
        {"clock.offset", {"offset_us", "rate_ppm"}},
        {"clock.sample", {"peer", "rtt_us", "offset_us"}},
        {"clock.adjust", {"delta_us", "rate_ppm", "mode"}},
        {"clock.round", {"round", "epoch", "average_us", "used", "too_far"}},
        {"clock.master", {"epoch"}},
        {"clock.ignore", {"from", "reason"}},
        {"vote", {"term", "candidate"}},
        {"raft.restore", {"term", "vote"}},
        {"storage.recover", {"file", "offset", "bytes", "reason"}},
        {"raft.snapshot", {"index", "term", "bytes"}},
        {"raft.snapshot.send", {"peer", "index", "term", "bytes"}},
        {"raft.snapshot.install", {"from", "index", "term", "bytes"}},
        {"fault", {"action", "target"}},
        {"msg.send", {"to", "type", "id"}},
        {"msg.recv", {"from", "type", "id"}},
        {"msg.unsent", {"to", "type", "id", "reason"}},
        {"msg.drop", {"from", "reason"}},
        {"peer.alive", {"peer"}},
        {"peer.suspect", {"peer"}},
        {"peer.dead", {"peer"}},
        {"peer.join", {"peer"}},
        {"peer.leave", {"peer"}},
        {"election.start", {"algo", "term"}},
        {"role", {"role", "term"}},
        {"leader", {"algo", "leader", "term", "backup"}},
    };
    return table;
}

/// Every event name of the trace contract (docs/TRACE.md). Names of the lock service's
/// families (session., lock., file., rpc.) are reserved for it and accepted.
bool known_event(const std::string& ev) {
    static const std::set<std::string> names = {
        "node.start", "node.stop", "node.stall", "node.isolated", "node.join", "node.leave", "fault",
        "msg.send", "msg.recv", "msg.unsent", "msg.drop", "peer.alive", "peer.suspect", "peer.dead",
        "peer.join", "peer.leave", "peer.refuse", "peer.unreachable", "follower.deaf", "follower.hears",
        "config.set", "ctl.reject", "election.start", "election.ignore", "role", "leader", "vote",
        "raft.restore", "raft.snapshot", "raft.snapshot.send", "raft.snapshot.install", "ring.result", "ring.skip", "storage.slow", "storage.recover", "clock.offset", "clock.sample",
        "clock.adjust", "clock.round", "clock.master", "clock.ignore"};
    if (names.count(ev)) return true;
    for (const char* family : {"session.", "lock.", "file.", "rpc."})
        if (ev.rfind(family, 0) == 0) return true;
    return false;
}

std::optional<uint64_t> uint_of(const Json& j, const char* k) {
    auto it = j.find(k);
    if (it == j.end() || !it->is_number_unsigned()) return std::nullopt;
    return it->get<uint64_t>();
}

std::string str_of(const Json& j, const char* k) {
    auto it = j.find(k);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

/// `t` in µs; events without one (a "fields" finding already) take no part in timing.
std::optional<int64_t> time_of(const Json& j) {
    auto it = j.find("t");
    if (it == j.end() || !it->is_number_integer()) return std::nullopt;
    return it->get<int64_t>();
}

bool carries_term(const std::string& ev) { return ev == "election.start" || ev == "role" || ev == "leader"; }

std::string ms_text(int64_t us) { return std::to_string(us / 1000) + " ms"; }
std::string ms1(int64_t us) {
    char b[32];
    std::snprintf(b, sizeof b, "%.1f ms", static_cast<double>(us) / 1000.0);
    return b;
}

}  // namespace

Json TraceChecker::cite(const Event& e) const {
    Json c = Json::object();
    c["node"] = e.j.value("node", Json());
    c["inc"] = e.j.value("inc", Json());
    c["seq"] = e.j.value("seq", Json());
    c["where"] = e.where;
    return c;
}

void TraceChecker::add(Finding f) {
    ++per_check_[f.check];
    findings_.push_back(std::move(f));
}

void TraceChecker::add_line(std::string_view line, const std::string& where) {
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) return;
    Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
        add({"parse", where + ": not a JSON object", Json::array({{{"where", where}}})});
        return;
    }
    ++events_;
    Event e{std::move(j), where};
    // Common fields.
    std::vector<std::string> missing;
    auto need = [&](const char* k, bool ok) {
        if (!ok) missing.push_back(k);
    };
    const Json& ev = e.j;
    need("t", ev.contains("t") && ev["t"].is_number_integer());
    need("node", ev.contains("node") && (ev["node"].is_number_unsigned() || ev["node"].is_string()));
    need("inc", ev.contains("inc") && ev["inc"].is_number_unsigned());
    need("seq", ev.contains("seq") && ev["seq"].is_number_unsigned());
    need("lc", ev.contains("lc") && ev["lc"].is_number_unsigned());
    need("ev", ev.contains("ev") && ev["ev"].is_string());
    if (ev.contains("ev") && ev["ev"].is_string() && !known_event(ev["ev"].get<std::string>()))
        add({"event", where + ": unknown event '" + ev["ev"].get<std::string>() + "' (not in docs/TRACE.md)",
             Json::array({cite(e)})});
    if (ev.contains("ev") && ev["ev"].is_string()) {
        auto it = required_fields().find(ev["ev"].get<std::string>());
        if (it != required_fields().end())
            for (const char* k : it->second) need(k, ev.contains(k));
    }
    if (!missing.empty()) {
        std::string list;
        for (auto& m : missing) list += (list.empty() ? "" : ", ") + m;
        add({"fields", where + ": event " + (str_of(ev, "ev").empty() ? std::string("?") : str_of(ev, "ev")) +
                           " lacks or mistypes: " + list,
             Json::array({cite(e)})});
        if (!ev.contains("seq") || !ev["seq"].is_number_unsigned() || !ev.contains("inc") ||
            !ev["inc"].is_number_unsigned())
            return;  // cannot place it in a stream
    }
    StreamKey key{emitter_of(ev), ev["inc"].get<uint64_t>()};
    uint64_t seq = ev["seq"].get<uint64_t>();
    auto& stream = streams_[key];
    auto [it, fresh] = stream.emplace(seq, e);
    if (!fresh)
        add({"seq", "emitter " + key.first + " inc " + std::to_string(key.second) + ": seq " +
                        std::to_string(seq) + " appears twice",
             Json::array({cite(it->second), cite(e)})});
}

void TraceChecker::finish() {
    for (auto& [key, stream] : streams_) {
        std::string who = "emitter " + key.first + " inc " + std::to_string(key.second);
        uint64_t expect = 1;
        const Event* prev = nullptr;
        for (auto& [seq, e] : stream) {
            if (seq != expect) {
                Json cites = Json::array();
                if (prev) cites.push_back(cite(*prev));
                cites.push_back(cite(e));
                add({"seq", who + ": seq " + std::to_string(expect) +
                                (seq - 1 > expect ? ".." + std::to_string(seq - 1) : "") +
                                " missing (" + std::to_string(seq - expect) + " events lost)",
                     cites});
            }
            if (prev && e.j.contains("t") && prev->j.contains("t") && e.j["t"].is_number_integer() &&
                prev->j["t"].is_number_integer() && e.j["t"].get<int64_t>() < prev->j["t"].get<int64_t>())
                add({"time", who + ": time goes back from seq " + prev->j["seq"].dump() + " to " + std::to_string(seq) +
                                 " (" + std::to_string(prev->j["t"].get<int64_t>() - e.j["t"].get<int64_t>()) + " us)",
                     Json::array({cite(*prev), cite(e)})});
            if (prev && e.j.contains("lc") && prev->j.contains("lc") && e.j["lc"].is_number() &&
                prev->j["lc"].is_number() && e.j["lc"].get<uint64_t>() <= prev->j["lc"].get<uint64_t>())
                add({"lamport", who + ": Lamport clock does not increase from seq " +
                                    std::to_string(prev->j["seq"].get<uint64_t>()) + " to " +
                                    std::to_string(seq),
                     Json::array({cite(*prev), cite(e)})});
            expect = seq + 1;
            prev = &e;
        }
    }
    for (auto& [key, stream] : streams_)
        for (auto& [seq, e] : stream) {
            std::string name = str_of(e.j, "ev");
            if (name == "election.start" || name == "leader")
                if (std::string algo = str_of(e.j, "algo"); !algo.empty()) algos_.insert(algo);
        }
    check_vector_clocks();
    check_messages();
    check_terms();
    check_raft_leaders();
    check_votes();
    check_locks();
    for (const char* algo : {"bully", "ring"}) {
        // Only where that algorithm traced a leader: a trace of heartbeats alone has nothing to agree on.
        bool led = false;
        for (auto& [key, stream] : streams_)
            for (auto& [seq, e] : stream)
                led = led || (str_of(e.j, "ev") == "leader" && str_of(e.j, "algo") == algo);
        if (led) check_agreement(algo);
    }
}

// Vector clocks (`vc`, node id -> count) are well formed: an object of node ids to positive
// integers naming the emitter itself; per (emitter, inc) the emitter's own entry strictly
// increases with seq and no entry ever decreases (receives only merge upwards).
void TraceChecker::check_vector_clocks() {
    for (auto& [key, stream] : streams_) {
        std::string who = "emitter " + key.first + " inc " + std::to_string(key.second);
        const Event* prev = nullptr;
        for (auto& [seq, e] : stream) {
            if (!e.j.contains("vc")) continue;
            const Json& vc = e.j["vc"];
            std::string bad;
            if (!vc.is_object()) {
                bad = "is not an object";
            } else {
                for (auto it = vc.begin(); it != vc.end() && bad.empty(); ++it) {
                    const std::string& k = it.key();
                    if (k.empty() || k.find_first_not_of("0123456789") != std::string::npos)
                        bad = "has key '" + k + "', not a node id";
                    else if (!it.value().is_number_unsigned() || it.value().get<uint64_t>() == 0)
                        bad = "entry " + k + " is not a positive integer";
                }
            }
            if (bad.empty() && e.j["node"].is_number_unsigned() && !vc.contains(e.j["node"].dump()))
                bad = "does not name its own node " + e.j["node"].dump();
            if (!bad.empty()) {
                add({"vclock", who + ": seq " + std::to_string(seq) + ": vc " + bad, Json::array({cite(e)})});
                continue;
            }
            if (prev) {
                const Json& pv = prev->j["vc"];
                std::string own = e.j["node"].is_number_unsigned() ? e.j["node"].dump() : "";
                for (auto& [k, v] : pv.items()) {
                    uint64_t now = vc.contains(k) ? vc[k].get<uint64_t>() : 0;
                    bool wrong = k == own ? now <= v.get<uint64_t>() : now < v.get<uint64_t>();
                    if (wrong) {
                        add({"vclock", who + ": vc entry " + k + (k == own ? " (its own) does not increase" : " decreases") +
                                           " from seq " + prev->j["seq"].dump() + " to " + std::to_string(seq),
                             Json::array({cite(*prev), cite(e)})});
                        break;
                    }
                }
            }
            prev = &e;
        }
    }
}

// Send/receive pairs (msg.send and msg.recv sharing `id`): the receive is later in Lamport
// time than the send, and its vector clock includes the send's.
void TraceChecker::check_messages() {
    std::map<std::string, const Event*> sends;
    for (auto& [key, stream] : streams_)
        for (auto& [seq, e] : stream)
            if (str_of(e.j, "ev") == "msg.send" && e.j.contains("id")) sends.emplace(message_send_key(e.j), &e);
    for (auto& [key, stream] : streams_)
        for (auto& [seq, e] : stream) {
            if (str_of(e.j, "ev") != "msg.recv" || !e.j.contains("id")) continue;
            // Traces from before `ch` cannot tell a request from a reply with the same id:
            // no verdict on them (they would be guesses).
            if (str_of(e.j, "ch").empty()) continue;
            const Event* found = nullptr;
            int matches = 0;
            for (const std::string& k : message_recv_keys(e.j))
                if (auto it = sends.find(k); it != sends.end()) {
                    if (!found) found = it->second;
                    ++matches;
                }
            if (!found) continue;  // its send was not traced (level, or another file)
            if (matches > 1) continue;  // a joiner's join link and its link to us: ambiguous, no verdict
            const Event& s = *found;
            if (str_of(s.j, "ch").empty()) continue;
            ++messages_matched_;
            auto lc_r = uint_of(e.j, "lc"), lc_s = uint_of(s.j, "lc");
            if (lc_r && lc_s && *lc_r <= *lc_s)
                add({"lamport", "message " + e.j["id"].dump() + " received at Lamport time " + std::to_string(*lc_r) +
                                    ", not after its send at " + std::to_string(*lc_s),
                     Json::array({cite(s), cite(e)})});
            if (e.j.contains("vc") && s.j.contains("vc") && e.j["vc"].is_object() && s.j["vc"].is_object())
                for (auto& [k, v] : s.j["vc"].items())
                    if (!e.j["vc"].contains(k) || !v.is_number_unsigned() || !e.j["vc"][k].is_number_unsigned() ||
                        e.j["vc"][k].get<uint64_t>() < v.get<uint64_t>()) {
                        add({"vclock", "message " + e.j["id"].dump() + ": the receive's vc does not include the send's (entry " +
                                           k + ")",
                             Json::array({cite(s), cite(e)})});
                        break;
                    }
        }
}

// Terms (Raft terms, bully/ring epochs) only grow within one incarnation: a node that goes
// back to an older term has lost state it must keep, or accepted a stale message. A restart
// is a new incarnation and may start lower (bully/ring epochs are not persisted).
void TraceChecker::check_terms() {
    for (auto& [key, stream] : streams_) {
        const Event* prev = nullptr;
        uint64_t prev_term = 0;
        for (auto& [seq, e] : stream) {
            std::string name = str_of(e.j, "ev");
            if (!carries_term(name)) continue;
            auto term = uint_of(e.j, "term");
            if (!term) continue;  // missing or mistyped: a "fields" finding
            ++terms_checked_;
            if (prev && *term < prev_term)
                add({"term", "emitter " + key.first + " inc " + std::to_string(key.second) + ": term falls from " +
                                 std::to_string(prev_term) + " (" + str_of(prev->j, "ev") + ", seq " +
                                 std::to_string(prev->j["seq"].get<uint64_t>()) + ") to " + std::to_string(*term) +
                                 " (" + name + ", seq " + std::to_string(seq) + ")",
                     Json::array({cite(*prev), cite(e)})});
            prev = &e;
            prev_term = *term;
        }
    }
}

// Raft's election safety: one leader per term. Every node traces the leader it adopts, so
// a term normally shows the same leader many times; two different ones is a split brain.
void TraceChecker::check_raft_leaders() {
    std::map<uint64_t, std::map<uint64_t, const Event*>> by_term;  // term -> leader -> earliest event
    for (auto& [key, stream] : streams_)
        for (auto& [seq, e] : stream) {
            if (str_of(e.j, "ev") != "leader" || str_of(e.j, "algo") != "raft") continue;
            auto term = uint_of(e.j, "term");
            auto leader = uint_of(e.j, "leader");
            if (!term || !leader || *leader == 0) continue;  // 0 names no node
            const Event*& first = by_term[*term][*leader];
            auto t = time_of(e.j);
            if (!first || (t && (!time_of(first->j) || *t < *time_of(first->j)))) first = &e;
        }
    raft_terms_ = by_term.size();
    for (auto& [term, leaders] : by_term) {
        if (leaders.size() < 2) continue;
        std::string names;
        Json cites = Json::array();
        size_t i = 0;
        for (auto& [leader, e] : leaders) {
            names += (i == 0 ? "" : i + 1 == leaders.size() ? " and " : ", ") + std::to_string(leader);
            cites.push_back(cite(*e));
            ++i;
        }
        add({"raft-leader", "raft: term " + std::to_string(term) + " has " + std::to_string(leaders.size()) +
                                " leaders, " + names + " (at most one per term)",
             cites});
    }
}

void TraceChecker::check_locks() {
    static const std::set<std::string> applied_evs = {"session.open", "session.close", "session.expire", "lock.queue",
                                                      "lock.leave", "lock.grant", "lock.release", "lock.expire",
                                                      "file.append"};
    // Each entry's effects in the order applied, per replica incarnation; and the clients'
    // lease events per token.
    std::map<uint64_t, std::map<StreamKey, std::vector<const Event*>>> by_index;
    std::map<uint64_t, std::map<std::string, std::vector<const Event*>>> clients;  // token -> client -> events
    std::map<std::pair<std::string, uint64_t>, int64_t> released;  // (client, token) -> release request time
    for (auto& [key, stream] : streams_)
        for (auto& [seq, e] : stream) {
            std::string ev = str_of(e.j, "ev");
            if (applied_evs.count(ev) && e.j.contains("node") && e.j["node"].is_number()) {
                if (auto index = uint_of(e.j, "index")) by_index[*index][key].push_back(&e);
            } else if ((ev == "lock.acquired" || ev == "lock.renewed" || ev == "lock.lost") && e.j.contains("node") &&
                       e.j["node"].is_string()) {
                if (auto token = uint_of(e.j, "token")) clients[*token][e.j["node"].get<std::string>()].push_back(&e);
            } else if (ev == "rpc.ack" && str_of(e.j, "op") == "release" && e.j.contains("node") && e.j["node"].is_string()) {
                // A client gives a lock up when it sends the release: its request number is
                // the wall-clock µs it was made at.
                if (auto token = uint_of(e.j, "token"); token && uint_of(e.j, "req"))
                    released[{e.j["node"].get<std::string>(), *token}] = static_cast<int64_t>(*uint_of(e.j, "req"));
            }
        }
    auto effect = [](const Json& j) {
        Json c = j;
        for (const char* k : {"t", "node", "inc", "seq", "lc", "vc"}) c.erase(k);
        return c.dump();
    };
    struct LockState {
        bool known = false;   // a grant or release seen: the holder is known from here on
        uint64_t holder = 0;  // session, 0 = free
        uint64_t token = 0;
    };
    std::map<std::string, LockState> locks;
    std::map<std::string, std::pair<bool, uint64_t>> files;  // file -> (known, size)
    std::set<uint64_t> indices;
    std::vector<const Event*> ordered;  // every entry's effects once, in log order
    for (auto& [index, per_replica] : by_index) {
        indices.insert(index);
        const std::vector<const Event*>* ref = nullptr;
        for (auto& [key, evs] : per_replica)  // the earliest application decides when it took effect
            if (!ref || (time_of(evs.front()->j) && (!time_of((*ref).front()->j) ||
                                                      *time_of(evs.front()->j) < *time_of((*ref).front()->j))))
                ref = &evs;
        for (auto& [key, evs] : per_replica) {
            bool same = evs.size() == ref->size();
            for (size_t i = 0; same && i < evs.size(); ++i) same = effect(evs[i]->j) == effect((*ref)[i]->j);
            if (!same) {
                add({"lock", "lock service: replicas applied entry " + std::to_string(index) + " differently",
                     Json::array({cite(*ref->front()), cite(*evs.front())})});
                break;
            }
        }
        ordered.insert(ordered.end(), ref->begin(), ref->end());
    }
    for (const Event* first : ordered) {
        const Json& j = first->j;
        std::string ev = str_of(j, "ev"), lock = str_of(j, "lock");
        uint64_t session = uint_of(j, "session").value_or(0), token = uint_of(j, "token").value_or(0);
        LockState& l = locks[lock];
        if (ev == "lock.grant") {
            if (l.known && l.holder != 0)
                add({"lock", "lock service: " + lock + " granted to session " + std::to_string(session) + " (token " +
                                 std::to_string(token) + ") while session " + std::to_string(l.holder) +
                                 " held it (token " + std::to_string(l.token) + ")",
                     Json::array({cite(*first)})});
            if (l.token != 0 && token <= l.token)
                add({"lock", "lock service: " + lock + "'s token went from " + std::to_string(l.token) + " to " +
                                 std::to_string(token) + " (tokens only increase)",
                     Json::array({cite(*first)})});
            l = {true, session, token};
        } else if (ev == "lock.release" || ev == "lock.expire") {
            if (l.known && (l.holder != session || l.token != token))
                add({"lock", "lock service: " + lock + " " + ev.substr(5) + "d for session " + std::to_string(session) +
                                 " token " + std::to_string(token) + ", but the holder was session " +
                                 std::to_string(l.holder) + " token " + std::to_string(l.token),
                     Json::array({cite(*first)})});
            l = {true, 0, token};
            if (ev == "lock.expire") {
                // Lease safety: the client that held this token must already have stopped.
                int64_t at = time_of(j).value_or(0);
                for (auto& [client, cevs] : clients[token]) {
                    int64_t valid = 0;
                    bool lost = false;
                    for (const Event* c : cevs) {
                        if (time_of(c->j).value_or(0) > at) continue;
                        if (str_of(c->j, "ev") == "lock.lost") lost = true;
                        else if (auto v = c->j.find("valid_until"); v != c->j.end() && v->is_number_integer())
                            valid = std::max(valid, v->get<int64_t>());
                    }
                    if (!lost && valid > at)
                        add({"lock", "lock service: " + lock + " (token " + std::to_string(token) +
                                         ") expired while client " + client + " could still act as holder: its lease ran to " +
                                         std::to_string((valid - at) / 1000) + " ms after the expiry",
                             Json::array({cite(*first)})});
                }
            }
        } else if (ev == "file.append") {
            std::string file = str_of(j, "file");
            auto& [known, size] = files[file];
            uint64_t offset = uint_of(j, "offset").value_or(0), bytes = uint_of(j, "bytes").value_or(0);
            if (known && offset != size)
                add({"lock", "lock service: an append to " + file + " at offset " + std::to_string(offset) +
                                 " where the file ended at " + std::to_string(size),
                     Json::array({cite(*first)})});
            if (l.known && (l.holder == 0 || l.token != token))
                add({"lock", "lock service: an append to " + file + " under " + lock + " with token " +
                                 std::to_string(token) + ", which is not the current one (" + std::to_string(l.token) + ")",
                     Json::array({cite(*first)})});
            known = true;
            size = offset + bytes;
        }
    }
    lock_entries_ = indices.size();

    // Client side: the times each client could act as holder must not overlap. A client holds
    // from its lock.acquired until the first of: its lock.lost, the release it sent (its
    // request number is the wall-clock µs it was made at), its lease's last valid_until.
    struct Hold {
        int64_t from = 0, to = INT64_MAX;
        std::string client;
        uint64_t token = 0;
        const Event* e = nullptr;
    };
    std::map<std::string, std::vector<Hold>> holds;  // lock -> holds
    for (auto& [token, per_client] : clients)
        for (auto& [client, cevs] : per_client) {
            Hold h;
            h.client = client;
            h.token = token;
            int64_t valid = 0;
            std::string lock;
            for (const Event* c : cevs) {
                std::string ev = str_of(c->j, "ev");
                if (ev == "lock.acquired" && !h.e) h.e = c, h.from = time_of(c->j).value_or(0), lock = str_of(c->j, "lock");
                if (ev == "lock.lost") h.to = std::min(h.to, time_of(c->j).value_or(INT64_MAX));
                if (auto v = c->j.find("valid_until"); v != c->j.end() && v->is_number_integer()) valid = std::max(valid, v->get<int64_t>());
            }
            if (!h.e) continue;
            if (valid > 0) h.to = std::min(h.to, valid);
            if (auto r = released.find({client, token}); r != released.end()) h.to = std::min(h.to, r->second);
            holds[lock].push_back(h);
        }
    for (auto& [lock, hs] : holds) {
        std::sort(hs.begin(), hs.end(), [](const Hold& a, const Hold& b) { return a.from < b.from; });
        const Hold* last = nullptr;  // the hold reaching furthest so far
        for (const Hold& h : hs) {
            if (last && h.from < last->to && h.client != last->client)
                add({"lock", "lock service: clients " + last->client + " (token " + std::to_string(last->token) + ") and " +
                                 h.client + " (token " + std::to_string(h.token) + ") could both act as holders of " + lock +
                                 " for " + ms1(std::min(last->to, h.to) - h.from),
                     Json::array({cite(*last->e), cite(*h.e)})});
            if (!last || h.to > last->to) last = &h;
        }
    }
}

void TraceChecker::check_file(const std::string& name, const std::string& content, const std::string& path) {
    uint64_t applied_end = 0;
    size_t acks = 0;
    std::set<uint64_t> offsets;
    std::set<uint64_t> refused;  // request numbers of appends a server refused
    for (auto& [key, stream] : streams_)
        for (auto& [seq, e] : stream) {
            std::string ev = str_of(e.j, "ev");
            if (ev == "rpc.reject" && str_of(e.j, "op") == "append")
                if (auto req = uint_of(e.j, "req")) refused.insert(*req);
            if (str_of(e.j, "file") != name) continue;
            if (ev == "file.append" && e.j.contains("node") && e.j["node"].is_number())
                applied_end = std::max(applied_end, uint_of(e.j, "offset").value_or(0) + uint_of(e.j, "bytes").value_or(0));
            if (ev != "rpc.ack" || str_of(e.j, "op") != "append") continue;
            ++acks;
            uint64_t off = uint_of(e.j, "offset").value_or(0), bytes = uint_of(e.j, "bytes").value_or(0);
            auto crc = uint_of(e.j, "crc32c");
            if (!offsets.insert(off).second)
                add({"lock", path + ": two acknowledged appends at offset " + std::to_string(off), Json::array({cite(e)})});
            if (off + bytes > content.size()) {
                add({"lock", path + ": an acknowledged append (" + std::to_string(bytes) + " bytes at offset " +
                                 std::to_string(off) + ") is missing: the file has " + std::to_string(content.size()) + " bytes",
                     Json::array({cite(e)})});
            } else if (crc && crc32c(std::string_view(content).substr(off, bytes)) != *crc) {
                add({"lock", path + ": the bytes at offset " + std::to_string(off) +
                                 " are not the acknowledged append's (checksum mismatch)",
                     Json::array({cite(e)})});
            }
        }
    // Every byte belongs to an applied append (each checked where it landed), and no applied
    // append is one a server refused (rpc.reject of an append with the same request number).
    std::set<uint64_t> checked;
    for (auto& [key, stream] : streams_)
        for (auto& [seq, e] : stream) {
            if (str_of(e.j, "ev") != "file.append" || str_of(e.j, "file") != name || !e.j["node"].is_number()) continue;
            uint64_t off = uint_of(e.j, "offset").value_or(0), bytes = uint_of(e.j, "bytes").value_or(0);
            if (!checked.insert(off).second) continue;  // another replica's application of it
            auto crc = uint_of(e.j, "crc32c");
            if (off + bytes <= content.size() && crc && crc32c(std::string_view(content).substr(off, bytes)) != *crc)
                add({"lock", path + ": the bytes at offset " + std::to_string(off) + " are not those of the append applied there",
                     Json::array({cite(e)})});
            if (auto req = uint_of(e.j, "req"); req && refused.count(*req))
                add({"lock", path + ": the append at offset " + std::to_string(off) + " (request " + std::to_string(*req) +
                                 ") was applied although a client was told it failed",
                     Json::array({cite(e)})});
        }
    if (applied_end > 0 && content.size() > applied_end)
        add({"lock", path + ": " + std::to_string(content.size() - applied_end) +
                         " bytes past the last append the replicas applied (" + std::to_string(applied_end) + ")",
             Json::array()});
    if (acks == 0 && applied_end == 0)
        add({"lock", path + ": no append to '" + name + "' in the traces (is this the right file?)", Json::array()});
}

// Raft §5.2: a node votes at most once per term — across its restarts too, since the vote
// is durable. So `vote` events are grouped by node id over all its incarnations.
void TraceChecker::check_votes() {
    std::map<std::pair<std::string, uint64_t>, std::map<uint64_t, const Event*>> by_node_term;
    for (auto& [key, stream] : streams_)
        for (auto& [seq, e] : stream) {
            if (str_of(e.j, "ev") != "vote") continue;
            auto term = uint_of(e.j, "term");
            auto cand = uint_of(e.j, "candidate");
            if (!term || !cand) continue;
            by_node_term[{key.first, *term}].emplace(*cand, &e);
        }
    for (auto& [nt, cands] : by_node_term) {
        ++votes_checked_;
        if (cands.size() < 2) continue;
        Json cites = Json::array();
        std::string names;
        for (auto& [c, e] : cands) {
            names += (names.empty() ? "" : " and ") + std::to_string(c);
            cites.push_back(cite(*e));
        }
        add({"vote", "raft: node " + nt.first + " voted for " + names + " in term " + std::to_string(nt.second) +
                         " (at most one vote per term, across restarts)",
             cites});
    }
}

// Bully and ring promise less than Raft: after the faults stop, the live nodes settle on
// one live leader. So the check looks at the window from (last disturbance + bound) until
// the clean shutdown begins (or the trace ends), and reports the first instant at which a
// live node has no leader, two live nodes follow different ones, or the one they follow is
// not live. Ties in `t` between the "ctl" emitter and a node are read as the fault coming
// first: the simulator kills and restarts a node within one instant.
void TraceChecker::check_agreement(const std::string& algo) {
    Agreement out{algo, "", 0, {}};
    auto done = [&](std::string status) {
        out.status = std::move(status);
        agreements_.push_back(std::move(out));
    };
    auto t_of = [](const Event* e) { return *time_of(e->j); };

    struct Inc {
        const Event* start = nullptr;
        const Event* stop = nullptr;
        const std::map<uint64_t, Event>* stream = nullptr;
    };
    std::vector<const Event*> faults;  // by t; ties in stream order
    std::vector<const Event*> stops;
    std::map<uint64_t, Inc> latest;  // node id -> its latest incarnation (by node.start t)
    const Event* last_start = nullptr;
    std::optional<int64_t> last_t;
    for (auto& [key, stream] : streams_) {
        Inc inc;
        inc.stream = &stream;
        for (auto& [seq, e] : stream) {
            auto t = time_of(e.j);
            if (!t) continue;
            if (!last_t || *t > *last_t) last_t = t;
            std::string name = str_of(e.j, "ev");
            if (name == "fault") {
                faults.push_back(&e);
            } else if (name == "node.stop") {
                // A graceful leave or a refused join is a membership change the others
                // must react to (a disturbance), not the beginning of the shutdown.
                std::string reason = str_of(e.j, "reason");
                if (reason == "left" || reason.rfind("join refused", 0) == 0)
                    faults.push_back(&e);
                else
                    stops.push_back(&e);
                if (!inc.stop) inc.stop = &e;
            } else if (name == "node.start" && !inc.start) {
                inc.start = &e;
            }
        }
        auto id = uint_of(stream.begin()->second.j, "node");
        if (!id || !inc.start) continue;  // clients, "ctl", or a stream whose start was lost
        if (!last_start || t_of(inc.start) > t_of(last_start)) last_start = inc.start;
        Inc& slot = latest[*id];
        if (!slot.start || std::pair(t_of(inc.start), key.second) >
                               std::pair(t_of(slot.start), uint_of(slot.start->j, "inc").value_or(0)))
            slot = inc;
    }
    std::stable_sort(faults.begin(), faults.end(),
                     [&](const Event* a, const Event* b) { return t_of(a) < t_of(b); });

    // The last disturbance: the last fault, or a node.start after it (a node joining late
    // needs an election as much as a restarted one; the harness traces `restart` before
    // the new process's node.start).
    const Event* tf_ev = faults.empty() ? nullptr : faults.back();
    std::string tf_what = "the last fault";
    if (last_start && (!tf_ev || t_of(last_start) > t_of(tf_ev))) {
        tf_ev = last_start;
        tf_what = "the last node start";
    }
    if (!tf_ev) return done("skipped: no fault and no node.start in the trace");
    const int64_t tf = t_of(tf_ev);
    // The clean shutdown begins at the first node.stop after it: nodes then re-elect on
    // their way down, which is no disagreement.
    int64_t t_end = *last_t;
    const Event* end_stop = nullptr;
    for (const Event* s : stops)
        if (t_of(s) > tf && (!end_stop || t_of(s) < t_of(end_stop))) end_stop = s;
    if (end_stop) t_end = t_of(end_stop);

    struct Down {
        std::string why;
        const Event* e;
    };
    // Why node `id` is not live at t_end, or nullopt. The node whose stop marks t_end is
    // still live: the window closes as the shutdown begins, so its followers are right.
    auto down = [&](uint64_t id) -> std::optional<Down> {
        auto it = latest.find(id);
        if (it == latest.end()) return Down{"never started", nullptr};
        const Inc& inc = it->second;
        if (inc.stop && t_of(inc.stop) < t_end) return Down{"stopped", inc.stop};
        const Event* pause = nullptr;
        for (const Event* f : faults) {
            if (uint_of(f->j, "target") != id || t_of(f) <= t_of(inc.start) || t_of(f) > t_end) continue;
            std::string action = str_of(f->j, "action");
            if (action == "kill" || action == "leave") return Down{action == "kill" ? "killed" : "left", f};
            if (action == "pause") pause = f;
            if (action == "resume") pause = nullptr;
        }
        if (pause) return Down{"paused", pause};
        return std::nullopt;
    };
    bool runs_algo = false;
    for (auto& [id, inc] : latest) {
        if (str_of(inc.start->j, "algo") != algo) continue;  // a node running something else
        runs_algo = true;
        if (!down(id)) out.live.push_back(id);
    }
    if (!runs_algo) return done("skipped: no node.start with algo " + algo);

    const Event* cut = nullptr;
    for (const Event* f : faults) {
        std::string action = str_of(f->j, "action");
        if (action == "partition") cut = f;
        if (action == "heal") cut = nullptr;
    }
    if (cut) return done("skipped: partition not healed");  // who can reach whom is unknown
    if (out.live.empty()) return done("skipped: no live nodes");

    // Each live node's leader over time, from its latest incarnation in seq order: a
    // `leader` event sets it; electing or joining (or any role but leader/follower) clears it.
    struct Step {
        int64_t t;
        uint64_t leader;  // 0: none
        const Event* e;
    };
    std::map<uint64_t, std::vector<Step>> steps;
    for (uint64_t id : out.live) {
        auto& v = steps[id];
        for (auto& [seq, e] : *latest[id].stream) {
            auto t = time_of(e.j);
            if (!t) continue;
            std::string name = str_of(e.j, "ev"), role = str_of(e.j, "role");
            if (name == "leader" && str_of(e.j, "algo") == algo)
                v.push_back({*t, uint_of(e.j, "leader").value_or(0), &e});
            else if (name == "election.start" || (name == "role" && role != "leader" && role != "follower"))
                v.push_back({*t, 0, &e});
        }
    }
    auto state_at = [&](uint64_t id, int64_t at) {
        Step cur{0, 0, latest[id].start};  // nothing adopted since the start
        for (const Step& s : steps[id]) {
            if (s.t > at) break;
            cur = s;
        }
        return cur;
    };

    const int64_t bound = opts_.agreement_bound.count();
    const bool early = t_end < tf + bound;  // the trace ends inside the bound: judge its end
    const int64_t w0 = std::min(tf + bound, t_end);
    std::vector<int64_t> instants{w0};
    for (auto& [id, v] : steps)
        for (const Step& s : v)
            if (s.t > w0 && s.t <= t_end) instants.push_back(s.t);
    std::sort(instants.begin(), instants.end());
    instants.erase(std::unique(instants.begin(), instants.end()), instants.end());

    for (int64_t at : instants) {
        std::vector<std::pair<uint64_t, Step>> st;
        for (uint64_t id : out.live) st.emplace_back(id, state_at(id, at));
        std::string problem;
        Json cites = Json::array();
        for (auto& [id, s] : st) {
            if (s.leader != 0) continue;
            std::string last = s.e == latest[id].start ? "nothing adopted since its start"
                                                        : "last: " + str_of(s.e->j, "ev") +
                                                              (str_of(s.e->j, "ev") == "role" ? " " + str_of(s.e->j, "role") : "");
            problem = "node " + std::to_string(id) + " has no leader (" + last + ")";
            cites.push_back(cite(*s.e));
            break;
        }
        if (problem.empty())
            for (auto& [id, s] : st) {
                if (s.leader == st.front().second.leader) continue;
                problem = "node " + std::to_string(st.front().first) + " follows " +
                          std::to_string(st.front().second.leader) + " and node " + std::to_string(id) +
                          " follows " + std::to_string(s.leader);
                cites.push_back(cite(*st.front().second.e));
                cites.push_back(cite(*s.e));
                break;
            }
        uint64_t agreed = problem.empty() ? st.front().second.leader : 0;
        if (problem.empty() && !std::count(out.live.begin(), out.live.end(), agreed)) {
            auto d = down(agreed);
            std::string why = d ? d->why : "runs another algorithm";
            problem = "all live nodes follow " + std::to_string(agreed) + ", which is not live (" + why + ")";
            for (auto& [id, s] : st) cites.push_back(cite(*s.e));
            if (d && d->e && d->e != tf_ev) cites.push_back(cite(*d->e));
        }
        out.leader = agreed;
        if (problem.empty()) continue;
        cites.push_back(cite(*tf_ev));
        std::string when = early ? algo + ": the trace ends " + ms_text(t_end - tf) + " after " + tf_what +
                                       ", before the bound (" + format_duration(opts_.agreement_bound) + "); there "
                                 : algo + ": " + ms_text(at - tf) + " after " + tf_what + " (bound " +
                                       format_duration(opts_.agreement_bound) + ") ";
        add({"agreement", when + problem, cites});
        return done("violated");
    }
    done("ok");
}

Json TraceChecker::report_json() const {
    Json r = Json::object();
    r["ok"] = findings_.empty();
    r["events"] = events_;
    r["emitters"] = streams_.size();
    r["messages_matched"] = messages_matched_;
    Json counts = Json::object();
    for (auto& [k, v] : per_check_) counts[k] = v;
    r["violations"] = counts;
    Json list = Json::array();
    for (auto& f : findings_)
        list.push_back({{"check", f.check}, {"message", f.message}, {"events", f.cites}});
    r["findings"] = list;
    Json el = Json::object();
    el["algos"] = Json(std::vector<std::string>(algos_.begin(), algos_.end()));
    el["terms_checked"] = terms_checked_;
    el["raft_terms"] = raft_terms_;
    el["votes_checked"] = votes_checked_;
    el["bound_ms"] = to_ms(opts_.agreement_bound);
    if (agreements_.empty()) {
        el["agreement"] = "not applicable";
    } else {
        // One algorithm per cluster in practice; should a trace mix bully and ring, a violation wins.
        const Agreement* a = &agreements_.front();
        for (auto& g : agreements_)
            if (g.status == "violated" && a->status != "violated") a = &g;
        el["agreement_algo"] = a->algo;
        el["agreement"] = a->status;
        el["leader"] = a->leader ? Json(a->leader) : Json();
        el["live"] = a->live;
    }
    r["elections"] = el;
    r["lock_entries"] = lock_entries_;
    return r;
}

}  // namespace bus
