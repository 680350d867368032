#include "bus/raft.hpp"

namespace bus {

const char* to_string(Raft::Role r) {
    switch (r) {
        case Raft::Role::follower: return "follower";
        case Raft::Role::pre_candidate: return "pre-candidate";
        case Raft::Role::candidate: return "candidate";
        case Raft::Role::leader: return "leader";
    }
    return "?";
}

namespace {
/// Entries per AppendEntries: a follower far behind catches up in steps this big, each
/// well inside the 64 KiB frame for small commands.
constexpr size_t kMaxEntriesPerMessage = 64;
constexpr size_t kMaxBytesPerMessage = 32 * 1024;
constexpr size_t kMaxInflight = kMaxInflightAppends;
/// hb_match_ when the window was not full at the last heartbeat.
constexpr uint64_t kNotFull = UINT64_MAX;
}  // namespace

Raft::Raft(const ClusterConfig& cfg, NodeId self, HardState recovered, uint64_t seed, std::vector<LogEntry> log,
           Snapshot snap)
    : self_(self),
      timeout_min_(cfg.tunables.election_timeout_min),
      timeout_max_(cfg.tunables.election_timeout_max),
      heartbeat_(std::max(Duration(1), effective_raft_heartbeat(cfg.tunables))),
      pre_vote_(cfg.tunables.pre_vote),
      check_quorum_(cfg.tunables.check_quorum),
      snapshot_every_(cfg.tunables.snapshot_entries),
      rng_(seed),
      term_(recovered.term),
      vote_(recovered.vote),
      persisted_(recovered),
      snap_index_(snap.index),
      snap_term_(snap.term),
      snap_data_(std::move(snap.data)),
      log_(std::move(log)) {
    for (const NodeSpec& n : cfg.nodes) voters_.insert(n.id);
    // Entries the snapshot covers may still be on disk (a crash between writing the
    // snapshot and compacting the log): they must agree with it, and are skipped.
    auto covered = std::find_if(log_.begin(), log_.end(), [&](const LogEntry& e) { return e.index > snap_index_; });
    for (auto it = log_.begin(); it != covered; ++it)
        if (it->index == snap_index_ && it->term != snap_term_)
            throw std::invalid_argument("Raft: the recovered log disagrees with the snapshot at index " +
                                        std::to_string(snap_index_));
    log_.erase(log_.begin(), covered);
    for (size_t i = 0; i < log_.size(); ++i)
        if (log_[i].index != snap_index_ + i + 1)
            throw std::invalid_argument("Raft: the recovered log does not continue the snapshot (index " +
                                        std::to_string(log_[i].index) + " where " +
                                        std::to_string(snap_index_ + i + 1) + " was expected)");
    commit_ = applied_ = snap_index_;
    durable_ = last_index();  // what was recovered is on disk
}

void Raft::set_state_machine(StateMachine* sm) {
    sm_ = sm;
    if (sm_ && snap_index_ > 0) sm_->restore(snap_data_);
}

void Raft::append_local(LogEntry e, Actions& a) {
    log_.push_back(e);
    a.log_append.push_back(std::move(e));
}

uint64_t Raft::propose(std::string data, Time /*now*/, Actions& a) {
    if (role_ != Role::leader) return 0;
    if (data.size() > kMaxEntryBytes)
        throw std::invalid_argument("Raft::propose: an entry of " + std::to_string(data.size()) + " bytes (at most " +
                                    std::to_string(kMaxEntryBytes) + ")");
    append_local(LogEntry{last_index() + 1, term_, std::move(data)}, a);
    if (batching_) {  // sent with the round's other proposals, by on_round_end
        batch_pending_ = true;
        return last_index();
    }
    for (NodeId v : voters_)  // a follower that was up to date, with room in its window: send at once
        if (v != self_ && next_[v] == last_index() && inflight_[v].size() < kMaxInflight) replicate(v, a);
    return last_index();  // commits once durable here and on a majority (a single node: on_log_durable)
}

Actions Raft::on_round_end(Time /*now*/) {
    Actions a;
    if (!batch_pending_) return a;
    batch_pending_ = false;
    if (role_ != Role::leader) return a;
    for (NodeId v : voters_)
        if (v != self_ && next_[v] <= last_index() && next_[v] > snap_index_ && inflight_[v].size() < kMaxInflight)
            replicate(v, a);
    return finish(std::move(a));
}

Actions Raft::on_log_durable(uint64_t index, Time /*now*/) {
    Actions a;
    durable_ = std::max(durable_, std::min(index, last_index()));
    advance_commit();
    apply_committed(a);
    return finish(std::move(a));
}

void Raft::replicate(NodeId v, Actions& a) {
    uint64_t next = std::max<uint64_t>(1, std::min(next_[v], last_index() + 1));
    if (next <= snap_index_) return send_snapshot(v, a);  // what it needs was compacted away
    if (inflight_[v].size() >= kMaxInflight) {
        // The window is full: only a heartbeat, from what it is known to hold (a commit index
        // it can use, and proof of life), no entries.
        uint64_t prev = std::max(match_[v], snap_index_);
        a.send_before_sync(v, AppendEntries{term_, prev, term_at(prev), commit_, {}});
        return;
    }
    AppendEntries m{term_, next - 1, term_at(next - 1), commit_, {}};
    size_t bytes = 0;
    for (uint64_t i = next; i <= last_index() && m.entries.size() < kMaxEntriesPerMessage; ++i) {
        const LogEntry& e = *entry(i);
        // Within the byte budget, and always at least one entry (one entry of kMaxEntryBytes
        // fits a frame; two might not).
        if (!m.entries.empty() && bytes + e.data.size() + 16 > kMaxBytesPerMessage) break;
        m.entries.push_back(WireEntry{e.term, e.data});
        bytes += e.data.size() + 16;
    }
    next_[v] = next + m.entries.size();  // optimistic: pipelined; a refusal resets it
    if (!m.entries.empty()) inflight_[v].push_back(next_[v] - 1);
    a.send_before_sync(v, std::move(m));  // dissertation §10.2.1: our own fsync runs meanwhile
}

void Raft::send_snapshot(NodeId v, Actions& a) {
    if (snap_of_[v] != snap_index_) {  // a newer snapshot than the one it was getting: start over
        snap_of_[v] = snap_index_;
        snap_offset_[v] = 0;
    }
    uint64_t off = std::min<uint64_t>(snap_offset_[v], snap_data_.size());
    size_t n = std::min<size_t>(snapshot_chunk_, snap_data_.size() - off);
    if (off == 0)
        a.trace("raft.snapshot.send", {{"peer", v}, {"index", snap_index_}, {"term", snap_term_}, {"bytes", snap_data_.size()}});
    a.send_before_sync(v, InstallSnapshot{term_, snap_index_, snap_term_, off, snap_data_.substr(off, n),
                                          off + n == snap_data_.size()});
}

void Raft::advance_commit() {
    if (role_ != Role::leader) return;
    // §5.3/§5.4.2: the highest index stored on a majority, if it is of the current term.
    for (uint64_t n = last_index(); n > commit_; --n) {
        if (term_at(n) != term_) break;  // older terms commit only through a current-term entry
        size_t have = durable_ >= n ? 1 : 0;  // ourselves, once it is on our disk
        for (auto& [v, m] : match_)
            if (m >= n) ++have;
        if (have >= majority()) {
            commit_ = n;
            break;
        }
    }
}

void Raft::apply_committed(Actions& a) {
    while (applied_ < commit_ && applied_ < last_index()) {
        ++applied_;
        if (sm_) sm_->apply(*entry(applied_));
    }
    if (snapshot_every_ > 0 && applied_ - snap_index_ >= snapshot_every_) take_snapshot(a);
}

void Raft::take_snapshot(Actions& a) {
    uint64_t term = term_at(applied_);
    log_.erase(log_.begin(), log_.begin() + static_cast<std::ptrdiff_t>(applied_ - snap_index_));
    snap_index_ = applied_;
    snap_term_ = term;
    snap_data_ = sm_ ? sm_->snapshot() : std::string();
    durable_ = last_index();  // the host compacts the log to the snapshot: everything durable
    a.snapshot = Snapshot{snap_index_, snap_term_, snap_data_};
    a.trace("raft.snapshot", {{"index", snap_index_}, {"term", snap_term_}, {"bytes", snap_data_.size()}});
}

void Raft::install_snapshot(Snapshot s, NodeId from, Actions& a) {
    // §7: keep the entries after it if our log holds its last entry (with its term); else
    // our whole log is superseded.
    if (const LogEntry* e = entry(s.index); e && e->term == s.term)
        log_.erase(log_.begin(), log_.begin() + static_cast<std::ptrdiff_t>(s.index - snap_index_));
    else
        log_.clear();
    snap_index_ = s.index;
    snap_term_ = s.term;
    snap_data_ = std::move(s.data);
    commit_ = std::max(commit_, snap_index_);
    applied_ = snap_index_;
    durable_ = last_index();  // the host writes the snapshot and the compacted log durably
    if (sm_) sm_->restore(snap_data_);
    a.snapshot = Snapshot{snap_index_, snap_term_, snap_data_};
    a.trace("raft.snapshot.install",
            {{"from", from}, {"index", snap_index_}, {"term", snap_term_}, {"bytes", snap_data_.size()}});
}

// ---- helpers --------------------------------------------------------------------------------

Actions Raft::finish(Actions a) {
    HardState now_state{term_, vote_};
    if (now_state != persisted_) {
        a.persist = now_state;
        persisted_ = now_state;
    }
    return a;
}

void Raft::reset_election_timer(Time now) {
    std::uniform_int_distribution<int64_t> pick(timeout_min_.count(), timeout_max_.count());
    election_deadline_ = now + Duration(pick(rng_));
}

bool Raft::up_to_date(uint64_t last_term, uint64_t last_index) const {
    // §5.4.1: the later last term wins; with equal last terms, the longer log.
    if (last_term != this->last_term()) return last_term > this->last_term();
    return last_index >= this->last_index();
}

bool Raft::in_lease(Time now) const {
    if (leader_ == 0) return false;
    if (role_ == Role::leader) return true;
    return now - leader_heard_ < timeout_min_;
}

void Raft::set_role(Role r, Actions& a, const char* reason) {
    if (r == role_ && term_ == role_term_) return;
    role_ = r;
    role_term_ = term_;
    Json f = {{"role", to_string(r)}, {"term", term_}};
    if (reason) f["reason"] = reason;
    a.trace("role", std::move(f));
}

void Raft::set_leader(NodeId leader, Actions& a) {
    if (leader == leader_) return;
    leader_ = leader;
    if (leader != 0) a.trace("leader", {{"algo", "raft"}, {"leader", leader}, {"term", term_}, {"backup", 0}});
}

// ---- transitions ----------------------------------------------------------------------------

void Raft::become_follower(uint64_t term, NodeId leader, Time now, Actions& a, const char* reason) {
    if (term > term_) {
        term_ = term;
        vote_ = 0;
        leader_ = 0;
    }
    set_role(Role::follower, a, reason);  // traced on a new term too
    granted_.clear();
    next_heartbeat_ = next_quorum_check_ = Time::max();
    if (leader != 0) {
        set_leader(leader, a);
        leader_heard_ = now;
    } else if (leader_ == self_) {
        leader_ = 0;  // stepping down: we no longer lead this term
    }
    reset_election_timer(now);
}

void Raft::become_pre_candidate(Time now, Actions& a) {
    const char* why = leader_ != 0                       ? "no AppendEntries from the leader within the election timeout"
                      : role_ == Role::pre_candidate ? "pre-vote round ended without a majority"
                                                     : "no leader within the election timeout";
    leader_ = 0;
    role_ = Role::follower;  // every pre-vote round is traced, not only the first
    set_role(Role::pre_candidate, a, why);
    granted_ = {self_};
    reset_election_timer(now);
    if (granted_.size() >= majority()) return become_candidate(now, a, "pre-vote won (single node)");
    for (NodeId v : voters_)
        if (v != self_) a.send(v, PreVote{term_ + 1, last_index(), last_term()});
}

void Raft::become_candidate(Time now, Actions& a, const char* reason) {
    term_ += 1;
    vote_ = self_;  // durable before any REQUEST_VOTE leaves (finish() -> Actions::persist)
    leader_ = 0;
    granted_ = {self_};
    reset_election_timer(now);
    a.trace("election.start", {{"algo", "raft"}, {"term", term_}, {"reason", reason}});
    set_role(Role::candidate, a);
    if (granted_.size() >= majority()) return become_leader(now, a);
    for (NodeId v : voters_)
        if (v != self_) a.send(v, RequestVote{term_, last_index(), last_term()});
}

void Raft::become_leader(Time now, Actions& a) {
    set_role(Role::leader, a);
    set_leader(self_, a);
    granted_.clear();
    election_deadline_ = Time::max();
    for (NodeId v : voters_)
        if (v != self_) {
            last_ack_[v] = now;  // a full period to hear from everyone
            next_[v] = last_index() + 1;
            match_[v] = 0;
            inflight_[v].clear();
            hb_match_[v] = kNotFull;
            snap_offset_[v] = 0;  // a snapshot transfer starts over under a new leadership
            snap_of_[v] = 0;
        }
    next_quorum_check_ = check_quorum_ ? now + heartbeat_ : Time::max();
    // §8: a no-op of its own term, so that entries of earlier terms commit through it.
    append_local(LogEntry{last_index() + 1, term_, {}}, a);
    broadcast_heartbeat(now, a);  // the no-op commits once durable here and on a majority
}

void Raft::broadcast_heartbeat(Time now, Actions& a) {
    // Heartbeats fold into replication: each follower gets what it lacks, or nothing. A
    // follower whose window stayed full for a whole period with no progress lost what was
    // in flight: start again from what it holds.
    for (NodeId v : voters_) {
        if (v == self_) continue;
        bool full = inflight_[v].size() >= kMaxInflight;
        if (full && match_[v] == hb_match_[v]) {  // full at the last heartbeat too, no progress since
            inflight_[v].clear();
            next_[v] = match_[v] + 1;
            full = false;
        }
        hb_match_[v] = full ? match_[v] : kNotFull;
        replicate(v, a);
    }
    next_heartbeat_ = now + heartbeat_;
}

// ---- events ---------------------------------------------------------------------------------

Actions Raft::start(Time now) {
    Actions a;
    role_ = Role::follower;
    role_term_ = term_;
    a.trace("raft.restore", {{"term", term_}, {"vote", vote_}});
    a.trace("role", {{"role", "follower"}, {"term", term_}, {"reason", "start"}});
    reset_election_timer(now);
    return finish(std::move(a));
}

Actions Raft::on_message(NodeId from, const Envelope& env, Time now) {
    Actions a;
    if (!is_voter(from) || from == self_) return a;
    std::visit(
        [&](const auto& m) {
            using T = std::decay_t<decltype(m)>;
            if constexpr (std::is_same_v<T, PreVote> || std::is_same_v<T, PreVoteReply> ||
                          std::is_same_v<T, RequestVote> || std::is_same_v<T, Vote> ||
                          std::is_same_v<T, AppendEntries> || std::is_same_v<T, AppendReply> ||
                          std::is_same_v<T, InstallSnapshot> || std::is_same_v<T, SnapshotReply>)
                handle(from, m, now, a);
        },
        env.body);
    return finish(std::move(a));
}

void Raft::handle(NodeId from, const PreVote& m, Time now, Actions& a) {
    // §9.6: grant only for a later term, an up-to-date log, and when we hear no leader.
    // Neither our term nor our vote changes.
    bool grant = m.term > term_ && up_to_date(m.last_term, m.last_index) && !in_lease(now);
    a.reply(from, PreVoteReply{grant ? m.term : term_, grant});
}

void Raft::handle(NodeId from, const PreVoteReply& m, Time now, Actions& a) {
    if (!m.granted && m.term > term_) return become_follower(m.term, 0, now, a, "higher term in a pre-vote reply");
    if (role_ != Role::pre_candidate || !m.granted || m.term != term_ + 1) return;
    granted_.insert(from);
    if (granted_.size() >= majority()) become_candidate(now, a, "pre-vote won");
}

void Raft::handle(NodeId from, const RequestVote& m, Time now, Actions& a) {
    if (m.term > term_) {
        // §4.2.3: while we still hear a leader, a higher-term request is a disruption.
        if (check_quorum_ && in_lease(now)) return;
        become_follower(m.term, 0, now, a, "higher term in REQUEST_VOTE");
    }
    if (m.term < term_) return a.reply(from, Vote{term_, false});
    bool grant = (vote_ == 0 || vote_ == from) && up_to_date(m.last_term, m.last_index);
    if (grant) {
        vote_ = from;  // durable before the VOTE leaves (finish() -> Actions::persist)
        reset_election_timer(now);
        a.trace("vote", {{"term", term_}, {"candidate", from}});
    }
    a.reply(from, Vote{term_, grant});
}

void Raft::handle(NodeId from, const Vote& m, Time now, Actions& a) {
    if (m.term > term_) return become_follower(m.term, 0, now, a, "higher term in a VOTE");
    if (role_ != Role::candidate || m.term != term_ || !m.granted) return;
    granted_.insert(from);
    if (granted_.size() >= majority()) become_leader(now, a);
}

void Raft::handle(NodeId from, const AppendEntries& m, Time now, Actions& a) {
    if (m.term < term_) return a.reply(from, AppendReply{term_, false, 0});  // a stale leader learns
    if (m.term > term_ || role_ != Role::follower)
        become_follower(m.term, from, now, a, "AppendEntries from the leader");
    set_leader(from, a);
    leader_heard_ = now;
    reset_election_timer(now);
    // Entries up to our snapshot are committed, so they match the leader's: skip them.
    uint64_t prev = m.prev_index;
    size_t skip = 0;
    if (prev < snap_index_) {
        skip = static_cast<size_t>(std::min<uint64_t>(snap_index_ - prev, m.entries.size()));
        prev += skip;
        if (prev < snap_index_) return a.reply(from, AppendReply{term_, true, snap_index_});
    } else if (prev > last_index()) {
        return a.reply(from, AppendReply{term_, false, last_index()});
    } else if (term_at(prev) != m.prev_term) {  // §5.3 consistency check
        return a.reply(from, AppendReply{term_, false, std::min(last_index(), prev - 1)});
    }
    // Append what is new; an entry that conflicts (same index, other term) goes with all
    // that follows it. Entries we already have are kept (a stale, reordered message must
    // not cut what a later one added).
    uint64_t index = prev;
    for (size_t k = skip; k < m.entries.size(); ++k) {
        const WireEntry& e = m.entries[k];
        ++index;
        if (index <= last_index()) {
            if (term_at(index) == e.term) continue;
            if (index <= commit_) return;  // never: a leader never conflicts with what is committed
            log_.resize(index - snap_index_ - 1);
            durable_ = std::min(durable_, index - 1);
            a.log_truncate_from = a.log_truncate_from ? std::min(*a.log_truncate_from, index) : index;
            std::erase_if(a.log_append, [&](const LogEntry& x) { return x.index >= index; });
        }
        append_local(LogEntry{index, e.term, e.data}, a);
    }
    // Up to the last entry this message vouches for (Figure 2), never backwards.
    if (m.commit > commit_) commit_ = std::max(commit_, std::min(m.commit, index));
    apply_committed(a);
    a.reply(from, AppendReply{term_, true, index});  // the host sends it once our log is durable
}

void Raft::handle(NodeId from, const AppendReply& m, Time now, Actions& a) {
    if (m.term > term_) return become_follower(m.term, 0, now, a, "higher term in an APPEND_REPLY");
    if (role_ != Role::leader || m.term != term_) return;
    last_ack_[from] = now;
    if (m.success) {
        if (m.match > last_index()) return;  // not a reply to us
        if (m.match > match_[from]) match_[from] = m.match;
        if (next_[from] <= match_[from]) next_[from] = match_[from] + 1;
        auto& w = inflight_[from];
        while (!w.empty() && w.front() <= match_[from]) w.pop_front();
        advance_commit();
        apply_committed(a);
        if (next_[from] <= last_index() && w.size() < kMaxInflight) replicate(from, a);  // more to send
    } else {
        // A hint below what the follower was known to hold: it lost entries since — its data
        // directory emptied, or a damaged tail cut when it started (the operator's ways back
        // from a broken replica). What we knew of it is void: from nothing, then, or it
        // would be sent from an index it lacks forever, and refuse each time at once.
        if (m.match < match_[from]) match_[from] = 0;
        // Back up to the follower's hint (never below what it is known to hold) and retry.
        next_[from] = std::max<uint64_t>(match_[from] + 1, std::min(next_[from], m.match + 1));
        inflight_[from].clear();  // what was in flight follows a gap: it is resent from here
        replicate(from, a);
    }
}

void Raft::handle(NodeId from, const InstallSnapshot& m, Time now, Actions& a) {
    if (m.term < term_) return a.reply(from, SnapshotReply{term_, m.last_index, 0, false});  // a stale leader learns
    if (m.term > term_ || role_ != Role::follower)
        become_follower(m.term, from, now, a, "INSTALL_SNAPSHOT from the leader");
    set_leader(from, a);
    leader_heard_ = now;
    reset_election_timer(now);
    if (m.last_index <= commit_) {  // we already have all of it
        receiving_ = {};
        return a.reply(from, SnapshotReply{term_, m.last_index, 0, true});
    }
    if (m.offset == 0) {
        receiving_ = Snapshot{m.last_index, m.last_term, {}};
    } else if (receiving_.index != m.last_index || receiving_.term != m.last_term) {
        return a.reply(from, SnapshotReply{term_, m.last_index, 0, false});  // from the start, please
    }
    if (m.offset != receiving_.data.size())  // a lost or repeated chunk: say where we are
        return a.reply(from, SnapshotReply{term_, m.last_index, receiving_.data.size(), false});
    receiving_.data += m.data;
    uint64_t have = receiving_.data.size();
    if (!m.done) return a.reply(from, SnapshotReply{term_, m.last_index, have, false});
    install_snapshot(std::move(receiving_), from, a);
    receiving_ = {};
    a.reply(from, SnapshotReply{term_, snap_index_, have, true});  // sent once durable
}

void Raft::handle(NodeId from, const SnapshotReply& m, Time now, Actions& a) {
    if (m.term > term_) return become_follower(m.term, 0, now, a, "higher term in a SNAPSHOT_REPLY");
    if (role_ != Role::leader || m.term != term_) return;
    last_ack_[from] = now;
    if (m.done) {
        if (m.last_index > last_index()) return;  // not a reply to us
        match_[from] = std::max(match_[from], m.last_index);
        next_[from] = std::max(next_[from], match_[from] + 1);
        inflight_[from].clear();
        advance_commit();
        apply_committed(a);
        if (next_[from] <= last_index()) replicate(from, a);
        return;
    }
    // About the snapshot we are sending: go on from where it is, if that moved (a reply
    // that shows no progress waits for the heartbeat to re-send, so duplicates do not
    // multiply). About an older one: the next heartbeat starts the current one.
    if (m.last_index != snap_index_ || snap_of_[from] != snap_index_ || m.offset == snap_offset_[from]) return;
    snap_offset_[from] = m.offset;
    replicate(from, a);
}

Actions Raft::on_tick(Time now) {
    Actions a;
    if (role_ == Role::leader) {
        if (check_quorum_ && now >= next_quorum_check_) {
            size_t active = 1;
            for (auto& [v, t] : last_ack_)
                if (now - t <= timeout_max_) ++active;
            next_quorum_check_ = now + heartbeat_;
            if (active < majority()) {
                become_follower(term_, 0, now, a, "lost quorum (CheckQuorum)");
                return finish(std::move(a));
            }
        }
        if (now >= next_heartbeat_) broadcast_heartbeat(now, a);
    } else if (now >= election_deadline_) {
        if (pre_vote_)
            become_pre_candidate(now, a);
        else
            become_candidate(now, a, "election timeout");
    }
    return finish(std::move(a));
}

Time Raft::next_deadline() const {
    if (role_ == Role::leader) return std::min(next_heartbeat_, next_quorum_check_);
    return election_deadline_;
}

Json Raft::status() const {
    Json j = {{"commit", commit_},      {"applied", applied_},  {"durable", durable_},
              {"first", first_index()}, {"last", last_index()}, {"snapshot", snap_index_}};
    if (sm_) {
        Json s = sm_->summary();
        if (!s.empty()) j["state"] = std::move(s);
    }
    return j;
}

std::vector<std::string> Raft::check_invariants() const {
    std::vector<std::string> bad;
    auto say = [&](const std::string& s) { bad.push_back("raft " + std::to_string(self_) + ": " + s); };
    if (role_ == Role::leader && (leader_ != self_ || vote_ != self_)) say("leads without having voted for itself");
    if (role_ == Role::candidate && vote_ != self_) say("candidate without its own vote");
    if (leader_ == self_ && role_ != Role::leader) say("names itself leader but is a " + std::string(to_string(role_)));
    if (persisted_ != HardState{term_, vote_}) say("durable state not handed to the host");
    if (role_ == Role::leader && !check_quorum_ && next_quorum_check_ != Time::max())
        say("a quorum check is scheduled with CheckQuorum off");
    if (vote_ != 0 && !is_voter(vote_)) say("voted for a non-voter");
    if (role_ != Role::leader && election_deadline_ == Time::max()) say("no election timer");
    if (applied_ > commit_ || applied_ < snap_index_) say("applied index outside [snapshot, commit]");
    if (commit_ > last_index()) say("commit index beyond the log");
    if (!log_.empty() && (log_.front().index != snap_index_ + 1 || log_.back().index != last_index()))
        say("log does not continue the snapshot");
    if (durable_ > last_index()) say("durable index beyond the log");
    return bad;
}

}  // namespace bus
