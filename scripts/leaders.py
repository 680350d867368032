#!/usr/bin/env python3
"""Prints whom each node follows now, read from a run directory's traces: one line
"ID LEADER" per node (LEADER 0: none — joining or electing), for the listed ids or all.
usage: scripts/leaders.py RUN_DIR [ID...]"""
import os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ftbus_trace import Replay, load, missing_paths  # noqa: E402


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(sys.argv) >= 2 else 2
    ids = []
    for a in sys.argv[2:]:
        try:
            ids.append(int(a))
        except ValueError:
            what = f"unknown option {a}" if a.startswith("-") else f"'{a}' is not a node id"
            print(f"leaders: {what} (usage: scripts/leaders.py RUN_DIR [ID...])", file=sys.stderr)
            return 2
    if missing_paths(sys.argv[1:2], "leaders"):
        return 2
    r = Replay()
    for e in load([sys.argv[1]]):
        r.apply(e)
    ids = ids or sorted(n for n in r.inc if isinstance(n, int))
    for i in ids:
        print(i, r.leader.get(i, 0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
