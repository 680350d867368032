// ftbus-lock: the lock service from the command line (docs/LOCKS.md), in the manner of
// `etcdctl lock` and flock(1).
//
//   hold NAME [--wait DUR] [--kill-after DUR] -- CMD ARGS...   run CMD while holding NAME:
//        FTBUS_LOCK, FTBUS_TOKEN, FTBUS_SESSION and FTBUS_CLUSTER are in its environment (so
//        that `ftbus-lock append` inside it appends under the lock); SIGTERM to CMD (its
//        process group, unless there is a controlling terminal) if the lease is lost,
//        SIGKILL to what is still running of it --kill-after (a twentieth of the ttl) after
//        the lease ran out; released when CMD exits; CMD's exit code is passed through.
// The common flags (--cluster, --ttl, --timeout, --trace) may come before or after the
// subcommand.
//   acquire NAME [--wait DUR]   for scripts: acquires NAME in a session kept alive by a
//        background process, and prints `export FTBUS_...` lines for eval. `release NAME`
//        ends it.
//   release NAME                releases (FTBUS_SESSION / FTBUS_TOKEN, or --session/--token)
//   append [--lock NAME] FILE DATA|-   appends DATA (or stdin) to the replicated FILE under
//        the lock (the holder's session and current token only)
//   status [NAME]               holders, queues and files (linearizable)
//
// Exit codes: 0 done; 1 refused ("you do not hold the lock") or no answer by the deadline;
// 2 usage or configuration (bad names, ttl, session or token numbers included); 3 not
// acquired within --wait; 128 + the signal when SIGINT/SIGTERM interrupted a wait (the
// session left the queue and was closed); hold: CMD's own exit code (a command killed by a
// signal: 128 + the signal).
#include <atomic>
#include <cctype>
#include <charconv>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus/duration.hpp"
#include "bus/flags.hpp"
#include "bus/lock_client.hpp"
#include "bus/lock_machine.hpp"

namespace {

constexpr int kExitNotAcquired = 3;

std::string env_or(const char* name, const std::string& dflt = "") {
    const char* v = std::getenv(name);
    return v ? std::string(v) : dflt;
}

/// A session or token: a whole number above zero, digits only ("12junk", "-3" and
/// "99999999999999999999" are refused, not read as 12, 2^64-3 or wrapped).
uint64_t whole_number(const std::string& v, const std::string& origin) {
    uint64_t n = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (v.empty() || !std::isdigit(static_cast<unsigned char>(v[0])) || ec != std::errc() || end != v.data() + v.size() ||
        n == 0)
        throw bus::ConfigError(origin + "='" + v + "' is not a whole number above zero");
    return n;
}

/// --FLAG if given, else $NAME.
uint64_t flag_or_env(const std::string& flag_value, const char* name, const char* what) {
    if (!flag_value.empty()) return whole_number(flag_value, std::string("--") + what);
    std::string v = env_or(name);
    if (v.empty()) throw bus::ConfigError(std::string("no ") + what + ": give --" + what + " or set " + name);
    return whole_number(v, name);
}

/// `s` quoted for a POSIX shell's eval: in single quotes, each ' as '\''.
std::string shell_quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

void check_name(const std::string& n, const char* what, size_t max) {
    if (!bus::name_ok(n, max)) throw bus::ConfigError("'" + n + "' is not " + bus::name_rule(what, max));
}

bus::Duration duration_flag(const std::string& text, const char* flag) {
    auto d = bus::parse_duration(text);
    if (!d) throw bus::ConfigError(std::string("--") + flag + ": not a duration: '" + text + "'");
    return *d;
}

std::atomic<bool> g_term{false};
std::atomic<int> g_sig{0};
/// While we only wait for a lock (nothing runs under it yet), a second SIGINT/SIGTERM ends us
/// at once; the first asks the wait to stop, so that the session leaves the queue.
std::atomic<bool> g_waiting{false};
/// acquire's background keeper, told before a second signal ends us (it then gives up).
std::atomic<pid_t> g_keeper{0};
extern "C" void on_term(int sig) {
    if (g_waiting && g_term) {
        if (pid_t k = g_keeper.load(); k > 0) ::kill(k, SIGTERM);
        ::_exit(128 + sig);
    }
    g_sig = sig;
    g_term = true;
}

void catch_stop_signals() {
    struct sigaction sa {};
    sa.sa_handler = on_term;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;  // poll(2) still returns EINTR; the loops look at g_term
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"ftbus-lock: acquire, hold and release locks, append to guarded files, show status"};
    app.require_subcommand(1);
    // The common flags may come after the subcommand too (`hold NAME --ttl 2s -- CMD`).
    app.fallthrough();
    bus::CommonFlags f;
    std::string timeout_text = "10s", ttl_text = "5s", wait_text = "30s";
    bus::add_trace_flags(app, f);
    app.add_option("--cluster", f.cluster, "the cluster file (default: $FTBUS_CLUSTER)");
    app.add_option("--timeout", timeout_text, "give up on one request after this long (leader changes included)")
        ->capture_default_str();
    app.add_option("--ttl", ttl_text, "the session's lease: lost if not renewed for this long")->capture_default_str();

