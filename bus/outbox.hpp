// Outbox: turns what a state machine asks to send (Outgoing) into the Envelope this node
// puts on the wire — sender, incarnation, per-channel seq and, when the send will be
// traced, the Lamport and vector clocks — and traces what became of it (msg.send or
// msg.unsent). trace_receive() is the other half: fold in a received message's clocks and
// trace msg.recv. NodeHost and SimNetwork both use them, so real and simulated traces
// follow the same rules (docs/TRACE.md, "Clocks").
// Not thread-safe; owned by one loop.
#pragma once

#include <map>
#include <string>

#include "bus/actions.hpp"
#include "bus/trace.hpp"
#include "bus/transport.hpp"

namespace bus {

class Outbox {
public:
    /// `tracer` may be null (nothing traced, no clocks on envelopes).
    Outbox(NodeId self, uint64_t inc, Tracer* tracer) : self_(self), inc_(inc), tracer_(tracer) {}

    /// The envelope for `o`: next seq on its channel, clocks if its msg.send is traced.
    Envelope seal(const Outgoing& o);
    /// Traces the outcome of sending `env` (sealed from `o`): msg.send at the type's level,
    /// or msg.unsent at level msgs or above.
    void record(const Outgoing& o, const Envelope& env, SendResult r);

    /// "req:3", "rep:3", "pub:hb": the channel `seq` counts on.
    static std::string channel(const Outgoing& o);

private:
    NodeId self_;
    uint64_t inc_;
    Tracer* tracer_;
    std::map<std::string, uint64_t> seq_;
};

/// Folds a received message's clocks into `tracer` (if it carries any and its type is
/// traced) and traces msg.recv.
/// `ch`: how it came — "req" (on our ROUTER: the sender's request), "rep" (on our DEALER: a
/// reply) or "pub" (on SUB) — traced as `ch`, as msg.send traces it.
void trace_receive(Tracer& tracer, const Sender& from, const Envelope& env, const char* ch);

}  // namespace bus
