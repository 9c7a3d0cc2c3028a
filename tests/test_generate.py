"""Tests of the synthetic study generator (ingestion.synth): formats, determinism, realism, faults."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import pathlib
import re
import zipfile

import polars as pl
import pytest
from defusedxml import ElementTree as DET

from ingestion.synth import generate_study
from ingestion.synth import names as synth_names

XSD = pathlib.Path(__file__).resolve().parents[2] / "shared" / "samples" / "refi-qda" / "Project-mrt2019.xsd"

SEED = 20260101
QDA = "{urn:QDA-XML:project:1.0}"
GUID_RE = re.compile(r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$|"
                     r"^(\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\})$")
ISO_OFFSET_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")
PHONE_RE = re.compile(r"\(\d{3}\) \d{3}-\d{4}")

REDCAP_HEADER = [
    "Variable / Field Name", "Form Name", "Section Header", "Field Type", "Field Label",
    "Choices, Calculations, OR Slider Labels", "Field Note", "Text Validation Type OR Show Slider Number",
    "Text Validation Min", "Text Validation Max", "Identifier?", "Branching Logic (Show field only if...)",
    "Required Field?", "Custom Alignment", "Question Number (surveys only)", "Matrix Group Name",
    "Matrix Ranking?", "Field Annotation",
]

# The contract's codes (CONTRACT 1.1), written out independently of the generator.
CONTRACT_CODES = {
    "sex": {"1": "Male", "2": "Female", "3": "Unknown or not reported"},
    "ethnicity": {"1": "Hispanic or Latino", "2": "Not Hispanic or Latino", "3": "Unknown or not reported"},
    "race": {"1": "American Indian or Alaska Native", "2": "Asian",
             "3": "Native Hawaiian or Other Pacific Islander", "4": "Black or African American", "5": "White",
             "6": "Unknown or not reported"},
    "education": {"1": "Less than high school", "2": "High school or GED", "3": "Some college",
                  "4": "College degree or more"},
    "marital_status": {"1": "Single, never married", "2": "Married or living as married", "3": "Separated",
                       "4": "Divorced", "5": "Widowed"},
    "drug_of_choice": {"1": "Crack cocaine", "2": "Powder cocaine", "3": "Heroin", "4": "Non-prescribed opioids",
                       "5": "Marijuana", "6": "Methamphetamine", "7": "Other"},
    "sud_diagnosis": {"1": "Abuse", "2": "Dependence"},
    "cooccurring": {"1": "Depressive disorder", "2": "Bipolar disorder", "3": "Obsessive-compulsive disorder",
                    "4": "PTSD", "5": "Anxiety disorder", "6": "Other"},
    "asam_level": {"1": "Outpatient", "2": "Intensive outpatient", "3": "Residential"},
    "referral_program": {str(i): f"Program {i}" for i in range(1, 9)},
    "decline_reason": {"1": "Not eligible", "2": "Declined", "3": "Other"},
    "rand_arm": {"1": "Strengths-based case management", "2": "Motivational interviewing",
                 "3": "Standard referral"},
    "withdrawal_scope": {"1": "No further data (keep what was collected)", "2": "Withdraw all data"},
}
YESNO = ["homeless", "employed", "psychotic_disorder", "alcohol_only", "consent_audio", "consent_share",
         "court_referred", "withdrawn", "lost_to_followup"]
DATES = ["dob", "assessment_date", "last_tx_date", "consent_date", "rand_date", "withdrawal_date"]
IDENTIFIERS = {"first_name", "last_name", "dob", "phone", "street_address", "zip", "email"}
EVENT_TYPES = {"session_scheduled", "session_attended", "session_missed", "session_cancelled", "contact_attempt",
               "treatment_admitted", "treatment_visit", "treatment_discharged", "event_voided"}


# ---------------------------------------------------------------------------------------------- helpers
def tree_hashes(root: pathlib.Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def read_csv(path: pathlib.Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


def read_events(path: pathlib.Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def latest(folder: pathlib.Path, pattern: str) -> pathlib.Path:
    return sorted(folder.glob(pattern))[-1]


def parse_dictionary(path: pathlib.Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def choices(cell: str) -> dict[str, str]:
    out = {}
    for part in cell.split("|"):
        code, label = part.split(",", 1)
        out[code.strip()] = label.strip()
    return out


def qdpx_contents(path: pathlib.Path):
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        root = DET.fromstring(zf.read("project.qde"))
        sources = {n.split("/", 1)[1]: zf.read(n).decode("utf-8") for n in names if n.lower().startswith("sources/")}
        infos = zf.infolist()
    return root, sources, infos


def counted_cm_sessions(events: list[dict]) -> dict[str, set[int]]:
    voided = {e["voids_event_id"] for e in events if e["event_type"] == "event_voided"}
    out: dict[str, set[int]] = {}
    for e in events:
        if e["event_type"] == "session_attended" and e.get("service") in ("case_management",
                                                                           "motivational_interviewing"):
            if e["event_id"] not in voided:
                out.setdefault(e["record_id"], set()).add(e["session_number"])
    return out


def local_date(iso: str) -> dt.date:
    return dt.datetime.fromisoformat(iso).date()


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[pathlib.Path, dict]:
    out = tmp_path_factory.mktemp("study600")
    summary = generate_study(out, 600, seed=SEED)
    return out, summary


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("study3000")
    generate_study(out, 3000, seed=SEED)
    return out


@pytest.fixture(scope="module")
def nightly(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("nightly")
    generate_study(out, 600, nights=4, seed=SEED)
    return out


# ---------------------------------------------------------------------------------------------- layout
def test_layout_and_summary(study):
    out, summary = study
    for sub in ("intake", "sessions", "alliance", "transcripts"):
        assert (out / sub).is_dir()
    intake = sorted(p.name for p in (out / "intake").glob("ALLIANCE_DATA_*.csv"))
    assert len(intake) == 2
    assert all(re.fullmatch(r"ALLIANCE_DATA_\d{4}-\d{2}-\d{2}_\d{4}\.csv", n) for n in intake)
    assert re.fullmatch(r"ALLIANCE_WAI_DATA_\d{4}-\d{2}-\d{2}_\d{4}\.csv",
                        latest(out / "alliance", "ALLIANCE_WAI_DATA_*.csv").name)
    assert list((out / "sessions").glob("sessions_*.jsonl"))
    assert (out / "transcripts" / "pseudonyms.csv").exists()
    assert list((out / "transcripts").glob("coded_units_*.csv"))
    assert list((out / "transcripts").glob("transcripts_*.qdpx"))
    assert summary["assessed"] == 600
    assert 0.7 * 600 < summary["consented"] < 0.9 * 600
    assert summary["files"] == sum(1 for p in out.rglob("*") if p.is_file())


def test_same_seed_same_bytes_different_seed_differs(tmp_path, study):
    out, _ = study
    again = tmp_path / "again"
    generate_study(again, 600, seed=SEED)
    assert tree_hashes(out) == tree_hashes(again)
    other = tmp_path / "other"
    generate_study(other, 600, seed=SEED + 1)
    a, b = tree_hashes(out), tree_hashes(other)
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a if "data_dictionary" not in k)


def test_text_files_are_utf8_lf_without_bom(study):
    out, _ = study
    for p in out.rglob("*"):
        if p.suffix in (".csv", ".jsonl"):
            data = p.read_bytes()
            assert not data.startswith(b"\xef\xbb\xbf"), p
            assert b"\r" not in data, p
            data.decode("utf-8")
            assert data.endswith(b"\n"), p


# ---------------------------------------------------------------------------------------------- intake
def test_intake_dictionary_matches_contract(study):
    out, _ = study
    path = out / "intake" / "data_dictionary.csv"
    with open(path, newline="", encoding="utf-8") as fh:
        assert next(csv.reader(fh)) == REDCAP_HEADER
    rows = parse_dictionary(path)
    by = {r["Variable / Field Name"]: r for r in rows}
    assert rows[0]["Variable / Field Name"] == "record_id" and rows[0]["Field Type"] == "text"
    for field, codes in CONTRACT_CODES.items():
        expected_type = "checkbox" if field in ("race", "cooccurring") else "radio"
        assert by[field]["Field Type"] == expected_type, field
        assert choices(by[field]["Choices, Calculations, OR Slider Labels"]) == codes, field
    for field in YESNO:
        assert by[field]["Field Type"] == "yesno" and by[field]["Choices, Calculations, OR Slider Labels"] == ""
    for field in DATES:
        assert (by[field]["Field Type"], by[field]["Text Validation Type OR Show Slider Number"]) == ("text",
                                                                                                    "date_ymd")
    for field in ("age", "prior_tx_episodes"):
        assert by[field]["Text Validation Type OR Show Slider Number"] == "integer"
    assert {f for f, r in by.items() if r["Identifier?"] == "y"} == IDENTIFIERS
    assert by["staff_notes"]["Field Type"] == "notes"
    assert by["consent_version"]["Field Type"] == "text"
    assert by["consent_version"]["Text Validation Type OR Show Slider Number"] == ""


def test_intake_export_columns_follow_dictionary(study):
    out, _ = study
    rows = parse_dictionary(out / "intake" / "data_dictionary.csv")
    expected = []
    for i, r in enumerate(rows):
        name = r["Variable / Field Name"]
        if r["Field Type"] == "checkbox":
            expected += [f"{name}___{c}" for c in choices(r["Choices, Calculations, OR Slider Labels"])]
        else:
            expected.append(name)
        if i == 0:
            expected.append("redcap_data_access_group")
        if i + 1 == len(rows) or rows[i + 1]["Form Name"] != r["Form Name"]:
            expected.append(f"{r['Form Name']}_complete")
    for snap in (out / "intake").glob("ALLIANCE_DATA_*.csv"):
        df = read_csv(snap)
        assert df.columns == expected
        assert df["record_id"].is_unique().all()
        assert set(df["redcap_data_access_group"].unique()) == {"north_intake", "south_intake"}
        for c in df.columns:
            if c.endswith("_complete"):
                assert set(df[c].drop_nulls().unique()) <= {"0", "1", "2"}
        for field in DATES:
            vals = df[field].drop_nulls()
            assert vals.str.contains(r"^\d{4}-\d{2}-\d{2}$").all(), field
        assert df["phone"].str.contains(r"^\(\d{3}\) 555-01\d{2}$").all()
        assert df["street_address"].str.contains(r"^\d+ \w+ \w+$").all()


def test_dob_consistent_with_age_and_last_tx(study):
    out, _ = study
    df = read_csv(latest(out / "intake", "ALLIANCE_DATA_*.csv"))
    for row in df.select("dob", "assessment_date", "age", "prior_tx_episodes", "last_tx_date").iter_rows():
        dob, ass = dt.date.fromisoformat(row[0]), dt.date.fromisoformat(row[1])
        age = ass.year - dob.year - ((ass.month, ass.day) < (dob.month, dob.day))
        assert age == int(row[2])
        assert (int(row[3]) > 0) == (row[4] is not None)


def test_snapshots_are_full_and_carry_a_correction(study):
    out, _ = study
    early, final = (read_csv(p) for p in sorted((out / "intake").glob("ALLIANCE_DATA_*.csv")))
    assert set(early["record_id"]) <= set(final["record_id"])  # nothing removed
    joined = early.join(final, on="record_id", suffix="_new")
    changed = joined.filter(
        (pl.col("age") != pl.col("age_new")) | (pl.col("sex") != pl.col("sex_new"))
        | (pl.col("education") != pl.col("education_new"))
    )
    assert changed.height >= 1


def test_withdrawals_both_scopes(study):
    out, _ = study
    df = read_csv(latest(out / "intake", "ALLIANCE_DATA_*.csv"))
    w = df.filter(pl.col("withdrawn") == "1")
    assert set(w["withdrawal_scope"]) >= {"1", "2"}
    assert w["withdrawal_date"].null_count() == 0
    events = read_events(latest(out / "sessions", "sessions_*.jsonl"))
    after = 0
    for rid, wdate in w.filter(pl.col("withdrawal_scope") == "1").select("record_id", "withdrawal_date").iter_rows():
        after += sum(1 for e in events if e["record_id"] == rid
                     and local_date(e["occurred_at"]) > dt.date.fromisoformat(wdate))
    assert after >= 1  # scope-1: events after the withdrawal date are still in the log


# ---------------------------------------------------------------------------------------------- sessions
def test_session_log_format(study):
    out, _ = study
    path = latest(out / "sessions", "sessions_*.jsonl")
    lines = path.read_text(encoding="utf-8").splitlines()
    events = [json.loads(x) for x in lines]
    intake = read_csv(latest(out / "intake", "ALLIANCE_DATA_*.csv"))
    randomized = set(intake.filter(pl.col("rand_arm").is_not_null())["record_id"])
    keys = []
    for e in events:
        assert e["event_type"] in EVENT_TYPES
        assert re.fullmatch(r"evt-\d{9}", e["event_id"])
        assert e["record_id"] in randomized
        for k in ("occurred_at", "recorded_at", "scheduled_for"):
            if k in e:
                assert ISO_OFFSET_RE.match(e[k]), e[k]
        occ, rec = dt.datetime.fromisoformat(e["occurred_at"]), dt.datetime.fromisoformat(e["recorded_at"])
        assert rec >= occ
        assert all(v is not None for v in e.values())
        if e["event_type"].startswith("session_"):
            assert e["service"] in ("case_management", "motivational_interviewing", "standard_referral")
            assert 1 <= e["session_number"] <= 5
            assert re.fullmatch(r"(CM|MI|SR)\d{2}", e["staff_id"])
        if e["event_type"] == "session_scheduled":
            assert dt.datetime.fromisoformat(e["scheduled_for"]) > occ
        if e["event_type"].startswith("treatment_"):
            assert 1 <= e["program_id"] <= 8
        if e["event_type"] == "treatment_discharged":
            assert e["discharge_reason"] in ("completed", "dropped_out", "administrative", "transferred",
                                             "incarcerated")
        if "activities" in e:
            assert set(e["activities"]) <= {"strengths_assessment", "goal_planning", "linkage", "transport",
                                             "advocacy"}
        keys.append((rec, e["event_id"]))
    assert keys == sorted(keys)
    # DST: both offsets occur
    assert any(e["occurred_at"].endswith("-04:00") for e in events)
    assert any(e["occurred_at"].endswith("-05:00") for e in events)


def test_session_log_faults(study):
    out, _ = study
    path = latest(out / "sessions", "sessions_*.jsonl")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) > len(set(lines))  # a duplicated line
    events = [json.loads(x) for x in lines]
    by_id = {e["event_id"]: e for e in events}
    ids = [e["event_id"] for e in events]
    dup_ids = {i for i in ids if ids.count(i) > 1}
    assert all(lines.count(line) == 2 for line in lines if json.loads(line)["event_id"] in dup_ids)
    voids = [e for e in events if e["event_type"] == "event_voided"]
    assert voids
    for v in voids:
        target = by_id[v["voids_event_id"]]
        assert target["event_type"] == "session_attended" and target["record_id"] == v["record_id"]
        assert target["recorded_at"] < v["recorded_at"] or dt.datetime.fromisoformat(
            target["recorded_at"]) < dt.datetime.fromisoformat(v["recorded_at"])
    late = [e for e in events if dt.datetime.fromisoformat(e["recorded_at"])
            - dt.datetime.fromisoformat(e["occurred_at"]) > dt.timedelta(days=1)]
    assert late
    assert any("note" in e for e in events)


# ---------------------------------------------------------------------------------------------- alliance
def test_alliance_export(study):
    out, _ = study
    rows = parse_dictionary(out / "alliance" / "data_dictionary.csv")
    by = {r["Variable / Field Name"]: r for r in rows}
    assert {r["Form Name"] for r in rows} == {"wai_client", "wai_staff"}
    for p in ("waic", "wais"):
        assert by[f"{p}_date"]["Text Validation Type OR Show Slider Number"] == "date_ymd"
        assert by[f"{p}_session"]["Text Validation Type OR Show Slider Number"] == "integer"
        for i in range(1, 13):
            assert choices(by[f"{p}_{i}"]["Choices, Calculations, OR Slider Labels"]) == {
                "1": "Seldom", "2": "Sometimes", "3": "Fairly often", "4": "Very often", "5": "Always"}
    df = read_csv(latest(out / "alliance", "ALLIANCE_WAI_DATA_*.csv"))
    expected = (["record_id", "redcap_repeat_instrument", "redcap_repeat_instance", "waic_date", "waic_session"]
                + [f"waic_{i}" for i in range(1, 13)] + ["wai_client_complete", "wais_date", "wais_session"]
                + [f"wais_{i}" for i in range(1, 13)] + ["wai_staff_complete"])
    assert df.columns == expected
    base = df.filter(pl.col("redcap_repeat_instrument").is_null())
    assert base["record_id"].is_unique().all()
    assert set(base["record_id"]) == set(df["record_id"])
    assert base.select(pl.exclude("record_id")).null_count().row(0) == tuple([base.height] * (len(expected) - 1))
    client = df.filter(pl.col("redcap_repeat_instrument") == "wai_client")
    staff = df.filter(pl.col("redcap_repeat_instrument") == "wai_staff")
    assert client.height and staff.height
    assert client.select([f"wais_{i}" for i in range(1, 13)] + ["wais_date", "wai_staff_complete"]
                         ).null_count().sum_horizontal().item() == client.height * 14
    assert staff.select([f"waic_{i}" for i in range(1, 13)] + ["waic_date", "wai_client_complete"]
                        ).null_count().sum_horizontal().item() == staff.height * 14
    items = client.select([f"waic_{i}" for i in range(1, 13)])
    vals = set(pl.concat([items[c] for c in items.columns]).drop_nulls().unique())
    assert vals <= {"1", "2", "3", "4", "5"}
    # each (record, instrument) has instances 1..n
    inst = (df.filter(pl.col("redcap_repeat_instrument").is_not_null())
            .group_by("record_id", "redcap_repeat_instrument")
            .agg(pl.col("redcap_repeat_instance").cast(pl.Int64).sort()))
    for lst in inst["redcap_repeat_instance"].to_list():
        assert lst == list(range(1, len(lst) + 1))


# ---------------------------------------------------------------------------------------------- transcripts
def test_qdpx_structure_and_positions(study):
    out, _ = study
    path = latest(out / "transcripts", "transcripts_*.qdpx")
    root, sources, infos = qdpx_contents(path)
    assert all(i.date_time == infos[0].date_time for i in infos)
    assert root.tag == f"{QDA}Project"
    order = ["Users", "CodeBook", "Variables", "Cases", "Sources", "Notes", "Links", "Sets", "Graphs",
             "Description", "NoteRef"]
    children = [c.tag.replace(QDA, "") for c in root]
    assert children == sorted(children, key=order.index)
    assert {"Users", "CodeBook", "Variables", "Sources"} <= set(children)
    for el in root.iter():
        assert el.tag.startswith(QDA)
        for attr in ("guid", "targetGUID", "creatingUser", "creatingUserGUID"):
            if attr in el.attrib:
                assert GUID_RE.match(el.attrib[attr]), (el.tag, attr)
        for attr in ("creationDateTime",):
            if attr in el.attrib:
                dt.datetime.fromisoformat(el.attrib[attr])
    users = {u.attrib["guid"] for u in root.iter(f"{QDA}User")}
    assert 2 <= len(users) <= 3
    codes = {}

    def walk(el, prefix):
        for c in el.findall(f"{QDA}Code"):
            assert c.attrib["isCodable"] in ("true", "false")
            path_ = f"{prefix}/{c.attrib['name']}" if prefix else c.attrib["name"]
            codes[c.attrib["guid"]] = path_
            walk(c, path_)

    walk(root.find(f"{QDA}CodeBook/{QDA}Codes"), "")
    assert {"Working alliance", "Barriers to treatment", "Case management activities", "Recovery goals"} <= set(
        codes.values())
    assert max(p.count("/") for p in codes.values()) == 2
    var = root.find(f"{QDA}Variables/{QDA}Variable")
    assert var.attrib["name"] == "record_id"
    src_guids = {}
    n_sel = 0
    for src in root.iter(f"{QDA}TextSource"):
        g = src.attrib["guid"]
        assert src.attrib["plainTextPath"] == f"internal://{g}.txt"
        text = sources[f"{g}.txt"]
        name = src.attrib["name"]
        assert re.fullmatch(r"INT-\d+-\d+|FG-\d+", name)
        src_guids[g] = name
        kids = [c.tag.replace(QDA, "") for c in src]
        assert set(kids) <= {"PlainTextSelection"}
        for sel in src.findall(f"{QDA}PlainTextSelection"):
            s, e = int(sel.attrib["startPosition"]), int(sel.attrib["endPosition"])
            assert 0 <= s < e <= len(text)
            assert "\n" not in text[s:e]
            assert sel.attrib["creatingUser"] in users
            coding = sel.find(f"{QDA}Coding")
            assert coding.attrib["creatingUser"] in users
            assert coding.find(f"{QDA}CodeRef").attrib["targetGUID"] in codes
            n_sel += 1
    assert n_sel > 0
    for case in root.iter(f"{QDA}Case"):
        vv = case.find(f"{QDA}VariableValue")
        assert vv.find(f"{QDA}VariableRef").attrib["targetGUID"] == var.attrib["guid"]
        rid = vv.find(f"{QDA}TextValue").text
        refs = [r.attrib["targetGUID"] for r in case.findall(f"{QDA}SourceRef")]
        assert refs and all(src_guids[r] .startswith(f"INT-{rid}-") for r in refs)


def test_coded_units_match_transcripts(study):
    from ingestion.synth.population import build_population
    from ingestion.synth.transcripts import build_transcripts

    out, _ = study
    units = pl.concat([read_csv(p) for p in sorted((out / "transcripts").glob("coded_units_*.csv"))])
    assert units.columns == ["unit_id", "transcript_id", "transcript_kind", "record_id", "speaker", "coder_id",
                             "code_path", "start_char", "end_char", "text", "coded_at"]
    assert units["unit_id"].is_unique().all()
    assert set(units["transcript_kind"]) <= {"interview", "focus_group"}
    assert units["coded_at"].str.contains(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$").all()
    # the generator's own transcripts: every CSV unit's text is the slice it names
    pop = build_population(600, SEED)
    texts = {t.tid: t.text for t in build_transcripts(pop.people, SEED)}
    for tid, s, e, text in units.select("transcript_id", "start_char", "end_char", "text").iter_rows():
        assert texts[tid][int(s):int(e)] == text
    qdpx_tids = set()
    for p in (out / "transcripts").glob("*.qdpx"):
        root, sources, _ = qdpx_contents(p)
        for src in root.iter(f"{QDA}TextSource"):
            qdpx_tids.add(src.attrib["name"])
            assert sources[src.attrib["guid"] + ".txt"] == texts[src.attrib["name"]]
    assert not qdpx_tids & set(units["transcript_id"])  # no transcript in both forms
    # turns: each line starts with a speaker
    for text in texts.values():
        for line in text.splitlines():
            assert re.match(r"^[A-Z][A-Za-z]+( [A-Z]\.)?: ", line), line
    # two coders on some transcripts, with partial agreement
    doubled = units.group_by("transcript_id").agg(pl.col("coder_id").n_unique().alias("k")).filter(pl.col("k") > 1)
    assert doubled.height >= 1


def test_pseudonyms_and_interview_consent(study):
    out, _ = study
    ps = read_csv(out / "transcripts" / "pseudonyms.csv")
    assert ps.columns == ["record_id", "pseudonym"]
    assert ps["record_id"].is_unique().all() and ps["pseudonym"].is_unique().all()
    real = set(synth_names.FIRST_NAMES_MALE) | set(synth_names.FIRST_NAMES_FEMALE) | set(synth_names.SURNAMES)
    assert not {p.split(" ")[0] for p in ps["pseudonym"]} & real
    intake = read_csv(latest(out / "intake", "ALLIANCE_DATA_*.csv"))
    assert not set(intake["first_name"]) & set(ps["pseudonym"])
    audio = dict(intake.select("record_id", "consent_audio").iter_rows())
    interviewed = {n.split("-")[1] for n in _all_transcript_ids(out) if n.startswith("INT-")}
    assert interviewed <= set(ps["record_id"])
    assert any(audio[r] != "1" for r in interviewed)  # one or two without audio consent
    assert sum(audio[r] == "1" for r in interviewed) >= 3
    assert any(n.startswith("FG-") for n in _all_transcript_ids(out))


def _all_transcript_ids(out: pathlib.Path) -> set[str]:
    ids = set()
    for p in out.rglob("coded_units_*.csv"):
        ids |= set(read_csv(p)["transcript_id"])
    for p in out.rglob("*.qdpx"):
        root, _, _ = qdpx_contents(p)
        ids |= {s.attrib["name"] for s in root.iter(f"{QDA}TextSource")}
    return ids


def _all_unit_texts(out: pathlib.Path) -> list[tuple[str, str, str]]:
    """(transcript, speaker-ish, text) of every coded unit in both forms."""
    found = []
    for p in out.rglob("coded_units_*.csv"):
        found += read_csv(p).select("transcript_id", "speaker", "text").rows()
    for p in out.rglob("*.qdpx"):
        root, sources, _ = qdpx_contents(p)
        for src in root.iter(f"{QDA}TextSource"):
            text = sources[src.attrib["guid"] + ".txt"]
            for sel in src.findall(f"{QDA}PlainTextSelection"):
                s, e = int(sel.attrib["startPosition"]), int(sel.attrib["endPosition"])
                line_start = text.rfind("\n", 0, s) + 1
                found.append((src.attrib["name"], text[line_start:text.index(":", line_start)], text[s:e]))
    return found


def test_transcript_faults(study):
    out, _ = study
    units = _all_unit_texts(out)
    assert any(sp == "Interviewer" and PHONE_RE.search(tx) for _, sp, tx in units)
    intake = read_csv(latest(out / "intake", "ALLIANCE_DATA_*.csv"))
    surname = dict(intake.select("record_id", "last_name").iter_rows())
    hits = [tx for tid, sp, tx in units if tid.startswith("INT-") and sp != "Interviewer"
            and re.search(rf"\b{surname[tid.split('-')[1]]}\b", tx)]
    assert hits


# ---------------------------------------------------------------------------------------------- calibration
def test_calibration(big):
    intake = read_csv(latest(big / "intake", "ALLIANCE_DATA_*.csv"))
    n = intake.height
    consented = intake.filter(pl.col("consent_date").is_not_null())
    assert 0.76 < consented.height / n < 0.85
    c = consented
    share = lambda expr: c.select(expr.cast(pl.Float64).mean()).item()  # noqa: E731
    assert abs(share(pl.col("sex") == "1") - 0.615) < 0.03
    assert abs(c["age"].cast(pl.Int64).mean() - 39) < 1.0
    assert 9 < c["age"].cast(pl.Int64).std() < 12
    assert c["age"].cast(pl.Int64).min() >= 18
    assert abs(share(pl.col("homeless") == "1") - 0.42) < 0.03
    assert abs(share(pl.col("employed") == "1") - 0.15) < 0.025
    assert abs(share(pl.col("drug_of_choice").is_in(["1", "2"])) - 0.69) < 0.03
    assert abs(share(pl.col("drug_of_choice").is_in(["3", "4"])) - 0.31) < 0.03
    assert abs(share(pl.col("education").cast(pl.Int64) >= 2) - 0.65) < 0.03
    assert abs(share(pl.col("marital_status") == "1") - 0.54) < 0.03
    assert abs(share(pl.col("race___4") == "1") - 0.5) < 0.04
    assert abs(share(pl.col("race___5") == "1") - 0.47) < 0.04
    prior = c["prior_tx_episodes"].cast(pl.Int64)
    assert abs((prior > 0).mean() - 0.85) < 0.025
    assert abs((prior == 1).sum() / (prior > 0).sum() - 1 / 3) < 0.04
    notc = intake.filter(pl.col("consent_date").is_null())
    assert set(notc["decline_reason"].drop_nulls()) == {"1", "2", "3"}
    assert (consented["rand_arm"].is_null()).sum() >= 1  # consented, not randomized
    rnd = intake.filter(pl.col("rand_arm").is_not_null())
    for arm in ("1", "2", "3"):
        assert abs((rnd["rand_arm"] == arm).mean() - 1 / 3) < 0.02
    # sessions: ~20% of intervention clients never attend; attenders average ~3.5 of 5
    events = read_events(latest(big / "sessions", "sessions_*.jsonl"))
    counted = counted_cm_sessions(events)
    end = dt.date(2025, 12, 5)
    for arm in ("1", "2"):
        done = rnd.filter((pl.col("rand_arm") == arm)
                          & (pl.col("rand_date").str.to_date() <= end - dt.timedelta(days=61)))
        k = [len(counted.get(r, ())) for r in done["record_id"]]
        never = sum(1 for x in k if x == 0) / len(k)
        attenders = [x for x in k if x > 0]
        assert abs(never - 0.20) < 0.04, never
        assert abs(sum(attenders) / len(attenders) - 3.5) < 0.2
    # linkage to treatment within 60 days: 40-60%, higher for SBCM than Standard
    rand_date = dict(rnd.select("record_id", pl.col("rand_date").str.to_date()).iter_rows())
    arm_of = dict(rnd.select("record_id", "rand_arm").iter_rows())
    first_admit = {}
    for e in events:
        if e["event_type"] == "treatment_admitted":
            d = local_date(e["occurred_at"])
            first_admit[e["record_id"]] = min(d, first_admit.get(e["record_id"], d))
    eligible = [r for r, d in rand_date.items() if d <= end - dt.timedelta(days=61)]
    linked = {r for r in eligible if r in first_admit and 0 <= (first_admit[r] - rand_date[r]).days <= 60}
    rate = {a: sum(r in linked for r in eligible if arm_of[r] == a) / sum(arm_of[r] == a for r in eligible)
            for a in "123"}
    assert 0.4 <= len(linked) / len(eligible) <= 0.6
    assert rate["1"] > rate["3"]
    kinds = {e["event_type"] for e in events}
    assert kinds == EVENT_TYPES
    reasons = [e["discharge_reason"] for e in events if e["event_type"] == "treatment_discharged"]
    assert max(set(reasons), key=reasons.count) == "dropped_out"
    # alliance rises over sessions
    wai = read_csv(latest(big / "alliance", "ALLIANCE_WAI_DATA_*.csv")).filter(
        pl.col("redcap_repeat_instrument") == "wai_client")
    means = (wai.with_columns(pl.mean_horizontal([pl.col(f"waic_{i}").cast(pl.Float64) for i in range(1, 13)])
                              .alias("m"))
             .group_by("waic_session").agg(pl.col("m").mean()).sort("waic_session"))
    m = dict(means.iter_rows())
    assert m["5"] > m["1"]
    # 5-8% of randomized interviewed
    interviewed = {t.split("-")[1] for t in _all_transcript_ids(big) if t.startswith("INT-")}
    assert 0.04 <= len(interviewed) / rnd.height <= 0.08


# ---------------------------------------------------------------------------------------------- nights
def test_nights_layout(nightly, study):
    out, _ = study
    nights = sorted(p.name for p in nightly.iterdir())
    assert nights == ["night-01", "night-02", "night-03", "night-04"]
    dict_bytes = {(nightly / n / "intake" / "data_dictionary.csv").read_bytes() for n in nights}
    assert len(dict_bytes) == 1
    seen_ids: set[str] = set()
    prev_records: set[str] = set()
    all_lines = []
    for k, n in enumerate(nights):
        zone = nightly / n
        snaps = sorted((zone / "intake").glob("ALLIANCE_DATA_*.csv"))
        assert len(snaps) == (2 if k == 0 else 1)
        day = dt.date.fromisoformat(snaps[-1].name.split("_")[2])
        assert snaps[-1].name.endswith("_2305.csv")
        records = set(read_csv(snaps[-1])["record_id"])
        assert prev_records <= records  # full snapshots, nothing removed
        prev_records = records
        session_files = list((zone / "sessions").glob("*.jsonl"))
        assert [p.name for p in session_files] == [f"sessions_{day.isoformat()}.jsonl"]
        lines = session_files[0].read_text(encoding="utf-8").splitlines()
        all_lines += lines
        events = [json.loads(x) for x in lines]
        ids = {e["event_id"] for e in events}
        assert not ids & seen_ids  # only new events each night
        seen_ids |= ids
        for e in events:
            rec = dt.datetime.fromisoformat(e["recorded_at"])
            cut = dt.datetime.combine(day, dt.time(23, 5), tzinfo=rec.tzinfo)
            assert rec <= cut
            if k > 0:
                assert rec > cut - dt.timedelta(days=1)
        if k > 0:
            assert len(list((zone / "alliance").glob("ALLIANCE_WAI_DATA_*.csv"))) == 1
    # a late-recorded event arrives on a later night
    later = [json.loads(x) for n in nights[1:] for x in
             (nightly / n / "sessions").glob("*.jsonl").__next__().read_text().splitlines()]
    first_day = dt.date.fromisoformat(sorted((nightly / "night-02" / "intake").glob("*.csv"))[0].name.split("_")[2])
    assert any(local_date(e["occurred_at"]) < first_day - dt.timedelta(days=1) for e in later)
    # the nights together hold the same events as the single landing zone of the same study
    single = latest(out / "sessions", "sessions_*.jsonl").read_text(encoding="utf-8").splitlines()
    assert sorted(all_lines) == sorted(single)
    # the last night's snapshot is the single zone's final snapshot
    last = sorted((nightly / nights[-1] / "intake").glob("ALLIANCE_DATA_*.csv"))[-1]
    assert last.read_bytes() == latest(out / "intake", "ALLIANCE_DATA_*.csv").read_bytes()
    # coded units arrive over the nights, none twice; the last night brings some
    units = [read_csv(p) for p in sorted(nightly.rglob("coded_units_*.csv"))]
    all_ids = pl.concat([u["unit_id"] for u in units]) if units else pl.Series([], dtype=pl.String)
    assert all_ids.is_unique().all()
    assert list((nightly / nights[-1] / "transcripts").glob("*")), "the last night brings new coded units"


def test_project_qde_validates_against_the_refi_qda_schema(study):
    import xmlschema

    out, _ = study
    schema = xmlschema.XMLSchema(str(XSD))
    qdpx = sorted((out / "transcripts").glob("*.qdpx"))
    assert qdpx
    for path in qdpx:
        with zipfile.ZipFile(path) as z:
            schema.validate(z.read("project.qde").decode("utf-8"))


@pytest.mark.parametrize("n, nights", [(1, None), (2, 3), (7, None), (40, 2)])
def test_tiny_studies_do_not_break(tmp_path, n, nights):
    summary = generate_study(tmp_path / "t", n, nights=nights, seed=3)
    assert summary["assessed"] == n
    for p in (tmp_path / "t").rglob("*.csv"):
        read_csv(p)
    for p in (tmp_path / "t").rglob("*.jsonl"):
        read_events(p)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        generate_study(tmp_path, 0)
    with pytest.raises(ValueError):
        generate_study(tmp_path, 10, nights=0)
