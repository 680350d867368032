// ftbus-check: checks trace files (or a merged stream on stdin) against the trace contract
// and the algorithms' invariants (bus/trace_check.hpp). Exit 0 ok, 1 violation, 2 usage
// error, unreadable file or no events.
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <map>
#include <set>
#include <tuple>

#include "bus/flags.hpp"
#include "bus/shiviz.hpp"
#include "bus/trace_check.hpp"
#include "bus/trace_summary.hpp"

namespace {

/// One line on the election checks, from report_json()["elections"]; empty if none ran.
std::string elections_line(const bus::Json& r) {
    const bus::Json& el = r["elections"];
    if (el["algos"].empty()) return "";
    auto violated = [&](const char* check) { return r["violations"].value(check, 0) > 0; };
    std::string algos, parts;
    for (auto& a : el["algos"]) algos += (algos.empty() ? "" : "/") + a.get<std::string>();
    auto part = [&](const std::string& p) { parts += (parts.empty() ? "" : "; ") + p; };
    std::string agreement = el["agreement"].get<std::string>();
    if (agreement == "ok") {
        size_t n = el["live"].size();
        part(std::to_string(n) + (n == 1 ? " live node follows" : " live nodes agree on") + " leader " +
             el["leader"].dump() + " within the bound");
    } else if (agreement == "violated") {
        part("live nodes do not agree on a live leader within the bound [agreement]");
    } else if (agreement != "not applicable") {
        part("agreement " + agreement);
    }
    if (el["raft_terms"].get<size_t>() > 0)
        part(std::to_string(el["raft_terms"].get<size_t>()) + " raft terms, " +
             (violated("raft-leader") ? "some with two leaders [raft-leader]" : "at most one leader each"));
    part(std::to_string(el["terms_checked"].get<size_t>()) + " terms " +
         (violated("term") ? "checked, some decrease [term]" : "never decrease"));
    return "elections: " + algos + ", " + parts;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"ftbus-check: verify ftbus trace files (JSON Lines); exit 0 ok, 1 violation, 2 usage error, "
                 "unreadable file or no events"};
    std::vector<std::string> files;
    bool json = false;
    std::string bound = "5s";
    size_t max_shown = 20;
    app.add_option("files", files, "trace files; none or '-' reads stdin");
    app.add_flag("--json", json, "print one JSON report instead of text");
    app.add_option("--agreement-bound", bound,
                   "bully/ring: all live nodes must follow one live leader within DUR of the last fault")
        ->check(bus::duration_check())
        ->capture_default_str();
    app.add_option("--max-shown", max_shown, "findings listed in the text report")->capture_default_str();
    std::string export_format, max_spread;
    bool summary = false;
    auto* summary_flag = app.add_flag("--summary", summary,
                 "instead of the report, print one JSON summary: messages per type, events per node, "
                 "leaderless intervals, clock spread");
    app.add_option("--max-spread", max_spread,
                   "clocks: after sync (every clock node adjusted once), the spread of clock.offset across "
                   "nodes at any instant must stay within DUR")
        ->check(bus::duration_check());
    app.add_option("--export", export_format,
                   "instead of checking, write the traces as a ShiViz log on stdout (two lines per event; "
                   "hosts node@inc; parse with ShiViz's default regex)")
        ->check(CLI::IsMember({"shiviz"}))
        ->excludes(summary_flag);
    std::vector<std::string> file_paths;
    app.add_option("--file", file_paths,
                   "lock service: a replicated file as found on disk (its name in the traces is the base name); "
                   "every acknowledged append must be in it at its offset, and nothing past the applied ones")
        ->check(CLI::ExistingFile)
        ->allow_extra_args(false);
    if (auto code = bus::parse_flags(app, argc, argv)) return *code;

