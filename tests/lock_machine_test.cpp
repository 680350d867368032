// The lock service's replicated state machine on its own: sessions, FIFO queues, fencing
// tokens, guarded files, expiry, exactly-once replies, snapshots. Entries are applied by
// hand, as Raft would apply them, one index after another.
#include <catch2/catch.hpp>

#include "bus/lock_machine.hpp"
#include "bus/raft_storage.hpp"

using namespace bus;
using Op = LockCommand::Op;

namespace {

LockCommand cmd(Op op, uint64_t session = 0, uint64_t req = 0) {
    LockCommand c;
    c.v = kCommandFormat;  // as the leader proposes it
    c.op = op;
    c.session = session;
    c.req = req;
    return c;
}

LockCommand open_cmd(const std::string& client, uint64_t ttl) {
    LockCommand c = cmd(Op::open);
    c.client = client;
    c.ttl_ms = ttl;
    return c;
}

struct Driver {
    LockMachine m;
    uint64_t index = 0;
    uint64_t term = 1;
    std::vector<LockOutput> pushes;  ///< grants and queue moves pushed so far
    std::vector<TraceEvent> events;

    /// Applies `c` as the next entry; \return the reply to its sender.
    LockReply run(const LockCommand& c) {
        m.apply(LogEntry{++index, term, encode_command(c)});
        LockReply r;
        bool replied = false;
        for (auto& o : m.take_outputs()) {
            if (o.push) {
                pushes.push_back(o);
            } else {
                REQUIRE_FALSE(replied);
                r = o.reply;
                replied = true;
            }
        }
        for (auto& e : m.take_events()) events.push_back(e);
        CHECK(m.check_invariants().empty());
        return r;
    }
    uint64_t open(const std::string& client, uint64_t ttl = 1000) {
        LockReply r = run(open_cmd(client, ttl));
        REQUIRE(r.status == "opened");
        return r.session;
    }
    LockReply acquire(uint64_t s, uint64_t req, const std::string& lock) {
        LockCommand c = cmd(Op::acquire, s, req);
        c.lock = lock;
        return run(c);
    }
    LockReply release(uint64_t s, uint64_t req, const std::string& lock, uint64_t token) {
        LockCommand c = cmd(Op::release, s, req);
        c.lock = lock;
        c.token = token;
        return run(c);
    }
    LockReply append(uint64_t s, uint64_t req, const std::string& lock, uint64_t token, const std::string& file,
                     const std::string& data) {
        LockCommand c = cmd(Op::append, s, req);
        c.lock = lock;
        c.token = token;
        c.file = file;
        c.data = data;
        return run(c);
    }
    LockReply cancel(uint64_t s, uint64_t req, const std::string& lock) {
        LockCommand c = cmd(Op::cancel, s, req);
        c.lock = lock;
        return run(c);
    }
    /// `c` as sent by the process `client` (the server puts the sender there).
    LockReply from(const std::string& client, LockCommand c) {
        c.client = client;
        return run(c);
    }
    LockReply append_from(const std::string& client, uint64_t s, uint64_t req, uint64_t token, const std::string& data) {
        LockCommand c = cmd(Op::append, s, req);
        c.lock = "L";
        c.token = token;
        c.file = "f";
        c.data = data;
        return from(client, c);
    }
    void expire(uint64_t s, uint64_t epoch) {
        LockCommand c = cmd(Op::expire, s);
        c.epoch = epoch;
        m.apply(LogEntry{++index, term, encode_command(c)});
        for (auto& o : m.take_outputs()) {
            REQUIRE(o.push);  // nobody asked: only grants pushed to waiters
            pushes.push_back(o);
        }
        for (auto& e : m.take_events()) events.push_back(e);
        CHECK(m.check_invariants().empty());
    }
    size_t count(const std::string& ev) const {
        return static_cast<size_t>(std::count_if(events.begin(), events.end(), [&](auto& e) { return e.ev == ev; }));
    }
    std::string file(const std::string& name) const {
        auto it = m.files().find(name);
        return it == m.files().end() ? std::string("<none>") : it->second.data;
    }
};

}  // namespace

