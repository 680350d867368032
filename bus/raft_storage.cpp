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

std::string errno_text() { return std::strerror(errno); }

/// Writes all of `data` to `fd`, retrying short writes and EINTR.
bool write_all(int fd, const std::string& data) {
    const char* p = data.data();
    size_t left = data.size();
    while (left > 0) {
        ssize_t n = ::write(fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        p += n;
        left -= static_cast<size_t>(n);
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

}  // namespace

std::string RaftStorage::format(const HardState& s) {
    std::string body = std::string(kHeader) + "\nterm " + std::to_string(s.term) + "\nvote " +
                       std::to_string(s.vote) + "\n";
    char crc[16];
    std::snprintf(crc, sizeof crc, "%08x", crc32c(body));
    return body + "crc32c " + crc + "\n";
}

HardState RaftStorage::parse(const std::string& text, const std::string& origin) {
    auto bad = [&](const std::string& why) -> ConfigError {
        return ConfigError(origin + ": corrupt Raft state (" + why +
                           "); refusing to start rather than risk a second vote in a term. Restore the "
                           "file or, if this node's state is truly lost, remove the data directory "
                           "(it then rejoins with no vote; safe only if no other copy of this node runs)");
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
    if (::mkdir(dir_.c_str(), 0755) != 0 && errno != EEXIST)
        throw ConfigError("cannot create data directory " + dir_ + ": " + errno_text());
    std::string lock = dir_ + "/LOCK";
    lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd_ < 0) throw ConfigError("cannot open " + lock + ": " + errno_text());
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
        ::close(lock_fd_);
        lock_fd_ = -1;
        throw ConfigError("data directory " + dir_ + " is in use by another process (" + lock + " is locked)");
    }
    std::string path = dir_ + "/" + kStateFile;
    std::ifstream in(path, std::ios::binary);
    if (in) {
        std::stringstream ss;
        ss << in.rdbuf();
        state_ = parse(ss.str(), path);
    }
}

RaftStorage::~RaftStorage() {
    if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

void RaftStorage::save(const HardState& s) {
    std::string path = dir_ + "/" + kStateFile, tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw StorageError("cannot write " + tmp + ": " + errno_text());
    bool ok = write_all(fd, format(s));
    std::string why = ok ? "" : errno_text();
    if (ok && ::fsync(fd) != 0) ok = false, why = "fsync failed: " + errno_text();
    ::close(fd);
    if (!ok) throw StorageError("cannot write " + tmp + ": " + why);
    if (::rename(tmp.c_str(), path.c_str()) != 0)
        throw StorageError("cannot rename " + tmp + " to " + path + ": " + errno_text());
    fsync_dir(dir_);
    state_ = s;
}

}  // namespace bus
