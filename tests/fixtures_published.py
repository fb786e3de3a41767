"""A small but realistic published result file, built with SQL, for the dashboard and report tests.

``build_published_db`` writes what ``patuh run`` publishes (results contract): the catalogue snapshot
(institutions, sops, sop_steps, sop_edges) from the real SOP catalogue, cases, event_timing, case_results,
deviations of every kind, step_metrics and variants over six months, for three institutions. Random values
come from ``hash()`` so the file is the same on every run for a given seed.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import duckdb

from pipeline.config import get_settings
from pipeline.db import schema_sql
from pipeline.sop import SopModel, load_catalogue, parse_time

RUN_ID = "20260201T020000Z-fx01"
INSTITUTIONS = [
    ("smpn2-ngawi", "SMP Negeri 2 Ngawi", "school", "Ngawi, Jawa Timur", "Asia/Jakarta"),
    ("bontang-bk", "Layanan Bimbingan dan Konseling Sekolah, Bontang", "school", "Bontang, Kalimantan Timur",
     "Asia/Makassar"),
    ("rppsa-mataram", 'RPPSA "Putra Utama" Mataram', "care_home", "Mataram, NTB", "Asia/Makassar"),
]
PREFERRED = [
    "smpn2-ngawi/bk001-prosedur",
    "smpn2-ngawi/bk001-alur",
    "bontang-bk/konseling-individu",
    "rppsa-mataram/9-1-20-temporary-shelter-pertolongan-pertama",
]
DEVIATION_KINDS = (
    "missing_step", "unexpected_step", "wrong_order", "repeated_step", "overdue_step",
    "case_sla_breach", "wrong_role", "missing_document", "stalled_case",
)


@functools.cache
def _pick_models() -> list[SopModel]:
    catalogue = load_catalogue(get_settings().catalogue_dir)
    procedures = {k: m for k, m in catalogue.models.items() if m.kind == "procedure" and len(m.steps) >= 3}
    chosen = [procedures[k] for k in PREFERRED if k in procedures]
    for inst, *_ in INSTITUTIONS:  # every institution gets at least one SOP, whatever the catalogue holds
        if not any(m.institution == inst for m in chosen):
            chosen.extend(sorted((m for m in procedures.values() if m.institution == inst),
                                 key=lambda m: m.id)[:1])
    return chosen


def _catalogue_rows(models: list[SopModel]) -> tuple[list[tuple[object, ...]], ...]:
    sops: list[tuple[object, ...]] = []
    steps: list[tuple[object, ...]] = []
    edges: list[tuple[object, ...]] = []
    for model in models:
        payload = model.model_dump(mode="json", by_alias=True)
        sops.append((model.id, model.institution, model.number, model.title, model.kind, len(model.steps),
                     model.case_time, model.content_hash(), json.dumps(payload)))
        for i, step in enumerate(model.steps):
            std = parse_time(step.time, model.clock)
            steps.append((model.id, step.id, i, step.no, step.activity, step.role,
                          model.roles[step.role].label if step.role else None, step.documents or None,
                          step.time, std.measure if std else None, std.minimum if std else None,
                          std.maximum if std else None, step.optional, step.repeat))
        edges.append((model.id, "start", model.steps[0].id))
        for src, targets in model.successors().items():
            edges.extend((model.id, src, dst) for dst in targets)
    return sops, steps, edges


def build_published_db(path: Path, *, cases_per_sop: int = 60, seed: int = 1) -> Path:
    """Write a published result file at ``path`` and point ``CURRENT`` in its folder at it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    models = _pick_models()
    sops, steps, edges = _catalogue_rows(models)
    conn = duckdb.connect(str(path))
    try:
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute(schema_sql())
        conn.execute(
            "CREATE TABLE IF NOT EXISTS variants (run_id VARCHAR NOT NULL, institution_id VARCHAR NOT NULL, "
            "sop_id VARCHAR NOT NULL, variant_hash VARCHAR NOT NULL, steps VARCHAR[], n_cases BIGINT, "
            "fitness DOUBLE)"
        )
        conn.executemany("INSERT INTO institutions (institution_id, name, kind, region, timezone) "
                         "VALUES (?, ?, ?, ?, ?)", INSTITUTIONS)
        conn.executemany("INSERT INTO sops (sop_id, institution_id, number, title, kind, n_steps, case_time, "
                         "model_hash, model) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", sops)
        conn.executemany("INSERT INTO sop_steps (sop_id, step_id, ord, no, activity, role, role_label, documents, "
                         "time_raw, standard_measure, standard_min, standard_max, optional, repeat) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", steps)
        conn.executemany("INSERT INTO sop_edges (sop_id, src, dst) VALUES (?, ?, ?)", edges)
        conn.execute(
            "INSERT INTO runs (run_id, started_at, finished_at, status, catalogue_hash, params, patuh_version, "
            "summary) VALUES (?, TIMESTAMPTZ '2026-02-01 02:00:00+00', "
            "TIMESTAMPTZ '2026-02-01 02:03:00+00', 'ok', 'fixture', '{}', '0.1.0', '{}')", [RUN_ID]
        )
        _build_results(conn, cases_per_sop, seed)
        from pipeline.bottlenecks import compute_bottlenecks  # the reports read the bottleneck tables

        compute_bottlenecks(conn, RUN_ID)
        conn.execute("CHECKPOINT")
    finally:
        conn.close()
    (path.parent / "CURRENT").write_text(path.name, encoding="utf-8")
    return path


