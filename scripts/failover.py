#!/usr/bin/env python3
"""Failover figures from trace files: for every `fault` kill (or pause) of the leader that
all live nodes followed, the time until every live survivor traces a new leader (the same
one), and the election messages sent from the fault until the next fault (or the end). One JSON object per such fault on stdout:
  {"fault_t", "old", "new", "failover_ms", "first_notice_ms", "messages": {TYPE: n}, "sent": n}
A fault after which the survivors never agreed is reported with "new": null.
usage: scripts/failover.py TRACE_FILE_OR_DIR... [--summary]
  --summary   instead, print one line: trials, min / median / mean / p99 / max failover ms,
              and mean election messages per failover
Exit 1 if the traces hold no usable events or no fault (or, with --summary, no measured
failover); 2 for a usage error or a path that does not exist."""
import json, math, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ftbus_trace import Replay, load, plain_args  # noqa: E402

ELECTION_TYPES = {"ELECTION", "ANSWER", "COORDINATOR", "RING_ELECTION",
                  "REQUEST_VOTE", "VOTE", "PRE_VOTE", "PRE_VOTE_REPLY"}


def failovers(evs):
    r = Replay()
    pending = None  # the fault being measured
    out = []
    for e in evs:
        ev, node = e.get("ev"), e.get("node")
        if ev == "fault":
            tgt, act = e.get("target"), e.get("action")
            pending = None  # a new fault ends the previous measurement
            if act in ("kill", "pause") and tgt in r.live and r.agreed() == tgt:
                pending = {"fault_t": e["t"], "old": tgt, "new": None, "failover_ms": None,
                           "first_notice_ms": None, "messages": {}, "sent": 0}
                out.append(pending)
            r.apply(e)
            continue
        r.apply(e)
        if pending is None or node == "ctl" or e.get("inc") != r.inc.get(node):
            continue
        if ev == "peer.dead" and e.get("peer") == pending["old"] and pending["first_notice_ms"] is None:
            pending["first_notice_ms"] = (e["t"] - pending["fault_t"]) / 1000
        if ev in ("msg.send", "msg.unsent") and e.get("type") in ELECTION_TYPES:
            pending["messages"][e["type"]] = pending["messages"].get(e["type"], 0) + 1
            pending["sent"] += 1
        l = r.agreed()
        if l is not None and l != pending["old"] and pending["new"] is None:
            pending["new"] = l
            pending["failover_ms"] = (e["t"] - pending["fault_t"]) / 1000
    return out


def percentile(xs, p):
    """Nearest rank: the smallest x with at least p% of xs at or below it."""
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = max(0, min(len(xs) - 1, math.ceil(p * len(xs) / 100) - 1))
    return xs[k]


def main():
    args, code = plain_args("failover", __doc__, ("--summary",), lambda a: len(a) > 0)
    if args is None:
        return code
    skipped = []
    evs = load(args, lambda path, n: skipped.append((path, n)))
    if not evs:
        print(f"failover: no usable trace events in {' '.join(args)}"
              + (f" ({len(skipped)} line(s) unreadable or of the wrong shape)" if skipped else ""), file=sys.stderr)
        return 1
    if not any(e["ev"] == "fault" for e in evs):
        print(f"failover: no fault events in {' '.join(args)}: nothing to measure"
              " (a run directory's faults are in its ctl.jsonl)", file=sys.stderr)
        return 1
    res = failovers(evs)
    if "--summary" not in sys.argv:
        for r in res:
            print(json.dumps(r))
        return 0
    ok = [r["failover_ms"] for r in res if r["failover_ms"] is not None]
    failed = len(res) - len(ok)
    if not ok:
        print(f"no measured failovers ({failed} without agreement)")
        return 1
    msgs = [r["sent"] for r in res if r["failover_ms"] is not None]
    print(f"trials {len(ok)}  min {min(ok):.1f}  median {percentile(ok, 50):.1f}  mean {sum(ok) / len(ok):.1f}"
          f"  p99 {percentile(ok, 99):.1f}  max {max(ok):.1f} ms;  election messages per failover:"
          f" mean {sum(msgs) / len(msgs):.1f}, min {min(msgs)}, max {max(msgs)}"
          + (f";  {failed} without agreement" if failed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
