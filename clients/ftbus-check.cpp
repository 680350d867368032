// ftbus-check: checks trace files (or a merged stream on stdin) against the trace contract
// and the algorithms' invariants (bus/trace_check.hpp). Exit 0 ok, 1 violation, 2 usage
// error, unreadable file or no events.
#include <fstream>
#include <iostream>

#include "bus/flags.hpp"
#include "bus/trace_check.hpp"

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
    if (auto code = bus::parse_flags(app, argc, argv)) return *code;

    bus::TraceChecker checker({*bus::parse_duration(bound)});
    if (files.empty()) files.push_back("-");
    for (const std::string& f : files) {
        std::ifstream file;
        std::istream* in = &std::cin;
        std::string name = f == "-" ? "stdin" : f;
        if (f != "-") {
            file.open(f);
            if (!file) {
                std::cerr << "ftbus-check: cannot read " << f << "\n";
                return bus::kExitUsage;
            }
            in = &file;
        }
        std::string line;
        size_t n = 0;
        while (std::getline(*in, line)) checker.add_line(line, name + ":" + std::to_string(++n));
    }
    checker.finish();
    if (checker.events() == 0) {
        std::cerr << "ftbus-check: no trace events in the input\n";
        return bus::kExitUsage;
    }
    const auto& fs = checker.findings();
    bus::Json report = checker.report_json();
    std::string elections = elections_line(report);
    if (json) {
        std::cout << report.dump() << "\n";
    } else if (fs.empty()) {
        std::cout << "ok: " << checker.events() << " events from " << checker.emitters()
                  << " emitter incarnations, no violations\n";
        if (!elections.empty()) std::cout << elections << "\n";
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
