"""How long does the ``tuwen`` command take to start? ``tuwen --help`` and ``tuwen <command> --help``.

Each command is run as a fresh process (the installed ``tuwen`` script next to this Python, or
``python -m tuwen.cli`` when there is none) and its wall time measured; the table shows the median
and the spread of ``--repeats`` runs. ``--help`` does no work, so the time is start-up alone: Python,
the imports ``tuwen.cli`` pulls in, and building the Typer app. Heavy libraries (torch, LanceDB,
pandas, scikit-learn, FastAPI) should load only inside the commands that use them.

Usage::

    python benchmarks/startup.py [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = ("", "ingest", "embed", "info", "demo", "train", "evaluate", "predict", "align", "index", "search",
            "similar", "recommend", "profile", "segments", "forget", "serve")


def launcher() -> list[str]:
    """The installed console script when present (what a user runs), else the module."""
    script = Path(sys.executable).parent / "tuwen"
    return [str(script)] if script.exists() else [sys.executable, "-m", "tuwen.cli"]


def wall_time(argv: list[str]) -> float:
    """Seconds from spawning the process to its exit; a failing command is an error, not a time."""
    tick = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"}, check=False)
    elapsed = time.perf_counter() - tick
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return elapsed


def measure(commands: tuple[str, ...], repeats: int) -> list[dict[str, object]]:
    """Interleave the commands round by round, so drift on a shared machine spreads over all of them."""
    base = launcher()
    times: dict[str, list[float]] = {command: [] for command in commands}
    for _ in range(repeats):
        for command in commands:
            times[command].append(wall_time([*base, *([command] if command else []), "--help"]))
    return [{"command": f"tuwen {command} --help".replace("  ", " "), "median_s": round(statistics.median(t), 3),
             "min_s": round(min(t), 3), "max_s": round(max(t), 3), "runs": len(t)} for command, t in times.items()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per command (the median is reported)")
    parser.add_argument("--commands", default=",".join(c for c in COMMANDS if c),
                        help="sub-commands to time besides the bare `tuwen --help`, comma separated")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    commands = ("", *(c.strip() for c in args.commands.split(",") if c.strip()))
    rows = measure(commands, args.repeats)
    if args.json:
        print(json.dumps({"python": sys.version.split()[0], "cpus": os.cpu_count(), "results": rows}))
        return
    print(f"start-up wall time, median of {args.repeats} fresh processes ({os.cpu_count()} CPUs)")
    print(f"{'command':<28} {'median s':>9} {'min s':>7} {'max s':>7}")
    for row in rows:
        print(f"{row['command']:<28} {row['median_s']:>9.3f} {row['min_s']:>7.3f} {row['max_s']:>7.3f}")


if __name__ == "__main__":
    main()
