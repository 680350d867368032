// RaftStorage: the durable state of one Raft node in its data directory (--data DIR).
//
// Today that is the hard state (current term and vote) in DIR/raft-state, a small text
// file any human can read:
//
//   ftbus raft-state 1
//   term 7
//   vote 3
//   crc32c 5d0e6a4f          <- CRC-32C of the lines above, as written
//
// save() writes DIR/raft-state.tmp, fsyncs it, renames it over DIR/raft-state and fsyncs
// the directory, so a crash leaves either the old or the new state, never a torn one. A
// failed write or fsync throws StorageError: the caller must stop the process (retrying an
// fsync that failed may report success for data that never reached the disk). A corrupt
// file refuses start-up (ConfigError naming the file and the problem) rather than risk a
// second vote in a term. DIR/LOCK is held (flock) for the life of the object, so two
// processes never share one data directory.
//
// The latest snapshot is DIR/raft-snapshot, written the same way (tmp, fsync, rename,
// directory fsync): "FTBUSSNAP1\n", then index u64 | term u64 | length u64 | CRC-32C u32 of
// those and the data | data (little endian). A damaged snapshot refuses start-up: it
// stands for acknowledged entries that are no longer in the log. The log itself is
// DIR/raft-log (RaftLog).
// Not thread-safe; owned by the node loop.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include "bus/actions.hpp"
#include "bus/cluster.hpp"

namespace bus {

struct StorageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class RaftStorage {
public:
    /// Creates DIR if needed, takes DIR/LOCK and reads DIR/raft-state (absent: term 0, no
    /// vote). \throws ConfigError if DIR is unusable, in use by another process, or corrupt.
    explicit RaftStorage(std::string dir);
    ~RaftStorage();
    RaftStorage(const RaftStorage&) = delete;
    RaftStorage& operator=(const RaftStorage&) = delete;

    const HardState& state() const { return state_; }
    /// Whether DIR/raft-state was there (a fresh directory has none).
    bool state_found() const { return state_found_; }
    /// Makes `s` durable (write, fsync, rename, fsync the directory). \throws StorageError.
    void save(const HardState& s);
    /// The latest durable snapshot (index 0: none).
    const Snapshot& snapshot() const { return snapshot_; }
    /// Makes `s` the durable snapshot, as save() does. \throws StorageError.
    void save_snapshot(const Snapshot& s);
    /// fsyncs done by save and save_snapshot (files and directory).
    uint64_t fsyncs() const { return fsyncs_; }

    const std::string& dir() const { return dir_; }
    /// Whether this process created DIR (it was not there before).
    bool created() const { return created_; }

    /// The file's text for `s` (tests and tools), and its strict parse.
    static std::string format(const HardState& s);
    /// \throws ConfigError with `origin` and the problem.
    static HardState parse(const std::string& text, const std::string& origin);
    /// The snapshot file's bytes, and their strict parse (\throws ConfigError).
    static std::string format_snapshot(const Snapshot& s);
    static Snapshot parse_snapshot(const std::string& bytes, const std::string& origin);

private:
    std::string dir_;
    /// Writes `data` to DIR/name atomically and durably. \throws StorageError.
    void write_durably(const std::string& name, const std::string& data);

    int lock_fd_ = -1;
    bool created_ = false;
    HardState state_;
    bool state_found_ = false;
    Snapshot snapshot_;
    uint64_t fsyncs_ = 0;
};

/// What to tell an operator whose replica's data is damaged beyond use: restore it, or empty
/// the data directory, and when that is safe (a wiped replica forgets its vote and what it
/// acknowledged: Raft's safety assumes neither is lost).
std::string rejoin_advice();

/// CRC-32C (Castagnoli) of `data`.
uint32_t crc32c(std::string_view data);

// ---- file helpers shared by the log, the state and snapshot files, and the file mirror
/// Appends `v` as `bytes` little-endian bytes; reads one back from `s` at `at`.
void put_le(std::string& s, uint64_t v, int bytes);
uint64_t get_le(std::string_view s, size_t at, int bytes);
/// Writes all of `data` at `offset`, retrying short writes and EINTR. \return false, with
/// errno set, on failure.
bool pwrite_all(int fd, std::string_view data, uint64_t offset);
/// fsyncs directory `dir` (after creating or renaming files in it). \throws StorageError.
void fsync_dir(const std::string& dir);

}  // namespace bus
