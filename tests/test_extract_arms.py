"""Extracts with the study profile's arms: a 2-arm study with other labels, a 4-arm study, a study without arms.

Small hand-made frames; the expected numbers are worked out in the comments.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest
from test_extract_lib import _Counter, check_public_suppression, synthetic_study

from orchestration.extracts import arms as armsmod
from orchestration.extracts import report, suppression, tables
from orchestration.extracts.arms import StudyArms

TWO = StudyArms(("Intervention", "Control"), frozenset({"Control"}))  # Control: given by allocation
FOUR = StudyArms(("CM", "MI", "CM+MI", "Usual care"), frozenset({"Usual care"}))
NONE = StudyArms(())  # a study without arms (CONTRACT 1.5)
PROFILES = Path(__file__).resolve().parents[1] / "ingestion" / "profiles"


def _engagement(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema=["arm", "sessions_attended", "attended_any", "linked", "iet_initiation", "iet_engagement"],
        orient="row",
    )


def _retention(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["arm", "days_in_treatment", "censored", "dropped_out"], orient="row")


# Intervention: 5 randomized, sessions 0,1,2,3,0 (attended any 3, total 6), linked 2, IET initiation 1, engagement 0
# Control: 4 randomized, no sessions (given by allocation), linked 3, initiation 2, engagement 1
TWO_ENGAGEMENT = [
    ("Intervention", 0, False, True, True, False),
    ("Intervention", 1, True, True, False, False),
    ("Intervention", 2, True, False, False, False),
    ("Intervention", 3, True, False, False, False),
    ("Intervention", 0, False, False, False, False),
    ("Control", 0, False, True, True, True),
    ("Control", 0, False, True, True, False),
    ("Control", 0, False, True, False, False),
    ("Control", 0, False, False, False, False),
    ("SBCM", 4, True, True, True, True),  # not an arm of this study: ignored
]
# Intervention: discharged at 10 (dropped out) and 40, censored at 100; Control: discharged at 20 (dropped out),
# censored at 35
TWO_RETENTION = [
    ("Intervention", 10, False, True),
    ("Intervention", 40, False, False),
    ("Intervention", 100, True, False),
    ("Control", 20, False, True),
    ("Control", 35, True, False),
]
# assessed 26 = excluded (8 declined + 4 not eligible + 3 not randomized) + randomized 11;
# randomized 11 = allocated 6 (Intervention) + 5 (Control); one scope-2 withdrawal in each arm:
# analysed 5 and 4 = engagement's randomized; Control received = allocated (by allocation)
TWO_CONSORT = [
    ("assessed", "All", 26, None),
    ("excluded", "All", 8, "Declined"),
    ("excluded", "All", 4, "Not eligible"),
    ("excluded", "All", 3, "Not randomized"),
    ("randomized", "All", 11, None),
    ("allocated", "Intervention", 6, None),
    ("allocated", "Control", 5, None),
    ("received_intervention", "Intervention", 4, None),
    ("received_intervention", "Control", 5, None),
    ("lost_to_followup", "Intervention", 1, None),
    ("lost_to_followup", "Control", 0, None),
    ("withdrew", "Intervention", 2, None),
    ("withdrew", "Control", 1, None),
    ("analysed", "Intervention", 5, None),
    ("analysed", "Control", 4, None),
]


def _consort(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"stage": pl.Utf8, "arm": pl.Utf8, "n": pl.Int64, "reason": pl.Utf8},
                        orient="row")


# ----------------------------------------------------------------- the profile's arms


def test_arms_from_the_default_profile_and_colours():
    from ingestion.profile import load_profile

    arms = StudyArms.from_profile(load_profile(PROFILES / "default.yaml"))
    assert arms.labels == ("SBCM", "MI", "Standard") and arms.by_allocation == {"Standard"}
    assert arms.rows == ("SBCM", "MI", "Standard", "All") and arms.randomized
    # Okabe-Ito by position, All grey
    assert [arms.color(a) for a in arms.rows] == ["#E69F00", "#56B4E9", "#009E73", "#555555"]
    assert [FOUR.color(a) for a in FOUR.labels] == list(armsmod.OKABE_ITO[:4])
    assert NONE.rows == ("All",) and NONE.plotted == ("All",) and not NONE.randomized
    with pytest.raises(ValueError):
        StudyArms(("All", "X"))
    with pytest.raises(ValueError):
        StudyArms(("A",), frozenset({"B"}))


# ----------------------------------------------------------------- a 2-arm study


def test_two_arm_engagement_by_arm():
    out = tables.engagement_by_arm(_engagement(TWO_ENGAGEMENT), TWO.labels)
    assert out["arm"].to_list() == ["Intervention", "Control", "All"]
    iv, ctl, all_ = out.iter_rows(named=True)
    # Intervention: 3/5 = 60.0 %, mean 6/5 = 1.2, linked 2/5 = 40.0, initiation 1/5 = 20.0, engagement 0
    assert (iv["randomized"], iv["attended_any_n"], iv["attended_any_pct"]) == (5, 3, 60.0)
    assert (iv["sessions_attended_mean"], iv["linked_n"], iv["linked_pct"]) == (1.2, 2, 40.0)
    assert (iv["iet_initiation_pct"], iv["iet_engagement_n"], iv["iet_engagement_pct"]) == (20.0, 0, 0.0)
    # Control: 0/4, mean 0, linked 3/4 = 75.0, initiation 2/4 = 50.0, engagement 1/4 = 25.0
    assert (ctl["randomized"], ctl["attended_any_pct"], ctl["sessions_attended_mean"]) == (4, 0.0, 0.0)
    assert (ctl["linked_pct"], ctl["iet_initiation_pct"], ctl["iet_engagement_pct"]) == (75.0, 50.0, 25.0)
    # All (the SBCM row left out): 9; attended 3/9 = 33.3; mean 6/9 = 0.67; linked 5/9 = 55.6; initiation 3/9
    assert (all_["randomized"], all_["attended_any_pct"], all_["sessions_attended_mean"]) == (9, 33.3, 0.67)
    assert (all_["linked_n"], all_["linked_pct"], all_["iet_initiation_n"]) == (5, 55.6, 3)


def test_two_arm_retention_by_arm():
    out = tables.retention_by_arm(_retention(TWO_RETENTION), TWO.labels)
    assert out["arm"].to_list() == ["Intervention", "Control", "All"]
    iv, ctl, all_ = out.iter_rows(named=True)
    # Intervention: S(10) = 2/3, S(40) = 2/3 * 1/2 = 1/3; km_30 = S(29) = 0.6667, km_60 = km_90 = 0.3333
    # (censored at 100, so day 89 is still observed); median: first S <= 0.5 at day 40
    assert (iv["admitted"], iv["dropped_out_n"], iv["dropped_out_pct"]) == (3, 1, 33.3)
    assert (iv["km_30"], iv["km_60"], iv["km_90"], iv["median_days_in_treatment"]) == (0.6667, 0.3333, 0.3333, 40)
    # Control: S(20) = 1/2 -> km_30 = 0.5, median 20; censored at 35: S(59) and S(89) are past follow-up (null)
    assert (ctl["admitted"], ctl["dropped_out_pct"], ctl["km_30"], ctl["median_days_in_treatment"]) == (2, 50.0, 0.5, 20)
    assert ctl["km_60"] is None and ctl["km_90"] is None
    # All: 5 at risk; S(10) = 4/5, S(20) = 4/5 * 3/4 = 3/5; censored at 35; S(40) = 3/5 * 1/2 = 3/10
    assert (all_["admitted"], all_["dropped_out_n"], all_["km_30"], all_["km_60"], all_["km_90"]) == (5, 2, 0.6, 0.3, 0.3)
    assert all_["median_days_in_treatment"] == 40


def test_two_arm_consort_relations_follow_the_arm_given_by_allocation():
    t = suppression.CountTable("consort_flow", _consort(TWO_CONSORT), ("stage", "arm", "reason"), ("n",))
    rels = suppression.consort_relations(t, TWO.labels, TWO.by_allocation)
    named = {r.name: r for r in rels}
    assert set(named) == {"assessed = excluded + randomized", "randomized = sum(allocated)",
                          "Control: received = allocated"}
    values = {(stage, arm, reason): n for stage, arm, n, reason in TWO_CONSORT}

    def value(cell):
        return values[cell.key]

    for r in rels:  # every declared relation holds on the hand-made flow: 26 = 8+4+3+11, 11 = 6+5, 5 = 5
        assert value(r.total) == sum(value(p) for p in r.parts) + r.offset
    # received_intervention of Intervention (4 of 6) is no relation: the arm's sessions decide it
    assert not [r for r in rels if t.cell(("received_intervention", "Intervention", None), "n") in r.cells]
    # with no arm given by allocation, only the two sums remain
    assert len(suppression.consort_relations(t, TWO.labels, ())) == 2


def test_two_arm_public_suppression_of_small_counts():
    # public, min cell 10: every count from 1 to 10 is hidden; assessed (26) and randomized (11) stay, as
    # 26 - 11 = 15 is spread over three hidden exclusions and 11 over two hidden allocations; Control's
    # received (5) is hidden with its allocated (5), which it equals by definition
    eng = tables.engagement_by_arm(_engagement(TWO_ENGAGEMENT), TWO.labels)
    out, counts = suppression.suppress_extract(_consort(TWO_CONSORT), eng, None, None, 10, arms=TWO.labels,
                                               by_allocation=TWO.by_allocation)
    shown = out["consort_flow"]
    assert [n for n in shown["n"].to_list() if n is not None and 1 <= n <= 10] == []
    published = {(s, a): n for s, a, n in shown.select("stage", "arm", "n").iter_rows() if n is not None}
    assert published == {("assessed", "All"): 26, ("randomized", "All"): 11, ("lost_to_followup", "Control"): 0}
    tables_, rels = suppression.extract_tables(_consort(TWO_CONSORT), eng, arms=TWO.labels,
                                               by_allocation=TWO.by_allocation)
    hidden = [suppression.Cell(t.name, t.key_of(r), c) for t in tables_ for r in out[t.name].iter_rows(named=True)
              for c in t.counts if r[c] is None]
    assert hidden and suppression.recoverable_cells(hidden, rels) == []
    # cross-table: randomized(arm) = analysed(arm) per arm of the profile
    assert {r.name for r in rels} >= {"randomized(Intervention) = analysed(Intervention)",
                                      "randomized(Control) = analysed(Control)"}
    assert counts["engagement_by_arm"] > 0


@pytest.mark.parametrize(("arms", "n_assessed", "seed", "min_cell"), [
    (TWO, 150, 1, 10), (TWO, 400, 7, 5), (FOUR, 260, 2, 10), (FOUR, 600, 13, 10),
    (NONE, 90, 5, 10), (NONE, 260, 2, 10), (NONE, 600, 3, 5),
])
def test_public_suppression_withstands_attack_for_other_arms(arms, n_assessed, seed, min_cell):
    study = synthetic_study(n_assessed, seed, arms)
    pub = check_public_suppression(study, min_cell, arms)
    assert pub["engagement_by_arm"]["arm"].to_list() == list(arms.rows)
    assert pub["retention_by_arm"]["arm"].to_list() == list(arms.rows)


# ----------------------------------------------------------------- a study without arms

# every enrolled participant has arm All (day 0 = consent, sessions of any service)
NONE_ENGAGEMENT = [
    ("All", 2, True, True, True, True),
    ("All", 0, False, True, False, False),
    ("All", 1, True, False, False, False),
    ("All", 0, False, False, False, False),
]
NONE_RETENTION = [("All", 10, False, True), ("All", 50, True, False)]
# assessed 7 = excluded (2 declined + 1 not recorded) + enrolled 4; no randomized or per-arm stage
NONE_CONSORT = [
    ("assessed", "All", 7, None),
    ("excluded", "All", 2, "Declined"),
    ("excluded", "All", 1, "Not recorded"),
    ("enrolled", "All", 4, None),
]


def test_without_arms_the_by_arm_files_carry_only_all():
    eng = tables.engagement_by_arm(_engagement(NONE_ENGAGEMENT), NONE.labels)
    # 4 enrolled; attended 2/4 = 50.0; mean 3/4 = 0.75; linked 2/4; initiation 1/4 = 25.0
    assert eng.rows(named=True) == [{
        "arm": "All", "randomized": 4, "attended_any_n": 2, "attended_any_pct": 50.0,
        "sessions_attended_mean": 0.75, "linked_n": 2, "linked_pct": 50.0, "iet_initiation_n": 1,
        "iet_initiation_pct": 25.0, "iet_engagement_n": 1, "iet_engagement_pct": 25.0,
    }]
    ret = tables.retention_by_arm(_retention(NONE_RETENTION), NONE.labels)
    # S(10) = 1/2, censored at 50: km_30 = 0.5, km_60 = S(59) past follow-up (null); median 10
    assert ret["arm"].to_list() == ["All"]
    assert (ret["admitted"][0], ret["km_30"][0], ret["km_60"][0], ret["median_days_in_treatment"][0]) == (
        2, 0.5, None, 10)
    curves = tables.km_curves_by_arm(_retention(NONE_RETENTION), NONE.labels)
    assert list(curves) == ["All"] and curves["All"]["at_risk"][0] == 2


def test_without_arms_no_per_arm_relation_and_consort_stops_at_enrolled():
    eng = tables.engagement_by_arm(_engagement(NONE_ENGAGEMENT), NONE.labels)
    t = suppression.CountTable("engagement_by_arm", eng, ("arm",), tables.ENGAGEMENT_COUNTS)
    # no "All = sum(arms)" (a sum of nothing would give All away as 0)
    assert suppression.arm_total_relations(t, tables.ENGAGEMENT_COUNTS, NONE.labels) == []
    c = suppression.CountTable("consort_flow", _consort(NONE_CONSORT), ("stage", "arm", "reason"), ("n",))
    [rel] = suppression.consort_relations(c, NONE.labels)
    # assessed (7) = excluded (2 + 1) + enrolled (4)
    assert rel.name == "assessed = excluded + enrolled"
    assert rel.total.key == ("assessed", "All", None)
    assert [p.key for p in rel.parts] == [("excluded", "All", "Declined"), ("excluded", "All", "Not recorded"),
                                         ("enrolled", "All", None)]


def test_without_arms_consort_svg_stops_at_enrollment():
    svg = report.consort_svg(_consort(NONE_CONSORT), NONE.labels)
    text = re.sub(r"<[^>]+>", "|", svg)
    assert "Assessed for eligibility|" in text and "|n = 7|" in text
    assert "Excluded (n = 3)" in text  # 7 - 4
    assert "Enrolled|" in text and "|n = 4|" in text
    assert "Allocated" not in svg and "Randomized" not in svg and "Analysed" not in svg
    assert svg.count("<rect") == 3


def test_without_arms_participant_level_says_not_randomized():
    from orchestration.extracts.files import participant_rows

    level = pl.DataFrame({"share_id": ["a", "b"], "arm": [None, None], "sex": ["Male", "Female"]},
                         schema={"share_id": pl.Utf8, "arm": pl.Utf8, "sex": pl.Utf8})
    assert participant_rows(level, NONE)["arm"].to_list() == ["Not randomized", "Not randomized"]
    assert participant_rows(level, TWO).equals(level)


def _svg_text(svg: str) -> list[str]:
    p = _Counter()
    p.feed(svg)
    p.close()
    return [t for t in p.text if t.strip()]


def test_four_arm_consort_fits_and_reconciles():
    study = synthetic_study(300, 4, FOUR)
    cf = study["consort_flow"]
    svg = report.consort_svg(cf, FOUR.labels)
    _svg_text(svg)  # every box inside the drawing (checked by the parser)
    for a in FOUR.labels:
        assert f"Allocated to {a}" in svg
    alloc = cf.filter(pl.col("stage") == "allocated")["n"].sum()
    assert alloc == cf.filter(pl.col("stage") == "randomized")["n"][0]


def _two_arm_context(audience: str = "funder") -> dict:
    from orchestration.extracts import nih

    eng = tables.engagement_by_arm(_engagement(TWO_ENGAGEMENT), TWO.labels)
    ret = tables.retention_by_arm(_retention(TWO_RETENTION), TWO.labels)
    people = pl.DataFrame({"sex": ["Female"] * 5 + ["Male"] * 4, "ethnicity": ["Not Hispanic or Latino"] * 9,
                           "race": ["White"] * 6 + ["Asian"] * 3})
    alliance = pl.DataFrame({"arm": ["Intervention", "Intervention", "Control"], "session_number": [1, 2, 1],
                             "n": [3, 2, 4], "mean_total": [3.5, 3.75, 3.25]})
    return {
        "as_of": "2026-03-01T00:00:00Z", "audience": audience, "consort_flow": _consort(TWO_CONSORT),
        "engagement_by_arm": eng, "retention_by_arm": ret, "nih_grid": nih.nih_enrollment(people), "arms": TWO,
        "km_curves": tables.km_curves_by_arm(_retention(TWO_RETENTION), TWO.labels),
        "alliance_by_session": alliance,
    }


def _consort_numbers(svg: str) -> dict[str, int]:
    """Box title -> its n, from the SVG's text lines (a title line followed by ``n = N``)."""
    lines = _svg_text(svg)
    out = {}
    for title, nxt in zip(lines, lines[1:], strict=False):
        if m := re.fullmatch(r"n = (\d+)", nxt):
            out[title] = int(m.group(1))
        if m := re.fullmatch(r"Excluded \(n = (\d+)\)", title):
            out["Excluded"] = int(m.group(1))
    return out


