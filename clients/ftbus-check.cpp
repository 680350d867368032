// ftbus-check: checks trace files (or a merged stream on stdin) against the trace contract
// and the algorithms' invariants. Exit 0 ok, 1 violation, 2 unreadable.
#include <fstream>
#include <iostream>

#include "bus/flags.hpp"
#include "bus/trace_check.hpp"

int main(int argc, char** argv) {
    CLI::App app{"ftbus-check: verify ftbus trace files (JSON Lines); exit 0 ok, 1 violation, 2 unreadable"};
    std::vector<std::string> files;
    bool json = false;
    std::string bound = "5s";
    size_t max_shown = 20;
    app.add_option("files", files, "trace files; none or '-' reads stdin");
    app.add_flag("--json", json, "print one JSON report instead of text");
    app.add_option("--bound", bound, "bully/ring: agreement must follow the last fault within DUR")
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
    if (json) {
        std::cout << checker.report_json().dump() << "\n";
    } else if (fs.empty()) {
        std::cout << "ok: " << checker.events() << " events from " << checker.emitters()
                  << " emitter incarnations, no violations\n";
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
    }
    return fs.empty() ? bus::kExitOk : bus::kExitFailure;
}
