// RaftLog: the Raft log on disk — batches, group commit, torn tails truncated, corruption
// before the final batch refused with the file and offset, a failed fsync final. Each test
// works in its own temporary directory.
#include <catch2/catch.hpp>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bus/raft_log.hpp"

#include "test_util.hpp"

using namespace bus;
using Catch::Matchers::Contains;

namespace {

struct TempDir : test::TempDir {
    TempDir() : test::TempDir("ftbus-log") {}
};

std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void spit(const std::string& p, const std::string& data) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << data;
}

std::vector<LogEntry> batch(uint64_t from, int n, uint64_t term) {
    std::vector<LogEntry> b;
    for (int i = 0; i < n; ++i)
        b.push_back({from + static_cast<uint64_t>(i), term, "cmd-" + std::to_string(from + static_cast<uint64_t>(i))});
    return b;
}

}  // namespace

TEST_CASE("raft log: batches survive a reopen — one fsync per sync() however many batches (group commit)",
          "[unit][raft_log]") {
    TempDir d;
    {
        RaftLog log(d.path);
        CHECK(log.last_index() == 0);
        log.append(batch(1, 3, 1));
        log.append(batch(4, 2, 1));
        log.append(batch(6, 1, 2));
        CHECK(log.durable_index() == 0);
        log.sync();  // one fsync makes all three batches durable
        CHECK(log.fsyncs() == 1);
        CHECK(log.durable_index() == 6);
        log.sync();  // nothing new: no fsync
        CHECK(log.fsyncs() == 1);
        CHECK_THROWS_AS(log.append(batch(8, 1, 2)), std::invalid_argument);  // a gap
    }
    RaftLog again(d.path);
    REQUIRE(again.last_index() == 6);
    CHECK(again.last_term() == 2);
    CHECK(again.at(4)->data == "cmd-4");
    CHECK(again.at(7) == nullptr);
    CHECK(again.recovery().bytes == 0);
}

TEST_CASE("raft log: a torn final write is truncated at the first damaged record, wherever the crash cut it",
          "[unit][raft_log]") {
    TempDir d;
    uint64_t size_before_last = 0;
    {
        RaftLog log(d.path);
        log.append(batch(1, 2, 1));
        log.append(batch(3, 2, 1));
        log.sync();
        size_before_last = std::filesystem::file_size(d.path + "/raft-log");
        log.append(batch(5, 3, 2));  // the final batch: 3 records
        log.sync();
    }
    const std::string full = slurp(d.path + "/raft-log");
    // Cut the final batch at every byte: what is whole survives, the rest is cut.
    for (uint64_t cut = size_before_last; cut < full.size(); ++cut) {
        INFO("cut at " << cut);
        spit(d.path + "/raft-log", full.substr(0, cut));
        RaftLog log(d.path);
        CHECK(log.last_index() >= 4);
        CHECK(log.last_index() <= 7);
        CHECK(log.at(4)->data == "cmd-4");
        for (uint64_t i = 5; i <= log.last_index(); ++i) CHECK(log.at(i)->data == "cmd-" + std::to_string(i));
        CHECK(std::filesystem::file_size(d.path + "/raft-log") <= cut);
        // It can be appended to again, and that survives.
        log.append(batch(log.last_index() + 1, 1, 3));
        log.sync();
    }
    SECTION("garbage after the last record (a torn write of a batch that never finished)") {
        spit(d.path + "/raft-log", full + std::string("\x46\x54\x42\x52\x99\x00\x00\x00garbage", 15));
        RaftLog log(d.path);
        CHECK(log.last_index() == 7);
        CHECK(log.recovery().bytes == 15);
        CHECK(log.recovery().offset == full.size());
        CHECK_THAT(log.recovery().why, Contains("running past the end"));
    }
    SECTION("a damaged record in the middle of the final batch, its later records intact: still torn") {
        std::string bad = full;
        bad[size_before_last + 20] ^= 0x5a;  // inside the first record of batch 3
        spit(d.path + "/raft-log", bad);
        RaftLog log(d.path);
        CHECK(log.last_index() == 4);
        CHECK_THAT(log.recovery().why, Contains("checksum"));
    }
}

