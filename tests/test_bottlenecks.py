"""Bottleneck analytics on a small hand-made event_timing set (real DuckDB file)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from pipeline.bottlenecks import Scope, compute_bottlenecks, fmt_duration, fmt_number, rank_bottlenecks
from pipeline.calendars import load_calendars
from pipeline.config import PROJECT_ROOT
from pipeline.db import connect

RUN = "r1"
INST = "smpn2-ngawi"
SOP = "smpn2-ngawi/test"
OTHER = "smpn2-ngawi/other"

# per case: (wait, proc) of s2 (standard 15 menit) and s3 (standard 1 hari = working days)
S2 = {"c1": (10, 5), "c2": (20, 10), "c3": (30, 20), "c4": (40, 30), "c5": (100, 15)}
S3 = {"c1": (600, 200, 0.5), "c2": (900, 450, 2.0), "c3": (1125, 300, 1.5), "c4": (0, 90, 0.2),
      "c5": (0, 45, 0.1)}


def _build(path: Path) -> duckdb.DuckDBPyConnection:
    conn = connect(path)
    conn.execute("INSERT INTO institutions (institution_id, name, kind, timezone) "
                 "VALUES (?, 'SMP Negeri 2 Ngawi', 'school', 'Asia/Jakarta')", [INST])
    conn.executemany(
        "INSERT INTO sop_steps (sop_id, step_id, ord, no, activity, role, role_label, time_raw, "
        "standard_measure, standard_max, optional, repeat) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, false, ?)",
        [(SOP, "s1", 0, "1", "Penggalian data", "piket", "Guru Piket", "30 Menit", "working_minutes", 30.0,
          False),
         (SOP, "s2", 1, "2", "Wali kelas berkoordinasi dengan guru BK", "wali", "Wali Kelas", "15 Menit",
          "working_minutes", 15.0, False),
         (SOP, "s3", 2, "3", "Menyusun laporan", "bk", "Guru BK", "1 hari", "working_days", 1.0, False),
         (OTHER, "r1", 0, "1", "Konseling", "bk", "Guru BK", None, None, None, True)])
    rows = []
    for i, case in enumerate(S2):
        day = dt.datetime(2026, 10, 5 + i, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=7)))
        rows.append((case, "s1", "piket", None, day, day + dt.timedelta(minutes=30), None, 30.0, 30.0, 30.0,
                     "working_minutes", False))
        w2, p2 = S2[case]
        s2_start = day + dt.timedelta(minutes=30 + w2) if case != "c1" else day + dt.timedelta(days=7)
        rows.append((case, "s2", "wali", "piket", s2_start, s2_start + dt.timedelta(minutes=p2), float(w2),
                     float(p2), float(p2), 15.0, "working_minutes", p2 > 15))
        w3, p3, d3 = S3[case]
        s3_start = s2_start + dt.timedelta(minutes=p2 + 1)
        rows.append((case, "s3", "bk", "wali", s3_start, s3_start + dt.timedelta(minutes=p3), float(w3),
                     float(p3), d3, 1.0, "working_days", d3 > 1.0))
    base = dt.datetime(2026, 10, 6, 9, 0, tzinfo=dt.UTC)
    for case, k in (("d1", 3), ("d2", 1)):
        for j in range(k):
            ts = base + dt.timedelta(hours=j)
            rows.append((case, "r1", "bk", "bk" if j else None, ts, ts + dt.timedelta(minutes=10),
                         5.0 if j else None, 10.0, None, None, None, None))
    conn.executemany(
        "INSERT INTO event_timing (run_id, institution_id, sop_id, case_id, step_id, role, prev_role, "
        "ts_start, ts_end, wait_working, proc_working, duration_std, standard_max, standard_measure, over_standard) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(RUN, INST, OTHER if r[0].startswith("d") else SOP, *r) for r in rows])
    conn.execute("""INSERT INTO case_results (run_id, institution_id, sop_id, case_id, opened_at, compliant,
                                              n_deviations, status)
        SELECT DISTINCT run_id, institution_id, sop_id, case_id, min(ts_start) OVER w, true, 0, 'closed'
        FROM event_timing WINDOW w AS (PARTITION BY case_id)""")
    # two guru BK resources handle the s3 events
    conn.execute("""INSERT INTO events (institution_id, sop_id, case_id, activity, step_id, role, resource,
                                        ts_start, ts_end, batch_id, source_row)
        SELECT institution_id, sop_id, case_id, step_id, step_id, role,
               CASE WHEN case_id IN ('c1', 'c2') THEN 'res-a' ELSE 'res-b' END, ts_start, ts_end, 1,
               row_number() OVER ()
        FROM event_timing WHERE step_id = 's3'""")
    # timing.py copies each event's resource into event_timing
    conn.execute("""UPDATE event_timing SET resource = CASE WHEN case_id IN ('c1', 'c2') THEN 'res-a'
                    ELSE 'res-b' END WHERE step_id = 's3'""")
    return conn


@pytest.fixture(scope="module")
def conn(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    c = _build(tmp_path_factory.mktemp("bn") / "w.duckdb")
    cals = load_calendars(PROJECT_ROOT / "sop_models" / "institutions.yaml")
    compute_bottlenecks(c, RUN, calendars=cals)
    return c


def test_step_month_percentiles_and_share(conn: duckdb.DuckDBPyConnection) -> None:
    got = conn.execute("""SELECT period, n, n_cases, wait_p50, wait_p90, proc_p50, proc_p90, n_with_standard,
                                 n_over, share_over_standard, excess_working
                          FROM bottleneck_step_month WHERE step_id = 's2'""").fetchall()
    # waits 10 20 30 40 100: p50 30, p90 = 40 + 0.6 * 60; procs 5 10 15 20 30 over 15: 20 and 30
    assert got == [("2026-10", 5, 5, 30.0, pytest.approx(76.0), 15.0, pytest.approx(26.0), 5, 2,
                    pytest.approx(0.4), pytest.approx(5.0 + 15.0))]
    s3 = conn.execute("SELECT excess_working FROM bottleneck_step_month WHERE step_id = 's3'").fetchone()
    # 1 + 0.5 working days over the 1-day standard, at Ngawi's 7.5-hour (450 min) working day
    assert s3 == (pytest.approx(1.5 * 450),)
    assert conn.execute("SELECT workday_minutes, workdays_per_week FROM bottleneck_calendars").fetchall() == [
        (450.0, 5.0)]


def test_percentiles_say_how_many_values_they_come_from(conn: duckdb.DuckDBPyConnection) -> None:
    """A first step has no waiting time: its row says n_wait 0 beside its 5 executions, so a report can
    show "-" instead of a median of nothing (or of one child's wait); the rework SOP's r1 waits only in
    the two repetitions."""
    got = conn.execute("SELECT step_id, n, wait_p50, n_wait, n_proc FROM bottleneck_step_month "
                       "ORDER BY step_id").fetchall()
    assert got == [("r1", 4, 5.0, 2, 4), ("s1", 5, None, 0, 5), ("s2", 5, 30.0, 5, 5), ("s3", 5, 600.0, 5, 5)]
    ranked = conn.execute("SELECT step_id, n_wait, n_proc FROM bottlenecks ORDER BY step_id").fetchall()
    assert ranked == [("r1", 2, 4), ("s2", 5, 5), ("s3", 5, 5)]


def test_handover_between_roles(conn: duckdb.DuckDBPyConnection) -> None:
    got = conn.execute("""SELECT prev_role, role, n, wait_p50, wait_p90 FROM bottleneck_handovers
                          ORDER BY prev_role""").fetchall()
    # the same-role handover bk -> bk (rework in the other SOP) is not a handover
    assert got == [("piket", "wali", 5, 30.0, pytest.approx(76.0)),
                   ("wali", "bk", 5, 600.0, pytest.approx(1035.0))]


def test_ranking_by_waiting_plus_excess(conn: duckdb.DuckDBPyConnection) -> None:
    got = conn.execute("""SELECT rank, step_id, wait_total, excess_total, score, share_cases_over
                          FROM bottlenecks WHERE sop_id = ? ORDER BY rank""", [SOP]).fetchall()
    # s3: waits 2625 + 675 excess; s2: waits 200 + 20 excess; s1 costs nothing and is no bottleneck
    assert got == [(1, "s3", 2625.0, pytest.approx(675.0), pytest.approx(3300.0), pytest.approx(0.4)),
                   (2, "s2", 200.0, pytest.approx(20.0), pytest.approx(220.0), pytest.approx(0.4))]


def test_sentences_read_right(conn: duckdb.DuckDBPyConnection) -> None:
    sql = "SELECT step_id, explanation_id FROM bottlenecks WHERE sop_id = ?"
    got = dict(conn.execute(sql, [SOP]).fetchall())
    assert got["s3"] == ("Langkah 3 (Menyusun laporan): median waktu tunggu 1,3 hari kerja, "
                         "median waktu proses 3,3 jam kerja; 40% kasus melebihi standar 1 hari.")
    assert got["s2"] == ("Langkah 2 (Wali kelas berkoordinasi dengan guru BK): median waktu tunggu 30 menit, "
                         "median waktu proses 15 menit; 40% kasus melebihi standar 15 Menit.")
    en = conn.execute("SELECT explanation_en FROM bottlenecks WHERE step_id = 's2'").fetchone()
    assert en == ("Step 2 (Wali kelas berkoordinasi dengan guru BK): median wait 30 minutes, "
                  "median processing 15 minutes; 40% of cases exceed the standard of 15 Menit.",)
    # r1 waited twice and ran four times: no median is told from fewer than 5 values (one child's time)
    r1 = conn.execute("SELECT explanation_id FROM bottlenecks WHERE step_id = 'r1'").fetchone()
    assert r1 == ("Langkah 1 (Konseling): langkah ini tidak memiliki standar waktu.",)


def test_rework_loops(conn: duckdb.DuckDBPyConnection) -> None:
    got = conn.execute("""SELECT step_id, n_cases, n_cases_repeated, share_cases_repeated, extra_executions,
                                 repeat_allowed FROM bottleneck_rework ORDER BY sop_id, step_id""").fetchall()
    assert got[0] == ("r1", 2, 1, 0.5, 2, True)
    assert all(r[2] == 0 for r in got[1:])


def test_work_in_progress_by_week(conn: duckdb.DuckDBPyConnection) -> None:
    # c1 finished s1 on Monday 5 October and started s2 a week later: waiting in both weeks
    got = conn.execute("""SELECT week, cases_waiting, cases_at_step FROM bottleneck_wip
                          WHERE step_id = 's2' ORDER BY week""").fetchall()
    assert got[0] == (dt.date(2026, 10, 5), 5, 5)
    assert got[1] == (dt.date(2026, 10, 12), 1, 1)


def test_role_load_counts_resources(conn: duckdb.DuckDBPyConnection) -> None:
    got = conn.execute("""SELECT role, n_events, n_cases, proc_minutes, n_resources FROM bottleneck_role_load
                          ORDER BY role""").fetchall()
    assert got == [("bk", 9, 7, 1085.0 + 40.0, 2), ("piket", 5, 5, 150.0, None), ("wali", 5, 5, 80.0, None)]


def test_period_scope_and_minimum_cases(conn: duckdb.DuckDBPyConnection) -> None:
    # only the cases opened on 5-6 October (c1, c2): below 5 cases nothing is ranked for the report
    scope = Scope(RUN, INST, dt.datetime(2026, 10, 5), dt.datetime(2026, 10, 7))
    assert rank_bottlenecks(conn, scope, min_cases=5) == []
    ranked = rank_bottlenecks(conn, scope, min_cases=1)
    assert {(r["sop_id"], r["step_id"], r["n_cases"]) for r in ranked} >= {(SOP, "s3", 2), (SOP, "s2", 2)}


def test_number_and_duration_formats() -> None:
    assert fmt_number(1234.5, "id", 1) == "1.234,5"
    assert fmt_number(1234.5, "en", 1) == "1,234.5"
    assert fmt_duration(0.4) == "< 1 menit"
    assert fmt_duration(90) == "1,5 jam kerja"
    assert fmt_duration(900, workday_minutes=450) == "2 hari kerja"
    assert fmt_duration(1125, "en", 450) == "2.5 working days"


@pytest.mark.parametrize("groups", ["by-keys", "numbered"])
@pytest.mark.parametrize("counts_as", ["added-up", "with-changes-appended"])
def test_percentiles_from_value_counts_equal_numpy(tmp_path: Path, counts_as: str, groups: str) -> None:
    """The kept sums count each working-time value per group; percentiles read from those counts are
    numpy's linear-interpolation percentiles of the raw values, ties and one-value groups included. Also
    when the counts come as an incremental run appends them: one value's count split over several rows,
    values added and taken away again (negative counts), a group that comes to nothing; and when each row
    carries its group's number instead of its keys."""
    import numpy as np

    from pipeline.bottlenecks import _percentiles_sql, percentiles_frame

    rng = np.random.default_rng(7)
    groups = {f"g{i}": rng.integers(0, 1 + i * 3, size=1 + i * 7).astype(float) for i in range(40)}
    groups["one"] = np.array([42.0])
    groups["halves"] = rng.integers(0, 9, size=101) / 2.0
    conn = duckdb.connect(str(tmp_path / "p.duckdb"))
    conn.execute("CREATE TABLE v (g VARCHAR, value DOUBLE)")
    conn.executemany("INSERT INTO v VALUES (?, ?)", [(g, float(x)) for g, xs in groups.items() for x in xs]
                     + [("one", None)])  # a NULL value is no working time: left out
    counts = "SELECT g, value, count(*) AS n FROM v GROUP BY ALL"
    if counts_as == "with-changes-appended":
        # each count split in two rows; every group gains values that a later run takes away again (before
        # and after them in the order of values), and a group that is gone altogether
        conn.execute(f"CREATE TABLE c AS {counts}")
        conn.execute("""
            CREATE TABLE appended AS
            SELECT g, value, n - n // 2 AS n FROM c UNION ALL SELECT g, value, n // 2 FROM c WHERE n // 2 > 0
            UNION ALL SELECT g, value, 3 FROM c UNION ALL SELECT g, value, -3 FROM c
            UNION ALL SELECT g, v, 2 FROM (SELECT DISTINCT g FROM c), (VALUES (-5.0), (1000.0)) t(v)
            UNION ALL SELECT g, v, -2 FROM (SELECT DISTINCT g FROM c), (VALUES (-5.0), (1000.0)) t(v)
            UNION ALL SELECT 'gone', 7.0, 4 UNION ALL SELECT 'gone', 7.0, -4""")
        counts = "SELECT * FROM appended"
    sql = _percentiles_sql("g", counts)
    if groups == "numbered":  # numpy over the rows with their group's number (percentiles_frame)
        conn.execute(f"CREATE TABLE numbers AS SELECT row_number() OVER ()::INTEGER AS gid, g "
                     f"FROM (SELECT DISTINCT g FROM ({counts}))")
        conn.register("frame", percentiles_frame(conn, f"SELECT gid, value, n FROM ({counts}) JOIN numbers USING (g)"))
        # the same values as the SQL, bit for bit
        assert conn.execute(f"SELECT g, p50, p90, value_sum, n_values FROM frame JOIN numbers USING (gid) "
                            f"EXCEPT SELECT * FROM ({sql})").fetchall() == []
        sql = "SELECT g, p50, p90, value_sum, n_values FROM frame JOIN numbers USING (gid)"
    got = {g: (p50, p90, total, n) for g, p50, p90, total, n in conn.execute(sql).fetchall()}
    assert set(got) == set(groups)
    for g, xs in groups.items():
        p50, p90 = np.percentile(xs, [50, 90])
        # n_values: how many values the percentiles come from (what a report suppresses small ones by)
        assert got[g] == (pytest.approx(p50, rel=1e-12), pytest.approx(p90, rel=1e-12), pytest.approx(xs.sum()),
                          len(xs)), g
