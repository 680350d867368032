// ftbus-berkeley: a Berkeley clock-synchronisation daemon (bus/berkeley.hpp). The nodes of
// the cluster file elect a master with the bully algorithm; the master polls everyone and
// sends each its correction. The clock synchronised is this process's virtual clock
// (--skew, --drift-ppm): no process may set the machine's clock. Traces clock.offset,
// clock.sample, clock.round, clock.adjust.
#include <iostream>

#include "bus/berkeley.hpp"
#include "bus/flags.hpp"
#include "bus/node_host.hpp"

int main(int argc, char** argv) {
    CLI::App app{"ftbus-berkeley: Berkeley clock synchronisation of virtual clocks, master chosen by bully"};
    bus::CommonFlags f;
    bus::ClockFlags cf;
    bus::BerkeleyConfig bc;
    std::string interval, max_dev, max_rtt;
    bus::JoinFlags jf;
    bus::add_membership_flags(app, f, jf);
    bus::add_id_flag(app, f);
    bus::add_trace_flags(app, f);
    bus::add_detector_flags(app, f);
    bus::add_clock_flags(app, cf);
    app.add_option("--interval", interval, "between rounds (default 2s)")->check(bus::positive_duration_check());
    app.add_option("--max-deviation", max_dev, "clocks further than this from the median are left out of the average (default 60s)")
        ->check(bus::duration_check());
    app.add_option("--max-rtt", max_rtt, "readings with a longer round trip are discarded (default 50ms)")
        ->check(bus::duration_check());
    app.add_flag("--broken", bc.broken, "fault injection: a broken clock that ignores every correction");
    if (auto code = bus::parse_flags(app, argc, argv)) return *code;

    return bus::run_program("ftbus-berkeley", [&]() -> int {
        bus::ClusterConfig cfg = bus::load_node_config(f, jf);
        if (!interval.empty()) bc.interval = *bus::parse_duration(interval);
        if (!max_dev.empty()) bc.max_deviation = *bus::parse_duration(max_dev);
        if (!max_rtt.empty()) bc.max_rtt = *bus::parse_duration(max_rtt);
        if (bc.interval <= bc.slew_period) bc.slew_period = bc.interval / 2;  // a slew ends before the next round
        bus::RealClock clock;
        int64_t real_minus_steady = clock.wall_us() - clock.now().count();
        auto algo = std::make_unique<bus::Berkeley>(
            cfg, f.id, bus::VirtualTime(clock.wall_us(), cf.skew(), cf.drift_ppm), real_minus_steady, bc);
        bus::NodeHost host(cfg, f.id, clock, {"berkeley", f.trace, f.level(), nullptr, jf.join}, std::move(algo));
        auto& stop = bus::install_stop_signals();
        return host.run(stop);
    });
}
