"""Institutions and working-time calendars.

Working time is measured on a monotone clock ``W(t)``: the working minutes from a fixed origin to the
instant ``t`` in the institution's local time. ``wt(a, b) = W(b) - W(a)`` is then additive, never
negative for ``a <= b`` and zero across a holiday, and a whole array of events costs a few numpy
operations (a per-day cumulative table plus a per-weekday minute profile), never a Python loop per event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.errors import UserError, read_text_file, validation_errors, yaml_error
from pipeline.sop import Problem, read_yaml

if TYPE_CHECKING:
    from pipeline.sop import Catalogue, TimeStandard

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_INTERVAL = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
ORIGIN = dt.date(1999, 12, 1)
HORIZON = dt.date(2041, 1, 1)
FloatArray = npt.NDArray[np.float64]


class Institution(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9-]+$")
    name: str
    kind: Literal["school", "office", "care_home"]
    region: str | None = None
    timezone: Literal["Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura"]
    working_days: list[Weekday]
    hours: dict[str, list[str]]
    non_working: list[str] = Field(default_factory=list)
    national_holidays: bool = True

    @field_validator("hours")
    @classmethod
    def _check_hours(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        if "default" not in value:
            raise ValueError("hours needs a 'default' entry, e.g. default: ['07:00-14:00']")
        for key, intervals in value.items():
            if key != "default" and key not in WEEKDAYS:
                raise ValueError(f"hours key '{key}' is not 'default' or a weekday (mon..sun)")
            for interval in intervals:
                m = _INTERVAL.match(interval)
                if not m or (int(m[1]), int(m[2])) >= (int(m[3]), int(m[4])) or int(m[3]) > 24:
                    raise ValueError(f"working hours '{interval}' must look like '07:30-15:00'")
        return value

    @field_validator("non_working")
    @classmethod
    def _check_dates(cls, value: list[str]) -> list[str]:
        for item in value:
            for part in item.split(".."):
                try:
                    dt.date.fromisoformat(part.strip())
                except ValueError:
                    raise ValueError(
                        f"non_working entry '{item}' must be YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD"
                    ) from None
        return value


class InstitutionsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    institutions: list[Institution]


def load_institutions(path: Path) -> dict[str, Institution]:
    """Read ``institutions.yaml``; a bad file is a :class:`UserError` naming the problem."""
    try:
        data = read_yaml(read_text_file(path, "institutions file", "berkas lembaga"))
        parsed = InstitutionsFile.model_validate(data)
    except yaml.YAMLError as exc:
        raise yaml_error(path, exc) from None
    except ValidationError as exc:
        raise validation_errors(path, exc.errors()) from None
    return {inst.id: inst for inst in parsed.institutions}


def load_institutions_problems(path: Path, catalogue: Catalogue) -> list[Problem]:
    """Institution-file problems for ``patuh sop validate``, including models of unknown institutions."""
    try:
        institutions = load_institutions(path)
    except UserError as exc:
        return [Problem(path.name, str(exc), "fix institutions.yaml")]
    problems = []
    for sop_id, model in catalogue.models.items():
        if model.institution not in institutions:
            problems.append(Problem(str(catalogue.files[sop_id].name),
                                    f"institution '{model.institution}' is not in institutions.yaml",
                                    "add it to institutions.yaml or correct the model's institution"))
    return problems


# ---------------------------------------------------------------------------------------------------
# Calendars
# ---------------------------------------------------------------------------------------------------


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


@dataclass(frozen=True)
class WorkingCalendar:
    """A vectorised working-time clock for one institution."""

    institution_id: str
    timezone: str
    profile: npt.NDArray[np.float64]  # [7, 1441]: working minutes since local midnight, per weekday
    day_is_working: npt.NDArray[np.bool_]  # per day since ORIGIN
    day_cum: npt.NDArray[np.float64]  # working minutes before each day since ORIGIN
    day_count_cum: npt.NDArray[np.float64]  # working days before each day since ORIGIN

    def content_hash(self) -> str:
        """Hash of what working time means here (zone, hours, every working day and holiday)."""
        digest = hashlib.sha256(f"{self.institution_id}:{self.timezone};".encode())
        for array in (self.profile, self.day_is_working, self.day_cum):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()[:16]

    @property
    def day_minutes(self) -> npt.NDArray[np.float64]:
        """Working minutes of a full working day, per weekday."""
        return self.profile[:, 1440]

    # -- the clock ----------------------------------------------------------------------------------

    def _local_parts(self, ts: pd.Series | pd.DatetimeIndex) -> tuple[npt.NDArray[np.int64], FloatArray]:
        index = pd.DatetimeIndex(ts)
        if index.tz is None:
            index = index.tz_localize("UTC")
        local = index.tz_convert(self.timezone).tz_localize(None)
        values = local.values.astype("datetime64[ns]").astype(np.int64)
        day_ns = 86_400 * 10**9
        origin_ns = np.datetime64(ORIGIN, "ns").astype(np.int64)
        rel = values - origin_ns
        day = np.floor_divide(rel, day_ns)
        minute = (rel - day * day_ns) / 6e10
        if len(day) and (day.min() < 0 or day.max() >= len(self.day_cum) - 1):
            raise UserError(f"a timestamp lies outside the calendar range {ORIGIN} .. {HORIZON}",
                            pesan=f"ada cap waktu (timestamp) di luar rentang kalender {ORIGIN} .. {HORIZON}")
        return day, minute

    def _within_day(self, ts: pd.Series | pd.DatetimeIndex, as_share: bool) -> tuple[
            npt.NDArray[np.bool_], npt.NDArray[np.int64], FloatArray]:
        """(NaT mask, day index, working minutes into that day, or the share of the day's working time)."""
        index = pd.DatetimeIndex(ts)
        mask = np.asarray(index.isna())
        if mask.all():
            return mask, np.zeros(0, dtype=np.int64), np.zeros(0)
        day, minute = self._local_parts(index[~mask])
        weekday = (day + ORIGIN.weekday()) % 7
        m0 = np.minimum(minute.astype(np.int64), 1439)
        prof = self.profile[weekday, m0] + (minute - m0) * (self.profile[weekday, m0 + 1] - self.profile[weekday, m0])
        if as_share:
            full = self.profile[weekday, 1440]
            prof = np.divide(prof, full, out=np.zeros_like(prof), where=full > 0)
        return mask, day, np.where(self.day_is_working[day], prof, 0.0)

    def clock(self, ts: pd.Series | pd.DatetimeIndex) -> FloatArray:
        """``W(t)``: working minutes since the calendar origin, for each timestamp (NaT gives NaN)."""
        mask, day, within = self._within_day(ts, as_share=False)
        out = np.full(len(mask), np.nan)
        out[~mask] = self.day_cum[day] + within
        return out

    def day_clock(self, ts: pd.Series | pd.DatetimeIndex) -> FloatArray:
        """Working days since the origin: whole working days plus the share of today's working time."""
        mask, day, within = self._within_day(ts, as_share=True)
        out = np.full(len(mask), np.nan)
        out[~mask] = self.day_count_cum[day] + within
        return out

    def working_minutes(self, start: pd.Series | pd.DatetimeIndex, end: pd.Series | pd.DatetimeIndex) -> FloatArray:
        """Working minutes between paired timestamps (negative when end is before start)."""
        return self.clock(end) - self.clock(start)

    def working_days(self, start: pd.Series | pd.DatetimeIndex, end: pd.Series | pd.DatetimeIndex) -> FloatArray:
        return self.day_clock(end) - self.day_clock(start)

    def measure(self, measure: str, start: pd.Series | pd.DatetimeIndex,
                end: pd.Series | pd.DatetimeIndex) -> FloatArray:
        """Duration in the unit a :class:`~pipeline.sop.TimeStandard` is stated in."""
        if measure == "working_minutes":
            return self.working_minutes(start, end)
        if measure == "working_days":
            return self.working_days(start, end)
        delta = pd.DatetimeIndex(end) - pd.DatetimeIndex(start)
        return np.asarray(delta.total_seconds(), dtype=np.float64) / 60.0

    def exceeds(self, standard: TimeStandard, start: pd.Series | pd.DatetimeIndex,
                end: pd.Series | pd.DatetimeIndex) -> npt.NDArray[np.bool_]:
        """Whether each duration is over the standard's maximum (NaN durations are not over)."""
        values = self.measure(standard.measure, start, end)
        return np.nan_to_num(values, nan=-np.inf) > standard.maximum + 1e-9

    def from_clock(self, value: FloatArray) -> pd.DatetimeIndex:
        """Inverse of :meth:`clock` (UTC). Where ``W`` is flat (nights, weekends, breaks) the *latest*
        instant is returned, so a start snaps forward to the next working minute."""
        value = np.asarray(value, dtype=np.float64)
        # the last day whose cumulative start is <= value; flat runs of days share a start, so this is
        # the working day on which the value is reached (or the next one, for a value at a day's end)
        day = np.clip(np.searchsorted(self.day_cum, value, side="right") - 1, 0, len(self.day_cum) - 2)
        rest = value - self.day_cum[day]
        weekday = (day + ORIGIN.weekday()) % 7
        minute = np.empty(len(value))
        for wd in np.unique(weekday):
            sel = weekday == wd
            prof = self.profile[wd]
            m = np.clip(np.searchsorted(prof, rest[sel], side="right") - 1, 0, 1439)
            step = prof[m + 1] - prof[m]
            frac = np.divide(rest[sel] - prof[m], step, out=np.zeros_like(rest[sel]), where=step > 0)
            minute[sel] = m + np.clip(frac, 0.0, 1.0)
        origin = np.datetime64(ORIGIN, "ns")
        # round to whole microseconds (DuckDB's precision): the float clock carries a few ns of error, which
        # would otherwise put add_working_minutes(t, 0) a few ns *before* t
        local = (origin + (day * 86_400 * 10**9).astype("timedelta64[ns]")
                 + (np.round(minute * 6e7) * 1000).astype("timedelta64[ns]"))
        return pd.DatetimeIndex(local).tz_localize(self.timezone).tz_convert("UTC")

    def add_working_minutes(self, start: pd.Series | pd.DatetimeIndex, minutes: FloatArray) -> pd.DatetimeIndex:
        """The instant reached after working ``minutes`` from each start (starts snap to working time)."""
        return self.from_clock(self.clock(start) + np.asarray(minutes, dtype=np.float64))

    def is_working_day(self, dates: pd.DatetimeIndex) -> npt.NDArray[np.bool_]:
        origin = pd.Timestamp(ORIGIN)
        day = np.asarray((pd.DatetimeIndex(dates).tz_localize(None).normalize() - origin).days)
        return np.asarray(self.day_is_working[day], dtype=np.bool_)


def _profile(inst: Institution) -> npt.NDArray[np.float64]:
    profile = np.zeros((7, 1441))
    for wd_index, wd in enumerate(WEEKDAYS):
        if wd not in inst.working_days:
            continue
        working = np.zeros(1440)
        for interval in inst.hours.get(wd, inst.hours["default"]):
            a, b = interval.split("-")
            working[_minutes(a):_minutes(b)] = 1.0
        profile[wd_index, 1:] = np.cumsum(working)
    return profile


def non_working_dates(inst: Institution) -> set[dt.date]:
    """National holidays, cuti bersama and the institution's own days off."""
    import holidays

    dates: set[dt.date] = set()
    if inst.national_holidays:
        years = range(ORIGIN.year, HORIZON.year + 1)
        dates.update(holidays.country_holidays("ID", years=years, categories=("public", "government")).keys())
    for item in inst.non_working:
        parts = [dt.date.fromisoformat(p.strip()) for p in item.split("..")]
        first, last = parts[0], parts[-1]
        dates.update(first + dt.timedelta(days=i) for i in range((last - first).days + 1))
    return dates


def build_calendar(inst: Institution) -> WorkingCalendar:
    profile = _profile(inst)
    n_days = (HORIZON - ORIGIN).days + 1
    days = pd.date_range(ORIGIN, periods=n_days, freq="D")
    weekday = np.asarray(days.weekday)
    # as datetime64 days: np.isin over Python date objects takes 0.2 s per institution
    off = np.isin(days.values.astype("datetime64[D]"),
                  np.array(sorted(non_working_dates(inst)), dtype="datetime64[D]"))
    minutes = profile[weekday, 1440]
    is_working = (minutes > 0) & ~off
    per_day = np.where(is_working, minutes, 0.0)
    day_cum = np.concatenate([[0.0], np.cumsum(per_day)[:-1]])
    count_cum = np.concatenate([[0.0], np.cumsum(is_working.astype(np.float64))[:-1]])
    return WorkingCalendar(inst.id, inst.timezone, profile, is_working, day_cum, count_cum)


@cache
def _calendars_cached(path: str, mtime: float) -> dict[str, WorkingCalendar]:
    return {iid: build_calendar(inst) for iid, inst in load_institutions(Path(path)).items()}


def load_calendars(path: Path) -> dict[str, WorkingCalendar]:
    """Every institution's calendar (built once per file version)."""
    return _calendars_cached(str(path), path.stat().st_mtime if path.exists() else 0.0)
