// RaftDisk: the data directory of one Raft replica (--data DIR), opened and recovered as a
// whole: term and vote and the latest snapshot (RaftStorage), the log after it (RaftLog).
// At open the log is made to continue the snapshot: a crash between writing a snapshot and
// compacting the log leaves entries the snapshot covers, and they are compacted away then.
// Not thread-safe; owned by the node loop.
#pragma once

#include <string>

#include "bus/raft_log.hpp"
#include "bus/raft_storage.hpp"

namespace bus {

struct RaftDisk {
    /// \throws ConfigError (unusable, in use, or corrupt; RaftStorage and RaftLog say which).
    explicit RaftDisk(const std::string& dir, RaftLogOptions o = {});

    RaftStorage storage;
    RaftLog log;

    /// Every fsync of the directory's files so far (log, state, snapshot, directory).
    uint64_t fsyncs() const { return storage.fsyncs() + log.fsyncs(); }

    /// For a start that fails after the directory was opened (its port in use, say): removes
    /// the directory if this process created it, so that a failed first start leaves nothing
    /// behind. Nobody else can have used it: its LOCK has been ours since it was made. A
    /// directory that was there before is never touched. Best effort: errors are ignored.
    void remove_if_created();
};

}  // namespace bus
