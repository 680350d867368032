#include <catch2/catch.hpp>

#include "bus/clock.hpp"

using namespace bus;
using namespace std::chrono_literals;

namespace {
constexpr int64_t kWall0 = 1'700'000'000'000'000;  // FakeClock's default wall start
}

TEST_CASE("FakeClock moves only when told, steady and wall time together", "[unit][clock]") {
    FakeClock c;
    CHECK(c.now() == Time(0));
    CHECK(c.wall_us() == kWall0);
    CHECK(c.now() == Time(0));  // reading does not advance it

    c.advance(1500us);
    CHECK(c.now() == Time(1500));
    CHECK(c.wall_us() == kWall0 + 1500);

    c.set(Time(10s));
    CHECK(c.now() == Time(10s));
    CHECK(c.wall_us() == kWall0 + 10'000'000);
}

TEST_CASE("FakeClock's wall start is independent of its steady start", "[unit][clock]") {
    FakeClock c(Time(5s), 42'000'000);
    CHECK(c.now() == Time(5s));
    CHECK(c.wall_us() == 42'000'000);
    c.advance(1s);
    CHECK(c.wall_us() == 43'000'000);
}

TEST_CASE("a VirtualClock starts at its skew", "[unit][clock]") {
    FakeClock base;
    VirtualClock v(base, 250ms, 0.0);
    CHECK(v.wall_us() == kWall0 + 250'000);
    CHECK(v.offset_us() == 250'000);
    base.advance(1h);
    CHECK(v.offset_us() == 250'000);  // no drift: the offset stays

    VirtualClock behind(base, -3s, 0.0);
    CHECK(behind.offset_us() == -3'000'000);
}

TEST_CASE("a VirtualClock drifts by its ppm over time", "[unit][clock]") {
    FakeClock base;
    SECTION("+100ppm for 10s gains 1000us") {
        VirtualClock v(base, 0us, 100.0);
        CHECK(v.rate_ppm() == Approx(100.0));
        base.advance(10s);
        CHECK(v.offset_us() == 1000);
        CHECK(v.wall_us() == base.wall_us() + 1000);
        base.advance(10s);
        CHECK(v.offset_us() == 2000);
    }
    SECTION("-50ppm for 10s loses 500us, on top of the skew") {
        VirtualClock v(base, 20ms, -50.0);
        base.advance(10s);
        CHECK(v.offset_us() == 20'000 - 500);
    }
    SECTION("drift is measured from construction, not from the base clock's start") {
        base.advance(100s);
        VirtualClock v(base, 0us, 100.0);
        CHECK(v.offset_us() == 0);
        base.advance(1s);
        CHECK(v.offset_us() == 100);
    }
}

TEST_CASE("VirtualClock::step jumps the clock once and keeps the drift", "[unit][clock]") {
    FakeClock base;
    VirtualClock v(base, 0us, 100.0);
    base.advance(10s);
    REQUIRE(v.offset_us() == 1000);
    v.step(-1000us);
    CHECK(v.offset_us() == 0);
    base.advance(10s);
    CHECK(v.offset_us() == 1000);  // drift continues from the step
    v.step(5ms);
    CHECK(v.offset_us() == 6000);
    CHECK(v.rate_ppm() == Approx(100.0));
}

TEST_CASE("VirtualClock::adjust_rate changes the rate from now on only", "[unit][clock]") {
    FakeClock base;
    VirtualClock v(base, 0us, 100.0);
    base.advance(10s);
    REQUIRE(v.offset_us() == 1000);

    SECTION("cancelling the drift freezes the offset") {
        v.adjust_rate(-100.0);
        CHECK(v.rate_ppm() == Approx(0.0));
        CHECK(v.offset_us() == 1000);  // what was gained stays
        base.advance(10s);
        CHECK(v.offset_us() == 1000);
    }
    SECTION("over-correcting runs it back") {
        v.adjust_rate(-200.0);
        CHECK(v.rate_ppm() == Approx(-100.0));
        base.advance(5s);
        CHECK(v.offset_us() == 500);
    }
    SECTION("corrections add up") {
        v.adjust_rate(-30.0);
        v.adjust_rate(-20.0);
        CHECK(v.rate_ppm() == Approx(50.0));
        base.advance(10s);
        CHECK(v.offset_us() == 1500);
    }
}

TEST_CASE("a VirtualClock never sets its base clock", "[unit][clock]") {
    FakeClock base;
    VirtualClock v(base, 1s, 500.0);
    v.step(10s);
    v.adjust_rate(1000.0);
    CHECK(base.now() == Time(0));
    CHECK(base.wall_us() == kWall0);
}

TEST_CASE("RealClock's steady time does not go backwards", "[unit][clock]") {
    RealClock c;
    Time a = c.now();
    Time b = c.now();
    CHECK(b >= a);
    CHECK(c.wall_us() > kWall0);  // after November 2023
}

TEST_CASE("VirtualTime::slew spreads a correction evenly over its period", "[unit][clock]") {
    constexpr int64_t t0 = 1'700'000'000'000'000;
    VirtualTime v(t0, 0us, 0.0);
    v.slew(t0, 10ms, 1s);
    CHECK(v.slewing(t0 + 1));
    CHECK(v.offset_us(t0) == 0);
    CHECK(v.offset_us(t0 + 500'000) == 5000);  // half way: half of it
    CHECK(v.offset_us(t0 + 1'000'000) == 10'000);
    CHECK(v.offset_us(t0 + 5'000'000) == 10'000);  // done: it stays
    CHECK_FALSE(v.slewing(t0 + 1'000'000));
    SECTION("a new slew replaces the pending one: what was not yet applied is dropped") {
        VirtualTime w(t0, 0us, 0.0);
        w.slew(t0, 10ms, 1s);
        w.slew(t0 + 500'000, -2ms, 1s);  // measured at +5 ms: wants +3 ms in all
        CHECK(w.offset_us(t0 + 500'000) == 5000);
        CHECK(w.offset_us(t0 + 1'500'000) == 3000);
        CHECK(w.offset_us(t0 + 9'000'000) == 3000);
    }
    SECTION("a step cancels a pending slew") {
        VirtualTime w(t0, 0us, 0.0);
        w.slew(t0, 10ms, 1s);
        w.step(t0 + 200'000, -2ms);
        CHECK(w.offset_us(t0 + 200'000) == 0);  // 2 ms slewed, then -2 ms
        CHECK(w.offset_us(t0 + 900'000) == 0);
    }
    SECTION("a rate correction during a slew keeps the slew going") {
        VirtualTime w(t0, 0us, 100.0);  // +100 ppm drift
        w.slew(t0, 10ms, 1s);
        w.adjust_rate(t0 + 500'000, -100.0);  // drift cancelled half way
        CHECK(w.offset_us(t0 + 500'000) == 5000 + 50);
        CHECK(w.offset_us(t0 + 2'000'000) == 10'000 + 50);
    }
    SECTION("a slew over no time is a step") {
        VirtualTime w(t0, 0us, 0.0);
        w.slew(t0, 7ms, 0us);
        CHECK(w.offset_us(t0) == 7000);
    }
}

TEST_CASE("VirtualClock::slew goes through its base clock's time", "[unit][clock]") {
    FakeClock base;
    VirtualClock v(base, 1s, 0.0);
    v.slew(-1s, 2s);
    base.advance(1s);
    CHECK(v.offset_us() == 500'000);
    base.advance(1s);
    CHECK(v.offset_us() == 0);
}
