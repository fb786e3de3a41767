"""The pseudonymisation key (README "Privacy"): long enough, the same for every load of a database (its fingerprint
is kept there), a key file only its owner can change, and files Patuh writes readable by their owner only.

Every test runs the real ``patuh`` command on real DuckDB files, as a user would."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipeline.config import MIN_SECRET_BYTES, load_key
from pipeline.db import connect
from pipeline.errors import UserError
from pipeline.ingest import ingest_file, pseudonym
from tests.cli_process import patuh

MESSY = Path(__file__).parent / "fixtures" / "messy"
KEY_A = "key-a-for-the-pseudonym-key-tests-0001"
KEY_B = "key-b-for-the-pseudonym-key-tests-0002"
SOP = ("--institution", "smpn2-ngawi", "--sop", "smpn2-ngawi/bk001-prosedur",
       "--mapping", str(MESSY / "kasus_bk.mapping.yaml"))


def said(out: subprocess.CompletedProcess[str]) -> str:
    """stderr with its line breaks (a terminal's wrapping) folded into spaces."""
    return " ".join(out.stderr.split())


def refused(out: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """A refusal as a user sees it: exit 1, the Indonesian line first, then the English one, no traceback."""
    assert out.returncode == 1, (out.stdout, out.stderr)
    text = said(out)
    assert "Traceback" not in out.stderr
    assert text.startswith("Galat:") and " Error: " in text, text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


def second_export(tmp_path: Path) -> Path:
    """The next export of the same cases: one more event of case K-001 (so another file, another sha256)."""
    path = tmp_path / "kasus_bk_februari.csv"
    text = (MESSY / "kasus_bk.csv").read_text(encoding="utf-8")
    path.write_text(text.rstrip("\n") + "\nK-001,Budi Santoso,Lapor Kepala Sekolah,03/02/2020 09:00,Siti Aminah,"
                    "Kepala Sekolah,Laporan,\n", encoding="utf-8")
    return path


def attendance_csv(path: Path) -> Path:
    path.write_text("NIS,Tanggal,Status\nK-001,01/09/2025,H\n", encoding="utf-8")
    return path


def contents(db: Path, tables: tuple[str, ...] = ("batches", "events", "cases", "quarantine", "attendance")
             ) -> dict[str, list[tuple[object, ...]]]:
    conn = duckdb.connect(str(db), read_only=True)
    try:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
    finally:
        conn.close()


def fingerprints(db: Path) -> list[str]:
    return [str(row[0]) for row in contents(db, ("key_check",))["key_check"]]


# ----------------------------------------------------------------------------------------- 1. key length


@pytest.mark.parametrize("secret", ["x", " " * 40, "k" * (MIN_SECRET_BYTES - 1), " ab \n"])
def test_a_short_patuh_secret_is_refused_before_anything_is_written(tmp_path: Path, secret: str) -> None:
    """HMAC with an empty or one-character key is a plain hash of a student number: enumerable."""
    db = tmp_path / "data" / "patuh.duckdb"
    out = patuh("ingest", str(MESSY / "kasus_bk.csv"), *SOP, "--db", str(db), secret=secret)
    refused(out, "Galat: PATUH_SECRET terlalu pendek", "Error: PATUH_SECRET is too short",
            f"at least {MIN_SECRET_BYTES}", 'python -c "import secrets; print(secrets.token_hex(32))"')
    assert not db.exists()
    rule = patuh("attendance", str(attendance_csv(tmp_path / "absen.csv")), "--institution", "smkn1-petasia",
                 "--db", str(db), secret=secret)
    refused(rule, "PATUH_SECRET is too short")
    assert not db.exists()


def test_a_secret_of_32_bytes_is_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATUH_SECRET", "k" * MIN_SECRET_BYTES)
    assert load_key().key == b"k" * MIN_SECRET_BYTES
    monkeypatch.setenv("PATUH_SECRET", " " + "k" * (MIN_SECRET_BYTES - 1) + " ")  # counted without the spaces
    with pytest.raises(UserError, match="PATUH_SECRET is too short"):
        load_key()


@pytest.mark.parametrize("content", [b"", b"  \n\t\n", b"abc\n"])
def test_an_empty_or_short_key_file_is_refused(tmp_path: Path, content: bytes) -> None:
    key_file = tmp_path / "secret.key"
    key_file.write_bytes(content)
    key_file.chmod(0o600)
    db = tmp_path / "patuh.duckdb"
    out = patuh("ingest", str(MESSY / "kasus_bk.csv"), *SOP, "--db", str(db), secret=None,
                env={"PATUH_KEY_FILE": str(key_file)})
    refused(out, f"Galat: {key_file}: berkas kunci pseudonimisasi", f"Error: {key_file}: the pseudonymisation key file",
            f"at least {MIN_SECRET_BYTES}", "token_hex(32)", "delete the file", "does not link new loads")
    assert not db.exists()
    assert key_file.read_bytes() == content  # never replaced behind the user's back


def test_the_key_file_is_made_on_first_use_for_its_owner_only(tmp_path: Path) -> None:
    key_file = tmp_path / "home" / ".config" / "patuh" / "secret.key"
    db = tmp_path / "patuh.duckdb"
    out = patuh("ingest", str(MESSY / "kasus_bk.csv"), *SOP, "--db", str(db), secret=None,
                env={"PATUH_KEY_FILE": str(key_file)})
    assert out.returncode == 0, out.stderr
    assert len(key_file.read_bytes()) == 64 and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    again = patuh("ingest", str(second_export(tmp_path)), *SOP, "--db", str(db), secret=None,
                  env={"PATUH_KEY_FILE": str(key_file)})
    assert again.returncode == 0 and "Warning" not in again.stderr, again.stderr


# -------------------------------------------------------------------------------------- 2. key fingerprint


def test_a_load_with_another_key_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    """Another key would give the same students new pseudonyms: every case split in two."""
    db = tmp_path / "patuh.duckdb"
    first = patuh("ingest", str(MESSY / "kasus_bk.csv"), *SOP, "--db", str(db), secret=KEY_A)
    assert first.returncode == 0, first.stderr
    before = contents(db)

    february = second_export(tmp_path)
    out = patuh("ingest", str(february), *SOP, "--db", str(db), secret=KEY_B)
    refused(out, f"Galat: {db}: data di basis data ini dipseudonimkan dengan kunci lain, bukan kunci dari "
                 "PATUH_SECRET", f"Error: {db}: the data in this database was pseudonymised with another key than "
            "the one from PATUH_SECRET", "split every case in two", "Nothing was loaded",
            "PATUH_SECRET=<that key>", "PATUH_KEY_FILE=<the file holding it>")
    assert contents(db) == before
    rule = patuh("attendance", str(attendance_csv(tmp_path / "absen.csv")), "--institution", "smkn1-petasia",
                 "--db", str(db), secret=KEY_B)
    refused(rule, "pseudonymised with another key than the one from PATUH_SECRET")
    assert contents(db) == before

    # the key used before links the new events to the same case
    same = patuh("ingest", str(february), *SOP, "--db", str(db), secret=KEY_A)
    assert same.returncode == 0, same.stderr
    after = contents(db)
    assert len(after["cases"]) == len(before["cases"]) and len(after["events"]) == len(before["events"]) + 1
    # the fingerprint, HMAC(key, "patuh-key-check"), is kept; the key itself never
    assert fingerprints(db) == [hmac.new(KEY_A.encode(), b"patuh-key-check", hashlib.sha256).hexdigest()]
    assert KEY_A.encode() not in db.read_bytes()


def test_another_users_new_key_file_is_refused(tmp_path: Path) -> None:
    """A second Unix user (or a cron job) loading into the same database gets its own key file on first use."""
    db = tmp_path / "shared" / "patuh.duckdb"
    mine, theirs = tmp_path / "budi" / "secret.key", tmp_path / "cron" / "secret.key"
    first = patuh("ingest", str(MESSY / "kasus_bk.csv"), *SOP, "--db", str(db), secret=None,
                  env={"PATUH_KEY_FILE": str(mine)})
    assert first.returncode == 0, first.stderr
    before = contents(db)
    out = patuh("ingest", str(second_export(tmp_path)), *SOP, "--db", str(db), secret=None,
                env={"PATUH_KEY_FILE": str(theirs)})
    refused(out, f"another key than the one from the key file {theirs} (PATUH_KEY_FILE), which did not exist and "
                 f"was made just now with a new key (delete {theirs} once the key of the earlier loads is given)",
            f"berkas kunci {theirs} (PATUH_KEY_FILE), yang belum ada dan baru saja dibuat")
    assert contents(db) == before


def test_a_rule_input_records_the_key_too(tmp_path: Path) -> None:
    """The first load may be a rule input: an event log with another key after it is refused."""
    db = tmp_path / "patuh.duckdb"
    rule = patuh("attendance", str(attendance_csv(tmp_path / "absen.csv")), "--institution", "smkn1-petasia",
                 "--db", str(db), secret=KEY_A)
    assert rule.returncode == 0, rule.stderr
    before = contents(db)
    out = patuh("ingest", str(MESSY / "kasus_bk.csv"), *SOP, "--db", str(db), secret=KEY_B)
    refused(out, "pseudonymised with another key")
    assert contents(db) == before and len(fingerprints(db)) == 1


def test_a_database_from_before_the_fingerprint_gets_one(tmp_path: Path) -> None:
    """connect() adds the key_check table to an older file; its next load records the key it uses."""
    db = tmp_path / "patuh.duckdb"
    conn = connect(db)
    mapped: dict[str, Any] = {"institution_id": "smpn2-ngawi", "sop_id": "smpn2-ngawi/bk001-prosedur",
              "mapping": MESSY / "kasus_bk.mapping.yaml"}
    ingest_file(conn, MESSY / "kasus_bk.csv", **mapped, key=KEY_A.encode())
    conn.execute("DROP TABLE key_check")  # as a file written before the table existed
    conn.close()
    conn = connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM key_check").fetchall() == [(0,)]
        ingest_file(conn, second_export(tmp_path), **mapped, key=KEY_A.encode())
        assert conn.execute("SELECT count(*) FROM key_check").fetchall() == [(1,)]
        with pytest.raises(UserError, match="another key than the one from the key given by the caller"):
            ingest_file(conn, MESSY / "latin1.csv", institution_id="smpn2-ngawi", key=KEY_B.encode())
        (n,) = conn.execute("SELECT count(*) FROM events WHERE case_id = ?",
                            [pseudonym("K-001", KEY_A.encode())]).fetchall()[0]
        assert n > 1
    finally:
        conn.close()


# ------------------------------------------------------------------------------------ 3. key file mode


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602])
def test_a_key_file_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    """Whoever can write the key file can put in a key of their own."""
    key_file = tmp_path / "secret.key"
    key_file.write_text(KEY_A, encoding="ascii")
    key_file.chmod(mode)
    db = tmp_path / "patuh.duckdb"
    out = patuh("ingest", str(MESSY / "kasus_bk.csv"), *SOP, "--db", str(db), secret=None,
                env={"PATUH_KEY_FILE": str(key_file)})
    refused(out, f"Error: {key_file}: the pseudonymisation key file is writable by other users (mode {mode:04o})",
            f"chmod 600 {key_file}", "PATUH_SECRET", "Galat: ")
    assert not db.exists()


