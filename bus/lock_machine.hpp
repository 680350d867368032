// LockMachine: the lock service's replicated state machine (the design brief's "The lock service";
// Chubby and etcd in spirit). It sits on Raft's replicated log through the StateMachine
// seam: every replica applies the same commands in the same order and so holds the same
// sessions, locks, queues and files. It knows nothing of sockets, clocks or leaders: lease
// timing is the leader's business (it proposes `expire`), and what applying a command
// produced — the reply to its sender, grants pushed to waiters, trace events — is collected
// for the server to send and trace.
//
// Commands (each one log entry's data, msgpack; LockCommand; those from clients also carry
// `client`, the sending process, put there by the leader):
//   open {client, req, ttl_ms}     a session; its id is the entry's index
//   close {session, req}           the session ends: its locks are released, it leaves queues
//   acquire {session, req, lock}   granted (token) if free, else queued FIFO (position)
//   release {session, req, lock, token}        by the holder with the current token only
//   cancel {session, req, lock}    it no longer wants the lock: out of the queue, or given
//                                   up if its grant got there first
//   append {session, req, lock, token, file, data}   to the file `lock` guards, by the
//                                   holder with the current token only, at the file's end
//   status {session, req, lock}    holders and queues ("" = every lock) and file sizes
//   expire {session, epoch}        from the leader: the session's lease ran out. Applies
//                                   only if the session's epoch is still `epoch` (any of
//                                   its commands applied since makes the expiry stale)
// Rules:
//  - the fencing token of a grant is the index of the entry that made it (an acquire, or
//    the release/close/expire that handed the lock on): tokens only ever increase;
//  - "you do not hold the lock" for a release or append by anyone but the holder, or with
//    any token but the current one: nothing changes;
//  - a file is guarded by the lock its first append named; appends name that lock or are
//    refused; each append lands at the file's current end (its offset is in the reply);
//  - exactly once: every client command carries (session, client, req), `client` being the
//    process that sent it (several may share a session: `ftbus-lock hold` and the appends
//    its command makes). req numbers increase per client; the last reply is kept per
//    (session, client) for the session's kMaxClientsPerSession most recent clients (in
//    snapshots too). A retry of the same req gets that reply again without applying
//    anything; an older req is refused, and so is, from a client the session does not
//    remember, a req not above the newest one it forgot (it may have been applied).
//    `status` is a read: it skips all this, a retry reads again;
//  - an `open` retried (same client, same req) while its session lives gets that session;
//  - entries of format 0 (logs older than kCommandFormat) are applied as they were then:
//    one stream per session (client ""), status replies kept, opens never deduplicated —
//    so a replica replaying an old log and one restoring the old snapshot agree;
//  - a command for an unknown (expired, closed) session is refused: "no such session";
//  - a lock nobody holds or waits for and that guards no file is dropped from the table;
// Invalid commands (bad bytes, bad names, oversized data) are refused deterministically on
// every replica; they change nothing. An entry with an op or a format this version does
// not know (a newer replica proposed it) throws UnknownCommand: applying it differently, or
// not at all, while the others apply it would make the replicas' states part, so the
// replica must stop.
// Not thread-safe; owned by the node loop.
#pragma once

#include <deque>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "bus/raft.hpp"

