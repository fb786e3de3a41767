"""What a QA engineer onboarding a new institution (a Makassar school, WITA) and writing its first SOP ran into.

Each test writes real files to ``tmp_path`` and, where the command line is what the user sees, runs the real
CLI in a subprocess (``python -m pipeline.cli``). Every message must name the file, the line where known, the
field, what was expected and how to fix it.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipeline.calendars import build_calendar, check_institutions, load_institutions
from pipeline.catalogue import sop_table
from pipeline.errors import UserError
from pipeline.render import render_html, render_svg
from pipeline.sop import TimeParseError, load_catalogue, parse_time

REPO = Path(__file__).resolve().parents[1]
DAY = 1440.0

MAKASSAR = """\
  - id: smpn5-makassar
    name: SMP Negeri 5 Makassar
    kind: school
    region: Makassar, Sulawesi Selatan
    timezone: Asia/Makassar
    working_days: [mon, tue, wed, thu, fri]
    hours:
      default: ["07:30-14:00"]
      fri: ["07:30-11:00"]
    non_working:
      - "2026-12-21..2027-01-02"
"""
NGAWI = """\
  - id: smpn2-ngawi
    name: SMP Negeri 2 Ngawi
    kind: school
    timezone: Asia/Jakarta
    working_days: [mon, tue, wed, thu, fri]
    hours:
      default: ["07:00-14:30"]
"""
MODEL = """\
id: smpn5-makassar/layanan-bk
institution: smpn5-makassar
title: Layanan Bimbingan Konseling
source: {file: sop-layanan-bk.pdf}
roles:
  wali_kelas: {label: Wali Kelas}
  guru_bk: {label: Guru BK}
steps:
  - {id: s1, no: "1", activity: Wali kelas melaporkan siswa yang bermasalah, role: wali_kelas, time: "30 menit"}
  - {id: s2, no: "2", activity: Guru BK memanggil siswa, role: guru_bk, time: "1 hari"}
  - {id: s3, no: "3", activity: Guru BK melaporkan hasil ke Kepala Sekolah, role: guru_bk, time: "15 menit"}
"""
MODEL_FILE = "smpn5-makassar/layanan-bk.yaml"


def catalogue(tmp_path: Path, institutions: str = NGAWI + MAKASSAR, model: str | None = MODEL,
              name: str = MODEL_FILE) -> Path:
    """A catalogue folder: institutions.yaml (``institutions:`` + the entries given) and one model file."""
    root = tmp_path / "sop_models"
    root.mkdir(parents=True)
    (root / "institutions.yaml").write_text("institutions:\n" + institutions, encoding="utf-8")
    if model is not None:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(model, encoding="utf-8")
    return root


def patuh(*args: str, sop_dir: Path | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """The real ``patuh`` command, as a user runs it (a wide terminal, so no message is wrapped)."""
    env = {**os.environ, "COLUMNS": "400", "PATUH_SECRET": "findings-test-secret-not-a-real-key"}
    if sop_dir is not None:
        env["PATUH_SOP_DIR"] = str(sop_dir)
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def line_of(text: str, fragment: str, nth: int = 1) -> int:
    """1-based number of the line of ``text`` holding ``fragment`` (its ``nth`` occurrence)."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if fragment in line]
    return hits[nth - 1]


def lines_with(output: str, fragment: str) -> list[str]:
    """The lines holding ``fragment``; of a validation problem only its English line (the Indonesian one above
    it, ``...: galat: ...`` or ``...: peringatan: ...``, names the same ids and fields: tests/test_sop_i18n.py)."""
    return [line for line in output.splitlines() if fragment in line and not INDONESIAN_PROBLEM.search(line)]


INDONESIAN_PROBLEM = re.compile(r"^\S+(?: \[langkah [^\]]+\])?: (?:galat|peringatan): ")


