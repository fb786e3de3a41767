"""Every waktu form the seeds use parses to the standard DESIGN section 3 gives it; garbage is refused."""

from __future__ import annotations

import pytest

from pipeline.sop import TimeParseError, parse_time

DAY = 1440.0

# (raw text as printed in a seed, measure, minimum, maximum, unit)
FORMS = [
    ("30 Menit", "working_minutes", None, 30.0, "minute"),         # seed 000
    ("15 Menit", "working_minutes", None, 15.0, "minute"),         # seed 004
    ("1 hr", "working_days", None, 1.0, "day"),                    # seed 003: hr = hari
    ("2hr", "working_days", None, 2.0, "day"),                     # seed 003, no space
    ("1 hari", "working_days", None, 1.0, "day"),
    ("1 Hari", "working_days", None, 1.0, "day"),                  # seed 004, capitalised
    ("4 jam", "working_minutes", None, 240.0, "hour"),
    ("3 s/d 6bulan", "elapsed_minutes", 3 * 30 * DAY, 6 * 30 * DAY, "month"),  # a stay in the care home
    ("30 - 45 menit", "working_minutes", 30.0, 45.0, "minute"),    # seed 001 session length
    ("30-45 menit", "working_minutes", 30.0, 45.0, "minute"),
    ("1 x 24 jam", "elapsed_minutes", None, DAY, "hour"),          # seed 001 scheduling
    ("3 x 24 jam", "elapsed_minutes", None, 3 * DAY, "hour"),      # seed 001 complaints
    ("1×24 jam", "elapsed_minutes", None, DAY, "hour"),            # multiplication sign
    ("bulan", "elapsed_minutes", None, 30 * DAY, "month"),         # the unit alone: one month
]


@pytest.mark.parametrize(("raw", "measure", "minimum", "maximum", "unit"), FORMS)
def test_seed_time_forms(raw: str, measure: str, minimum: float | None, maximum: float, unit: str) -> None:
    standard = parse_time(raw)
    assert standard is not None
    assert (standard.measure, standard.minimum, standard.maximum, standard.unit) == (measure, minimum, maximum, unit)
    assert standard.raw == raw  # the original text is kept for display


@pytest.mark.parametrize("raw", ["0", "", "  ", "-", None, 0])
def test_no_standard(raw: str | int | None) -> None:
    """Start/end rows print '0' or leave the cell blank: no time standard."""
    assert parse_time(raw) is None


def test_clock_override() -> None:
    """A model's clock: overrides how hours and N x 24 jam are counted."""
    working = parse_time("1 x 24 jam", "working")
    elapsed = parse_time("4 jam", "elapsed")
    assert working is not None and working.measure == "working_minutes" and working.maximum == DAY
    assert elapsed is not None and elapsed.measure == "elapsed_minutes" and elapsed.maximum == 240.0


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("segera", "is not a time standard"),
        ("tiga hari", "is not a time standard"),
        ("abc menit", "is not a time standard"),
        ("menit 30", "is not a time standard"),
        ("2 x 12 jam", "is not a time standard"),
        ("30 detik", "is not a time standard"),
        ("45 - 30 menit", "write the smaller number first"),
    ],
)
def test_garbage_raises(raw: str, fragment: str) -> None:
    with pytest.raises(TimeParseError, match=fragment) as info:
        parse_time(raw)
    assert raw in str(info.value)  # the message quotes what the user wrote
