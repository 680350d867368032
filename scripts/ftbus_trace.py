"""Shared reading of ftbus trace files for the scripts (narrate.py, failover.py, leaders.py):
loading JSON Lines from files or run directories, and replaying events in time order to
know which incarnations run and whom each node follows (docs/TRACE.md, "A node's leader");
and running gnuplot for the plotting scripts."""
import glob, json, os, shutil, subprocess, sys


def _int(v):  # as the nodes write integers (64 bits): a larger one is forged, and overflows a float
    return isinstance(v, int) and not isinstance(v, bool) and -2**63 <= v < 2**64


def _num(v):
    return isinstance(v, float) or _int(v)


def _str(v):
    return isinstance(v, str)


def _bool(v):
    return isinstance(v, bool)


def _id(v):  # a node id, or a name (a client, "ctl", an endpoint)
    return _int(v) or _str(v)


def _ints(v):
    return isinstance(v, list) and all(_int(x) for x in v)


# The types of the fields the scripts read (docs/TRACE.md), checked wherever they appear;
# FIELDS_OF overrides them for one event. REQUIRED: the fields an event is useless without.
# An event that breaks either is of the wrong shape: load() skips it like an unreadable line.
FIELDS = {
    "t": _int, "node": _id, "ev": _str, "inc": _int, "seq": _int, "pid": _int,
    "term": _int, "index": _int, "session": _int, "token": _int, "pos": _int, "leader": _int,
    "backup": _int, "round": _int, "epoch": _int, "members": _int, "samples": _int, "offset": _int,
    "bytes": _int, "crc32c": _int, "vote": _int, "candidate": _int,
    "lock": _str, "file": _str, "client": _str, "op": _str, "reason": _str, "state": _str,
    "action": _str, "type": _str, "ch": _str, "algo": _str, "role": _str, "mode": _str,
    "target": _id, "peer": _id, "from": _id, "via": _id, "by": _id, "to": _id,
    "offset_us": _num, "delta_us": _num, "average_us": _num, "rtt_us": _num, "bound_us": _num,
    "rate_ppm": _num, "silence_ms": _num, "stalled_ms": _num,
    "used": _ints, "too_far": _ints, "too_slow": _ints, "missing": _ints, "dead": _ints, "ids": _ints,
    "restarted": _bool, "static": _bool,
}
FIELDS_OF = {
    "election.start": {"to": _ints},
    "node.isolated": {"isolated": _bool},
}
REQUIRED = {
    "fault": ("action", "target"),
    "node.stall": ("stalled_ms",),
    "peer.alive": ("peer",), "peer.suspect": ("peer",), "peer.dead": ("peer",),
    "peer.join": ("peer",), "peer.leave": ("peer",),
    "leader": ("leader",),
    "msg.send": ("type",), "msg.recv": ("type",), "msg.unsent": ("type",),
    "clock.offset": ("offset_us",),
    "clock.sample": ("rtt_us", "offset_us"),
    "clock.adjust": ("delta_us", "mode"),
    "clock.round": ("round", "average_us", "used"),
    "clock.master": ("epoch",),
    "session.open": ("session",),
    "lock.grant": ("lock", "token"), "lock.release": ("lock", "token"), "lock.expire": ("lock", "token"),
    "lock.queue": ("lock", "pos"), "lock.leave": ("lock", "pos"), "lock.lost": ("lock", "token"),
    "file.append": ("file", "lock", "token", "offset", "bytes", "crc32c"),
}


def well_formed(e):
    """True if `e` is an event the scripts can read: an object with the common fields `t`,
    `node` and `ev`, every field of FIELDS (or FIELDS_OF) of its type, and the REQUIRED ones."""
    if not isinstance(e, dict) or not all(k in e for k in ("t", "node", "ev")):
        return False
    own = FIELDS_OF.get(e["ev"]) if _str(e["ev"]) else None
    for k, v in e.items():
        check = (own or {}).get(k) or FIELDS.get(k)
        if check and not check(v):
            return False
    return all(k in e for k in REQUIRED.get(e["ev"], ()))


def nkey(n):
    """A sort key for node ids, which may be integers or names: the integers first, in order."""
    return (1, n, 0) if isinstance(n, str) else (0, "", n)


