#include "bus/raft_log.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <algorithm>
#include <optional>
#include <sys/stat.h>
#include <unistd.h>

namespace bus {

namespace {

constexpr std::string_view kHeader = "FTBUSLOG1\n";
constexpr uint32_t kMagic = 0x52425446;             // "FTBR" little endian
constexpr size_t kRecordHeader = 12;                 // magic, length, crc
constexpr size_t kPayloadFixed = 8 + 1 + 8 + 8;      // generation, flags, index, term
constexpr uint8_t kFirstOfGeneration = 1;
constexpr uint32_t kMaxPayload = 64u * 1024 * 1024;  // an entry larger than this is corruption


std::string errno_text() { return std::strerror(errno); }

struct Record {
    std::string bad;  ///< "" if valid, else why not
    size_t size = 0;  ///< bytes of the whole record
    uint64_t gen = 0;
    bool first = false;  ///< the first record appended in its generation
    LogEntry entry;
};

Record read_record(std::string_view file, size_t off) {
    Record r;
    size_t left = file.size() - off;
    if (left < kRecordHeader) return r.bad = "a partial record header (" + std::to_string(left) + " bytes)", r;
    if (get_le(file, off, 4) != kMagic) return r.bad = "no record magic", r;
    uint64_t len = get_le(file, off + 4, 4);
    if (len < kPayloadFixed || len > kMaxPayload) return r.bad = "an implausible record length " + std::to_string(len), r;
    if (left < kRecordHeader + len)
        return r.bad = "a record of " + std::to_string(len) + " bytes running past the end of the file", r;
    std::string_view payload = file.substr(off + kRecordHeader, len);
    if (crc32c(payload) != get_le(file, off + 8, 4)) return r.bad = "a checksum mismatch", r;
    r.size = kRecordHeader + len;
    r.gen = get_le(payload, 0, 8);
    r.first = (static_cast<uint8_t>(payload[8]) & kFirstOfGeneration) != 0;
    r.entry.index = get_le(payload, 9, 8);
    r.entry.term = get_le(payload, 17, 8);
    r.entry.data = std::string(payload.substr(kPayloadFixed));
    return r;
}

std::string encode_record(uint64_t gen, bool first, const LogEntry& e) {
    std::string payload;
    put_le(payload, gen, 8);
    payload.push_back(static_cast<char>(first ? kFirstOfGeneration : 0));
    put_le(payload, e.index, 8);
    put_le(payload, e.term, 8);
    payload += e.data;
    std::string rec;
    put_le(rec, kMagic, 4);
    put_le(rec, static_cast<uint32_t>(payload.size()), 4);
    put_le(rec, crc32c(payload), 4);
    return rec + payload;
}

}  // namespace

RaftLog::RaftLog(const std::string& dir, Options o) : path_(dir + "/raft-log"), opts_(std::move(o)) {
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
        throw ConfigError("cannot create data directory " + dir + ": " + errno_text());
    ::unlink((path_ + ".tmp").c_str());  // a compaction that crashed before its rename: the old log stands
    bool existed = ::access(path_.c_str(), F_OK) == 0;
    auto lost = [&](const std::string& how) {
        return ConfigError(path_ + " " + how + ", but raft-state beside it is there: the log was lost (a log is created "
                           "before the state is first written); refusing to start rather than forget acknowledged entries. " +
                           rejoin_advice());
    };
    if (opts_.must_exist && !existed) throw lost("is missing");
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw ConfigError("cannot open " + path_ + ": " + errno_text());
    try {
        std::string file;
        char buf[1 << 16];
        for (;;) {
            ssize_t n = ::pread(fd_, buf, sizeof buf, static_cast<off_t>(file.size()));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) throw ConfigError("cannot read " + path_ + ": " + errno_text());
            if (n == 0) break;
            file.append(buf, static_cast<size_t>(n));
        }
        auto cut = [&](uint64_t at, const std::string& why) {
            if (::ftruncate(fd_, static_cast<off_t>(at)) != 0 || durable() != 0)
                throw ConfigError("cannot truncate the torn tail of " + path_ + ": " + errno_text());
            recovery_ = {at, file.size() - at, why};
            file.resize(at);
        };
        if (file.size() < kHeader.size()) {
            // Empty, or a crash while the header was being written: start afresh.
            if (std::string_view(file) != kHeader.substr(0, file.size()))
                throw ConfigError(path_ + " is not an ftbus log (bad header)");
            if (opts_.must_exist) throw lost("is shorter than its header (" + std::to_string(file.size()) + " bytes)");
            if (!file.empty()) cut(0, "a partial file header");
            std::string h(kHeader);
            if (::pwrite(fd_, h.data(), h.size(), 0) != static_cast<ssize_t>(h.size()) ||
                durable() != 0)
                throw ConfigError("cannot initialise " + path_ + ": " + errno_text());
            file = h;
            if (!existed) {
                try {
                    fsync_dir(dir);
                } catch (const StorageError& e) {
                    throw ConfigError(e.what());
                }
            }
        } else if (std::string_view(file).substr(0, kHeader.size()) != kHeader) {
            throw ConfigError(path_ + " is not an ftbus log (bad header)");
        }
        size_t off = kHeader.size();
        uint64_t last_gen = 0;  // generation of the last intact record
        while (off < file.size()) {
            Record r = read_record(file, off);
            if (r.bad.empty() && !entries_.empty() && r.entry.index != last_index() + 1)
                r.bad = "index " + std::to_string(r.entry.index) + " where " + std::to_string(last_index() + 1) +
                        " was expected";
            if (r.bad.empty() && r.entry.index == 0) r.bad = "index 0";
            if (r.bad.empty() && r.gen < last_gen) r.bad = "a generation going back";
            if (!r.bad.empty()) {
                // Zeros to the end: the preallocated space after the last record (or a
                // final write of which nothing landed). Nothing to cut.
                if (file.find_first_not_of('\0', off) == std::string::npos) break;
                // Torn or damaged? Records appended in generation g become durable at the
                // (g+1)-th sync, after which generation g+1 starts. An intact record written
                // after a sync that covered the damaged one — the first record of the next
                // generation, or any later generation — proves the damage hit acknowledged
                // data: refuse. Otherwise the damage lies in the final, unsynced group: a
                // torn write, cut off.
                const std::string_view magic("FTBR", 4);  // kMagic as it lies in the file
                for (size_t scan = file.find(magic, off + 1); scan != std::string::npos && scan + kRecordHeader <= file.size();
                     scan = file.find(magic, scan + 1)) {
                    Record later = read_record(file, scan);
                    if (!later.bad.empty()) continue;
                    bool synced_after = later.gen >= last_gen + 2 || (later.gen == last_gen + 1 && later.first) ||
                                        later.gen < last_gen;
                    if (synced_after)
                        throw ConfigError(path_ + ": corrupt record at offset " + std::to_string(off) + " (" + r.bad +
                                          "), followed by intact records written after it was synced (offset " +
                                          std::to_string(scan) +
                                          "): acknowledged entries are damaged; refusing to start (restore this "
                                          "replica from a healthy one)");
                }
                cut(off, r.bad);  // a torn final write: it was never acknowledged
                break;
            }
            entries_.push_back(std::move(r.entry));
            offsets_.push_back(off);
            last_gen = r.gen;
            off += r.size;
        }
        // What we read back may sit only in the page cache (a process crash before its
        // fsync): make it durable before counting it so, or a restarted follower would
        // acknowledge entries a power loss could still take away.
        if (!entries_.empty() && durable() != 0) throw ConfigError("cannot fsync " + path_ + ": " + errno_text());
        // Everything on disk now counts as synced: appends start a new generation.
        gen_ = last_gen + 1;
        size_ = off;  // the end of the last record: zeros after it are preallocated space
        alloc_ = file.size();
        durable_index_ = last_index();
    } catch (...) {
        ::close(fd_);
        throw;
    }
}