TEST_CASE("lock machine: one holder at a time, waiters queue FIFO with their position, and each release hands the "
          "lock to the next waiter with a higher fencing token, pushed",
          "[unit][lock]") {
    Driver d;
    uint64_t a = d.open("a"), b = d.open("b"), c = d.open("c");
    LockReply ra = d.acquire(a, 1, "L");
    REQUIRE(ra.status == "granted");
    CHECK(ra.token == d.index);  // the token is the grant entry's index
    LockReply rb = d.acquire(b, 1, "L");
    CHECK(rb.status == "queued");
    CHECK(rb.pos == 1);
    LockReply rc = d.acquire(c, 1, "L");
    CHECK(rc.pos == 2);
    CHECK(d.acquire(b, 2, "L").pos == 1);  // asking again keeps its place
    CHECK(d.m.holder("L") == std::pair<uint64_t, uint64_t>{a, ra.token});

    LockReply rel = d.release(a, 2, "L", ra.token);
    CHECK(rel.status == "released");
    uint64_t release_index = d.index;
    CHECK(d.m.holder("L") == std::pair<uint64_t, uint64_t>{b, release_index});
    REQUIRE(d.pushes.size() == 2);
    CHECK(d.pushes[0].reply.session == b);
    CHECK(d.pushes[0].reply.status == "granted");
    CHECK(d.pushes[0].reply.token == release_index);
    CHECK(d.pushes[0].reply.token > ra.token);
    CHECK(d.pushes[1].reply.session == c);  // c moved up to first in line
    CHECK(d.pushes[1].reply.status == "queued");
    CHECK(d.pushes[1].reply.pos == 1);

    d.release(b, 3, "L", release_index);
    CHECK(d.m.holder("L").first == c);
    CHECK(d.m.holder("L").second > release_index);
    CHECK(d.count("lock.grant") == 3);
    CHECK(d.count("lock.queue") == 2);
    CHECK(d.count("lock.release") == 2);
}

TEST_CASE("lock machine: a release or append by anyone but the holder, or with a stale token, is refused — \"you "
          "do not hold the lock\" — and changes nothing",
          "[unit][lock][badinput]") {
    Driver d;
    uint64_t a = d.open("a"), b = d.open("b");
    uint64_t ta = d.acquire(a, 1, "L").token;
    CHECK(d.append(a, 2, "L", ta, "out.txt", "line 1\n").status == "appended");
    d.acquire(b, 1, "L");

    LockReply r = d.release(b, 2, "L", ta);  // b is not the holder
    CHECK(r.status == "rejected");
    CHECK(r.error == "you do not hold the lock");
    CHECK(r.token == ta);  // the current token, for the message
    r = d.release(a, 3, "L", ta + 1);  // the holder with a wrong token
    CHECK(r.error == "you do not hold the lock");
    r = d.append(b, 3, "L", ta, "out.txt", "intruder\n");
    CHECK(r.error == "you do not hold the lock");
    CHECK(d.file("out.txt") == "line 1\n");
    CHECK(d.m.holder("L") == std::pair<uint64_t, uint64_t>{a, ta});

    // a hands over; its old token is worthless from then on.
    d.release(a, 4, "L", ta);
    uint64_t tb = d.m.holder("L").second;
    r = d.append(a, 5, "L", ta, "out.txt", "late\n");
    CHECK(r.status == "rejected");
    CHECK(r.token == tb);
    CHECK(d.append(b, 4, "L", tb, "out.txt", "line 2\n").offset == 7);
    CHECK(d.file("out.txt") == "line 1\nline 2\n");
    CHECK(d.count("file.append") == 2);
}

TEST_CASE("lock machine: a file is guarded by the lock of its first append — appends under another lock are refused",
          "[unit][lock][badinput]") {
    Driver d;
    uint64_t a = d.open("a");
    uint64_t t1 = d.acquire(a, 1, "L1").token, t2 = d.acquire(a, 2, "L2").token;
    CHECK(d.append(a, 3, "L1", t1, "f", "x").status == "appended");
    LockReply r = d.append(a, 4, "L2", t2, "f", "y");
    CHECK(r.status == "rejected");
    CHECK(r.error == "file f is guarded by lock L1, not L2");
    CHECK(d.file("f") == "x");
}