def missing_paths(paths, who):
    """Says on stderr which of `paths` do not exist (`who`: the script's name); True if any."""
    gone = [p for p in paths if not os.path.exists(p)]
    for p in gone:
        print(f"{who}: {p}: no such file or directory", file=sys.stderr)
    return bool(gone)


def plain_args(who, doc, flags, ok):
    """The paths a script was given, when it takes only on/off `flags` besides them: (paths,
    None), or (None, exit code) once --help was printed (0), or the paths are not what
    `ok(paths)` wants (the help, 2), or an unknown option or a missing path was said (2)."""
    argv = sys.argv[1:]
    args = [a for a in argv if not a.startswith("--")]
    asked = "-h" in argv or "--help" in argv
    if asked or not ok(args):
        print(doc)
        return None, 0 if asked else 2
    bad = [a for a in argv if a.startswith("--") and a not in flags]
    if bad:
        print(f"{who}: unknown option {bad[0]} (see --help)", file=sys.stderr)
        return None, 2
    if missing_paths(args, who):
        return None, 2
    return args, None


def load(paths, complain=None):
    """Events of the given files (or of every *.jsonl in the given directories), sorted by
    (t, node, seq). Lines that are not JSON, and events of the wrong shape (well_formed),
    are skipped; `complain(path, lineno)` hears of them."""
    evs = []
    for p in paths:
        files = sorted(glob.glob(os.path.join(glob.escape(p), "*.jsonl"))) if os.path.isdir(p) else [p]
        for path in files:
            try:
                f = open(path, "rb")
            except OSError:
                continue
            with f:
                for n, line in enumerate(f, 1):
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        e = json.loads(line)
                    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep
                        e = None
                    if well_formed(e):
                        evs.append(e)
                    elif complain:
                        complain(path, n)
    evs.sort(key=lambda e: (e["t"], str(e["node"]), e.get("seq", 0)))
    return evs


def load_noting(paths, who):
    """load(paths), saying on stderr (`who`: the script's name) how many lines it skipped."""
    skipped = []
    evs = load(paths, lambda path, n: skipped.append(f"{path}:{n}"))
    if skipped:
        print(f"{who}: skipped {len(skipped)} trace line(s) that are not JSON events of the expected shape"
              f" (the first: {skipped[0]})", file=sys.stderr)
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


def gp_str(x):
    """x as a gnuplot string literal (single quotes; '' is a quote inside)."""
    return "'" + str(x).replace("'", "''") + "'"


def gp_label(x):
    """x as a double-quoted field of a gnuplot data block: no quotes, backslashes or line breaks inside."""
    return '"%s"' % "".join("'" if c == '"' else " " if c == "\\" or ord(c) < 32 else c for c in str(x))


def node_names(run_dir):
    """Node id -> "3 (KMC)" from the run directory's cluster.toml, if any."""
    import tomllib
    try:
        with open(os.path.join(run_dir, "cluster.toml"), "rb") as f:
            nodes = tomllib.load(f).get("node", [])
    except (OSError, ValueError):
        return {}
    return {n["id"]: (f"{n['id']} ({n['name']})" if n.get("name") else str(n["id"]))
            for n in (nodes if isinstance(nodes, list) else []) if isinstance(n, dict) and _int(n.get("id"))}


def run_gnuplot(script_path, who):
    """Runs gnuplot on `script_path`, installing it first if it is missing (scripts/setup
    --with-plots). False (and a message naming `who` and the script) if it is still missing or fails."""
    if not shutil.which("gnuplot"):
        print(f"{who}: gnuplot is missing; installing it (scripts/setup --with-plots)", file=sys.stderr)
        subprocess.run([os.path.join(os.path.dirname(os.path.abspath(__file__)), "setup"), "--no-build", "--with-plots"],
                       check=False)
    if not shutil.which("gnuplot"):
        print(f"{who}: gnuplot is not installed (scripts/setup --with-plots); the script is in {script_path}",
              file=sys.stderr)
        return False
    done = subprocess.run(["gnuplot", script_path], check=False)
    if done.returncode != 0:
        print(f"{who}: gnuplot failed (exit {done.returncode}) on {script_path}", file=sys.stderr)
        return False
    return True
