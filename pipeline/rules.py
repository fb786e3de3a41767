"""Roles, documents and rule-type models (SMK N 1 Petasia academic rules).

* ``wrong_role``: an event whose role is recorded and is neither the step's lane nor one of its
  ``co_roles`` (one deviation per event);
* ``missing_document``: in a log that records documents (``events.documents`` not NULL), an event of a step
  with kelengkapan whose recorded documents lack at least one of them (case-insensitive, whole list
  elements, however the export separated them: see :func:`_norm`; one per event);
* rule models: checked on their input tables (``attendance``, ``escalations``, ``scores``: see
  docs/rules-input.md); a breach is a ``rule_breach`` deviation whose ``step_id`` is the rule id and whose
  ``case_id`` is the student's pseudonym.

Texts the SOP does not know are not copied into results when they may be notes about a person
(public_texts.py): a rare role text that names no role is written as ``OTHER_ROLE``, and a recorded document
that is no kelengkapan of the SOP as ``OTHER_DOCUMENT`` (what is missing is told by the required ones).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import duckdb

from pipeline.public_texts import OTHER_DOCUMENT, OTHER_ROLE, rare_texts
from pipeline.sop import Rule, SopModel, parse_time


@dataclass
class RuleStats:
    wrong_role: int = 0
    missing_document: int = 0
    documents_recorded: bool = False
    rule_breaches: int = 0
    rules_checked: int = 0
    rules_without_input: list[str] = field(default_factory=list)  # "<rule id> (<input>)"


def check_roles_and_documents(conn: duckdb.DuckDBPyConnection, *, case_filter: str = "TRUE",
                              events: str = "events") -> RuleStats:
    """Write ``wrong_role`` and ``missing_document`` deviations into ``run_deviations`` (events of the table
    ``events`` that pass ``case_filter``)."""
    stats = RuleStats()
    before = _count(conn)
    conn.execute(
        f"""
        INSERT INTO run_deviations
        SELECT e.institution_id, e.sop_id, e.case_id, 'wrong_role', e.step_id, s.activity,
               array_to_string(s.allowed_labels, ' / '), e.role, e.ts_end,
               json_object('allowed', s.allowed_roles, 'role', e.role)
        FROM {events} e JOIN run_steps s USING (sop_id, step_id)
        WHERE e.role IS NOT NULL AND s.role IS NOT NULL AND NOT list_contains(s.accepted_roles, e.role)
          AND {case_filter}
        """
    )
    stats.wrong_role = _count(conn) - before
    if stats.wrong_role:
        _mask_rare_roles(conn)
    before = _count(conn)
    conn.execute(
        f"""
        INSERT INTO run_deviations
        WITH ev AS (
            SELECT e.institution_id, e.sop_id, e.case_id, e.step_id, e.documents, e.ts_end
            FROM {events} e SEMI JOIN run_steps s ON s.sop_id = e.sop_id AND s.step_id = e.step_id
                AND len(s.documents) > 0
            WHERE e.documents IS NOT NULL AND {case_filter}),
        -- a log repeats a few document lists: each (step, list) is judged once, not once per event
        judged AS (
            SELECT c.sop_id, c.step_id, c.documents, s.activity, s.documents AS required,
                   list_filter(s.documents, lambda d: NOT contains(c.have, {_norm("d")})) AS missing
            FROM (SELECT *, {_norm("array_to_string(documents, '|')")} AS have
                  FROM (SELECT DISTINCT sop_id, step_id, documents FROM ev)) c
            JOIN run_steps s USING (sop_id, step_id))
        SELECT ev.institution_id, ev.sop_id, ev.case_id, 'missing_document', ev.step_id, j.activity,
               array_to_string(j.required, '; '),
               array_to_string(list_transform(ev.documents, lambda d: CASE WHEN list_contains(k.known, lower(trim(d)))
                                                                 THEN d ELSE '{OTHER_DOCUMENT}' END), '; '),
               ev.ts_end, json_object('missing', j.missing)
        FROM ev JOIN judged j ON j.sop_id = ev.sop_id AND j.step_id = ev.step_id AND j.documents = ev.documents
            JOIN (SELECT sop_id,
                         list_distinct(flatten(list(list_transform(documents, lambda d: lower(trim(d)))))) AS known
                  FROM run_steps GROUP BY sop_id) k ON k.sop_id = ev.sop_id
        WHERE len(j.missing) > 0
        """
    )
    stats.missing_document = _count(conn) - before
    recorded = conn.execute(
        f"SELECT count(*) FROM {events} e WHERE documents IS NOT NULL AND sop_id IN "
        f"(SELECT sop_id FROM run_models) AND {case_filter}"
    ).fetchall()
    stats.documents_recorded = bool(recorded[0][0])
    return stats


def _mask_rare_roles(conn: duckdb.DuckDBPyConnection) -> None:
    """Replace the role text of ``wrong_role`` deviations that may be a note about a person (public_texts.py)."""
    if rare_texts(conn, "role",
                  "SELECT institution_id, observed AS text FROM run_deviations WHERE kind = 'wrong_role'"):
        conn.execute(
            f"""
            UPDATE run_deviations d SET observed = '{OTHER_ROLE}',
                   detail = json_object('allowed', d.detail->'allowed', 'role', '{OTHER_ROLE}')
            FROM run_rare_texts r
            WHERE d.kind = 'wrong_role' AND d.institution_id = r.institution_id AND d.observed = r.text
            """)


def _norm(expr: str) -> str:
    """SQL: a document list as ``| a | b |`` in lower case, any of ``; , |`` as the separator.

    Exports separate documents with semicolons or commas, and some document names contain commas
    ("Media Elektronik (Handphone, Komputer, Laptop)"): comparing element sequences normalised the same
    way on both sides finds a required document however the export split it.
    """
    return f"('| ' || regexp_replace(lower(trim({expr})), '\\s*[;,|]\\s*', ' | ', 'g') || ' |')"


def _count(conn: duckdb.DuckDBPyConnection) -> int:
    return int(conn.execute("SELECT count(*) FROM run_deviations").fetchall()[0][0])


def _attendance_sql(rule: Rule) -> str | None:
    """SQL selecting (institution_id, student_id, semester, days, ..., value, lim) breaches of one rule.

    ``period: semester`` counts per semester; ``school_year`` over both semesters of a school year
    (``semester`` then holds the school year, e.g. ``2025``).
    """
    params = rule.params
    period = "split_part(semester, '-', 1)" if params.get("period") == "school_year" else "semester"
    present = params.get("present", ["hadir"])
    present_list = ", ".join(f"'{p}'" for p in (present if isinstance(present, list) else [str(present)]))
    base = (f"SELECT institution_id, student_id, {period} AS semester, count(*) AS days, "
            f"count(*) FILTER (WHERE status IN ({present_list})) AS present, "
            "count(*) FILTER (WHERE status = 'sakit') AS sick, "
            "count(*) FILTER (WHERE status = 'izin') AS leave, "
            "count(*) FILTER (WHERE status = 'alpa') AS absent "
            "FROM attendance WHERE institution_id = $inst GROUP BY ALL")
    column = {"sakit": "sick", "izin": "leave", "alpa": "absent"}.get(str(params.get("status", "alpa")), "absent")
    if rule.check == "attendance_min_share":
        share = float(params.get("min_share", 0.8))  # type: ignore[arg-type]
        return f"SELECT *, present / days AS value, {share} AS lim FROM ({base}) WHERE present / days < {share}"
    if rule.check == "absence_max_days":
        max_days = float(params.get("max_days", 0))  # type: ignore[arg-type]
        return f"SELECT *, {column} AS value, {max_days} AS lim FROM ({base}) WHERE {column} > {max_days}"
    if rule.check == "absence_max_share":
        share = float(params.get("max_share", 0.15))  # type: ignore[arg-type]
        return f"SELECT *, {column} / days AS value, {share} AS lim FROM ({base}) WHERE {column} / days > {share}"
    return None


_INPUT_TABLES = {"attendance_daily": ("attendance", "day"), "escalation_events": ("escalations", "ts::DATE"),
                 "scores": ("scores", "assessed_on")}


def _escalation_sql() -> str:
    """Breaches of ``escalation_order``: per service case, the first event that starts above the lowest level,
    skips a level or goes back down (events of roles outside ``order`` and of other topics are ignored)."""
    return """
        WITH ev AS (
            SELECT institution_id, case_id, student_id, role, ts, source_row,
                   list_position($order, role) - 1 AS lvl
            FROM escalations
            WHERE institution_id = $inst AND list_contains($order, role)
              AND (topic IS NULL OR len($topics) = 0 OR list_contains($topics, topic))),
        seq AS (
            SELECT *, lag(lvl) OVER w AS prev,
                   list(role) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS path
            FROM ev WINDOW w AS (PARTITION BY institution_id, case_id ORDER BY ts, source_row))
        SELECT institution_id, student_id, case_id, path, ts,
               CASE WHEN prev IS NULL AND lvl > 0 THEN 'started_above_first_level'
                    WHEN lvl > prev + 1 THEN 'skipped_level' WHEN lvl < prev THEN 'went_back_down' END AS problem
        FROM seq
        WHERE (prev IS NULL AND lvl > 0) OR lvl > prev + 1 OR lvl < prev
        QUALIFY row_number() OVER (PARTITION BY institution_id, case_id ORDER BY ts, source_row) = 1
    """


def _remedial_sql(rule: Rule) -> str:
    """Breaches of ``remedial_below_pass``: a score of an assessment in ``assessments`` below the pass mark,
    not excused by tolerated absence, with a remedial after the deadline (``deadline`` before the final exam,
    when the export gives its date) or without one once that deadline has passed at ``as_of`` (at once when
    the export gives no final exam date: nothing tells when it is due)."""
    pass_mark = rule.params.get("pass_mark", "kkm")
    mark = "kkm" if pass_mark == "kkm" else str(float(pass_mark))  # type: ignore[arg-type]
    return f"""
        SELECT *, CASE WHEN remedial_on IS NULL THEN 'no_remedial' ELSE 'remedial_too_late' END AS problem
        FROM (SELECT *, {mark} AS pass_mark, (final_exam_on - to_days($deadline_days))::DATE AS deadline FROM scores)
        WHERE institution_id = $inst AND list_contains($assessments, assessment) AND score < pass_mark
          AND NOT coalesce(absence_excused, FALSE)
          AND CASE WHEN remedial_on IS NULL THEN deadline IS NULL OR deadline < $as_of
                   ELSE deadline IS NOT NULL AND remedial_on > deadline END
    """


def _deadline_days(rule: Rule) -> int:
    """The rule's ``deadline`` (e.g. ``1 minggu``) in whole days."""
    std = parse_time(str(rule.params.get("deadline") or "0"))
    if std is None:
        return 0
    per_day = {"elapsed_minutes": 1440.0, "working_minutes": 1440.0}.get(std.measure, 1.0)
    return round(std.maximum / per_day)


