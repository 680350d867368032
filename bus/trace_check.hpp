// The trace checker behind ftbus-check: reads trace events line by line (one or many
// files, or a merged stream) and reports findings, each citing the offending events by
// emitter, inc and seq (and file:line).
//
// Checks so far (docs/TRACE.md, "Checks"):
//  - integrity: lines that are not JSON objects (with line numbers); missing or mistyped
//    common fields (t, node, inc, seq, lc, ev); missing fields of known events;
//    seq gaps and duplicates per (emitter, inc); Lamport clocks that do not increase with
//    seq per (emitter, inc).
// Pure: no I/O; the caller feeds lines and prints the findings.
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "bus/duration.hpp"
#include "bus/trace.hpp"

namespace bus {

struct Finding {
    std::string check;    ///< "parse", "fields", "seq", "lamport", ...
    std::string message;  ///< one readable sentence
    Json cites = Json::array();  ///< [{node, inc, seq, where}], the events at fault
};

class TraceChecker {
public:
    struct Options {
        Duration agreement_bound = std::chrono::seconds(5);
    };
    TraceChecker() : TraceChecker(Options{}) {}
    explicit TraceChecker(Options o) : opts_(o) {}

    /// One line of a trace; `where` is "file:line" for citations. Blank lines are skipped.
    void add_line(std::string_view line, const std::string& where);
    /// Runs the whole-trace checks. Call once, after the last line.
    void finish();

    const std::vector<Finding>& findings() const { return findings_; }
    size_t events() const { return events_; }
    size_t emitters() const { return streams_.size(); }
    Json report_json() const;

private:
    struct Event {
        Json j;
        std::string where;
    };
    using StreamKey = std::pair<std::string, uint64_t>;  // (emitter, inc)
    void add(Finding f);
    Json cite(const Event& e) const;

    Options opts_;
    size_t events_ = 0;
    std::map<StreamKey, std::map<uint64_t, Event>> streams_;  // by seq
    std::vector<Finding> findings_;
    std::map<std::string, size_t> per_check_;
};

}  // namespace bus
