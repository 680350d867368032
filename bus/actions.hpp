// What a state machine asks its host to do: messages to send and events to trace. A plain
// value; the host (NodeHost, or the simulator in tests) carries it out.
#pragma once

#include <string>
#include <vector>

#include "bus/protocol.hpp"
#include "bus/trace.hpp"

namespace bus {

struct Outgoing {
    enum class Route {
        request,  ///< to `to`, over our DEALER to its ROUTER
        reply,    ///< to `to`, over our ROUTER back to its DEALER
        publish,  ///< to everyone, on PUB topic `topic`
    };
    Route route = Route::request;
    NodeId to = 0;
    std::string topic;
    Body body;
};

struct TraceEvent {
    std::string ev;
    Json fields = Json::object();
    TraceLevel level = TraceLevel::state;
};

struct Actions {
    std::vector<Outgoing> out;
    std::vector<TraceEvent> events;

    void send(NodeId to, Body b) { out.push_back({Outgoing::Route::request, to, {}, std::move(b)}); }
    void reply(NodeId to, Body b) { out.push_back({Outgoing::Route::reply, to, {}, std::move(b)}); }
    void publish(std::string topic, Body b) {
        out.push_back({Outgoing::Route::publish, 0, std::move(topic), std::move(b)});
    }
    void trace(std::string ev, Json fields, TraceLevel l = TraceLevel::state) {
        events.push_back({std::move(ev), std::move(fields), l});
    }
    void append(Actions&& other) {
        for (auto& o : other.out) out.push_back(std::move(o));
        for (auto& e : other.events) events.push_back(std::move(e));
    }
};

}  // namespace bus