def the_error(proc: subprocess.CompletedProcess[str], fragment: str) -> str:
    """The one line of a failed validation's output that contains ``fragment`` (the command must exit 1)."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [line] = lines_with(proc.stderr, fragment)
    return line


def flat(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------------------------------------------
# 1. institutions.yaml: duplicate ids, backwards holiday ranges, hours of a day off
# ---------------------------------------------------------------------------------------------------


def test_duplicate_institution_id_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    """Before: the second 'smpn5-makassar' silently replaced the first (its time zone and working days)."""
    second = MAKASSAR.replace("Asia/Makassar", "Asia/Jakarta").replace("SMP Negeri 5 Makassar", "Salinan")
    root = catalogue(tmp_path, NGAWI + MAKASSAR + second)
    text = (root / "institutions.yaml").read_text(encoding="utf-8")
    first, dup = line_of(text, "id: smpn5-makassar"), line_of(text, "id: smpn5-makassar", 2)
    proc = patuh("sop", "validate", "--sop-dir", str(root))
    line = the_error(proc, "used twice")
    assert line.startswith(f"institutions.yaml:{dup}: error: institution id 'smpn5-makassar' is used twice")
    assert f"lines {first} and {dup}" in line and "Fix: give each institution its own id" in line
    with pytest.raises(UserError, match="used twice"):  # every other command refuses the file too
        load_institutions(root / "institutions.yaml")


def test_backwards_holiday_range_is_an_error(tmp_path: Path) -> None:
    """Before: "2027-01-02..2026-12-21" passed and gave no holiday at all."""
    root = catalogue(tmp_path, NGAWI + MAKASSAR.replace("2026-12-21..2027-01-02", "2027-01-02..2026-12-21"))
    text = (root / "institutions.yaml").read_text(encoding="utf-8")
    proc = patuh("sop", "validate", "--sop-dir", str(root))
    line = the_error(proc, "ends before it starts")
    assert line.startswith(f"institutions.yaml:{line_of(text, 'non_working:')}: error: institution "
                           "'smpn5-makassar', non_working: the range '2027-01-02..2026-12-21' ends before it starts")
    assert 'Fix: write the earlier date first: "2026-12-21..2027-01-02"' in line


def test_hours_for_a_day_that_is_not_a_working_day_is_a_warning(tmp_path: Path) -> None:
    """Before: 'sat:' hours with a Monday-Friday week were ignored without a word."""
    entry = MAKASSAR.replace('      fri: ["07:30-11:00"]\n', '      fri: ["07:30-11:00"]\n      sat: ["07:30-12:00"]\n')
    root = catalogue(tmp_path, NGAWI + entry)
    text = (root / "institutions.yaml").read_text(encoding="utf-8")
    proc = patuh("sop", "validate", "--sop-dir", str(root))
    assert proc.returncode == 0, proc.stdout + proc.stderr  # a warning, not an error
    [line] = lines_with(proc.stderr, "warning:")
    assert line.startswith(f"institutions.yaml:{line_of(text, 'sat:')}: warning: institution 'smpn5-makassar', "
                           "hours: 'sat' hours are given but sat is not in working_days")
    assert "Fix: add sat to working_days if the institution works that day, or remove the 'sat:' hours" in line
    assert "0 error(s), 1 warning(s)" in proc.stdout


# ---------------------------------------------------------------------------------------------------
# 2. institutions.yaml: messages, and the spellings an Indonesian school writes
# ---------------------------------------------------------------------------------------------------


def test_institution_problems_name_the_id_the_line_the_field_and_the_fix(tmp_path: Path) -> None:
    """Before: 'institutions.1.timezone: Input should be ...' (0-based, no id, no line) and 'Fix: fix
    institutions.yaml'; six identical messages on one line for six unknown day names."""
    entry = (MAKASSAR.replace("Asia/Makassar", "Asia/Makasar")
             .replace("[mon, tue, wed, thu, fri]", "[mon, tue, xyz, thu, abc]")
             .replace('["07:30-14:00"]', '["0730-1400"]'))
    root = catalogue(tmp_path, NGAWI + entry)
    text = (root / "institutions.yaml").read_text(encoding="utf-8")
    proc = patuh("sop", "validate", "--sop-dir", str(root))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "institutions.1" not in proc.stderr and "fix institutions.yaml" not in proc.stderr
    [zone] = lines_with(proc.stderr, "timezone")
    assert zone.startswith(f"institutions.yaml:{line_of(text, 'timezone:', 2)}: error: institution "
                           "'smpn5-makassar', timezone: 'Asia/Makasar' is not an Indonesian time zone")
    assert "(did you mean Asia/Makassar?)" in zone and "Fix: write 'timezone: Asia/Makassar' for WITA" in zone
    [days] = lines_with(proc.stderr, "working_days")  # one message for both bad names
    assert days.startswith(f"institutions.yaml:{line_of(text, 'working_days:', 2)}: error: institution "
                           "'smpn5-makassar', working_days: 'xyz', 'abc' are not days")
    assert "Fix: write the days as mon, tue, wed, thu, fri, sat, sun (or sen, sel" in days
    [hours] = lines_with(proc.stderr, "0730-1400")
    assert "hours: '0730-1400' (for default) is not a time range" in hours
    assert "Fix: write the hours as 'HH:MM-HH:MM' or 'HH.MM-HH.MM'" in hours
    assert "3 error(s)" in proc.stdout


