"""Labels in Bahasa Indonesia (default) and English, and Indonesian number and date formats."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from pipeline.timing import standard_text

LANGS = ("id", "en")
DEFAULT = "id"

MONTHS = {
    "id": ["Jan", "Feb", "Mar", "Apr", "Mei", "Jun", "Jul", "Agu", "Sep", "Okt", "Nov", "Des"],
    "en": ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
}

_T: dict[str, tuple[str, str]] = {
    # shell
    "app.tagline": ("Analitik kepatuhan SOP", "SOP compliance analytics"),
    "nav.ringkasan": ("Ringkasan", "Overview"),
    "nav.peta": ("Peta Proses", "Process map"),
    "nav.penyimpangan": ("Penyimpangan", "Deviations"),
    "nav.kasus": ("Kasus", "Cases"),
    "nav.waktu": ("Waktu Langkah", "Step times"),
    "nav.sop": ("SOP", "SOPs"),
    "nav.laporan": ("Laporan", "Reports"),
    "logout": ("Keluar", "Log out"),
    "role.qa": ("Penjaminan mutu", "Quality assurance"),
    "role.pengawas": ("Pengawas", "Supervisor"),
    "role.kepala": ("Kepala instansi", "Head of institution"),
    "filter.inst": ("Instansi", "Institution"),
    "filter.sop": ("SOP", "SOP"),
    "filter.start": ("Dari bulan", "From month"),
    "filter.end": ("Sampai bulan", "To month"),
    "filter.all_inst": ("Semua instansi", "All institutions"),
    "filter.inst_unavailable": ("Instansi tidak tersedia untuk akun ini", "Institution not available to this account"),
    "filter.all_sop": ("Semua SOP", "All SOPs"),
    "filter.any": ("Semua", "All"),
    "filter.kind": ("Jenis penyimpangan", "Deviation kind"),
    "filter.step": ("Langkah", "Step"),
    "filter.role": ("Pelaksana", "Performer"),
    "filter.sev": ("Tingkat", "Severity"),
    "filter.reset": ("Hapus filter", "Clear filters"),
    "data.run": ("Data hasil pemeriksaan", "Results of run"),
    "data.none": ("Belum ada hasil pemeriksaan. Jalankan 'patuh run' (atau 'patuh demo') lalu muat ulang "
                  "halaman ini.", "No results yet. Run 'patuh run' (or 'patuh demo') and reload this page."),
    "loading": ("Memuat…", "Loading…"),
    "empty": ("Tidak ada data untuk filter ini.", "No data for these filters."),
    "empty.hint": ("Ubah instansi, SOP atau periode di atas.", "Change the institution, SOP or period above."),
    "choose_sop": ("Pilih satu SOP di filter di atas.", "Choose one SOP in the filters above."),
    "sop_auto": ("Otomatis: {sop}", "Automatic: {sop}"),
    "notfound.title": ("404 \u2013 Halaman tidak ditemukan.", "404 \u2013 Page not found."),
    "notfound.hint": ("Alamat ini tidak ada di Patuh. Periksa tautannya, atau mulai dari Ringkasan.",
                      "This address does not exist in Patuh. Check the link, or start from the overview."),
    "notfound.home": ("Kembali ke Ringkasan", "Back to the overview"),
    "period.cases": ("Periode = bulan kasus dibuka (waktu setempat instansi); penyimpangan dihitung bersama "
                     "kasusnya, kapan pun terjadinya, seperti di laporan.",
                     "Period = the month a case was opened in (the institution's local time); deviations count "
                     "with their case whenever they happened, as in the reports."),
    "held.note": ("{name} tidak diperiksa pada analisis terakhir karena berkas SOP-nya berisi galat ({files}); "
                  "angkanya dari analisis sebelumnya (data sampai {date}).",
                  "{name} was not checked in the latest analysis because its SOP files have errors ({files}); "
                  "its figures come from an earlier analysis (data up to {date})."),
    "held.never": ("belum pernah diperiksa", "never checked"),
    "click_hint": ("Klik batang atau titik untuk melihat penyimpangan di baliknya.",
                   "Click a bar or point to see the deviations behind it."),
    "period.reversed": ("Periode terbalik ({start} sampai {end}): ditampilkan {first} sampai {last}.",
                        "The period was reversed ({start} to {end}): showing {first} to {last}."),
    "rules.no_steps": ("Dokumen ini berisi aturan, bukan tabel langkah: tidak ada peta proses atau waktu "
                       "langkah untuknya.",
                       "This document holds rules, not a table of steps: it has no process map or step times."),
    "rules.see_dev": ("Pelanggaran aturannya ada di halaman Penyimpangan.",
                      "Its rule breaches are on the Deviations page."),
    "rules.open_dev": ("Buka pelanggaran aturan", "Open the rule breaches"),
    # overview
    "kpi.cases": ("Kasus", "Cases"),
    "kpi.rate": ("Tingkat kepatuhan", "Compliance rate"),
    "kpi.deviations": ("Penyimpangan", "Deviations"),
    "kpi.open": ("Kasus terbuka", "Open cases"),
    "kpi.stalled": ("Kasus macet", "Stalled cases"),
    "kpi.lead": ("Median waktu selesai", "Median lead time"),
    "ov.by_inst": ("Kepatuhan per instansi", "Compliance by institution"),
    "ov.by_sop": ("Kepatuhan per SOP", "Compliance by SOP"),
    "ov.trend": ("Tren kepatuhan per bulan", "Compliance trend by month"),
    "ov.by_kind": ("Penyimpangan per jenis", "Deviations by kind"),
    "ov.compliant": ("patuh", "compliant"),
    "ov.cases_axis": ("kasus", "cases"),
    "ov.rate_axis": ("% kasus patuh", "% compliant cases"),
    # process map
    "pm.title": ("Model SOP dan jalur yang terjadi", "The SOP model and the paths taken"),
    "pm.legend": ("Warna langkah: bagian pelaksanaan yang melebihi standar waktu. Tebal garis: jumlah kasus "
                  "yang melewati. Garis putus-putus merah: perpindahan di luar SOP. Klik langkah untuk melihat "
                  "penyimpangannya.",
                  "Step colour: share of executions over the time standard. Line width: cases passing. Dashed "
                  "red lines: transitions outside the SOP. Click a step to see its deviations."),
    "pm.variants": ("Jalur paling sering", "Most frequent paths"),
    "pm.rank": ("#", "#"),
    "pm.path": ("Urutan langkah", "Step sequence"),
    "pm.cases": ("Kasus", "Cases"),
    "pm.fitness": ("Kesesuaian", "Fitness"),
    "pm.as_model": ("sesuai model", "as modelled"),
    "pm.off_model": ("menyimpang", "deviates"),
    "pm.share_over": ("melebihi standar", "over standard"),
    "pm.wait": ("median tunggu", "median wait"),
    "pm.no_variants": ("Belum ada data jalur untuk SOP ini.", "No path data for this SOP yet."),
    "pm.edge_dev": ("penyimpangan alur di langkah tujuan", "flow deviations at the target step"),
    # deviations
    "dev.title": ("Penyimpangan", "Deviations"),
    "dev.export": ("Unduh CSV (sesuai filter)", "Download CSV (filtered)"),
    "dev.count": ("{n} penyimpangan", "{n} deviations"),
    "dev.one": ("{n} penyimpangan", "{n} deviation"),
    "dev.open_case": ("Klik baris untuk membuka kasusnya.", "Click a row to open its case."),
    "rep.open": ("Buka", "Open"),
    "col.when": ("Waktu", "When"),
    "col.inst": ("Instansi", "Institution"),
    "col.sop": ("SOP", "SOP"),
    "col.case": ("Kasus", "Case"),
    "col.kind": ("Jenis", "Kind"),
    "col.step": ("Langkah", "Step"),
    "col.activity": ("Kegiatan", "Activity"),
    "col.expected": ("Seharusnya", "Expected"),
    "col.observed": ("Terjadi", "Observed"),
    "col.sev": ("Tingkat", "Severity"),
    "col.role": ("Pelaksana", "Performer"),
    "col.start": ("Mulai", "Start"),
    "col.end": ("Selesai", "End"),
    "col.duration": ("Durasi", "Duration"),
    "col.standard": ("Standar", "Standard"),
    "col.status": ("Status", "Status"),
    "col.opened": ("Dibuka", "Opened"),
    "col.n_dev": ("Penyimpangan", "Deviations"),
    # cases
    "case.title": ("Kasus", "Case"),
    "case.search": ("Cari kode kasus (min. 4 karakter)", "Find a case code (at least 4 characters)"),
    "case.attention": ("Kasus terbaru yang perlu perhatian", "Recent cases needing attention"),
    "case.open": ("Kasus terbuka", "Open cases"),
    "case.open_count": ("{shown} dari {n} kasus terbuka, terbaru lebih dulu.",
                        "{shown} of {n} open cases, most recent first."),
    "case.all_cases": ("Tampilkan kasus yang perlu perhatian", "Show the cases needing attention"),
    "case.not_found": ("Kasus tidak ditemukan, atau Anda tidak berhak melihatnya.",
                       "Case not found, or you are not allowed to see it."),
    "case.timeline": ("Linimasa kasus terhadap standar tiap langkah", "Case timeline against each step's standard"),
    "case.deviations": ("Penyimpangan pada kasus ini", "Deviations in this case"),
    "case.no_deviations": ("Kasus ini sesuai SOP: tidak ada penyimpangan.",
                           "This case follows the SOP: no deviations."),
    "case.compliant": ("Patuh", "Compliant"),
    "case.not_compliant": ("Tidak patuh", "Not compliant"),
    "case.fitness": ("Kesesuaian alur", "Flow fitness"),
    "case.lead": ("Waktu kerja total", "Total working time"),
    "case.within": ("dalam standar", "within standard"),
    "case.over": ("melebihi standar", "over standard"),
    "case.no_std": ("tanpa standar", "no standard"),
    "case.wait": ("menunggu", "waiting"),
    "status.open": ("terbuka", "open"),
    "status.closed": ("selesai", "closed"),
    # step times
    "st.title": ("Sebaran durasi tiap langkah", "Duration distribution per step"),
    "st.legend": ("Garis merah: batas standar waktu langkah. Batang merah: pelaksanaan yang melebihi standar. "
                  "Klik batang untuk melihat penyimpangan waktunya.",
                  "Red line: the step's time standard. Red bars: executions over the standard. Click a bar to "
                  "see its overdue deviations."),
    "st.table": ("Ringkasan waktu per langkah", "Time summary per step"),
    "st.n": ("Pelaksanaan", "Executions"),
    "st.wait": ("Median tunggu", "Median wait"),
    "st.proc": ("Median proses", "Median processing"),
    "st.over": ("Melebihi standar", "Over standard"),
    "st.count": ("jumlah", "count"),
    # sop
    "sop.title": ("Katalog SOP", "SOP catalogue"),
    "sop.plain": ("Tampilan tabel sederhana (tampilan format Permenpan-RB belum tersedia).",
                  "Plain table (the Permenpan-RB layout is not available yet)."),
    "sop.number": ("Nomor", "Number"),
    "sop.steps": ("Langkah", "Steps"),
    "sop.no": ("No", "No"),
    "sop.activity": ("Kegiatan", "Activity"),
    "sop.lane": ("Pelaksana", "Performer"),
    "sop.docs": ("Kelengkapan", "Documents"),
    "sop.time": ("Waktu", "Time"),
    # reports
    "rep.title": ("Laporan berkala", "Periodic reports"),
    "rep.none": ("Belum ada laporan. Buat dengan 'patuh report --all --period 2026-01'.",
                 "No reports yet. Write them with 'patuh report --all --period 2026-01'."),
    "rep.file": ("Berkas", "File"),
    "rep.size": ("Ukuran", "Size"),
    "rep.modified": ("Dibuat", "Written"),
    "rep.download": ("Unduh", "Download"),
    # login
    "login.title": ("Masuk ke Patuh", "Log in to Patuh"),
    "login.user": ("Nama pengguna", "User name"),
    "login.password": ("Kata sandi", "Password"),
    "login.submit": ("Masuk", "Log in"),
    "login.failed": ("Nama pengguna atau kata sandi salah.", "Wrong user name or password."),
    # units
    "unit.working_minutes": ("menit kerja", "working minutes"),
    "unit.working_days": ("hari kerja", "working days"),
    "unit.elapsed_minutes": ("menit", "minutes"),
    "unit.elapsed_days": ("hari", "days"),
    "unit.elapsed_hours": ("jam", "hours"),
    "unit.hours": ("jam kerja", "working hours"),
    # severities
    "sev.high": ("Tinggi", "High"),
    "sev.medium": ("Sedang", "Medium"),
    "sev.low": ("Rendah", "Low"),
    # deviation kinds
    "kind.missing_step": ("Langkah terlewat", "Missing step"),
    "kind.unexpected_step": ("Kegiatan di luar SOP", "Unexpected step"),
    "kind.wrong_order": ("Urutan salah", "Wrong order"),
    "kind.repeated_step": ("Langkah berulang", "Repeated step"),
    "kind.overdue_step": ("Melebihi standar waktu", "Overdue step"),
    "kind.case_sla_breach": ("Kasus melebihi batas waktu", "Case SLA breach"),
    "kind.wrong_role": ("Pelaksana tidak sesuai", "Wrong role"),
    "kind.missing_document": ("Dokumen tidak lengkap", "Missing document"),
    "kind.stalled_case": ("Kasus macet", "Stalled case"),
    "kind.rule_breach": ("Pelanggaran aturan", "Rule breach"),
    "rule.no_remedial": ("tanpa remedial", "no remedial"),
    "rule.remedial_too_late": ("remedial terlambat", "remedial too late"),
    # plain-language explanations ({step}, {activity}, {expected}, {observed})
    "explain.missing_step": ("Langkah {step} \u201c{activity}\u201d tidak dilakukan, padahal SOP mewajibkannya.",
                             "Step {step} \u201c{activity}\u201d never happened, although the SOP requires it."),
    "explain.unexpected_step": ("Ada kegiatan \u201c{observed}\u201d yang tidak ada dalam SOP pada titik ini.",
                                "An activity \u201c{observed}\u201d happened that the SOP does not allow here."),
    "explain.wrong_order": ("Langkah {step} \u201c{activity}\u201d dilakukan di urutan yang salah "
                            "(seharusnya {expected}, terjadi {observed}).",
                            "Step {step} \u201c{activity}\u201d happened out of order "
                            "(expected {expected}, observed {observed})."),
    "explain.repeated_step": ("Langkah {step} \u201c{activity}\u201d diulang padahal SOP tidak mengatur "
                              "pengulangan ({observed}).",
                              "Step {step} \u201c{activity}\u201d was repeated where the SOP has no loop "
                              "({observed})."),
    "explain.overdue_step": ("Langkah {step} \u201c{activity}\u201d memakan waktu {observed}, melebihi "
                             "standar {expected}.",
                             "Step {step} \u201c{activity}\u201d took {observed}, over its standard of "
                             "{expected}."),
    "explain.case_sla_breach": ("Kasus secara keseluruhan melebihi batas waktu {expected} ({observed}).",
                                "The whole case exceeded its time limit of {expected} ({observed})."),
    "explain.sla_between": ("Batas waktu antara dua langkah terlampaui: dari langkah {sla_from} sampai langkah "
                            "{sla_to} paling lama {expected}, terjadi {observed}.",
                            "A time limit between two steps was exceeded: from step {sla_from} to step {sla_to} "
                            "within {expected}, it took {observed}."),
    "explain.sla_unknown": ("Batas waktu antara dua langkah ({step}) terlampaui: paling lama {expected}, terjadi "
                            "{observed}.",
                            "A time limit between two steps ({step}) was exceeded: within {expected}, it took "
                            "{observed}."),
    "explain.sla_text": ("Ketentuannya: \u201c{text}\u201d.", "The standard says: \u201c{text}\u201d."),
    "explain.wrong_role": ("Langkah {step} \u201c{activity}\u201d seharusnya dilakukan oleh {expected}, "
                           "tetapi dilakukan oleh {observed}.",
                           "Step {step} \u201c{activity}\u201d should be done by {expected}, but was done by "
                           "{observed}."),
    "explain.missing_document": ("Kelengkapan langkah {step} \u201c{activity}\u201d tidak tercatat: "
                                 "{expected}.",
                                 "The documents of step {step} \u201c{activity}\u201d were not recorded: "
                                 "{expected}."),
    # a stalled case's step is the last one done; its expected is the standard of the step that should follow
    "explain.stalled_case": ("Kasus masih terbuka tanpa kegiatan sejak langkah {step} \u201c{activity}\u201d "
                             "selesai ({observed}), lebih lama dari standar waktu langkah berikutnya {next_step} "
                             "\u201c{next_activity}\u201d ({expected}).",
                             "The case is still open with no activity since step {step} \u201c{activity}\u201d "
                             "ended ({observed}), longer than the time standard of the next step {next_step} "
                             "\u201c{next_activity}\u201d ({expected})."),
    "explain.stalled_case_default": ("Kasus masih terbuka tanpa kegiatan sejak langkah {step} "
                                     "\u201c{activity}\u201d selesai ({observed}), lebih lama dari batas "
                                     "{expected} untuk langkah berikutnya.",
                                     "The case is still open with no activity since step {step} "
                                     "\u201c{activity}\u201d ended ({observed}), longer than the limit of "
                                     "{expected} for the next step."),
    "explain.rule_breach": ("Siswa melanggar aturan {step} ({expected}): {observed}. Aturannya: \u201c{activity}\u201d",
                            "The student breached rule {step} ({expected}): {observed}. The rule: "
                            "\u201c{activity}\u201d"),
}


def norm_lang(lang: str | None) -> str:
    return lang if lang in LANGS else DEFAULT


def t(key: str, lang: str | None = DEFAULT, **values: Any) -> str:
    """The label for ``key``; unknown keys show as themselves so a gap is visible, not a crash."""
    pair = _T.get(key)
    text = key if pair is None else pair[1 if norm_lang(lang) == "en" else 0]
    return text.format(**values) if values else text


def has(key: str) -> bool:
    return key in _T


def kind_label(kind: str | None, lang: str | None) -> str:
    return t(f"kind.{kind}", lang) if kind and has(f"kind.{kind}") else (kind or "-")


def sev_label(sev: str | None, lang: str | None) -> str:
    return t(f"sev.{sev}", lang) if sev and has(f"sev.{sev}") else (sev or "-")


def explain(kind: str, lang: str | None, **values: Any) -> str:
    """A deviation in plain language; missing values show as '-'."""
    safe = {k: ("-" if v is None or (isinstance(v, float) and math.isnan(v)) else v) for k, v in values.items()}
    for key in ("step", "activity", "expected", "observed"):
        safe.setdefault(key, "-")
    if not has(f"explain.{kind}"):
        return f"{kind}: {safe['expected']} / {safe['observed']}"
    return t(f"explain.{kind}", lang, **safe)


def explain_deviation(d: Mapping[str, Any], lang: str | None, observed: Any) -> str:
    """One deviation of a case page in plain language. ``d`` is a row of queries.case_detail's deviations
    (with ``next_step``/``next_activity`` of a stalled case, ``sla_*`` of a limit between two steps)."""
    kind = str(d.get("kind"))
    expected = d.get("expected")
    values = {"step": d.get("step_id"), "activity": d.get("activity"), "observed": observed,
              "expected": standard_text(None if _is_missing(expected) else str(expected), norm_lang(lang))}
    if kind == "stalled_case":
        if _is_missing(d.get("next_step")):  # the default standard (no next step has one), or older results
            return explain("stalled_case_default", lang, **values)
        return explain(kind, lang, next_step=d.get("next_step"), next_activity=d.get("next_activity"), **values)
    if kind == "case_sla_breach" and (not _is_missing(d.get("sla_from")) or _flag(d.get("between_steps"))):
        if _is_missing(d.get("sla_from")):
            return explain("sla_unknown", lang, **values)
        text = explain("sla_between", lang, sla_from=d.get("sla_from"), sla_to=d.get("sla_to"), **values)
        if not _is_missing(d.get("sla_text")) and d.get("sla_text"):
            text += " " + t("explain.sla_text", lang, text=d.get("sla_text"))
        return text
    return explain(kind, lang, **values)


# --------------------------------------------------------------------------------------- formats


def _flag(value: Any) -> bool:
    return not _is_missing(value) and value is not pd.NA and bool(value)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT


def fmt_int(value: Any, lang: str | None = DEFAULT) -> str:
    """``1234`` -> ``1.234`` (id) or ``1,234`` (en)."""
    if _is_missing(value):
        return "-"
    text = f"{round(float(value)):,}"
    return text.replace(",", ".") if norm_lang(lang) == "id" else text


def fmt_num(value: Any, digits: int = 1, lang: str | None = DEFAULT) -> str:
    """``2.5`` -> ``2,5`` (id); thousands with a dot."""
    if _is_missing(value):
        return "-"
    text = f"{float(value):,.{digits}f}"
    if norm_lang(lang) == "id":
        text = text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")
    return text


def fmt_pct(value: Any, digits: int = 1, lang: str | None = DEFAULT) -> str:
    return "-" if _is_missing(value) else fmt_num(float(value) * 100, digits, lang) + "%"


def fmt_date(value: Any, lang: str | None = DEFAULT, *, time: bool = False, tz: str | None = None) -> str:
    """``16 Jan 2026`` (and ``09:30`` with ``time``), in ``tz`` when given."""
    if _is_missing(value):
        return "-"
    ts = pd.Timestamp(value)
    if tz and ts.tzinfo is not None:
        ts = ts.tz_convert(tz)
    out = f"{ts.day} {MONTHS[norm_lang(lang)][ts.month - 1]} {ts.year}"
    return out + ts.strftime(" %H:%M") if time else out


def fmt_month(period: str | None, lang: str | None = DEFAULT) -> str:
    """``2026-01`` -> ``Jan 2026``."""
    if not period:
        return "-"
    try:
        day = dt.datetime.strptime(period[:7], "%Y-%m")
    except ValueError:
        return period
    return f"{MONTHS[norm_lang(lang)][day.month - 1]} {day.year}"


def fmt_duration(value: Any, measure: str | None, lang: str | None = DEFAULT) -> str:
    """A duration in the unit of a standard: working minutes (as min or hours), working days, elapsed."""
    if _is_missing(value):
        return "-"
    v = float(value)
    if measure == "working_days":
        return f"{fmt_num(v, 1, lang)} {t('unit.working_days', lang)}"
    if measure == "elapsed_minutes":
        if v >= 2 * 1440:
            return f"{fmt_num(v / 1440, 1, lang)} {t('unit.elapsed_days', lang)}"
        if v >= 120:  # a 1×24 jam standard: "45,5 jam", not "2.729 menit"
            return f"{fmt_num(v / 60, 1, lang)} {t('unit.elapsed_hours', lang)}"
        return f"{fmt_int(v, lang)} {t('unit.elapsed_minutes', lang)}"
    if v >= 120:
        return f"{fmt_num(v / 60, 1, lang)} {t('unit.hours', lang)}"
    return f"{fmt_int(v, lang)} {t('unit.working_minutes', lang)}"


def observed_text(observed: Any, detail: Any, lang: str | None = DEFAULT) -> str | None:
    """What was observed, readable: a duration from the detail JSON in its measure's unit, else as stored."""
    try:
        data = json.loads(detail) if isinstance(detail, str) else (detail or {})
    except ValueError:
        data = {}
    if isinstance(data, dict):
        value = data.get("duration", data.get("idle"))
        if data.get("measure") and isinstance(value, int | float):
            return fmt_duration(value, str(data["measure"]), lang)
        if isinstance(data.get("path"), list):  # escalation rule: the levels in the order they took the case
            return " → ".join(LEVEL_LABELS.get(str(level), str(level)) for level in data["path"])
        if isinstance(data.get("score"), int | float) and isinstance(data.get("pass_mark"), int | float):
            problem = t(f"rule.{data.get('problem')}", lang) if data.get("problem") else ""
            return (f"{fmt_num(data['score'], 1, lang)} < KKM {fmt_num(data['pass_mark'], 1, lang)}"
                    + (f" ({problem})" if problem else ""))
    return None if _is_missing(observed) or observed == "" else str(observed)


