#!/usr/bin/env python3
"""Narrates a demo run from its trace files only: nothing is printed that the traces do not
show. For every fault: who noticed what and how many ms later; with elections, who started
one and why, who won, and how long the cluster was leaderless.
usage: scripts/narrate.py RUN_DIR [--messages]
  --messages   also list every election message (ELECTION / ANSWER / COORDINATOR) sent"""
import os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ftbus_trace import Offsets, Replay, load, nkey, node_names, plain_args  # noqa: E402

ELECTION_TYPES = ("ELECTION", "ANSWER", "COORDINATOR", "RING_ELECTION", "PRE_VOTE", "PRE_VOTE_REPLY",
                  "REQUEST_VOTE", "VOTE")


def who(nodes):
    nodes = sorted(nodes, key=nkey)
    return ", ".join(str(n) for n in nodes) if nodes else "nobody"


def narrate_detection(evs, ms):
    faults = [e for e in evs if e.get("ev") == "fault"]
    for i, f in enumerate(faults):
        end = faults[i + 1]["t"] if i + 1 < len(faults) else float("inf")
        tgt, act = f.get("target"), f.get("action")
        print(f"\n[{ms(f['t']):9.1f} ms] fault: {act} node {tgt} (pid {f.get('pid')})")
        window = [e for e in evs if f["t"] <= e.get("t", 0) < end and e.get("node") != "ctl"]
        if act in ("kill", "pause"):
            for kind in ("peer.suspect", "peer.dead"):
                seen = {}
                for e in window:
                    if e.get("ev") == kind and e.get("peer") == tgt and e["node"] not in seen:
                        seen[e["node"]] = e
                for node, e in sorted(seen.items(), key=lambda kv: kv[1]["t"]):
                    word = "suspects" if kind == "peer.suspect" else "declares dead"
                    print(f"    node {node} {word} node {tgt} after {(e['t'] - f['t']) / 1000:.1f} ms"
                          f" (silent {e.get('silence_ms')} ms)")
                if not seen:
                    print(f"    nobody traced {kind} for node {tgt} before the next fault")
            wrong = [e for e in window if e.get("ev") == "peer.dead" and e.get("peer") != tgt]
            for e in wrong:
                print(f"    note: node {e['node']} also declared node {e['peer']} dead")
        elif act in ("resume", "restart"):
            seen = {}
            for e in window:
                if e.get("ev") == "peer.alive" and e.get("peer") == tgt and e["node"] not in seen:
                    seen[e["node"]] = e
            for node, e in sorted(seen.items(), key=lambda kv: kv[1]["t"]):
                extra = " (new incarnation)" if e.get("restarted") else ""
                print(f"    node {node} hears node {tgt} again after {(e['t'] - f['t']) / 1000:.1f} ms{extra}")
            for e in window:
                if e.get("ev") == "node.stall" and e.get("node") == tgt:
                    print(f"    node {tgt} notices it was stalled for {e['stalled_ms']:.0f} ms and restarts its"
                          f" failure-detector windows instead of convicting its peers")
            convicted = [e for e in window if e.get("ev") == "peer.dead" and e.get("node") == tgt]
            print(f"    node {tgt} declared {len(convicted)} peer(s) dead after waking")


