// RaftServer: Raft serving clients — the replicated log with a client port. A client sends
// PROPOSE {req, data} to a node's client ROUTER; the leader appends the entry and answers
// PROPOSE_REPLY {ok, index} once it is committed and applied; a follower answers "not the
// leader" with the leader it knows (the client goes there). If the leader loses its
// leadership first, every pending proposal is answered "leadership lost: the entry may
// still commit" (the client cannot know; a retry may apply it twice — the lock service
// dedupes with request numbers, a raw log does not). Over kMaxPendingProposals waiting for
// commit, new proposals are answered "busy" (the intake cap: clients back off, the log
// does not grow without bound).
//
// The state machine is the caller's (the lock service's tables; for ftbus-elect --algo raft
// a LogDigest). Everything else is Raft's: this class only adds the client side.
// A pure state machine like the algorithms it wraps. Not thread-safe.
#pragma once

#include <map>
#include <memory>

#include "bus/raft.hpp"

namespace bus {

/// Proposals waiting for commit before new ones are answered "busy".
inline constexpr size_t kMaxPendingProposals = 10000;

/// A state machine that only digests the log: entries and bytes applied, and a CRC-32C
/// chained over every entry's data — two replicas with equal digests applied the same
/// entries. Its snapshot is those three numbers.
class LogDigest final : public StateMachine {
public:
    void apply(const LogEntry& e) override;
    std::string snapshot() const override;
    void restore(const std::string& data) override;
    uint64_t entries() const { return entries_; }
    uint64_t bytes() const { return bytes_; }
    uint32_t crc() const { return crc_; }
    Json summary() const override { return {{"entries", entries_}, {"bytes", bytes_}, {"crc32c", crc_}}; }

private:
    uint64_t entries_ = 0, bytes_ = 0;
    uint32_t crc_ = 0;
};

class RaftServer final : public Algorithm, private StateMachine {
public:
    /// `sm` (not owned) receives the committed entries; it must outlive the server.
    RaftServer(std::unique_ptr<Raft> raft, StateMachine* sm);

    const char* name() const override { return "raft"; }
    Actions start(Time now) override { return answer(raft_->start(now)); }
    Actions on_message(NodeId from, const Envelope& env, Time now) override {
        return answer(raft_->on_message(from, env, now));
    }
    Actions on_peer(const PeerEvent& e, Time now) override { return answer(raft_->on_peer(e, now)); }
    Actions on_stall(Time now) override { return answer(raft_->on_stall(now)); }
    Actions on_tick(Time now) override { return answer(raft_->on_tick(now)); }
    Actions on_log_durable(uint64_t index, Time now) override { return answer(raft_->on_log_durable(index, now)); }
    Actions on_round_end(Time now) override { return answer(raft_->on_round_end(now)); }
    Actions on_client(const std::string& route, const Envelope& env, Time now) override;
    bool serves_clients() const override { return true; }
    Time next_deadline() const override { return raft_->next_deadline(); }
    LeaderView view() const override { return raft_->view(); }
    std::vector<std::string> check_invariants() const override { return raft_->check_invariants(); }
    Json status() const override {
        Json j = raft_->status();
        j["pending"] = pending_.size();
        return j;
    }

    const Raft& raft() const { return *raft_; }
    size_t pending() const { return pending_.size(); }

private:
    // StateMachine: what Raft applies passes through here on its way to sm_.
    void apply(const LogEntry& e) override;
    std::string snapshot() const override { return sm_->snapshot(); }
    void restore(const std::string& data) override { sm_->restore(data); }
    Json summary() const override { return sm_->summary(); }

    /// Adds the replies due after Raft acted: applied proposals, or all of them if this
    /// node no longer leads.
    Actions answer(Actions a);

    struct Pending {
        std::string route;
        uint64_t req = 0;
        uint64_t term = 0;
    };
    std::unique_ptr<Raft> raft_;
    StateMachine* sm_;
    std::map<uint64_t, Pending> pending_;  ///< by log index
    std::vector<std::pair<uint64_t, uint64_t>> applied_;  ///< (index, term) since the last answer()
};

}  // namespace bus
