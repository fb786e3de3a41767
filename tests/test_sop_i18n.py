"""`patuh sop validate` tells every problem in Bahasa Indonesia first and English second.

Each :class:`~pipeline.sop.Problem` carries ``pesan`` and ``perbaikan`` (Indonesian) beside ``message`` and
``fix`` (English); the CLI prints ``file:line [langkah s2]: galat: pesan. Perbaikan: ...`` directly above
``file:line [step s2]: error: message. Fix: ...``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.calendars import load_institutions
from pipeline.errors import UserError, pilihan, pydantic_pesan
from pipeline.pm4py_adapter import load_sop_file
from pipeline.sop import Problem, TimeParseError, parse_time
from tests.source_calls import calls_to, is_empty
from tests.test_sop_findings import MAKASSAR, MODEL, MODEL_FILE, NGAWI, catalogue, patuh

ROOT = Path(__file__).resolve().parents[1]
BAD = sorted((ROOT / "tests" / "fixtures" / "bad_sop").glob("*.yaml"))
_ID = re.compile(r"^(?P<where>\S+?)(?: \[langkah (?P<step>[^\]]+)\])?: (?P<level>galat|peringatan): (?P<text>.*)$")
_EN = re.compile(r"^(?P<where>\S+?)(?: \[step (?P<step>[^\]]+)\])?: (?P<level>error|warning): (?P<text>.*)$")
_LEVELS = {"galat": "error", "peringatan": "warning"}


def said(stderr: str) -> list[tuple[str, str]]:
    """Every problem of a validation's stderr as (its Indonesian text, its English text), checking that each
    Indonesian line stands directly above the English one with the same file, line, step and level."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) % 2 == 0, stderr
    pairs = []
    for indonesian, english in zip(lines[::2], lines[1::2], strict=True):
        id_, en = _ID.match(indonesian), _EN.match(english)
        assert id_ and en, f"not an Indonesian line over an English one:\n{indonesian}\n{english}"
        assert (id_["where"], id_["step"], _LEVELS[id_["level"]]) == (en["where"], en["step"], en["level"])
        assert ". Perbaikan: " in id_["text"] and ". Fix: " in en["text"]
        pairs.append((id_["text"], en["text"]))
    assert pairs, stderr
    return pairs


def told(pairs: list[tuple[str, str]], english: str) -> str:
    """The Indonesian text of the one problem whose English text holds ``english``."""
    [indonesian] = [i for i, e in pairs if english in e]
    return indonesian


