"""db.normalise_time takes a workstation's own time form (milliseconds, +00:00) without a datetime round trip:
the same text as the round trip, and the same refusal for what is not a time."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest

from workstation.server.db import normalise_time


def _round_trip(value: str) -> str:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def test_the_workstations_form_gives_the_round_trips_text():
    rng = random.Random(5)
    for _ in range(20_000):
        moment = datetime(rng.randint(1, 9999), rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23),
                          rng.randint(0, 59), rng.randint(0, 59), rng.randint(0, 999) * 1000, tzinfo=timezone.utc)
        value = moment.isoformat(timespec="milliseconds")
        assert normalise_time(value) == _round_trip(value) == value[:23] + "000+00:00"


@pytest.mark.parametrize("value", ["2026-12-05 11:00:00.123+00:00", "2026-12-05T11:00:00.123+01:00",
                                   "2026-12-05T11:00:00+00:00", "2026-12-05T11:00:00.123456+00:00",
                                   "2026-12-05T11:00:00.123", "2026-12-05T11:00:00,123+00:00"])
def test_other_forms_take_the_round_trip(value):
    assert normalise_time(value) == _round_trip(value)


@pytest.mark.parametrize("value", ["2026-02-30T11:00:00.123+00:00", "2026-12-05T25:00:00.123+00:00",
                                   "2026-12-05T11:00:00.12x+00:00", "not a time at all, 29 chars.."])
def test_what_is_not_a_time_is_refused_either_way(value):
    with pytest.raises(ValueError):
        _round_trip(value)
    with pytest.raises(ValueError):
        normalise_time(value)