def _list_param(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else ([str(value)] if value else [])


def _breaches(rule: Rule, as_of: dt.date) -> tuple[str, dict[str, object]] | None:
    """SQL of one rule's breaches as (institution_id, student_id, observed, occurred_at, detail), and the
    parameters it needs besides ``$inst``; None for a check this module does not know."""
    if rule.input == "attendance_daily":
        sql = _attendance_sql(rule)
        return None if sql is None else (
            f"""SELECT institution_id, student_id, printf('%.2f', value::DOUBLE) AS observed,
                       NULL::TIMESTAMPTZ AS occurred_at,
                       json_object('semester', semester, 'value', value, 'limit', lim, 'days', days) AS detail
                FROM ({sql})""", {})
    if rule.check == "escalation_order":
        return (f"""SELECT institution_id, student_id, array_to_string(path, ' -> ') AS observed,
                           ts AS occurred_at,
                           json_object('service_case', case_id, 'problem', problem, 'path', path,
                                       'order', $order) AS detail
                    FROM ({_escalation_sql()})""",
                {"order": _list_param(rule.params.get("order")), "topics": _list_param(rule.params.get("topics"))})
    if rule.check == "remedial_below_pass":
        return (f"""SELECT institution_id, student_id, printf('%.1f < %.1f', score, pass_mark) AS observed,
                           assessed_on::TIMESTAMPTZ AS occurred_at,
                           json_object('subject', subject, 'assessment', assessment, 'kd', kd, 'score', score,
                                       'pass_mark', pass_mark, 'remedial_on', remedial_on, 'deadline', deadline,
                                       'problem', problem) AS detail
                    FROM ({_remedial_sql(rule)})""",
                {"assessments": _list_param(rule.params.get("assessments")),
                 "deadline_days": _deadline_days(rule), "as_of": as_of})
    return None


def check_rule_models(conn: duckdb.DuckDBPyConnection, models: dict[str, SopModel], *,
                      as_of: dt.date | None = None) -> RuleStats:
    """Check the rules of rule-type models on their input tables (``attendance``, ``escalations``, ``scores``).

    A rule counts as checked when its input has rows for the model's institution.
    """
    stats = RuleStats()
    for sop_id, model in sorted(models.items()):
        if model.kind != "rules":
            continue
        inst = model.institution
        present = {name: bool(conn.execute(f"SELECT count(*) FROM {table} WHERE institution_id = ?",
                                           [inst]).fetchall()[0][0])
                   for name, (table, _) in _INPUT_TABLES.items()}
        for rule in model.rules:
            if not present.get(rule.input):
                stats.rules_without_input.append(f"{rule.id} ({rule.input})")
                continue
            found = _breaches(rule, as_of or dt.date.today())
            if found is None:
                continue
            sql, params = found
            before = _count(conn)
            conn.execute(
                f"""
                INSERT INTO run_deviations
                SELECT institution_id, $sop, student_id, 'rule_breach', $rule, $text, $article, observed,
                       occurred_at, detail
                FROM ({sql})
                """,
                {"inst": inst, "sop": sop_id, "rule": rule.id, "text": rule.text, "article": rule.article, **params})
            stats.rules_checked += 1
            stats.rule_breaches += _count(conn) - before
        # every student with any input row is a "case" of the rules model, compliant without a breach
        days = " UNION ALL ".join(f"SELECT institution_id, student_id, {day} AS d FROM {table} "
                                  "WHERE institution_id = $inst" for table, day in _INPUT_TABLES.values())
        conn.execute(
            f"""
            INSERT INTO run_rule_cases
            SELECT institution_id, $sop, student_id, min(d)::TIMESTAMPTZ, max(d)::TIMESTAMPTZ, count(*)
            FROM ({days}) GROUP BY ALL
            """,
            {"sop": sop_id, "inst": inst},
        )
    return stats