def test_a_key_file_others_can_read_is_used_with_a_warning(tmp_path: Path) -> None:
    key_file = tmp_path / "secret.key"
    key_file.write_text(KEY_A, encoding="ascii")
    key_file.chmod(0o644)
    db = tmp_path / "patuh.duckdb"
    out = patuh("ingest", str(MESSY / "kasus_bk.csv"), *SOP, "--db", str(db), secret=None,
                env={"PATUH_KEY_FILE": str(key_file)})
    assert out.returncode == 0, out.stderr
    text = said(out)
    assert (f"Peringatan: {key_file}: berkas kunci pseudonimisasi dapat dibaca pengguna lain (mode 0644)" in text
            and f"Warning: {key_file}: the pseudonymisation key file is readable by other users (mode 0644)" in text
            and f"chmod 600 {key_file}" in text), text
    assert text.count("Warning:") == 1
    key_file.chmod(0o600)
    quiet = patuh("ingest", str(second_export(tmp_path)), *SOP, "--db", str(db), secret=None,
                  env={"PATUH_KEY_FILE": str(key_file)})
    assert quiet.returncode == 0 and "Warning" not in quiet.stderr, quiet.stderr


def test_key_file_errors_say_it_is_the_key_file(tmp_path: Path) -> None:
    """Not just "Error: /tmp/x: Is a directory": which file, what it is for, and how to give another."""
    folder = tmp_path / "kunci"
    folder.mkdir()
    blocker = tmp_path / "a-file"
    blocker.write_text("x", encoding="utf-8")
    for key_file, reason, alasan in [(folder, "Is a directory", "sebuah folder, bukan berkas"),
                                     (blocker / "secret.key", "Not a directory", "bukan sebuah folder")]:
        out = patuh("ingest", str(MESSY / "kasus_bk.csv"), *SOP, "--db", str(tmp_path / "patuh.duckdb"),
                    secret=None, env={"PATUH_KEY_FILE": str(key_file)})
        refused(out, f"Galat: {key_file}: berkas kunci pseudonimisasi tidak dapat dipakai ({alasan})",
                f"Error: {key_file}: cannot use the pseudonymisation key file ({reason}); set PATUH_KEY_FILE",
                "PATUH_SECRET")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_key_file_says_it_is_the_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "secret.key"
    key_file.write_text(KEY_A, encoding="ascii")
    key_file.chmod(0o000)
    out = patuh("ingest", str(MESSY / "kasus_bk.csv"), *SOP, "--db", str(tmp_path / "patuh.duckdb"), secret=None,
                env={"PATUH_KEY_FILE": str(key_file)})
    refused(out, f"{key_file}: cannot use the pseudonymisation key file (Permission denied)", "tidak ada izin")