TEST_CASE("lock machine: an expiry with the session's current epoch ends it — its lock goes to the next waiter, an "
          "expiry made stale by a later command does nothing",
          "[unit][lock]") {
    Driver d;
    uint64_t a = d.open("a"), b = d.open("b");
    uint64_t ta = d.acquire(a, 1, "L").token;
    uint64_t epoch_a = d.m.sessions().at(a).epoch;
    d.acquire(b, 1, "L");
    SECTION("current epoch: expired") {
        d.expire(a, epoch_a);
        CHECK_FALSE(d.m.sessions().count(a));
        CHECK(d.m.holder("L").first == b);
        CHECK(d.m.holder("L").second > ta);
        CHECK(d.count("session.expire") == 1);
        CHECK(d.count("lock.expire") == 1);
        REQUIRE(d.pushes.size() == 1);
        CHECK(d.pushes[0].reply.session == b);
        // The expired session's commands are refused from now on.
        LockReply r = d.release(a, 2, "L", ta);
        CHECK(r.status == "rejected");
        CHECK(r.error == "no such session (expired or closed)");
    }
    SECTION("a command applied in between: the expiry is stale") {
        d.append(a, 2, "L", ta, "f", "still here\n");
        d.expire(a, epoch_a);
        CHECK(d.m.sessions().count(a));
        CHECK(d.m.holder("L").first == a);
        CHECK(d.count("session.expire") == 0);
    }
    SECTION("close: the same hand-over, asked for") {
        LockCommand c = cmd(Op::close, a, 2);
        CHECK(d.run(c).status == "closed");
        CHECK(d.m.holder("L").first == b);
        CHECK(d.count("session.close") == 1);
    }
}

TEST_CASE("lock machine: exactly once — a retried request gets the same reply without applying again, an older "
          "request number is refused",
          "[unit][lock]") {
    Driver d;
    uint64_t a = d.open("a");
    uint64_t t = d.acquire(a, 1, "L").token;
    LockReply first = d.append(a, 2, "L", t, "f", "once\n");
    LockReply again = d.append(a, 2, "L", t, "f", "once\n");
    CHECK(again == first);
    CHECK(d.file("f") == "once\n");
    CHECK(d.count("file.append") == 1);
    LockReply old = d.acquire(a, 1, "L");
    CHECK(old.status == "rejected");
    CHECK_THAT(old.error, Catch::Matchers::Contains("older than the last one"));
}

TEST_CASE("lock machine: exactly once per client of a session — processes sharing one session (hold and the appends "
          "its command makes) each get their own last reply, in whatever order their requests land",
          "[unit][lock]") {
    Driver d;
    uint64_t a = d.open("a");
    uint64_t t = d.acquire(a, 1, "L").token;
    // Two appending processes of the session: q's request is numbered later but lands first.
    LockReply q = d.append_from("q", a, 200, t, "q\n");
    LockReply p = d.append_from("p", a, 100, t, "p\n");
    CHECK(q.status == "appended");
    CHECK(p.status == "appended");  // not "older than the last one": it is p's first
    // Both retry (their answers were lost): each gets its own reply, nothing applied again.
    CHECK(d.append_from("p", a, 100, t, "p\n") == p);
    CHECK(d.append_from("q", a, 200, t, "q\n") == q);
    CHECK(d.file("f") == "q\np\n");
    CHECK(d.count("file.append") == 2);
    // Per process, numbers still only go up.
    LockReply old = d.append_from("p", a, 99, t, "late\n");
    CHECK(old.status == "rejected");
    CHECK_THAT(old.error, Catch::Matchers::Contains("older than the last one"));
    CHECK(d.file("f") == "q\np\n");
    // A read applies nothing and is not kept: asked again, it reads again.
    LockCommand st = cmd(Op::status, a, 300);
    CHECK(d.from("p", st).info["files"]["f"]["bytes"] == 4);
    d.append_from("q", a, 201, t, "r\n");
    CHECK(d.from("p", st).info["files"]["f"]["bytes"] == 6);
}