int RaftLog::durable(int fd) {
    if (fd < 0) fd = fd_;
    return opts_.sync ? opts_.sync(fd) : ::fdatasync(fd);
}

RaftLog::~RaftLog() {
    if (fd_ >= 0) ::close(fd_);
}

const LogEntry* RaftLog::at(uint64_t index) const {
    if (entries_.empty() || index < first_index() || index > last_index()) return nullptr;
    return &entries_[index - first_index()];
}

void RaftLog::fail(const std::string& what) {
    failed_ = what;
    throw StorageError(what + "; this replica acknowledges nothing more (a failed fsync is never retried)");
}

void RaftLog::check_ok() const {
    if (!failed_.empty())
        throw StorageError("an earlier write or fsync of " + path_ + " failed (" + failed_ + "): refusing");
}

void RaftLog::append(const std::vector<LogEntry>& batch) {
    check_ok();
    if (batch.empty()) return;
    uint64_t next = entries_.empty() ? batch.front().index : last_index() + 1;
    if (next == 0) throw std::invalid_argument("RaftLog: index 0");
    for (size_t i = 0; i < batch.size(); ++i)
        if (batch[i].index != next + i)
            throw std::invalid_argument("RaftLog: append of index " + std::to_string(batch[i].index) + " where " +
                                        std::to_string(next + i) + " comes next");
    std::string buf;
    std::vector<uint64_t> offs;
    for (size_t i = 0; i < batch.size(); ++i) {
        offs.push_back(size_ + buf.size());
        buf += encode_record(gen_, first_pending_ && i == 0, batch[i]);
    }
    first_pending_ = false;
    if (size_ + buf.size() > alloc_) preallocate(size_ + buf.size());
    if (!pwrite_all(fd_, buf, size_)) fail("write to " + path_ + " failed: " + errno_text());
    size_ += buf.size();
    alloc_ = std::max(alloc_, size_);
    for (size_t i = 0; i < batch.size(); ++i) {
        entries_.push_back(batch[i]);
        offsets_.push_back(offs[i]);
    }
    dirty_ = true;
}

