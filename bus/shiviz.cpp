#include "bus/shiviz.hpp"

#include <set>

namespace bus {

namespace {

/// Fields every event has; not repeated in the description.
const std::set<std::string> kCommon = {"t", "node", "inc", "seq", "lc", "vc", "ev"};

std::string one_line(std::string s) {
    for (char& c : s)
        if (c == '\n' || c == '\r') c = ' ';
    return s;
}

/// ShiViz reads the host with \S*: no whitespace in it.
std::string no_space(std::string s) {
    for (char& c : s)
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') c = '_';
    return s;
}

}  // namespace

std::string ShivizExporter::host_of(const Json& e) {
    const Json& node = e["node"];
    std::string who = node.is_string() ? node.get<std::string>() : node.dump();
    return no_space(who) + "@" + e["inc"].dump();
}

std::string ShivizExporter::describe(const Json& e) {
    std::string s = e["ev"].is_string() ? e["ev"].get<std::string>() : e["ev"].dump();
    for (auto& [k, v] : e.items()) {
        if (kCommon.count(k)) continue;
        s += " " + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
    }
    return one_line(s);
}

void ShivizExporter::add(const Json& e) {
    if (!e.is_object() || !e.contains("node") || !e.contains("inc") || !e.contains("ev") ||
        !(e["node"].is_string() || e["node"].is_number_integer()) || !e["inc"].is_number_integer()) {
        ++skipped_;
        return;
    }
    Host& h = hosts_[host_of(e)];
    h.waiting.push_back(e);
    drain(false);
    if (h.waiting.size() > max_waiting_) {  // its send is not coming: let the head go
        step(host_of(e), h, true);
        drain(false);
    }
}

void ShivizExporter::finish() {
    for (;;) {
        drain(false);
        // Anything left waits for a send that never came: release one receive, retry.
        bool released = false;
        for (auto& [name, h] : hosts_)
            if (!h.waiting.empty()) {
                step(name, h, true);
                released = true;
                break;
            }
        if (!released) return;
    }
}

void ShivizExporter::drain(bool force) {
    for (bool moved = true; moved;) {
        moved = false;
        for (auto& [name, h] : hosts_)
            while (!h.waiting.empty() && step(name, h, force)) moved = true;
    }
}

bool ShivizExporter::step(const std::string& name, Host& h, bool force) {
    const Json& e = h.waiting.front();
    const std::string ev = e["ev"].is_string() ? e["ev"].get<std::string>() : "";
    const std::map<std::string, uint64_t>* sent = nullptr;
    if (ev == "msg.recv" && e.contains("id")) {
        for (const std::string& k : message_recv_keys(e))
            if (auto it = sends_.find(k); it != sends_.end() && !sent) sent = &it->second;
        if (sent) {
        } else if (!force)
            return false;  // wait for the send
        else
            ++unmatched_;
    }
    h.clock[name] = ++h.count;
    if (sent)
        for (auto& [other, c] : *sent)
            if (other != name) h.clock[other] = std::max(h.clock[other], c);
    if (ev == "msg.send" && e.contains("id")) sends_[message_send_key(e)] = h.clock;
    Json clock = Json::object();
    for (auto& [k, v] : h.clock) clock[k] = v;
    out_(describe(e) + "\n" + name + " " + clock.dump() + "\n");
    ++exported_;
    h.waiting.pop_front();
    return true;
}

}  // namespace bus
