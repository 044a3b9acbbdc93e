"""Hostile files through the public API: a fixed-seed fuzz sample and every case that ever failed.

Each case runs in a child process with a 5 s and 2 GB bound (fuzz_runner); none may
raise out of our API, hang or blow up memory. `bench/fuzz.py` runs larger sets.
"""

from __future__ import annotations

import time

import pytest

import fuzz_cases
import fuzz_runner
import regressions

SAMPLE_SEED = 20240917
SAMPLE_SIZE = 1000


@pytest.fixture(scope="module")
def seeds() -> fuzz_cases.Seeds:
    return fuzz_cases.Seeds()


def _failures(outcomes: list[fuzz_runner.Outcome]) -> str:
    return "\n".join(f"{o.kind} {o.case_id} {o.mutator} {o.seed_name}: {o.detail[:600]}"
                     for o in outcomes if o.kind in fuzz_runner.FAILURES)


def test_fixed_seed_sample_has_no_escape_hang_or_memory_blow_up(seeds: fuzz_cases.Seeds) -> None:
    cases = [fuzz_cases.make_case(seeds, SAMPLE_SEED, i) for i in range(SAMPLE_SIZE)]
    assert len({c.mutator.split("+")[0] for c in cases}) == len(fuzz_cases.MUTATORS)  # every mutator is exercised
    started = time.monotonic()
    outcomes = fuzz_runner.run_cases(cases, workers=2)
    elapsed = time.monotonic() - started
    counts = fuzz_runner.counts(outcomes)
    assert not _failures(outcomes), f"{dict(counts)}\n{_failures(outcomes)}"
    assert counts["ok"] + counts["problem"] == SAMPLE_SIZE
    assert counts["problem"] > 0 and counts["ok"] > 0  # the harness sees both (it is not all-broken or all-fine)
    assert elapsed < 180, f"{SAMPLE_SIZE} cases took {elapsed:.0f} s"


def test_every_case_that_ever_failed_now_passes(seeds: fuzz_cases.Seeds) -> None:
    kept = regressions.load(seeds)
    assert len(kept) >= 167
    outcomes = fuzz_runner.run_cases([case for case, _ in kept], workers=2)
    assert not _failures(outcomes), _failures(outcomes)

