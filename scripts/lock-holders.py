#!/usr/bin/env python3
"""Plots lock holders over time from lock-service traces, as SVG with gnuplot.

  scripts/lock-holders.py RUN_DIR|FILE... [--out holders.svg] [--width PX]

One row per client: a bar for every time it held a lock, from the grant to the release or
expiry as the replicated log applied them (each entry once, at the first replica that applied
it), labelled with the lock and its fencing token; an expiry ends its bar in red. Waiting
(lock.queue to grant) is a thin grey line before the bar. Faults (kill, restart, ...) are
marked on the time axis. Time is in ms from the first event.
Writes OUT.svg (and OUT.gp); exit 2 if the traces hold no grants.
"""
import argparse, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ftbus_trace import gp_label, gp_str, load_noting, missing_paths, run_gnuplot  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--out", default="holders.svg")
    ap.add_argument("--width", type=int, default=1200)
    a = ap.parse_args()
    if a.width < 100:
        ap.error("--width must be at least 100 pixels")
    if missing_paths(a.paths, "lock-holders"):
        return 2
    evs = load_noting(a.paths, "lock-holders")
    if not evs:
        print("lock-holders: no trace events", file=sys.stderr)
        return 2
    t0 = min(e["t"] for e in evs)
    ms = lambda t: (t - t0) / 1000.0
    seen, applied = set(), []
    for e in sorted(evs, key=lambda e: e["t"]):
        if e.get("ev") in ("lock.grant", "lock.release", "lock.expire", "lock.queue", "lock.leave", "session.open") \
                and "index" in e \
                and isinstance(e.get("node"), int):
            key = (e["ev"], e["index"], e.get("lock"), e.get("session"))
            if key not in seen:
                seen.add(key)
                applied.append(e)
    client_of, held, queued = {}, {}, {}
    bars, waits = [], []  # (client, t_from, t_to, label, expired)
    for e in applied:
        ev, s, lock = e["ev"], e.get("session"), e.get("lock")
        if ev == "session.open":
            client_of[s] = e.get("client", str(s))
        elif ev == "lock.queue":
            queued[(lock, s)] = e["t"]
        elif ev == "lock.leave":  # gave up waiting
            queued.pop((lock, s), None)
        elif ev == "lock.grant":  # per (lock, session): a grant while another holds it is an overlap to show
            held[(lock, s)] = (e["t"], e.get("token"))
            q = queued.pop((lock, s), None)
            if q is not None:
                waits.append((client_of.get(s, str(s)), q, e["t"]))
        elif ev in ("lock.release", "lock.expire") and (lock, s) in held:
            since, token = held.pop((lock, s))
            bars.append((client_of.get(s, str(s)), since, e["t"], f"{lock} #{token}", ev == "lock.expire"))
    end = max(e["t"] for e in evs)
    for (lock, hs), (since, token) in held.items():  # still held at the end of the trace
        bars.append((client_of.get(hs, str(hs)), since, end, f"{lock} #{token}", False))
    if not bars:
        print("lock-holders: no lock grants in the traces", file=sys.stderr)
        return 2
    clients = sorted({b[0] for b in bars} | {w[0] for w in waits})
    row = {c: i for i, c in enumerate(clients)}
    out = a.out[:-4] if a.out.endswith(".svg") else a.out
    def block(name, rows):
        return "$%s << EOD\n%s\nEOD\n" % (name, "\n".join(" ".join(str(x) for x in r) for r in rows) or "0 0 0 0")
    held_rows = [(ms(f), row[c], ms(t) - ms(f), 0) for c, f, t, _, x in bars if not x]
    exp_rows = [(ms(f), row[c], ms(t) - ms(f), 0) for c, f, t, _, x in bars if x]
    labels = [((ms(f) + ms(t)) / 2, row[c] + 0.3, gp_label(lab)) for c, f, t, lab, _ in bars]
    wait_rows = [(ms(f), row[c], ms(t) - ms(f), 0) for c, f, t in waits]
    faults = [(ms(e["t"]), -0.6, gp_label("%s %s" % (e.get("action"), e.get("target")))) for e in evs if e.get("ev") == "fault"]
    script = block("held", held_rows) + block("expired", exp_rows) + block("labels", labels) + \
        block("waits", wait_rows) + block("faults", faults or [(0, -5, '""')]) + f"""
set terminal svg size {a.width},{max(300, 60 * len(clients) + 160)} dynamic font 'sans,11' background '#ffffff'
set output {gp_str(out + '.svg')}
set title 'lock holders over time: {len(bars)} holds by {len(clients)} clients'
set xlabel 'ms since the first event'
set ytics ({", ".join('%s %d' % (gp_label(c), i) for c, i in row.items())})
set yrange [-0.9:{len(clients) - 0.3}]
set xrange [0:{ms(end):.3f}]
set grid xtics
set key outside right top
plot $waits using 1:2:3:4 with vectors nohead lw 2 lc rgb '#bbbbbb' title 'waiting', \\
     $held using 1:2:3:4 with vectors nohead lw 12 lc rgb '#2ca02c' title 'holding (to release)', \\
     $expired using 1:2:3:4 with vectors nohead lw 12 lc rgb '#d62728' title 'holding (to expiry)', \\
     $labels using 1:2:3 with labels font ',8' notitle, \\
     $faults using 1:2:3 with labels font ',8' tc rgb '#d62728' point pt 2 lc rgb '#d62728' offset 0,0.6 title 'faults'
"""
    try:
        with open(out + ".gp", "w") as f:
            f.write(script)
    except OSError as e:
        print(f"lock-holders: cannot write {out}.gp: {e.strerror}", file=sys.stderr)
        return 1
    if not run_gnuplot(out + ".gp", "lock-holders"):
        return 1
    print(f"{out}.svg: {len(bars)} holds by {len(clients)} clients, {len(waits)} waits, {len(faults)} faults")
    return 0


if __name__ == "__main__":
    sys.exit(main())
