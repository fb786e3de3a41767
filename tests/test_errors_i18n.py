"""A user's mistake is told in Bahasa Indonesia first and English second (``Galat: ...`` then ``Error: ...``).

Every :class:`UserError` carries both texts: ``str(exc)`` is the English one, ``exc.pesan`` the Indonesian one.
"""

from __future__ import annotations

import errno
import pickle
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline.errors import NotFoundError, UserError, os_reason, read_text_file, validation_errors, yaml_error
from tests.cli_process import patuh
from tests.source_calls import calls_to, is_empty

ROOT = Path(__file__).resolve().parents[1]


def _said(stderr: str) -> tuple[str, str]:
    """The Indonesian and the English message of a CLI error (lines a narrow terminal wrapped are joined)."""
    text = " ".join(stderr.split())
    assert text.startswith("Galat: "), stderr  # Indonesian first ...
    assert text.count(" Error: ") == 1 and "Galat / Error" not in text, stderr  # ... then English, once
    galat, error = text.removeprefix("Galat: ").split(" Error: ")
    return galat, error


def test_cli_tells_an_unknown_institution_in_both_languages() -> None:
    out = patuh("sop", "list", "--institution", "smpn2-ngawai", secret="x" * 32)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    galat, error = _said(out.stderr)
    assert galat.startswith("lembaga 'smpn2-ngawai' tidak dikenal; yang dikenal: ") and "smpn2-ngawi" in galat
    assert error.startswith("unknown institution 'smpn2-ngawai'; known: ") and "smpn2-ngawi" in error


def test_cli_tells_an_unsupported_file_type_in_both_languages(tmp_path: Path) -> None:
    memo = tmp_path / "memo.docx"
    memo.write_text("bukan log", encoding="utf-8")
    out = patuh("ingest", str(memo), "--institution", "smpn2-ngawi", "--db", str(tmp_path / "t.duckdb"),
                secret="x" * 32)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    galat, error = _said(out.stderr)
    assert galat.startswith("memo.docx: jenis berkas .docx tidak didukung; yang didukung: .csv, ")
    assert "(dari spreadsheet: simpan sebagai .xlsx atau .csv)" in galat
    assert error.startswith("memo.docx: unsupported file type .docx; expected .csv, ")


def test_cli_tells_a_csv_without_the_needed_columns_in_both_languages(tmp_path: Path) -> None:
    export = tmp_path / "ekspor.csv"
    export.write_text("nomor,kegiatan\n1,Konseling\n", encoding="utf-8")
    out = patuh("ingest", str(export), "--institution", "smpn2-ngawi", "--db", str(tmp_path / "t.duckdb"),
                secret="x" * 32)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    galat, error = _said(out.stderr)
    assert galat.startswith("ekspor.csv: kolom case_id atau activity tidak ditemukan (kolom: 'nomor', 'kegiatan')")
    assert "patuh map suggest FILE --sop ID > map.yaml" in galat  # the command verbatim
    assert error.startswith("ekspor.csv: no case_id or activity column found (columns: 'nomor', 'kegiatan')")


def test_cli_tells_a_bad_report_period_in_both_languages(tmp_path: Path) -> None:
    from tests.fixtures_published import RUN_ID, build_published_db

    build_published_db(tmp_path / "published" / f"{RUN_ID}.duckdb", cases_per_sop=5)
    out = patuh("report", "--all", "--period", "2026-13", "--db", str(tmp_path / "patuh.duckdb"), secret="x" * 32)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    galat, error = _said(out.stderr)
    assert galat == ("--period '2026-13' bukan periode: tulis bulan (2026-10), triwulan (2026-Q3), "
                     "semester (2026-S1) atau tahun (2026)")
    assert error.startswith("--period '2026-13' is not a period: write a month (2026-10)")


def _user_error_names() -> set[str]:
    """UserError and its subclasses (NotFoundError): the calls that must carry an Indonesian text."""
    found, todo = set(), [UserError]
    while todo:
        cls = todo.pop()
        found.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return found


def test_every_user_error_has_an_indonesian_text() -> None:
    """Each ``UserError(...)`` in pipeline/ and dashboards/ passes ``pesan=`` (re-raising an existing exception
    object, ``raise exc``, is no call and needs none)."""
    names = _user_error_names()
    calls, missing = 0, []
    for where, _node, given in calls_to(names):
        calls += 1
        if is_empty(given.get("pesan")):
            missing.append(where)
    assert calls > 90  # the scan found the calls
    assert not missing, f"UserError without pesan= (an Indonesian text): {missing}"


