"""Funder and public extracts, replays and locks, end to end on a generated study."""

from __future__ import annotations

import json
import re
import shutil

import polars as pl
import pytest
from conftest import warehouse_env

from ingestion.synth import generate_study
from orchestration.cli import main, run_pipeline
from orchestration.defs.extracts.assets import manifest_mismatches

pytestmark = pytest.mark.slow
AS_OF = "2025-12-04T23:59:00"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("extracts")
    with warehouse_env(tmp, "extract-test-secret-123456", ALLIANCE_MIN_CELL="10", ALLIANCE_K_ANON="5"):
        generate_study(tmp / "nights", 400, nights=2, seed=5)
        shutil.copytree(tmp / "nights" / "night-01", tmp / "landing")
        assert run_pipeline(quiet=True) == 0
        from ingestion.settings import load_settings

        settings = load_settings()
        assert main(["extract", "--as-of", AS_OF]) == 0
        assert main(["extract", "--as-of", AS_OF, "--audience", "public"]) == 0
        yield settings, tmp


def folder(settings, audience, suffix=""):
    [path] = [p for p in (settings.warehouse_dir / "extracts" / audience).iterdir()
              if p.is_dir() and p.name.endswith("Z" + suffix)]
    return path


def test_files_match_their_manifest(study):
    settings, _ = study
    for audience in ("funder", "public"):
        f = folder(settings, audience)
        assert manifest_mismatches(f) == []
        manifest = json.loads((f / "manifest.json").read_text())
        assert manifest["audience"] == audience and manifest["event_store_position"] > 0
        assert {"nih_inclusion_enrollment.csv", "consort_flow.csv", "engagement_by_arm.csv", "retention_by_arm.csv",
                "tables.xlsx", "report.html"} <= set(manifest["files"])
    assert (folder(settings, "funder") / "participant_level.csv").exists()
    assert not (folder(settings, "public") / "participant_level.csv").exists()


def test_nih_grid_has_all_63_cells(study):
    settings, _ = study
    grid = pl.read_csv(folder(settings, "funder") / "nih_inclusion_enrollment.csv")
    assert grid.height == 63 and grid.columns == ["ethnicity", "race", "sex", "n"]
    assert grid.select(pl.struct("ethnicity", "race", "sex").n_unique()).item() == 63


def test_participant_level_is_de_identified_and_k_anonymous(study):
    settings, _ = study
    f = folder(settings, "funder")
    level = pl.read_csv(f / "participant_level.csv", infer_schema=False)
    assert "participant_key" not in level.columns and "record_id" not in level.columns
    text = (f / "participant_level.csv").read_text()
    assert not re.search(r"\b\d{4}-\d{2}-\d{2}\b", text)  # no calendar dates
    assert set(level["age_band"].drop_nulls()) <= {"18-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80-89",
                                                   "90+"}
    combos = level.group_by("age_band", "sex", "race", "ethnicity").len()
    assert combos["len"].min() >= 5
    manifest = json.loads((f / "manifest.json").read_text())
    kanon = manifest["disclosure_control"]["k_anonymity"]
    assert kanon["k"] == 5 and kanon["records_altered"] >= 0
    # only consent_share = 1 participants (the generator gives some 0)
    from ingestion.vault import open_vault

    conn = open_vault(settings, read_only=True)
    try:
        shared = conn.execute(
            """with v as (
                 select e.payload->>'record_id' as rid, j.key as field, j.value->>'$' as value, e.seq
                 from events.events e, json_each(e.payload->'values') j
                 where e.event_type = 'intake_recorded' and e.recorded_at <= ?::timestamptz)
               select count(*) from (
                 select rid, arg_max(value, seq) filter (where field = 'consent_share') as share,
                        arg_max(value, seq) filter (where field = 'consent_date') as consented
                 from v group by rid) where share = '1' and consented is not null""",
            ["2025-12-05 04:59:00+00"]).fetchone()[0]
    finally:
        conn.close()
    assert 0 < level.height + kanon["records_dropped"] <= shared


