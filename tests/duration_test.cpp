#include <catch2/catch.hpp>

#include <algorithm>
#include <iostream>
#include <sstream>

#include "bus/duration.hpp"
#include "bus/flags.hpp"

using namespace bus;
using namespace std::chrono_literals;

TEST_CASE("parse_duration reads every unit", "[unit][duration]") {
    CHECK(parse_duration("250us") == Duration(250));
    CHECK(parse_duration("20ms") == Duration(20'000));
    CHECK(parse_duration("3s") == Duration(3'000'000));
    CHECK(parse_duration("2m") == Duration(120'000'000));
    CHECK(parse_duration("0ms") == Duration(0));
}

TEST_CASE("parse_duration accepts a fractional number", "[unit][duration]") {
    CHECK(parse_duration("1.5s") == Duration(1'500'000));
    CHECK(parse_duration("0.25ms") == Duration(250));
    CHECK(parse_duration("0.5m") == Duration(30'000'000));
    CHECK(parse_duration("1.001s") == Duration(1'001'000));  // not 1000999 from float error
    CHECK(parse_duration("2.5us") == Duration(3));  // rounded to whole microseconds
}

TEST_CASE("parse_duration rejects a bare number", "[unit][duration]") {
    CHECK_FALSE(parse_duration("300").has_value());
    CHECK_FALSE(parse_duration("1.5").has_value());
    CHECK_FALSE(parse_duration("0").has_value());
}

TEST_CASE("parse_duration rejects negative durations", "[unit][duration]") {
    CHECK_FALSE(parse_duration("-5ms").has_value());
    CHECK_FALSE(parse_duration("-0.5s").has_value());
}

TEST_CASE("parse_duration rejects unknown units and malformed text", "[unit][duration]") {
    for (const char* bad : {"5hr", "5sec", "5MS", "5 ms", " 5ms", "5ms ", "ms", "", ".s",
                            "1.2.3s", "1e3ms", "+5ms", "5ms5", "5d"}) {
        INFO("'" << bad << "'");
        CHECK_FALSE(parse_duration(bad).has_value());
    }
}

TEST_CASE("parse_duration rejects values too large to hold", "[unit][duration]") {
    CHECK_FALSE(parse_duration("99999999999999999999s").has_value());
    CHECK_FALSE(parse_duration("1000000000m").has_value());
}

TEST_CASE("parse_duration_range reads a range and a single value", "[unit][duration]") {
    SECTION("a range") {
        auto r = parse_duration_range("150ms-300ms");
        REQUIRE(r.has_value());
        CHECK(r->lo == 150ms);
        CHECK(r->hi == 300ms);
    }
    SECTION("mixed units") {
        auto r = parse_duration_range("500us-1.5s");
        REQUIRE(r.has_value());
        CHECK(r->lo == 500us);
        CHECK(r->hi == 1500ms);
    }
    SECTION("lo equal to hi") {
        auto r = parse_duration_range("200ms-200ms");
        REQUIRE(r.has_value());
        CHECK(r->lo == r->hi);
    }
    SECTION("a single value gives lo == hi") {
        auto r = parse_duration_range("250ms");
        REQUIRE(r.has_value());
        CHECK(r->lo == 250ms);
        CHECK(r->hi == 250ms);
    }
}

TEST_CASE("parse_duration_range rejects lo > hi and malformed ranges", "[unit][duration]") {
    for (const char* bad : {"300ms-150ms", "1s-999ms", "150-300ms", "150ms-300", "-150ms",
                            "150ms-", "-", "", "1s-2s-3s", "300"}) {
        INFO("'" << bad << "'");
        CHECK_FALSE(parse_duration_range(bad).has_value());
    }
}

TEST_CASE("format_duration gives an exact spelling in the largest fitting unit",
          "[unit][duration]") {
    CHECK(format_duration(250us) == "250us");
    CHECK(format_duration(1500000us) == "1.5s");
    CHECK(format_duration(20ms) == "20ms");
    CHECK(format_duration(1s) == "1s");
    CHECK(format_duration(1001ms) == "1.001s");
    CHECK(format_duration(999ms) == "999ms");
    CHECK(format_duration(1234567us) == "1234567us");
    CHECK(format_duration(0us) == "0ms");
    CHECK(format_duration(1us) == "1us");
}

TEST_CASE("format_duration output parses back to the same duration", "[unit][duration]") {
    for (int64_t us : {int64_t{0}, int64_t{1}, int64_t{999}, int64_t{1000}, int64_t{1500},
                       int64_t{20'000}, int64_t{999'999}, int64_t{1'000'000}, int64_t{1'001'000},
                       int64_t{1'500'000}, int64_t{60'000'000}, int64_t{90'000'000},
                       int64_t{123'456'789'012'000}, int64_t{999'999'999'999'999}}) {
        std::string text = format_duration(Duration(us));
        INFO(us << "us -> " << text);
        CHECK(parse_duration(text) == Duration(us));
    }
}

// duration.hpp promises the "shortest exact spelling"; these have a shorter one than the
// implementation produces.
TEST_CASE("format_duration gives the shortest exact spelling", "[unit][duration]") {
    CHECK(format_duration(1500us) == "1.5ms");  // not "1500us"
    CHECK(format_duration(2min) == "2m");       // not "120s"
    CHECK(format_duration(100ms) == "100ms");   // not "0.1s": no fractions of a unit
    CHECK(format_duration(3h) == "3h");         // not "180m"
    CHECK(parse_duration("1h") == Duration(3'600'000'000));
    CHECK(parse_duration("1.5h") == Duration(5'400'000'000));
    CHECK(format_duration(200us) == "200us");   // not "0.2ms"
}

TEST_CASE("to_ms converts to fractional milliseconds", "[unit][duration]") {
    CHECK(to_ms(1500us) == Approx(1.5));
    CHECK(to_ms(2s) == Approx(2000.0));
}

namespace {

/// What CLI11 says of `args` given to an app with the node flags (empty: accepted).
std::string flag_error(std::vector<std::string> args) {
    CLI::App app{"test"};
    CommonFlags f;
    ClockFlags c;
    add_detector_flags(app, f);
    add_raft_flags(app, f);
    add_clock_flags(app, c);
    std::reverse(args.begin(), args.end());  // CLI11 takes them last first
    try {
        app.parse(args);
    } catch (const CLI::ParseError& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("flags: a zero period is refused (it would spin the loop), and a drift that is not a number too",
          "[unit][duration][badinput]") {
    for (const char* flag : {"--heartbeat", "--suspect-after", "--dead-after"}) {
        INFO(flag);
        CHECK_THAT(flag_error({flag, "0ms"}), Catch::Matchers::Contains("must be positive"));
        CHECK(flag_error({flag, "2s"}).empty());
    }
    CHECK(flag_error({"--raft-heartbeat", "0ms"}).empty());  // 0: derived from the election timeout, as in the file
    for (const char* v : {"nan", "-nan", "inf", "1e6", "-80x", ""})
        CHECK_THAT(flag_error({"--drift-ppm", v}), Catch::Matchers::Contains("not a number"));
    CHECK(flag_error({"--drift-ppm", "-80"}).empty());
    CHECK(flag_error({"--drift-ppm", "12.5"}).empty());
}

TEST_CASE("flags: a mistyped flag is named as unknown, not reported as a missing required one", "[unit][duration][badinput]") {
    auto run = [](std::vector<std::string> args) {
        CLI::App app{"test"};
        CommonFlags f;
        add_cluster_flag(app, f);
        add_id_flag(app, f);
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        std::ostringstream err;
        auto* old = std::cerr.rdbuf(err.rdbuf());
        std::optional<int> code = parse_flags(app, static_cast<int>(argv.size()), argv.data());
        std::cerr.rdbuf(old);
        return std::make_pair(code, err.str());
    };
    auto [code, err] = run({"prog", "--bogus"});
    CHECK(code == kExitUsage);
    CHECK_THAT(err, Catch::Matchers::Contains("unknown argument '--bogus'"));
    std::tie(code, err) = run({"prog", "--cluster", "c.toml"});  // only a required one missing
    CHECK(code == kExitUsage);
    CHECK_THAT(err, Catch::Matchers::Contains("--id is required"));
    std::tie(code, err) = run({"prog", "--cluster", "c.toml", "--id", "1"});
    CHECK_FALSE(code.has_value());
}
