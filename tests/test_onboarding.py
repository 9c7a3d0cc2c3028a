"""Real REDCap projects (REDCapR's test projects) onboarded by a study profile alone, end to end:
the NIH Inclusion Enrollment grid of the funder extract, worked out by hand from each data.csv,
a table1 of the enrolled, and no identifier value of the project in any published byte."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import duckdb
import polars as pl
import pytest
from conftest import SAMPLES, SECRET, warehouse_env

from orchestration.cli import main

PROFILES = Path(__file__).resolve().parents[1] / "ingestion" / "profiles"

# The non-zero cells (ethnicity, race, sex) -> n, by hand from each project's data.csv and dictionary.
GRIDS = {
    # 1: sex FALSE (0 Female), ethnicity 1 (NOT Hispanic), race___5 White
    # 2: TRUE (1 Male), 1, race___3 + race___5 -> More than one race
    # 3: TRUE, 0 (Unknown / Not Reported), race___4 + race___5 -> More than one race
    # 4: FALSE, 1, race___2 + race___5 -> More than one race
    # 5: TRUE, 2 (Hispanic), race___1 + race___6: Unknown counts only alone -> American Indian or Alaska Native
    "project-simple": {
        ("Not Hispanic or Latino", "White", "Female"): 1,
        ("Not Hispanic or Latino", "More than One Race", "Male"): 1,
        ("Unknown/Not Reported Ethnicity", "More than One Race", "Male"): 1,
        ("Not Hispanic or Latino", "More than One Race", "Female"): 1,
        ("Hispanic or Latino", "American Indian or Alaska Native", "Male"): 1,
    },
    # base rows only (the bp rows are repeat instances): 1: sex 0 Female, ethnicity 1 NOT Hispanic,
    # race 4 White; 2: sex 1 Male, ethnicity 0 Hispanic, race 6 Unknown / Not Reported;
    # 3, 4, 5: nothing recorded -> unknown in all three
    "repeating-instruments-sparse": {
        ("Not Hispanic or Latino", "White", "Female"): 1,
        ("Hispanic or Latino", "Unknown or Not Reported", "Male"): 1,
        ("Unknown/Not Reported Ethnicity", "Unknown or Not Reported", "Unknown/Not Reported"): 3,
    },
    # the enrollment rows (enrollment_arm_1 for 100 and 220, enrollment_arm_2 for 304; every other
    # event's row is not intake): 100 sex 1 Male, ethnicity 0 Hispanic, race 4 White; 220 sex 0
    # Female, ethnicity 2 Unknown / Not Reported, race 1 Asian; 304 Female, 2, race 4 White
    "longitudinal": {
        ("Hispanic or Latino", "White", "Male"): 1,
        ("Unknown/Not Reported Ethnicity", "Asian", "Female"): 1,
        ("Unknown/Not Reported Ethnicity", "White", "Female"): 1,
    },
    # two records, sex, race and ethnicity blank for both
    "survey": {("Unknown/Not Reported Ethnicity", "Unknown or Not Reported", "Unknown/Not Reported"): 2},
    # three records, sex, race and ethnicity blank for all
    "dag": {("Unknown/Not Reported Ethnicity", "Unknown or Not Reported", "Unknown/Not Reported"): 3},
}


def identifier_values(project: str) -> set[str]:
    folder = SAMPLES / "redcap" / project
    dictionary = list(csv.DictReader(open(folder / "dictionary.csv", encoding="utf-8-sig")))
    fields = {r["Variable / Field Name"] for r in dictionary if (r.get("Identifier?") or "").strip().lower() == "y"}
    # and the fields the profiles map to identifier concepts, flagged or not (survey's dob is not)
    fields |= {"dob", "email", "first_name", "last_name", "name_first", "name_last", "address", "telephone",
               "telephone_1", "redcap_survey_identifier"}
    rows = list(csv.DictReader(open(folder / "data.csv", encoding="utf-8-sig")))
    return {r[f].strip() for r in rows for f in fields if f in r and len((r[f] or "").strip()) >= 4}


@pytest.fixture(scope="module", params=sorted(GRIDS))
def onboarded(request, tmp_path_factory):
    project = request.param
    tmp = tmp_path_factory.mktemp(project)
    intake = tmp / "landing" / "intake"
    intake.mkdir(parents=True)
    folder = SAMPLES / "redcap" / project
    (intake / f"{project.upper()}_DataDictionary_2024-05-31.csv").write_bytes((folder / "dictionary.csv").read_bytes())
    (intake / f"{project.upper()}_DATA_2024-06-01_1200.csv").write_bytes((folder / "data.csv").read_bytes())
    with warehouse_env(tmp, SECRET, ALLIANCE_STUDY_PROFILE=str(PROFILES / f"{project}.yaml")):
        assert main(["check-profile"]) == 0
        assert main(["run"]) == 0
        assert main(["extract", "--as-of", "2024-12-31"]) == 0
    extract = next((tmp / "warehouse" / "extracts" / "funder").iterdir())
    return project, tmp / "warehouse", extract


def test_the_nih_grid_is_exact(onboarded):
    project, _, extract = onboarded
    grid = pl.read_csv(extract / "nih_inclusion_enrollment.csv")
    assert grid.height == 63
    cells = {(e, r, s): n for e, r, s, n in grid.iter_rows() if n}
    assert cells == GRIDS[project]


def test_table1_counts_the_enrolled(onboarded):
    project, warehouse, _ = onboarded
    with duckdb.connect(str(warehouse / "analytics.duckdb"), read_only=True) as con:
        cohorts = {r[0] for r in con.execute("select distinct cohort from table1").fetchall()}
        sex = dict(con.execute("select level, n from table1 where cohort = 'enrolled' and stratum = 'Overall' "
                               "and characteristic = 'sex'").fetchall())
        flow = con.execute("select stage, arm, n from consort_flow order by stage_order").fetchall()
        # race codes labelled `More Than One Race` map to the level table1 derives: one row, not two
        mtor = con.execute("select count(*) from table1 where characteristic = 'race' "
                           "and level = 'More than one race' group by cohort, stratum").fetchall()
    expected = sum(GRIDS[project].values())
    assert mtor and {n for (n,) in mtor} == {1}
    assert cohorts == {"enrolled", "qualitative"}  # no arms: no randomized cohort
    assert flow[0] == ("assessed", "All", expected) and flow[-1] == ("enrolled", "All", expected)
    by_sex = {"Female": 0, "Male": 0}
    for (_, _, s), n in GRIDS[project].items():
        if s in by_sex:
            by_sex[s] += n
    assert {k: sex.get(k, 0) for k in by_sex} == by_sex


def _published_text(warehouse: Path, extract: Path) -> list[str]:
    texts = []
    with duckdb.connect(str(warehouse / "analytics.duckdb"), read_only=True) as con:
        for table, column in con.execute(
            "select table_name, column_name from duckdb_columns() "
            "where schema_name = 'main' and not internal and data_type like 'VARCHAR%'"
        ).fetchall():
            texts += [v for (v,) in con.execute(f'select distinct "{column}" from "{table}"').fetchall() if v]
    for path in extract.rglob("*"):
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as z:
                texts += [z.read(n).decode("utf-8", "replace") for n in z.namelist()]
        elif path.is_file():
            texts.append(path.read_bytes().decode("utf-8", "replace"))
    return texts


def test_no_identifier_of_the_project_is_published(onboarded):
    project, warehouse, extract = onboarded
    values = identifier_values(project)
    published = _published_text(warehouse, extract)
    leaked = {v for v in values for t in published if v in t}
    assert not leaked, f"{len(leaked)} identifier value(s) published"


# (site, consented_on, age, sex_label) per participant, by hand from each data.csv: every record is
# consented (all_consented) on its assessment date, else the day of the first export that held it
# (2024-06-01); age is the project's own field, else whole years from dob at that date.
PEOPLE = {
    # no assessment date; age is its own `age` field; sex 0/FALSE Female, 1/TRUE Male (dictionary labels)
    "project-simple": [(None, "2024-06-01", 11, "Female"), (None, "2024-06-01", 11, "Male"),
                       (None, "2024-06-01", 59, "Male"), (None, "2024-06-01", 61, "Female"),
                       (None, "2024-06-01", 80, "Male")],
    # date_enrolled is the assessment date: 1 born 2010-10-14, enrolled 2019-10-14 -> 9 (the birthday);
    # 2 born 2010-02-02, enrolled 2019-02-02 -> 9; 3 and 4 enrolled 2021-11-04 without dob; 5 has neither
    "repeating-instruments-sparse": [(None, "2019-02-02", 9, "Male"), (None, "2019-10-14", 9, "Female"),
                                     (None, "2021-11-04", None, None), (None, "2021-11-04", None, None),
                                     (None, "2024-06-01", None, None)],
    # date_enrolled is the assessment date, 2015-04-02 for all three: 100 born 1983-09-23 -> 31;
    # 220 born 2011-02-12 -> 4; 304 born 2005-04-02 -> 10 (the birthday)
    "longitudinal": [(None, "2015-04-02", 4, "Female"), (None, "2015-04-02", 10, "Female"),
                     (None, "2015-04-02", 31, "Male")],
    # no assessment date: age from dob at the first export (2024-06-01): born 2018-03-06 -> 6,
    # born 2018-03-05 -> 6; sex not recorded
    "survey": [(None, "2024-06-01", 6, None), (None, "2024-06-01", 6, None)],
    # sites are the data access groups; nothing else recorded
    "dag": [("daga", "2024-06-01", None, None), ("daga", "2024-06-01", None, None),
            ("dagb", "2024-06-01", None, None)],
}


def test_consent_dates_ages_sites_and_the_study_s_own_labels(onboarded):
    project, warehouse, _ = onboarded
    with duckdb.connect(str(warehouse / "analytics.duckdb"), read_only=True) as con:
        rows = con.execute("select site, cast(consented_on as varchar), age, sex_label from participants "
                           "order by consented_on, age, sex_label, site").fetchall()
    assert rows == sorted(PEOPLE[project], key=lambda r: (r[1], r[2] is None, r[2] or 0, r[3] or "~", r[0] or ""))


def test_participant_level_holds_those_who_consented_to_share(onboarded):
    # project-simple's profile fixes consent_share = 1 for every record (a constant): its 5 people;
    # the other projects record no consent to share: nobody
    project, _, extract = onboarded
    rows = pl.read_csv(extract / "participant_level.csv", infer_schema=False)
    assert rows.height == (5 if project == "project-simple" else 0)
    assert set(rows["arm"].to_list()) <= {"Not randomized"}
