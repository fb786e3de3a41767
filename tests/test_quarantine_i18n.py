"""Quarantine messages in Bahasa Indonesia first, English second: every refused row has a ``pesan`` naming the
file, the line, the column and the value as its English ``message`` does; ``patuh quarantine`` shows it first
and ``--out`` writes both (real DuckDB files, the real CLI)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from pipeline.rule_inputs import EXPECTED_ID, INPUTS
from tests.cli_process import patuh

KEY = "test-secret-for-quarantine-pesan"
SOP = ("--institution", "smpn2-ngawi", "--sop", "smpn2-ngawi/bk001-prosedur")


def _messages(db: Path) -> dict[int, tuple[str, str, str]]:
    """source_row -> (reason, pesan, message)."""
    with duckdb.connect(str(db), read_only=True) as conn:
        rows = conn.execute("SELECT source_row, reason, pesan, message FROM quarantine ORDER BY source_row").fetchall()
    return {int(r[0]): (str(r[1]), str(r[2]), str(r[3])) for r in rows}


def _ingest(tmp_path: Path, text: str, *extra: str) -> tuple[Path, dict[int, tuple[str, str, str]]]:
    export = tmp_path / "ekspor.csv"
    export.write_text(text, encoding="utf-8")
    db = tmp_path / "t.duckdb"
    out = patuh("ingest", str(export), *SOP, *extra, "--db", str(db), secret=KEY)
    assert out.returncode == 0, out.stderr
    return db, _messages(db)


def test_every_kind_of_bad_row_has_an_indonesian_message(tmp_path: Path) -> None:
    db, got = _ingest(tmp_path, "case_id,activity,ts_start,ts_end\n"
                                "K1,s1,2025-10-03 08:00,2025-10-03 09:00\n"       # line 2: loads
                                ",s1,2025-10-03 08:00,2025-10-03 09:00\n"         # 3: no case id
                                "K2,,2025-10-03 08:00,2025-10-03 09:00\n"         # 4: no activity
                                "K3,s1,2025-10-03 08:00,\n"                       # 5: no end time
                                "K4,s1,2025-10-03 08:00,bukan tanggal\n"          # 6: unreadable
                                "K5,s1,2025-10-03 10:00,2025-10-03 09:00\n"       # 7: end before start
                                "K6,s1,1999-10-03 08:00,1999-10-03 09:00\n"       # 8: out of range
                                "K7,s1,2025-10-03 08:00,2025-10-03 09:00,lebih\n"  # 9: ragged
                                "K8,s1,2025-10-03 08:00,2025-10-03 09:00\n")
    assert {row: reason for row, (reason, _, _) in got.items()} == {
        3: "missing_case_id", 4: "missing_activity", 5: "missing_timestamp", 6: "bad_timestamp",
        7: "end_before_start", 8: "out_of_range", 9: "ragged_line"}
    expected_pesan = {
        3: "ekspor.csv: baris 3: kolom 'case_id': setiap kegiatan memerlukan nomor kasusnya: isi nomornya atau "
           "hapus baris ini",
        4: "ekspor.csv: baris 4: kolom 'activity': setiap kegiatan memerlukan nama kegiatannya",
        5: "ekspor.csv: baris 5: kolom 'ts_end': setiap kegiatan memerlukan tanggal dan waktu (seperti 2020-01-16",
        6: "ekspor.csv: baris 6: kolom 'ts_end': 'bukan tanggal' bukan tanggal dan waktu; gunakan bentuk seperti "
           "2020-01-16 08:30",
        7: "ekspor.csv: baris 7: kolom 'ts_end': waktu selesai lebih awal dari waktu mulai",
        8: "ekspor.csv: baris 8: kolom 'ts_end': 1999-10-03 09:00: tanggal sebelum tahun 2000 atau di masa depan",
        9: "ekspor.csv: baris 9: kolom terlalu banyak: Expected Number of Columns: 4 Found: 5; setiap baris harus "
           "berisi nilai sebanyak kolom pada baris judul",
    }
    for row, start in expected_pesan.items():
        reason, pesan, message = got[row]
        assert pesan.startswith(start), (reason, pesan)
        # the English message stays as it was, at the same line
        assert message.startswith(f"ekspor.csv: line {row}: "), message
        assert " line " not in pesan and " column " not in pesan and "fix" not in pesan
    assert "date_formats" in got[6][1] and "periksa tahunnya" in got[8][1]
    assert "ekspor.csv: line 8: column 'ts_end': 1999-10-03 09:00: the date is before 2000" in got[8][2]

    shown = patuh("quarantine", "--db", str(db), secret=KEY, columns=120)
    assert shown.returncode == 0, shown.stderr
    flat = " ".join(shown.stdout.replace("│", " ").split())
    assert max(len(line) for line in shown.stdout.splitlines()) <= 120 and "…" not in shown.stdout
    first = shown.stdout.index("nomor kasusnya")
    assert first < shown.stdout.index("every event needs its case number")  # Indonesian first, English second
    assert "waktu selesai lebih awal dari waktu mulai" in flat and "the end is before the start" in flat

    csv = tmp_path / "karantina.csv"
    written = patuh("quarantine", "--out", str(csv), "--db", str(db), secret=KEY)
    assert written.returncode == 0 and "(7 baris / rows)" in written.stdout, written.stderr
    frame = pd.read_csv(csv, encoding="utf-8-sig")
    assert list(frame.columns) == ["batch_id", "source_file", "source_row", "reason", "pesan", "message", "raw"]
    for row in frame.itertuples(index=False):
        assert (row.pesan, row.message) == got[int(row.source_row)][1:]


def test_date_and_time_of_day_layout_has_indonesian_messages(tmp_path: Path) -> None:
    mapping = tmp_path / "map.yaml"
    mapping.write_text("columns:\n  case_id: No Kasus\n  activity: Kegiatan\n  date: Tanggal\n  start: Mulai\n"
                       "  end: Selesai\n", encoding="utf-8")
    _, got = _ingest(tmp_path, "No Kasus,Kegiatan,Tanggal,Mulai,Selesai\n"
                                "K1,s1,03/10/2025,08:00,09:00\n"          # line 2: loads
                                "K2,s1,31/02/2025,08:00,09:00\n"          # 3: no such day
                                "K3,s1,,08:00,09:00\n"                    # 4: a time without a date
                                "K4,s1,03/10/2025,08:00,sore\n"           # 5: not a time of day
                                "K5,s1,03/10/2025,10:00,09:00\n",         # 6: end before start
                      "--mapping", str(mapping))
    assert {row: reason for row, (reason, _, _) in got.items()} == {
        3: "bad_timestamp", 4: "missing_timestamp", 5: "bad_timestamp", 6: "end_before_start"}
    assert got[3][1].startswith("ekspor.csv: baris 3: kolom 'Tanggal': '31/02/2025' bukan tanggal; gunakan bentuk "
                                "seperti 2020-01-16, 16/01/2020")
    assert got[3][2].startswith("ekspor.csv: line 3: column 'Tanggal': '31/02/2025' is not a date")
    assert got[4][1] == ("ekspor.csv: baris 4: kolom 'Tanggal': setiap kegiatan memerlukan tanggalnya (kolom "
                         "'Tanggal') dan waktunya: isi keduanya")
    assert got[5][1].startswith("ekspor.csv: baris 5: kolom 'Selesai': 'sore' bukan jam; pemetaan mengambil "
                                "tanggal dari kolom 'Tanggal'")
    assert "hapus 'date' dari pemetaan" in got[5][1]
    assert "keduanya pada tanggal di kolom 'Tanggal'" in got[6][1] and "end_date" in got[6][1]


def test_a_time_of_day_without_a_date_column_asks_for_it_in_indonesian(tmp_path: Path) -> None:
    _, got = _ingest(tmp_path, "case_id,activity,timestamp,Tanggal\n"
                                "K1,s1,2025-10-03 08:00,03/10/2025\n"
                                "K2,s1,pukul 08.30,03/10/2025\n")
    (reason, pesan, message), = got.values()
    assert reason == "bad_timestamp"
    assert pesan == ("ekspor.csv: baris 3: kolom 'timestamp': 'pukul 08.30' adalah jam tanpa tanggal; petakan juga "
                     "kolom tanggalnya: tambahkan 'date: Tanggal' di bawah columns dalam berkas pemetaan (patuh map "
                     "suggest FILE menuliskannya), lalu muat ulang berkas dengan --replace")
    assert message.startswith("ekspor.csv: line 3: column 'timestamp': 'pukul 08.30' is a time of day without a date")


def test_a_rule_input_row_has_an_indonesian_message(tmp_path: Path) -> None:
    path = tmp_path / "layanan.csv"
    path.write_text("No Kasus,NIS,Topik,Ditangani Oleh,Waktu\n"
                    "K1,ANI,kehadiran,Guru Mapel,05/09/2025 08:00\n"
                    "K2,BUDI,kehadiran,Kepala Sekolah,05/09/2025 08:00\n"
                    ",CITRA,kehadiran,Guru Mapel,05/09/2025 08:00\n"
                    "K4,DEWI,kehadiran,Guru Mapel,kemarin\n", encoding="utf-8")
    db = tmp_path / "t.duckdb"
    ok = patuh("rule-input", str(path), "--input", "escalation_events", "--institution", "smkn1-petasia",
               "--db", str(db), secret=KEY)
    assert ok.returncode == 0, ok.stderr
    got = _messages(db)
    assert got[3] == ("bad_role",
                      "layanan.csv, baris 3, kolom 'Ditangani Oleh': Kepala Sekolah bukan guru mapel, wali kelas atau "
                      "guru BK; perbaiki nilainya",
                      "layanan.csv, line 3, column 'Ditangani Oleh': Kepala Sekolah is not guru mapel, wali kelas or "
                      "guru BK; correct it")
    assert got[4][1] == "layanan.csv, baris 4, kolom 'No Kasus': kosong; isi dengan nomor kasus"
    assert got[5][1] == ("layanan.csv, baris 5, kolom 'Waktu': kemarin bukan tanggal dan waktu seperti "
                         "2026-08-17 09:30 atau 17/08/2026 09:30; perbaiki nilainya")
    shown = patuh("quarantine", "--db", str(db), secret=KEY, columns=120)
    assert shown.returncode == 0 and "isi dengan nomor kasus" in " ".join(shown.stdout.replace("│", " ").split())
    csv = tmp_path / "karantina.csv"
    assert patuh("quarantine", "--out", str(csv), "--db", str(db), secret=KEY).returncode == 0
    frame = pd.read_csv(csv, encoding="utf-8-sig")
    assert dict(zip(frame["source_row"], frame["pesan"], strict=True))[3] == got[3][1]


def test_every_expected_form_of_the_rule_inputs_has_indonesian_words() -> None:
    missing = {c.expected for spec in INPUTS.values() for c in spec.columns if c.expected} - set(EXPECTED_ID)
    assert not missing


def test_a_database_from_before_pesan_gets_the_column_and_shows_the_english_message(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    from pipeline.db import connect

    connect(db).close()
    with duckdb.connect(str(db)) as conn:
        conn.execute("ALTER TABLE quarantine DROP COLUMN pesan")
        conn.execute("INSERT INTO batches (batch_id, source_file, sha256, institution_id, sop_id, format, loaded_at, "
                     "rows_in, rows_loaded, rows_quarantined) VALUES (1, 'lama.csv', 'x', 'smpn2-ngawi', NULL, 'csv', "
                     "now(), 1, 0, 1)")
        conn.execute("INSERT INTO quarantine (batch_id, source_row, reason, message) "
                     "VALUES (1, 2, 'missing_activity', 'lama.csv: line 2: old message')")
    shown = patuh("quarantine", "--db", str(db), secret=KEY)  # read-only: the column is not there yet
    assert shown.returncode == 0 and "lama.csv: line 2: old message" in shown.stdout, shown.stderr
    connect(db).close()  # read-write: the schema adds it
    csv = tmp_path / "karantina.csv"
    assert patuh("quarantine", "--out", str(csv), "--db", str(db), secret=KEY).returncode == 0
    frame = pd.read_csv(csv, encoding="utf-8-sig")
    assert list(frame["pesan"]) == list(frame["message"]) == ["lama.csv: line 2: old message"]


def test_an_xlsx_row_is_named_by_its_sheet_and_row_in_indonesian(tmp_path: Path) -> None:
    import openpyxl

    from pipeline.db import connect
    from pipeline.ingest import ingest_file

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Kasus"
    for row in (("case_id", "activity", "timestamp"), ("K1", "s1", "2025-10-03 08:00"), ("K2", "s1", "kemarin")):
        sheet.append(row)
    book.save(tmp_path / "rekap.xlsx")
    conn = connect(tmp_path / "t.duckdb")
    ingest_file(conn, tmp_path / "rekap.xlsx", institution_id="smpn2-ngawi", sop_id=None, key=KEY.encode())
    ((pesan, message),) = conn.execute("SELECT pesan, message FROM quarantine").fetchall()
    conn.close()
    assert pesan.startswith("rekap.xlsx: lembar 'Kasus' baris 3: kolom 'timestamp': 'kemarin' bukan tanggal dan waktu")
    assert message.startswith("rekap.xlsx: sheet 'Kasus' row 3: column 'timestamp': 'kemarin' is not a date and time")
