#include "bus/trace_summary.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

namespace bus {

namespace {

std::string host_of(const Json& e) {
    const Json& node = e["node"];
    return (node.is_string() ? node.get<std::string>() : node.dump()) + "@" + e["inc"].dump();
}

int64_t i64(const Json& e, const char* k) { return e[k].get<int64_t>(); }
/// Fields that may be missing or mistyped in a broken trace: a default instead of a throw.
uint64_t u64_or(const Json& e, const char* k, uint64_t d) {
    if (!e.contains(k) || !e[k].is_number_integer()) return d;
    return e[k].is_number_unsigned() ? e[k].get<uint64_t>() : static_cast<uint64_t>(std::max<int64_t>(0, e[k].get<int64_t>()));
}
std::string str_or(const Json& e, const char* k) {
    return e.contains(k) && e[k].is_string() ? e[k].get<std::string>() : std::string();
}

/// Leaves out the events without the common fields. \return how many.
size_t sort_by_time(std::vector<Json>& events) {
    size_t before = events.size();
    events.erase(std::remove_if(events.begin(), events.end(), [](const Json& e) { return !is_trace_event(e); }), events.end());
    size_t unusable = before - events.size();
    std::stable_sort(events.begin(), events.end(), [](const Json& a, const Json& b) {
        return std::make_pair(a["t"].get<int64_t>(), u64_or(a, "seq", 0)) <
               std::make_pair(b["t"].get<int64_t>(), u64_or(b, "seq", 0));
    });
    return unusable;
}

Json quantiles_ms(std::vector<int64_t> us) {
    if (us.empty()) return nullptr;
    std::sort(us.begin(), us.end());
    auto q = [&](double f) { return to_ms(Duration(us[std::min(us.size() - 1, static_cast<size_t>(f * static_cast<double>(us.size())))])); };
    return {{"samples", us.size()}, {"median_ms", q(0.5)}, {"p99_ms", q(0.99)}, {"max_ms", to_ms(Duration(us.back()))}};
}

/// Walks clock.offset / clock.adjust events; calls `sample(t, spread, low, high, synced)` at
/// every clock.offset once every live clock node has one from its current incarnation.
/// Nodes come and go: a node.start begins afresh (its clock is not synced yet); a stop, a
/// kill or a leave takes it out of the comparison.
template <typename F>
void walk_clocks(const std::vector<Json>& events, F sample) {
    std::set<std::string> clock_nodes;  // nodes that trace clock offsets at all
    for (const Json& e : events)
        if (e["ev"] == "clock.offset") clock_nodes.insert(e["node"].dump());
    std::set<std::string> live, adjusted;
    std::map<std::string, const Json*> latest;   // node -> its latest clock.offset (this incarnation)
    std::map<std::string, int64_t> adjusted_at;  // node -> its latest clock.adjust
    auto gone = [&](const std::string& n) {
        live.erase(n);
        latest.erase(n);
        adjusted.erase(n);
        adjusted_at.erase(n);
    };
    for (const Json& e : events) {
        std::string ev = e["ev"].get<std::string>();
        std::string node = e["node"].dump();
        if (ev == "node.start") {
            gone(node);
            live.insert(node);
            continue;
        }
        if (ev == "node.stop") gone(node);
        if (ev == "fault" && e.contains("target")) {
            std::string a = str_or(e, "action");
            if (a == "kill" || a == "leave") gone(e["target"].dump());
        }
        if (!clock_nodes.count(node)) continue;
        live.insert(node);  // a trace whose node.start was cut off still counts
        if (ev == "clock.adjust") adjusted.insert(node), adjusted_at[node] = i64(e, "t");
        if (ev != "clock.offset" || !e.contains("offset_us") || !e["offset_us"].is_number_integer()) continue;
        latest[node] = &e;
        size_t live_clocks = 0;
        bool all_synced = true, all_known = true;
        for (const std::string& n : live)
            if (clock_nodes.count(n)) {
                ++live_clocks;
                all_known = all_known && latest.count(n);
                all_synced = all_synced && adjusted.count(n);
            }
        if (!all_known || latest.size() < 2) continue;
        // Compared at the same instant: a node adjusted since its last clock.offset has an
        // offset we do not know yet (it traces a new one right after), so wait for it.
        bool stale = false;
        for (auto& [n, o] : latest)
            if (auto a = adjusted_at.find(n); a != adjusted_at.end() && i64(*o, "t") < a->second) stale = true;
        if (stale) continue;
        const Json *lo = nullptr, *hi = nullptr;
        for (auto& [n, o] : latest) {
            if (!lo || i64(*o, "offset_us") < i64(*lo, "offset_us")) lo = o;
            if (!hi || i64(*o, "offset_us") > i64(*hi, "offset_us")) hi = o;
        }
        int64_t spread = i64(*hi, "offset_us") - i64(*lo, "offset_us");
        if (!sample(i64(e, "t"), spread, *lo, *hi, all_synced && live_clocks >= 2)) return;
    }
}

}  // namespace

bool is_trace_event(const Json& e) {
    // Parsed text has its non-negative integers unsigned; Json built in code may hold them signed.
    auto count = [&](const char* k) {
        return e.contains(k) && (e[k].is_number_unsigned() || (e[k].is_number_integer() && e[k].get<int64_t>() >= 0));
    };
    return e.is_object() && e.contains("t") && e["t"].is_number_integer() && e.contains("node") &&
           (e["node"].is_number_integer() || e["node"].is_string()) && count("inc") && count("seq") && e.contains("ev") &&
           e["ev"].is_string();
}

Json summarize(std::vector<Json> events) {
    size_t unusable = sort_by_time(events);
    Json out = Json::object();
    out["events"] = events.size();
    out["unusable_lines"] = unusable;

    // Messages per type.
    std::map<std::string, std::pair<uint64_t, uint64_t>> types;
    for (const Json& e : events) {
        const std::string ev = e["ev"].get<std::string>();
        if ((ev == "msg.send" || ev == "msg.recv") && e.contains("type") && e["type"].is_string())
            (ev == "msg.send" ? types[e["type"]].first : types[e["type"]].second)++;
    }
    Json msgs = Json::object();
    for (auto& [t, c] : types) msgs[t] = {{"sent", c.first}, {"received", c.second}};
    out["messages"] = msgs;

    // Events per emitter incarnation.
    struct Span {
        uint64_t n = 0;
        int64_t first = 0, last = 0;
    };
    std::map<std::string, Span> spans;
    for (const Json& e : events) {
        Span& s = spans[host_of(e)];
        int64_t t = e["t"].get<int64_t>();
        if (s.n++ == 0) s.first = t;
        s.last = t;
    }
    Json nodes = Json::object();
    for (auto& [h, s] : spans) {
        double secs = static_cast<double>(s.last - s.first) / 1e6;
        nodes[h] = {{"events", s.n},
                    {"span_s", std::round(secs * 1000) / 1000},
                    {"per_s", secs > 0 ? Json(std::round(static_cast<double>(s.n) / secs * 10) / 10) : Json(nullptr)}};
    }
    out["nodes"] = nodes;

    // Leaderless intervals per election node incarnation.
    static const std::set<std::string> kElecting = {"joining", "candidate", "waiting", "pre-candidate", "electing"};
    struct Lead {
        bool elects = false;
        std::optional<int64_t> since;  // leaderless since
        Json intervals = Json::array();
        int64_t total = 0;
        void close(int64_t t, bool open = false) {
            if (!since) return;
            intervals.push_back({{"from", *since}, {"ms", to_ms(Duration(t - *since))}, {"open", open}});
            total += t - *since;
            since.reset();
        }
    };
    std::map<std::string, Lead> leads;
    int64_t t_end = events.empty() ? 0 : events.back()["t"].get<int64_t>();
    for (const Json& e : events) {
        const std::string ev = e["ev"].get<std::string>();
        Lead& l = leads[host_of(e)];
        int64_t t = e["t"].get<int64_t>();
        if (ev == "node.start") {
            l.since = t;
        } else if (ev == "leader") {
            l.elects = true;
            if (u64_or(e, "leader", 0) != 0) l.close(t);
        } else if (ev == "election.start" || (ev == "role" && kElecting.count(str_or(e, "role")))) {
            l.elects = true;
            if (!l.since) l.since = t;
        } else if (ev == "node.stop") {
            l.close(t);
        }
    }
    Json leaderless = Json::object();
    for (auto& [h, l] : leads) {
        if (!l.elects) continue;
        l.close(t_end, true);
        leaderless[h] = {{"total_ms", to_ms(Duration(l.total))}, {"intervals", l.intervals}};
    }
    out["leaderless"] = leaderless;

    // Clock spread.
    std::vector<int64_t> all, synced;
    walk_clocks(events, [&](int64_t, int64_t spread, const Json&, const Json&, bool sync) {
        all.push_back(spread);
        if (sync) synced.push_back(spread);
        return true;
    });
    out["clocks"] = all.empty() ? Json(nullptr) : Json{{"spread", quantiles_ms(all)}, {"spread_after_sync", quantiles_ms(synced)}};

    // Locks: each log entry's effects once (the first replica to trace them; events are in
    // time order), then per lock the hold (grant to release or expiry) and wait (queue to
    // grant) times.
    struct LockTimes {
        uint64_t grants = 0, expiries = 0;
        std::optional<int64_t> held_since;
        std::map<uint64_t, int64_t> queued_at;  // session -> when
        std::vector<int64_t> hold, wait;
    };
    std::map<std::string, LockTimes> locks;
    std::set<std::string> seen;
    for (const Json& e : events) {
        std::string ev = str_or(e, "ev");
        if (ev != "lock.grant" && ev != "lock.release" && ev != "lock.expire" && ev != "lock.queue" && ev != "lock.leave")
            continue;
        if (!e.contains("index") || !e.contains("lock") || !e["lock"].is_string()) continue;
        std::string key = ev + "|" + e["lock"].get<std::string>() + "|" + e["index"].dump() + "|" + e.value("session", Json()).dump();
        if (!seen.insert(key).second) continue;  // another replica applying the same entry
        LockTimes& l = locks[e["lock"].get<std::string>()];
        int64_t t = i64(e, "t");
        uint64_t session = u64_or(e, "session", 0);
        if (ev == "lock.queue") {
            l.queued_at.emplace(session, t);
        } else if (ev == "lock.leave") {  // gave up waiting: not a wait for a grant
            l.queued_at.erase(session);
        } else if (ev == "lock.grant") {
            ++l.grants;
            l.held_since = t;
            if (auto q = l.queued_at.find(session); q != l.queued_at.end()) {
                l.wait.push_back(t - q->second);
                l.queued_at.erase(q);
            }
        } else {
            if (ev == "lock.expire") ++l.expiries;
            if (l.held_since) l.hold.push_back(t - *l.held_since);
            l.held_since.reset();
        }
    }
    Json lk = Json::object();
    for (auto& [name, l] : locks)
        lk[name] = {{"grants", l.grants}, {"expiries", l.expiries}, {"hold", quantiles_ms(l.hold)},
                    {"wait", quantiles_ms(l.wait)}};
    out["locks"] = lk;
    return out;
}

LiveTrace::Line LiveTrace::add(std::string_view topic, std::string_view payload) {
    Line out;
    if (topic != "trace") {
        out.kind = Line::Kind::other_topic;
        return out;
    }
    Json ev = Json::parse(payload, nullptr, false);
    if (ev.is_discarded() || !ev.is_object() || !ev.contains("seq") || !ev.contains("inc") ||
        !ev["seq"].is_number_unsigned() || !ev["inc"].is_number_unsigned()) {
        ++malformed_;
        return out;
    }
    out.kind = Line::Kind::event;
    // JSON allows newlines between tokens; JSON Lines does not.
    out.text = payload.find_first_of("\r\n") == std::string_view::npos ? std::string(payload) : ev.dump();
    auto key = std::make_pair(emitter_of(ev), ev["inc"].get<uint64_t>());
    uint64_t seq = ev["seq"].get<uint64_t>();
    auto [it, fresh] = highest_.emplace(key, seq);
    if (!fresh && seq > it->second) {
        if (seq - it->second > 1) {  // no overflow: seq > highest
            out.gap = SeqGap{key.first, key.second, it->second + 1, seq - 1};
            ++gaps_;
            uint64_t n = out.gap->missing();
            lost_ = n > UINT64_MAX - lost_ ? UINT64_MAX : lost_ + n;
        }
        it->second = seq;
    }
    out.event = std::move(ev);
    return out;
}

std::optional<SpreadViolation> check_spread(std::vector<Json> events, Duration max) {
    sort_by_time(events);
    std::optional<SpreadViolation> v;
    walk_clocks(events, [&](int64_t t, int64_t spread, const Json& lo, const Json& hi, bool sync) {
        if (!sync || spread <= max.count()) return true;
        v = SpreadViolation{t, spread, lo, hi};
        return false;
    });
    return v;
}

}  // namespace bus