def test_two_arm_report_names_both_arms_and_its_consort_reconciles():
    text = report.report_html(_two_arm_context())
    for arm in ("Intervention", "Control"):
        assert f"Allocated to {arm}" in text
        assert f'data-arm="{arm}"' in text  # a Kaplan-Meier curve and an alliance line each
    # no arm of the contract's default study anywhere
    assert not re.search(r'data-arm="(SBCM|MI|Standard)"|Allocated to (SBCM|MI|Standard)|\bSBCM\b', text)
    assert "Randomized study with 2 arms, from the study profile: Intervention, Control." in text
    assert "Control: the intervention is given by allocation" in text
    # colours by position: Intervention orange, Control sky blue
    assert re.search(r'class="km" data-arm="Intervention"[^>]*stroke="#E69F00"', text)
    assert re.search(r'class="km" data-arm="Control"[^>]*stroke="#56B4E9"', text)
    svg = text[text.index('<svg class="consort"'):text.index("</svg>")]
    n = _consort_numbers(svg)
    # Assessed 26 -> Excluded 15 (26 - 11) -> Randomized 11 -> Allocated 6 + 5
    assert n["Assessed for eligibility"] == 26 and n["Excluded"] == 15 and n["Randomized"] == 11
    assert n["Assessed for eligibility"] == n["Excluded"] + n["Randomized"]
    assert n["Allocated to Intervention"] + n["Allocated to Control"] == n["Randomized"]
    # each arm: Allocated, Received, Follow-up and Analysed boxes (4 per arm) under the three enrollment boxes
    assert svg.count("<rect") == 3 + 4 * 2
    assert svg.count("Analysed") == 2


