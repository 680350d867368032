#include "bus/raft_server.hpp"

#include <sstream>

#include "bus/raft_storage.hpp"

namespace bus {

void LogDigest::apply(const LogEntry& e) {
    ++entries_;
    bytes_ += e.data.size();
    std::string chained(reinterpret_cast<const char*>(&crc_), sizeof crc_);
    crc_ = crc32c(chained + e.data);
}

std::string LogDigest::snapshot() const {
    return std::to_string(entries_) + " " + std::to_string(bytes_) + " " + std::to_string(crc_);
}

void LogDigest::restore(const std::string& data) {
    std::istringstream in(data);
    uint64_t e = 0, b = 0, c = 0;
    if (!(in >> e >> b >> c) || c > 0xffffffffu) throw std::invalid_argument("LogDigest: a snapshot that is not one");
    entries_ = e;
    bytes_ = b;
    crc_ = static_cast<uint32_t>(c);
}

RaftServer::RaftServer(std::unique_ptr<Raft> raft, StateMachine* sm) : raft_(std::move(raft)), sm_(sm) {
    raft_->set_state_machine(this);
}

void RaftServer::apply(const LogEntry& e) {
    sm_->apply(e);
    if (!pending_.empty()) applied_.emplace_back(e.index, e.term);
}

Actions RaftServer::on_client(const std::string& route, const Envelope& env, Time now) {
    Actions a;
    const auto* p = std::get_if<Propose>(&env.body);
    if (!p) {  // nothing else is asked of a replicated log: answered, or its sender waits for nothing
        a.reply_client(route, ProposeReply{0, false, 0, raft_->leader(),
                                           std::string("not a PROPOSE: a ") + info(env.type()).name + " message"});
        return a;
    }
    auto refuse = [&](std::string why) {
        a.reply_client(route, ProposeReply{p->req, false, 0, raft_->leader(), std::move(why)});
    };
    if (raft_->role() != Raft::Role::leader) {
        refuse(raft_->leader() ? "not the leader" : "no leader yet");
        return a;
    }
    if (pending_.size() >= kMaxPendingProposals) {
        refuse("busy");
        return a;
    }
    if (p->data.size() > kMaxEntryBytes) {
        refuse("an entry of " + std::to_string(p->data.size()) + " bytes (at most " + std::to_string(kMaxEntryBytes) + ")");
        return a;
    }
    uint64_t index = raft_->propose(p->data, now, a);
    pending_[index] = Pending{route, p->req, raft_->term()};
    return answer(std::move(a));
}

Actions RaftServer::answer(Actions a) {
    for (auto [index, term] : applied_) {
        auto it = pending_.find(index);
        if (it == pending_.end()) continue;
        Pending& w = it->second;
        if (term == w.term)
            a.reply_client(w.route, ProposeReply{w.req, true, index, raft_->leader(), ""});
        else
            a.reply_client(w.route, ProposeReply{w.req, false, 0, raft_->leader(), "overwritten by a new leader's entry"});
        pending_.erase(it);
    }
    applied_.clear();
    if (raft_->role() != Raft::Role::leader && !pending_.empty()) {
        for (auto& [index, w] : pending_)
            a.reply_client(w.route, ProposeReply{w.req, false, 0, raft_->leader(), "leadership lost: the entry may still commit"});
        pending_.clear();
    }
    return a;
}

}  // namespace bus