@pytest.mark.parametrize("zone", ["WITA", "wita", "Asia/Ujung_Pandang", "UTC+8"])
def test_wita_and_the_iana_alias_read_as_asia_makassar(tmp_path: Path, zone: str) -> None:
    root = catalogue(tmp_path, NGAWI + MAKASSAR.replace("timezone: Asia/Makassar", f"timezone: {zone}"))
    assert load_institutions(root / "institutions.yaml")["smpn5-makassar"].timezone == "Asia/Makassar"


def test_indonesian_day_names_dotted_hours_and_kind_are_understood(tmp_path: Path) -> None:
    """'07.30-14.00' (a dot, common in Indonesia) was refused; Indonesian day names and 'sekolah' too."""
    entry = (MAKASSAR.replace("kind: school", "kind: sekolah")
             .replace("[mon, tue, wed, thu, fri]", "[sen, sel, rab, kamis, jumat, sab]")
             .replace('default: ["07:30-14:00"]', 'default: ["07.30-14.00"]')
             .replace('fri: ["07:30-11:00"]', 'jum: "7.30 - 11.00"\n      sabtu: ["07.30-12.00"]'))
    root = catalogue(tmp_path, NGAWI + entry)
    proc = patuh("sop", "validate", "--sop-dir", str(root))
    assert proc.returncode == 0 and "0 error(s), 0 warning(s)" in proc.stdout, proc.stdout + proc.stderr
    inst = load_institutions(root / "institutions.yaml")["smpn5-makassar"]
    assert inst.kind == "school"
    assert inst.working_days == ["mon", "tue", "wed", "thu", "fri", "sat"]
    assert inst.hours == {"default": ["07:30-14:00"], "fri": ["07:30-11:00"], "sat": ["07:30-12:00"]}
    cal = build_calendar(inst)
    week = pd.DatetimeIndex(["2026-02-02 00:00", "2026-02-09 00:00"]).tz_localize("Asia/Makassar")
    assert cal.working_minutes(week[:1], week[1:])[0] == 4 * 390 + 210 + 270  # Mon-Thu, Fri, Sat


# ---------------------------------------------------------------------------------------------------
# 3. One file is checked against institutions.yaml too, named relative to the catalogue
# ---------------------------------------------------------------------------------------------------


def test_validating_one_file_checks_its_institution(tmp_path: Path) -> None:
    """Before: a misspelt institution used consistently in 'institution:' and 'id:' passed with 0 errors."""
    model = MODEL.replace("smpn5-makassar", "smpn5-makasar")
    root = catalogue(tmp_path, model=model, name="smpn5-makasar/layanan-bk.yaml")
    proc = patuh("sop", "validate", "--sop-dir", str(root), str(root / "smpn5-makasar" / "layanan-bk.yaml"))
    line = the_error(proc, "is not in institutions.yaml")
    assert line.startswith("smpn5-makasar/layanan-bk.yaml:2: error: institution 'smpn5-makasar' is not in "
                           "institutions.yaml (known: smpn2-ngawi, smpn5-makassar) (did you mean 'smpn5-makassar'?)")
    assert "Fix: write 'institution: smpn5-makassar' and start the id with 'smpn5-makassar/'" in line