TEST_CASE("raft log: damage to synced entries with later writes after it refuses start-up, naming the file and offset",
          "[unit][raft_log]") {
    TempDir d;
    {
        RaftLog log(d.path);
        log.append(batch(1, 2, 1));
        log.sync();  // acknowledged
        log.append(batch(3, 2, 1));
        log.sync();
        log.append(batch(5, 2, 2));
        log.sync();
    }
    std::string full = slurp(d.path + "/raft-log");
    full[10 + 12 + 26] ^= 0x01;  // a byte of the first record's data "cmd-1" (batch 1)
    spit(d.path + "/raft-log", full);
    try {
        RaftLog log(d.path);
        FAIL("opened a log with acknowledged entries damaged");
    } catch (const ConfigError& e) {
        std::string m = e.what();
        CHECK_THAT(m, Contains(d.path + "/raft-log"));
        CHECK_THAT(m, Contains("offset 10"));
        CHECK_THAT(m, Contains("checksum"));
        CHECK_THAT(m, Contains("refusing to start"));
    }
    // Nothing was cut from the file.
    CHECK(slurp(d.path + "/raft-log") == full);
}

TEST_CASE("raft log: group commit — a crash tears any of the batches appended since the last sync — all of them "
          "are unacknowledged, so damage there is cut, not refused",
          "[unit][raft_log]") {
    TempDir d;
    uint64_t synced_size = 0, b_start = 0;
    {
        RaftLog log(d.path);
        log.append(batch(1, 2, 1));
        log.sync();
        synced_size = std::filesystem::file_size(d.path + "/raft-log");
        b_start = synced_size;
        log.append(batch(3, 2, 1));  // B and C share the next fsync, which never completes
        log.append(batch(5, 2, 1));
    }
    std::string full = slurp(d.path + "/raft-log");
    full[b_start + 30] ^= 0x20;  // B damaged (its page lost), C intact on disk
    spit(d.path + "/raft-log", full);
    RaftLog log(d.path);
    CHECK(log.last_index() == 2);
    CHECK(log.recovery().offset == synced_size);
    // The next writes start a new generation; damage to them after a sync refuses again.
    log.append(batch(3, 1, 2));
    log.sync();
    CHECK(log.last_index() == 3);
}

TEST_CASE("raft log: a failed fsync is final — nothing is acknowledged again, nothing retried",
          "[unit][raft_log]") {
    TempDir d;
    int calls = 0;
    bool failing = false;
    RaftLog::Options o;
    o.sync = [&](int fd) {
        ++calls;
        if (failing) {
            errno = EIO;
            return -1;
        }
        return ::fdatasync(fd);
    };
    {
        RaftLog log(d.path, o);
        log.append(batch(1, 2, 1));
        log.sync();
        int before = calls;
        failing = true;
        log.append(batch(3, 1, 1));
        CHECK_THROWS_WITH(log.sync(), Contains("Input/output error") && Contains("acknowledges nothing more"));
        CHECK(log.durable_index() == 2);
        failing = false;  // even if the disk "recovers", the replica does not retry
        CHECK_THROWS_AS(log.sync(), StorageError);
        CHECK_THROWS_AS(log.append(batch(4, 1, 1)), StorageError);
        CHECK_THROWS_AS(log.truncate_from(2), StorageError);
        CHECK(calls == before + 1);  // one failed fsync, never retried
    }
    RaftLog again(d.path);  // a new process: what was synced is there
    CHECK(again.last_index() >= 2);
}

TEST_CASE("raft log: truncate_from drops a conflicting suffix durably — a torn write after it is still torn",
          "[unit][raft_log]") {
    TempDir d;
    uint64_t after_cut = 0;
    {
        RaftLog log(d.path);
        log.append(batch(1, 5, 1));
        log.sync();
        log.truncate_from(3);  // entries 3..5 conflict with a new leader's log (§5.3)
        CHECK(log.last_index() == 2);
        CHECK(log.durable_index() == 2);
        after_cut = std::filesystem::file_size(d.path + "/raft-log");
        log.append(batch(3, 2, 2));
        log.sync();
    }
    {
        RaftLog log(d.path);
        REQUIRE(log.last_index() == 4);
        CHECK(log.at(3)->term == 2);
        CHECK(log.at(2)->term == 1);
    }
    // Tear the batch written after the cut: recovery knows the cut batch was closed, so the
    // damage belongs to the final batch and is truncated, not refused.
    std::string full = slurp(d.path + "/raft-log");
    spit(d.path + "/raft-log", full.substr(0, after_cut + 20));
    RaftLog log(d.path);
    CHECK(log.last_index() == 2);
}

TEST_CASE("raft log: a file that is not a log is refused", "[unit][raft_log][badinput]") {
    TempDir d;
    spit(d.path + "/raft-log", "hello, I am a text file\n");
    CHECK_THROWS_WITH(RaftLog(d.path), Contains("not an ftbus log"));
}