namespace bus {

/// Limits checked by the server before proposing and again when applying.
inline constexpr size_t kMaxLockName = 128;
inline constexpr size_t kMaxFileName = 128;
inline constexpr size_t kMaxClientName = 64;
inline constexpr size_t kMaxAppendBytes = 16 * 1024;
inline constexpr uint64_t kMinTtlMs = 100;
inline constexpr uint64_t kMaxTtlMs = 10 * 60 * 1000;
/// Lock, file and client names: 1..max characters [A-Za-z0-9._-], not starting with '.' or
/// '-' (a file name is a path under the replicas' files directory). name_rule says so, for
/// the server's replies and for clients that check before they ask.
bool name_ok(std::string_view s, size_t max);
std::string name_rule(const char* what, size_t max);
/// Clients (processes) per session whose last reply is kept; the least recent is forgotten.
inline constexpr size_t kMaxClientsPerSession = 64;
/// The format of the commands this version proposes (LockCommand::v). 0: before commands
/// carried their sender — exactly-once per session, as entries in older logs are applied.
inline constexpr uint64_t kCommandFormat = 2;

/// A committed entry this version cannot apply (an op or a format from a newer version).
struct UnknownCommand : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct LockCommand {
    /// (Numbers are in the log: new ops only ever go at the end.)
    enum class Op : uint8_t { open = 1, close, acquire, release, append, status, expire, cancel };
    Op op = Op::open;
    uint64_t session = 0;
    uint64_t req = 0;
    std::string client;   ///< the sending process (open: the session's client too); "" in old logs
    uint64_t ttl_ms = 0;  ///< open
    std::string lock;     ///< acquire, release, append, status, cancel
    uint64_t token = 0;   ///< release, append
    std::string file;     ///< append
    std::string data;     ///< append
    uint64_t epoch = 0;   ///< expire
    uint64_t v = 0;       ///< the format (kCommandFormat; 0 in logs older than it)
    bool operator==(const LockCommand&) const = default;
};
const char* to_string(LockCommand::Op op);

/// The command's bytes (msgpack map).
std::string encode_command(const LockCommand& c);
/// The command, or nullopt with `why` for bytes that are not a valid command; `newer` is
/// set when that is because of an op or a format this version does not know.
std::optional<LockCommand> decode_command(std::string_view bytes, std::string& why, bool* newer = nullptr);
/// "" if `c` is acceptable (names, sizes, ttl), else why not. Checked before proposing and
/// when applying.
std::string validate(const LockCommand& c);

/// The answer to a client command, as applied. `status` is one of: opened, granted,
/// queued, released, appended, closed, status, cancelled, rejected.
struct LockReply {
    uint64_t session = 0;
    uint64_t req = 0;
    std::string status;
    std::string error;    ///< rejected: why ("you do not hold the lock", ...)
    std::string lock;
    uint64_t token = 0;   ///< granted: the fencing token; rejected: the current one (0: none);
                          ///< cancelled: the token given up (0: it was only waiting, or neither)
    uint64_t pos = 0;     ///< queued: 1 = next in line
    std::string file;
    uint64_t offset = 0;  ///< appended: where the data landed
    uint64_t bytes = 0;   ///< appended: how many
    Json info;            ///< status: {locks: {...}, files: {...}}
    bool operator==(const LockReply&) const = default;
};

/// What applying one entry produced, for the server: the reply to the command's sender
/// (if a client sent it), and grants for waiters (`push`: the session did not send this
/// entry; it is told of its grant out of band).
struct LockOutput {
    uint64_t index = 0;  ///< the entry
    bool push = false;
    LockReply reply;
};

class LockMachine final : public StateMachine {
public:
    /// The last request of one client of a session, and its reply (exactly-once).
    struct Last {
        uint64_t req = 0;
        uint64_t index = 0;  ///< the entry that applied it (the least recent client goes first)
        LockReply reply;
        bool operator==(const Last&) const = default;
    };
    struct Session {
        std::string client;     ///< the client that opened it
        uint64_t ttl_ms = 0;
        uint64_t epoch = 0;     ///< index of the last entry applied for it
        uint64_t open_req = 0;  ///< the open's request number: a retried open finds the session
        std::map<std::string, Last> last;  ///< by client, at most kMaxClientsPerSession
        uint64_t forgotten = 0;  ///< the highest req of the clients dropped from `last` (and of format-0 entries)
    };
    struct Lock {
        uint64_t holder = 0;  ///< session, 0 = free
        uint64_t token = 0;   ///< of the current grant; the last one while free
        std::deque<uint64_t> waiters;  ///< sessions, FIFO
    };
    struct File {
        std::string lock;  ///< the lock that guards it
        std::string data;
    };

    void apply(const LogEntry& e) override;
    std::string snapshot() const override;
    /// \throws std::invalid_argument for bytes that are not a snapshot of this machine.
    void restore(const std::string& data) override;
    Json summary() const override;