TEST_CASE("lock machine: a session remembers its last 64 clients — a retry from one it forgot is refused, never "
          "applied twice",
          "[unit][lock]") {
    Driver d;
    uint64_t a = d.open("a");
    uint64_t t = d.acquire(a, 1, "L").token;  // (client "": one of the remembered)
    LockReply first = d.append_from("p0", a, 1000, t, "0\n");
    REQUIRE(first.status == "appended");
    for (uint64_t k = 1; k + 1 < kMaxClientsPerSession; ++k)
        REQUIRE(d.append_from("p" + std::to_string(k), a, 1000 + k, t, "x\n").status == "appended");
    REQUIRE(d.m.sessions().at(a).last.size() == kMaxClientsPerSession);
    // One more client: the least recent, the acquire's, is forgotten; p0 is still known.
    REQUIRE(d.append_from("late1", a, 2000, t, "y\n").status == "appended");
    CHECK(d.append_from("p0", a, 1000, t, "0\n") == first);
    // Another: now p0 (its retry renewed nothing) is the least recent, and goes.
    REQUIRE(d.append_from("late2", a, 2001, t, "y\n").status == "appended");
    std::string before = d.file("f");
    LockReply again = d.append_from("p0", a, 1000, t, "0\n");
    CHECK(again.status == "rejected");
    CHECK_THAT(again.error, Catch::Matchers::Contains("no longer remembers"));
    CHECK(d.file("f") == before);  // not applied a second time
    // A client it never knew, numbering above every forgotten request, is served; a read
    // from one numbering below is served too (it applies nothing).
    CHECK(d.append_from("fresh", a, 3000, t, "z\n").status == "appended");
    CHECK(d.from("reader", cmd(Op::status, a, 5)).status == "status");
    CHECK(d.m.sessions().at(a).last.size() == kMaxClientsPerSession);
}

TEST_CASE("lock machine: an open retried (same client, same request) gets the session it made, not a second one",
          "[unit][lock]") {
    Driver d;
    LockCommand o = open_cmd("c1", 1000);
    o.req = 77;
    LockReply r1 = d.run(o);
    LockReply r2 = d.run(o);  // its answer was lost (a leader change): asked again
    CHECK(r1.status == "opened");
    CHECK(r2.session == r1.session);
    CHECK(d.m.sessions().size() == 1);
    CHECK(d.count("session.open") == 1);
    // After a restart (a restore), the retry still finds it.
    Driver e;
    e.m.restore(d.m.snapshot());
    e.index = d.index;
    CHECK(e.run(o).session == r1.session);
    CHECK(e.m.sessions().size() == 1);
    o.req = 78;  // a new open by the same client is a new session
    CHECK(d.run(o).session != r1.session);
    CHECK(d.m.sessions().size() == 2);
    // Once the session is gone, a late retry of its open makes a new one (nothing to find).
    o.req = 77;
    d.run(cmd(Op::close, r1.session, 1));
    uint64_t again = d.run(o).session;
    CHECK(again != r1.session);
    CHECK(d.m.sessions().count(again));
}

