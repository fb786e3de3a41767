"""Which texts outside the SOPs results may name (privacy, DESIGN section 9).

An activity with no SOP step, or a role text that names no role of the institution's SOPs, goes into results
(deviations, variants, event_timing and so the bottleneck tables, the dashboard and the reports) only when at
least :data:`PUBLIC_LABEL_CASES` cases of the institution use it: that common, it names a kind of work; a rarer
one may be a note typed into the column ("Konseling lanjutan dgn <a child's name> (hamil)") and is written as
:data:`OTHER_ACTIVITY` / :data:`OTHER_ROLE`. A recorded document that is no kelengkapan of the SOP is always
written as :data:`OTHER_DOCUMENT` (rules.py: what is missing is told by the required ones).

Counting a text's cases reads the events; the texts found common are kept in ``public_texts``, so a run
counts only the texts it has not seen common before (usually none).
"""

from __future__ import annotations

from typing import Literal

import duckdb

from pipeline.config import PUBLIC_LABEL_CASES

OTHER_ACTIVITY = "(kegiatan lain / other activity)"
OTHER_ROLE = "(peran lain / other role)"
OTHER_DOCUMENT = "(dokumen lain / other document)"

Kind = Literal["activity", "role"]
# the events' column a kind's texts are in, and which of its rows count
_COLUMN: dict[str, tuple[str, str]] = {"activity": ("activity", "e.step_id IS NULL"), "role": ("role", "TRUE")}


def rare_texts(conn: duckdb.DuckDBPyConnection, kind: Kind, candidates_sql: str) -> list[str]:
    """Of the texts of ``candidates_sql`` (a query of ``institution_id, text``), those results may not name, as
    ``institution_id || chr(31) || text``; also left in the temp table ``run_rare_texts(institution_id, text)``.

    Role texts that are a key, label or alias of a role of any SOP of the institution in this run
    (``run_known_roles``, run.py) are known, whatever their count."""
    known = ("" if kind == "activity" else
             " ANTI JOIN run_known_roles k ON k.institution_id = c.institution_id AND k.text = c.text")
    conn.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE run_rare_texts AS
        SELECT DISTINCT c.institution_id, c.text FROM ({candidates_sql}) c{known}
        ANTI JOIN (SELECT * FROM public_texts WHERE kind = $kind) p
            ON p.institution_id = c.institution_id AND p.text = c.text
        WHERE c.text IS NOT NULL
        """, {"kind": kind})
    if not conn.execute("SELECT count(*) FROM run_rare_texts").fetchall()[0][0]:
        return []  # the usual case: every text is known, or was found common before; the events are not read
    column, counted = _COLUMN[kind]
    conn.execute(
        f"""
        INSERT INTO public_texts
        SELECT e.institution_id, $kind, e.{column} FROM events e
        SEMI JOIN run_rare_texts r ON r.institution_id = e.institution_id AND r.text = e.{column}
        WHERE {counted}
        GROUP BY ALL HAVING count(DISTINCT (e.sop_id, e.case_id)) >= {PUBLIC_LABEL_CASES}
        """, {"kind": kind})
    conn.execute(
        """DELETE FROM run_rare_texts r USING (SELECT * FROM public_texts WHERE kind = $kind) p
           WHERE p.institution_id = r.institution_id AND p.text = r.text""", {"kind": kind})
    return [str(r[0]) for r in conn.execute(
        "SELECT institution_id || chr(31) || text FROM run_rare_texts ORDER BY 1").fetchall()]