    std::string name, file, data;
    std::vector<std::string> cmd;
    std::string session_text, token_text;
    CLI::App* hold = app.add_subcommand("hold", "run a command while holding a lock");
    hold->add_option("name", name, "the lock")->required();
    hold->add_option("--wait", wait_text, "how long to wait in the queue")->capture_default_str();
    std::string kill_after_text;
    hold->add_option("--kill-after", kill_after_text,
                     "if the lease is lost: SIGKILL what is still running of CMD this long after the lease ran out "
                     "(default: a twentieth of --ttl, half the lease's safety margin)");
    hold->add_option("cmd", cmd, "the command and its arguments (after --)");  // checked below, with usage
    CLI::App* acquire = app.add_subcommand("acquire", "acquire a lock for a script (prints export lines for eval)");
    acquire->add_option("name", name, "the lock")->required();
    acquire->add_option("--wait", wait_text, "how long to wait in the queue")->capture_default_str();
    CLI::App* release = app.add_subcommand("release", "release a lock (and end the session that holds it)");
    release->add_option("name", name, "the lock (default: $FTBUS_LOCK)");
    release->add_option("--session", session_text, "default: $FTBUS_SESSION");
    release->add_option("--token", token_text, "default: $FTBUS_TOKEN");
    CLI::App* append = app.add_subcommand("append", "append to a replicated file under its lock");
    append->add_option("--lock", name, "the guarding lock (default: $FTBUS_LOCK)");
    append->add_option("--session", session_text, "default: $FTBUS_SESSION");
    append->add_option("--token", token_text, "default: $FTBUS_TOKEN");
    append->add_option("file", file, "the replicated file's name")->required();
    append->add_option("data", data, "what to append; - reads stdin")->required();
    CLI::App* status = app.add_subcommand("status", "holders, queues and files");
    status->add_option("name", name, "one lock (default: all)");
    if (auto code = bus::parse_flags(app, argc, argv)) return *code;

