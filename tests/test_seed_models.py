"""The transcribed models match their source tables.

The expected values below are copied from the seed texts in ../shared/seeds/ (not from the YAML files), so
a slip in a model file shows up here: step count, printed numbering, and the time standards in order.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.sop import SopModel, load_catalogue, parse_time

ROOT = Path(__file__).resolve().parents[1] / "sop_models"
SEED_000 = "000_992ee82b51fc57c1.txt"
SEED_001 = "001_76d2082b3c3fc8ad.txt"
SEED_002 = "002_24a35e392b7cc955.txt"
SEED_004 = "004_184da0867f7808c4.txt"

M = "Menit"
# sop id -> (source file, printed "No" column, "Waktu" column in order; None = blank cell)
TABLES: dict[str, tuple[str, list[str], list[str | None]]] = {
    "smpn2-ngawi/bk001-prosedur": (
        SEED_000,
        ["1", "2", "3", "4", "5", "6"],
        ["30 Menit", "30 Menit", "15 Menit", "15 Menit", "30 Menit", "15 Menit"],
    ),
    "smpn2-ngawi/bk001-alur": (
        SEED_000,
        ["1.", "2.", "3.", "4.", "5.", "6.", "7.", "8.", "9.", "10"],
        ["10 menit", "10 menit", "10 menit", "10 menit", "30 menit", "10 menit", "5 menit", "10 menit",
         "5 menit", "5 menit"],
    ),
    # seed 001 is prose: four stages, only the session has a duration (1×24 jam is an SLA, below)
    "bontang-bk/konseling-individu": (SEED_001, ["1", "2", "3", "4"], [None, None, None, "30-45 menit"]),
    "bontang-bk/pengaduan": (SEED_001, ["1", "2"], [None, None]),
    "ipdn-jatinangor/bk-praja": (
        SEED_004,
        ["1.", "2.", "3.", "3.", "4.", "5.", "6.", "7.", "8.", "9.", "10.", "11.", "12."],
        [f"15 {M}", f"10 {M}", f"30 {M}", f"30 {M}", f"30 {M}", "1 Hari", "3 Hari", "1 hari", "1 hari",
         f"45 {M}", "2 hari", "1 hari", f"15 {M}"],
    ),
    "ipdn-jatinangor/bk-pegawai": (
        SEED_004,
        ["1.", "2.", "3.", "3.", "4.", "5.", "6.", "7.", "8.", "9.", "10.", "11.", "12."],
        [f"15 {M}", f"10 {M}", f"30 {M}", f"30 {M}", f"30 {M}", "1 Hari", "3 Hari", "1 hari", "1 hari",
         f"45 {M}", "2 hari", "1 hari", f"15 {M}"],
    ),
    "ipdn-jatinangor/konseling-online-praja": (
        SEED_004,
        ["1.", "2.", "3.", "3.", "4.", "5.", "6.", "7.", "8.", "9.", "10."],
        [f"10 {M}", f"15 {M}", f"25 {M}", f"10 {M}", f"15 {M}", f"25 {M}", "1 hari", f"20 {M}", f"35 {M}",
         f"20 {M}", f"15 {M}"],
    ),
    "ipdn-jatinangor/terapi": (
        SEED_004,
        ["1.", "2.", "3.", "4.", "5.", "6.", "7.", "8.", "9.", "10", "11."],
        [f"15 {M}", f"15 {M}", f"20 {M}", f"45 {M}", "1 Hari", f"45 {M}", f"15 {M}", f"15 {M}", f"15 {M}",
         f"15 {M}", f"15 {M}"],
    ),
}

# Lane marks that survived the text dump of seed 004 (mulai/selesai words, boxes): (sop id, printed
# row position 1-based, role label of the column the mark stands in).
LANE_MARKS = [
    ("ipdn-jatinangor/bk-praja", 13, "Staf"),            # 'Selesai'
    ("ipdn-jatinangor/bk-pegawai", 13, "Staf"),          # 'Selesai'
    ("ipdn-jatinangor/konseling-online-praja", 5, "Kepala Unit"),  # box on row 4
    ("ipdn-jatinangor/terapi", 1, "Konselor"),           # 'mulai'
    ("ipdn-jatinangor/terapi", 7, "Kepala Unit"),
    ("ipdn-jatinangor/terapi", 8, "Kepala Biro III"),
    ("ipdn-jatinangor/terapi", 9, "Rektor"),
    ("ipdn-jatinangor/terapi", 10, "Kepala Unit"),
    ("ipdn-jatinangor/terapi", 11, "Kasubbag/Staf"),     # 'selesai'
]

# The Pelaksana columns of each seed-004 table, in the printed order.
LANES = {
    "ipdn-jatinangor/bk-praja": ["Staf", "Konselor/Psikolog", "Kasubbag/Arsiparis", "Kepala Unit",
                                 "Bagian/Unit Terkait", "Psikiater", "Rektor"],
    "ipdn-jatinangor/bk-pegawai": ["Staf", "Konselor/Psikolog", "Kasubbag/Arsiparis", "Kepala Unit",
                                   "Bagian/Unit Terkait", "Psikiater", "Rektor"],
    "ipdn-jatinangor/konseling-online-praja": ["Praja", "Staf", "Konselor/Psikolog", "Kasubbag", "Kepala Unit",
                                               "Rektor"],
    "ipdn-jatinangor/terapi": ["Konselor", "Kasubbag/Staf", "Kepala Unit", "Psikiater", "Kepala Biro III",
                               "Rektor"],
}


@pytest.fixture(scope="module")
def models() -> dict[str, SopModel]:
    catalogue = load_catalogue(ROOT)
    return catalogue.models


@pytest.mark.parametrize("sop_id", sorted(TABLES))
def test_steps_and_times_match_source(models: dict[str, SopModel], sop_id: str) -> None:
    source, numbers, times = TABLES[sop_id]
    model = models[sop_id]
    assert model.source.file == source
    assert model.source.table, "every model names its source table"
    assert len(model.steps) == len(numbers)
    assert [s.no for s in model.steps] == numbers
    assert [s.time for s in model.steps] == times
    assert len(set(model.step_ids)) == len(model.step_ids), "a repeated printed number gets its own id"
    for step in model.steps:
        parse_time(step.time)  # raises on an unparseable time


def test_bontang_slas(models: dict[str, SopModel]) -> None:
    """Seed 001: scheduling within 1×24 jam of the request, complaints followed up within 3×24 jam."""
    individual = {s.id: s for s in models["bontang-bk/konseling-individu"].slas}
    complaint = {s.id: s for s in models["bontang-bk/pengaduan"].slas}
    assert [s.time for s in individual.values()] == ["1×24 jam"]
    assert [s.time for s in complaint.values()] == ["3×24 jam"]
    for sla in [*individual.values(), *complaint.values()]:
        standard = parse_time(sla.time)
        assert standard is not None and standard.measure == "elapsed_minutes"


@pytest.mark.parametrize("sop_id", sorted(LANES))
def test_ipdn_lane_columns(models: dict[str, SopModel], sop_id: str) -> None:
    model = models[sop_id]
    assert [r.label for r in model.roles.values()] == LANES[sop_id]
    assert model.notes, "lane inferences are listed as judgement calls"
    assert model.steps[0].symbol == "terminator" and model.steps[-1].symbol == "terminator"


@pytest.mark.parametrize(("sop_id", "row", "label"), LANE_MARKS)
def test_ipdn_surviving_lane_marks(models: dict[str, SopModel], sop_id: str, row: int, label: str) -> None:
    model = models[sop_id]
    step = model.steps[row - 1]
    assert step.role is not None and model.roles[step.role].label == label


def test_ipdn_has_all_four_sops(models: dict[str, SopModel]) -> None:
    ipdn = sorted(m for m in models if m.startswith("ipdn-jatinangor/"))
    assert ipdn == ["ipdn-jatinangor/bk-pegawai", "ipdn-jatinangor/bk-praja",
                    "ipdn-jatinangor/konseling-online-praja", "ipdn-jatinangor/terapi"]


# ------------------------------------------------------------------------------- seed 002: rules
# rule id -> (check, input, params) as seed 002 states them
RULES = {
    "kehadiran_min_80": ("attendance_min_share", "attendance_daily",
                         {"min_share": 0.8, "period": "semester", "present": ["hadir"]}),
    "sakit_maks_6_hari": ("absence_max_days", "attendance_daily",
                          {"status": "sakit", "max_days": 6, "period": "semester"}),
    "izin_maks_3_hari": ("absence_max_days", "attendance_daily",
                         {"status": "izin", "max_days": 3, "period": "semester"}),
    "izin_maks_6_hari": ("absence_max_days", "attendance_daily",
                         {"status": "izin", "max_days": 6, "period": "semester"}),
    "alpa_maks_15_persen": ("absence_max_share", "attendance_daily",
                            {"status": "alpa", "max_share": 0.15, "period": "school_year"}),
    "layanan_berjenjang": ("escalation_order", "escalation_events",
                           {"order": ["guru_mapel", "wali_kelas", "guru_bk"],
                            "topics": ["kehadiran", "kepribadian", "akhlak", "keamanan"]}),
    "remedial_di_bawah_kkm": ("remedial_below_pass", "scores",
                              {"pass_mark": "kkm", "assessments": ["ulangan_harian", "uts"],
                               "deadline": "1 minggu"}),
}
# words of the original sentence each rule must quote
QUOTES = {
    "kehadiran_min_80": "wajib hadir mengikuti 80% proses pembelajaran",
    "sakit_maks_6_hari": "Sakit maksimal 6 hari",
    "izin_maks_3_hari": "Izin maksimal 3 hari",
    "izin_maks_6_hari": "Izin maksimal 6 hari",
    "alpa_maks_15_persen": "tanpa keterangan maksimal 15%",
    "layanan_berjenjang": "mulai dari guru mata pelajaran, wali kelas dan guru BK",
    "remedial_di_bawah_kkm": "Kriteria Ketuntasan Minimal (KKM)",
}


def test_petasia_rules(models: dict[str, SopModel]) -> None:
    model = models["smkn1-petasia/peraturan-akademik"]
    assert model.kind == "rules" and model.source.file == SEED_002 and not model.steps
    assert [r.id for r in model.rules] == list(RULES)
    for rule in model.rules:
        check, input_, params = RULES[rule.id]
        assert (rule.check, rule.input, rule.params) == (check, input_, params), rule.id
        assert QUOTES[rule.id] in rule.text, rule.id
        assert rule.article, rule.id


def test_petasia_rule_text_is_in_the_seed(models: dict[str, SopModel]) -> None:
    """Each rule's text is the original sentence (whitespace aside), when the seed is at hand."""
    seed = Path(__file__).resolve().parents[2] / "shared" / "seeds" / SEED_002
    if not seed.exists():
        pytest.skip("seed texts not available")
    original = " ".join(seed.read_text(encoding="utf-8").split())
    for rule in models["smkn1-petasia/peraturan-akademik"].rules:
        assert " ".join(rule.text.split()) in original, rule.id
