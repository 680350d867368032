#include "bus/raft_disk.hpp"

namespace bus {

RaftDisk::RaftDisk(const std::string& dir, RaftLogOptions o) : storage(dir), log(dir, std::move(o)) {
    const Snapshot& s = storage.snapshot();
    if (s.index > 0 && !log.entries().empty() && log.first_index() != s.index + 1) {
        try {
            log.compact(s.index, s.term);
        } catch (const StorageError& e) {
            throw ConfigError(std::string("cannot compact the log to the snapshot at start-up: ") + e.what());
        }
    }
}

}  // namespace bus