def narrate_elections(evs, ms, show_messages, raft):
    """One section per phase: the start-up, then each fault up to the next one."""
    epoch = "term" if raft else "epoch"
    faults = [e for e in evs if e.get("ev") == "fault"]
    bounds = [None] + faults
    # The story ends where the clean shutdown begins (the first node.stop after the last fault).
    last_fault_t = faults[-1]["t"] if faults else evs[0]["t"]
    shutdown = next((e["t"] for e in evs if e.get("ev") == "node.stop" and e["t"] > last_fault_t), float("inf"))
    cl = Replay()
    last_claim = {}  # node -> (leader, term) of its last leader event
    idx = 0
    for i, f in enumerate(bounds):
        start = f["t"] if f else evs[0]["t"]
        end = faults[i]["t"] if i < len(faults) else shutdown
        leader_before = cl.agreed()
        if f is None:
            print(f"\n[{0.0:9.1f} ms] start-up")
        else:
            tgt, act = f.get("target"), f.get("action")
            role = ""
            backup_before = None
            if leader_before == tgt:
                view = next((e for e in reversed(evs[:idx]) if e.get("ev") == "leader" and e.get("node") == tgt), None)
                role = " — it was the leader"
                if view:
                    backup_before = view.get("backup")
                    role += f" ({epoch} {view.get('term')}" + ("" if raft else f", backup {view.get('backup') or 'none'}") + ")"
            print(f"\n[{ms(f['t']):9.1f} ms] fault: {act} node {tgt} (pid {f.get('pid')}){role}")
        window = []
        while idx < len(evs) and evs[idx].get("t", 0) < end:
            window.append(evs[idx])
            idx += 1
        first_agree = last_agree = None  # (t, leader, live count) when agreement (re)formed
        first_noticed = {}
        prevotes = {}  # node -> [rounds, first event] in this window
        no_leader_since, no_leader_ms = {}, {}  # per node, time spent following nobody
        for e in window:
            before = cl.agreed()
            was = {n: cl.leader.get(n, 0) for n in cl.live}
            cl.apply(e)
            after = cl.agreed()
            if after is not None and after != before:
                last_agree = (e["t"], after, len(cl.live))
                first_agree = first_agree or last_agree
            ev, node = e.get("ev"), e.get("node")
            # Time each node (other than the fault's target) spends following nobody.
            if f is not None and node != f.get("target") and node in cl.live:
                if was.get(node, 0) and not cl.leader.get(node, 0):
                    no_leader_since[node] = e["t"]
                elif node in no_leader_since and cl.leader.get(node, 0):
                    no_leader_ms[node] = no_leader_ms.get(node, 0) + e["t"] - no_leader_since.pop(node)
            if f and f.get("action") in ("kill", "pause") and ev == "peer.dead" and e.get("peer") == f.get("target"):
                if node not in first_noticed:
                    first_noticed[node] = e
                    print(f"    node {node} declared node {e['peer']} dead after {(e['t'] - f['t']) / 1000:.1f} ms"
                          f" (silent {e.get('silence_ms')} ms)")
            elif ev == "node.start" and f and not raft:
                print(f"    node {node} started (incarnation {e.get('inc')}), listening for a leader before electing")
            elif ev == "raft.restore" and f:
                vote = f"its vote for node {e.get('vote')}" if e.get("vote") else "no vote"
                print(f"    node {node} started (incarnation {e.get('inc')}) with term {e.get('term')} and {vote},"
                      f" read from its data directory")
            elif ev == "node.isolated":
                print(f"    node {node} " + ("is cut off: it receives and sends nothing" if e.get("isolated")
                                             else "is reconnected"))
            elif ev == "role" and e.get("role") == "pre-candidate":
                p = prevotes.setdefault(node, [0, e])
                p[0] += 1
                if p[0] == 1:
                    print(f"    node {node}: {e.get('reason')}; it asks for pre-votes for term {e.get('term', 0) + 1}"
                          f" (its own term stays {e.get('term')})")
            elif ev == "role" and e.get("role") == "follower" and raft and e.get("reason", "").startswith("lost quorum"):
                print(f"    node {node} stepped down: {e.get('reason')}")
            elif ev == "node.stall":
                print(f"    node {node} noticed it had been stopped ({e.get('stalled_ms', 0):.0f} ms) and rejoined")
            elif ev == "ring.result":
                print(f"    the token of node {node} came back with ids {e.get('ids')}: node {e.get('leader')} is the highest,"
                      f" node {e.get('backup') or 'none'} the backup")
            elif ev == "ring.skip":
                print(f"    node {node} skipped node {e.get('peer')} on the ring: it did not acknowledge (ring repair)")
            elif ev == "election.start" and e.get("algo") == "ring":
                print(f"    node {node} started an election (epoch {e.get('term')}): {e.get('reason')}"
                      f" — its token goes to node {who(e.get('to') or [])}")
            elif ev == "election.start":
                asked = e.get("to")
                print(f"    node {node} started an election ({epoch} {e.get('term')}): {e.get('reason')}"
                      + (f" — asking {who(asked)}" if asked is not None else ""))
            elif ev == "leader":
                claim = (e.get("leader"), e.get("term"))
                if e.get("leader") == node and last_claim.get(node, (None, None))[1] != e.get("term"):
                    print(f"    node {node} won {epoch} {e.get('term')}"
                          + ("" if raft else f" and named node {e.get('backup') or 'none'} its backup"))
                elif e.get("leader") == node:
                    print(f"    node {node} (leading) now names node {e.get('backup') or 'none'} its backup")
                last_claim[node] = claim
            elif show_messages and ev == "msg.send" and e.get("type") in ELECTION_TYPES:
                to = e.get("to")
                to = f"all (PUB {to})" if isinstance(to, str) else f"node {to}"
                word = {"ANSWER": "ANSWER (\"OK, I take over\")"}.get(e["type"], e["type"])
                print(f"        node {node} -> {to}: {word}")
            elif show_messages and ev == "msg.unsent" and e.get("type") in ELECTION_TYPES:
                print(f"        node {node} -> node {e.get('to')}: {e['type']} not sent: no live connection"
                      f" (node {e.get('to')} is gone)")
        for node, (rounds, first) in sorted(prevotes.items(), key=lambda kv: nkey(kv[0])):
            if rounds > 1:
                print(f"    node {node} ran {rounds} pre-vote rounds in all; none won a majority, so its term"
                      f" never rose (PreVote)")
        base = f["t"] if f else start
        end_leader = cl.agreed()
        if end_leader is None:
            views = ", ".join(f"{n}->{cl.leader.get(n, 0) or 'none'}" for n in sorted(cl.live, key=nkey))
            print(f"    no agreement among the live nodes before the next fault (node->leader: {views})")
        elif last_agree is None:
            print(f"    all {len(cl.live)} live nodes follow node {end_leader} throughout")
        else:
            t, l, n = last_agree
            print(f"    all {n} {'' if f is None else 'live '}nodes followed node {l} after {(t - base) / 1000:.1f} ms"
                  + (" — the backup named before the fault" if f and l == backup_before and l != leader_before else ""))
        if f is not None and first_agree is not None and first_agree[1] != leader_before:
            if leader_before is not None and f.get("target") == leader_before and f.get("action") in ("kill", "pause"):
                print(f"    the cluster was leaderless for {(first_agree[0] - base) / 1000:.1f} ms"
                      f" (from the {f.get('action')} until every live node followed the new leader)")
            elif leader_before is not None:
                worst = max(no_leader_ms.values(), default=0)
                if worst:
                    print(f"    while it changed hands, some node was without a leader for up to {worst / 1000:.1f} ms")
                else:
                    print(f"    the other nodes switched from node {leader_before} to node {first_agree[1]} directly,"
                          f" never without a leader")