TEST_CASE("raft log: compact drops what a snapshot covers — the tail survives a reopen, and appends go on after it",
          "[unit][raft_log][snapshot]") {
    TempDir d;
    {
        RaftLog log(d.path);
        log.append(batch(1, 10, 1));
        log.sync();
        log.append(batch(11, 2, 2));  // not yet synced: compaction makes it durable too
        log.compact(7, 1);
        CHECK(log.first_index() == 8);
        CHECK(log.last_index() == 12);
        CHECK(log.durable_index() == 12);
        CHECK_FALSE(log.dirty());
        CHECK(log.at(7) == nullptr);
        REQUIRE(log.at(8) != nullptr);
        CHECK(log.at(8)->data == "cmd-8");
        log.append(batch(13, 1, 2));
        log.sync();
    }
    CHECK_FALSE(std::filesystem::exists(d.path + "/raft-log.tmp"));
    RaftLog log(d.path);
    CHECK(log.recovery().bytes == 0);
    CHECK(log.first_index() == 8);
    CHECK(log.last_index() == 13);
    CHECK(log.entries() == [] {
        auto b = batch(8, 3, 1);
        for (auto& e : batch(11, 3, 2)) b.push_back(e);
        return b;
    }());
}

TEST_CASE("raft log: compact to a snapshot the log does not lead to drops everything — the next append may start "
          "right after the snapshot",
          "[unit][raft_log][snapshot]") {
    TempDir d;
    {
        RaftLog log(d.path);
        log.append(batch(1, 5, 1));
        log.sync();
        SECTION("the log holds the snapshot's index with another term") { log.compact(3, 2); }
        SECTION("the snapshot is past the end of the log") { log.compact(9, 3); }
        CHECK(log.entries().empty());
        uint64_t next = log.durable_index() + 1;
        log.append(batch(next, 2, 3));
        log.sync();
    }
    RaftLog log(d.path);
    CHECK(log.entries().size() == 2);
    CHECK(log.first_index() >= 4);
}

TEST_CASE("raft log: a compaction that crashed before its rename leaves the old log, and its temporary file is "
          "removed",
          "[unit][raft_log][snapshot]") {
    TempDir d;
    {
        RaftLog log(d.path);
        log.append(batch(1, 4, 1));
        log.sync();
    }
    spit(d.path + "/raft-log.tmp", "FTBUSLOG1\nhalf a rec");
    RaftLog log(d.path);
    CHECK(log.last_index() == 4);
    CHECK(log.first_index() == 1);
    CHECK_FALSE(std::filesystem::exists(d.path + "/raft-log.tmp"));
}

TEST_CASE("raft log: a failed fsync during compaction is final", "[unit][raft_log][snapshot][badinput]") {
    TempDir d;
    bool fail = false;
    RaftLog log(d.path, RaftLog::Options{[&](int fd) {
        if (fail) {
            errno = EIO;
            return -1;
        }
        return ::fdatasync(fd);
    }});
    log.append(batch(1, 4, 1));
    log.sync();
    fail = true;
    CHECK_THROWS_AS(log.compact(2, 1), StorageError);
    fail = false;
    CHECK_THROWS_WITH(log.append(batch(5, 1, 1)), Contains("refusing"));
    CHECK_THROWS_AS(log.sync(), StorageError);
}

TEST_CASE("raft log: compacted or truncated to nothing, the next unsynced batch is torn as any first batch would be — "
          "cut, not refused",
          "[unit][raft_log][snapshot]") {
    TempDir d;
    std::string tail_of_first;
    {
        RaftLog log(d.path);
        log.append(batch(1, 3, 1));
        log.sync();
        SECTION("compacted to nothing") { log.compact(3, 1); }
        SECTION("truncated to nothing") { log.truncate_from(1); }
        REQUIRE(log.entries().empty());
        log.append(batch(log.durable_index() + 1, 2, 2));  // never synced
    }
    // A power loss tears the first of the two unsynced records; the second reached the disk.
    std::string file = slurp(d.path + "/raft-log");
    size_t first = std::string("FTBUSLOG1\n").size();
    file[first + 14] ^= 0x55;  // inside the first record's payload: its checksum fails
    spit(d.path + "/raft-log", file);
    RaftLog log(d.path);
    CHECK(log.entries().empty());
    CHECK(log.recovery().bytes > 0);
}