LEVEL_LABELS = {"guru_mapel": "Guru Mapel", "wali_kelas": "Wali Kelas", "guru_bk": "Guru BK"}


def short(text: Any, n: int = 38) -> str:
    """``text`` cut to ``n`` characters with an ellipsis."""
    s = "" if _is_missing(text) else str(text)
    return s if len(s) <= n else s[: n - 1].rstrip() + "\u2026"


def _middle(text: str, n: int) -> str:
    """``text`` cut in the middle, keeping its start and its end (where long titles that share a start
    differ: "Administrasi Layanan Bimbingan … bagi Pegawai")."""
    if len(text) <= n:
        return text
    tail = max(8, (n - 1) * 2 // 5)
    return text[: n - 1 - tail].rstrip() + "\u2026" + text[-tail:].lstrip()


def sop_label(number: Any, title: Any) -> str:
    """An SOP as people cite it: its number and title (``9.1.19/2010 · Evaluasi``), or the title alone."""
    title_text = "" if _is_missing(title) else str(title)
    return f"{number} \u00b7 {title_text}" if not _is_missing(number) and str(number).strip() else title_text


def unique_labels(full: dict[str, str], width: int | None = None) -> dict[str, str]:
    """Labels (id -> text), each at most ``width`` characters, that no two ids share: a chart's category axis
    merges equal labels into one row, and a dropdown cannot tell them apart. Labels that collide once cut
    keep their end instead; those still equal get their id."""
    out = {k: short(v, width) if width else v for k, v in full.items()}
    counts: dict[str, int] = {}
    for label in out.values():
        counts[label] = counts.get(label, 0) + 1
    if width:
        out = {k: _middle(full[k], width) if counts[v] > 1 else v for k, v in out.items()}
        counts = {}
        for label in out.values():
            counts[label] = counts.get(label, 0) + 1
    tails = [k.rsplit("/", 1)[-1] for k in out]
    tail_ok = len(set(tails)) == len(tails)  # SOP ids: "<institution>/<sop>", the SOP part names it
    return {k: f"{v} [{k.rsplit('/', 1)[-1] if tail_ok else k}]" if counts[v] > 1 else v for k, v in out.items()}


def plotly_separators(lang: str | None) -> str:
    """Plotly's ``separators``: decimal then thousands."""
    return ",." if norm_lang(lang) == "id" else ".,"