def test_the_whole_catalogue_names_the_path_relative_to_the_catalogue(tmp_path: Path) -> None:
    """Before: only the base name ('layanan-bk.yaml') and no line."""
    root = catalogue(tmp_path, model=MODEL.replace("smpn5-makassar", "smpn5-makasar"),
                     name="smpn5-makasar/layanan-bk.yaml")
    proc = patuh("sop", "validate", "--sop-dir", str(root))
    line = the_error(proc, "is not in institutions.yaml")
    assert line.startswith("smpn5-makasar/layanan-bk.yaml:2: error: institution 'smpn5-makasar'")


def test_only_the_institution_misspelt_says_to_correct_the_institution_not_the_id(tmp_path: Path) -> None:
    """Before: "rename the id to 'smpn5-makasar/...'", i.e. spread the typo to the id."""
    root = catalogue(tmp_path, model=MODEL.replace("institution: smpn5-makassar", "institution: smpn5-makasar"))
    proc = patuh("sop", "validate", "--sop-dir", str(root), str(root / MODEL_FILE))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "rename the id" not in proc.stderr
    [line] = lines_with(proc.stderr, "error:")
    assert line.startswith(f"{MODEL_FILE}:2: error: institution 'smpn5-makasar' is not in institutions.yaml")
    assert "but the id's prefix 'smpn5-makassar' is. Fix: correct the line to 'institution: smpn5-makassar'" in line


# ---------------------------------------------------------------------------------------------------
# 4. A model whose file has errors is not "missing"
# ---------------------------------------------------------------------------------------------------


def test_show_render_and_ingest_say_the_file_has_errors(tmp_path: Path) -> None:
    """Before: "no SOP model 'X' in sop_models; see 'patuh sop list'" although the file is there."""
    root = catalogue(tmp_path, model=MODEL.replace('time: "1 hari"', 'time: "segera"'))
    sop_id = "smpn5-makassar/layanan-bk"
    export = tmp_path / "kasus.csv"
    export.write_text("case_id,activity,timestamp\nK1,s1,2026-02-02 08:00\n", encoding="utf-8")
    runs = [patuh("sop", "show", sop_id, "--sop-dir", str(root)),
            patuh("sop", "render", sop_id, "--out", str(tmp_path / "x.html"), "--sop-dir", str(root)),
            patuh("ingest", str(export), "--institution", "smpn5-makassar", "--sop", sop_id,
                  "--db", str(tmp_path / "patuh.duckdb"), sop_dir=root)]
    for proc in runs:
        assert proc.returncode == 1, proc.stdout + proc.stderr
        message = flat(proc.stderr)
        assert "no SOP model" not in message and "Traceback" not in message, message
        assert f"SOP model '{sop_id}' cannot be used: its file {root / MODEL_FILE} has 1 error(s); run " \
               f"'patuh sop validate {root / MODEL_FILE}" in message, message
    assert not (tmp_path / "x.html").exists()


def test_a_model_that_is_really_missing_is_still_missing_with_a_guess(tmp_path: Path) -> None:
    proc = patuh("sop", "show", "smpn2-ngawi/bk001-prosedr")
    assert proc.returncode == 1
    assert "no SOP model 'smpn2-ngawi/bk001-prosedr'" in flat(proc.stderr)
    assert "(did you mean 'smpn2-ngawi/bk001-prosedur'?)" in flat(proc.stderr)


# ---------------------------------------------------------------------------------------------------
# 5. Time standards as SOPs write them
# ---------------------------------------------------------------------------------------------------

SPELLINGS = [
    ("1 hari kerja", "working_days", None, 1.0),
    ("3 hari kerja", "working_days", None, 3.0),
    ("3 HK", "working_days", None, 3.0),
    ("1 (satu) hari", "working_days", None, 1.0),
    ("2 (dua) jam", "working_minutes", None, 120.0),
    ("maks 2 hari", "working_days", None, 2.0),
    ("paling lambat 2 hari", "working_days", None, 2.0),
    ("1 s/d. 2 hari", "working_days", 1.0, 2.0),
    ("30 menit - 45 menit", "working_minutes", 30.0, 45.0),
    ("1 jam 30 menit", "working_minutes", None, 90.0),
    ("½ jam", "working_minutes", None, 30.0),
    ("1½ jam", "working_minutes", None, 90.0),
    ("setengah jam", "working_minutes", None, 30.0),
    ("2 kali 24 jam", "elapsed_minutes", None, 2 * DAY),
    ("3 hari kalender", "elapsed_minutes", None, 3 * DAY),
]


