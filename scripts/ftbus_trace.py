"""Shared reading of ftbus trace files for the scripts (narrate.py, failover.py, leaders.py):
loading JSON Lines from files or run directories, and replaying events in time order to
know which incarnations run and whom each node follows (docs/TRACE.md, "A node's leader");
and running gnuplot for the plotting scripts."""
import glob, json, os, shutil, subprocess, sys


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


class Offsets:
    """Each node's virtual-minus-real clock offset over time, from its clock.offset events,
    so offsets can be compared at the same instant (`at`) and their spread computed."""

    def __init__(self, evs, skip=()):
        self.series = {}  # node -> [(t, offset_us)] of its latest incarnation
        inc = {}
        for e in evs:
            node = e.get("node")
            if e.get("ev") == "node.start":
                inc[node] = e.get("inc")
                self.series[node] = []
            if e.get("ev") == "clock.offset" and node not in skip and e.get("inc") == inc.get(node, e.get("inc")):
                self.series.setdefault(node, []).append((e["t"], e["offset_us"]))
        self.series = {n: s for n, s in self.series.items() if s}

    def at(self, node, t):
        """Linear interpolation between the samples around t; None outside them."""
        s = self.series.get(node, [])
        if not s or t < s[0][0] or t > s[-1][0]:
            return None
        lo, hi = 0, len(s) - 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if s[mid][0] <= t:
                lo = mid
            else:
                hi = mid
        (t0, o0), (t1, o1) = s[lo], s[hi]
        return o0 if t1 == t0 else o0 + (o1 - o0) * (t - t0) / (t1 - t0)

    def spread(self, t, nodes=None):
        """Max - min offset at t over `nodes` (default all) that have a sample around t."""
        vals = [v for n in (nodes or self.series) if (v := self.at(n, t)) is not None]
        return (max(vals) - min(vals)) if len(vals) >= 2 else None


def node_names(run_dir):
    """Node id -> "3 (KMC)" from the run directory's cluster.toml, if any."""
    import tomllib
    try:
        with open(os.path.join(run_dir, "cluster.toml"), "rb") as f:
            nodes = tomllib.load(f).get("node", [])
    except (OSError, ValueError):
        return {}
    return {n["id"]: (f"{n['id']} ({n['name']})" if n.get("name") else str(n["id"])) for n in nodes}


def run_gnuplot(script_path, who):
    """Runs gnuplot on `script_path`, installing it first if it is missing (scripts/setup
    --with-plots). False (and a message naming `who` and the script) if it is still missing."""
    if not shutil.which("gnuplot"):
        print(f"{who}: gnuplot is missing; installing it (scripts/setup --with-plots)", file=sys.stderr)
        subprocess.run([os.path.join(os.path.dirname(os.path.abspath(__file__)), "setup"), "--no-build", "--with-plots"],
                       check=False)
    if not shutil.which("gnuplot"):
        print(f"{who}: gnuplot is not installed (scripts/setup --with-plots); the script is in {script_path}",
              file=sys.stderr)
        return False
    subprocess.run(["gnuplot", script_path], check=True)
    return True
