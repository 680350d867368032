#include "harness.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <netinet/in.h>
#include <random>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace test {

namespace {

bool port_free(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

}  // namespace

int free_port_base(int span) {
    std::random_device rd;  // test plumbing, not an algorithm: a fresh range each run
    std::mt19937 rng(rd());
    std::uniform_int_distribution<int> pick(12000, 30000 - span);
    for (int attempt = 0; attempt < 200; ++attempt) {
        int base = pick(rng) / 10 * 10;
        bool ok = true;
        for (int p = base; p < base + span && ok; ++p) ok = port_free(p);
        if (ok) return base;
    }
    throw std::runtime_error("no free port range found");
}

int run_command(const std::string& cmd, std::string* out) {
    if (out) out->clear();
    FILE* f = ::popen(cmd.c_str(), "r");
    if (!f) return -1;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        if (out) out->append(buf, n);
    int st = ::pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Cluster::Cluster(int n, const std::string& gen_args) {
    char tmpl[] = "/tmp/ftbus-it-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    base_ = free_port_base(10 * n);
    cluster_file_ = dir_ + "/cluster.toml";
    std::string cmd = std::string(FTBUS_SOURCE_DIR) + "/scripts/gen-cluster " + std::to_string(n) +
                      " --base-port " + std::to_string(base_) + " " + gen_args + " > " + cluster_file_;
    if (run_command(cmd) != 0) throw std::runtime_error("gen-cluster failed: " + cmd);
    ctl_ = std::make_unique<bus::Tracer>(clock_, bus::Json("ctl"), static_cast<uint64_t>(clock_.wall_us()),
                                         bus::TraceLevel::state);
    ctl_->open(dir_ + "/ctl.jsonl");
}

Cluster::~Cluster() {
    for (auto& [id, pid] : pids_) {
        if (pid > 0 && !exit_status_.count(id)) {
            ::kill(pid, SIGCONT);
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
    }
    if (!std::getenv("FTBUS_KEEP_TEST_DIRS")) {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
}

namespace {

pid_t fork_exec(const std::vector<std::string>& argv, const std::string& out, const std::string& err) {
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        int fe = ::open(err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        ::setsid();  // no controlling terminal either: as under CI, wherever the tests run
        int fi = ::open("/dev/null", O_RDONLY);  // never the terminal the tests were started from
        if (fi >= 0) ::dup2(fi, 0);
        if (fd >= 0) ::dup2(fd, 1);
        if (fe >= 0) ::dup2(fe, 2);
        std::vector<char*> cargv;
        for (auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
        cargv.push_back(nullptr);
        ::execv(cargv[0], cargv.data());
        ::_exit(127);
    }
    return pid;
}

}  // namespace

pid_t Cluster::spawn(int key, const std::string& program, const std::vector<std::string>& args,
                     const std::string& out_path) {
    std::vector<std::string> argv = {std::string(FTBUS_BIN_DIR) + "/" + program};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_t pid = fork_exec(argv, out_path, out_path + ".err");
    pids_[key] = pid;
    exit_status_.erase(key);
    return pid;
}

pid_t Cluster::start(int id, const std::vector<std::string>& args, const std::string& program) {
    std::vector<std::string> argv = {std::string(FTBUS_BIN_DIR) + "/" + program, "--cluster", cluster_file_,
                                     "--id", std::to_string(id), "--trace", trace_path(id)};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string log = dir_ + "/node" + std::to_string(id) + ".log";
    pid_t pid = fork_exec(argv, log, log);
    auto it = pids_.find(id);
    if (it != pids_.end() && it->second > 0) {  // replacing a dead one: reap it (unless done)
        if (!exit_status_.count(id)) ::waitpid(it->second, nullptr, WNOHANG);
        ctl_->emit("fault", {{"action", "restart"}, {"target", id}, {"pid", pid}});
    }
    pids_[id] = pid;
    exit_status_.erase(id);
    return pid;
}

void Cluster::signal(int id, int sig, const std::string& action) {
    pid_t pid = pids_.at(id);
    if (pid <= 0 || exit_status_.count(id)) return;  // reaped already: the pid may be someone else's now
    ctl_->emit("fault", {{"action", action}, {"target", id}, {"pid", pid}});
    ::kill(pid, sig);
    if (sig == SIGKILL) {  // reaped here: never signalled again (the pid may be reused)
        int status = 0;
        if (::waitpid(pid, &status, 0) == pid)
            exit_status_[id] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
}

void Cluster::terminate(int id) {
    if (pid_t pid = pids_.at(id); pid > 0 && !exit_status_.count(id)) ::kill(pid, SIGTERM);
}

bool Cluster::stop_all(const std::vector<int>& ids, double seconds) {
    for (int id : ids) terminate(id);
    bool ok = true;
    for (int id : ids) ok = wait_exit(id, seconds) == 0 && ok;
    return ok;
}

bool Cluster::running(int id) {
    pid_t pid = pids_.at(id);
    if (pid <= 0 || exit_status_.count(id)) return false;
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) exit_status_[id] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);  // for wait_exit
    return r == 0;
}

int Cluster::wait_exit(int id, double seconds) {
    pid_t pid = pids_.at(id);
    if (auto it = exit_status_.find(id); it != exit_status_.end()) {  // running() reaped it
        pids_[id] = -1;
        return it->second;
    }
    int status = 0;
    bool done = wait_for([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, seconds);
    if (!done) return -1;
    pids_[id] = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::vector<bus::Json> Cluster::events(int id) const {
    std::vector<bus::Json> out;
    std::ifstream in(trace_path(id));
    std::string line;
    while (std::getline(in, line)) {
        auto j = bus::Json::parse(line, nullptr, false);
        if (!j.is_discarded()) out.push_back(std::move(j));
    }
    return out;
}

std::string Cluster::trace_files() const { return dir_ + "/*.jsonl"; }

bool Cluster::wait_for(const std::function<bool()>& cond, double seconds) {
    auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < until) {
        if (cond()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return cond();
}

int current_leader(const std::vector<bus::Json>& evs) {
    int leader = 0;
    uint64_t inc = 0;
    for (auto& e : evs) {
        if (e.value("inc", uint64_t{0}) != inc) {  // a new incarnation starts with no leader
            inc = e.value("inc", uint64_t{0});
            leader = 0;
        }
        std::string ev = e.value("ev", "");
        if (ev == "leader")
            leader = e.value("leader", 0);
        else if (ev == "election.start" ||
                 (ev == "role" && e.value("role", "") != "leader" && e.value("role", "") != "follower"))
            leader = 0;
    }
    return leader;
}

bool all_follow(const Cluster& c, const std::vector<int>& ids, int leader) {
    int first = -1;
    for (int id : ids) {
        int l = current_leader(c.events(id));
        if (l == 0 || (leader != 0 && l != leader) || (first != -1 && l != first)) return false;
        first = l;
    }
    return true;
}

std::string check_traces(const Cluster& c, const std::string& args) {
    std::string out;
    int rc = run_command(std::string(FTBUS_BIN_DIR) + "/ftbus-check " + args + " " + c.trace_files() + " 2>&1", &out);
    return std::to_string(rc) + ": " + out;
}

size_t count_events(const std::vector<bus::Json>& evs, const std::string& name, const std::string& field,
                    const bus::Json& value) {
    size_t n = 0;
    for (auto& e : evs)
        if (e.value("ev", std::string()) == name && (field.empty() || (e.contains(field) && e[field] == value)))
            ++n;
    return n;
}

}  // namespace test