def fmt_s(us, sign=True):
    """+1.234567 s, or +0.123 ms below a millisecond (no sign for spreads)."""
    s = f"{us / 1e6:+.6f} s" if abs(us) >= 1000 else f"{us / 1e3:+.3f} ms"
    return s if sign else s.lstrip("+")


def narrate_berkeley(evs, ms, run):
    names = node_names(run)
    name = lambda n: names.get(n, str(n))
    offs = Offsets(evs)
    if not offs.series:
        print("\nNo clock.offset events: no clock to show.")
        return
    nodes = sorted(offs.series, key=nkey)
    t0 = min(s[0][0] for s in offs.series.values())
    first = {n: offs.series[n][0][1] for n in nodes}
    print("\nClocks at start (virtual minus real): " + ", ".join(f"{name(n)} {fmt_s(first[n])}" for n in nodes))
    drifts = {}
    for e in evs:
        if e.get("ev") == "clock.offset" and e.get("node") not in drifts:
            drifts[e["node"]] = e.get("rate_ppm", 0)
    print("Drift (ppm): " + ", ".join(f"{name(n)} {drifts.get(n, 0):+.0f}" for n in nodes))
    print(f"Spread at start: {fmt_s(max(first.values()) - min(first.values()), False)}")
    faults = [e for e in evs if e.get("ev") == "fault"]
    rounds = [e for e in evs if e.get("ev") == "clock.round"]
    masters = [e for e in evs if e.get("ev") == "clock.master"]
    live = set(nodes)
    shown = 0
    for e in sorted(masters + rounds + faults, key=lambda e: e["t"]):
        if e["ev"] == "clock.master":
            print(f"\n[{ms(e['t']):9.1f} ms] node {name(e['node'])} is master (bully epoch {e['epoch']})")
        elif e["ev"] == "fault":
            live.discard(e.get("target"))
            print(f"\n[{ms(e['t']):9.1f} ms] fault: {e.get('action')} node {name(e.get('target'))} (pid {e.get('pid')})")
        else:
            r = e["round"]
            # The spread once this round's slews have finished (1 s later, or before the next round).
            nxt = next((x["t"] for x in rounds if x["t"] > e["t"]), e["t"] + 1_000_000)
            probe = min(e["t"] + 1_000_000, nxt - 1000)
            sp = offs.spread(probe, [n for n in nodes if n in live and n not in e.get("too_far", [])])
            if r <= 3 or r % 10 == 0 or shown < 3 or e.get("too_far") or e.get("missing"):
                left = []
                if e.get("too_far"):
                    left.append("too far from the median: " + ", ".join(name(n) for n in e["too_far"]))
                if e.get("too_slow"):
                    left.append("round trip too long: " + ", ".join(name(n) for n in e["too_slow"]))
                if e.get("missing"):
                    left.append("no answer: " + ", ".join(name(n) for n in e["missing"]))
                print(f"    round {r} by {name(e['node'])}: average {fmt_s(e['average_us'])} relative to the master;"
                      f" {len(e['used'])} clocks used" + (f"; left out — {'; '.join(left)}" if left else "")
                      + (f"; spread after: {fmt_s(sp, False)}" if sp is not None else ""))
                shown += 1
    # Corrections of the first round, to show deltas (never absolute times).
    first_round = rounds[0]["round"] if rounds else None
    first_master = rounds[0]["node"] if rounds else None
    adj = [e for e in evs if e.get("ev") == "clock.adjust" and e.get("round") == first_round
           and e.get("from") == first_master]
    if adj:
        print("\nRound " + str(first_round) + " corrections, each node its own delta:")
        for e in sorted(adj, key=lambda e: nkey(e["node"])):
            print(f"    {name(e['node'])}: {fmt_s(e['delta_us'])} ({e['mode']})")
    t_end = max(s[-1][0] for s in offs.series.values())
    ends = {n: offs.at(n, offs.series[n][-1][0]) for n in nodes}
    sp = offs.spread(t_end - 300_000, [n for n in nodes if n in live])
    print("\nAt the end (virtual minus real): " + ", ".join(f"{name(n)} {fmt_s(ends[n])}" for n in nodes if n in live)
          + (f"; spread {fmt_s(sp, False)}" if sp is not None else ""))


