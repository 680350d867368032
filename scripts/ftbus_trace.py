"""Shared reading of ftbus trace files for the scripts (narrate.py, failover.py, leaders.py):
loading JSON Lines from files or run directories, and replaying events in time order to
know which incarnations run and whom each node follows (docs/TRACE.md, "A node's leader")."""
import glob, json, os


def load(paths, complain=None):
    """Events of the given files (or of every *.jsonl in the given directories), sorted by
    (t, node, seq). Unreadable lines are skipped; `complain(path, lineno)` hears of them."""
    evs = []
    for p in paths:
        files = sorted(glob.glob(os.path.join(p, "*.jsonl"))) if os.path.isdir(p) else [p]
        for path in files:
            try:
                f = open(path)
            except OSError:
                continue
            with f:
                for n, line in enumerate(f, 1):
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        evs.append(json.loads(line))
                    except ValueError:
                        if complain:
                            complain(path, n)
    evs.sort(key=lambda e: (e.get("t", 0), str(e.get("node")), e.get("seq", 0)))
    return evs


class Replay:
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