def summary(proc: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """The counts line in Indonesian and then in English (the last two lines of stdout)."""
    indonesian, english = proc.stdout.strip().splitlines()[-2:]
    return indonesian, english


def validate_one(tmp_path: Path, model: str) -> subprocess.CompletedProcess[str]:
    root = catalogue(tmp_path, model=model)
    return patuh("sop", "validate", "--sop-dir", str(root), str(root / MODEL_FILE))


# ---------------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------------


def test_model_checks_are_told_in_indonesian_above_english(tmp_path: Path) -> None:
    model = (MODEL.replace("role: wali_kelas", "role: wali_kelsa")
             .replace('time: "1 hari"', 'time: "24 jam"')
             .replace('time: "15 menit"', 'time: "tiga hari"')
             + 'slas:\n  - {id: lapor, from: s3, to: s1, time: "1 x 24 jam"}\n')
    proc = validate_one(tmp_path, model)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    pairs = said(proc.stderr)
    assert len(pairs) == 4
    assert told(pairs, "unknown role 'wali_kelsa'") == (
        "role: peran 'wali_kelsa' tidak dikenal (yang dikenal: guru_bk, wali_kelas) (maksud Anda 'wali_kelas'?). "
        "Perbaikan: tulis 'role: wali_kelas', atau tambahkan 'wali_kelsa' di bawah 'roles:'")
    assert told(pairs, "counts 24 working hours").startswith(
        "time '24 jam' terhitung 24 jam kerja, kira-kira 4,1 hari kerja menurut kalender smpn5-makassar "
        "(5,9 jam kerja sehari). Perbaikan: jika yang dimaksud sehari semalam, tulis '1 x 24 jam' (waktu kalender)")
    assert told(pairs, "'tiga hari' is not a time standard") == (
        "time: waktu 'tiga hari' bukan standar waktu. Perbaikan: tulis bilangannya dengan angka: '3 hari'")
    assert told(pairs, "back to the earlier step").startswith(
        "sla 'lapor' berjalan dari langkah 's3' (baris tabel 3) mundur ke langkah 's1' yang lebih awal")
    assert "(maksud Anda" not in told(pairs, "back to the earlier step")
    assert summary(proc) == ("0 model, 0 alur sehat (sound net), 3 galat, 1 peringatan",
                             "0 model(s), 0 sound net(s), 3 error(s), 1 warning(s)")


def test_schema_problems_translate_pydantic_messages(tmp_path: Path) -> None:
    model = (MODEL.replace("title: Layanan Bimbingan Konseling\n", "")
             .replace('time: "1 hari"', 'waktu: "1 hari"')
             .replace('time: "15 menit"', 'time: "15 menit", symbol: kotak, optional: mungkin')
             .replace("source: {file: sop-layanan-bk.pdf}", "source: {file: [a, b]}"))
    proc = validate_one(tmp_path, model)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    pairs = said(proc.stderr)
    assert told(pairs, "missing field 'title'").startswith("isian wajib 'title' belum ada. Perbaikan: tambahkan "
                                                           "'title: ...'")
    assert told(pairs, "Input should be a valid string").startswith("source, file: harus berupa teks. Perbaikan: ")
    assert told(pairs, "unknown field 'waktu'").startswith(
        "isian 'waktu' pada langkah s2 tidak dikenal (maksud Anda 'time'?). Perbaikan: hapus isian ini atau "
        "perbaiki ejaannya: ganti nama 'waktu' menjadi 'time'; isian langkah adalah id, no, activity,")
    assert told(pairs, "got 'kotak'") == (
        "langkah s3, symbol: seharusnya 'terminator', 'process', 'decision' atau 'document' (tertulis 'kotak'). "
        "Perbaikan: tulis salah satu dari 'terminator', 'process', 'decision' atau 'document'")
    assert told(pairs, "got 'mungkin'") == ("langkah s3, optional: seharusnya true atau false (tertulis 'mungkin'). "
                                            "Perbaikan: tulis true atau false")
    assert not any("Input should" in indonesian for indonesian, _ in pairs)  # pydantic's English stays English


def test_institutions_file_problems_are_told_in_both_languages(tmp_path: Path) -> None:
    makassar = (MAKASSAR.replace("Asia/Makassar", "Asia/Makasar").replace("kind: school", "kind: pabrik")
                .replace("2026-12-21..2027-01-02", "2027-01-02..2026-12-21") + "    libur_nasional: true\n")
    root = catalogue(tmp_path, NGAWI + makassar + NGAWI)
    proc = patuh("sop", "validate", "--sop-dir", str(root))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    pairs = said(proc.stderr)
    assert told(pairs, "is not an Indonesian time zone").startswith(
        "lembaga 'smpn5-makassar', timezone: 'Asia/Makasar' bukan zona waktu Indonesia (seharusnya Asia/Jakarta "
        "(WIB), Asia/Makassar (WITA) atau Asia/Jayapura (WIT)) (maksud Anda Asia/Makassar?). Perbaikan: tulis "
        "'timezone: Asia/Makassar' untuk WITA")
    assert told(pairs, "got 'pabrik'").startswith(
        "lembaga 'smpn5-makassar', kind: seharusnya salah satu dari 'school', 'office' atau 'care_home' "
        "(tertulis 'pabrik')")
    assert told(pairs, "ends before it starts").endswith(
        'Perbaikan: tulis tanggal yang lebih awal lebih dulu: "2026-12-21..2027-01-02"')
    assert told(pairs, "unknown field 'libur_nasional'").startswith(
        "lembaga 'smpn5-makassar': isian 'libur_nasional' tidak dikenal (maksud Anda 'national_holidays'?)")
    assert told(pairs, "is used twice").startswith(
        "id lembaga 'smpn2-ngawi' dipakai dua kali (entri ke-1 dan ke-3, baris 2 dan ")
    assert summary(proc)[0].endswith(", 5 galat, 0 peringatan")


def test_every_bad_fixture_is_told_in_both_languages() -> None:
    proc = patuh("sop", "validate", *(str(p) for p in BAD))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    pairs = said(proc.stderr)
    assert len(pairs) == len(BAD) + 1  # one error each, and the duplicate id's repeated 'no' is a warning
    assert told(pairs, "closes a loop with no way out").startswith(
        "entri flow ke-1 (dari s3 ke s2) membentuk putaran tanpa jalan keluar: langkah s2, s3 tidak pernah dapat "
        "mencapai akhir. Perbaikan: beri putaran itu jalan keluar, mis. '- {from: s3, to: [s2, end]}'")
    assert told(pairs, "names step 's9'").startswith("entri flow ke-1 menyebut langkah 's9', yang tidak ada")
    assert told(pairs, "duplicate step id 's2'").startswith("id langkah 's2' ganda (juga langkah ke-2)")


def test_other_commands_refuse_a_bad_file_in_both_languages(tmp_path: Path) -> None:
    """`load_institutions` and `load_sop_file` (sop render/export, conformance of a file) raise a UserError
    whose Indonesian text lists the same problems."""
    root = catalogue(tmp_path, NGAWI + MAKASSAR.replace("Asia/Makassar", "Asia/Makasar"),
                     model=MODEL.replace('time: "1 hari"', 'time: "segera"'))
    with pytest.raises(UserError) as institutions:
        load_institutions(root / "institutions.yaml")
    assert "timezone: 'Asia/Makasar' is not an Indonesian time zone" in str(institutions.value)
    assert ": galat: lembaga 'smpn5-makassar', timezone: 'Asia/Makasar' bukan zona waktu Indonesia" in \
        institutions.value.pesan
    with pytest.raises(UserError) as model:
        load_sop_file(root / MODEL_FILE)
    assert "[step s2]: error: time: waktu 'segera' is not a time standard" in str(model.value)
    assert "[langkah s2]: galat: time: waktu 'segera' bukan standar waktu. Perbaikan: tulis mis. '30 menit'" in \
        model.value.pesan


# ---------------------------------------------------------------------------------------------------
# No problem without its Indonesian text
# ---------------------------------------------------------------------------------------------------


def test_every_problem_is_built_with_its_indonesian_text() -> None:
    """Each ``Problem(...)`` in pipeline/ passes a non-empty ``pesan=`` and ``perbaikan=`` (the dataclass
    requires them too: this names the line before anything runs)."""
    calls, missing = 0, []
    for where, _node, given in calls_to({"Problem"}):
        calls += 1
        missing += [f"{where} ({arg}=)" for arg in ("pesan", "perbaikan") if is_empty(given.get(arg))]
    assert calls > 40  # the scan found the calls
    assert not missing, f"Problem without its Indonesian text: {missing}"


def test_a_problem_cannot_be_made_without_indonesian() -> None:
    with pytest.raises(TypeError):
        Problem("a.yaml", "the model has no steps", "copy the step table into 'steps:'")  # type: ignore[call-arg]
    problem = Problem("a.yaml", "x is odd", "write y", 3, "s1", "warning", pesan="x janggal", perbaikan="tulis y")
    assert problem.render() == "a.yaml:3 [step s1]: warning: x is odd. Fix: write y"
    assert problem.render_pesan() == "a.yaml:3 [langkah s1]: peringatan: x janggal. Perbaikan: tulis y"
    plain = Problem("a.yaml", "bad", "fix it", pesan="salah", perbaikan="perbaiki")
    assert plain.render_pesan() == "a.yaml: galat: salah. Perbaikan: perbaiki"


@pytest.mark.parametrize(
    ("raw", "pesan", "perbaikan"),
    [
        ("2 x 24 jam kerja", "mencampur dua jenis jam", "tulis '2 x 24 jam' untuk 48 jam waktu kalender, atau "
                                                        "'2 hari kerja' untuk 2 hari kerja"),
        ("1 (dua) hari", "angkanya 1 tetapi hurufnya 2", "perbaiki angka atau hurufnya supaya sama"),
        ("tiga hari", "bukan standar waktu", "tulis bilangannya dengan angka: '3 hari'"),
        ("segera", "bukan standar waktu", "tulis mis. '30 menit', '2 jam'"),
        ("5 detik", "bukan standar waktu", "standar waktu paling sedikit satu menit"),
        ("3 - 1 hari", "awal rentangnya lebih besar daripada akhirnya", "tulis '1 - 3 hari'"),
        ("30 menit - 2 jam", "kedua ujung rentangnya memakai satuan yang berbeda", "tulis kedua ujung dengan satu"),
        ("2 bulan kerja", "'kerja' tidak dapat dipakai bersama bulan", "hapus 'kerja': tulis '2 bulan'"),
    ],
)
def test_a_refused_time_says_it_in_indonesian_too(raw: str, pesan: str, perbaikan: str) -> None:
    with pytest.raises(TimeParseError) as info:
        parse_time(raw)
    assert info.value.pesan.startswith(f"waktu {raw!r}") and pesan in info.value.pesan
    assert perbaikan in info.value.perbaikan
    assert str(info.value).startswith(f"waktu {raw!r}") and info.value.fix  # the English is unchanged


class _Form(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    count: int
    kind: str = Field(pattern=r"^[a-z]+$")
    ok: bool = True


def test_pydantic_messages_have_indonesian_words() -> None:
    with pytest.raises(ValidationError) as caught:
        _Form.model_validate({"count": "banyak", "kind": "X1", "ok": "mungkin", "nama": "x"})
    texts = {str(err["loc"][0]): pydantic_pesan(err) for err in caught.value.errors()}
    assert texts == {"name": "isian wajib ini belum ada", "count": "harus berupa bilangan bulat",
                     "kind": "tidak sesuai pola ^[a-z]+$", "ok": "harus true atau false",
                     "nama": "isian ini tidak dikenal"}
    rare = {"type": "uuid_parsing", "msg": "Input should be a valid UUID", "loc": ("id",)}
    assert pydantic_pesan(rare) == "nilainya tidak valid (Input should be a valid UUID)"  # the fallback
    assert pilihan("'a', 'b' or 'c'") == "'a', 'b' atau 'c'" and pilihan("'a'") == "'a'"