@pytest.mark.parametrize(("raw", "measure", "minimum", "maximum"), SPELLINGS)
def test_common_spellings_parse_with_design_semantics(raw: str, measure: str, minimum: float | None,
                                                      maximum: float) -> None:
    standard = parse_time(raw)
    assert standard is not None and standard.raw == raw
    assert (standard.measure, standard.minimum, standard.maximum) == (measure, minimum, maximum)


@pytest.mark.parametrize(
    ("raw", "message", "fix"),
    [
        ("2 x 24 jam kerja", "mixes two clocks", "write '2 x 24 jam' for 48 elapsed hours, or '2 hari kerja'"),
        ("1 (dua) hari", "the digits say 1 but the words say 2", "correct the digits or the words"),
        ("tiga hari", "is not a time standard", "write the number in digits: '3 hari'"),
        ("segera", "is not a time standard", "write e.g. '30 menit', '2 jam', '1 jam 30 menit', '3 hari'"),
    ],
)
def test_refused_times_say_what_to_write(raw: str, message: str, fix: str) -> None:
    with pytest.raises(TimeParseError, match=re.escape(message)) as info:
        parse_time(raw)
    assert fix in info.value.fix and "seeds" not in info.value.fix


def test_an_hours_standard_of_a_working_day_or_more_is_a_warning(tmp_path: Path) -> None:
    """'24 jam' is 24 *working* hours (about 4 working days here), rarely what the paper meant."""
    root = catalogue(tmp_path, model=MODEL.replace('time: "1 hari"', 'time: "24 jam"'))
    text = (root / MODEL_FILE).read_text(encoding="utf-8")
    proc = patuh("sop", "validate", "--sop-dir", str(root), str(root / MODEL_FILE))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [line] = lines_with(proc.stderr, "warning:")
    # SMP N 5 Makassar works 6.5 h Mon-Thu and 3.5 h on Friday: 5.9 h a day on average
    assert line.startswith(f"{MODEL_FILE}:{line_of(text, '24 jam')} [step s2]: warning: time '24 jam' counts 24 "
                           "working hours, about 4.1 working day(s) on smpn5-makassar's calendar (5.9 working hours")
    assert "Fix: if a day and a night is meant, write '1 x 24 jam' (elapsed time)" in line
    ok = catalogue(tmp_path / "ok", model=MODEL.replace('time: "1 hari"', 'time: "1 x 24 jam"'))
    assert "0 warning(s)" in patuh("sop", "validate", "--sop-dir", str(ok)).stdout


def test_an_unparseable_time_gives_examples_not_the_seeds(tmp_path: Path) -> None:
    root = catalogue(tmp_path, model=MODEL.replace('time: "1 hari"', 'time: "2 x 24 jam kerja"'))
    proc = patuh("sop", "validate", "--sop-dir", str(root), str(root / MODEL_FILE))
    assert proc.returncode == 1
    [line] = lines_with(proc.stderr, "error:")
    assert f"{MODEL_FILE}:10 [step s2]: error: time: waktu '2 x 24 jam kerja' mixes two clocks" in line
    assert "Fix: write '2 x 24 jam' for 48 elapsed hours, or '2 hari kerja' for 2 working day(s)" in line
    assert "seeds" not in proc.stderr


# ---------------------------------------------------------------------------------------------------
# 6. Model checks: flow, slas, loops, unknown fields, role typos
# ---------------------------------------------------------------------------------------------------


def validate_model(tmp_path: Path, model: str) -> tuple[subprocess.CompletedProcess[str], str]:
    root = catalogue(tmp_path, model=model)
    return patuh("sop", "validate", "--sop-dir", str(root), str(root / MODEL_FILE)), model


