// LockServer: one replica of the lock service (ftbus-lockd): Raft with the LockMachine on
// its log, serving clients on the node's client port (LOCK_REQUEST / LOCK_REPLY;
// docs/LOCKS.md). A pure state machine like the algorithms it wraps: time comes in as an
// argument, every effect goes out as Actions.
//
// Client side, on the leader only (followers answer `redirect` with the leader they know):
//  - a new leader serves nothing until the first entry of its term has committed; then it
//    gives every session a grace period before it may expire any (leases it never saw
//    renewed were kept alive by its predecessor);
//  - keepalive: not replicated; the leader restarts the session's lease (ttl from now)
//    and answers `alive` — unless the session's expiry is already proposed (`unavailable`
//    then). The client counts its lease from when it sent the keepalive.
//  - a session whose lease ran out is expired by proposing `expire {session, epoch}`: if
//    any command of the session commits first, the expiry is stale and does nothing;
//  - every other request is validated, stamped with its sender (the client process) and
//    kCommandFormat, proposed, and answered once applied — by the reply the machine
//    produced (exactly once per (session, client, req)); waiters are pushed their grants
//    (to the routing id the session last used), and a session's first word to this
//    leader is answered with a push of every grant it holds too (an earlier leader may
//    have fallen before pushing one);
//  - over kMaxPendingLockRequests waiting for commit: `busy`; leadership lost with
//    requests pending: `unavailable` (retrying the same req is safe: deduplicated).
// Refusals are traced as rpc.reject {client, op, req, reason, token, current}.
// Not thread-safe; owned by the node loop.
#pragma once

#include <map>
#include <memory>

#include "bus/lock_machine.hpp"
#include "bus/raft.hpp"

namespace bus {

inline constexpr size_t kMaxPendingLockRequests = 10000;

class LockServer final : public Algorithm {
public:
    /// `machine` (not owned) must outlive the server; Raft applies to it.
    LockServer(std::unique_ptr<Raft> raft, LockMachine* machine, Duration election_timeout_max);

    const char* name() const override { return "raft"; }
    Actions start(Time now) override { return after(raft_->start(now), now); }
    Actions on_message(NodeId from, const Envelope& env, Time now) override {
        return after(raft_->on_message(from, env, now), now);
    }
    Actions on_peer(const PeerEvent& e, Time now) override { return after(raft_->on_peer(e, now), now); }
    Actions on_stall(Time now) override { return after(raft_->on_stall(now), now); }
    Actions on_tick(Time now) override;
    Actions on_log_durable(uint64_t index, Time now) override { return after(raft_->on_log_durable(index, now), now); }
    Actions on_round_end(Time now) override { return after(raft_->on_round_end(now), now); }
    Actions on_client(const std::string& route, const Envelope& env, Time now) override;
    /// Answers `rejected` (request number 0: none could be read), traced as rpc.reject.
    Actions on_bad_client(const std::string& route, const std::string& why, Time now) override;
    bool serves_clients() const override { return true; }
    Time next_deadline() const override;
    LeaderView view() const override { return raft_->view(); }
    std::vector<std::string> check_invariants() const override;
    Json status() const override;

    const Raft& raft() const { return *raft_; }
    /// The leader serves clients: it leads and its term's first entry has committed.
    bool ready() const { return ready_; }

private:
    struct Pending {
        std::string route;
        std::string client;
        std::string op;
        uint64_t req = 0;
        uint64_t session = 0;
        uint64_t token = 0;
    };
    /// After Raft acted: trace the machine's events, answer applied requests, push grants,
    /// and follow leadership (ready, grace, pending requests on a lost leadership).
    Actions after(Actions a, Time now);
    void reply(Actions& a, const std::string& route, LockReplyMsg m);
    void reject(Actions& a, const std::string& route, const std::string& client, const LockRequest& r,
                const std::string& why, uint64_t current = 0);

    std::unique_ptr<Raft> raft_;
    LockMachine* m_;
    Duration grace_extra_;
    bool ready_ = false;
    uint64_t ready_term_ = 0;
    std::map<uint64_t, Pending> pending_;           ///< by log index
    std::map<uint64_t, Time> lease_until_;          ///< leader: session -> expiry deadline
    std::map<uint64_t, uint64_t> expiring_;         ///< session -> epoch of the expiry proposed
    std::map<uint64_t, std::string> route_of_;      ///< session -> last routing id (pushes)
};

}  // namespace bus