# ----------------------------------------------------------------- Table 1


def _mart_table1() -> pl.DataFrame:
    """The table1 mart, by hand: 3 enrolled (2 Male, 1 Female; ages 30, 40, 50), 2 of them randomized to
    Intervention (1 Male, 1 Female) and none to Control; cooccurring counts a person under each label."""
    rows = []
    for cohort, stratum, male, female, ages in [
        ("enrolled", "Overall", 2, 1, [30, 40, 50]),
        ("randomized", "Overall", 1, 1, [30, 50]),
        ("randomized", "Intervention", 1, 1, [30, 50]),
        ("randomized", "Control", 0, 0, []),
        ("qualitative", "Overall", 1, 0, [40]),
    ]:
        n = male + female
        mean = sum(ages) / len(ages) if ages else None
        sd = 10.0 if len(ages) == 3 else (14.142135623730951 if len(ages) == 2 else None)
        rows.append((cohort, stratum, "age", None, len(ages), None, mean, sd, 1, 0))
        for order, (level, k) in enumerate([("Male", male), ("Female", female), ("Unknown or not reported", 0)]):
            rows.append((cohort, stratum, "sex", level, k, round(100 * k / n, 1) if n else None, None, None, 2,
                         order + 1))
        rows.append((cohort, stratum, "cooccurring", "Anxiety", n, 100.0 if n else None, None, None, 3, 1))
        rows.append((cohort, stratum, "cooccurring", "Depression", n, 100.0 if n else None, None, None, 3, 2))
    return pl.DataFrame(rows, orient="row", schema=["cohort", "stratum", "characteristic", "level", "n", "pct",
                                                      "mean", "sd", "characteristic_order", "level_order"])


