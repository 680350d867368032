#!/usr/bin/env python3
"""Clock-sync figures from a Berkeley run's trace files: the spread (max - min virtual offset
across nodes, compared at the same instant by interpolating each node's clock.offset
samples) at the start, after rounds 1, 3 and 10 (just before the next round, the worst
point of a round), and its maximum over a window; the master failover time (a `fault` kill
of the master -> the next completed round by another node); and a plot of every node's
offset over time (gnuplot SVG).
usage: scripts/clock-report.py RUN_DIR [--skip-nodes 6,7] [--from SECONDS] [--plot PREFIX] [--json]"""
import json, math, os, shutil, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ftbus_trace import Offsets, gp_str, load_noting, nkey, node_names  # noqa: E402


def usage_error(msg):
    print(f"clock-report: {msg} (see --help)", file=sys.stderr)
    return 2


def main():
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args else 2
    runs, skip, t_from, plot, as_json = [], set(), None, None, False
    it = iter(args)
    for a in it:
        if a in ("--skip-nodes", "--from", "--plot"):
            v = next(it, None)
            if v is None:
                return usage_error(f"{a} needs a value")
            if a == "--skip-nodes":
                try:
                    skip = {int(x) for x in v.split(",") if x}
                except ValueError:
                    return usage_error(f"--skip-nodes takes node ids separated by commas, not '{v}'")
            elif a == "--from":
                try:
                    t_from = float(v)
                except ValueError:
                    t_from = None
                if t_from is None or not math.isfinite(t_from) or t_from < 0:
                    return usage_error(f"--from takes a number of seconds >= 0, not '{v}'")
            else:
                plot = v
        elif a == "--json":
            as_json = True
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        elif a.startswith("-") and a != "-":
            return usage_error(f"unknown option {a}")
        else:
            runs.append(a)
    if len(runs) != 1:
        return usage_error("one RUN_DIR only" if runs else "no RUN_DIR")
    run = runs[0]
    if not os.path.exists(run):
        print(f"clock-report: {run}: no such directory", file=sys.stderr)
        return 2
    evs = load_noting([run], "clock-report")
    offs = Offsets(evs, skip=skip)
    if not offs.series:
        print("clock-report: no clock.offset events", file=sys.stderr)
        return 2
    t0 = min(s[0][0] for s in offs.series.values())
    t_end = max(s[-1][0] for s in offs.series.values())
    out = {"nodes": sorted(offs.series, key=nkey), "skipped": sorted(skip)}
    # Spread at the start: each node's first sample is its configured skew.
    first = [s[0][1] for s in offs.series.values()]
    out["spread_start_us"] = max(first) - min(first)
    rounds = sorted((e for e in evs if e.get("ev") == "clock.round"), key=lambda e: e["t"])
    first_master = rounds[0]["node"] if rounds else None
    mine = [e for e in rounds if e["node"] == first_master]
    for k in (1, 3, 10):
        if len(mine) > k:  # just before round k + 1: the worst point after round k
            out[f"spread_after_round_{k}_us"] = offs.spread(mine[k]["t"] - 2000)
    # Max spread over a window (default: from 30 s after the first round to the end).
    start = (t0 + t_from * 1e6) if t_from is not None else ((mine[0]["t"] + 30e6) if mine else t0)
    # A window that starts within 0.5 s of the end (or after it) holds no sample: say why.
    if start >= t_end - 500_000:
        if t_from is not None:
            too_short = (f"--from {t_from:g} s starts within 0.5 s of the run's last clock sample or after it"
                         f" ({(t_end - t0) / 1e6:.1f} s after its first)")
        elif not mine:
            too_short = f"no Berkeley rounds, and the clock samples span only {(t_end - t0) / 1e6:.1f} s"
        else:
            too_short = (f"the run ends {(t_end - mine[0]['t']) / 1e6:.1f} s after round 1, before the default window"
                         " starts (30 s after round 1); --from SECONDS (from the first clock sample) sets another start")
    else:
        too_short = None
    faults = [e["t"] for e in evs if e.get("ev") == "fault"]
    # Every 250 ms; less often if that makes over 400,000 samples (a day-long run, or a sample
    # with a wrong `t`), so that the sampling ends.
    step = max(250_000, (t_end - start) / 400_000)
    spreads, t = [], start
    while t < t_end - 500_000:
        # Skip 5 s after a fault: a new master's first round re-centres everyone.
        if not any(f <= t < f + 5e6 for f in faults):
            s = offs.spread(t)
            if s is not None:
                spreads.append(s)
        t += step
    spreads.sort()
    out["window_s"] = round((t_end - start) / 1e6, 1) if too_short is None else None
    out["max_spread_in_window_us"] = spreads[-1] if spreads else None
    out["p50_spread_in_window_us"] = spreads[len(spreads) // 2] if spreads else None
    out["p99_spread_in_window_us"] = spreads[min(len(spreads) - 1, int(len(spreads) * 0.99))] if spreads else None
    # Master failover: kill of the master -> next completed round by another node.
    fo = []
    for e in evs:
        if e.get("ev") != "fault" or e.get("action") != "kill":
            continue
        before = [r for r in rounds if r["t"] < e["t"]]
        if not before or before[-1]["node"] != e.get("target"):
            continue
        nxt = next((r for r in rounds if r["t"] > e["t"] and r["node"] != e.get("target")), None)
        if nxt:
            fo.append((nxt["t"] - e["t"]) / 1000)
    out["master_failover_ms"] = fo
    # Rounds that left someone out as too far (a broken clock).
    out["rounds_with_too_far"] = sum(1 for r in rounds if r.get("too_far"))
    out["rounds"] = len(rounds)
    if as_json:
        print(json.dumps(out))
    else:
        fmt = lambda us: "-" if us is None else (f"{us / 1e6:.6f} s" if us >= 1000 else f"{us:.0f} us")
        print(f"nodes {out['nodes']}" + (f" (left out of the spread: {out['skipped']})" if skip else ""))
        print(f"spread at start {fmt(out['spread_start_us'])}; after round 1 {fmt(out.get('spread_after_round_1_us'))},"
              f" 3 {fmt(out.get('spread_after_round_3_us'))}, 10 {fmt(out.get('spread_after_round_10_us'))}"
              " (each just before the next round)")
        if too_short:
            print(f"spread over a window: none — {too_short}")
        else:
            every = "250 ms" if step == 250_000 else f"{step / 1e6:.3g} s"
            print(f"spread over {out['window_s']} s (sampled every {every}): median {fmt(out['p50_spread_in_window_us'])},"
                  f" p99 {fmt(out['p99_spread_in_window_us'])}, max {fmt(out['max_spread_in_window_us'])}")
        if fo:
            fo_s = sorted(fo)
            print(f"master failover (kill -> next round by another node): {len(fo)} kills, min {fo_s[0]:.0f}"
                  f" median {fo_s[len(fo_s) // 2]:.0f} max {fo_s[-1]:.0f} ms")
        if out["rounds_with_too_far"]:
            print(f"{out['rounds_with_too_far']} of {out['rounds']} rounds left a clock out as too far from the median")
    if plot:
        names = node_names(run)
        try:
            with open(plot + ".dat", "w") as f:
                for node, s in sorted(offs.series.items(), key=lambda kv: nkey(kv[0])):
                    f.write(f"# {names.get(node, node)}\n")
                    for t, o in s:
                        f.write(f"{(t - t0) / 1e6:.3f} {o / 1000:.3f}\n")
                    f.write("\n\n")
        except OSError as e:
            print(f"clock-report: cannot write {plot}.dat: {e.strerror}", file=sys.stderr)
            return 1
        if shutil.which("gnuplot"):
            series = sorted(offs.series, key=nkey)
            # The lower panel starts 20 s in, or half-way through a shorter run (started at the
            # run's end, it held no data, and gnuplot refused the range when the end rounded up).
            lines = ", ".join(f"{gp_str(plot + '.dat')} index {i} with lines lw 2 title {gp_str(names.get(n, n))}"
                              for i, n in enumerate(series))
            done = subprocess.run(["gnuplot"], check=False, text=True, input=f"""set terminal svg size 1000,600 font 'sans,12' background '#ffffff'
set output {gp_str(plot + '.svg')}
set multiplot layout 2,1 title 'Berkeley: each virtual clock minus real time'
set ylabel 'offset (ms)'
set grid
set key outside right
set xrange [0:{min(20, (t_end - t0) / 1e6):.1f}]
plot {lines}
set xrange [*:*]
set xlabel 'seconds since start'
set ylabel 'offset (ms), after the first rounds'
set yrange [*:*]
set xrange [{min(20, (t_end - t0) / 2e6):.3f}:*]
plot {lines}
unset multiplot
""")
            if done.returncode != 0:
                print(f"clock-report: gnuplot failed (exit {done.returncode}); data in {plot}.dat", file=sys.stderr)
                return 1
            print(f"plot: {plot}.svg", file=sys.stderr)
        else:
            print(f"(no gnuplot: data in {plot}.dat)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
