"""Working-time calendars (pipeline/calendars.py): properties, hand-computed cases and a vectorised run.

Hand-computed cases use the real ``sop_models/institutions.yaml``; an independent slow reference (a loop over
days and working intervals, for a handful of pairs only) checks the vectorised clock on random samples.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import holidays
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.calendars import (
    Institution,
    WorkingCalendar,
    build_calendar,
    load_calendars,
    load_institutions,
    non_working_dates,
)

INSTITUTIONS = Path(__file__).resolve().parents[1] / "sop_models" / "institutions.yaml"
WIB = "Asia/Jakarta"
WITA = "Asia/Makassar"
FAST = settings(max_examples=200, deadline=None)

INST = load_institutions(INSTITUTIONS)
CAL = load_calendars(INSTITUTIONS)
NGAWI = CAL["smpn2-ngawi"]  # WIB, Mon-Fri 07:00-14:30, Fri 07:00-11:00, school holidays
PETASIA = CAL["smkn1-petasia"]  # WITA, Mon-Sat 07:15-13:45, Fri 07:15-11:00, Sat 07:15-12:00
IPDN = CAL["ipdn-jatinangor"]  # WIB, Mon-Fri 07:30-12:00 + 13:00-16:00, Fri 07:30-11:30 + 13:30-16:30


def at(text: str, tz: str = WIB) -> pd.DatetimeIndex:
    return pd.DatetimeIndex([pd.Timestamp(text, tz=tz)])


def wt(cal: WorkingCalendar, a: str, b: str, tz: str = WIB) -> float:
    return float(cal.working_minutes(at(a, tz), at(b, tz))[0])


def wd(cal: WorkingCalendar, a: str, b: str, tz: str = WIB) -> float:
    return float(cal.working_days(at(a, tz), at(b, tz))[0])


def reference_minutes(inst: Institution, a: pd.Timestamp, b: pd.Timestamp) -> float:
    """Slow, independent working minutes between a <= b: walk the local days and their intervals."""
    off = _OFF[inst.id]
    la = a.tz_convert(inst.timezone).tz_localize(None)
    lb = b.tz_convert(inst.timezone).tz_localize(None)
    total = 0.0
    day = la.normalize()
    while day <= lb:
        name = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[day.weekday()]
        if name in inst.working_days and day.date() not in off:
            for interval in inst.hours.get(name, inst.hours["default"]):
                start, end = (day + pd.Timedelta(hours=int(x[:2]), minutes=int(x[3:]))
                              for x in interval.split("-"))
                overlap = (min(end, lb) - max(start, la)).total_seconds() / 60
                total += max(overlap, 0.0)
        day += pd.Timedelta(days=1)
    return total


_OFF = {iid: non_working_dates(inst) for iid, inst in INST.items()}

# instants between 2025 and 2027 (UTC), to the second
instants = st.datetimes(min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2027, 12, 31)).map(
    lambda d: pd.Timestamp(d.replace(microsecond=0), tz="UTC")
)
calendars = st.sampled_from(sorted(CAL))


# ---------------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------------


@FAST
@given(calendars, instants, instants, instants)
def test_additive_and_never_negative(iid: str, x: pd.Timestamp, y: pd.Timestamp, z: pd.Timestamp) -> None:
    a, b, c = sorted([x, y, z])
    cal = CAL[iid]
    ab, bc, ac = (float(cal.working_minutes(pd.DatetimeIndex([s]), pd.DatetimeIndex([e]))[0])
                  for s, e in [(a, b), (b, c), (a, c)])
    assert ac == pytest.approx(ab + bc, abs=1e-6)
    assert min(ab, bc, ac) >= 0
    dab, dbc, dac = (float(cal.working_days(pd.DatetimeIndex([s]), pd.DatetimeIndex([e]))[0])
                     for s, e in [(a, b), (b, c), (a, c)])
    assert dac == pytest.approx(dab + dbc, abs=1e-9)
    assert min(dab, dbc, dac) >= 0


@FAST
@given(calendars, instants, st.integers(min_value=0, max_value=20 * 24 * 60))
def test_matches_the_slow_reference(iid: str, a: pd.Timestamp, minutes: int) -> None:
    b = a + pd.Timedelta(minutes=minutes)
    got = float(CAL[iid].working_minutes(pd.DatetimeIndex([a]), pd.DatetimeIndex([b]))[0])
    assert got == pytest.approx(reference_minutes(INST[iid], a, b), abs=1e-6)


@FAST
@given(calendars, st.sampled_from(["2026-08-17", "2026-03-18", "2025-08-18", "2026-12-24"]),
       st.integers(0, 24 * 60 - 1), st.integers(0, 24 * 60 - 1))
def test_zero_within_a_holiday(iid: str, day: str, m1: int, m2: int) -> None:
    """Any two instants on a national holiday or a cuti bersama day are 0 working minutes and days apart."""
    tz = INST[iid].timezone
    base = pd.Timestamp(day, tz=tz)
    a, b = sorted([base + pd.Timedelta(minutes=m1), base + pd.Timedelta(minutes=m2)])
    cal = CAL[iid]
    assert cal.working_minutes(pd.DatetimeIndex([a]), pd.DatetimeIndex([b]))[0] == 0
    assert cal.working_days(pd.DatetimeIndex([a]), pd.DatetimeIndex([b]))[0] == 0


@FAST
@given(calendars, instants, st.floats(min_value=0, max_value=30_000, allow_nan=False))
def test_add_working_minutes_inverts_the_clock(iid: str, start: pd.Timestamp, minutes: float) -> None:
    """Adding m working minutes lands where the clock reads m more; the landing point is a fixed point."""
    cal = CAL[iid]
    s = pd.DatetimeIndex([start])
    end = cal.add_working_minutes(s, np.array([minutes]))
    assert end[0] >= start
    assert cal.working_minutes(s, end)[0] == pytest.approx(minutes, abs=1e-6)
    assert abs((cal.from_clock(cal.clock(end)) - end).total_seconds()[0]) < 1e-3  # round trip
    snapped = cal.add_working_minutes(s, np.array([0.0]))
    assert snapped[0] >= start and cal.working_minutes(s, snapped)[0] == pytest.approx(0, abs=1e-6)


# ---------------------------------------------------------------------------------------------------
# Hand-computed cases
# ---------------------------------------------------------------------------------------------------


def test_national_holiday_17_august_2026() -> None:
    assert dt.date(2026, 8, 17) in holidays.country_holidays("ID", years=2026)
    assert wt(NGAWI, "2026-08-17 07:00", "2026-08-17 14:30") == 0
    # Fri 14 Aug 10:00-11:00 (short Friday) + Mon 17 Aug holiday + Tue 18 Aug 07:00-10:00
    assert wt(NGAWI, "2026-08-14 10:00", "2026-08-18 10:00") == 60 + 0 + 180
    assert wd(NGAWI, "2026-08-14 00:00", "2026-08-19 00:00") == 2  # Fri and Tue
    assert not NGAWI.is_working_day(pd.DatetimeIndex(["2026-08-17"]))[0]


def test_cuti_bersama_from_the_government_category() -> None:
    government = holidays.country_holidays("ID", years=2026, categories=("government",))
    public = holidays.country_holidays("ID", years=2026)
    day = dt.date(2026, 3, 18)  # Wednesday, cuti bersama Hari Suci Nyepi
    assert day in government and day not in public
    for cal, tz in [(NGAWI, WIB), (PETASIA, WITA), (IPDN, WIB)]:
        assert wt(cal, "2026-03-18 00:00", "2026-03-19 00:00", tz) == 0
        assert not cal.is_working_day(pd.DatetimeIndex(["2026-03-18"]))[0]
        assert cal.is_working_day(pd.DatetimeIndex(["2026-03-17"]))[0]
    # IPDN: Tue 17 Mar 15:00-16:00, Wed cuti bersama, Thu Nyepi, Fri cuti bersama, weekend, Mon cuti: 60
    assert wt(IPDN, "2026-03-17 15:00", "2026-03-23 23:59") == 60


def test_five_day_week_against_six_day_week() -> None:
    """A week with no holiday (2-8 Feb 2026): Saturday counts only at SMK N 1 Petasia."""
    assert wt(NGAWI, "2026-02-02 00:00", "2026-02-09 00:00") == 4 * 450 + 240
    assert wt(PETASIA, "2026-02-02 00:00", "2026-02-09 00:00", WITA) == 4 * 390 + 225 + 285
    assert wd(NGAWI, "2026-02-02 00:00", "2026-02-09 00:00") == 5
    assert wd(PETASIA, "2026-02-02 00:00", "2026-02-09 00:00", WITA) == 6
    assert wt(NGAWI, "2026-02-07 00:00", "2026-02-08 00:00") == 0  # Saturday
    assert wt(PETASIA, "2026-02-07 00:00", "2026-02-08 00:00", WITA) == 285  # Sat 07:15-12:00
    assert wt(PETASIA, "2026-02-08 00:00", "2026-02-09 00:00", WITA) == 0  # Sunday


def test_friday_short_hours() -> None:
    assert wt(NGAWI, "2026-02-05 07:00", "2026-02-05 23:00") == 450  # Thursday 07:00-14:30
    assert wt(NGAWI, "2026-02-06 07:00", "2026-02-06 23:00") == 240  # Friday 07:00-11:00
    assert wt(NGAWI, "2026-02-06 11:00", "2026-02-06 14:30") == 0  # Friday afternoon is not working time
    assert wd(NGAWI, "2026-02-06 07:00", "2026-02-06 09:00") == pytest.approx(0.5)  # half of Friday


def test_lunch_break() -> None:
    assert wt(IPDN, "2026-02-02 11:30", "2026-02-02 13:30") == 60  # Monday: break 12:00-13:00
    assert wt(IPDN, "2026-02-02 12:10", "2026-02-02 12:50") == 0
    assert wt(IPDN, "2026-02-06 11:00", "2026-02-06 14:00") == 60  # Friday: break 11:30-13:30
    assert wt(IPDN, "2026-02-02 00:00", "2026-02-03 00:00") == 270 + 180


def test_time_zones() -> None:
    """The same UTC instant is working time in WIB but not in WITA for the same hours."""
    inst = INST["smpn2-ngawi"]
    wib = build_calendar(inst.model_copy(update={"non_working": []}))
    wita = build_calendar(inst.model_copy(update={"timezone": WITA, "non_working": []}))
    a = at("2026-02-02 07:05", "UTC")  # 14:05 WIB (open until 14:30), 15:05 WITA (closed)
    b = at("2026-02-02 07:15", "UTC")
    assert wib.working_minutes(a, b)[0] == 10
    assert wita.working_minutes(a, b)[0] == 0
    # and the real calendars: Ngawi (WIB) is at work, Bontang (WITA, until 15:00) has closed
    assert NGAWI.working_minutes(a, b)[0] == 10
    assert CAL["bontang-bk"].working_minutes(a, b)[0] == 0
    # one instant, two spellings: the clock depends on the instant, not on how it is written
    assert NGAWI.clock(at("2026-02-02 09:00", WIB))[0] == NGAWI.clock(at("2026-02-02 10:00", WITA))[0]
    assert NGAWI.clock(at("2026-02-02 02:00", "UTC"))[0] == NGAWI.clock(at("2026-02-02 09:00", WIB))[0]


def test_school_holiday_range_from_non_working() -> None:
    assert "2026-06-22..2026-07-11" in INST["smpn2-ngawi"].non_working
    # from the end of Friday 19 June to the opening on Monday 13 July: the whole break is not working time
    assert wt(NGAWI, "2026-06-19 11:00", "2026-07-13 07:00") == 0
    days = pd.date_range("2026-06-22", "2026-07-11", freq="D")
    assert not NGAWI.is_working_day(days).any()
    assert NGAWI.is_working_day(pd.DatetimeIndex(["2026-07-13"]))[0]
    assert wd(NGAWI, "2026-06-19 00:00", "2026-07-14 00:00") == 2  # Fri 19 June and Mon 13 July
    # IPDN is an office: no school holidays
    assert wt(IPDN, "2026-06-22 00:00", "2026-06-23 00:00") == 450


def test_sunday_start_snaps_to_monday_opening() -> None:
    sunday = at("2026-02-08 10:00")
    assert NGAWI.add_working_minutes(sunday, np.array([0.0]))[0] == pd.Timestamp("2026-02-09 07:00", tz=WIB)
    assert NGAWI.add_working_minutes(sunday, np.array([30.0]))[0] == pd.Timestamp("2026-02-09 07:30", tz=WIB)
    # a start in the lunch break snaps to 13:00; 30 minutes from 11:45 run on after the break
    assert IPDN.add_working_minutes(at("2026-02-02 12:20"), np.array([0.0]))[0] == pd.Timestamp(
        "2026-02-02 13:00", tz=WIB)
    assert IPDN.add_working_minutes(at("2026-02-02 11:45"), np.array([30.0]))[0] == pd.Timestamp(
        "2026-02-02 13:15", tz=WIB)
    # 60 minutes from Friday 10:30 at Ngawi: 30 on Friday, 30 on Monday
    assert NGAWI.add_working_minutes(at("2026-02-06 10:30"), np.array([60.0]))[0] == pd.Timestamp(
        "2026-02-09 07:30", tz=WIB)


def test_round_trip_on_working_instants() -> None:
    """from_clock(clock(t)) == t for instants inside working hours."""
    ts = pd.DatetimeIndex(pd.to_datetime(["2026-02-02 07:01:00", "2026-02-03 10:17:30", "2026-02-06 10:59:00",
                                          "2026-02-09 14:29:59"]).tz_localize(WIB))
    back = NGAWI.from_clock(NGAWI.clock(ts))
    assert np.abs(np.asarray((back - ts).total_seconds())).max() < 1e-3


def test_missing_timestamps_give_nan() -> None:
    ts = pd.DatetimeIndex([pd.Timestamp("2026-02-02 08:00", tz=WIB), pd.NaT])
    out = NGAWI.working_minutes(ts, ts + pd.Timedelta(hours=1))
    assert out[0] == 60 and np.isnan(out[1])


def test_vectorised_million_timestamps() -> None:
    """One call over 1M pairs; a random sample agrees with the slow reference."""
    rng = np.random.default_rng(7)
    n = 1_000_000
    lo = pd.Timestamp("2025-01-01", tz="UTC").value
    span = pd.Timestamp("2027-01-01", tz="UTC").value - lo
    start_ns = lo + rng.integers(0, span, n)
    end_ns = start_ns + rng.integers(0, 21 * 86_400 * 10**9, n)
    start = pd.DatetimeIndex(pd.to_datetime(start_ns, utc=True))
    end = pd.DatetimeIndex(pd.to_datetime(end_ns, utc=True))
    minutes = PETASIA.working_minutes(start, end)
    days = PETASIA.working_days(start, end)
    assert minutes.shape == (n,) and not np.isnan(minutes).any()
    assert (minutes >= 0).all() and (days >= 0).all()
    assert minutes.max() <= 21 * 390 + 1e-6  # at most three weeks of full days
    for i in rng.choice(n, 60, replace=False):
        expected = reference_minutes(INST["smkn1-petasia"], start[i], end[i])
        assert minutes[i] == pytest.approx(expected, abs=1e-6)
