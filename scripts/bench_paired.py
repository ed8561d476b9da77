#!/usr/bin/env python3
"""Paired timing of two or more shell commands: each round runs every command once, in turn, so
that a slow stretch of this shared machine falls on all of them alike; prints each command's
median wall time and the median of its round-by-round difference to the first command. This is
how README's "median of N paired runs" figures were taken (fresh copies of the two builds, the
same `seal`/`open` for both).

usage: bench_paired.py [--runs N] [--warm-up W] [--cwd DIR] LABEL=COMMAND LABEL=COMMAND [...]

example:
  bench_paired.py --runs 100 --cwd /tmp/bench \\
    "before=./secmail-old seal --home alice --to bob.id -m x --attach in1 -o a.sm && rm a.sm" \\
    "after=./secmail-new seal --home alice --to bob.id -m x --attach in1 -o b.sm && rm b.sm"
"""
import argparse
import statistics
import subprocess
import sys
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=60, help="measured rounds (default 60)")
    parser.add_argument("--warm-up", type=int, default=2, help="rounds run first and not counted (default 2)")
    parser.add_argument("--cwd", default=None, help="folder the commands run in")
    parser.add_argument("commands", nargs="+", metavar="LABEL=COMMAND")
    arguments = parser.parse_args()
    jobs = []
    for spec in arguments.commands:
        label, separator, command = spec.partition("=")
        if not separator or not command:
            sys.exit(f"not LABEL=COMMAND: {spec}")
        jobs.append((label, command))
    if len(jobs) < 2:
        sys.exit("give at least two commands to compare")

    times = {label: [] for label, _ in jobs}
    for round_index in range(arguments.warm_up + arguments.runs):
        for label, command in jobs:
            start = time.perf_counter()
            result = subprocess.run(command, shell=True, cwd=arguments.cwd,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            elapsed = time.perf_counter() - start
            if result.returncode != 0:
                sys.exit(f"{label} failed (exit {result.returncode}): {result.stderr.decode(errors='replace').strip()}")
            if round_index >= arguments.warm_up:
                times[label].append(elapsed * 1000)

    first = jobs[0][0]
    for label, _ in jobs:
        ordered = sorted(times[label])
        differences = [mine - theirs for mine, theirs in zip(times[label], times[first])]
        print(f"{label:<12} median {statistics.median(ordered):7.2f} ms  "
              f"quartiles {ordered[len(ordered) // 4]:.2f}-{ordered[(3 * len(ordered)) // 4]:.2f}  "
              f"paired difference to {first}: median {statistics.median(differences):+.2f} ms")


if __name__ == "__main__":
    main()