def narrate_cristian(evs, ms, run):
    server = [e for e in evs if e.get("ev") == "clock.offset" and e.get("node") not in (None, "ctl")
              and isinstance(e.get("node"), int)]
    srv_off = server[-1]["offset_us"] if server else None
    if srv_off is not None:
        print(f"\nThe server's clock: {fmt_s(srv_off)} from real time (every client's target).")
    clients = sorted({e["node"] for e in evs if e.get("ev") == "clock.sample" and isinstance(e.get("node"), str)})
    for c in clients:
        mine = [e for e in evs if e.get("node") == c]
        offs = [e for e in mine if e.get("ev") == "clock.offset"]
        print(f"\n{c}:")
        if offs and srv_off is not None:
            print(f"    its clock started {fmt_s(offs[0]['offset_us'] - srv_off)} from the server's")
        for e in mine:
            if e.get("ev") == "clock.sample":
                bound = f" ± {e['bound_us'] / 1000:.3f} ms" if "bound_us" in e else ""
                print(f"    [{ms(e['t']):9.1f} ms] asked {e.get('samples')} times; best round trip {e['rtt_us'] / 1000:.3f} ms:"
                      f" server minus me = {fmt_s(e['offset_us'])}{bound}")
            elif e.get("ev") == "clock.adjust":
                print(f"    stepped its clock by {fmt_s(e['delta_us'])}")
            elif e.get("ev") == "clock.offset" and e is not offs[0] and srv_off is not None:
                print(f"    now {fmt_s(e['offset_us'] - srv_off)} from the server's clock (true error, from the traces)")


