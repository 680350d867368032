// The trace checker behind ftbus-check: reads trace events line by line (one or many
// files, or a merged stream) and reports findings, each citing the offending events by
// emitter, inc and seq (and file:line).
//
// Checks so far (docs/TRACE.md, "Checks"):
//  - integrity: lines that are not JSON objects (with line numbers); missing or mistyped
//    common fields (t, node, inc, seq, lc, ev); missing fields of known events;
//    seq gaps and duplicates per (emitter, inc); event names not in the contract (event);
//    timestamps that go back with seq per (emitter, inc) (time); Lamport clocks that do not increase with
//    seq per (emitter, inc), or a msg.recv not later than its msg.send (same `id`);
//  - vclock: `vc` must be an object of node ids to positive counts naming the emitter; per
//    (emitter, inc) its own entry strictly increases and no entry decreases; a msg.recv's
//    vc includes its msg.send's.
//  - term: the `term` of election.start / role / leader events never decreases in seq order
//    per (emitter, inc) (a new incarnation starts afresh).
//  - raft-leader: at most one distinct leader per term over Raft `leader` events, across
//    all emitters (many nodes naming the same leader is the normal case).
//  - vote: at most one candidate per (node, term) over Raft `vote` events, across all of a
//    node's incarnations (the vote is durable).
//  - agreement (bully, ring): within Options::agreement_bound after the last disturbance
//    (fault, a later node.start, or a node that left: node.stop reason "left" / "join
//    refused") and until the clean shutdown begins (first other node.stop after it) or the
//    trace ends, every live node follows one leader and that leader is
//    live. Skipped when the last partition was never healed (connectivity unknown).
// report_json() summarises these under "elections".
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
    std::string check;    ///< "parse", "fields", "seq", "lamport", "vclock", "term", "raft-leader", "vote", "agreement", "lock"
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
    /// After finish(): the replicated file `name` as it is on disk (ftbus-check --file): every
    /// append acknowledged to a client (rpc.ack) is there at its offset with its checksum,
    /// and the file holds no bytes beyond what the replicas' applied appends account for.
    void check_file(const std::string& name, const std::string& content, const std::string& path);
    /// A finding of a check run outside (ftbus-check --max-spread).
    void add_finding(Finding f) { add(std::move(f)); }

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
    void check_vector_clocks();
    void check_messages();
    void check_terms();
    void check_raft_leaders();
    void check_votes();
    void check_agreement(const std::string& algo);
    /// The lock service: replicas applied the same at each index; one holder at a time,
    /// tokens increasing, appends only by the holder at the file's end; no expiry while the
    /// client could still act as holder (its valid_until).
    void check_locks();

    /// What the election checks looked at, for report_json()["elections"].
    struct Agreement {
        std::string algo;
        std::string status;    ///< "ok", "violated", "skipped: ..."
        uint64_t leader = 0;   ///< the leader the live nodes agreed on, last evaluated (0: none)
        std::vector<uint64_t> live;
    };

    Options opts_;
    size_t events_ = 0;
    std::map<StreamKey, std::map<uint64_t, Event>> streams_;  // by seq
    std::vector<Finding> findings_;
    std::map<std::string, size_t> per_check_;
    std::set<std::string> algos_;  // of election.start and leader events
    size_t terms_checked_ = 0;
    size_t raft_terms_ = 0;
    size_t votes_checked_ = 0;  ///< (node, term) pairs with a vote
    size_t messages_matched_ = 0;  ///< msg.recv events whose msg.send is in the trace
    std::vector<Agreement> agreements_;
    size_t lock_entries_ = 0;  ///< distinct lock-service log entries checked
};

}  // namespace bus