def test_public_extract_has_no_small_count(study):
    settings, _ = study
    f = folder(settings, "public")
    count_columns = {"n", "randomized", "admitted", "attended_any_n", "linked_n", "iet_initiation_n",
                     "iet_engagement_n", "dropped_out_n"}
    suppressed = 0
    for csv in f.glob("*.csv"):
        df = pl.read_csv(csv)
        for col in set(df.columns) & count_columns:
            values = df[col].drop_nulls().to_list()
            assert not [v for v in values if 1 <= v <= 10], f"{csv.name}.{col}"
            suppressed += df[col].null_count()
    assert suppressed > 0
    manifest = json.loads((f / "manifest.json").read_text())
    assert sum(manifest["disclosure_control"]["suppressed_cells"].values()) >= suppressed


def test_no_identifier_value_in_any_extract_file(study):
    settings, _ = study
    snaps = sorted((settings.landing_dir / "intake").glob("*_DATA_*.csv"))
    intake = pl.read_csv(snaps[-1], infer_schema=False)
    dictionary = (settings.landing_dir / "intake" / "data_dictionary.csv").read_text()
    words = {w.strip(",.|()\"") for w in dictionary.split()}
    names, values = set(), set()
    for col in ("first_name", "last_name"):
        names |= {v for v in intake[col].drop_nulls().to_list() if len(v) >= 4 and v not in words}
    for col in ("phone", "email", "street_address", "dob"):
        values |= set(intake[col].drop_nulls().to_list())
    name_re = re.compile(r"\b(" + "|".join(re.escape(n) for n in sorted(names)) + r")\b")
    for path in (settings.warehouse_dir / "extracts").rglob("*"):
        if path.is_file():
            raw = path.read_bytes()
            assert not [v for v in values if v.encode() in raw], path
            if path.suffix != ".xlsx":  # a zip: its text is compressed (the values check above still holds)
                assert not name_re.search(raw.decode("utf-8")), path


def test_the_same_as_of_gives_the_same_bytes(study):
    settings, tmp = study
    first = folder(settings, "funder")
    kept = tmp / "kept-extract"
    shutil.move(first, kept)
    assert main(["extract", "--as-of", AS_OF]) == 0
    again = folder(settings, "funder")
    for p in sorted(kept.iterdir()):
        assert (again / p.name).read_bytes() == p.read_bytes(), p.name


def test_replay_after_new_data_is_identical_unless_someone_withdrew_all_data(study):
    settings, tmp = study
    night2 = tmp / "nights" / "night-02"
    # new session events only: the replay is byte for byte the original
    shutil.copytree(night2 / "sessions", settings.landing_dir / "sessions", dirs_exist_ok=True)
    assert run_pipeline(quiet=True) == 0
    for audience in ("funder", "public"):
        manifest = folder(settings, audience) / "manifest.json"
        assert main(["extract", "--replay", str(manifest)]) == 0
        replay = folder(settings, audience, "-replay")
        meta = json.loads((replay / "manifest.json").read_text())
        assert meta["identical_to_original"] is True and meta["participants_erased_since"] == 0
        for p in folder(settings, audience).iterdir():
            if p.name != "manifest.json":
                assert (replay / p.name).read_bytes() == p.read_bytes()
        shutil.rmtree(replay)
    # the rest of the night, with a withdrawal of all data: the replay says so
    shutil.copytree(night2, settings.landing_dir, dirs_exist_ok=True)
    assert run_pipeline(quiet=True) == 0
    manifest = folder(settings, "funder") / "manifest.json"
    assert main(["extract", "--replay", str(manifest)]) == 0
    meta = json.loads((folder(settings, "funder", "-replay") / "manifest.json").read_text())
    assert meta["identical_to_original"] or meta["participants_erased_since"] > 0


def test_lock_is_frozen(study, capsys):
    settings, _ = study
    assert main(["lock", "--as-of", AS_OF, "--name", "interim"]) == 0
    lock = settings.warehouse_dir / "locks" / "interim.duckdb"
    before = lock.read_bytes()
    assert main(["lock", "--as-of", AS_OF, "--name", "interim"]) == 2
    assert run_pipeline(quiet=True) == 0
    assert lock.read_bytes() == before
    manifest = json.loads((lock.parent / "interim.manifest.json").read_text())
    import hashlib

    assert manifest["sha256"] == hashlib.sha256(before).hexdigest()