def test_table1_shows_the_enrolled_without_arms_and_the_randomized_otherwise():
    none = tables.table1_by_arm(_mart_table1(), NONE.labels)
    assert tables.table1_cohort(NONE.labels) == "enrolled" and set(none["stratum"]) == {"Overall"}
    # participants = Male 2 + Female 1 + Unknown 0 = 3 (cooccurring, multi-valued, is not summed)
    assert none.row(0, named=True) == {"stratum": "Overall", "characteristic": "participants", "level": None,
                                       "n": 3, "pct": None, "mean": None, "sd": None}
    assert none.filter(pl.col("characteristic") == "age")["mean"].to_list() == [40.0]
    two = tables.table1_by_arm(_mart_table1(), TWO.labels)
    assert tables.table1_cohort(TWO.labels) == "randomized"
    heads = two.filter(pl.col("characteristic") == "participants")
    assert heads.select("stratum", "n").rows() == [("Overall", 2), ("Intervention", 2), ("Control", 0)]


def test_table1_relations():
    t1 = suppression.CountTable("table1", tables.table1_by_arm(_mart_table1(), TWO.labels),
                                ("stratum", "characteristic", "level"), ("n",))
    rels = {r.name: r for r in suppression.table1_relations(t1, TWO.labels)}
    # per stratum: participants = the sex levels; per row: Overall = Intervention + Control; nothing for cooccurring
    assert "table1 Control: participants = sum(sex)" in rels
    assert not [n for n in rels if "sum(cooccurring)" in n]
    sex = rels["table1 Overall: participants = sum(sex)"]
    assert [p.key for p in sex.parts] == [("Overall", "sex", "Male"), ("Overall", "sex", "Female"),
                                          ("Overall", "sex", "Unknown or not reported")]
    assert [p.key[0] for p in rels["table1 age/None: Overall = sum(arms)"].parts] == ["Intervention", "Control"]
    assert "table1 cooccurring/Anxiety: Overall = sum(arms)" in rels
    values = {t1.key_of(r): r["n"] for r in t1.df.iter_rows(named=True)}
    for r in rels.values():  # every relation holds on the hand-made table
        assert values[r.total.key] == sum(values[p.key] for p in r.parts)


