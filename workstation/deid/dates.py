"""The keyed per-patient date shift (Retain Longitudinal Temporal Information with Modified Dates).

One shift of whole days plus seconds per patient, the same in every export: intervals between a patient's
dates and times are kept (date and time attributes of one moment are shifted together), the dates are not.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

_TM = re.compile(r"^(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?$")
_DT = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?([+-]\d{4})?$")


class DateShift:
    def __init__(self, seconds: int) -> None:
        self.delta = timedelta(seconds=seconds)

    def date(self, value: str) -> str | None:
        """A DA shifted (at midnight); None when it is not a date."""
        moment = _parse_date(value)
        return None if moment is None else (moment + self.delta).strftime("%Y%m%d")

    def time(self, value: str) -> str | None:
        """A TM on its own: the time of day shifted, wrapping at midnight."""
        parsed = _parse_time(value)
        if parsed is None:
            return None
        seconds, fraction = parsed
        shifted = (seconds + int(self.delta.total_seconds())) % 86_400
        return _format_time(shifted, fraction)

    def pair(self, da: str, tm: str) -> tuple[str, str] | None:
        """A date and time of one moment, shifted together."""
        day, parsed = _parse_date(da), _parse_time(tm)
        if day is None or parsed is None:
            return None
        moment = day + timedelta(seconds=parsed[0]) + self.delta
        return moment.strftime("%Y%m%d"), _format_time(moment.hour * 3600 + moment.minute * 60 + moment.second, parsed[1])

    def datetime(self, value: str) -> str | None:
        match = _DT.match(value.strip())
        if match is None:
            return None
        year, month, day, hour, minute, second, fraction, offset = match.groups()
        try:
            moment = datetime(int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0),
                              int(second or 0))
        except ValueError:
            return None
        moment += self.delta
        text = moment.strftime("%Y%m%d%H%M%S") + (f".{fraction}" if fraction else "")
        return text + (offset or "")


def _parse_date(value: str) -> datetime | None:
    value = value.strip()
    if not re.fullmatch(r"\d{8}", value):
        return None
    try:
        return datetime.combine(date(int(value[:4]), int(value[4:6]), int(value[6:])), datetime.min.time())
    except ValueError:
        return None


def _parse_time(value: str) -> tuple[int, str] | None:
    match = _TM.match(value.strip().replace(":", ""))
    if match is None:
        return None
    hour, minute, second, fraction = match.groups()
    h, m, s = int(hour), int(minute or 0), int(second or 0)
    if h > 23 or m > 59 or s > 60:
        return None
    return h * 3600 + m * 60 + min(s, 59), fraction or ""


def _format_time(seconds: int, fraction: str) -> str:
    text = f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}"
    return text + (f".{fraction}" if fraction else "")