def narrate_membership(evs, ms):
    """Joins, leaves, clean-ups and live setting changes, in time order, with what the
    leaders did about them."""
    kinds = ("node.join", "node.leave", "peer.join", "peer.leave", "peer.refuse", "config.set", "follower.deaf")
    if not any(e.get("ev") in kinds for e in evs):
        return
    print("\n== membership ==")
    admitted = {}   # joiner -> [(t, node, reason, by)]
    left = {}       # node -> t of its node.leave
    removed = {}    # (peer, reason) -> [(t, node)]
    for e in evs:
        ev, node, t = e.get("ev"), e.get("node"), e["t"]
        if ev == "node.join" and e.get("state") == "asking":
            print(f"[{ms(t):9.1f} ms] node {node} (not in the cluster file) asks to join via {e.get('via')}")
        elif ev == "node.join" and e.get("state") == "joined":
            print(f"[{ms(t):9.1f} ms] node {node} is welcomed by node {e.get('via')}: it learns {e.get('members')} members"
                  f" and only now starts its election algorithm")
        elif ev == "node.join" and e.get("state") == "refused":
            print(f"[{ms(t):9.1f} ms] node {node} is refused: {e.get('reason')}; it stops")
        elif ev == "peer.join" and not e.get("static"):
            admitted.setdefault(e.get("peer"), []).append((t, node, e.get("reason"), e.get("by")))
        elif ev == "node.leave":
            left[node] = t
            print(f"[{ms(t):9.1f} ms] node {node} leaves gracefully (ftbus-ctl leave): LEAVE to {e.get('members')} members")
        elif ev == "peer.leave":
            removed.setdefault((e.get("peer"), e.get("reason")), []).append((t, node))
        elif ev == "peer.refuse":
            print(f"[{ms(t):9.1f} ms] node {node} refuses node {e.get('peer')}: {e.get('reason')}")
        elif ev == "config.set":
            print(f"[{ms(t):9.1f} ms] node {node}: {e.get('key')} changed live from {e.get('old')} to {e.get('value')}")
        elif ev == "follower.deaf":
            print(f"[{ms(t):9.1f} ms] leader {node}: follower {e.get('peer')} has not acknowledged a heartbeat for"
                  f" {e.get('silence_ms', 0):.0f} ms (it does not hear the leader)")
    for peer, seen in sorted(admitted.items(), key=lambda kv: nkey(kv[0])):
        first = min(seen, key=lambda x: x[0])
        direct = [n for (_, n, r, _) in seen if r == "join"]
        print(f"node {peer} became a member of {len({n for (_, n, _, _) in seen})} node(s), the first at"
              f" {ms(first[0]):.1f} ms" + (f" (admitted by node {direct[0]}, the others told by it)" if direct else ""))
    for (peer, reason), seen in sorted(removed.items(), key=lambda kv: min((t, nkey(n)) for t, n in kv[1])):
        first, last = min(t for t, _ in seen), max(t for t, _ in seen)
        if reason == "left" and peer in left:
            print(f"node {peer} was removed by {who({n for (_, n) in seen})} within {(last - left[peer]) / 1000:.1f} ms of"
                  f" its leave — no waiting for a detection timeout")
        elif reason == "dead":
            dead = [e["t"] for e in evs if e.get("ev") == "peer.dead" and e.get("peer") == peer and e["t"] <= first]
            since = f", {(first - max(dead)) / 1000:.0f} ms after it was declared dead" if dead else ""
            print(f"node {peer} was forgotten by {who({n for (_, n) in seen})} (dead for remove_after){since}")
        else:
            print(f"node {peer} was removed ({reason}) by {who({n for (_, n) in seen})}")


