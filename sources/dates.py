"""Date estimation for ingest: turn a year field, an ISO date or a phrase into a year, a range and a method.

Accepted forms (anything else is rejected, never guessed):
    1650, "1650"                  -> 1650            method "field:year"
    "1650-03-01", "1650-03"       -> 1650            method "field:date"
    "c. 1650", "circa 1650", "ca. 1650"  -> 1650     method "circa"
    "1650s"                       -> 1650..1659, 1654 method "decade_midpoint"
    "1650-1680", year_min+year_max -> midpoint        method "range_midpoint" (span < 50 years, as ProgressGym)
    "17th century"                -> 1600..1699, 1650 method "century_midpoint"
Years must lie in 1200..2099 (the partitions C013..C021) and not in the future.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

MIN_YEAR = 1200
MAX_YEAR = 2099
MAX_RANGE_SPAN = 50  # ProgressGym keeps a range's midpoint only when it spans fewer than 50 years

_YEAR = r"(-?\d{1,4})"
_PLAIN_YEAR = re.compile(rf"^{_YEAR}$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})(?:-(\d{2}))?(?:[T ].*)?$")
_CIRCA = re.compile(rf"^(?:c\.?|ca\.?|circa)\s*{_YEAR}$", re.IGNORECASE)
_DECADE = re.compile(r"^(\d{3})0'?s$", re.IGNORECASE)
_RANGE = re.compile(rf"^{_YEAR}\s*(?:-|–|—|to)\s*{_YEAR}$", re.IGNORECASE)
_CENTURY = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)\s+c(?:entury|\.)?$", re.IGNORECASE)


class DateError(ValueError):
    """A date that cannot be used; `reason` is the rejects reason code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class DateEstimate:
    year: int
    year_min: int
    year_max: int
    method: str
    confidence: float | None = None


def current_year() -> int:
    return dt.date.today().year


def check_year(year: int, what: str = "year") -> int:
    """Raise DateError unless `year` can be bucketed into C013..C021 and is not in the future."""
    if year > current_year():
        raise DateError("future_year", f"{what} {year} is after {current_year()}")
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise DateError("year_out_of_range", f"{what} {year} outside {MIN_YEAR}..{MAX_YEAR}")
    return year


def exact(year: int, method: str) -> DateEstimate:
    check_year(year)
    return DateEstimate(year, year, year, method)


def from_range(year_min: int, year_max: int, method: str = "range_midpoint") -> DateEstimate:
    """Midpoint of a range spanning fewer than MAX_RANGE_SPAN years (inclusive bounds)."""
    if year_max < year_min:
        raise DateError("unparseable_date", f"range {year_min}..{year_max} is reversed")
    if year_max - year_min >= MAX_RANGE_SPAN and method == "range_midpoint":
        raise DateError("date_range_too_wide", f"range {year_min}..{year_max} spans >= {MAX_RANGE_SPAN} years")
    check_year(year_min, "year_min")
    check_year(year_max, "year_max")
    return DateEstimate((year_min + year_max) // 2, year_min, year_max, method)


def parse_date(value: object) -> DateEstimate:
    """Parse one date value (int, float with no fraction, or one of the string forms above)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DateError("missing_date", "no year or date given")
    if isinstance(value, bool):
        raise DateError("unparseable_date", f"{value!r} is not a date")
    if isinstance(value, int):
        return exact(value, "field:year")
    if isinstance(value, float):
        if value != value or not value.is_integer():  # NaN or a fractional year
            raise DateError("unparseable_date", f"{value!r} is not a whole year")
        return exact(int(value), "field:year")
    if isinstance(value, (dt.date, dt.datetime)):
        return exact(value.year, "field:date")
    if not isinstance(value, str):
        raise DateError("unparseable_date", f"{type(value).__name__} {value!r} is not a date")
    text = " ".join(value.strip().split())
    if m := _PLAIN_YEAR.match(text):
        return exact(int(m.group(1)), "field:year")
    if m := _ISO_DATE.match(text):
        year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3) or 1)
        try:
            dt.date(max(year, 1), month, day)
        except ValueError as error:
            raise DateError("unparseable_date", f"{text!r}: {error}") from None
        return exact(year, "field:date")
    if m := _CIRCA.match(text):
        return exact(int(m.group(1)), "circa")
    if m := _DECADE.match(text):
        start = int(m.group(1)) * 10
        return from_range(start, start + 9, "decade_midpoint")
    if m := _RANGE.match(text):
        return from_range(int(m.group(1)), int(m.group(2)))
    if m := _CENTURY.match(text):
        century = int(m.group(1))
        return from_range((century - 1) * 100, (century - 1) * 100 + 99, "century_midpoint")
    raise DateError("unparseable_date", f"{text[:80]!r} is not a recognised date form")


def parse_row_date(row: dict) -> DateEstimate:
    """A user-corpus row's date from `year`, `date`, or `year_min` + `year_max` (first present wins)."""
    if row.get("year") is not None:
        return parse_date(row["year"])
    if row.get("date") is not None:
        return parse_date(row["date"])
    low, high = row.get("year_min"), row.get("year_max")
    if low is not None and high is not None:
        try:
            return from_range(int(low), int(high))
        except (TypeError, ValueError) as error:
            if isinstance(error, DateError):
                raise
            raise DateError("unparseable_date", f"year_min/year_max {low!r}/{high!r}") from None
    if low is not None or high is not None:
        raise DateError("missing_date", "only one of year_min / year_max given")
    raise DateError("missing_date", "no year, date, or year_min + year_max")
