// RaftStorage: the durable term and vote, in a temporary directory per test.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "bus/raft_disk.hpp"
#include "bus/raft_storage.hpp"

#include "test_util.hpp"

using namespace bus;
using Catch::Matchers::Contains;

namespace {

struct TempDir : test::TempDir {
    TempDir() : test::TempDir("ftbus-storage") {}
};

std::string slurp(const std::string& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace

TEST_CASE("crc32c is the Castagnoli CRC (check value of \"123456789\" is e3069283)", "[unit][storage]") {
    CHECK(crc32c("123456789") == 0xe3069283u);
    CHECK(crc32c("") == 0u);
}

TEST_CASE("raft storage: a fresh directory starts at term 0 with no vote — saved state survives reopening",
          "[unit][storage]") {
    TempDir d;
    std::string dir = d.path + "/node";
    {
        RaftStorage s(dir);  // created
        CHECK(s.state() == HardState{0, 0});
        s.save(HardState{7, 3});
        CHECK(s.state() == HardState{7, 3});
    }
    RaftStorage again(dir);
    CHECK(again.state() == HardState{7, 3});
    CHECK(slurp(dir + "/raft-state") == RaftStorage::format(HardState{7, 3}));
    CHECK_FALSE(std::filesystem::exists(dir + "/raft-state.tmp"));
}

TEST_CASE("raft storage: the file is readable text with a checksum that parse() verifies", "[unit][storage]") {
    std::string text = RaftStorage::format(HardState{12, 4});
    CHECK_THAT(text, Contains("term 12\nvote 4\ncrc32c "));
    CHECK(RaftStorage::parse(text, "f") == HardState{12, 4});
    SECTION("a flipped digit fails the checksum") {
        std::string bad = text;
        bad[bad.find("12")] = '9';
        CHECK_THROWS_WITH(RaftStorage::parse(bad, "f"), Contains("f: corrupt Raft state (checksum mismatch)"));
    }
    SECTION("a truncated file has no checksum line") {
        CHECK_THROWS_WITH(RaftStorage::parse(text.substr(0, 20), "f"), Contains("no checksum line"));
    }
    SECTION("an empty file") { CHECK_THROWS_AS(RaftStorage::parse("", "f"), ConfigError); }
    SECTION("another format under a valid checksum") {
        std::string body = "ftbus raft-state 2\nterm 1\nvote 1\n";
        char crc[16];
        std::snprintf(crc, sizeof crc, "%08x", crc32c(body));
        CHECK_THROWS_WITH(RaftStorage::parse(body + "crc32c " + crc + "\n", "f"), Contains("unknown header"));
    }
}

TEST_CASE("raft storage: a corrupt state file refuses start-up, naming the file", "[unit][storage]") {
    TempDir d;
    std::ofstream(d.path + "/raft-state") << "ftbus raft-state 1\nterm 7\nvote 3\ncrc32c 00000000\n";
    CHECK_THROWS_WITH(RaftStorage(d.path), Contains(d.path + "/raft-state: corrupt Raft state"));
}

TEST_CASE("raft storage: one process per data directory", "[unit][storage]") {
    TempDir d;
    RaftStorage first(d.path);
    CHECK_THROWS_WITH(RaftStorage(d.path), Contains("is in use by another process"));
}

TEST_CASE("raft storage: an unusable directory is a configuration error", "[unit][storage]") {
    CHECK_THROWS_WITH(RaftStorage("/proc/no-such-dir/x"), Contains("cannot create data directory"));
    CHECK_THROWS_WITH(RaftStorage(""), Contains("--data"));
}

TEST_CASE("raft storage: a snapshot survives reopening, binary data and all", "[unit][storage][snapshot]") {
    TempDir d;
    std::string data("state\0with\xff bytes", 17);
    {
        RaftStorage s(d.path);
        CHECK(s.snapshot().index == 0);
        s.save_snapshot(Snapshot{120, 4, data});
        CHECK(s.snapshot().index == 120);
    }
    CHECK_FALSE(std::filesystem::exists(d.path + "/raft-snapshot.tmp"));
    RaftStorage s(d.path);
    CHECK(s.snapshot() == Snapshot{120, 4, data});
}

TEST_CASE("raft storage: a damaged snapshot refuses start-up, naming the file and the problem",
          "[unit][storage][snapshot][badinput]") {
    TempDir d;
    { RaftStorage(d.path).save_snapshot(Snapshot{7, 2, "abcdef"}); }
    std::string path = d.path + "/raft-snapshot";
    std::string good = slurp(path);
    auto write = [&](const std::string& bytes) {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << bytes;
    };
    SECTION("a flipped data byte") {
        std::string bad = good;
        bad[bad.size() - 2] ^= 1;
        write(bad);
        CHECK_THROWS_WITH(RaftStorage(d.path), Contains(path) && Contains("checksum mismatch"));
    }
    SECTION("cut short") {
        write(good.substr(0, good.size() - 3));
        CHECK_THROWS_WITH(RaftStorage(d.path), Contains(path) && Contains("length"));
    }
    SECTION("not a snapshot") {
        write("hello");
        CHECK_THROWS_WITH(RaftStorage(d.path), Contains(path) && Contains("bad header"));
    }
}

TEST_CASE("raft disk: a crash between writing a snapshot and compacting the log — the log is compacted at open",
          "[unit][storage][snapshot]") {
    TempDir d;
    {
        RaftDisk disk(d.path);
        disk.storage.save(HardState{1, 0});  // a replica's term is durable before its entries
        for (uint64_t i = 1; i <= 6; ++i) disk.log.append({LogEntry{i, 1, "e" + std::to_string(i)}});
        disk.log.sync();
        disk.storage.save_snapshot(Snapshot{4, 1, "up to 4"});  // then "crash" before compact
    }
    RaftDisk disk(d.path);
    CHECK(disk.storage.snapshot().index == 4);
    CHECK(disk.log.first_index() == 5);
    CHECK(disk.log.last_index() == 6);
}

TEST_CASE("raft disk: a log without its raft-state file is refused — the vote it held is gone — and a fresh "
          "directory is not",
          "[unit][storage][badinput]") {
    TempDir d;
    { RaftDisk fresh(d.path); }  // creates the log file, no state yet: fine
    {
        RaftDisk disk(d.path);
        disk.storage.save(HardState{3, 2});
        disk.log.append({LogEntry{1, 3, "e1"}});
        disk.log.sync();
    }
    { RaftDisk again(d.path); }  // everything there: fine
    REQUIRE(std::filesystem::remove(d.path + "/raft-state"));
    CHECK_THROWS_WITH(RaftDisk(d.path), Contains("raft-state is missing") && Contains("term 3") &&
                                            Contains("second vote"));
}

TEST_CASE("raft disk: a lost log beside its raft-state (missing, or cut inside its header) and a log compacted past "
          "its snapshot are refused, and stay refused",
          "[unit][storage][badinput]") {
    TempDir d;
    {
        RaftDisk disk(d.path);
        disk.storage.save(HardState{2, 1});
        for (uint64_t i = 1; i <= 6; ++i) disk.log.append({LogEntry{i, 2, "e" + std::to_string(i)}});
        disk.log.sync();
        disk.storage.save_snapshot(Snapshot{4, 2, "up to 4"});
        disk.log.compact(4, 2);
    }
    const std::string log = d.path + "/raft-log", snap = d.path + "/raft-snapshot";
    auto copy = [](const std::string& from, const std::string& to) {
        std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing);
    };
    copy(log, d.path + "/log.bak");
    copy(snap, d.path + "/snap.bak");
    SECTION("the log file missing") {
        REQUIRE(std::filesystem::remove(log));
        CHECK_THROWS_WITH(RaftDisk(d.path), Contains("raft-log is missing") && Contains("the log was lost"));
        CHECK_FALSE(std::filesystem::exists(log));  // not started afresh: the next start refuses too
        CHECK_THROWS_WITH(RaftDisk(d.path), Contains("raft-log is missing"));
    }
    SECTION("the log file cut inside its header") {
        std::filesystem::resize_file(log, 5);
        CHECK_THROWS_WITH(RaftDisk(d.path), Contains("shorter than its header (5 bytes)"));
        CHECK(std::filesystem::file_size(log) == 5);
    }
    SECTION("the snapshot missing, with the log compacted past index 1") {
        REQUIRE(std::filesystem::remove(snap));
        CHECK_THROWS_WITH(RaftDisk(d.path), Contains("starts at index 5") && Contains("raft-snapshot is missing") &&
                                                Contains("the entries between are lost"));
    }
    SECTION("all put back: it opens as it was") {
        copy(d.path + "/log.bak", log);
        copy(d.path + "/snap.bak", snap);
        RaftDisk disk(d.path);
        CHECK(disk.storage.snapshot().index == 4);
        CHECK(disk.log.first_index() == 5);
        CHECK(disk.log.last_index() == 6);
    }
}
