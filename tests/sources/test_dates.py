import datetime as dt

import pytest

from sources.dates import DateError, parse_date, parse_row_date
from sources.schema import century_of


@pytest.mark.parametrize(
    ("value", "year", "year_min", "year_max", "method"),
    [
        (1650, 1650, 1650, 1650, "field:year"),
        ("1650", 1650, 1650, 1650, "field:year"),
        (1650.0, 1650, 1650, 1650, "field:year"),
        ("1650-03-01", 1650, 1650, 1650, "field:date"),
        ("1650-03", 1650, 1650, 1650, "field:date"),
        (dt.date(1650, 3, 1), 1650, 1650, 1650, "field:date"),
        ("c. 1650", 1650, 1650, 1650, "circa"),
        ("circa 1650", 1650, 1650, 1650, "circa"),
        ("ca. 1650", 1650, 1650, 1650, "circa"),
        ("1650s", 1654, 1650, 1659, "decade_midpoint"),
        ("1650-1680", 1665, 1650, 1680, "range_midpoint"),
        ("1650 to 1680", 1665, 1650, 1680, "range_midpoint"),
        ("17th century", 1649, 1600, 1699, "century_midpoint"),
        ("13th c.", 1249, 1200, 1299, "century_midpoint"),
    ],
)
def test_accepted_date_forms(value, year, year_min, year_max, method):
    estimate = parse_date(value)
    assert (estimate.year, estimate.year_min, estimate.year_max, estimate.method) == (year, year_min, year_max, method)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "missing_date"),
        ("", "missing_date"),
        ("sometime long ago", "unparseable_date"),
        ("1650-13-01", "unparseable_date"),
        (1650.5, "unparseable_date"),
        (True, "unparseable_date"),
        (3000, "future_year"),
        ("2999", "future_year"),
        (-44, "year_out_of_range"),
        (1100, "year_out_of_range"),
        ("1600-1700", "date_range_too_wide"),
        ("1700-1650", "unparseable_date"),
        ([1650], "unparseable_date"),
    ],
)
def test_rejected_date_forms(value, reason):
    with pytest.raises(DateError) as error:
        parse_date(value)
    assert error.value.reason == reason


def test_row_date_prefers_year_then_date_then_range():
    assert parse_row_date({"year": 1700, "date": "1800"}).year == 1700
    assert parse_row_date({"date": "1800-01-01"}).year == 1800
    assert parse_row_date({"year_min": 1800, "year_max": 1820}).year == 1810
    with pytest.raises(DateError, match="missing_date"):
        parse_row_date({"year_min": 1800})
    with pytest.raises(DateError, match="date_range_too_wide"):
        parse_row_date({"year_min": 1800, "year_max": 1900})


@pytest.mark.parametrize(
    ("year", "century"),
    [(1221, "C013"), (1299, "C013"), (1300, "C014"), (1999, "C020"), (2000, "C021"), (2026, "C021")],
)
def test_century_bucketing_boundaries(year, century):
    assert century_of(year) == century
