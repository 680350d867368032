#include "bus/raft_disk.hpp"

#include <filesystem>

namespace bus {

namespace {

RaftLogOptions existing_if(RaftLogOptions o, bool written_before) {
    o.must_exist = written_before;
    return o;
}

}  // namespace

RaftDisk::RaftDisk(const std::string& dir, RaftLogOptions o)
    : storage(dir), log(dir, existing_if(std::move(o), storage.state_found())) {
    const Snapshot& s = storage.snapshot();
    // A replica makes its term durable before it writes any entry or snapshot of that term:
    // entries without the state file mean the file was lost, and with it the vote.
    if (!storage.state_found() && (!log.entries().empty() || s.index > 0)) {
        uint64_t term = std::max(s.term, log.entries().empty() ? 0 : log.entries().back().term);
        throw ConfigError(dir + "/raft-state is missing, but the log holds entries up to term " + std::to_string(term) +
                          "; refusing to start rather than risk a second vote in a term. " + rejoin_advice());
    }
    // A log compacted past the snapshot: the entries between are gone (the snapshot lost, or
    // an older one put back).
    if (!log.entries().empty() && log.first_index() > s.index + 1)
        throw ConfigError(dir + "/raft-log starts at index " + std::to_string(log.first_index()) + ", but " +
                          (s.index > 0 ? "the snapshot covers only up to index " + std::to_string(s.index)
                                       : std::string("there is no snapshot (raft-snapshot is missing)")) +
                          ": the entries between are lost; refusing to start. " + rejoin_advice());
    // A crash between writing a snapshot and compacting the log: the log still holds entries
    // the snapshot covers.
    if (!log.entries().empty() && log.first_index() <= s.index) {
        try {
            log.compact(s.index, s.term);
        } catch (const StorageError& e) {
            throw ConfigError(std::string("cannot compact the log to the snapshot at start-up: ") + e.what());
        }
    }
}

void RaftDisk::remove_if_created() {
    if (!storage.created()) return;
    std::error_code ec;
    std::filesystem::remove_all(storage.dir(), ec);
}

}  // namespace bus