def _build_results(conn: duckdb.DuckDBPyConnection, n: int, seed: int) -> None:
    u = "((hash(s.sop_id, g.i, {seed}, {k}) % 1000003) / 1000003.0)"

    def rnd(k: int) -> str:
        return u.format(seed=seed, k=k)

    conn.execute(f"""
        CREATE TEMP TABLE fx_cases AS
        SELECT s.institution_id, s.sop_id, s.n_steps,
               'c' || substr(sha256(s.sop_id || ':' || g.i || ':' || {seed}), 1, 15) AS case_id,
               TIMESTAMPTZ '2025-08-01 00:30:00+00' + to_days(CAST(floor({rnd(1)} * 181) AS INTEGER))
                   + to_minutes(CAST(floor({rnd(2)} * 300) AS BIGINT)) AS opened_at,
               {rnd(3)} AS u_kind, {rnd(4)} < 0.1 AS is_open,
               CAST(floor({rnd(5)} * (s.n_steps - 1)) AS INTEGER) AS k,
               {rnd(6)} < 0.07 AS bad_role, {rnd(7)} < 0.08 AS no_doc, {rnd(8)} < 0.06 AS sla
        FROM sops s, range({n}) g(i)
    """)
    conn.execute(f"""
        CREATE TEMP TABLE fx_ev AS
        WITH base AS (
            SELECT c.*, st.step_id, st.ord, st.role, st.standard_max, st.standard_measure,
                   CASE WHEN c.u_kind BETWEEN 0.08 AND 0.14 AND st.ord = c.k THEN c.k + 1
                        WHEN c.u_kind BETWEEN 0.08 AND 0.14 AND st.ord = c.k + 1 THEN c.k
                        ELSE st.ord END AS pos
            FROM fx_cases c JOIN sop_steps st USING (sop_id)
            WHERE NOT (c.u_kind < 0.08 AND st.ord = c.k)
              AND NOT (c.is_open AND st.ord > c.n_steps // 2)
            UNION ALL
            SELECT c.*, st.step_id, st.ord, st.role, st.standard_max, st.standard_measure, c.k + 0.5 AS pos
            FROM fx_cases c JOIN sop_steps st USING (sop_id)
            WHERE c.u_kind BETWEEN 0.14 AND 0.18 AND st.ord = c.k AND NOT c.is_open
        ), drawn AS (
            SELECT *, (hash(case_id, pos, {seed}, 11) % 1000003) / 1000003.0 AS u1,
                      (hash(case_id, pos, {seed}, 12) % 1000003) / 1000003.0 AS u2
            FROM base
        ), timed AS (
            SELECT *, CASE WHEN standard_max IS NULL THEN NULL
                           ELSE standard_max * (0.3 + 1.1 * u1 * u1 * u1 * u1) END AS duration_std
            FROM drawn
        ), minutes AS (
            SELECT *, CASE WHEN duration_std IS NULL THEN 10 + 50 * u1
                           WHEN standard_measure = 'working_days' THEN duration_std * 450
                           ELSE duration_std END AS proc_min,
                      5 + 115 * u2 AS wait_min
            FROM timed
        )
        SELECT *, opened_at + to_microseconds(CAST((SUM(wait_min + proc_min) OVER w - proc_min)
                                                   * 60e6 AS BIGINT)) AS ts_start,
                  opened_at + to_microseconds(CAST(SUM(wait_min + proc_min) OVER w * 60e6 AS BIGINT)) AS ts_end
        FROM minutes
        WINDOW w AS (PARTITION BY sop_id, case_id ORDER BY pos ROWS UNBOUNDED PRECEDING)
    """)
    conn.execute(f"""
        INSERT INTO event_timing (run_id, institution_id, sop_id, case_id, step_id, role, prev_role, ts_start,
                                  ts_end, wait_working, proc_working, duration_std, standard_max,
                                  standard_measure, over_standard)
        SELECT '{RUN_ID}', institution_id, sop_id, case_id, step_id,
               CASE WHEN bad_role AND ord = k THEN 'lain' ELSE role END,
               lag(role) OVER (PARTITION BY sop_id, case_id ORDER BY pos),
               ts_start, ts_end,
               wait_min, proc_min, duration_std, standard_max, standard_measure, duration_std > standard_max
        FROM fx_ev
    """)
    conn.execute("""
        INSERT INTO cases (institution_id, sop_id, case_id, opened_at, closed_at, status, n_events)
        SELECT c.institution_id, c.sop_id, c.case_id, c.opened_at,
               CASE WHEN c.is_open THEN NULL ELSE max(e.ts_end) END,
               CASE WHEN c.is_open THEN 'open' ELSE 'closed' END, count(*)
        FROM fx_cases c JOIN fx_ev e USING (sop_id, case_id)
        GROUP BY c.institution_id, c.sop_id, c.case_id, c.opened_at, c.is_open
    """)
    dev_cols = "run_id, institution_id, sop_id, case_id, kind, step_id, activity, expected, observed, " \
               "severity, occurred_at, detail"
    conn.execute(f"""
        INSERT INTO deviations ({dev_cols})
        -- a step over its time standard
        SELECT '{RUN_ID}', e.institution_id, e.sop_id, e.case_id, 'overdue_step', e.step_id, st.activity,
               st.time_raw, CAST(round(e.duration_std, 1) AS VARCHAR),
               CASE WHEN e.duration_std > 1.3 * e.standard_max THEN 'high' ELSE 'medium' END, e.ts_end,
               json_object('duration', e.duration_std, 'maximum', e.standard_max, 'measure', e.standard_measure)
        FROM fx_ev e JOIN sop_steps st USING (sop_id, step_id)
        WHERE e.duration_std > e.standard_max
        UNION ALL
        -- the skipped step
        SELECT '{RUN_ID}', c.institution_id, c.sop_id, c.case_id, 'missing_step', st.step_id, st.activity,
               st.activity, NULL, 'high', c.opened_at, NULL
        FROM fx_cases c JOIN sop_steps st ON st.sop_id = c.sop_id AND st.ord = c.k
        WHERE c.u_kind < 0.08 AND NOT (c.is_open AND c.k > c.n_steps // 2)
        UNION ALL
        SELECT '{RUN_ID}', c.institution_id, c.sop_id, c.case_id, 'wrong_order', st.step_id, st.activity,
               'sesudah ' || prev.step_id, 'sebelum ' || prev.step_id, 'medium', c.opened_at, NULL
        FROM fx_cases c JOIN sop_steps st ON st.sop_id = c.sop_id AND st.ord = c.k + 1
             JOIN sop_steps prev ON prev.sop_id = c.sop_id AND prev.ord = c.k
        WHERE c.u_kind BETWEEN 0.08 AND 0.14 AND NOT (c.is_open AND c.k + 1 > c.n_steps // 2)
        UNION ALL
        SELECT '{RUN_ID}', c.institution_id, c.sop_id, c.case_id, 'repeated_step', st.step_id, st.activity,
               '1 kali', '2 kali', 'low', c.opened_at, NULL
        FROM fx_cases c JOIN sop_steps st ON st.sop_id = c.sop_id AND st.ord = c.k
        WHERE c.u_kind BETWEEN 0.14 AND 0.18 AND NOT c.is_open
        UNION ALL
        SELECT '{RUN_ID}', c.institution_id, c.sop_id, c.case_id, 'unexpected_step', NULL,
               'Kegiatan di luar SOP', NULL, 'Kegiatan di luar SOP', 'low', c.opened_at, NULL
        FROM fx_cases c WHERE c.u_kind BETWEEN 0.18 AND 0.21
        UNION ALL
        SELECT '{RUN_ID}', c.institution_id, c.sop_id, c.case_id, 'case_sla_breach', NULL, NULL,
               '1 x 24 jam', 'lebih dari 1 x 24 jam', 'high', c.opened_at, NULL
        FROM fx_cases c WHERE c.sla AND NOT c.is_open
        UNION ALL
        SELECT '{RUN_ID}', e.institution_id, e.sop_id, e.case_id, 'wrong_role', e.step_id, st.activity,
               st.role_label, 'lain', 'medium', e.ts_end, NULL
        FROM fx_ev e JOIN sop_steps st USING (sop_id, step_id)
        WHERE e.bad_role AND e.ord = e.k AND e.pos = e.ord
        UNION ALL
        SELECT '{RUN_ID}', e.institution_id, e.sop_id, e.case_id, 'missing_document', e.step_id, st.activity,
               array_to_string(coalesce(st.documents, ['Laporan']), ', '), NULL, 'low', e.ts_end, NULL
        FROM fx_ev e JOIN sop_steps st USING (sop_id, step_id)
        WHERE e.no_doc AND e.ord = 0
        UNION ALL
        SELECT '{RUN_ID}', c.institution_id, c.sop_id, c.case_id, 'stalled_case', st.step_id, st.activity,
               st.time_raw, 'tidak ada kegiatan', 'high', c.opened_at, NULL
        FROM fx_cases c JOIN sop_steps st ON st.sop_id = c.sop_id AND st.ord = c.n_steps // 2 + 1
        WHERE c.is_open AND c.u_kind > 0.5
    """)
    conn.execute(f"""
        INSERT INTO case_results (run_id, institution_id, sop_id, case_id, opened_at, closed_at, fitness,
                                  alignment_cost, compliant, n_deviations, lead_time_working, lead_time_elapsed,
                                  status, variant_hash)
        WITH ev AS (
            SELECT sop_id, case_id, min(ts_start) AS first_ts, max(ts_end) AS last_ts,
                   sum(wait_min + proc_min) AS working,
                   md5(string_agg(step_id, '>' ORDER BY pos)) AS variant_hash
            FROM fx_ev GROUP BY ALL
        ), dv AS (
            SELECT sop_id, case_id, count(*) AS n,
                   count(*) FILTER (WHERE kind IN ('missing_step', 'unexpected_step', 'wrong_order',
                                                  'repeated_step')) AS n_flow
            FROM deviations GROUP BY ALL
        )
        SELECT '{RUN_ID}', c.institution_id, c.sop_id, c.case_id, c.opened_at,
               CASE WHEN c.is_open THEN NULL ELSE ev.last_ts END,
               CASE WHEN coalesce(dv.n_flow, 0) = 0 THEN 1.0 ELSE 1.0 - 0.12 * dv.n_flow END,
               coalesce(dv.n_flow, 0), coalesce(dv.n, 0) = 0, coalesce(dv.n, 0), ev.working,
               date_diff('second', c.opened_at, ev.last_ts) / 60.0,
               CASE WHEN c.is_open THEN 'open' ELSE 'closed' END, ev.variant_hash
        FROM fx_cases c JOIN ev USING (sop_id, case_id) LEFT JOIN dv USING (sop_id, case_id)
    """)
    conn.execute(f"""
        INSERT INTO variants (run_id, institution_id, sop_id, variant_hash, steps, n_cases, fitness)
        WITH seq AS (
            SELECT sop_id, case_id, list(step_id ORDER BY pos) AS steps FROM fx_ev GROUP BY ALL
        )
        SELECT '{RUN_ID}', r.institution_id, r.sop_id, r.variant_hash, any_value(seq.steps), count(*),
               avg(r.fitness)
        FROM case_results r JOIN seq USING (sop_id, case_id)
        GROUP BY ALL
    """)
    conn.execute(f"""
        INSERT INTO step_metrics (run_id, institution_id, sop_id, step_id, period, n, wait_p50, wait_p90, proc_p50,
                                  proc_p90, standard, share_over_standard, n_wait, n_proc)
        SELECT '{RUN_ID}', e.institution_id, e.sop_id, e.step_id, strftime(e.ts_end, '%Y-%m'), count(*),
               quantile_cont(e.wait_working, 0.5), quantile_cont(e.wait_working, 0.9),
               quantile_cont(e.proc_working, 0.5), quantile_cont(e.proc_working, 0.9), any_value(st.time_raw),
               avg(CASE WHEN e.over_standard THEN 1.0 WHEN e.over_standard IS NULL THEN NULL ELSE 0.0 END),
               count(e.wait_working), count(e.proc_working)
        FROM event_timing e JOIN sop_steps st USING (sop_id, step_id)
        GROUP BY ALL
    """)
    # as the engine writes them (run.py _write_deviations): each deviation with its case's opening and closing
    conn.execute("""UPDATE deviations d SET case_opened_at = r.opened_at, case_closed_at = r.closed_at
                    FROM case_results r WHERE r.institution_id = d.institution_id AND r.sop_id = d.sop_id
                      AND r.case_id = d.case_id""")
    conn.execute("DROP TABLE fx_ev")
    conn.execute("DROP TABLE fx_cases")
