#include "bus/sim_network.hpp"

#include <algorithm>

namespace bus {

SimNetwork::SimNetwork(ClusterConfig cfg, AlgorithmFactory make, SimOptions opts)
    : cfg_(std::move(cfg)), make_(std::move(make)), opts_(opts), rng_(opts.seed), disk_rng_(opts.seed ^ 0x5eed) {
    if (opts_.trace) {
        ctl_ = std::make_unique<Tracer>(clock_, Json("ctl"), static_cast<uint64_t>(clock_.wall_us()),
                                        TraceLevel::state);
        ctl_->add_sink([this](const std::string& l) { lines_.push_back(l); });
    }
}

SimNetwork::~SimNetwork() = default;

std::vector<NodeId> SimNetwork::ids() const {
    std::vector<NodeId> v;
    for (auto& n : cfg_.nodes) v.push_back(n.id);
    for (auto& [id, spec] : joiners_) v.push_back(id);
    std::sort(v.begin(), v.end());
    return v;
}

ClusterConfig SimNetwork::config_of(NodeId id) const {
    auto j = joiners_.find(id);
    if (j == joiners_.end()) return cfg_;
    ClusterConfig c = cfg_;
    c.nodes = {j->second};
    return c;
}

std::string SimNetwork::endpoint_of(NodeId id) const {
    if (const NodeSpec* n = cfg_.find(id)) return n->endpoint(n->peer);
    auto j = joiners_.find(id);
    return j == joiners_.end() ? std::string() : j->second.endpoint(j->second.peer);
}

SimNetwork::Node* SimNetwork::running(NodeId id) {
    auto it = nodes_.find(id);
    return it == nodes_.end() || !it->second.core ? nullptr : &it->second;
}

const SimNetwork::Node* SimNetwork::running(NodeId id) const {
    auto it = nodes_.find(id);
    return it == nodes_.end() || !it->second.core ? nullptr : &it->second;
}

bool SimNetwork::is_running(NodeId id) const { return running(id) != nullptr; }
bool SimNetwork::is_up(NodeId id) const {
    const Node* n = running(id);
    return n && !n->paused;
}

Algorithm* SimNetwork::algorithm(NodeId id) const {
    const Node* n = running(id);
    return n ? n->core->algorithm() : nullptr;
}

const NodeCore* SimNetwork::core(NodeId id) const {
    const Node* n = running(id);
    return n ? n->core.get() : nullptr;
}

uint64_t SimNetwork::inc(NodeId id) const {
    auto it = nodes_.find(id);
    return it == nodes_.end() ? 0 : it->second.inc;
}

void SimNetwork::fault(const std::string& action, NodeId target) {
    if (ctl_) ctl_->emit("fault", {{"action", action}, {"target", target}, {"pid", 0}});
}

// ---- nodes ----------------------------------------------------------------------------------

void SimNetwork::start(NodeId id) {
    if (!cfg_.find(id) && !joiners_.count(id)) throw std::invalid_argument("SimNetwork: no node " + std::to_string(id));
    bool restart = nodes_.count(id) != 0;
    if (running(id)) crash(id);
    Node& n = nodes_[id];
    n = Node{};
    // A new incarnation: the start time in µs, as real nodes use, made unique per node.
    uint64_t inc = static_cast<uint64_t>(clock_.wall_us());
    n.inc = std::max(inc, inc_seen_[id] + 1);
    inc_seen_[id] = n.inc;
    if (opts_.trace) {
        n.tracer = std::make_unique<Tracer>(clock_, Json(id), n.inc, opts_.trace_level, id);
        n.tracer->add_sink([this](const std::string& l) { lines_.push_back(l); });
    }
    n.outbox = std::make_unique<Outbox>(id, n.inc, n.tracer.get());
    std::seed_seq seq{opts_.seed, static_cast<uint64_t>(id), n.inc};
    std::mt19937_64 algo_rng(seq);
    bool joiner = joiners_.count(id) != 0;
    n.core = std::make_unique<NodeCore>(joiner ? config_of(id) : cfg_, id,
                                        make_ ? make_(id, n.inc, disk(id), algo_rng) : nullptr, now(),
                                        joiner ? endpoint_of(join_via_.at(id)) : std::string());
    if (restart) fault("restart", id);
    if (n.tracer) {
        Algorithm* a = n.core->algorithm();
        n.tracer->emit("node.start", {{"role", "sim"}, {"algo", a ? a->name() : "none"}, {"pid", 0}});
    }
    carry_out(id, n.core->start(now()));
}

void SimNetwork::start_all() {
    for (NodeId id : ids()) start(id);
}

void SimNetwork::join(NodeId id, NodeId via, int64_t priority) {
    if (cfg_.find(id)) throw std::invalid_argument("SimNetwork: node " + std::to_string(id) + " is in the cluster file");
    NodeSpec spec;
    spec.id = id;
    spec.priority = priority;
    spec.host = "sim";
    spec.pub = static_cast<uint16_t>(20000 + 2 * id);
    spec.peer = static_cast<uint16_t>(20001 + 2 * id);
    joiners_[id] = spec;
    join_via_[id] = via;
    start(id);
}

bool SimNetwork::act(NodeId id, const std::function<void(Algorithm&, Time, Actions&)>& f) {
    Node* n = running(id);
    if (!n || n->paused || !n->core->algorithm()) return false;
    Actions a;
    f(*n->core->algorithm(), now(), a);
    carry_out(id, std::move(a));
    return true;
}

bool SimNetwork::client_request(NodeId id, const std::string& route, const Envelope& env) {
    Node* n = running(id);
    if (!n || n->paused) return false;
    if (n->tracer) trace_receive(*n->tracer, env.from, env, "req");
    carry_out(id, n->core->on_client(route, env, now()));
    return true;
}

void SimNetwork::leave(NodeId id) {
    Node* n = running(id);
    if (!n || n->paused) return;
    fault("leave", id);
    carry_out(id, n->core->leave(now()));
    end_process(id);  // what it sent is on its way; the process is gone
}

void SimNetwork::end_process(NodeId id) {
    Node& n = nodes_.at(id);
    n.core.reset();
    n.outbox.reset();
    n.tracer.reset();
    n.held.clear();
    n.unsynced_sends.clear();
    n.sync_done_while_paused = false;
    n.paused = false;
    // The disk keeps what was synced, and maybe some of what was not (a prefix).
    if (auto it = disks_.find(id); it != disks_.end()) {
        Disk& d = it->second;
        uint64_t unsynced = d.written.size() - d.synced_len;
        uint64_t keep = d.synced_len + (unsynced ? disk_rng_() % (unsynced + 1) : 0);
        d.written.resize(keep);
        d.synced_len = keep;
        d.synced_seq = d.write_seq;
        d.syncing = false;
    }
}

void SimNetwork::crash(NodeId id) {
    Node* n = running(id);
    if (!n) return;
    fault("kill", id);
    end_process(id);
}

void SimNetwork::wipe_disk(NodeId id) {
    if (running(id)) throw std::logic_error("SimNetwork: wipe_disk of a running node");
    fault("wipe", id);
    disks_.erase(id);
}

void SimNetwork::cut_log(NodeId id, size_t keep) {
    if (running(id)) throw std::logic_error("SimNetwork: cut_log of a running node");
    auto it = disks_.find(id);
    if (it == disks_.end()) return;
    fault("cut", id);
    Disk& d = it->second;
    d.written.resize(std::min(keep, d.written.size()));
    d.synced_len = d.written.size();
}

void SimNetwork::pause(NodeId id) {
    Node* n = running(id);
    if (!n || n->paused) return;
    fault("pause", id);
    n->paused = true;
    n->paused_at = now();
    n->deadline_at_pause = n->core->next_deadline();
}

void SimNetwork::resume(NodeId id) {
    Node* n = running(id);
    if (!n || !n->paused) return;
    fault("resume", id);
    n->paused = false;
    // As the real loop (StallWatch): the poll it was in would have returned at its next
    // deadline (at most 1 s later); only an overrun beyond suspect_after is a stall. Then it
    // reads all queued input, then runs its timers (on later steps).
    Duration poll = std::clamp(n->deadline_at_pause - n->paused_at, Duration(0), Duration(std::chrono::seconds(1)));
    Duration overrun = (now() - n->paused_at) - poll;
    if (overrun > cfg_.tunables.suspect_after) {
        if (n->tracer) n->tracer->emit("node.stall", {{"stalled_ms", to_ms(overrun)}});
        carry_out(id, n->core->on_stall(now()));
    }
    if (n->sync_done_while_paused) {
        n->sync_done_while_paused = false;
        complete_sync(id);
    }
    auto held = std::move(n->held);
    n->held.clear();
    for (auto& h : held) deliver(h.from, id, h.frame, h.ch);
}

// ---- links ----------------------------------------------------------------------------------

void SimNetwork::cut(NodeId a, NodeId b) {
    cuts_.insert({a, b});
    cuts_.insert({b, a});
}

void SimNetwork::cut_one_way(NodeId from, NodeId to) { cuts_.insert({from, to}); }

void SimNetwork::isolate(NodeId id) {
    fault("partition", id);
    for (NodeId other : ids())
        if (other != id) cut(id, other);
}

void SimNetwork::partition(const std::vector<std::vector<NodeId>>& groups) {
    std::map<NodeId, size_t> group_of;
    for (size_t g = 0; g < groups.size(); ++g)
        for (NodeId id : groups[g]) group_of[id] = g;
    auto g = [&](NodeId id) { return group_of.count(id) ? group_of[id] : groups.size(); };
    for (NodeId a : ids())
        for (NodeId b : ids())
            if (a != b && g(a) != g(b)) cuts_.insert({a, b});
    if (ctl_) {
        Json gs = Json::array();
        for (auto& grp : groups) gs.push_back(grp);
        ctl_->emit("fault", {{"action", "partition"}, {"target", 0}, {"pid", 0}, {"groups", gs}});
    }
}

void SimNetwork::heal() {
    cuts_.clear();
    if (ctl_) ctl_->emit("fault", {{"action", "heal"}, {"target", 0}, {"pid", 0}});
}

std::vector<NodeId> SimNetwork::component(NodeId id) const {
    std::vector<NodeId> out;
    if (!is_up(id)) return out;
    std::set<NodeId> seen{id};
    std::vector<NodeId> todo{id};
    while (!todo.empty()) {
        NodeId a = todo.back();
        todo.pop_back();
        out.push_back(a);
        for (NodeId b : ids())
            if (!seen.count(b) && is_up(b) && link_open(a, b) && link_open(b, a)) {
                seen.insert(b);
                todo.push_back(b);
            }
    }
    std::sort(out.begin(), out.end());
    return out;
}

// ---- messages -------------------------------------------------------------------------------

void SimNetwork::carry_out(NodeId id, Actions&& a) {
    Node* n = running(id);
    if (!n) return;
    Disk& d = disks_[id];
    if (a.persist) d.state = *a.persist;  // written and synced before anything is sent
    auto all_synced = [&] {  // as RaftLog: truncation and compaction sync everything
        d.synced_len = d.written.size();
        d.synced_seq = d.write_seq;
    };
    if (a.log_truncate_from) {
        uint64_t t = *a.log_truncate_from;
        std::erase_if(d.written, [&](const LogEntry& e) { return e.index >= t; });
        ++d.write_seq;
        all_synced();
    }
    for (auto& e : a.log_append) {
        if (!d.written.empty() && e.index != d.written.back().index + 1)
            throw std::logic_error("SimNetwork: node " + std::to_string(id) + " appended index " +
                                   std::to_string(e.index) + " after " + std::to_string(d.written.back().index));
        d.written.push_back(e);
        ++d.write_seq;
        ++log_writes_;
    }
    if (a.snapshot) {  // as NodeHost: the snapshot, then the log compacted to it
        const Snapshot& sn = *a.snapshot;
        auto at = std::find_if(d.written.begin(), d.written.end(), [&](const LogEntry& e) { return e.index == sn.index; });
        bool continues = (at != d.written.end() && at->term == sn.term) ||
                         (!d.written.empty() && d.written.front().index == sn.index + 1);
        if (continues)
            std::erase_if(d.written, [&](const LogEntry& e) { return e.index <= sn.index; });
        else
            d.written.clear();
        d.snapshot = sn;
        ++d.write_seq;
        all_synced();
    }
    if (n->tracer)
        for (auto& e : a.events) n->tracer->emit(e.ev, std::move(e.fields), e.level);
    for (auto& o : a.out) {
        // As NodeHost: what is not before_sync waits for the fsync of every write so far.
        if (!o.before_sync && (d.synced_seq < d.write_seq || !n->unsynced_sends.empty())) {
            n->unsynced_sends.emplace_back(d.write_seq, std::move(o));
            continue;
        }
        Envelope env = n->outbox->seal(o);
        if (send_observer_) send_observer_(id, o, env);
        ++sent_[info(env.type()).name];
        std::string frame = encode(env);
        if (o.route == Outgoing::Route::client) {  // to a test's client, at once
            n->outbox->record(o, env, client_sink_ ? SendResult::sent : SendResult::unroutable);
            if (client_sink_) client_sink_(id, o.topic, env);
            continue;
        }
        Outgoing routed = o;
        if (o.route == Outgoing::Route::join) {  // to whichever node listens at that endpoint
            routed.route = Outgoing::Route::request;
            routed.to = 0;
            for (NodeId other : ids())
                if (endpoint_of(other) == o.topic) routed.to = other;
        }
        // As with `immediate` DEALERs: a request or reply to a node that is not running is
        // refused at once; anything else is "sent", whatever becomes of it on the way.
        bool refused = routed.route != Outgoing::Route::publish && !is_running(routed.to);
        n->outbox->record(o, env, refused ? SendResult::would_block : SendResult::sent);
        if (!refused) transmit(id, routed, frame);
    }
    maybe_sync(id);
}

void SimNetwork::maybe_sync(NodeId id) {
    Disk& d = disks_[id];
    Node* n = running(id);
    if (!n || d.syncing || d.synced_seq == d.write_seq) return;
    d.syncing = true;
    d.sync_seq = d.write_seq;
    d.sync_len = d.written.size();
    std::uniform_int_distribution<int64_t> took(opts_.min_fsync.count(), opts_.max_fsync.count());
    queue_.push(Delivery{now() + Duration(took(disk_rng_)), order_++, id, id, n->inc, {}, nullptr});
}

void SimNetwork::complete_sync(NodeId id) {
    Node* n = running(id);
    Disk& d = disks_[id];
    if (!n || !d.syncing) return;
    d.syncing = false;
    ++fsyncs_;
    if (d.synced_seq < d.sync_seq) {  // (a truncation or snapshot may have synced it all already)
        d.synced_seq = d.sync_seq;
        d.synced_len = std::min<uint64_t>(d.sync_len, d.written.size());
    }
    uint64_t durable = d.synced_len ? d.written[d.synced_len - 1].index : d.snapshot.index;
    carry_out(id, n->core->on_log_durable(durable, now()));
    // Release, in order, the sends whose writes are now durable.
    std::vector<Outgoing> ready;
    while (!n->unsynced_sends.empty() && n->unsynced_sends.front().first <= d.synced_seq) {
        ready.push_back(std::move(n->unsynced_sends.front().second));
        n->unsynced_sends.pop_front();
    }
    if (!ready.empty()) {
        Actions a;
        a.out = std::move(ready);
        for (auto& o : a.out) o.before_sync = true;  // their fsync is done: out they go
        carry_out(id, std::move(a));
    }
    maybe_sync(id);
}

void SimNetwork::transmit(NodeId from, const Outgoing& o, const std::string& frame) {
    std::vector<NodeId> to;
    if (o.route == Outgoing::Route::publish) {
        for (NodeId id : ids())
            if (id != from) to.push_back(id);
    } else {
        to.push_back(o.to);
    }
    std::uniform_int_distribution<int64_t> delay(opts_.min_delay.count(), opts_.max_delay.count());
    std::uniform_real_distribution<double> coin(0.0, 1.0);
    for (NodeId d : to) {
        const Node* dn = running(d);
        if (!dn || !link_open(from, d)) continue;
        if (opts_.drop > 0 && coin(rng_) < opts_.drop) continue;
        int copies = opts_.duplicate > 0 && coin(rng_) < opts_.duplicate ? 2 : 1;
        for (int c = 0; c < copies; ++c) {
            // FIFO per channel, as over one TCP connection.
            std::string channel = std::to_string(from) + ">" + std::to_string(d) + ":" +
                                  (o.route == Outgoing::Route::publish ? "pub" : o.route == Outgoing::Route::request ? "req" : "rep");
            Time at = now() + Duration(delay(rng_));
            Time& last = fifo_[channel];
            at = std::max(at, last);
            last = at;
            const char* ch = o.route == Outgoing::Route::publish ? "pub" : o.route == Outgoing::Route::reply ? "rep" : "req";
            queue_.push(Delivery{at, order_++, from, d, dn->inc, frame, ch});
        }
    }
}

void SimNetwork::deliver(NodeId from, NodeId to, const std::string& frame, const char* ch) {
    Node* n = running(to);
    if (!n) return;
    if (n->paused) {
        n->held.push_back({from, frame, ch});
        return;
    }
    DecodeResult d = decode(frame);
    if (!d.env) throw std::logic_error("SimNetwork: a node sent an undecodable frame: " + d.error);
    // As the host: a message from a node that is not a member (and not asking to be one) is
    // dropped; in a real process its SUB would not even be connected to that node.
    if (!n->core->accepts(from, d.env->type())) {
        ++rejected_;
        return;
    }
    if (n->tracer) trace_receive(*n->tracer, from, *d.env, ch);
    carry_out(to, n->core->on_message(from, *d.env, now()));
    // As the host: a joiner whose JOIN was refused stops (exit 1).
    if (Node* m = running(to); m && !m->core->refused().empty()) {
        if (m->tracer) m->tracer->emit("node.stop", {{"reason", "join refused: " + m->core->refused()}});
        end_process(to);
    }
}

// ---- time -----------------------------------------------------------------------------------

bool SimNetwork::step() {
    // The earliest tick of a node that is up.
    NodeId tick_node = 0;
    Time tick_at = Time::max();
    for (auto& [id, n] : nodes_) {
        if (!n.core || n.paused) continue;
        Time t = n.core->next_deadline();
        if (t < tick_at) tick_at = t, tick_node = id;
    }
    bool have_msg = !queue_.empty();
    if (!have_msg && tick_node == 0) return false;
    ++steps_;
    // Input before timers at the same instant, as in the real loop.
    if (have_msg && queue_.top().at <= tick_at) {
        Delivery dv = queue_.top();
        queue_.pop();
        if (dv.at > now()) clock_.set(dv.at);
        Node* n = running(dv.to);
        if (!dv.ch) {  // an fsync completes (a paused process sees it when it resumes)
            if (n && n->inc == dv.to_inc) {
                if (n->paused)
                    n->sync_done_while_paused = true;
                else
                    complete_sync(dv.to);
            }
        } else if (n && n->inc == dv.to_inc && link_open(dv.from, dv.to)) {
            deliver(dv.from, dv.to, dv.frame, dv.ch);
        }
    } else {
        if (tick_at > now()) clock_.set(tick_at);
        carry_out(tick_node, running(tick_node)->core->on_tick(now()));
        // A node whose deadline stays in the past after its tick would make a real loop
        // spin (poll timeout 0 forever): fail loudly rather than hang.
        spins_ = now() == spin_at_ ? spins_ + 1 : 0;
        spin_at_ = now();
        if (spins_ > 10'000)
            throw std::logic_error("SimNetwork: node " + std::to_string(tick_node) +
                                   " keeps asking for a tick at the same instant (it would spin)");
    }
    if (observer_) observer_();
    return true;
}

void SimNetwork::run_until(Time t) {
    for (;;) {
        Time next = queue_.empty() ? Time::max() : queue_.top().at;
        for (auto& [id, n] : nodes_)
            if (n.core && !n.paused) next = std::min(next, n.core->next_deadline());
        if (next > t) break;
        step();
    }
    if (t > now()) clock_.set(t);
}

std::vector<std::string> SimNetwork::check_invariants() const {
    std::vector<std::string> bad;
    for (auto& [id, n] : nodes_) {
        if (!n.core) continue;
        for (auto& v : n.core->check_invariants()) bad.push_back("node " + std::to_string(id) + ": " + v);
        if (Algorithm* a = n.core->algorithm(); a && n.core->joined())  // a joiner's starts once welcomed
            for (auto& v : a->check_invariants()) bad.push_back(v);
    }
    return bad;
}

}  // namespace bus