def narrate_locks(evs, ms):
    """The lock service: what the replicated log decided (each entry once, however many
    replicas applied it), what the clients were told, and whether every acknowledged append
    is in the file exactly once."""
    applied = {}
    for e in evs:
        ev = e.get("ev", "")
        if ev.split(".")[0] in ("session", "lock", "file") and "index" in e and isinstance(e.get("node"), int):
            key = (ev, e["index"], e.get("lock"), e.get("session"), e.get("file"))
            if key not in applied:
                applied[key] = e
    if not applied:
        return
    print("\nlock service, as the replicated log decided it (each entry once, when first applied), with the faults:")
    names = {}
    faults = [e for e in evs if e.get("ev") == "fault"]
    for e in sorted(list(applied.values()) + faults, key=lambda x: (x["t"], x.get("index", 0))):
        ev = e["ev"]
        if ev == "fault":
            print(f"[{ms(e['t']):9.1f} ms] fault: {e.get('action')} {e.get('target')}")
            continue
        if ev == "session.open":
            names[e["session"]] = e.get("client")
            continue
        who = f"session {e.get('session')} ({names.get(e.get('session'), '?')})"
        at = f"[{ms(e['t']):9.1f} ms] entry {e['index']:>4} term {e.get('term')}:"
        if ev == "lock.grant":
            print(f"{at} {e['lock']} granted to {who}, fencing token {e['token']}")
        elif ev == "lock.queue":
            print(f"{at} {who} queued for {e['lock']} at position {e['pos']}")
        elif ev == "lock.leave":
            print(f"{at} {who} gave up waiting for {e['lock']} (it was at position {e['pos']})")
        elif ev == "lock.release":
            print(f"{at} {who} released {e['lock']} (token {e['token']})")
        elif ev == "lock.expire":
            print(f"{at} {who}'s lease ran out: {e['lock']} (token {e['token']}) taken back")
        elif ev == "session.expire":
            print(f"{at} {who} expired")
        elif ev == "file.append":
            print(f"{at} {e['bytes']} bytes appended to {e['file']} at offset {e['offset']} under {e['lock']}"
                  f" (token {e['token']}, session of {e.get('client')})")
    rejects = [e for e in evs if e.get("ev") == "rpc.reject" and e.get("op") != "keepalive"]
    for e in rejects:
        print(f"[{ms(e['t']):9.1f} ms] node {e['node']} refused {e.get('op')} from {e.get('client')}: {e.get('reason')}")
    lost = [e for e in evs if e.get("ev") == "lock.lost"]
    for e in lost:
        print(f"[{ms(e['t']):9.1f} ms] client {e['node']} lost {e['lock']} (token {e['token']}): {e.get('reason')}")
    acks = [e for e in evs if e.get("ev") == "rpc.ack" and e.get("op") == "append"]
    appends = {}
    for e in applied.values():
        if e["ev"] == "file.append":
            appends.setdefault(e["file"], []).append(e)
    for f, es in appends.items():
        offsets = sorted((x["offset"], x["bytes"], x["crc32c"]) for x in es)
        ok = sum(1 for a in acks if a.get("file") == f and (a.get("offset"), a.get("bytes"), a.get("crc32c")) in offsets)
        mine = [a for a in acks if a.get("file") == f]
        dup = len(offsets) != len({o for o, _, _ in offsets})
        print(f"\n{f}: {len(es)} appends applied, {len(mine)} acknowledged to clients, {ok} of those found at their"
              f" offset with their checksum{'; DUPLICATE OFFSETS' if dup else ''}")


def main():
    args, code = plain_args("narrate", __doc__, ("--messages",), lambda a: len(a) == 1)
    if args is None:
        return code
    evs = load([args[0]], lambda path, n: print(f"  (unreadable or malformed trace line {path}:{n}, skipped)"))
    if not evs:
        print("narrate: no trace events", file=sys.stderr)
        return 2
    t0 = evs[0]["t"]
    ms = lambda t: (t - t0) / 1000.0
    starts = [e for e in evs if e.get("ev") == "node.start"]
    algos = sorted({e.get("algo") for e in starts if e.get("algo")})
    print(f"{len({e['node'] for e in starts})} nodes started ({len(starts)} process starts),"
          f" algorithm {', '.join(algos) or 'none'}.")
    if any(e.get("ev") == "clock.round" for e in evs):
        narrate_berkeley(evs, ms, args[0])
    elif any(e.get("ev") == "clock.sample" for e in evs):
        narrate_cristian(evs, ms, args[0])
    elif any(e.get("ev") == "leader" for e in evs):
        narrate_elections(evs, ms, "--messages" in sys.argv, "raft" in algos)
        counts = {}
        for e in evs:
            if e.get("ev") == "msg.send" and e.get("type") in ELECTION_TYPES:
                counts[e["type"]] = counts.get(e["type"], 0) + 1
        if counts:
            print("\nelection messages sent in all: " + ", ".join(f"{k} {counts[k]}" for k in ELECTION_TYPES if k in counts))
    else:
        narrate_detection(evs, ms)
    narrate_membership(evs, ms)
    narrate_locks(evs, ms)
    drops = [e for e in evs if e.get("ev") == "msg.drop"]
    if drops:
        print(f"\n{len(drops)} frame(s) dropped as malformed (msg.drop).")
    stops = [e for e in evs if e.get("ev") == "node.stop"]
    print(f"\n{len(stops)} node(s) stopped cleanly; {len(evs)} trace events in all.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
