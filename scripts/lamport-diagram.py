#!/usr/bin/env python3
"""Draws a Lamport (space-time) diagram of ftbus traces as SVG, with gnuplot.

  scripts/lamport-diagram.py RUN_DIR|FILE... [--out diagram.svg] [--from MS] [--to MS]
                             [--types ELECTION,ANSWER,...] [--width PX] [--timeline]

Nodes are horizontal lanes (a restart starts a new segment of the same lane); each message
whose send and receive are both traced is an arrow from (send time, sender) to (receive
time, receiver), coloured by type; a node's leader is drawn under its lane as a thick band
labelled with the leader it follows (gaps: no leader); faults (kill, pause, ...) are red
marks with their action, peer.dead small crosses, lock grants (lock.acquired) green
triangles. Time is in ms from the start of the window; --from/--to cut a window out of a
long trace (ms from the trace's first event). Heartbeat arrows appear only in traces taken
at level `all`; by default every type with at least one traced pair is drawn. --timeline
leaves the messages out: a failover timeline (whom each node follows, faults, detections).
Writes OUT.svg (and OUT.gp with the data, for re-drawing); exit 2 if there is nothing to draw.
"""
import argparse, collections, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ftbus_trace import gp_label, gp_str, load_noting, missing_paths, run_gnuplot  # noqa: E402

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173"]
LEADERS = ["#c6dbef", "#fdd0a2", "#c7e9c0", "#dadaeb", "#fcbba1", "#d9d9d9"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--out", default="diagram.svg")
    ap.add_argument("--from", dest="t_from", type=float, default=None, help="window start, ms from the first event")
    ap.add_argument("--to", dest="t_to", type=float, default=None, help="window end, ms from the first event")
    ap.add_argument("--types", default="", help="message types to draw (comma-separated; default all)")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--timeline", action="store_true", help="no message arrows: leaders, faults and detections only")
    a = ap.parse_args()
    if a.width < 100:
        ap.error("--width must be at least 100 pixels")

    if missing_paths(a.paths, "lamport-diagram"):
        return 2
    evs = load_noting(a.paths, "lamport-diagram")
    if not evs:
        print("lamport-diagram: no trace events", file=sys.stderr)
        return 2
    t0 = evs[0]["t"]
    lo = t0 + (a.t_from or 0) * 1000
    hi = t0 + a.t_to * 1000 if a.t_to is not None else evs[-1]["t"]
    ms = lambda t: (t - lo) / 1000.0
    inwin = lambda t: lo <= t <= hi
    wanted = set(filter(None, a.types.split(",")))

    nodes = sorted({e["node"] for e in evs if isinstance(e.get("node"), int)})
    if not nodes:
        print("lamport-diagram: no node events", file=sys.stderr)
        return 2
    lane = {n: i for i, n in enumerate(nodes)}

    # A message id (sender, inc, seq) is unique per channel, not per sender: match a receive
    # to the send of the same channel kind (`ch`: req, rep) addressed to its receiver, or to a
    # published send (docs/TRACE.md, "Matching sends and receives").
    sends = {}
    for e in evs:
        if e.get("ev") == "msg.send" and "id" in e:
            to = e.get("to")
            if e.get("ch") == "join":
                sends[(str(e["id"]), "join")] = e
            elif not isinstance(to, int) or e.get("ch") == "pub":
                sends[(str(e["id"]), "pub", e.get("type"))] = e
            else:
                sends[(str(e["id"]), e.get("ch", ""), to)] = e
    arrows = collections.defaultdict(list)  # type -> [(x1, y1, x2, y2)]
    for e in evs:
        if e.get("ev") != "msg.recv" or "id" not in e or e.get("node") not in lane:
            continue
        ch = e.get("ch")
        if ch == "pub":
            s = sends.get((str(e["id"]), "pub", e.get("type")))
        else:
            s = sends.get((str(e["id"]), ch or "", e["node"])) or (None if ch else sends.get((str(e["id"]), "pub", e.get("type"))))
            if ch == "req" and not s:
                s = sends.get((str(e["id"]), "join"))
        if not s or s.get("node") not in lane or not (inwin(s["t"]) or inwin(e["t"])):
            continue
        typ = e.get("type", "?")
        if a.timeline or (wanted and typ not in wanted):
            continue
        arrows[typ].append((ms(s["t"]), lane[s["node"]], ms(e["t"]), lane[e["node"]]))

    # Leader bands: per node, (from, to, leader) while it follows someone.
    bands, following = [], {}
    def close(n, t):
        if n in following:
            since, leader = following.pop(n)
            if t > lo and since < hi:
                bands.append((ms(max(since, lo)), ms(min(t, hi)), lane[n], leader))
    marks = {"fault": [], "dead": [], "grant": [], "start": []}
    for e in evs:
        ev, n, t = e.get("ev"), e.get("node"), e["t"]
        if ev == "fault" and e.get("target") in lane:
            if e.get("action") in ("kill", "pause"):
                close(e["target"], t)
            if inwin(t):
                marks["fault"].append((ms(t), lane[e["target"]], e.get("action", "?")))
            continue
        if n not in lane:
            continue
        if ev == "leader" and e.get("leader"):
            close(n, t)
            following[n] = (t, e["leader"])
        elif ev in ("election.start", "node.stop", "node.start") or (ev == "role" and e.get("role") not in ("leader", "follower")):
            close(n, t)
            if ev == "node.start" and inwin(t):
                marks["start"].append((ms(t), lane[n], "start"))
        elif ev == "peer.dead" and inwin(t):
            marks["dead"].append((ms(t), lane[n], str(e.get("peer"))))
        elif ev == "lock.acquired" and inwin(t):
            marks["grant"].append((ms(t), lane[n], "%s#%s" % (e.get("lock", "?"), e.get("token", "?"))))
    for n in list(following):
        close(n, hi)

    if not arrows and not bands and not any(marks.values()):
        print("lamport-diagram: nothing to draw in that window", file=sys.stderr)
        return 2

    out = a.out[:-4] if a.out.endswith(".svg") else a.out
    data = out + ".gp"
    blocks, plots = [], []
    def block(name, rows):
        blocks.append("$%s << EOD\n%s\nEOD\n" % (name, "\n".join(" ".join(str(x) for x in r) for r in rows) or "0 0 0 0"))
    leaders = sorted({b[3] for b in bands})
    for i, l in enumerate(leaders):
        block("band%d" % i, [(b[0], b[2] - 0.18, b[1] - b[0], 0) for b in bands if b[3] == l])
        plots.append("$band%d using 1:2:3:4 with vectors nohead lw 9 lc rgb '%s' title 'follows %s'"
                     % (i, LEADERS[i % len(LEADERS)], l))
    for i, (typ, rows) in enumerate(sorted(arrows.items())):
        block("msg%d" % i, [(x1, y1, x2 - x1, y2 - y1) for x1, y1, x2, y2 in rows])
        plots.append("$msg%d using 1:2:3:4 with vectors head filled size screen 0.006,20 lw 1 lc rgb '%s' title %s"
                     % (i, PALETTE[i % len(PALETTE)], gp_str("%s (%d)" % (typ, len(rows)))))
    styles = {"fault": ("pt 2 ps 2 lc rgb '#d62728'", "faults"), "dead": ("pt 1 ps 1 lc rgb '#444444'", "peer.dead (peer)"),
              "grant": ("pt 9 ps 1.5 lc rgb '#2ca02c'", "lock grants"), "start": ("pt 6 ps 1 lc rgb '#000000'", "node.start")}
    for k, rows in marks.items():
        if not rows:
            continue
        block(k, [(x, y, gp_label(lab)) for x, y, lab in rows])
        st, title = styles[k]
        plots.append("$%s using 1:2 with points %s title '%s'" % (k, st, title))
        plots.append("$%s using 1:2:3 with labels offset 0,0.55 font ',8' notitle" % k)
    height = max(300, 90 * len(nodes) + 160)
    ytics = ", ".join('"node %s" %d' % (n, i) for n, i in lane.items())
    script = "".join(blocks) + f"""
set terminal svg size {a.width},{height} dynamic font 'sans,11' background '#ffffff'
set output {gp_str(out + '.svg')}
set title 'space-time diagram: {len(nodes)} nodes, {sum(len(r) for r in arrows.values())} messages, {ms(hi):.0f} ms'
set xlabel 'ms since {a.t_from or 0:.0f} ms into the trace'
set ytics ({ytics})
set yrange [-0.7:{len(nodes) - 0.3}]
set xrange [0:{max(ms(hi), 1):.3f}]
set grid xtics
set key outside right top
plot {", ".join(plots)}
"""
    try:
        with open(data, "w") as f:
            f.write(script)
    except OSError as e:
        print(f"lamport-diagram: cannot write {data}: {e.strerror}", file=sys.stderr)
        return 1
    if not run_gnuplot(data, "lamport-diagram"):
        return 1
    print(f"{out}.svg: {len(nodes)} lanes, {sum(len(r) for r in arrows.values())} arrows, "
          f"{len(bands)} leader bands, {sum(len(v) for v in marks.values())} marks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
