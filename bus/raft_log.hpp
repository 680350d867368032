// RaftLog: the Raft log on disk, DIR/raft-log — an append-only file of checksummed records,
// made durable by one fdatasync per sync() (group commit: every batch appended since the
// last sync shares it).
//
// File: "FTBUSLOG1\n", then records:
//   magic u32 'FTBR' | payload length u32 | CRC-32C of the payload u32 | payload
//   payload = generation u64 | flags u8 | index u64 | term u64 | data bytes
// (little endian). The generation counts completed syncs (and truncations): records
// appended in generation g are made durable by the sync that starts generation g+1. Flag 1
// marks the first record appended in its generation.
//
// Preallocation (Options::preallocate): the file is grown ahead of the records in chunks
// with fallocate, as etcd's WAL does, so that an append changes no file size: its
// fdatasync flushes the data without a journal commit for the inode's size (on ext4 only
// the first write into each 4 KiB block of the space still commits its extent's conversion
// — amortised over the block's records). On this project's VMs: ~100 µs instead of ~160 µs.
// The bytes past the last record are zero; at open an all-zero tail is the preallocated
// space, not damage (a synced record never reads back as zeros: its fdatasync covered it).
//
// Recovery at open (the rules of a careful replica, not of a lenient one):
//  - every record is checked (magic, plausible length, checksum, consecutive index,
//    generations never going back);
//  - at the first bad record, the rest of the file is scanned for intact records: one
//    written after a sync that covered the bad record — the first record of the next
//    generation, or any record of a later one — proves acknowledged data is damaged:
//    start-up is refused (ConfigError naming the file, the offset and why), since silently
//    dropping acknowledged entries would break Raft's promises;
//  - otherwise the damage lies in the final, unsynced group (a crash during the writes of
//    batches not yet acknowledged, however many): the file is cut there and fsynced, and
//    recovery() says what was cut. (Rot of already-synced records in the final generation,
//    with nothing written after them, looks the same and is cut too.)
// A failed fsync (or write) is final: StorageError now and on every later call, because
// retrying an fsync may report success for data that never reached the disk; the replica
// must stop acknowledging (the caller stops the process).
//
// Entries are also kept in memory; snapshots bound them (compact()). The first entry may
// have any index (the one after the latest snapshot).
// Not thread-safe; owned by one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "bus/raft_storage.hpp"

namespace bus {


struct RaftLogOptions {
    /// The durability call (fdatasync when null); tests inject failures and count calls.
    std::function<int(int fd)> sync;
    /// Bytes to grow the file by ahead of the records (0: grow with every append). Where
    /// the file system cannot preallocate, the log quietly grows with every append.
    uint64_t preallocate = 0;
    /// The data directory says this log was written before (RaftDisk: raft-state is there,
    /// and the log is created before raft-state is first written): a missing file, or one
    /// shorter than its header, is then a lost log, refused at open, never started afresh.
    bool must_exist = false;
};

/// What replicas use: 4 MiB (about 30,000 small entries between two fallocates).
constexpr uint64_t kLogPreallocate = 4u << 20;

class RaftLog {
public:
    using Options = RaftLogOptions;
    /// What recovery cut from a torn tail (bytes 0: nothing).
    struct Recovery {
        uint64_t offset = 0;     ///< where the file was truncated
        uint64_t bytes = 0;      ///< how many bytes were cut
        std::string why;         ///< the first problem found there
    };

    /// Opens (creating if needed) DIR/raft-log and recovers it.
    /// \throws ConfigError for an unusable directory or corruption before the final batch.
    explicit RaftLog(const std::string& dir, Options o = {});
    ~RaftLog();
    RaftLog(const RaftLog&) = delete;
    RaftLog& operator=(const RaftLog&) = delete;

    /// 0 when empty.
    uint64_t first_index() const { return entries_.empty() ? 0 : entries_.front().index; }
    uint64_t last_index() const { return entries_.empty() ? 0 : entries_.back().index; }
    uint64_t last_term() const { return entries_.empty() ? 0 : entries_.back().term; }
    /// The entry at `index`; nullptr if not in the log.
    const LogEntry* at(uint64_t index) const;
    const std::vector<LogEntry>& entries() const { return entries_; }

    /// Writes `batch` (indices last_index()+1, +2, ... ; the first entry of an empty log may
    /// have any index ≥ 1) at the end of the file. Not durable until sync().
    /// \throws std::invalid_argument for a gap; StorageError if writing fails (final).
    void append(const std::vector<LogEntry>& batch);
    /// Removes the entries from `index` on (a conflict, Raft §5.3) and makes that durable.
    void truncate_from(uint64_t index);
    /// Makes everything appended so far durable with one fdatasync. \throws StorageError.
    void sync();
    /// After a snapshot of everything up to `index` (of term `term`) is durable: drops the
    /// entries it covers. The entries after it stay if the log holds (index, term) or starts
    /// right after it; otherwise the log does not continue the snapshot and all goes. The
    /// rest is rewritten to DIR/raft-log.tmp, fsynced, renamed over the log, and the
    /// directory fsynced: a crash leaves the old log or the new one. Everything appended
    /// is durable afterwards. \throws StorageError (final, as for sync).
    void compact(uint64_t index, uint64_t term);
    /// True while appended entries wait for sync().
    bool dirty() const { return dirty_; }

    /// The last index known durable (appended and synced).
    uint64_t durable_index() const { return durable_index_; }
    uint64_t fsyncs() const { return fsyncs_; }
    const Recovery& recovery() const { return recovery_; }
    const std::string& path() const { return path_; }

private:
    void fail(const std::string& what);
    /// fdatasync of `fd` (the log's by default), or the injected replacement. \return 0 on success.
    int durable(int fd = -1);
    void check_ok() const;
    /// Grows the file so that `need` bytes fit, by a chunk of opts_.preallocate.
    void preallocate(uint64_t need);

    std::string path_;
    int fd_ = -1;
    Options opts_;
    std::vector<LogEntry> entries_;
    std::vector<uint64_t> offsets_;  ///< file offset of each entry's record
    uint64_t size_ = 0;              ///< bytes of the header and records (the logical end)
    uint64_t alloc_ = 0;             ///< bytes in the file (size_ plus preallocated zeros)
    uint64_t gen_ = 1;               ///< generation of the records appended now
    bool first_pending_ = true;      ///< the next record is the first of its generation
    uint64_t durable_index_ = 0;
    uint64_t fsyncs_ = 0;
    bool dirty_ = false;
    std::string failed_;  ///< set once a write or fsync failed: nothing more is done
    Recovery recovery_;
};

}  // namespace bus