def test_two_flow_entries_from_one_step_are_an_error(tmp_path: Path) -> None:
    """Before: the first entry was silently replaced by the second."""
    proc, text = validate_model(tmp_path, MODEL + "flow:\n  - {from: s1, to: [s2, s3]}\n  - {from: s1, to: end}\n")
    line = the_error(proc, "error:")
    assert line.startswith(f"{MODEL_FILE}:{line_of(text, 'to: end')} [step s1]: error: flow edges 1 and 2 both "
                           "start at 's1'")
    assert "Fix: merge them into one entry: '- {from: s1, to: [s2, s3, end]}'" in line


def test_slas_backwards_to_itself_and_twice_are_errors(tmp_path: Path) -> None:
    slas = ("slas:\n  - {id: lapor, from: s3, to: s1, time: \"1 x 24 jam\"}\n"
            "  - {id: panggil, from: s2, to: s2, time: \"1 hari\"}\n"
            "  - {id: lapor, from: s1, to: s3, time: \"3 hari\"}\n")
    proc, text = validate_model(tmp_path, MODEL + slas)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    back = lines_with(proc.stderr, "back to the earlier step")
    assert back == [f"{MODEL_FILE}:{line_of(text, 'from: s3, to: s1')}: error: sla 'lapor' runs from step 's3' "
                    "(row 3) back to the earlier step 's1' (row 1). Fix: put the earlier step in 'from': "
                    "'from: s1, to: s3'"]
    [self_] = lines_with(proc.stderr, "to itself")
    assert self_.startswith(f"{MODEL_FILE}:{line_of(text, 'from: s2, to: s2')}: error: sla 'panggil' goes from "
                            "step 's2' to itself")
    [twice] = lines_with(proc.stderr, "used twice")
    assert twice.startswith(f"{MODEL_FILE}:{line_of(text, 'id: lapor', 2)}: error: sla id 'lapor' is used twice")
    assert "3 error(s)" in proc.stdout


def test_a_loop_with_no_exit_names_the_flow_edge(tmp_path: Path) -> None:
    """Before: an error on every stuck step and none on the edge that caused it."""
    proc, text = validate_model(tmp_path, MODEL + "flow:\n  - {from: s3, to: s2}\n")
    line = the_error(proc, "error:")
    assert line == (f"{MODEL_FILE}:{line_of(text, 'from: s3')} [step s3]: error: flow edge 1 (from s3 to s2) closes "
                    "a loop with no way out: step(s) s2, s3 can never reach the end. Fix: give the loop a way out, "
                    "e.g. '- {from: s3, to: [s2, end]}' (or mark a step that is repeated in place 'repeat: true' "
                    "instead of a flow edge back)")


@pytest.mark.parametrize(("written", "meant"), [("waktu", "time"), ("dokumen", "documents"), ("peran", "role")])
def test_an_indonesian_field_name_suggests_the_field(tmp_path: Path, written: str, meant: str) -> None:
    """Before: "see DESIGN section 3 for the allowed fields", a file users do not have."""
    model = MODEL.replace('time: "1 hari"', f'{written}: "x"' if written != "peran" else 'time: "1 hari"')
    if written == "peran":
        model = model.replace("role: guru_bk, time: \"1 hari\"", "peran: guru_bk, time: \"1 hari\"")
    proc, text = validate_model(tmp_path, model)
    line = the_error(proc, "unknown field")
    assert line.startswith(f"{MODEL_FILE}:{line_of(text, written + ':')} [step s2]: error: unknown field "
                           f"'{written}' in step s2 (did you mean '{meant}'?)")
    assert f"rename '{written}' to '{meant}'" in line and "README's 'SOP models' section" in line
    assert "DESIGN" not in proc.stderr


def test_a_role_typo_suggests_the_role(tmp_path: Path) -> None:
    proc, text = validate_model(tmp_path, MODEL.replace("role: wali_kelas", "role: wali_kelsa"))
    line = the_error(proc, "error:")
    assert line.startswith(f"{MODEL_FILE}:{line_of(text, 'wali_kelsa')} [step s1]: error: role: unknown role "
                           "'wali_kelsa' (known: guru_bk, wali_kelas) (did you mean 'wali_kelas'?)")
    assert "Fix: write 'role: wali_kelas', or add 'wali_kelsa' under 'roles:'" in line


