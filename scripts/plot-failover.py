#!/usr/bin/env python3
"""Failover table and CDF plot from trace directories (one per configuration).
For each LABEL=DIR: the failovers in DIR's traces (scripts/failover.py), summarised as
min / median / mean / p99 / max ms; then a CDF of all of them, drawn by gnuplot as SVG.
usage: scripts/plot-failover.py [--title T] [--out PREFIX] LABEL=DIR...
  writes PREFIX.dat (the CDF points) and PREFIX.svg (if gnuplot is installed;
  scripts/bench-fig16 installs it); prints the table on stdout"""
import os, shutil, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from failover import failovers, percentile  # noqa: E402
from ftbus_trace import gp_str, load  # noqa: E402


def usage_error(msg):
    print(f"plot-failover: {msg} (usage: scripts/plot-failover.py [--title T] [--out PREFIX] LABEL=DIR...)",
          file=sys.stderr)
    return 2


def main():
    args, title, out = [], "failover", "failover"
    it = iter(sys.argv[1:])
    for a in it:
        if a in ("-h", "--help"):
            print(__doc__)
            return 0
        if a in ("--title", "--out"):
            v = next(it, None)
            if v is None:
                return usage_error(f"{a} needs a value")
            if a == "--title":
                title = v
            else:
                out = v
        elif a.startswith("-"):
            return usage_error(f"unknown option {a}")
        else:
            args.append(a)
    if not args:
        print(__doc__)
        return 2
    for a in args:
        label, eq, d = a.partition("=")
        if not eq or not label or not d:
            return usage_error(f"'{a}' is not LABEL=DIR")
        if not os.path.exists(d):
            print(f"plot-failover: {d}: no such file or directory", file=sys.stderr)
            return 2
    series = []
    print(f"{'configuration':<16} {'trials':>6} {'min':>8} {'median':>8} {'mean':>8} {'p99':>8} {'max':>8}"
          f" {'no leader':>9}   (ms, kill -9 -> every survivor follows the new leader)")
    for a in args:
        label, _, d = a.partition("=")
        res = failovers(load([d]))
        xs = sorted(r["failover_ms"] for r in res if r["failover_ms"] is not None)
        missing = len(res) - len(xs)
        if xs:
            print(f"{label:<16} {len(xs):>6} {xs[0]:>8.1f} {percentile(xs, 50):>8.1f} {sum(xs) / len(xs):>8.1f}"
                  f" {percentile(xs, 99):>8.1f} {xs[-1]:>8.1f} {missing:>9}")
        else:
            print(f"{label:<16} {0:>6} {'-':>8} {'-':>8} {'-':>8} {'-':>8} {'-':>8} {missing:>9}")
        series.append((label, xs))
    try:
        with open(out + ".dat", "w") as f:
            for i, (label, xs) in enumerate(series):
                f.write(f"# {label}\n")
                for k, x in enumerate(xs, 1):
                    f.write(f"{x:.3f} {k / len(xs):.4f}\n")
                f.write("\n\n")
    except OSError as e:
        print(f"plot-failover: cannot write {out}.dat: {e.strerror}", file=sys.stderr)
        return 1
    if not any(xs for _, xs in series):
        print(f"plot-failover: no failover measured in any configuration: no plot drawn (CDF data in {out}.dat)",
              file=sys.stderr)
        return 1
    if not shutil.which("gnuplot"):
        print(f"(gnuplot not installed: CDF data in {out}.dat, no plot drawn)", file=sys.stderr)
        return 0
    plots = ", ".join(f"{gp_str(out + '.dat')} index {i} with steps lw 2 title {gp_str(label)}" for i, (label, _) in enumerate(series))
    script = f"""set terminal svg size 900,560 font 'sans,12' background '#ffffff'
set output {gp_str(out + '.svg')}
set title {gp_str(title)}
set xlabel 'time without a leader, kill -9 -> every survivor follows the new leader (ms)'
set ylabel 'cumulative fraction of trials'
set logscale x
set grid
set key bottom right
set yrange [0:1]
plot {plots}
"""
    if subprocess.run(["gnuplot"], input=script, text=True, check=False).returncode != 0:
        print(f"plot-failover: gnuplot failed; the CDF data is in {out}.dat", file=sys.stderr)
        return 1
    print(f"plot: {out}.svg", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