TEST_CASE("lock machine: a snapshot restores sessions, holders, queues, files and the last replies — a retry after "
          "the restore is still answered from the kept reply",
          "[unit][lock][snapshot]") {
    Driver d;
    uint64_t a = d.open("a"), b = d.open("b");
    uint64_t t = d.acquire(a, 1, "L").token;
    d.acquire(b, 1, "L");
    LockReply appended = d.append(a, 2, "L", t, "f", std::string("bin\0ary\n", 8));

    Driver e;  // another replica, restored from d's snapshot (InstallSnapshot or restart)
    std::vector<std::string> mirrored;
    e.m.set_file_sink([&](const std::string& f, uint64_t off, const std::string& data, bool whole) {
        CHECK(whole);
        CHECK(off == 0);
        mirrored.push_back(f + "=" + data);
    });
    e.m.restore(d.m.snapshot());
    e.index = d.index;
    CHECK(e.m.snapshot() == d.m.snapshot());
    CHECK(e.m.holder("L") == d.m.holder("L"));
    CHECK(e.m.locks().at("L").waiters == d.m.locks().at("L").waiters);
    CHECK(mirrored == std::vector<std::string>{"f=" + std::string("bin\0ary\n", 8)});
    // The same retry reaches both (it is one log entry): both answer from the kept reply.
    CHECK(e.append(a, 2, "L", t, "f", std::string("bin\0ary\n", 8)) == appended);
    CHECK(d.append(a, 2, "L", t, "f", std::string("bin\0ary\n", 8)) == appended);
    CHECK(e.file("f") == std::string("bin\0ary\n", 8));
    // And both go on alike.
    CHECK(d.release(a, 3, "L", t) == e.release(a, 3, "L", t));
    CHECK(e.m.snapshot() == d.m.snapshot());
    CHECK_THROWS_AS(e.m.restore("not a snapshot"), std::invalid_argument);
    CHECK(e.m.holder("L").first == b);  // a failed restore changed nothing
}

TEST_CASE("lock machine: an older log's entries (format 0: exactly once per session) apply as they did then — a "
          "replica replaying them and one restoring the snapshot the older version wrote agree, requests of the "
          "current format at or below that session's last are refused",
          "[unit][lock][snapshot]") {
    auto old = [](LockCommand c) {
        c.v = 0;
        c.client = c.op == Op::open ? c.client : "";  // (commands carried no sender then)
        return c;
    };
    Driver x;  // replays the old log from its start
    LockCommand o = open_cmd("a", 1000);
    o.req = 5;
    uint64_t s1 = x.run(old(o)).session;
    uint64_t s2 = x.run(old(o)).session;  // a retried open made a second session then
    REQUIRE(s2 != s1);
    LockCommand acq = cmd(Op::acquire, s1, 10);
    acq.lock = "L";
    REQUIRE(x.run(old(acq)).status == "granted");
    LockReply st = x.run(old(cmd(Op::status, s1, 11)));  // kept as the session's last reply, then
    // The snapshot the older version wrote at this point (one last reply per session).
    Json v1 = {{"v", 1},
               {"sessions", Json::array({{{"id", s1}, {"client", "a"}, {"ttl_ms", 1000}, {"epoch", 4}, {"last_req", 11},
                                          {"last_reply", {{"session", s1}, {"req", 11}, {"status", "status"}, {"info", st.info}}}},
                                         {{"id", s2}, {"client", "a"}, {"ttl_ms", 1000}, {"epoch", 2}, {"last_req", 0},
                                          {"last_reply", {{"session", 0}, {"req", 0}, {"status", ""}}}}})},
               {"locks", Json::array({{{"name", "L"}, {"holder", s1}, {"token", 3}, {"waiters", Json::array()}}})},
               {"files", Json::array()}};
    std::vector<uint8_t> bytes = Json::to_msgpack(v1);
    Driver y;
    y.m.restore(std::string(bytes.begin(), bytes.end()));
    y.index = x.index;
    CHECK(y.m.snapshot() == x.m.snapshot());
    // The rest of the old log, on both.
    LockCommand app = cmd(Op::append, s1, 9);  // older than the last: refused
    app.lock = "L", app.token = 3, app.file = "f", app.data = "x";
    LockCommand rel = cmd(Op::release, s1, 12);
    rel.lock = "L", rel.token = 3;
    LockCommand k = cmd(Op::acquire, s2, 1);
    k.lock = "K";
    for (const LockCommand& c : {app, cmd(Op::status, s1, 11), rel, k, cmd(Op::close, s2, 2)}) {
        LockReply rx = x.run(old(c)), ry = y.run(old(c));
        CHECK(rx == ry);
    }
    CHECK(x.file("f") == "<none>");
    CHECK(x.m.holder("L").first == 0);
    CHECK(x.m.locks().count("L"));  // idle locks were kept then: released, or their session closed
    CHECK(x.m.locks().count("K"));
    CHECK(y.m.snapshot() == x.m.snapshot());
    // Then the current format: a process the session does not know, numbering at or below
    // the old stream's last request, may be retrying it — refused; above it, served.
    LockCommand again = cmd(Op::acquire, s1, 12);
    again.lock = "L";
    CHECK(y.from("c9", again).status == "rejected");
    again.req = 13;
    CHECK(y.from("c9", again).status == "granted");
}

