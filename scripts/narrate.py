#!/usr/bin/env python3
"""Narrates a demo run from its trace files only: for every fault event, who noticed
what and how many ms later. Nothing is printed that the trace does not show.
usage: scripts/narrate.py RUN_DIR"""
import glob, json, os, sys

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

def main():
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__); return 0 if len(sys.argv) == 2 else 2
    evs = load(sys.argv[1])
    if not evs:
        print("narrate: no trace events", file=sys.stderr); return 2
    t0 = evs[0]["t"]
    ms = lambda t: (t - t0) / 1000.0
    starts = [e for e in evs if e.get("ev") == "node.start"]
    print(f"{len({e['node'] for e in starts})} nodes started ({len(starts)} process starts).")
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
    drops = [e for e in evs if e.get("ev") == "msg.drop"]
    if drops:
        print(f"\n{len(drops)} frame(s) dropped as malformed (msg.drop).")
    stops = [e for e in evs if e.get("ev") == "node.stop"]
    print(f"\n{len(stops)} node(s) stopped cleanly; {len(evs)} trace events in all.")
    return 0

if __name__ == "__main__":
    sys.exit(main())
