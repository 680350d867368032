#include "bus/raft_storage.hpp"

#include <boost/crc.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace bus {

uint32_t crc32c(std::string_view data) {
    boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
    crc.process_bytes(data.data(), data.size());
    return crc.checksum();
}

namespace {

constexpr const char* kStateFile = "raft-state";
constexpr const char* kHeader = "ftbus raft-state 1";
constexpr const char* kSnapshotFile = "raft-snapshot";
constexpr std::string_view kSnapshotHeader = "FTBUSSNAP1\n";
constexpr size_t kSnapshotFixed = 8 + 8 + 8 + 4;

std::string read_whole(const std::string& path, bool& exists) {
    std::ifstream in(path, std::ios::binary);
    exists = static_cast<bool>(in);
    if (!in) return {};
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string errno_text() { return std::strerror(errno); }

}  // namespace

void put_le(std::string& s, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t get_le(std::string_view s, size_t at, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(s[at + i])) << (8 * i);
    return v;
}

bool pwrite_all(int fd, std::string_view data, uint64_t offset) {
    size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) errno = EIO;  // no progress
        if (n <= 0) return false;
        done += static_cast<size_t>(n);
    }
    return true;
}

void fsync_dir(const std::string& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) throw StorageError("cannot open " + dir + " to fsync it: " + errno_text());
    int rc = ::fsync(fd);
    std::string why = rc != 0 ? errno_text() : "";
    ::close(fd);
    if (rc != 0) throw StorageError("fsync of directory " + dir + " failed: " + why);
}

std::string RaftStorage::format(const HardState& s) {
    std::string body = std::string(kHeader) + "\nterm " + std::to_string(s.term) + "\nvote " +
                       std::to_string(s.vote) + "\n";
    char crc[16];
    std::snprintf(crc, sizeof crc, "%08x", crc32c(body));
    return body + "crc32c " + crc + "\n";
}

std::string rejoin_advice() {
    return "Restore the data directory from a backup or, if it is truly lost, empty it: the replica then "
           "rejoins with no log and no vote and catches up from the leader. That is safe only if no other "
           "copy of this node runs, the other replicas are a majority holding every committed entry, and "
           "no election of the current term is still under way (the vote it cast there is forgotten)";
}

HardState RaftStorage::parse(const std::string& text, const std::string& origin) {
    auto bad = [&](const std::string& why) -> ConfigError {
        return ConfigError(origin + ": corrupt Raft state (" + why +
                           "); refusing to start rather than risk a second vote in a term. " + rejoin_advice());
    };
    size_t crc_at = text.rfind("crc32c ");
    if (crc_at == std::string::npos || (crc_at > 0 && text[crc_at - 1] != '\n')) throw bad("no checksum line");
    std::string body = text.substr(0, crc_at);
    std::string crc_line = text.substr(crc_at);
    char want[16];
    std::snprintf(want, sizeof want, "%08x", crc32c(body));
    if (crc_line != std::string("crc32c ") + want + "\n") throw bad("checksum mismatch");
    std::istringstream in(body);
    std::string header, k1, k2;
    HardState s;
    if (!std::getline(in, header) || header != kHeader) throw bad("unknown header '" + header + "'");
    if (!(in >> k1 >> s.term >> k2 >> s.vote) || k1 != "term" || k2 != "vote") throw bad("unreadable fields");
    return s;
}

RaftStorage::RaftStorage(std::string dir) : dir_(std::move(dir)) {
    if (dir_.empty()) throw ConfigError("no data directory given (--data DIR)");
    if (::mkdir(dir_.c_str(), 0755) == 0)
        created_ = true;
    else if (errno != EEXIST)
        throw ConfigError("cannot create data directory " + dir_ + ": " + errno_text());
    std::string lock = dir_ + "/LOCK";
    lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd_ < 0) throw ConfigError("cannot open " + lock + ": " + errno_text());
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
        ::close(lock_fd_);
        lock_fd_ = -1;
        throw ConfigError("data directory " + dir_ + " is in use by another process (" + lock + " is locked)");
    }
    try {
        std::string path = dir_ + "/" + kStateFile;
        bool exists = false;
        std::string text = read_whole(path, exists);
        if (exists) state_ = parse(text, path);
        state_found_ = exists;
        path = dir_ + "/" + kSnapshotFile;
        std::string bytes = read_whole(path, exists);
        if (exists) snapshot_ = parse_snapshot(bytes, path);
    } catch (...) {
        ::close(lock_fd_);
        lock_fd_ = -1;
        throw;
    }
}

std::string RaftStorage::format_snapshot(const Snapshot& s) {
    std::string fixed;
    put_le(fixed, s.index, 8);
    put_le(fixed, s.term, 8);
    put_le(fixed, s.data.size(), 8);
    std::string out(kSnapshotHeader);
    out += fixed;
    put_le(out, crc32c(fixed + s.data), 4);
    return out + s.data;
}

Snapshot RaftStorage::parse_snapshot(const std::string& bytes, const std::string& origin) {
    auto bad = [&](const std::string& why) -> ConfigError {
        return ConfigError(origin + ": corrupt snapshot (" + why +
                           "); refusing to start: it stands for acknowledged entries that are no longer in the "
                           "log. " + rejoin_advice());
    };
    std::string_view b(bytes);
    if (b.size() < kSnapshotHeader.size() || b.substr(0, kSnapshotHeader.size()) != kSnapshotHeader)
        throw bad("bad header");
    b.remove_prefix(kSnapshotHeader.size());
    if (b.size() < kSnapshotFixed) throw bad("truncated (" + std::to_string(b.size()) + " bytes after the header)");
    Snapshot s;
    s.index = get_le(b, 0, 8);
    s.term = get_le(b, 8, 8);
    uint64_t len = get_le(b, 16, 8);
    if (len != b.size() - kSnapshotFixed)
        throw bad("length " + std::to_string(len) + " but " + std::to_string(b.size() - kSnapshotFixed) + " bytes of data");
    s.data = std::string(b.substr(kSnapshotFixed));
    if (crc32c(std::string(b.substr(0, 24)) + s.data) != get_le(b, 24, 4)) throw bad("checksum mismatch");
    if (s.index == 0 || s.term == 0) throw bad("index or term 0");
    return s;
}

RaftStorage::~RaftStorage() {
    if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

void RaftStorage::write_durably(const std::string& name, const std::string& data) {
    std::string path = dir_ + "/" + name, tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw StorageError("cannot write " + tmp + ": " + errno_text());
    bool ok = pwrite_all(fd, data, 0);
    std::string why = ok ? "" : errno_text();
    ++fsyncs_;
    if (ok && ::fsync(fd) != 0) ok = false, why = "fsync failed: " + errno_text();
    ::close(fd);
    if (!ok) throw StorageError("cannot write " + tmp + ": " + why);
    if (::rename(tmp.c_str(), path.c_str()) != 0)
        throw StorageError("cannot rename " + tmp + " to " + path + ": " + errno_text());
    ++fsyncs_;
    fsync_dir(dir_);
}

void RaftStorage::save(const HardState& s) {
    write_durably(kStateFile, format(s));
    state_ = s;
}

void RaftStorage::save_snapshot(const Snapshot& s) {
    write_durably(kSnapshotFile, format_snapshot(s));
    snapshot_ = s;
}

}  // namespace bus