    return bus::run_program("ftbus-lock", [&]() -> int {
        if (f.cluster.empty()) f.cluster = env_or("FTBUS_CLUSTER");
        if (f.cluster.empty()) throw bus::ConfigError("--cluster FILE is required (or set FTBUS_CLUSTER)");
        bus::LockClientOptions o;
        o.deadline = duration_flag(timeout_text, "timeout");
        if (o.deadline <= bus::Duration::zero()) throw bus::ConfigError("--timeout " + timeout_text + ": must be more than 0");
        bus::Duration ttl = duration_flag(ttl_text, "ttl");
        o.ttl_ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(ttl).count());
        if (o.ttl_ms < bus::kMinTtlMs || o.ttl_ms > bus::kMaxTtlMs)
            throw bus::ConfigError("--ttl " + ttl_text + ": a session's lease is from " +
                                   bus::format_duration(std::chrono::milliseconds(bus::kMinTtlMs)) + " to " +
                                   bus::format_duration(std::chrono::milliseconds(bus::kMaxTtlMs)));
        o.interrupt = &g_term;
        // Names are checked here, before anything is asked (and the server says the same).
        if ((*release || *append) && name.empty()) name = env_or("FTBUS_LOCK");
        if (!name.empty()) check_name(name, "a lock name", bus::kMaxLockName);
        if (*append) check_name(file, "a file name", bus::kMaxFileName);
        if (*hold && cmd.empty())  // `hold -- true` takes "true" for the lock's name
            throw bus::ConfigError("hold needs a lock name and, after --, a command: hold NAME [--ttl DUR] -- CMD [ARGS...]");
        if (*acquire && f.trace == "-")
            throw bus::ConfigError("acquire prints its export lines on stdout: give --trace a file, not '-'");
        bus::Duration wait = duration_flag(wait_text, "wait");
        // By default CMD is gone before the service could give the lock to anyone else: the
        // client counts its lease a tenth short of the server's; half of that margin is left.
        bus::Duration kill_after = kill_after_text.empty() ? ttl / 20 : duration_flag(kill_after_text, "kill-after");
        if (kill_after_text.empty()) kill_after_text = bus::format_duration(kill_after);
        // Read before any fork: a bad cluster file is one message and exit 2, here.
        bus::ClusterConfig cfg = bus::load_cluster_with_flags(f);

        if (*acquire) {
            // The session must outlive this process: a background keeper does all of it (it
            // is forked before any ZeroMQ context exists) and reports through a pipe.
            if (!f.trace.empty()) {  // the keeper opens it: a bad path is a usage error, here
                std::ofstream probe(f.trace, std::ios::app);
                if (!probe) throw bus::ConfigError("cannot open trace file " + f.trace + ": " + std::strerror(errno));
            }
            int fds[2];
            if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
            catch_stop_signals();
            pid_t pid = ::fork();
            if (pid < 0) throw std::runtime_error("fork failed");
            if (pid > 0) {
                ::close(fds[1]);
                // Until the keeper reports. A signal meanwhile is passed on to it: it leaves
                // the queue, or gives the lock back, and ends its session; a second ends us.
                g_keeper = pid;
                g_waiting = true;
                std::string out;
                bool told = false;
                char buf[512];
                for (;;) {
                    if (g_term && !told) {
                        ::kill(pid, SIGTERM);
                        told = true;
                    }
                    pollfd p{fds[0], POLLIN, 0};
                    if (::poll(&p, 1, 100) <= 0) continue;
                    ssize_t n = ::read(fds[0], buf, sizeof buf);
                    if (n > 0)
                        out.append(buf, static_cast<size_t>(n));
                    else if (n == 0 || errno != EINTR)
                        break;
                }
                ::close(fds[0]);
                if (told) {
                    std::cerr << "ftbus-lock: interrupted: " << name << " not acquired\n";
                    return 128 + g_sig;
                }
                if (out.rfind("ok\n", 0) == 0) {
                    std::cout << out.substr(3);
                    return bus::kExitOk;
                }
                if (out.rfind("interrupted ", 0) == 0) {  // the keeper itself was signalled
                    std::cerr << "ftbus-lock: interrupted: " << name << " not acquired\n";
                    return 128 + std::atoi(out.c_str() + 12);
                }
                if (out.rfind("wait\n", 0) == 0) {
                    std::cerr << "ftbus-lock: " << name << " not acquired within " << wait_text << "\n";
                    return kExitNotAcquired;
                }
                std::cerr << "ftbus-lock: " << (out.empty() ? "the keeper process failed\n" : out);
                return bus::kExitFailure;
            }
            ::close(fds[0]);
            ::setsid();
            std::signal(SIGPIPE, SIG_IGN);  // a reader gone is seen as a failed write
            std::string report;
            int code = 0;
            {
                bus::RealClock clock;
                std::unique_ptr<bus::Tracer> tracer;
                try {
                    bus::LockClient c(cfg, o);
                    if (!f.trace.empty()) {
                        tracer = std::make_unique<bus::Tracer>(clock, bus::Json(c.id()), static_cast<uint64_t>(clock.wall_us()), f.level());
                        tracer->open(f.trace);
                        c.set_tracer(tracer.get());
                    }
                    uint64_t s = c.open();
                    uint64_t t = 0;
                    try {
                        t = c.acquire(name, wait);
                    } catch (const bus::LockError&) {
                        c.close();  // nothing of our session may linger in the queue
                        throw;
                    }
                    if (t == 0) {
                        c.close();
                        report = g_term ? "interrupted " + std::to_string(g_sig.load()) + "\n" : "wait\n";
                    } else {
                        report = "ok\nexport FTBUS_CLUSTER=" + shell_quote(std::filesystem::absolute(f.cluster).string()) +
                                 " FTBUS_LOCK=" + shell_quote(name) + " FTBUS_SESSION=" + std::to_string(s) +
                                 " FTBUS_TOKEN=" + std::to_string(t) + "\n";
                    }
                    bool delivered = ::write(fds[1], report.data(), report.size()) == static_cast<ssize_t>(report.size());
                    ::close(fds[1]);
                    if (t != 0 && (!delivered || g_term)) {  // nobody will use the lock: give it back now
                        c.close();
                        t = 0;
                    }
                    int devnull = ::open("/dev/null", O_RDWR);
                    ::dup2(devnull, 0), ::dup2(devnull, 1), ::dup2(devnull, 2);
                    // Keep the session alive until it is released (release ends it) or lost, or
                    // we are told to stop (then it ends here, and the lock with it).
                    while (t != 0 && !c.lease_lost() && !g_term) c.pump(std::chrono::milliseconds(200));
                    if (t != 0 && g_term && !c.lease_lost()) c.close();
                } catch (const std::exception& e) {
                    report = std::string(e.what()) + "\n";
                    (void)!::write(fds[1], report.data(), report.size());
                    code = 1;
                }
            }
            std::_Exit(code);
        }

        if (*hold) {  // a signal while we wait: leave the queue, end the session, exit 128+sig
            catch_stop_signals();
            g_waiting = true;
        }
        bus::RealClock clock;
        bus::LockClient client(cfg, o);
        std::unique_ptr<bus::Tracer> tracer;
        if (!f.trace.empty()) {
            tracer = std::make_unique<bus::Tracer>(clock, bus::Json(client.id()), static_cast<uint64_t>(clock.wall_us()), f.level());
            tracer->open(f.trace);
            client.set_tracer(tracer.get());
        }
        try {
            if (*status) {
                std::cout << client.status(name).dump(2) << "\n";
                return bus::kExitOk;
            }
            if (*append) {
                if (name.empty()) throw bus::ConfigError("no lock: give --lock NAME or set FTBUS_LOCK");
                client.attach(flag_or_env(session_text, "FTBUS_SESSION", "session"));
                uint64_t t = flag_or_env(token_text, "FTBUS_TOKEN", "token");
                if (data == "-") data.assign(std::istreambuf_iterator<char>(std::cin), {});
                uint64_t off = client.append(name, t, file, data);
                std::cout << file << " offset " << off << " bytes " << data.size() << "\n";
                return bus::kExitOk;
            }
            if (*release) {
                if (name.empty()) throw bus::ConfigError("no lock: give NAME or set FTBUS_LOCK");
                client.attach(flag_or_env(session_text, "FTBUS_SESSION", "session"));
                client.release(name, flag_or_env(token_text, "FTBUS_TOKEN", "token"));
                client.close();  // the keeper of `acquire` sees its session end and exits
                return bus::kExitOk;
            }
            // hold
            uint64_t s = client.open();
            uint64_t t = 0;
            try {
                t = client.acquire(name, wait);
            } catch (const bus::LockError&) {
                client.close();  // our session: nothing of it may linger in the queue
                throw;
            }
            g_waiting = false;  // from here on a signal is for CMD (and we release after it)
            if (t == 0 || g_term) {  // not granted in time, or told to stop first
                if (t != 0) client.release(name, t);
                client.close();
                if (g_term) {
                    std::cerr << "ftbus-lock: interrupted: " << name << " not held\n";
                    return 128 + g_sig;
                }
                std::cerr << "ftbus-lock: " << name << " not acquired within " << wait_text << "\n";
                return kExitNotAcquired;
            }
            ::setenv("FTBUS_CLUSTER", std::filesystem::absolute(f.cluster).c_str(), 1);
            ::setenv("FTBUS_LOCK", name.c_str(), 1);
            ::setenv("FTBUS_SESSION", std::to_string(s).c_str(), 1);
            ::setenv("FTBUS_TOKEN", std::to_string(t).c_str(), 1);
            std::vector<char*> args;
            for (auto& a : cmd) args.push_back(a.data());
            args.push_back(nullptr);
            // CMD in its own process group, so that a signal reaches everything it started
            // (`sh -c`, make, and their children), as timeout(1) does — unless there is a
            // controlling terminal: there CMD stays in our group, so that job control (Ctrl-Z
            // stops both of us, Ctrl-C reaches all of it) and terminal access work as without
            // us; then only CMD itself is signalled.
            bool own_group = true;
            if (int tty = ::open("/dev/tty", O_RDONLY | O_CLOEXEC); tty >= 0) {
                own_group = false;
                ::close(tty);
            }
            pid_t pid = ::fork();
            if (pid < 0) throw std::runtime_error("fork failed");
            if (pid == 0) {
                if (own_group) ::setpgid(0, 0);
                ::execvp(args[0], args.data());
                std::fprintf(stderr, "ftbus-lock: cannot run %s: %s\n", args[0], std::strerror(errno));
                std::_Exit(127);
            }
            if (own_group) ::setpgid(pid, pid);  // (whichever of the two runs first)
            pid_t target = own_group ? -pid : pid;
            int wstatus = 0;
            bool reaped = false, told = false, killed = false;
            // SIGKILL at (wall µs): --kill-after past the end of the lease, set once it is lost.
            int64_t kill_at = 0, give_up_at = 0;
            // Until CMD has exited — and, once it was told to stop, until everything in its
            // group has (what it started is without the lock too). A group's number is not
            // reused while it has members; a zombie nobody reaps is given up on after 1 s.
            for (;;) {
                if (!reaped && ::waitpid(pid, &wstatus, WNOHANG) == pid) reaped = true;
                if (reaped && (!told || !own_group || ::kill(target, 0) != 0)) break;
                if ((client.lease_lost() || g_term) && !told) {
                    if (client.lease_lost())
                        std::cerr << "ftbus-lock: the lock " << name << " was lost (" << client.lost_reason()
                                  << "); stopping " << cmd[0] << " (SIGTERM)\n";
                    ::kill(target, SIGTERM);
                    told = true;
                }
                // Without the lock the command must not go on: one that ignores SIGTERM is
                // killed. (Our own SIGTERM only asks: the lock is still held meanwhile.)
                // (Also when we were told to stop and CMD is gone but some of its group is not:
                // the lock is about to be released under them.)
                int64_t wall = clock.wall_us();
                if (!kill_at && (client.lease_lost() || (g_term && reaped)))
                    kill_at = (client.lease_lost() ? std::min(wall, client.valid_until_us()) : wall) +
                              std::chrono::duration_cast<std::chrono::microseconds>(kill_after).count();
                if (kill_at && !killed && wall >= kill_at) {
                    std::cerr << "ftbus-lock: " << cmd[0] << (reaped ? "'s process group" : "") << " still running "
                              << kill_after_text << " after " << (client.lease_lost() ? "the lock was lost" : "SIGTERM")
                              << "; SIGKILL\n";
                    ::kill(target, SIGKILL);
                    killed = true;
                    give_up_at = wall + 1000000;
                }
                if (reaped && killed && wall >= give_up_at) break;
                if (client.lease_lost())
                    ::poll(nullptr, 0, 10);  // no session left to keep: just wait for the command
                else
                    client.pump(std::chrono::milliseconds(20));
            }
            int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
            if (!client.lease_lost()) {
                try {
                    client.release(name, t);
                } catch (const bus::LockError& e) {
                    std::cerr << "ftbus-lock: release of " << name << ": " << e.what() << "\n";
                }
            }
            client.close();
            return code;
        } catch (const bus::LockError& e) {
            std::cerr << "ftbus-lock: " << e.what() << "\n";
            return g_waiting && g_term ? 128 + g_sig : bus::kExitFailure;
        }
    });
}
