#include "bus/trace_check.hpp"

namespace bus {

namespace {

/// Fields each known event must carry, beyond the common ones (docs/TRACE.md).
const std::map<std::string, std::vector<const char*>>& required_fields() {
    static const std::map<std::string, std::vector<const char*>> table = {
        {"node.start", {"role", "algo", "pid"}},
        {"node.stop", {"reason"}},
        {"node.stall", {"stalled_ms"}},
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
    if (ev.contains("ev") && ev["ev"].is_string()) {
        auto it = required_fields().find(ev["ev"].get<std::string>());
        if (it != required_fields().end())
            for (const char* k : it->second) need(k, ev.contains(k));
    }
    if (!missing.empty()) {
        std::string list;
        for (auto& m : missing) list += (list.empty() ? "" : ", ") + m;
        add({"fields", where + ": event " + ev.value("ev", std::string("?")) +
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
}

Json TraceChecker::report_json() const {
    Json r = Json::object();
    r["ok"] = findings_.empty();
    r["events"] = events_;
    r["emitters"] = streams_.size();
    Json counts = Json::object();
    for (auto& [k, v] : per_check_) counts[k] = v;
    r["violations"] = counts;
    Json list = Json::array();
    for (auto& f : findings_)
        list.push_back({{"check", f.check}, {"message", f.message}, {"events", f.cites}});
    r["findings"] = list;
    return r;
}

}  // namespace bus