TEST_CASE("lock machine: bad commands are refused with a reason or ignored, alike on every replica",
          "[unit][lock][badinput]") {
    Driver d;
    uint64_t a = d.open("a");
    SECTION("bytes that are not a command: ignored") {
        d.m.apply(LogEntry{++d.index, 1, "\xc1garbage"});
        CHECK(d.m.take_outputs().empty());
        d.m.apply(LogEntry{++d.index, 1, ""});  // a leader's no-op
        CHECK(d.m.take_outputs().empty());
    }
    SECTION("names, sizes and ttl") {
        CHECK(d.acquire(a, 1, "../etc").status == "rejected");
        CHECK(d.acquire(a, 2, std::string(kMaxLockName + 1, 'x')).status == "rejected");
        uint64_t t = d.acquire(a, 3, "L").token;
        LockReply big = d.append(a, 4, "L", t, "f", std::string(kMaxAppendBytes + 1, 'x'));
        CHECK(big.status == "rejected");
        CHECK_THAT(big.error, Catch::Matchers::Contains("bytes (at most"));
        CHECK(d.append(a, 5, "L", t, "/abs", "x").status == "rejected");
        CHECK(d.file("f") == "<none>");
        LockReply r = d.run(open_cmd("c", 5));
        CHECK(r.status == "rejected");
        CHECK_THAT(r.error, Catch::Matchers::Contains("ttl"));
    }
    SECTION("an unknown session") {
        LockReply r = d.acquire(999, 1, "L");
        CHECK(r.status == "rejected");
        CHECK(r.error == "no such session (expired or closed)");
    }
    SECTION("an op this version does not know stops the replica (applying it nowhere here would part the "
            "replicas' states), and changes nothing first") {
        std::string before = d.m.snapshot();
        CHECK_THROWS_AS(d.m.apply(LogEntry{++d.index, 1, "\x82\xa2op\x09\xa7session\x01"}), UnknownCommand);
        CHECK(d.m.take_outputs().empty());
        CHECK(d.m.snapshot() == before);
    }
    SECTION("so does a command format this version does not know") {
        LockCommand c = cmd(Op::acquire, a, 1);
        c.lock = "L";
        c.v = kCommandFormat + 1;
        CHECK_THROWS_AS(d.m.apply(LogEntry{++d.index, 1, encode_command(c)}), UnknownCommand);
        CHECK(d.m.holder("L").first == 0);
        // ({v: "x", op: 3}: a format this version cannot even read)
        CHECK_THROWS_AS(d.m.apply(LogEntry{++d.index, 1, "\x82\xa1v\xa1x\xa2op\x03"}), UnknownCommand);
    }
    SECTION("decode names the problem") {
        std::string why;
        CHECK_FALSE(decode_command("\x81\xa2op\x09", why));  // {op: 9}
        CHECK(why == "unknown op 9");
    }
}

TEST_CASE("lock machine: commands round-trip through their bytes", "[unit][lock]") {
    LockCommand c = cmd(Op::append, 7, 3);
    c.lock = "L";
    c.token = 42;
    c.file = "f.txt";
    c.data = std::string("a\0b", 3);
    std::string why;
    auto back = decode_command(encode_command(c), why);
    REQUIRE(back.has_value());
    CHECK(*back == c);
    LockCommand e = cmd(Op::expire, 7);
    e.epoch = 12;
    CHECK(*decode_command(encode_command(e), why) == e);
}