    /// What applying produced since the last take (the server sends replies and pushes).
    std::vector<LockOutput> take_outputs() { return std::exchange(outputs_, {}); }
    /// Trace events (session.open, lock.grant, file.append, ...) since the last take.
    std::vector<TraceEvent> take_events() { return std::exchange(events_, {}); }
    /// Called with (file, offset, data) for every append applied, and with (file, 0, whole
    /// contents) for every file after a restore: the server mirrors files on disk.
    using FileSink = std::function<void(const std::string& file, uint64_t offset, const std::string& data, bool whole)>;
    void set_file_sink(FileSink f) { sink_ = std::move(f); }

    const std::map<uint64_t, Session>& sessions() const { return sessions_; }
    const std::map<std::string, Lock>& locks() const { return locks_; }
    const std::map<std::string, File>& files() const { return files_; }
    /// The holder of `lock` (0: free) and its token ({0, 0} for a lock not in the table:
    /// never used, or forgotten while idle).
    std::pair<uint64_t, uint64_t> holder(const std::string& lock) const;
    /// The locks `session` holds.
    std::vector<std::string> locks_of(uint64_t session) const;
    /// Violations of the machine's invariants (empty when fine).
    std::vector<std::string> check_invariants() const;

private:
    LockReply run(const LockCommand& c, const LogEntry& e);
    LockReply acquire(const LockCommand& c, const LogEntry& e);
    LockReply release(const LockCommand& c, const LogEntry& e);
    /// The session no longer wants the lock: out of its queue, or — if the grant got there
    /// first — released as by release. Nothing to give up: cancelled all the same.
    LockReply cancel(const LockCommand& c, const LogEntry& e);
    LockReply append(const LockCommand& c, const LogEntry& e);
    LockReply status(const LockCommand& c) const;
    /// The session `c` names is gone (closed, or `expired`): its locks pass to their next
    /// waiters; locks left idle are forgotten (forget_if_idle).
    void end_session(const LockCommand& c, const LogEntry& e, bool expired);
    /// A lock nobody holds or waits for, guarding no file, is forgotten, so that a table of
    /// many short-lived lock names does not grow without end (its token is not needed: the
    /// next grant's is a later log index anyway). Not for format-0 entries: kept then.
    void forget_if_idle(const LockCommand& c, const std::string& name);
    /// Nobody holds or waits for it, and it guards no file.
    bool idle(const std::string& name, const Lock& l) const {
        return l.holder == 0 && l.waiters.empty() && !guarded_.count(name);
    }
    /// The lock `c` names if c's session holds it with c's token; else null, and `r` says
    /// "you do not hold the lock" with the current token.
    Lock* held_by(const LockCommand& c, LockReply& r);
    /// `lock` is free: the next waiter (if any) gets it, with token e.index, pushed.
    void hand_on(const std::string& name, Lock& l, const LogEntry& e);
    /// The one place a lock changes hands (0: free), keeping holding_ in step.
    void set_holder(const std::string& name, Lock& l, uint64_t session);
    void trace(std::string ev, Json fields, const LogEntry& e);
    /// Keeps `r` as `client`'s last reply in `s`, forgetting the least recent client if full.
    /// `old`: a format-0 entry (its req also bounds what a client the session does not know
    /// may send, as one stream per session did).
    static void remember(Session& s, const std::string& client, uint64_t req, uint64_t index, const LockReply& r, bool old);

    std::map<uint64_t, Session> sessions_;
    std::map<std::string, Lock> locks_;
    std::map<std::string, File> files_;
    std::set<std::string> guarded_;  ///< locks that guard a file (from files_)
    std::map<std::pair<std::string, uint64_t>, uint64_t> opened_;  ///< (client, open_req) -> session (from sessions_)
    std::map<uint64_t, std::set<std::string>> holding_;  ///< session -> the locks it holds (from locks_)
    std::vector<LockOutput> outputs_;
    std::vector<TraceEvent> events_;
    FileSink sink_;
};

}  // namespace bus
