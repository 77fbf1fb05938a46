"""Start-up time of commands that should feel instant, against `import click`.

Median of several runs of each command in a fresh process.

    python benchmarks/bench_startup.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from _common import machine, print_table

COMMANDS = {
    'python -c "import click"': [sys.executable, "-c", "import click"],
    "dilcli --help": [sys.executable, "-m", "dilcli", "--help"],
    "dilcli kernels": [sys.executable, "-m", "dilcli", "kernels"],
    "dilcli rf-table -d 1,1,2,4,8,16,1": [
        sys.executable,
        "-m",
        "dilcli",
        "rf-table",
        "-d",
        "1,1,2,4,8,16,1",
        "--format",
        "json",
    ],
}


def seconds(command, repeat=11):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    import os

    print(f"machine: {machine()}")
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("note: PYTHONDONTWRITEBYTECODE is set, so every run compiles dilcli/cli.py again")
    base = None
    rows = []
    for name, command in COMMANDS.items():
        value = seconds(command)
        base = base or value
        rows.append([name, f"{1000 * value:.0f}", f"{value / base:.2f}"])
    print_table(
        "start-up (target: each dilcli command within 1.5x of import click)",
        ["command", "ms", "ratio"],
        rows,
    )


if __name__ == "__main__":
    main()