# --------------------------------------------------------------------------------------- 4. file modes


@contextmanager
def permissive_umask() -> Iterator[None]:
    """The usual shell umask (022: new files readable by every user), inherited by the ``patuh`` process."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def private(root: Path) -> list[str]:
    """The files and folders under ``root`` that users other than their owner can read, write or enter."""
    return [f"{p} {stat.S_IMODE(p.stat().st_mode):04o}" for p in [root, *root.rglob("*")]
            if stat.S_IMODE(p.stat().st_mode) & 0o077]


def test_the_database_and_a_quarantine_csv_are_for_their_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with permissive_umask():
        out = patuh("ingest", str(MESSY / "kasus_bk.csv"), *SOP, "--db", str(data / "patuh.duckdb"), secret=KEY_A)
        assert out.returncode == 0, out.stderr
        csv = tmp_path / "keluar" / "karantina.csv"
        written = patuh("quarantine", "--out", str(csv), "--db", str(data / "patuh.duckdb"), secret=KEY_A)
        assert written.returncode == 0, written.stderr
    assert (data / "patuh.duckdb").is_file() and csv.is_file()
    assert private(data) == [] and private(csv.parent) == []


def test_the_demos_files_are_for_their_owner_only(tmp_path: Path) -> None:
    """`patuh demo`: logs, database, published results and reports (the same entry point as `patuh serve`)."""
    data = tmp_path / "data"
    with permissive_umask():
        out = patuh("demo", "--cases", "200", "--no-serve", "--db", str(data / "patuh.duckdb"), secret=None,
                    env={"PATUH_KEY_FILE": str(tmp_path / "secret.key")})
    assert out.returncode == 0, out.stderr
    assert list((data / "reports").glob("*.html")) and list((data / "published").glob("*.duckdb"))
    assert private(data) == []