def test_user_error_keeps_english_as_its_text_and_indonesian_beside() -> None:
    exc = UserError("x.csv: no such file", pesan="x.csv: berkas tidak ditemukan", exit_code=3)
    assert str(exc) == exc.message == "x.csv: no such file" and exc.args == ("x.csv: no such file",)
    assert exc.pesan == "x.csv: berkas tidak ditemukan" and exc.exit_code == 3
    assert UserError("only English").pesan == "only English"  # the fallback
    again = pickle.loads(pickle.dumps(exc))  # e.g. from a worker process
    assert (str(again), again.pesan, again.exit_code) == (str(exc), exc.pesan, 3)


def test_an_unknown_sop_is_a_user_error_and_still_a_key_error() -> None:
    from pipeline.config import get_settings
    from pipeline.sop import load_catalogue

    with pytest.raises(KeyError) as caught:
        load_catalogue(get_settings().catalogue_dir).get("nope/missing")
    exc = caught.value
    assert isinstance(exc, NotFoundError) and isinstance(exc, UserError)
    assert str(exc).startswith("no SOP model 'nope/missing' in ")  # not KeyError's quoted repr
    assert exc.pesan.startswith("model SOP 'nope/missing' tidak ada di ") and "'patuh sop list'" in exc.pesan


def test_a_model_with_errors_and_a_misspelt_id_are_told_in_both_languages(tmp_path: Path) -> None:
    import re

    from pipeline.sop import load_catalogue

    source = ROOT / "sop_models" / "smpn2-ngawi" / "bk001-prosedur.yaml"
    (tmp_path / "smpn2-ngawi").mkdir()
    (tmp_path / "smpn2-ngawi" / source.name).write_text(
        re.sub(r'time: "[^"]*"', 'time: "segera"', source.read_text(encoding="utf-8")), encoding="utf-8")
    catalogue = load_catalogue(tmp_path)
    with pytest.raises(KeyError) as broken:
        catalogue.get("smpn2-ngawi/bk001-prosedur")
    exc = broken.value
    assert isinstance(exc, NotFoundError)
    assert str(exc).startswith("SOP model 'smpn2-ngawi/bk001-prosedur' cannot be used: its file ")
    assert exc.pesan.startswith("model SOP 'smpn2-ngawi/bk001-prosedur' tidak dapat dipakai: berkas ")
    assert "galat; jalankan 'patuh sop validate " in exc.pesan
    assert exc.pesan.endswith("(baris, isian, dan cara memperbaikinya)")
    with pytest.raises(NotFoundError) as misspelt:
        catalogue.get("smpn2-ngawi/bk001-prosedr")
    assert "(did you mean 'smpn2-ngawi/bk001-prosedur'?)" in str(misspelt.value)
    assert "(maksud Anda 'smpn2-ngawi/bk001-prosedur'?); lihat 'patuh sop list'" in misspelt.value.pesan


def test_helpers_build_both_languages(tmp_path: Path) -> None:
    bad = tmp_path / "map.yaml"
    bad.write_text("columns:\n  case_id: 'no\n", encoding="utf-8")
    try:
        yaml.safe_load(bad.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        err = yaml_error(bad, exc)
    assert "not valid YAML" in str(err) and "line " in str(err) and "check quoting and indentation" in str(err)
    assert f"{bad}, baris " in err.pesan and "bukan YAML yang valid" in err.pesan
    assert "periksa tanda kutip dan indentasi" in err.pesan

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid")
        n: int

    with pytest.raises(ValidationError) as caught:
        Strict.model_validate({"n": "x", "typo": 1})
    err = validation_errors("map.yaml", caught.value.errors(), "see README", "lihat README")
    assert str(err).startswith("map.yaml: n: ") and "(correct the value)" in str(err) and str(err).endswith(
        "; see README")
    assert "n: " in err.pesan and "(perbaiki nilainya)" in err.pesan and "(hapus, atau perbaiki ejaannya)" in err.pesan
    assert err.pesan.endswith("; lihat README")

    binary = tmp_path / "users.yaml"
    binary.write_bytes(b"\xff\xfe\x00bin")
    with pytest.raises(UserError) as read:
        read_text_file(binary, "users file", "berkas pengguna")
    assert "is it the users file?" in str(read.value) and "benarkah ini berkas pengguna?" in read.value.pesan
    with pytest.raises(UserError) as absent:
        read_text_file(tmp_path / "tidak-ada.yaml", "users file", "berkas pengguna")
    assert "cannot read the users file (No such file or directory)" in str(absent.value)
    assert "berkas pengguna tidak dapat dibaca (berkas atau folder tidak ada)" in absent.value.pesan


def test_os_reason_is_indonesian_and_falls_back_to_the_system_text() -> None:
    assert os_reason(OSError(errno.EACCES, "Permission denied")) == "tidak ada izin"
    assert os_reason(OSError(errno.ENOSPC, "No space left on device")) == "disk penuh"
    assert os_reason(OSError(errno.ECONNRESET, "Connection reset by peer")) == "Connection reset by peer"
