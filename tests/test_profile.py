"""The study profile (CONTRACT 1.5): its form, and its fit to the data dictionary, checked before
anything is written. Every mistake is refused with exit 2, naming the file and the key; nothing
(no key file, no vault, no published file) is written."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from conftest import FIXTURES, SAMPLES, land

from ingestion import redcap
from ingestion.profile import (
    DictionaryView,
    ProfileError,
    check_profile,
    load_profile,
    normalised_label,
    resolve_codes,
)
from ingestion.settings import DEFAULT_PROFILE
from orchestration.cli import main

SIMPLE_DICT = SAMPLES / "redcap" / "project-simple" / "dictionary.csv"


def dictionary(path: Path = FIXTURES / "intake_dictionary.csv", name: str = "data_dictionary.csv") -> DictionaryView:
    return DictionaryView.of(name, redcap.parse_dictionary(path.read_bytes()))


def write_profile(tmp_path: Path, body: str, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


# project-simple codes sex 0 Female / 1 Male; ethnicity 0 Unknown / Not Reported, 1 NOT Hispanic or Latino,
# 2 Hispanic or Latino; race is a checkbox 1..6 whose labels 1 and 6 are not the contract's wording.
SIMPLE = """\
    name: project-simple
    intake:
      fields: {record_id: record_id, sex: sex, ethnicity: ethnicity, race: race}
      codes:
        ethnicity: {"0": Unknown or not reported}
        race: {"1": American Indian or Alaska Native, "6": Unknown or not reported}
      all_consented: true
    """


def test_the_default_profile_fits_the_generated_dictionary(tmp_path):
    from ingestion.synth import generate_study

    generate_study(tmp_path / "landing", 30, seed=3)
    view = dictionary(tmp_path / "landing" / "intake" / "data_dictionary.csv")
    profile = load_profile(DEFAULT_PROFILE)
    assert check_profile(profile, view) == []
    resolved, _ = resolve_codes(profile, view)
    # every code resolved: by the profile (arms, scopes) or by its dictionary label (sex, race, ethnicity)
    assert resolved["sex"] == {"1": "Male", "2": "Female", "3": "Unknown or not reported"}
    assert resolved["arms"] == {"1": "SBCM", "2": "MI", "3": "Standard"}
    assert resolved["withdrawal_scope"] == {"1": "1", "2": "2"}
    assert profile.arm_services == {"SBCM": "case_management", "MI": "motivational_interviewing", "Standard": None}


def test_codes_unmapped_fall_back_to_the_dictionary_label_ignoring_case_and_punctuation(tmp_path):
    profile = load_profile(write_profile(tmp_path, SIMPLE))
    resolved, problems = resolve_codes(profile, dictionary(SIMPLE_DICT, "dictionary.csv"))
    assert problems == []
    # "NOT Hispanic or Latino" matches "Not Hispanic or Latino" (case); "Black or African American" as is
    assert resolved["ethnicity"] == {"0": "Unknown or not reported", "1": "Not Hispanic or Latino",
                                     "2": "Hispanic or Latino"}
    assert resolved["sex"] == {"0": "Female", "1": "Male"}
    assert resolved["race"]["1"] == "American Indian or Alaska Native"
    assert resolved["race"]["4"] == "Black or African American"
    assert normalised_label("Unknown / Not-Reported!") == normalised_label("unknown notreported")


def test_the_long_form_of_arms_with_services(tmp_path):
    profile = load_profile(write_profile(tmp_path, """\
        intake:
          fields: {record_id: record_id, rand_arm: rand_arm}
          arms:
            "1": {label: Peer navigation, service: case_management}
            "2": {label: Usual care, service: standard_referral}
            "3": SBCM
        """))
    assert profile.arms == {"1": "Peer navigation", "2": "Usual care", "3": "SBCM"}
    # standard_referral is the referral itself: that arm receives its intervention by allocation
    assert profile.arm_services == {"Peer navigation": "case_management", "Usual care": None,
                                    "SBCM": "case_management"}
    assert profile.randomized


HOSTILE = {
    "unknown top-level key": ("""\
        intake: {fields: {record_id: record_id}}
        colour: blue
        """, "study.yaml: colour: unknown key"),
    "unknown intake key": ("""\
        intake: {fields: {record_id: record_id}, armz: {}}
        """, "study.yaml: intake.armz: unknown key"),
    "unknown concept": ("""\
        intake: {fields: {record_id: record_id, shoe_size: shoes}}
        """, "intake.fields: unknown concept(s) shoe_size"),
    "label that is not the contract's": ("""\
        intake: {fields: {record_id: record_id, sex: sex}, codes: {sex: {"1": Man}}}
        """, "codes.sex.1: `Man` is not a contract label"),
    "codes of an unmapped concept": ("""\
        intake: {fields: {record_id: record_id}, codes: {race: {"1": Asian}}}
        """, "codes.race: the concept is not mapped in `fields`"),
    "short arm that is not the contract's": ("""\
        intake: {fields: {record_id: record_id, rand_arm: rand_arm}, arms: {"1": Control}}
        """, "arm 1: the short form names one of SBCM, MI, Standard"),
    "service that is not a session-log service": ("""\
        intake: {fields: {record_id: record_id, rand_arm: rand_arm}, arms: {"1": {label: A, service: yoga}}}
        """, "intake.arms.1"),
    "rand_arm without arms": ("""\
        intake: {fields: {record_id: record_id, rand_arm: rand_arm}}
        """, "`fields.rand_arm` is mapped but `arms` is empty"),
    "no record_id": ("""\
        intake: {fields: {sex: sex}}
        """, "the concept `record_id` must be mapped"),
    "not YAML": ("intake: [unclosed\n", "cannot be read as YAML"),
    "drug class outside the contract's": ("""\
        intake: {fields: {record_id: record_id}, drug_classes: {"1": Alcohol}}
        """, "intake.drug_classes.1"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_malformed_profile_is_refused_naming_the_key(tmp_path, case):
    body, expected = HOSTILE[case]
    with pytest.raises(ProfileError) as err:
        load_profile(write_profile(tmp_path, body))
    assert any(expected in line for line in err.value.problems), err.value.problems


MISFITS = {
    "field the dictionary lacks": (
        'intake: {fields: {record_id: record_id, sex: gender}}',
        "intake.fields.sex: field `gender` is not in data_dictionary.csv"),
    "code the dictionary does not list": (
        'intake: {fields: {record_id: record_id, sex: sex}, codes: {sex: {"9": Male}}}',
        "intake.codes.sex.9: code `9` is not among the codes data_dictionary.csv lists for `sex` (1, 2, 3)"),
    "unmapped code whose label matches nothing": (
        # the fixture's arm labels are long names: the profile's arm labels do not match code 3
        'intake: {fields: {record_id: record_id, rand_arm: rand_arm}, arms: {"1": SBCM, "2": MI}}',
        "intake.arms: code `3` (Standard referral) of `rand_arm` in data_dictionary.csv is not mapped"),
    "derive from a missing field": (
        'intake: {fields: {record_id: record_id}, derive: {age: {from: birth_date}}}',
        "intake.derive.age.from: `birth_date` names no field of data_dictionary.csv"),
    "safe free text the dictionary lacks": (
        'intake: {fields: {record_id: record_id}, safe_free_text: [hobby]}',
        "intake.safe_free_text: field `hobby` is not in data_dictionary.csv"),
    "concept in a free-text field not declared safe": (
        'intake: {fields: {record_id: record_id, education: staff_notes}}',
        "intake.fields.education: `staff_notes` is free text in data_dictionary.csv (kept in the vault only)"),
    "concept in an identifier field": (
        'intake: {fields: {record_id: record_id, marital_status: first_name}, safe_free_text: [first_name]}',
        "intake.fields.marital_status: `first_name` is marked as an identifier in data_dictionary.csv"),
    "withdrawal scope code not listed": (
        'intake: {fields: {record_id: record_id, withdrawal_scope: withdrawal_scope}, withdrawal_scopes: {"7": 2}}',
        "intake.withdrawal_scopes.7: code `7` is not among the codes"),
}


@pytest.mark.parametrize("case", sorted(MISFITS))
def test_a_profile_that_does_not_fit_the_dictionary_names_the_key(tmp_path, case):
    body, expected = MISFITS[case]
    problems = check_profile(load_profile(write_profile(tmp_path, body + "\n")), dictionary())
    assert any(expected in line for line in problems), problems


def test_every_problem_is_reported_at_once(tmp_path):
    body = """\
        intake:
          fields: {record_id: record_id, sex: gender, race: race}
          codes: {race: {"8": Asian}}
          derive: {age: {from: dob}}
        """
    problems = check_profile(load_profile(write_profile(tmp_path, body)), dictionary())
    assert len(problems) == 3, problems  # gender missing, race code 8 not listed, dob missing


def _nothing_written(settings) -> bool:
    wh = settings.warehouse_dir
    return not wh.exists() or not any(p for p in wh.rglob("*") if p.is_file())


@pytest.mark.parametrize("command", ["run", "check-profile"])
def test_the_cli_refuses_a_misfit_with_exit_2_and_writes_nothing(tmp_path, monkeypatch, capsys, wh, command):
    land(wh, "intake", "data_dictionary.csv", FIXTURES / "intake_dictionary.csv")
    profile = write_profile(tmp_path, 'intake: {fields: {record_id: record_id, sex: gender}, colour: 1}\n')
    monkeypatch.setenv("ALLIANCE_STUDY_PROFILE", str(profile))
    monkeypatch.delenv("ALLIANCE_SECRET_KEY")  # a key file would be created for a new warehouse
    assert main([command]) == 2
    err = capsys.readouterr().err
    assert "study profile does not fit" in err and "study.yaml: intake.colour: unknown key" in err
    assert "Traceback" not in err
    assert _nothing_written(wh)


def test_check_profile_against_a_redcap_download_name(tmp_path, monkeypatch, capsys, wh):
    land(wh, "intake", "SIMPLE_DataDictionary_2024-05-01.csv", SIMPLE_DICT)
    monkeypatch.setenv("ALLIANCE_STUDY_PROFILE", str(write_profile(tmp_path, SIMPLE)))
    assert main(["check-profile"]) == 0
    assert "fits the intake data dictionary" in capsys.readouterr().out
    # the newest download is the dictionary in effect: one that drops `ethnicity` is a misfit
    text = SIMPLE_DICT.read_text(encoding="utf-8")
    drifted = "\n".join(line for line in text.splitlines() if not line.startswith("ethnicity,"))
    land(wh, "intake", "SIMPLE_DataDictionary_2024-06-01.csv", drifted + "\n")
    assert main(["check-profile"]) == 2
    assert "intake.fields.ethnicity: field `ethnicity` is not in intake/SIMPLE_DataDictionary_2024-06-01.csv" \
        in capsys.readouterr().err


def test_check_profile_without_any_dictionary_is_a_configuration_error(wh, capsys):
    assert main(["check-profile"]) == 2
    assert "no intake data dictionary has landed" in capsys.readouterr().err


def test_dictionary_drift_of_a_fixed_concept_stops_the_run_and_other_new_codes_flow(tmp_path, monkeypatch, capsys, wh):
    from ingestion.ingest import ingest_landing
    from ingestion.synth import generate_study

    generate_study(tmp_path / "study", 20, seed=5)
    base = (tmp_path / "study" / "intake" / "data_dictionary.csv").read_text(encoding="utf-8")
    land(wh, "intake", "data_dictionary.csv", base)
    profile = load_profile(DEFAULT_PROFILE)
    ingest_landing(wh)  # the vault now holds this dictionary
    # a later dictionary adds drug of choice 8 (flows through as its label) ...
    flows = base.replace("6, Methamphetamine | 7, Other", "6, Methamphetamine | 7, Other | 8, Kratom")
    land(wh, "intake", "ALLIANCE_DataDictionary_2025-01-01.csv", flows)
    from ingestion.profile_check import dictionary_in_effect

    view = dictionary_in_effect(wh)
    assert view.name == "intake/ALLIANCE_DataDictionary_2025-01-01.csv"
    assert check_profile(profile, view) == []
    # ... and a race code 7 "Other race", which no contract label matches: a configuration error
    drifted = flows.replace("6, Unknown or not reported\"", "6, Unknown or not reported | 7, Other race\"")
    land(wh, "intake", "ALLIANCE_DataDictionary_2025-02-01.csv", drifted)
    problems = check_profile(profile, dictionary_in_effect(wh))
    assert len(problems) == 1 and "code `7` (Other race) of `race`" in problems[0], problems
    batches = len(list((wh.landing_dir / "intake").iterdir()))
    monkeypatch.setenv("ALLIANCE_STUDY_PROFILE", str(DEFAULT_PROFILE))
    assert main(["run"]) == 2
    assert "code `7` (Other race) of `race`" in capsys.readouterr().err
    from ingestion.vault import open_vault

    conn = open_vault(wh, read_only=True)
    try:  # nothing of the two new dictionaries was ingested
        assert conn.execute("select count(*) from events.batches").fetchone()[0] == 1 < batches
    finally:
        conn.close()


LONGITUDINAL = SAMPLES / "redcap" / "longitudinal"


@pytest.mark.parametrize("event, expected", [
    ("", "intake.event: intake/LONG_DATA_2024-06-01_1200.csv is longitudinal (redcap_event_name) but the profile "
         "names no intake event"),
    ("  event: enrolment_arm_1\n", "intake.event: `enrolment_arm_1` is not an event of intake/LONG_DATA_2024-06-01_1200.csv"),
    ("  event: [enrollment_arm_1, enrollment_arm_2]\n", None),
])
def test_a_longitudinal_export_needs_its_intake_events_named(tmp_path, monkeypatch, capsys, wh, event, expected):
    land(wh, "intake", "data_dictionary.csv", LONGITUDINAL / "dictionary.csv")
    land(wh, "intake", "LONG_DATA_2024-06-01_1200.csv", LONGITUDINAL / "data.csv")
    profile = write_profile(tmp_path, "intake:\n" + event + "  fields: {record_id: study_id}\n")
    monkeypatch.setenv("ALLIANCE_STUDY_PROFILE", str(profile))
    if expected is None:
        assert main(["check-profile"]) == 0
    else:
        assert main(["check-profile"]) == 2
        assert expected in capsys.readouterr().err