# ---------------------------------------------------------------------------------------------------
# 7. sop show / sop render show case_time, the slas and the decision's question
# ---------------------------------------------------------------------------------------------------

DECIDING = MODEL + """\
flow:
  - {from: s2, to: [s3, end], condition: "Apakah orang tua perlu dipanggil?"}
case_time: "5 hari"
slas:
  - {id: panggil, from: s1, to: s2, time: "1 x 24 jam", text: Siswa dipanggil dalam 1 x 24 jam}
"""


def test_sop_show_prints_case_time_slas_and_the_decision_question(tmp_path: Path) -> None:
    root = catalogue(tmp_path, model=DECIDING)
    proc = patuh("sop", "show", "smpn5-makassar/layanan-bk", "--sop-dir", str(root))
    assert proc.returncode == 0, proc.stderr
    assert "Batas waktu kasus / Case time: 5 hari" in proc.stdout
    assert "Batas antar langkah / Between steps: s1 → s2: 1 x 24 jam (Siswa dipanggil dalam 1 x 24 jam)" \
        in proc.stdout
    assert "Keputusan: Apakah orang tua perlu dipanggil?" in proc.stdout
    bontang = patuh("sop", "show", "bontang-bk/konseling-individu")
    assert "Batas antar langkah / Between steps: s1 → s3: 1×24 jam" in bontang.stdout


def test_sop_render_draws_case_time_slas_and_the_decision_question(tmp_path: Path) -> None:
    root = catalogue(tmp_path, model=DECIDING)
    model = load_catalogue(root).get("smpn5-makassar/layanan-bk")
    for page in (render_svg(model), render_html(model)):
        assert "Batas waktu kasus / Case time" in page and "5 hari" in page
        assert "Batas antar langkah / Between steps" in page
        assert "langkah 1 → langkah 2: 1 x 24 jam (Siswa dipanggil dalam 1 x 24 jam)" in page
        assert "Keputusan: Apakah orang tua perlu dipanggil?" in flat(re.sub(r"<[^>]+>", " ", page))
    out = tmp_path / "bontang.html"
    proc = patuh("sop", "render", "bontang-bk/konseling-individu", "--format", "html", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "langkah 1 → langkah 3: 1×24 jam" in out.read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------------
# 8. sop show never cuts a word
# ---------------------------------------------------------------------------------------------------


def shown_tokens(text: str) -> set[str]:
    return {t for line in text.splitlines() for t in re.split(r"[\s│┃║|]+", line) if t}


def test_sop_show_at_80_columns_never_cuts_a_word() -> None:
    """Before: 'mengajuka n', 'Penyaringa n: Guru BK' in an 80-column terminal."""
    from rich.console import Console

    proc = patuh("sop", "show", "bontang-bk/konseling-individu")
    narrow = subprocess.run([sys.executable, "-m", "pipeline.cli", "sop", "show", "bontang-bk/konseling-individu"],
                            cwd=REPO, env={**os.environ, "COLUMNS": "80"}, capture_output=True, text=True,
                            timeout=300, check=False)
    assert proc.returncode == 0 and narrow.returncode == 0, narrow.stderr
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80
    assert {"mengajukan", "Penyaringan:", "kerahasiaan"} <= shown_tokens(narrow.stdout)
    models = load_catalogue(REPO / "sop_models").models
    for width in (80, 100, 60):
        for sop_id, model in models.items():
            if model.kind != "procedure":
                continue
            buffer = io.StringIO()
            console = Console(file=buffer, width=width, color_system=None)
            for renderable in sop_table(model, width):
                console.print(renderable)
            tokens = shown_tokens(buffer.getvalue())
            for step in model.steps:
                missing = [w for w in step.activity.split() if w not in tokens]
                assert not missing, (sop_id, width, step.id, missing)


def test_check_institutions_reports_a_missing_file_without_raising(tmp_path: Path) -> None:
    check = check_institutions(tmp_path / "institutions.yaml")
    assert not check.readable and check.problems and "cannot read" in check.problems[0].message
