#!/usr/bin/env python3
"""Narrates a demo run from its trace files only: nothing is printed that the traces do not
show. For every fault: who noticed what and how many ms later; with elections, who started
one and why, who won, and how long the cluster was leaderless.
usage: scripts/narrate.py RUN_DIR [--messages]
  --messages   also list every election message (ELECTION / ANSWER / COORDINATOR) sent"""
import glob, json, os, sys

ELECTION_TYPES = ("ELECTION", "ANSWER", "COORDINATOR")


def load(run):
    evs = []
    for path in sorted(glob.glob(os.path.join(run, "*.jsonl"))):
        with open(path) as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    evs.append(json.loads(line))
                except ValueError:
                    print(f"  (unreadable trace line {path}:{n})")
    evs.sort(key=lambda e: (e.get("t", 0), str(e.get("node")), e.get("seq", 0)))
    return evs


class Cluster:
    """Replays events in time order: which incarnations run, and whom each node follows."""

    def __init__(self):
        self.inc = {}        # node -> latest incarnation started
        self.live = set()    # nodes running and not paused
        self.leader = {}     # node -> leader it follows (0 = none)

    def apply(self, e):
        ev, node = e.get("ev"), e.get("node")
        if ev == "fault":
            tgt, act = e.get("target"), e.get("action")
            if act in ("kill", "pause"):
                self.live.discard(tgt)
            elif act == "resume" and tgt in self.inc:
                self.live.add(tgt)
            return
        if node == "ctl" or node is None:
            return
        if ev == "node.start":
            self.inc[node] = e.get("inc")
            self.live.add(node)
            self.leader[node] = 0
            return
        if e.get("inc") != self.inc.get(node):
            return  # an older incarnation's last words
        if ev == "node.stop":
            self.live.discard(node)
        elif ev == "leader":
            self.leader[node] = e.get("leader", 0)
        elif ev == "election.start" or (ev == "role" and e.get("role") not in ("leader", "follower")):
            self.leader[node] = 0

    def agreed(self):
        """The one live leader every live node follows, or None."""
        if not self.live:
            return None
        ls = {self.leader.get(n, 0) for n in self.live}
        if len(ls) == 1:
            l = ls.pop()
            if l and l in self.live:
                return l
        return None


def who(nodes):
    nodes = sorted(nodes)
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


def narrate_elections(evs, ms, show_messages):
    """One section per phase: the start-up, then each fault up to the next one."""
    faults = [e for e in evs if e.get("ev") == "fault"]
    bounds = [None] + faults
    cl = Cluster()
    last_claim = {}  # node -> (leader, term) of its last leader event
    idx = 0
    for i, f in enumerate(bounds):
        start = f["t"] if f else evs[0]["t"]
        end = faults[i]["t"] if i < len(faults) else float("inf")
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
                    role += f" (epoch {view.get('term')}, backup {view.get('backup') or 'none'})"
            print(f"\n[{ms(f['t']):9.1f} ms] fault: {act} node {tgt} (pid {f.get('pid')}){role}")
        window = []
        while idx < len(evs) and evs[idx].get("t", 0) < end:
            window.append(evs[idx])
            idx += 1
        agree_at = None
        first_noticed = {}
        no_leader_since, no_leader_ms = {}, {}  # per node, time spent following nobody
        for e in window:
            before = cl.agreed()
            was = {n: cl.leader.get(n, 0) for n in cl.live}
            cl.apply(e)
            after = cl.agreed()
            if after is not None and (agree_at is None or (before is None and after != agree_at[1])):
                agree_at = (e["t"], after, len(cl.live))
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
            elif ev == "node.start" and f:
                print(f"    node {node} started (incarnation {e.get('inc')}), listening for a leader before electing")
            elif ev == "node.stall":
                print(f"    node {node} noticed it had been stopped ({e.get('stalled_ms', 0):.0f} ms) and rejoined")
            elif ev == "election.start":
                asked = e.get("to") or []
                print(f"    node {node} started an election (epoch {e.get('term')}): {e.get('reason')}"
                      f" — asking {who(asked)}")
            elif ev == "leader":
                claim = (e.get("leader"), e.get("term"))
                if e.get("leader") == node and last_claim.get(node, (None, None))[1] != e.get("term"):
                    print(f"    node {node} won epoch {e.get('term')} and named node {e.get('backup') or 'none'} its backup")
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
        base = f["t"] if f else start
        if agree_at is not None:
            t, l, n = agree_at
            if f is None:
                print(f"    all {n} nodes followed node {l} after {(t - base) / 1000:.1f} ms")
            elif l == leader_before:
                print(f"    all {n} live nodes follow node {l}")
            else:
                print(f"    all {n} live nodes followed node {l} after {(t - base) / 1000:.1f} ms"
                      + (" — the backup named before the fault" if l == backup_before else ""))
            if f is not None and leader_before is not None and f.get("target") == leader_before \
                    and f.get("action") in ("kill", "pause"):
                print(f"    the cluster was leaderless for {(t - base) / 1000:.1f} ms"
                      f" (from the {f.get('action')} until every live node followed the new leader)")
            elif f is not None and l != leader_before:
                worst = max(no_leader_ms.values(), default=0)
                if worst:
                    print(f"    while it changed hands, some node was without a leader for up to {worst / 1000:.1f} ms")
                else:
                    print(f"    the other nodes switched from node {leader_before} to node {l} directly,"
                          f" never without a leader")
        elif cl.live:
            views = ", ".join(f"{n}->{cl.leader.get(n, 0) or 'none'}" for n in sorted(cl.live))
            print(f"    no agreement among the live nodes before the next fault (node->leader: {views})")


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 1 or "-h" in sys.argv or "--help" in sys.argv:
        print(__doc__)
        return 0 if ("-h" in sys.argv or "--help" in sys.argv) else 2
    evs = load(args[0])
    if not evs:
        print("narrate: no trace events", file=sys.stderr)
        return 2
    t0 = evs[0]["t"]
    ms = lambda t: (t - t0) / 1000.0
    starts = [e for e in evs if e.get("ev") == "node.start"]
    algos = sorted({e.get("algo") for e in starts if e.get("algo")})
    print(f"{len({e['node'] for e in starts})} nodes started ({len(starts)} process starts),"
          f" algorithm {', '.join(algos) or 'none'}.")
    if any(e.get("ev") == "leader" for e in evs):
        narrate_elections(evs, ms, "--messages" in sys.argv)
        counts = {}
        for e in evs:
            if e.get("ev") == "msg.send" and e.get("type") in ELECTION_TYPES:
                counts[e["type"]] = counts.get(e["type"], 0) + 1
        if counts:
            print("\nelection messages sent in all: " + ", ".join(f"{k} {counts[k]}" for k in ELECTION_TYPES if k in counts))
    else:
        narrate_detection(evs, ms)
    drops = [e for e in evs if e.get("ev") == "msg.drop"]
    if drops:
        print(f"\n{len(drops)} frame(s) dropped as malformed (msg.drop).")
    stops = [e for e in evs if e.get("ev") == "node.stop"]
    print(f"\n{len(stops)} node(s) stopped cleanly; {len(evs)} trace events in all.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