    bus::TraceChecker checker({*bus::parse_duration(bound)});
    if (files.empty()) files.push_back("-");
    // --export: the events of every file, each host's in seq order, merged by time.
    std::vector<bus::Json> events;
    const bool need_events = !export_format.empty() || summary || !max_spread.empty();
    size_t unparsed = 0;
    bool any_event = false;  // a line that is_trace_event (parsed in text mode until one is seen)
    for (const std::string& f : files) {
        std::ifstream file;
        std::istream* in = &std::cin;
        std::string name = f == "-" ? "stdin" : f;
        if (f != "-") {
            // An ifstream opens a directory and then reads nothing: say so rather than skip it.
            std::error_code ec;
            int err = 0;
            if (std::filesystem::is_directory(f, ec)) {
                err = EISDIR;
            } else {
                errno = 0;
                file.open(f);
                if (!file) err = errno ? errno : EIO;
            }
            if (err) {
                std::cerr << "ftbus-check: cannot read " << f << ": " << std::strerror(err) << "\n";
                return bus::kExitUsage;
            }
            in = &file;
        }
        std::string line;
        size_t n = 0;
        while (std::getline(*in, line)) {
            if (need_events) {
                bus::Json e = bus::Json::parse(line, nullptr, false);
                any_event = any_event || bus::is_trace_event(e);
                if (e.is_object())
                    events.push_back(std::move(e));
                else if (line.find_first_not_of(" \t\r") != std::string::npos)
                    ++unparsed;
            } else if (!any_event) {
                any_event = bus::is_trace_event(bus::Json::parse(line, nullptr, false));
            }
            if (export_format.empty() && !summary) checker.add_line(line, name + ":" + std::to_string(++n));
        }
        if (in->bad()) {
            std::cerr << "ftbus-check: cannot read " << name << ": " << std::strerror(errno ? errno : EIO) << "\n";
            return bus::kExitUsage;
        }
    }
    // Lines that are JSON objects but not trace events (a common field missing or mistyped)
    // are counted in every mode, and input with no usable event at all is exit 2 in every
    // mode: there is nothing to check, summarize or export.
    auto no_usable_events = [](size_t objects) {
        std::cerr << "ftbus-check: no trace events in the input";
        if (objects)
            std::cerr << " (" << objects << " JSON object" << (objects == 1 ? "" : "s")
                      << " without the common fields: t, node, inc, seq, ev)";
        std::cerr << "\n";
        return bus::kExitUsage;
    };
    if (!export_format.empty()) {
        // Each host's events in seq order (the exporter needs that), the hosts merged by time.
        std::map<std::string, std::vector<const bus::Json*>> per_host;
        size_t unusable = 0;
        for (const bus::Json& e : events) {
            if (bus::is_trace_event(e))
                per_host[bus::ShivizExporter::host_of(e)].push_back(&e);
            else
                ++unusable;
        }
        if (per_host.empty()) return no_usable_events(unusable);
        using Head = std::pair<int64_t, std::string>;  // (t of the next event, host)
        std::set<Head> heads;
        std::map<std::string, size_t> next;
        for (auto& [h, evs] : per_host) {
            std::stable_sort(evs.begin(), evs.end(), [](const bus::Json* a, const bus::Json* b) {
                return (*a)["seq"].get<uint64_t>() < (*b)["seq"].get<uint64_t>();
            });
            heads.insert({(*evs[0])["t"].get<int64_t>(), h});
        }
        bus::ShivizExporter ex([](const std::string& s) { std::cout << s; });
        while (!heads.empty()) {
            auto [t, h] = *heads.begin();
            heads.erase(heads.begin());
            auto& evs = per_host[h];
            ex.add(*evs[next[h]]);
            if (++next[h] < evs.size()) heads.insert({(*evs[next[h]])["t"].get<int64_t>(), h});
        }
        unparsed += unusable;
        ex.finish();
        std::cerr << "ftbus-check: exported " << ex.exported() << " events of " << ex.hosts() << " hosts as a ShiViz log";
        if (ex.unmatched()) std::cerr << "; " << ex.unmatched() << " receives without their send exported as local events";
        if (unparsed + ex.skipped()) std::cerr << "; " << unparsed + ex.skipped() << " lines skipped (not trace events)";
        std::cerr << "\nftbus-check: ShiViz regex: " << bus::kShivizRegex << "\n";
        return bus::kExitOk;
    }
    if (summary) {
        bus::Json s = bus::summarize(std::move(events));
        if (s["events"] == 0) return no_usable_events(s["unusable_lines"].get<size_t>());
        s["unparsed_lines"] = unparsed;
        std::cout << s.dump() << "\n";
        return bus::kExitOk;
    }
    checker.finish();
    for (const std::string& path : file_paths) {
        std::ifstream in(path, std::ios::binary);
        std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        checker.check_file(path.substr(path.rfind('/') + 1), content, path);
    }
    if (!max_spread.empty()) {
        if (auto v = bus::check_spread(events, *bus::parse_duration(max_spread))) {
            auto cite = [](const bus::Json& e) {
                return bus::Json{{"node", e["node"]}, {"inc", e["inc"]}, {"seq", e.contains("seq") ? e["seq"] : bus::Json(0)},
                                 {"where", "node " + e["node"].dump() + " clock.offset"}};
            };
            checker.add_finding({"clock-spread",
                                 "clock spread " + std::to_string(v->spread_us) + " us exceeds " + max_spread +
                                     " after sync: node " + v->high["node"].dump() + " vs node " + v->low["node"].dump(),
                                 bus::Json::array({cite(v->low), cite(v->high)})});
        }
    }
    // The checker counts every JSON object as an event (and reports the fields it lacks).
    if (!any_event) return no_usable_events(checker.events());
    const auto& fs = checker.findings();
    bus::Json report = checker.report_json();
    std::string elections = elections_line(report);
    if (json) {
        std::cout << report.dump() << "\n";
    } else if (fs.empty()) {
        std::cout << "ok: " << checker.events() << " events from " << checker.emitters()
                  << " emitter incarnations, no violations\n";
        if (!elections.empty()) std::cout << elections << "\n";
        if (report["lock_entries"].get<size_t>() > 0)
            std::cout << "locks: " << report["lock_entries"].get<size_t>()
                      << " log entries checked: replicas agree, one holder at a time, tokens increase, appends by "
                         "the holder at the file's end, no expiry before the holder's lease ran out\n";
    } else {
        std::cout << fs.size() << " violation(s) in " << checker.events() << " events:\n";
        for (size_t i = 0; i < fs.size() && i < max_shown; ++i) {
            std::cout << "  [" << fs[i].check << "] " << fs[i].message << "\n";
            for (auto& c : fs[i].cites) {
                std::cout << "      at " << c.value("where", std::string("?"));
                if (c.contains("seq")) std::cout << "  (node " << c["node"].dump() << " inc " << c["inc"].dump() << " seq " << c["seq"].dump() << ")";
                std::cout << "\n";
            }
        }
        if (fs.size() > max_shown) std::cout << "  ... and " << fs.size() - max_shown << " more (--json for all)\n";
        if (!elections.empty()) std::cout << elections << "\n";
    }
    return fs.empty() ? bus::kExitOk : bus::kExitFailure;
}