def test_without_arms_table1_is_tied_to_the_nih_grid(monkeypatch):
    """The enrolled of Table 1 are the NIH grid's people: without those relations a suppressed NIH cell comes
    back from Table 1's published levels; with them nothing does."""
    from test_extract_lib import _attack, _public_extract, _published_and_truth

    study = synthetic_study(260, 2, NONE)
    pub, _, true = _public_extract(study, 10, NONE)
    shown, truth = _published_and_truth(pub, true)
    assert _attack(shown, truth, use_milp=False, arms=NONE) == []
    monkeypatch.setattr(suppression, "_table1_nih_relations", lambda t1, grid: [])
    pub, _, true = _public_extract(study, 10, NONE)
    shown, truth = _published_and_truth(pub, true)
    assert any(c[0] == "nih" for c in _attack(shown, truth, use_milp=False, arms=NONE))


# ----------------------------------------------------------------- the whole extract, pure


def _extract_inputs(study: dict[str, pl.DataFrame], arms: StudyArms) -> dict[str, pl.DataFrame]:
    from test_extract_lib import synthetic_table1

    stage_order = {s: i for i, s in enumerate(["assessed", "excluded", "randomized", "enrolled", "allocated",
                                               "received_intervention", "lost_to_followup", "withdrew",
                                               "analysed"])}
    arm_order = {a: i for i, a in enumerate(("All", *arms.labels))}
    consort = study["consort_flow"].with_columns(
        pl.col("stage").replace_strict(stage_order).alias("stage_order"),
        pl.col("arm").replace_strict(arm_order).alias("arm_order"),
        pl.lit(0).alias("reason_order"),
    )
    p = study["participants"]
    keys = study["engagement"]["participant_key"].to_list()
    return {
        "consort_flow": consort,
        "participants": p,
        "engagement": study["engagement"],
        "retention": study["retention"],
        "alliance_scores": pl.DataFrame({"participant_key": keys, "respondent": ["client"] * len(keys),
                                         "session_number": [1 + i % 3 for i in range(len(keys))],
                                         "total": [3.0 + (i % 5) / 4 for i in range(len(keys))]}),
        "participant_level": p.select(pl.col("participant_key").alias("share_id"), "arm", "sex", "race",
                                      "ethnicity", pl.lit("30-39").alias("age_band")),
        "table1": synthetic_table1(study, arms),
    }


