"""Roles, documents and rule-type models (SMK N 1 Petasia academic rules).

* ``wrong_role``: an event whose role is recorded and is neither the step's lane nor one of its
  ``co_roles`` (one deviation per event);
* ``missing_document``: in a log that records documents (``events.documents`` not NULL), an event of a step
  with kelengkapan whose recorded documents lack at least one of them (case-insensitive, whole list
  elements, however the export separated them: see :func:`_norm`; one per event);
* rule models: checked on their input table (``attendance``); a breach is a ``rule_breach`` deviation whose
  ``step_id`` is the rule id and whose ``case_id`` is the student's pseudonym.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from pipeline.sop import Rule, SopModel


@dataclass
class RuleStats:
    wrong_role: int = 0
    missing_document: int = 0
    documents_recorded: bool = False
    rule_breaches: int = 0
    rules_checked: int = 0


def check_roles_and_documents(conn: duckdb.DuckDBPyConnection, *, case_filter: str = "TRUE") -> RuleStats:
    """Write ``wrong_role`` and ``missing_document`` deviations into ``run_deviations``."""
    stats = RuleStats()
    before = _count(conn)
    conn.execute(
        f"""
        INSERT INTO run_deviations
        SELECT e.institution_id, e.sop_id, e.case_id, 'wrong_role', e.step_id, s.activity,
               array_to_string(s.allowed_labels, ' / '), e.role, e.ts_end,
               json_object('allowed', s.allowed_roles, 'role', e.role)
        FROM events e JOIN run_steps s USING (sop_id, step_id)
        WHERE e.role IS NOT NULL AND s.role IS NOT NULL AND NOT list_contains(s.allowed_roles, e.role)
          AND {case_filter}
        """
    )
    stats.wrong_role = _count(conn) - before
    before = _count(conn)
    conn.execute(
        f"""
        INSERT INTO run_deviations
        SELECT institution_id, sop_id, case_id, 'missing_document', step_id, activity,
               array_to_string(required, '; '), array_to_string(documents, '; '), ts_end,
               json_object('missing', missing)
        FROM (
            SELECT e.*, s.activity, s.documents AS required,
                   list_filter(s.documents, lambda d: NOT contains({_norm("array_to_string(e.documents, '|')")},
                                                                   {_norm("d")})) AS missing
            FROM events e JOIN run_steps s USING (sop_id, step_id)
            WHERE e.documents IS NOT NULL AND len(s.documents) > 0 AND {case_filter}
        )
        WHERE len(missing) > 0
        """
    )
    stats.missing_document = _count(conn) - before
    recorded = conn.execute(
        f"SELECT count(*) FROM events e WHERE documents IS NOT NULL AND sop_id IN "
        f"(SELECT sop_id FROM run_models) AND {case_filter}"
    ).fetchall()
    stats.documents_recorded = bool(recorded[0][0])
    return stats


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


def check_rule_models(conn: duckdb.DuckDBPyConnection, models: dict[str, SopModel]) -> RuleStats:
    """Check attendance rules of rule-type models on the ``attendance`` table."""
    stats = RuleStats()
    for sop_id, model in sorted(models.items()):
        if model.kind != "rules":
            continue
        for rule in model.rules:
            sql = _attendance_sql(rule) if rule.input == "attendance_daily" else None
            if sql is None:
                continue
            stats.rules_checked += 1
            before = _count(conn)
            conn.execute(
                f"""
                INSERT INTO run_deviations
                SELECT institution_id, $sop, student_id, 'rule_breach', $rule, $text, $article,
                       printf('%.2f', value::DOUBLE), NULL::TIMESTAMPTZ,
                       json_object('semester', semester, 'value', value, 'limit', lim, 'days', days)
                FROM ({sql})
                """,
                {"inst": model.institution, "sop": sop_id, "rule": rule.id, "text": rule.text,
                 "article": rule.article},
            )
            stats.rule_breaches += _count(conn) - before
        # every student with attendance is a "case" of the rules model, compliant without a breach
        conn.execute(
            """
            INSERT INTO run_rule_cases
            SELECT institution_id, $sop, student_id, min(day)::TIMESTAMPTZ, max(day)::TIMESTAMPTZ, count(*)
            FROM attendance WHERE institution_id = $inst GROUP BY ALL
            """,
            {"sop": sop_id, "inst": model.institution},
        )
    return stats