TEST_CASE("raft log: what is read back at open is fsynced before it counts as durable (it may sit only in the page "
          "cache after a process crash)",
          "[unit][raft_log]") {
    TempDir d;
    {
        RaftLog log(d.path);
        log.append(batch(1, 2, 1));  // written, never synced: the process "crashes"
    }
    int syncs = 0;
    RaftLog log(d.path, RaftLog::Options{[&](int fd) {
        ++syncs;
        return ::fdatasync(fd);
    }});
    CHECK(log.last_index() == 2);
    CHECK(syncs == 1);
    CHECK(log.durable_index() == 2);
}

TEST_CASE("raft log: preallocated — the file grows ahead in chunks, the zero tail is no damage, appends go on at the "
          "last record",
          "[unit][raft_log]") {
    TempDir d;
    RaftLogOptions pre{.sync = {}, .preallocate = 256};
    uint64_t logical = 0;
    {
        RaftLog log(d.path, pre);
        for (uint64_t i = 1; i <= 40; i += 2) {
            log.append(batch(i, 2, 1));
            log.sync();
        }
        logical = slurp(d.path + "/raft-log").find_last_not_of('\0') + 1;
        // Grown ahead: zeros follow the last record, less than a chunk and a batch of them.
        CHECK(std::filesystem::file_size(d.path + "/raft-log") > logical);
        CHECK(std::filesystem::file_size(d.path + "/raft-log") <= logical + 256 + 200);
    }
    for (int round = 0; round < 2; ++round) {
        RaftLog log(d.path, pre);
        CHECK(log.recovery().bytes == 0);  // the zeros are the preallocated space, nothing was cut
        REQUIRE(log.last_index() == 40 + 10 * static_cast<uint64_t>(round));
        for (uint64_t i = 1; i <= log.last_index(); ++i) CHECK(log.at(i)->data == "cmd-" + std::to_string(i));
        log.append(batch(log.last_index() + 1, 10, 2));  // lands at the last record, not after the zeros
        log.sync();
    }
    RaftLog log(d.path, pre);
    CHECK(log.last_index() == 60);
    CHECK(log.at(60)->term == 2);
}

TEST_CASE("raft log: preallocated — a torn final write is cut, and damage to synced entries is still refused",
          "[unit][raft_log][badinput]") {
    TempDir d;
    RaftLogOptions pre{.sync = {}, .preallocate = 4096};
    {
        RaftLog log(d.path, pre);
        log.append(batch(1, 2, 1));
        log.sync();
        log.append(batch(3, 2, 1));
        log.sync();
        log.append(batch(5, 2, 2));  // never synced: may be torn
    }
    const std::string full = slurp(d.path + "/raft-log");
    const size_t end = full.find_last_not_of('\0') + 1;
    REQUIRE(full.size() > end);
    SECTION("the final record half written, zeros after it") {
        std::string torn = full;
        std::fill(torn.begin() + static_cast<long>(end) - 10, torn.begin() + static_cast<long>(end), '\0');
        spit(d.path + "/raft-log", torn);
        RaftLog log(d.path, pre);
        CHECK(log.last_index() == 5);
        CHECK(log.recovery().bytes > 0);
        CHECK_THAT(log.recovery().why, Contains("checksum"));
        log.append(batch(6, 3, 3));
        log.sync();
        RaftLog again(d.path, pre);
        CHECK(again.last_index() == 8);
        CHECK(again.at(6)->term == 3);
    }
    SECTION("a synced record damaged, intact records written after its sync: refused") {
        std::string bad = full;
        bad[10 + 12 + 26] ^= 0x01;  // the first record's data
        spit(d.path + "/raft-log", bad);
        CHECK_THROWS_WITH(RaftLog(d.path, pre), Contains("refusing to start"));
    }
}

TEST_CASE("raft log: preallocated — truncate_from then shorter entries: the stale records after them never come back",
          "[unit][raft_log]") {
    TempDir d;
    RaftLogOptions pre{.sync = {}, .preallocate = 4096};
    {
        RaftLog log(d.path, pre);
        std::vector<LogEntry> b;
        for (uint64_t i = 1; i <= 10; ++i) b.push_back({i, 1, std::string(100, 'a') + std::to_string(i)});
        log.append(b);
        log.sync();
        log.truncate_from(6);
        log.append({{6, 2, "x"}, {7, 2, "y"}});
        log.sync();
        log.append({{8, 2, "z"}});
        log.sync();
    }
    RaftLog log(d.path, pre);
    CHECK(log.recovery().bytes == 0);
    REQUIRE(log.last_index() == 8);
    CHECK(log.at(5)->term == 1);
    CHECK(log.at(6)->data == "x");
    CHECK(log.at(8)->data == "z");
}