def _files(arms: StudyArms, audience: str, n: int = 260, seed: int = 2) -> dict[str, bytes]:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from orchestration.extracts.files import extract_files

    files, _ = extract_files(_extract_inputs(synthetic_study(n, seed, arms), arms), arms=arms, audience=audience,
                             as_of=datetime(2025, 12, 31, 23, 59, 59, tzinfo=ZoneInfo("America/New_York")),
                             min_cell=10, k_anon=5, study_name="A study without arms", site_tz="America/New_York")
    return files


def _section(html: str, name: str) -> str:
    i = html.index(f'<section id="{name}">')
    return html[i:html.index("</section>", i)]


@pytest.mark.parametrize("audience", ["funder", "public"])
def test_extract_of_a_study_without_arms(audience):
    import io

    files = _files(NONE, audience)
    for name in ("engagement_by_arm.csv", "retention_by_arm.csv"):
        assert pl.read_csv(io.BytesIO(files[name]))["arm"].to_list() == ["All"]
    assert pl.read_csv(io.BytesIO(files["engagement_by_arm.csv"])).columns[:2] == ["arm", "randomized"]
    consort = pl.read_csv(io.BytesIO(files["consort_flow.csv"]))
    assert consort["stage"].unique(maintain_order=True).to_list() == ["assessed", "excluded", "enrolled"]
    html = files["report.html"].decode()
    summary = _section(html, "summary")
    assert "This study is not randomized: it has no arms." in summary
    assert "31 December 2025, 23:59:59 (UTC-05:00)" in summary and "<h1>A study without arms" in summary
    consort_svg = _section(html, "consort")
    assert ">Enrolled<" in consort_svg and "Allocated" not in consort_svg and "Randomized" not in consort_svg
    table1 = _section(html, "table1")
    assert "the enrolled participants (the study is not randomized)" in table1
    assert re.findall(r"<th>(\w+) \(n = ", table1) == ["Overall"]
    assert 'data-arm="All"' in _section(html, "retention") and 'data-arm="All"' in _section(html, "alliance")
    assert "of all enrolled participants (All)" in _section(html, "retention")
    assert "<th>Enrolled</th>" in _section(html, "engagement")
    text = files["README.txt"].decode()
    assert "This study is not randomized: it has no arms." in text
    assert "the column `randomized` of engagement_by_arm.csv counts the enrolled" in text.replace("\n  ", " ")
    assert "consort_flow.csv: The CONSORT participant flow, which stops at enrollment" in text
    if audience == "funder":
        level = pl.read_csv(io.BytesIO(files["participant_level.csv"]), infer_schema=False)
        assert level.height > 0 and set(level["arm"]) == {"Not randomized"}
    else:
        assert "participant_level.csv" not in files
        assert "\u2014" in table1  # Table 1 suppressed with the files


def test_extract_of_a_two_arm_study_names_its_arms():
    import io

    files = _files(TWO, "funder", 150, 1)
    assert pl.read_csv(io.BytesIO(files["engagement_by_arm.csv"]))["arm"].to_list() == ["Intervention", "Control",
                                                                                         "All"]
    consort = pl.read_csv(io.BytesIO(files["consort_flow.csv"]))
    assert consort.filter(pl.col("stage") == "allocated")["arm"].to_list() == ["Intervention", "Control"]
    text = files["README.txt"].decode()
    assert "arms from the study profile, in its order: Intervention, Control." in text
    assert "Given by allocation (received_intervention = allocated): Control." in text
    table1 = _section(files["report.html"].decode(), "table1")
    assert re.findall(r"<th>(\w+) \(n = ", table1) == ["Overall", "Intervention", "Control"]


def test_dates_in_words():
    from datetime import date, datetime
    from zoneinfo import ZoneInfo

    assert report.date_words(date(2025, 12, 31)) == "31 December 2025"
    ts = datetime(2025, 7, 4, 9, 5, 0, tzinfo=ZoneInfo("America/New_York"))
    assert report.moment_words(ts) == "4 July 2025, 09:05:00 (UTC-04:00)"
