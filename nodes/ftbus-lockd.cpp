// ftbus-lockd: one replica of the replicated lock service (docs/LOCKS.md). Raft (elections,
// log replication, group commit, snapshots) with the lock table, sessions and guarded
// files as its state machine; clients (ftbus-lock, ftbus-bench) talk to the node's client
// port, replicas to each other on the peer port. Durable state lives in --data DIR; the
// guarded files are mirrored in DIR/files/ (byte-identical on every replica).
// Exit codes: 0 stopped; 1 storage failure (the replica stops acknowledging: a failed fsync
// is never retried); 2 bad flags, a bad cluster file, a port in use, a corrupt data dir.
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <iostream>
#include <optional>
#include <random>
#include <sys/stat.h>
#include <unistd.h>

#include "bus/flags.hpp"
#include "bus/lock_server.hpp"
#include "bus/node_host.hpp"
#include "bus/raft_disk.hpp"

namespace {

/// Mirrors the machine's files in DIR/files/: appends land at their offset (a replay after
/// a restart rewrites the same bytes, never duplicates them); a restore rewrites each file.
/// The Raft log is what makes them durable, so no fsync here.
class FileMirror {
public:
    explicit FileMirror(std::string dir) : dir_(std::move(dir)) {
        if (::mkdir(dir_.c_str(), 0755) != 0 && errno != EEXIST)
            throw bus::ConfigError("cannot create " + dir_ + ": " + std::strerror(errno));
        // Found unusable at start-up, not at the first append (which would stop the replica).
        struct stat st {};
        if (::stat(dir_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
            throw bus::ConfigError(dir_ + " is not a directory (the replicated files live there)");
        if (::access(dir_.c_str(), W_OK | X_OK) != 0)
            throw bus::ConfigError("cannot write in " + dir_ + ": " + std::strerror(errno));
    }
    void write(const std::string& file, uint64_t offset, const std::string& data, bool whole) {
        std::string path = dir_ + "/" + file;
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (whole ? O_TRUNC : 0), 0644);
        if (fd < 0) throw bus::StorageError("cannot open " + path + ": " + std::strerror(errno));
        if (!bus::pwrite_all(fd, data, offset)) {
            std::string why = std::strerror(errno);
            ::close(fd);
            throw bus::StorageError("cannot write " + path + ": " + why);
        }
        // A replay may rewrite a file that had grown further before a crash: cut it to what
        // the machine holds so far (never longer than the replicated contents).
        if (::ftruncate(fd, static_cast<off_t>(offset + data.size())) != 0) {
            std::string why = std::strerror(errno);
            ::close(fd);
            throw bus::StorageError("cannot truncate " + path + ": " + why);
        }
        ::close(fd);
    }

private:
    std::string dir_;
};

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"ftbus-lockd: one replica of the replicated lock service"};
    bus::CommonFlags f;
    bus::add_cluster_flag(app, f);
    bus::add_id_flag(app, f);
    bus::add_trace_flags(app, f);
    bus::add_detector_flags(app, f);
    bus::add_raft_flags(app, f);
    if (auto code = bus::parse_flags(app, argc, argv)) return *code;

    return bus::run_program("ftbus-lockd", [&]() -> int {
        try {
            if (f.data.empty()) throw bus::ConfigError("--data DIR is required (the log, snapshots and files live there)");
            bus::ClusterConfig cfg = bus::load_cluster_with_flags(f);
            if (!cfg.find(f.id)) throw bus::ConfigError(cfg.path + ": no node with id " + std::to_string(f.id));
            bus::RealClock clock;
            auto disk = std::make_unique<bus::RaftDisk>(f.data, bus::RaftLogOptions{.sync = {}, .preallocate = bus::kLogPreallocate});
            FileMirror mirror(f.data + "/files");
            bus::LockMachine machine;
            machine.set_file_sink([&mirror](const std::string& file, uint64_t off, const std::string& data, bool whole) {
                mirror.write(file, off, data, whole);
            });
            auto raft = std::make_unique<bus::Raft>(cfg, f.id, disk->storage.state(), std::random_device{}(),
                                                    disk->log.entries(), disk->storage.snapshot());
            raft->set_batching(true);  // a round's proposals share one AppendEntries per follower
            std::unique_ptr<bus::LockServer> server;
            try {  // (restores the snapshot into the machine)
                server = std::make_unique<bus::LockServer>(std::move(raft), &machine, cfg.tunables.election_timeout_max);
            } catch (const std::invalid_argument& e) {  // its checksum held, but not its contents
                throw bus::ConfigError("the snapshot in " + f.data + " cannot be restored (" + e.what() +
                                       "); refusing to start. " + bus::rejoin_advice());
            }
            bus::NodeHostOptions opts{"lockd", f.trace, f.level(), disk.get(), ""};
            std::optional<bus::NodeHost> host;
            try {  // (binds the ports)
                host.emplace(cfg, f.id, clock, std::move(opts), std::move(server));
            } catch (...) {
                disk->remove_if_created();
                throw;
            }
            auto& stop = bus::install_stop_signals();
            return host->run(stop);
        } catch (const bus::StorageError& e) {
            std::cerr << "ftbus-lockd: storage failure, stopping: " << e.what() << "\n";
            return bus::kExitFailure;
        }
    });
}
