#!/usr/bin/env python
"""Fuzz run: N mutated files through scan + decode, each in a child with a time and memory bound.

Prints the count per class (ok, problem, escape, hang, memory, crash), the failures by
mutator, and saves every failing case (its files and outcome.json) under --save.

    .venv/bin/python bench/fuzz.py --n 10000 --seed 1 [--workers 2] [--timeout 5] [--memory-gb 2] [--save DIR]
    .venv/bin/python bench/fuzz.py --case s1-00042      # one case again, with its detail
    .venv/bin/python bench/fuzz.py --n 2000 --tree /tmp/old   # the same cases against an older checkout
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests" / "fuzz")]
if "--tree" in sys.argv:  # the workstation package of another checkout (e.g. `git worktree` of an older commit)
    sys.path.insert(0, sys.argv[sys.argv.index("--tree") + 1])

import fuzz_cases  # noqa: E402
import fuzz_runner  # noqa: E402
import regressions  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=int, default=0, help="first case index")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=fuzz_runner.TIMEOUT_S)
    parser.add_argument("--memory-gb", type=float, default=fuzz_runner.MEMORY_LIMIT / (1 << 30))
    parser.add_argument("--save", type=Path, default=REPO / "out" / "fuzz-failures")
    parser.add_argument("--outcomes", type=Path, help="write every case's class and detail here (JSON lines)")
    parser.add_argument("--top", type=int, default=12, help="how many of the most frequent problem reasons to print")
    parser.add_argument("--keep", action="store_true",
                        help="also keep each failing case as a regression in tests/data/fuzz-regressions/")
    parser.add_argument("--tree", help="run the cases against the workstation package in this folder (a checkout)")
    parser.add_argument("--case", help="run one case by id (s<seed>-<index>) and print its detail")
    args = parser.parse_args()

    started = time.perf_counter()
    seeds = fuzz_cases.Seeds()
    if args.case:
        seed, index = args.case[1:].split("-")
        cases = [fuzz_cases.make_case(seeds, int(seed), int(index))]
    else:
        cases = [fuzz_cases.make_case(seeds, args.seed, i) for i in range(args.start, args.start + args.n)]
    generated = time.perf_counter() - started
    print(f"{len(cases)} cases from {len(seeds.files)} seed files (seed {args.seed}), generated in {generated:.1f} s; "
          f"{args.workers} workers, {args.timeout:g} s and {args.memory_gb:g} GB a case", flush=True)
    by_id = {c.case_id: c for c in cases}
    failures: list[fuzz_runner.Outcome] = []
    done = Counter()

    def report(outcome: fuzz_runner.Outcome) -> None:
        done[outcome.kind] += 1
        if outcome.kind in fuzz_runner.FAILURES:
            failures.append(outcome)
            where = fuzz_runner.save_case(by_id[outcome.case_id], outcome, args.save)
            if args.keep:
                regressions.save(by_id[outcome.case_id], outcome.kind, outcome.detail, seeds)
            first = outcome.detail.strip().splitlines()[:1]
            print(f"  {outcome.kind:7s} {outcome.case_id} {outcome.mutator:16s} {outcome.seed_name:28s} "
                  f"{first[0][:90] if first else ''}  -> {where.relative_to(REPO) if where.is_relative_to(REPO) else where}",
                  flush=True)
        total = sum(done.values())
        if total % 500 == 0:
            print(f"  ... {total}/{len(cases)} in {time.perf_counter() - started:.0f} s", flush=True)

    outcomes = fuzz_runner.run_cases(cases, workers=args.workers, timeout=args.timeout,
                                     memory_limit=int(args.memory_gb * (1 << 30)), on_outcome=report)
    elapsed = time.perf_counter() - started
    if args.outcomes:
        with args.outcomes.open("w") as out:
            for o in outcomes:
                out.write(json.dumps(dataclasses.asdict(o)) + "\n")
    totals = fuzz_runner.counts(outcomes)
    print()
    print("class      cases   share")
    for kind in fuzz_runner.CLASSES:
        print(f"{kind:9s} {totals[kind]:6d}  {100 * totals[kind] / max(len(outcomes), 1):5.1f}%")
    slowest = sorted(outcomes, key=lambda o: -o.seconds)[:3]
    print(f"{len(outcomes)} cases in {elapsed:.0f} s ({len(outcomes) / max(elapsed, 1e-9):.1f}/s); slowest: "
          + ", ".join(f"{o.case_id} {o.seconds:.1f} s" for o in slowest))
    reasons = Counter(re.sub(r"\d+", "N", o.detail.splitlines()[0])[:100] for o in outcomes if o.kind == "problem" and o.detail)
    print("most frequent problems reported:")
    for reason, count in reasons.most_common(args.top):
        print(f"  {count:5d}  {reason}")
    if failures:
        print("failures by mutator:", dict(Counter(o.mutator for o in failures)))
        print(f"failing cases saved under {args.save}")
    if args.case:
        print(outcomes[0].kind, outcomes[0].detail)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