TEST_CASE("lock machine: cancel takes a waiter out of the queue (those behind move up), a cancel that finds the "
          "grant got there first gives the lock up, saying which token, with nothing to give up it changes nothing",
          "[unit][lock]") {
    Driver d;
    uint64_t a = d.open("a"), b = d.open("b"), c = d.open("c"), e = d.open("e");
    uint64_t ta = d.acquire(a, 1, "L").token;
    d.acquire(b, 1, "L");
    d.acquire(c, 1, "L");
    d.acquire(e, 1, "L");
    LockReply r = d.cancel(c, 2, "L");  // c gives up waiting
    CHECK(r.status == "cancelled");
    CHECK(r.token == 0);
    CHECK(d.count("lock.leave") == 1);
    CHECK(d.acquire(e, 2, "L").pos == 2);  // e moved up behind b
    // The holder releases: b is next, then e (c is gone).
    d.release(a, 2, "L", ta);
    CHECK(d.m.holder("L").first == b);
    // b's cancel arrives after its grant (it had stopped waiting): the lock goes on to e.
    uint64_t tb = d.m.holder("L").second;
    r = d.cancel(b, 2, "L");
    CHECK(r.status == "cancelled");
    CHECK(r.token == tb);
    CHECK(d.m.holder("L").first == e);
    CHECK(d.m.holder("L").second > tb);
    // Nothing to give up: a lock it neither holds nor waits for, or one never seen.
    uint64_t te = d.m.holder("L").second;
    CHECK(d.cancel(a, 3, "L").status == "cancelled");
    CHECK(d.cancel(a, 4, "M").status == "cancelled");
    CHECK(d.m.holder("L") == std::pair<uint64_t, uint64_t>{e, te});
    // Applied once: the retry gets the same answer and gives up nothing more.
    CHECK(d.cancel(b, 2, "L").token == tb);
    CHECK(d.m.holder("L").first == e);
}

TEST_CASE("lock machine: a lock nobody holds or waits for is forgotten unless it guards a file — many short-lived "
          "lock names do not grow the table, tokens still only increase",
          "[unit][lock]") {
    Driver d;
    uint64_t a = d.open("a"), b = d.open("b");
    for (int k = 0; k < 50; ++k) {  // a job lock per job, as `ftbus-lock hold job-$ID` makes
        std::string name = "job-" + std::to_string(k);
        LockReply g = d.acquire(a, 2 * k + 1, name);
        REQUIRE(g.status == "granted");
        REQUIRE(d.release(a, 2 * k + 2, name, g.token).status == "released");
    }
    CHECK(d.m.locks().empty());
    // Handed on, it stays; released by its last holder, it goes.
    uint64_t t = d.acquire(a, 200, "L").token;
    d.acquire(b, 1, "L");
    d.release(a, 201, "L", t);
    REQUIRE(d.m.locks().count("L"));
    uint64_t tb = d.m.holder("L").second;
    d.release(b, 2, "L", tb);
    CHECK_FALSE(d.m.locks().count("L"));
    // A stale release of a forgotten lock: still "you do not hold the lock", nothing made.
    LockReply stale = d.release(b, 3, "L", tb);
    CHECK(stale.status == "rejected");
    CHECK(stale.error == "you do not hold the lock");
    CHECK_FALSE(d.m.locks().count("L"));
    // A lock that guards a file stays (the file names it).
    uint64_t tf = d.acquire(a, 300, "F").token;
    REQUIRE(d.append(a, 301, "F", tf, "f", "x").status == "appended");
    d.release(a, 302, "F", tf);
    CHECK(d.m.locks().count("F"));
    // Ended with its session, by close or by expiry: the lock goes too, unless it passes on.
    d.acquire(b, 4, "S");
    d.run(cmd(Op::close, b, 5));
    CHECK_FALSE(d.m.locks().count("S"));
    uint64_t c = d.open("c"), w = d.open("w");
    d.acquire(c, 1, "E");
    d.acquire(w, 1, "E");
    d.acquire(c, 2, "X");
    d.expire(c, d.m.sessions().at(c).epoch);
    CHECK(d.m.holder("E").first == w);  // passed on to its waiter
    CHECK_FALSE(d.m.locks().count("X"));
    // Restored, the machine knows which locks guard files.
    Driver e;
    e.m.restore(d.m.snapshot());
    e.index = d.index;
    uint64_t tf2 = e.acquire(a, 303, "F").token;
    e.release(a, 304, "F", tf2);
    CHECK(e.m.locks().count("F"));
}
