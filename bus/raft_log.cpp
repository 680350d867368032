#include "bus/raft_log.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <optional>
#include <sys/stat.h>
#include <unistd.h>

namespace bus {

namespace {

constexpr std::string_view kHeader = "FTBUSLOG1\n";
constexpr uint32_t kMagic = 0x52425446;             // "FTBR" little endian
constexpr size_t kRecordHeader = 12;                 // magic, length, crc
constexpr size_t kPayloadFixed = 8 + 1 + 8 + 8;      // batch, last, index, term
constexpr uint32_t kMaxPayload = 64u * 1024 * 1024;  // an entry larger than this is corruption

void put32(std::string& s, uint32_t v) {
    for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put64(std::string& s, uint64_t v) {
    for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t get(std::string_view s, size_t at, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(s[at + i])) << (8 * i);
    return v;
}

std::string errno_text() { return std::strerror(errno); }

struct Record {
    std::string bad;  ///< "" if valid, else why not
    size_t size = 0;  ///< bytes of the whole record
    uint64_t batch = 0;
    bool last = false;
    LogEntry entry;
};

Record read_record(std::string_view file, size_t off) {
    Record r;
    size_t left = file.size() - off;
    if (left < kRecordHeader) return r.bad = "a partial record header (" + std::to_string(left) + " bytes)", r;
    if (get(file, off, 4) != kMagic) return r.bad = "no record magic", r;
    uint64_t len = get(file, off + 4, 4);
    if (len < kPayloadFixed || len > kMaxPayload) return r.bad = "an implausible record length " + std::to_string(len), r;
    if (left < kRecordHeader + len)
        return r.bad = "a record of " + std::to_string(len) + " bytes running past the end of the file", r;
    std::string_view payload = file.substr(off + kRecordHeader, len);
    if (crc32c(payload) != get(file, off + 8, 4)) return r.bad = "a checksum mismatch", r;
    r.size = kRecordHeader + len;
    r.batch = get(payload, 0, 8);
    r.last = payload[8] != 0;
    r.entry.index = get(payload, 9, 8);
    r.entry.term = get(payload, 17, 8);
    r.entry.data = std::string(payload.substr(kPayloadFixed));
    return r;
}

std::string encode_record(uint64_t batch, bool last, const LogEntry& e) {
    std::string payload;
    put64(payload, batch);
    payload.push_back(last ? 1 : 0);
    put64(payload, e.index);
    put64(payload, e.term);
    payload += e.data;
    std::string rec;
    put32(rec, kMagic);
    put32(rec, static_cast<uint32_t>(payload.size()));
    put32(rec, crc32c(payload));
    return rec + payload;
}

}  // namespace

RaftLog::RaftLog(const std::string& dir, Options o) : path_(dir + "/raft-log"), opts_(std::move(o)) {
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
        throw ConfigError("cannot create data directory " + dir + ": " + errno_text());
    bool existed = ::access(path_.c_str(), F_OK) == 0;
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
            if (::ftruncate(fd_, static_cast<off_t>(at)) != 0 || (opts_.sync ? opts_.sync(fd_) : ::fdatasync(fd_)) != 0)
                throw ConfigError("cannot truncate the torn tail of " + path_ + ": " + errno_text());
            recovery_ = {at, file.size() - at, why};
            file.resize(at);
        };
        if (file.size() < kHeader.size()) {
            // Empty, or a crash while the header was being written: start afresh.
            if (std::string_view(file) != kHeader.substr(0, file.size()))
                throw ConfigError(path_ + " is not an ftbus log (bad header)");
            if (!file.empty()) cut(0, "a partial file header");
            std::string h(kHeader);
            if (::pwrite(fd_, h.data(), h.size(), 0) != static_cast<ssize_t>(h.size()) ||
                (opts_.sync ? opts_.sync(fd_) : ::fdatasync(fd_)) != 0)
                throw ConfigError("cannot initialise " + path_ + ": " + errno_text());
            file = h;
            if (!existed) {
                int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (d < 0 || ::fsync(d) != 0) throw ConfigError("cannot fsync directory " + dir + ": " + errno_text());
                ::close(d);
            }
        } else if (std::string_view(file).substr(0, kHeader.size()) != kHeader) {
            throw ConfigError(path_ + " is not an ftbus log (bad header)");
        }
        size_t off = kHeader.size();
        bool last_closed_batch = true;  // the last good record ended its batch
        while (off < file.size()) {
            Record r = read_record(file, off);
            if (r.bad.empty() && r.entry.index == 0 && r.last && r.batch == batch_ && !last_closed_batch &&
                r.entry.data.empty()) {
                last_closed_batch = true;  // the marker truncate_from writes to close a cut batch
                last_flags_.back() = true;
                off += r.size;
                continue;
            }
            if (r.bad.empty() && !entries_.empty() && r.entry.index != last_index() + 1)
                r.bad = "index " + std::to_string(r.entry.index) + " where " + std::to_string(last_index() + 1) +
                        " was expected";
            if (r.bad.empty() && r.entry.index == 0) r.bad = "index 0";
            if (!r.bad.empty()) {
                // Which batch the damaged record belongs to: the open batch, or the next one.
                uint64_t bad_batch = last_closed_batch ? batch_ + 1 : batch_;
                for (size_t scan = off + 1; scan + kRecordHeader <= file.size(); ++scan) {
                    if (get(file, scan, 4) != kMagic) continue;
                    Record later = read_record(file, scan);
                    if (later.bad.empty() && later.batch != bad_batch)
                        throw ConfigError(path_ + ": corrupt record at offset " + std::to_string(off) + " (" + r.bad +
                                          ") before intact records of batch " + std::to_string(later.batch) +
                                          " at offset " + std::to_string(scan) +
                                          ": acknowledged entries are damaged; refusing to start (restore this "
                                          "replica from a healthy one)");
                }
                cut(off, r.bad);  // a torn final write: it was never acknowledged
                break;
            }
            entries_.push_back(std::move(r.entry));
            offsets_.push_back(off);
            last_flags_.push_back(r.last);
            batches_.push_back(r.batch);
            batch_ = r.batch;
            last_closed_batch = r.last;
            off += r.size;
        }
        size_ = file.size();
        durable_index_ = last_index();
    } catch (...) {
        ::close(fd_);
        throw;
    }
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
    ++batch_;
    std::string buf;
    std::vector<uint64_t> offs;
    for (size_t i = 0; i < batch.size(); ++i) {
        offs.push_back(size_ + buf.size());
        buf += encode_record(batch_, i + 1 == batch.size(), batch[i]);
    }
    size_t done = 0;
    while (done < buf.size()) {
        ssize_t n = ::pwrite(fd_, buf.data() + done, buf.size() - done, static_cast<off_t>(size_ + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail("write to " + path_ + " failed: " + (n < 0 ? errno_text() : "no progress"));
        done += static_cast<size_t>(n);
    }
    size_ += buf.size();
    for (size_t i = 0; i < batch.size(); ++i) {
        entries_.push_back(batch[i]);
        offsets_.push_back(offs[i]);
        last_flags_.push_back(i + 1 == batch.size());
        batches_.push_back(batch_);
    }
    dirty_ = true;
}

void RaftLog::sync() {
    check_ok();
    if (!dirty_) return;
    ++fsyncs_;
    if ((opts_.sync ? opts_.sync(fd_) : ::fdatasync(fd_)) != 0) fail("fdatasync of " + path_ + " failed: " + errno_text());
    dirty_ = false;
    durable_index_ = last_index();
}

void RaftLog::truncate_from(uint64_t index) {
    check_ok();
    if (entries_.empty() || index > last_index()) return;
    size_t keep = index <= first_index() ? 0 : static_cast<size_t>(index - first_index());
    uint64_t off = offsets_[keep];
    if (::ftruncate(fd_, static_cast<off_t>(off)) != 0) fail("truncating " + path_ + " failed: " + errno_text());
    entries_.resize(keep);
    offsets_.resize(keep);
    last_flags_.resize(keep);
    batches_.resize(keep);
    batch_ = keep > 0 ? batches_.back() : 0;  // the next append starts the batch after what is kept
    size_ = off;
    // The cut may have removed the end of a batch: close it with a marker (index 0, no
    // entry), so that recovery knows a damaged record after it belongs to a later batch.
    if (keep > 0 && !last_flags_.back()) {
        std::string marker = encode_record(batch_, true, LogEntry{0, 0, {}});
        if (::pwrite(fd_, marker.data(), marker.size(), static_cast<off_t>(size_)) != static_cast<ssize_t>(marker.size()))
            fail("write to " + path_ + " failed: " + errno_text());
        size_ += marker.size();
        last_flags_.back() = true;
    }
    ++fsyncs_;
    if ((opts_.sync ? opts_.sync(fd_) : ::fdatasync(fd_)) != 0) fail("fdatasync of " + path_ + " failed: " + errno_text());
    dirty_ = false;
    durable_index_ = last_index();
}

}  // namespace bus