void RaftLog::preallocate(uint64_t need) {
    if (opts_.preallocate == 0) return;
    uint64_t want = need + opts_.preallocate;
    int rc;
    do {
        rc = ::fallocate(fd_, 0, static_cast<off_t>(alloc_), static_cast<off_t>(want - alloc_));
    } while (rc != 0 && errno == EINTR);
    if (rc == 0)
        alloc_ = want;
    else
        opts_.preallocate = 0;  // unsupported here (or no room): grow with each append; the write says if it fails
}

void RaftLog::sync() {
    check_ok();
    if (!dirty_) return;
    ++fsyncs_;
    if (durable() != 0) fail("fdatasync of " + path_ + " failed: " + errno_text());
    dirty_ = false;
    durable_index_ = last_index();
    ++gen_;  // what is appended from now on is covered by the next sync only
    first_pending_ = true;
}

void RaftLog::compact(uint64_t index, uint64_t term) {
    check_ok();
    const LogEntry* at_index = at(index);
    bool continues = (at_index && at_index->term == term) || (!entries_.empty() && first_index() == index + 1);
    std::vector<LogEntry> keep;
    if (continues)
        for (const LogEntry& e : entries_)
            if (e.index > index) keep.push_back(e);
    std::string buf(kHeader);
    std::vector<uint64_t> offs;
    for (size_t i = 0; i < keep.size(); ++i) {
        offs.push_back(buf.size());
        buf += encode_record(1, i == 0, keep[i]);
    }
    std::string tmp = path_ + ".tmp";
    int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fail("cannot create " + tmp + ": " + errno_text());
    if (!pwrite_all(fd, buf, 0)) {
        std::string why = errno_text();
        ::close(fd);
        fail("write to " + tmp + " failed: " + why);
    }
    ++fsyncs_;
    if (durable(fd) != 0) {
        std::string why = errno_text();
        ::close(fd);
        fail("fdatasync of " + tmp + " failed: " + why);
    }
    if (::rename(tmp.c_str(), path_.c_str()) != 0) {
        std::string why = errno_text();
        ::close(fd);
        fail("cannot rename " + tmp + " to " + path_ + ": " + why);
    }
    ::close(fd_);
    fd_ = fd;
    ++fsyncs_;
    try {
        fsync_dir(path_.substr(0, path_.rfind('/')));
    } catch (const StorageError& e) {
        fail(e.what());
    }
    entries_ = std::move(keep);
    offsets_ = std::move(offs);
    size_ = buf.size();
    alloc_ = size_;
    gen_ = entries_.empty() ? 1 : 2;  // generation 1 is synced; an empty file starts afresh
    first_pending_ = true;
    dirty_ = false;
    durable_index_ = std::max(index, last_index());
}

void RaftLog::truncate_from(uint64_t index) {
    check_ok();
    if (entries_.empty() || index > last_index()) return;
    size_t keep = index <= first_index() ? 0 : static_cast<size_t>(index - first_index());
    uint64_t off = offsets_[keep];
    if (::ftruncate(fd_, static_cast<off_t>(off)) != 0) fail("truncating " + path_ + " failed: " + errno_text());
    entries_.resize(keep);
    offsets_.resize(keep);
    size_ = off;
    alloc_ = off;  // the preallocated zeros went too: stale records must never follow the log
    ++fsyncs_;
    if (durable() != 0) fail("fdatasync of " + path_ + " failed: " + errno_text());
    dirty_ = false;
    durable_index_ = last_index();
    // The next records belong to a new generation; in a file with no records left, to the
    // first one (recovery compares generations with the last intact record's).
    gen_ = entries_.empty() ? 1 : gen_ + 1;
    first_pending_ = true;
}

}  // namespace bus
