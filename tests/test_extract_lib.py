"""Tests of the funder-extract library (orchestration/extracts): pure functions over analyst-like tables."""

from __future__ import annotations

import io
import math
import random
import re
import zipfile
from fractions import Fraction
from html.parser import HTMLParser

import polars as pl
import pytest

from orchestration.extracts import kanon, nih, report, rounding, suppression, survival, tables, workbook
from orchestration.extracts.arms import StudyArms

# ----------------------------------------------------------------- synthetic study

RACES_WH = [
    "American Indian or Alaska Native",
    "Asian",
    "Native Hawaiian or Other Pacific Islander",
    "Black or African American",
    "White",
    "More than one race",
    "Unknown or not reported",
]
RACE_P = [0.02, 0.04, 0.01, 0.45, 0.38, 0.06, 0.04]
SEX_WH = ["Male", "Female", "Unknown or not reported"]
# the contract's default study (ingestion/profiles/default.yaml): three arms, Standard given by allocation
ARMS = ("SBCM", "MI", "Standard")
CONTRACT_ARMS = StudyArms(ARMS, frozenset({"Standard"}))
ETH_WH = ["Hispanic or Latino", "Not Hispanic or Latino", "Unknown or not reported"]


def _person(rng: random.Random, seed: int, i: int, arms: StudyArms) -> dict:
    """One assessed person; a study without arms analyses every consented one, arm ``All``, sessions of any
    service (the random draws of a randomized study are those of the contract's default study)."""
    consented = rng.random() < 0.8
    p = {
        "participant_key": f"p{seed}-{i:04d}",
        "consented": consented,
        "decline_reason": None
        if consented
        else rng.choice(["Not eligible", "Declined", "Declined", "Other", None]),
        "age": rng.randint(18, 95),
        "sex": rng.choices(SEX_WH + [None], [0.55, 0.42, 0.02, 0.01])[0],
        "ethnicity": rng.choices(ETH_WH + [None], [0.2, 0.75, 0.04, 0.01])[0],
        "race": rng.choices(RACES_WH + [None], RACE_P + [0.0])[0] if rng.random() > 0.01 else None,
    }
    if arms.randomized:
        p["randomized"] = consented and rng.random() < 0.93
        p["arm"] = rng.choice(arms.labels) if p["randomized"] else None
    else:
        p["randomized"] = consented
        p["arm"] = "All" if consented else None
    p["scope2"] = p["randomized"] and rng.random() < 0.04
    p["scope1"] = p["randomized"] and not p["scope2"] and rng.random() < 0.05
    p["lost"] = p["randomized"] and rng.random() < 0.1
    if p["arm"] in arms.by_allocation or not p["randomized"]:
        p["sessions"] = 0
    else:
        p["sessions"] = rng.choice([0, 0, 1, 2, 3, 4, 5])
    p["linked"] = p["randomized"] and rng.random() < 0.45
    p["init"] = p["linked"] and rng.random() < 0.5
    p["eng"] = p["init"] and rng.random() < 0.6
    p["admitted"] = p["linked"] or (p["randomized"] and rng.random() < 0.05)
    return p


def _retention_frame(rng: random.Random, rand: list[dict]) -> pl.DataFrame:
    ret_rows = []
    for p in (p for p in rand if p["admitted"]):
        days = rng.choice([rng.randint(0, 40), rng.randint(0, 120), rng.randint(20, 200)])
        censored = rng.random() < 0.25
        ret_rows.append(
            {
                "participant_key": p["participant_key"],
                "arm": p["arm"],
                "days_in_treatment": days,
                "censored": censored,
                "dropped_out": (not censored) and rng.random() < 0.5,
            }
        )
    return pl.DataFrame(
        ret_rows,
        schema={
            "participant_key": pl.Utf8,
            "arm": pl.Utf8,
            "days_in_treatment": pl.Int64,
            "censored": pl.Boolean,
            "dropped_out": pl.Boolean,
        },
    )


def _consort_frame(people: list[dict], arms: StudyArms) -> pl.DataFrame:
    """CONSORT as the dbt model gives it: randomized and the per-arm stages, or (no arms) enrolled."""
    flow = [{"stage": "assessed", "arm": "All", "n": len(people), "reason": None}]
    not_consented = [p for p in people if not p["consented"]]
    for reason in ["Not eligible", "Declined", "Other"]:
        n = sum(p["decline_reason"] == reason for p in not_consented)
        flow.append({"stage": "excluded", "arm": "All", "reason": reason, "n": n})
    nr = sum(p["decline_reason"] is None for p in not_consented)
    if nr:
        flow.append({"stage": "excluded", "arm": "All", "reason": "Not recorded", "n": nr})
    if not arms.randomized:
        flow.append({"stage": "enrolled", "arm": "All", "reason": None, "n": len(people) - len(not_consented)})
        return pl.DataFrame(flow, schema={"stage": pl.Utf8, "arm": pl.Utf8, "n": pl.Int64, "reason": pl.Utf8})
    n_not_randomized = sum(p["consented"] and not p["randomized"] for p in people)
    flow.append({"stage": "excluded", "arm": "All", "reason": "Not randomized", "n": n_not_randomized})
    randomized = [p for p in people if p["randomized"]]
    flow.append({"stage": "randomized", "arm": "All", "n": len(randomized), "reason": None})
    for stage, pred in [
        ("allocated", lambda p: True),
        ("received_intervention", lambda p: p["arm"] in arms.by_allocation or p["sessions"] >= 1),
        ("lost_to_followup", lambda p: p["lost"]),
        ("withdrew", lambda p: p["scope1"] or p["scope2"]),
        ("analysed", lambda p: not p["scope2"]),
    ]:
        for arm in arms.labels:
            n = sum(1 for p in randomized if p["arm"] == arm and pred(p))
            flow.append({"stage": stage, "arm": arm, "reason": None, "n": n})
    return pl.DataFrame(flow, schema={"stage": pl.Utf8, "arm": pl.Utf8, "n": pl.Int64, "reason": pl.Utf8})


def synthetic_study(n_assessed: int, seed: int, arms: StudyArms = CONTRACT_ARMS) -> dict[str, pl.DataFrame]:
    """Analyst-like tables (participants, engagement, retention, consort_flow) of a small random study.

    Internally consistent: consort counts everyone, scope-2 withdrawals only in
    consort; engagement = randomized minus scope 2; retention = admitted. A
    study without arms (``arms`` empty) follows CONTRACT 1.5: participants.arm
    null, engagement and retention over the enrolled with arm ``All``, CONSORT
    stopping at enrolled.
    """
    rng = random.Random(seed)
    people = [_person(rng, seed, i, arms) for i in range(n_assessed)]
    published = [p for p in people if p["consented"] and not p["scope2"]]
    participants = pl.DataFrame(
        {k: [p[k] for p in published] for k in ("participant_key", "arm", "age", "sex", "ethnicity", "race")},
        schema={
            "participant_key": pl.Utf8,
            "arm": pl.Utf8,
            "age": pl.Int64,
            "sex": pl.Utf8,
            "ethnicity": pl.Utf8,
            "race": pl.Utf8,
        },
    )
    if not arms.randomized:
        participants = participants.with_columns(pl.lit(None, dtype=pl.Utf8).alias("arm"))
    rand = [p for p in published if p["randomized"]]
    engagement = pl.DataFrame(
        {
            "participant_key": [p["participant_key"] for p in rand],
            "arm": [p["arm"] for p in rand],
            "sessions_attended": [p["sessions"] for p in rand],
            "attended_any": [p["sessions"] >= 1 for p in rand],
            "linked": [p["linked"] for p in rand],
            "iet_initiation": [p["init"] for p in rand],
            "iet_engagement": [p["eng"] for p in rand],
        }
    )
    return {
        "participants": participants,
        "engagement": engagement,
        "retention": _retention_frame(rng, rand),
        "consort_flow": _consort_frame(people, arms),
    }


T1_CONCEPTS = {"sex": SEX_WH, "ethnicity": ETH_WH, "race": RACES_WH}
T1_SCHEMA = {"cohort": pl.Utf8, "stratum": pl.Utf8, "characteristic": pl.Utf8, "level": pl.Utf8, "n": pl.Int64,
             "pct": pl.Float64, "mean": pl.Float64, "sd": pl.Float64}


def synthetic_table1(study: dict[str, pl.DataFrame], arms: StudyArms = CONTRACT_ARMS) -> pl.DataFrame:
    """Table 1 as the mart gives it for the cohort an extract shows (randomized; enrolled without arms):
    age, then sex, ethnicity and race with every contract level (n = 0 included) and ``Missing`` when
    someone in the stratum lacks the value."""
    import statistics

    p = study["participants"]
    if arms.randomized:
        cohort = "randomized"  # the randomized minus scope-2 withdrawals: engagement's participants
        members = p.join(study["engagement"].select("participant_key"), on="participant_key")
        strata = [("Overall", members)] + [(a, members.filter(pl.col("arm") == a)) for a in arms.labels]
    else:
        cohort, strata = "enrolled", [("Overall", p)]
    rows = []
    for stratum, g in strata:
        ages = g["age"].drop_nulls().to_list()
        rows.append({"cohort": cohort, "stratum": stratum, "characteristic": "age", "level": None, "n": len(ages),
                     "mean": statistics.fmean(ages) if ages else None,
                     "sd": statistics.stdev(ages) if len(ages) > 1 else None})
        for concept, levels in T1_CONCEPTS.items():
            values = g[concept].to_list()
            counts = [(lv, values.count(lv)) for lv in levels] + (
                [("Missing", values.count(None))] if None in values else [])
            for lv, n in counts:
                rows.append({"cohort": cohort, "stratum": stratum, "characteristic": concept, "level": lv, "n": n,
                             "pct": rounding.pct(n, g.height)})
    return pl.DataFrame(rows, schema=T1_SCHEMA)


# ----------------------------------------------------------------- rounding


def test_pct_rounds_exactly_half_away_from_zero():
    assert rounding.pct(23, 80) == 28.8  # 28.75: a binary float would give 28.7
    assert round(23 / 80 * 100, 1) == 28.7  # (the trap)
    assert rounding.pct(1, 8) == 12.5
    assert rounding.pct(1, 16) == 6.3  # 6.25
    assert rounding.pct(5, 16) == 31.3  # 31.25
    assert rounding.pct(1, 3) == 33.3 and rounding.pct(2, 3) == 66.7
    assert rounding.pct(0, 7) == 0.0 and rounding.pct(7, 7) == 100.0
    assert rounding.pct(3, 0) is None and rounding.pct(None, 5) is None
    assert rounding.round_fraction(Fraction(-1, 8), 2) == rounding.round_fraction(Fraction(-125, 1000), 2)
    assert str(rounding.round_fraction(Fraction(-1, 8), 2)) == "-0.13"
    assert rounding.mean_rounded(5, 2, 0) == 3.0 and rounding.mean_rounded(1, 8, 2) == 0.13
    # a float is rounded by its exact binary value: 0.12345 is stored just above, 0.12355 just below
    assert rounding.round_float(0.12345, 4) == 0.1235
    assert rounding.round_float(0.12355, 4) == 0.1235
    assert rounding.round_float(-0.00005000001, 4) == -0.0001
    assert rounding.round_float(float("nan")) is None


# ----------------------------------------------------------------- NIH


def test_nih_grid_has_63_rows_in_nih_order_and_maps_labels():
    people = pl.DataFrame(
        {
            "sex": ["Female", "Male", "Unknown or not reported", None, "Female", "Male"],
            "ethnicity": [
                "Hispanic or Latino",
                "Not Hispanic or Latino",
                "Unknown or not reported",
                None,
                "Not Hispanic or Latino",
                "Hispanic or Latino",
            ],
            "race": [
                "White",
                "More than one race",
                "Unknown or not reported",
                None,
                "Asian",
                "Black or African American",
            ],
        }
    )
    grid = nih.nih_enrollment(people)
    assert grid.columns == ["ethnicity", "race", "sex", "n"]
    assert grid.height == 63
    assert grid.select("ethnicity", "race", "sex").unique().height == 63
    assert grid["n"].sum() == 6
    assert grid.row(0) == ("Not Hispanic or Latino", "American Indian or Alaska Native", "Female", 0)
    assert grid.row(62) == (
        "Unknown/Not Reported Ethnicity",
        "Unknown or Not Reported",
        "Unknown/Not Reported",
        2,
    )
    assert [r[:3] for r in grid.rows()] == nih.nih_cells()

    def n(e, r, s):
        return grid.filter((pl.col("ethnicity") == e) & (pl.col("race") == r) & (pl.col("sex") == s))["n"][0]

    assert n("Hispanic or Latino", "White", "Female") == 1
    assert n("Not Hispanic or Latino", "More than One Race", "Male") == 1
    assert n("Not Hispanic or Latino", "Asian", "Female") == 1
    assert n("Hispanic or Latino", "Black or African American", "Male") == 1
    assert set(grid["ethnicity"]) == set(nih.ETHNICITIES)
    assert set(grid["race"]) == set(nih.RACES) and set(grid["sex"]) == set(nih.SEXES)


def test_nih_layout_totals():
    study = synthetic_study(300, seed=3)
    grid = nih.nih_enrollment(study["participants"])
    assert grid["n"].sum() == study["participants"].height
    layout = nih.nih_grid_layout(grid)
    assert len(layout) == 2 + 7 + 1
    assert layout[0][0] == "Racial Categories" and layout[0][1] == "Not Hispanic or Latino"
    assert layout[1][1:4] == ["Female", "Male", "Unknown/Not Reported"]
    body = layout[2:9]
    total_row = layout[9]
    assert total_row[0] == "Total"
    for row in body:
        assert row[-1] == sum(row[1:-1])
    for j in range(1, 11):
        assert total_row[j] == sum(r[j] for r in body)
    assert total_row[-1] == study["participants"].height
    # race totals match a direct count
    white = study["participants"].filter(pl.col("race") == "White").height
    assert body[4][0] == "White" and body[4][-1] == white
    # layout of a grid that carries its own (suppressed) totals keeps them
    full = nih.nih_with_totals(grid)
    assert full.height == 80
    full = full.with_columns(pl.when(pl.col("race") == "Asian").then(None).otherwise(pl.col("n")).alias("n"))
    lay2 = nih.nih_grid_layout(full)
    assert lay2[3][0] == "Asian" and all(v is None for v in lay2[3][1:])


# ----------------------------------------------------------------- Kaplan-Meier

# 6-MP arm of the Freireich et al. leukaemia trial (Gehan 1965), weeks of remission; + = censored
SIX_MP = [
    (6, 1),
    (6, 1),
    (6, 1),
    (6, 0),
    (7, 1),
    (9, 0),
    (10, 1),
    (10, 0),
    (11, 0),
    (13, 1),
    (16, 1),
    (17, 0),
    (19, 0),
    (20, 0),
    (22, 1),
    (23, 1),
    (25, 0),
    (32, 0),
    (32, 0),
    (34, 0),
    (35, 0),
]


def _loglog(s: float, g: float, z=1.96):
    se = math.sqrt(g) / abs(math.log(s))
    return s ** math.exp(z * se), s ** math.exp(-z * se)


def test_kaplan_meier_six_mp_textbook():
    times = [t for t, _ in SIX_MP]
    events = [bool(e) for _, e in SIX_MP]
    curve = survival.kaplan_meier(times, events)
    ev = curve.filter(pl.col("events") > 0)
    assert ev["t"].to_list() == [6, 7, 10, 13, 16, 22, 23]
    assert ev["at_risk"].to_list() == [21, 17, 15, 12, 11, 7, 6]
    assert ev["events"].to_list() == [3, 1, 1, 1, 1, 1, 1]
    # hand products
    s = [Fraction(18, 21)]
    for n in (17, 15, 12, 11, 7, 6):
        s.append(s[-1] * Fraction(n - 1, n))
    g = [Fraction(3, 21 * 18)]
    for n in (17, 15, 12, 11, 7, 6):
        g.append(g[-1] + Fraction(1, n * (n - 1)))
    for row, sk, gk in zip(ev.iter_rows(named=True), s, g, strict=True):
        assert abs(row["survival"] - float(sk)) < 1e-12
        assert abs(row["greenwood"] - float(gk)) < 1e-12
        assert abs(row["se"] - float(sk) * math.sqrt(float(gk))) < 1e-12
        lo, hi = _loglog(float(sk), float(gk))
        assert abs(row["lcl"] - lo) < 1e-9 and abs(row["ucl"] - hi) < 1e-9
        assert row["lcl"] < row["survival"] < row["ucl"]
    # the textbook table (Klein & Moeschberger; R survfit), to its printed precision
    assert [round(x, 4) for x in ev["survival"]] == [0.8571, 0.8067, 0.7529, 0.6902, 0.6275, 0.5378, 0.4482]
    assert [round(x, 4) for x in ev["se"]] == [0.0764, 0.0869, 0.0963, 0.1068, 0.1141, 0.1282, 0.1346]
    # R: survfit(conf.type = "log-log") at t = 6 gives 0.620 .. 0.952 (z = qnorm(.975))
    first = ev.row(0, named=True)
    assert abs(first["lcl"] - 0.620) < 2e-3 and abs(first["ucl"] - 0.952) < 2e-3
    # S(t) lookups, median, not estimable beyond follow-up
    assert survival.km_at(curve, 5) == 1.0
    assert abs(survival.km_at(curve, 6) - 6 / 7) < 1e-15
    assert abs(survival.km_at(curve, 12.9) - float(s[2])) < 1e-15
    assert survival.km_at(curve, 35) == pytest.approx(float(s[-1]), abs=1e-15)
    assert survival.km_at(curve, 36) is None
    assert survival.km_median(curve) == 23
    assert survival.km_median_exact(times, events) == 23
    assert survival.km_exact_at(times, events, 16) == s[4]
    assert survival.km_ci_at(curve, 3) == (1.0, None, None)


def test_kaplan_meier_small_hand_example_and_edges():
    # times 1 2 2+ 3 4+ : S = 4/5, 3/5, 3/10 ; at t=2 the censored one is still at risk
    curve = survival.kaplan_meier([1, 2, 2, 3, 4], [True, True, False, True, False])
    assert curve["t"].to_list() == [1, 2, 3, 4]
    assert curve["at_risk"].to_list() == [5, 4, 2, 1]
    assert curve["events"].to_list() == [1, 1, 1, 0]
    assert curve["censored"].to_list() == [0, 1, 0, 1]
    assert curve["survival"].to_list() == [0.8, 0.6, 0.3, 0.3]
    g3 = 1 / 20 + 1 / 12 + 1 / 2
    assert abs(curve["greenwood"][2] - g3) < 1e-12
    assert abs(curve["se"][2] - 0.3 * math.sqrt(g3)) < 1e-12
    assert abs(curve["se"][0] - math.sqrt(0.8 * 0.2 / 5)) < 1e-12  # binomial se before censoring
    lo, hi = _loglog(0.3, g3)
    assert abs(curve["lcl"][2] - lo) < 1e-12 and abs(curve["ucl"][2] - hi) < 1e-12
    assert survival.km_median(curve) == 3
    # S reaching 0: limits undefined, estimates beyond the end are 0
    c0 = survival.kaplan_meier([1, 2], [True, True])
    assert c0["survival"].to_list() == [0.5, 0.0]
    assert c0["lcl"][1] is None and c0["ucl"][1] is None and c0["greenwood"][1] is None
    assert survival.km_at(c0, 100) == 0.0
    # no event yet: S = 1, limits undefined
    c1 = survival.kaplan_meier([5, 7], [False, False])
    assert c1["survival"].to_list() == [1.0, 1.0] and c1["lcl"].null_count() == 2
    assert survival.km_median(c1) is None
    assert survival.km_point([5, 7], [False, False], 6) == (Fraction(1), None, None)
    assert survival.kaplan_meier([], []).height == 0
    with pytest.raises(ValueError):
        survival.kaplan_meier([1, 2], [True])


# ----------------------------------------------------------------- tables


def test_engagement_by_arm_counts_and_exact_pct():
    rows = []
    # SBCM: 80 randomized, 23 attended -> 28.8
    for i in range(80):
        rows.append(("SBCM", 1 if i < 23 else 0, i < 23, i < 40, i < 10, i < 5))
    for i in range(8):
        rows.append(("MI", 2, True, i < 1, False, False))
    eng = pl.DataFrame(
        rows,
        schema=["arm", "sessions_attended", "attended_any", "linked", "iet_initiation", "iet_engagement"],
        orient="row",
    )
    out = tables.engagement_by_arm(eng, ARMS)
    assert out["arm"].to_list() == ["SBCM", "MI", "Standard", "All"]
    assert out.columns == list(tables.ENGAGEMENT_SCHEMA)
    sbcm, mi, std, all_ = out.iter_rows(named=True)
    assert sbcm["randomized"] == 80 and sbcm["attended_any_n"] == 23 and sbcm["attended_any_pct"] == 28.8
    assert (
        sbcm["linked_pct"] == 50.0
        and sbcm["iet_initiation_pct"] == 12.5
        and sbcm["iet_engagement_pct"] == 6.3
    )
    assert sbcm["sessions_attended_mean"] == 0.29  # 23/80 = 0.2875
    assert mi["linked_pct"] == 12.5 and mi["sessions_attended_mean"] == 2.0
    assert (
        std["randomized"] == 0 and std["attended_any_pct"] is None and std["sessions_attended_mean"] is None
    )
    assert all_["randomized"] == 88 and all_["attended_any_n"] == 31 and all_["attended_any_pct"] == 35.2
    csv = out.write_csv()
    assert "28.8" in csv and "28.7" not in csv


def test_retention_by_arm_km_and_median():
    # SBCM: 10 discharged at days 5,10,...,50 (no censoring); MI: censoring
    rows = [("SBCM", 5 * (i + 1), False, i % 2 == 0) for i in range(10)]
    rows += [
        ("MI", 10, False, True),
        ("MI", 20, True, False),
        ("MI", 35, False, False),
        ("MI", 70, True, False),
    ]
    ret = pl.DataFrame(rows, schema=["arm", "days_in_treatment", "censored", "dropped_out"], orient="row")
    out = tables.retention_by_arm(ret, ARMS)
    assert out.columns == list(tables.RETENTION_SCHEMA)
    sbcm, mi, std, all_ = out.iter_rows(named=True)
    assert sbcm["admitted"] == 10 and sbcm["dropped_out_n"] == 5 and sbcm["dropped_out_pct"] == 50.0
    # no censoring: km_30 = share with days >= 30 (retained_30) = 5/10 ; median: S(25) = 0.5
    assert sbcm["km_30"] == 0.5 and sbcm["median_days_in_treatment"] == 25
    # S reaches 0 at day 50: estimates past it are 0, with undefined limits
    assert sbcm["km_60"] == 0.0 and sbcm["km_60_lcl"] is None and sbcm["km_60_ucl"] is None
    # MI: S(10)=3/4, censored at 20, S(35)=3/4*1/2=3/8, censored at 70
    assert mi["km_30"] == 0.75 and mi["km_60"] == 0.375 and mi["km_90"] is None
    g = 1 / (4 * 3)
    lo, hi = _loglog(0.75, g)
    assert mi["km_30_lcl"] == float(rounding.round_float(lo, 4)) and mi["km_30_ucl"] == rounding.round_float(
        hi, 4
    )
    assert mi["median_days_in_treatment"] == 35
    assert std["admitted"] == 0 and std["km_30"] is None and std["median_days_in_treatment"] is None
    assert all_["admitted"] == 14
    # inclusive=False gives the plain S(30)
    plain = tables.retention_by_arm(ret, ARMS, inclusive=False)
    assert plain["km_30"][0] == 0.4


def test_retention_km_matches_retained_share_without_censoring():
    study = synthetic_study(400, seed=11)
    ret = study["retention"].with_columns(pl.lit(False).alias("censored"))
    out = tables.retention_by_arm(ret, ARMS)
    for row in out.iter_rows(named=True):
        g = ret if row["arm"] == "All" else ret.filter(pl.col("arm") == row["arm"])
        for d in (30, 60, 90):
            share = Fraction(g.filter(pl.col("days_in_treatment") >= d).height, g.height)
            if g["days_in_treatment"].max() >= d - 1:
                assert row[f"km_{d}"] == float(rounding.round_fraction(share, 4))


# ----------------------------------------------------------------- suppression: attack


def _rank(rows: list[dict], nvars: int) -> int:
    """Rank of sparse rational rows (independent of the library's elimination)."""
    m = [[Fraction(r.get(j, 0)) for j in range(nvars)] for r in rows]
    rank, col = 0, 0
    while rank < len(m) and col < nvars:
        piv = next((i for i in range(rank, len(m)) if m[i][col] != 0), None)
        if piv is None:
            col += 1
            continue
        m[rank], m[piv] = m[piv], m[rank]
        for i in range(rank + 1, len(m)):
            f = m[i][col] / m[rank][col]
            if f:
                m[i] = [a - f * b for a, b in zip(m[i], m[rank], strict=True)]
        rank += 1
        col += 1
    return rank


def _consort_equations(cf: pl.DataFrame, arms: StudyArms) -> list[list[tuple[tuple, int]]]:
    excluded = [r for r in cf.select("stage", "arm", "reason").iter_rows() if r[0] == "excluded"]
    top = ("randomized", "All", None) if arms.randomized else ("enrolled", "All", None)
    eqs = [
        [(("consort_flow", ("assessed", "All", None), "n"), 1)]
        + [(("consort_flow", k, "n"), -1) for k in excluded]
        + [(("consort_flow", top, "n"), -1)]
    ]
    if arms.randomized:
        eqs.append(
            [(("consort_flow", ("randomized", "All", None), "n"), 1)]
            + [(("consort_flow", ("allocated", a, None), "n"), -1) for a in arms.labels]
        )
    for a in arms.labels:
        if a in arms.by_allocation:
            eqs.append(
                [
                    (("consort_flow", ("allocated", a, None), "n"), 1),
                    (("consort_flow", ("received_intervention", a, None), "n"), -1),
                ]
            )
        eqs.append(
            [
                (("engagement_by_arm", (a,), "randomized"), 1),
                (("consort_flow", ("analysed", a, None), "n"), -1),
            ]
        )
    return eqs


def _attacker_equations(pub: dict[str, pl.DataFrame], arms: StudyArms = CONTRACT_ARMS) -> list[list[tuple[tuple, int]]]:
    """Every exact relation a reader knows among the published files, written out by hand.

    Each equation: [(cell, coefficient)] summing to zero; cell = (file, row key, column).
    """
    eqs = []
    for file, cols in (
        ("engagement_by_arm", tables.ENGAGEMENT_COUNTS),
        ("retention_by_arm", tables.RETENTION_COUNTS),
    ):
        for c in cols if arms.randomized else ():
            eqs.append([((file, ("All",), c), 1)] + [((file, (a,), c), -1) for a in arms.labels])
    eqs += _consort_equations(pub["consort_flow"], arms)
    T = "Total"
    N = "nih"
    for r in nih.RACES:
        eqs.append(
            [((N, (T, r, T), "n"), 1)]
            + [((N, (e, r, s), "n"), -1) for e in nih.ETHNICITIES for s in nih.SEXES]
        )
    for e in nih.ETHNICITIES:
        for s in nih.SEXES:
            eqs.append([((N, (e, T, s), "n"), 1)] + [((N, (e, r, s), "n"), -1) for r in nih.RACES])
    eqs.append([((N, (T, T, T), "n"), 1)] + [((N, (T, r, T), "n"), -1) for r in nih.RACES])
    eqs += _table1_equations(pub["table1_keys"], arms) if "table1_keys" in pub else []
    # consented minus scope 2 = randomized minus scope 2 + consented not randomized (none of them erased here);
    # without arms: consented minus scope 2 = the enrolled of engagement_by_arm
    eqs.append(
        [((N, (T, T, T), "n"), 1), (("engagement_by_arm", ("All",), "randomized"), -1)]
        + ([(("consort_flow", ("excluded", "All", "Not randomized"), "n"), -1)] if arms.randomized else [])
    )
    return eqs


NIH_OF = {  # the warehouse's labels (and Missing) -> NIH's, written out by hand
    "sex": {"Male": "Male", "Female": "Female", "Unknown or not reported": "Unknown/Not Reported",
            "Missing": "Unknown/Not Reported"},
    "ethnicity": {"Hispanic or Latino": "Hispanic or Latino", "Not Hispanic or Latino": "Not Hispanic or Latino",
                  "Unknown or not reported": "Unknown/Not Reported Ethnicity",
                  "Missing": "Unknown/Not Reported Ethnicity"},
    "race": {**{r: r for r in RACES_WH[:5]}, "More than one race": "More than One Race",
             "Unknown or not reported": "Unknown or Not Reported", "Missing": "Unknown or Not Reported"},
}


def _table1_equations(keys: list[tuple], arms: StudyArms) -> list[list[tuple[tuple, int]]]:
    """What a reader knows of the report's Table 1: each stratum's participants = the levels of sex, of
    ethnicity, of race; Overall = sum of the arms; participants = engagement's randomized; without arms,
    the enrolled are the NIH grid's people, category by category."""
    t1 = "table1"
    eqs = []
    for stratum in dict.fromkeys(k[0] for k in keys):
        for concept in T1_CONCEPTS:
            eqs.append([((t1, (stratum, "participants", None), "n"), 1)]
                       + [((t1, k, "n"), -1) for k in keys if k[0] == stratum and k[1] == concept])
        arm = "All" if stratum == "Overall" else stratum
        eqs.append([((t1, (stratum, "participants", None), "n"), 1), (("engagement_by_arm", (arm,), "randomized"), -1)])
    for _, c, lv in (k for k in keys if k[0] == "Overall" and arms.randomized):
        eqs.append([((t1, ("Overall", c, lv), "n"), 1)]
                   + [((t1, (a, c, lv), "n"), -1) for a in arms.labels if (a, c, lv) in keys])
    if arms.randomized:
        return eqs
    T = "Total"
    grid = {
        "race": lambda v: [(T, v, T)],
        "sex": lambda v: [(e, T, v) for e in nih.ETHNICITIES],
        "ethnicity": lambda v: [(v, r, s) for r in nih.RACES for s in nih.SEXES],
    }
    for concept, to_nih in NIH_OF.items():
        for category in dict.fromkeys(to_nih.values()):
            levels = [k for k in keys if k[0] == "Overall" and k[1] == concept and to_nih[k[2]] == category]
            eqs.append([((t1, k, "n"), 1) for k in levels] + [(("nih", g, "n"), -1) for g in grid[concept](category)])
    return eqs


def _attacker_inequalities(arms: StudyArms = CONTRACT_ARMS) -> list[list[tuple[tuple, int]]]:
    """Known orderings (sum coef*cell <= 0): a part never exceeds its whole."""
    ineq = []
    for a in arms.rows:
        e = "engagement_by_arm"
        for c in ("attended_any_n", "linked_n", "iet_initiation_n"):
            ineq.append([((e, (a,), c), 1), ((e, (a,), "randomized"), -1)])
        ineq.append([((e, (a,), "iet_engagement_n"), 1), ((e, (a,), "iet_initiation_n"), -1)])
        ineq.append(
            [(("retention_by_arm", (a,), "dropped_out_n"), 1), (("retention_by_arm", (a,), "admitted"), -1)]
        )
        # linked (first admission within 60 days) <= admitted on or after randomization
        ineq.append(
            [(("engagement_by_arm", (a,), "linked_n"), 1), (("retention_by_arm", (a,), "admitted"), -1)]
        )
    for stratum in ("Overall", *arms.labels):  # a level of Table 1, or its age count, <= its participants
        for c, lv in [("age", None)] + [(c, lv) for c, levels in T1_CONCEPTS.items() for lv in (*levels, "Missing")]:
            ineq.append([(("table1", (stratum, c, lv), "n"), 1), (("table1", (stratum, "participants", None), "n"), -1)])
    if not arms.randomized:  # the enrolled minus scope-2 withdrawals <= the enrolled
        ineq.append(
            [(("engagement_by_arm", ("All",), "randomized"), 1), (("consort_flow", ("enrolled", "All", None), "n"), -1)]
        )
    for a in arms.labels:
        for st in ("received_intervention", "lost_to_followup", "withdrew", "analysed"):
            ineq.append(
                [
                    (("consort_flow", (st, a, None), "n"), 1),
                    (("consort_flow", ("allocated", a, None), "n"), -1),
                ]
            )
        # attended any (scope 2 excepted) <= received the intervention
        ineq.append(
            [
                (("engagement_by_arm", (a,), "attended_any_n"), 1),
                (("consort_flow", ("received_intervention", a, None), "n"), -1),
            ]
        )
    return ineq


def _cells(file: str, df: pl.DataFrame, keys, counts) -> dict:
    out = {}
    for row in df.iter_rows(named=True):
        for c in counts:
            out[(file, tuple(row[k] for k in keys), c)] = row[c]
    return out


def _published_and_truth(pub, true):
    spec = [
        ("consort_flow", ("stage", "arm", "reason"), ("n",)),
        ("engagement_by_arm", ("arm",), tables.ENGAGEMENT_COUNTS),
        ("retention_by_arm", ("arm",), tables.RETENTION_COUNTS),
    ]
    shown, truth = {}, {}
    for file, keys, counts in spec:
        shown.update(_cells(file, pub[file], keys, counts))
        truth.update(_cells(file, true[file], keys, counts))
    if "table1" in pub:
        shown.update(_cells("table1", pub["table1"], ("stratum", "characteristic", "level"), ("n",)))
        truth.update(_cells("table1", true["table1"], ("stratum", "characteristic", "level"), ("n",)))
    nih_pub = pl.concat([pub["nih_inclusion_enrollment"], pub["nih_totals"]])
    shown.update(_cells("nih", nih_pub, ("ethnicity", "race", "sex"), ("n",)))
    truth.update(_cells("nih", nih.nih_with_totals(true["nih"]), ("ethnicity", "race", "sex"), ("n",)))
    return shown, truth


def _attack(shown: dict, truth: dict, use_milp: bool, arms: StudyArms = CONTRACT_ARMS) -> list:
    hidden = sorted((c for c, v in shown.items() if v is None), key=str)
    index = {c: i for i, c in enumerate(hidden)}
    t1_keys = [c[1] for c in shown if c[0] == "table1"]
    known = {"consort_flow": _consort_keys_frame(shown), **({"table1_keys": t1_keys} if t1_keys else {})}
    eqs = _attacker_equations(known, arms)
    rows, rhs = [], []
    for eq in eqs:
        row, const = {}, 0
        for cell, coef in eq:
            assert cell in shown, cell
            if cell in index:
                row[index[cell]] = row.get(index[cell], 0) + coef
            else:
                const -= coef * shown[cell]
        # the system is consistent with the truth
        assert sum(coef * truth[cell] for cell, coef in eq) == 0
        if row:
            rows.append(row)
            rhs.append(const)
    base = _rank(rows, len(hidden))
    recovered = []
    for i, cell in enumerate(hidden):
        if _rank([*rows, {i: 1}], len(hidden)) == base:
            recovered.append(cell)
    if use_milp and hidden:
        import numpy as np
        from scipy.optimize import Bounds, LinearConstraint, milp

        a_eq = np.zeros((len(rows), len(hidden)))
        for r, row in enumerate(rows):
            for j, v in row.items():
                a_eq[r, j] = v
        cons = [LinearConstraint(a_eq, np.array(rhs, float), np.array(rhs, float))]
        iq_rows, iq_ub = [], []
        for iq in _attacker_inequalities(arms):
            row, const = np.zeros(len(hidden)), 0
            if any(cell not in shown for cell, _ in iq):
                continue  # an ordering of a row this extract does not have
            for cell, coef in iq:
                if cell in index:
                    row[index[cell]] += coef
                else:
                    const -= coef * shown[cell]
            if row.any():
                iq_rows.append(row)
                iq_ub.append(const)
        if iq_rows:
            cons.append(LinearConstraint(np.array(iq_rows), -np.inf, np.array(iq_ub, float)))
        integrality = np.ones(len(hidden))
        bounds = Bounds(np.zeros(len(hidden)), np.full(len(hidden), np.inf))
        for i, cell in enumerate(hidden):
            c = np.zeros(len(hidden))
            c[i] = 1
            lo = milp(c, constraints=cons, integrality=integrality, bounds=bounds)
            hi = milp(-c, constraints=cons, integrality=integrality, bounds=bounds)
            assert lo.status == 0, (cell, lo.message)
            assert round(lo.fun) <= truth[cell]
            if hi.status == 0 and round(-hi.fun) == round(lo.fun):
                recovered.append(cell)
    return recovered


def _consort_keys_frame(shown: dict) -> pl.DataFrame:
    keys = sorted({c[1] for c in shown if c[0] == "consort_flow"}, key=str)
    return pl.DataFrame(keys, schema=["stage", "arm", "reason"], orient="row")


def _public_extract(study, min_cell, arms: StudyArms = CONTRACT_ARMS, with_table1: bool = True):
    eng = tables.engagement_by_arm(study["engagement"], arms.labels)
    ret = tables.retention_by_arm(study["retention"], arms.labels)
    grid = nih.nih_enrollment(study["participants"])
    t1 = tables.table1_by_arm(synthetic_table1(study, arms), arms.labels) if with_table1 else None
    pub, counts = suppression.suppress_extract(
        study["consort_flow"], eng, ret, grid, min_cell=min_cell, arms=arms.labels, by_allocation=arms.by_allocation,
        table1=t1,
    )
    true = {
        "consort_flow": study["consort_flow"].select("stage", "arm", "n", "reason"),
        "engagement_by_arm": eng,
        "retention_by_arm": ret,
        "nih": grid,
        **({"table1": t1} if with_table1 else {}),
    }
    return pub, counts, true


@pytest.mark.parametrize(
    ("n_assessed", "seed", "min_cell"),
    # (900, 1002, 3): the line rule alone leaves NIH cells recoverable there; the audit fixes it
    [(150, 1, 10), (260, 2, 10), (90, 5, 10), (400, 7, 5), (600, 13, 10), (900, 1002, 3)],
)
def test_public_suppression_withstands_attack(n_assessed, seed, min_cell):
    check_public_suppression(synthetic_study(n_assessed, seed), min_cell, CONTRACT_ARMS)


def check_public_suppression(study: dict, min_cell: int, arms: StudyArms) -> dict[str, pl.DataFrame]:
    """The public extract of ``study`` withstands the attack; returns the published tables."""
    import scipy  # noqa: F401  (locked: great-expectations depends on it)
    pub, counts, true = _public_extract(study, min_cell, arms)
    shown, truth = _published_and_truth(pub, true)
    hidden = [c for c, v in shown.items() if v is None]
    assert hidden, "the synthetic study should trigger suppression"
    # no published count in 1..min_cell, every hidden count is >= 1 (zeros are never complements)
    for cell, v in shown.items():
        assert v is None or v == 0 or v > min_cell, (cell, v)
        if v is not None:
            assert v == truth[cell]
    assert all(truth[c] >= 1 for c in hidden)
    # nothing recoverable, by rank (exact rationals) and by integer programming with bounds and orderings
    assert _attack(shown, truth, use_milp=True, arms=arms) == []
    # derived values are hidden with their counts
    for file, derived in (
        ("engagement_by_arm", tables.ENGAGEMENT_DERIVED),
        ("retention_by_arm", tables.RETENTION_DERIVED),
    ):
        for row in pub[file].iter_rows(named=True):
            for dcol, sources in derived.items():
                if any(row[s] is None for s in sources):
                    assert row[dcol] is None, (file, row["arm"], dcol)
    # the counts in the manifest are the cells emptied
    assert counts["nih_inclusion_enrollment"] == pub["nih_inclusion_enrollment"]["n"].null_count()
    eng_true = true["engagement_by_arm"]
    emptied = sum(
        1
        for c in pub["engagement_by_arm"].columns
        for a, b in zip(pub["engagement_by_arm"][c].to_list(), eng_true[c].to_list(), strict=True)
        if a is None and b is not None
    )
    assert counts["engagement_by_arm"] == emptied
    assert pub["nih_inclusion_enrollment"].height == 63
    assert pub["consort_flow"].columns == ["stage", "arm", "n", "reason"]
    return pub


def test_line_rule_alone_is_not_enough(monkeypatch):
    """Without the elimination audit, two suppressed cells per line still leave NIH cells recoverable."""
    monkeypatch.setattr(suppression, "recoverable_cells", lambda suppressed, relations: [])
    pub, _, true = _public_extract(synthetic_study(900, 1002), 3)
    shown, truth = _published_and_truth(pub, true)
    assert any(c[0] == "nih" for c in _attack(shown, truth, use_milp=False))


def test_attack_detects_a_naive_suppression():
    """The attack is real: primary suppression alone gives cells away."""
    study = synthetic_study(150, 1)
    pub, _, true = _public_extract(study, 10)
    eng = true["engagement_by_arm"]
    naive = {k: v for k, v in pub.items()}
    naive_eng = eng.with_columns(
        [
            pl.when((pl.col(c) >= 1) & (pl.col(c) <= 10)).then(None).otherwise(pl.col(c)).alias(c)
            for c in tables.ENGAGEMENT_COUNTS
        ]
    )
    # publish everything else in full, engagement with primary suppression only
    naive["engagement_by_arm"] = naive_eng
    naive["consort_flow"] = true["consort_flow"]
    naive["retention_by_arm"] = true["retention_by_arm"]
    full = nih.nih_with_totals(true["nih"])
    mask = (pl.col("ethnicity") == "Total") | (pl.col("race") == "Total")
    naive["nih_inclusion_enrollment"] = full.filter(~mask)
    naive["nih_totals"] = full.filter(mask)
    shown, truth = _published_and_truth(naive, true)
    assert any(v is None for v in shown.values())
    assert _attack(shown, truth, use_milp=False)


def test_suppression_rules_on_small_tables():
    t = suppression.CountTable(
        "t",
        pl.DataFrame(
            {"arm": ["SBCM", "MI", "Standard", "All"], "n": [5, 0, 0, 5], "pct": [1.0, 0.0, 0.0, 1.0]}
        ),
        ("arm",),
        ("n",),
        {"pct": ("n",)},
    )
    rels = suppression.arm_total_relations(t, ["n"], ARMS)
    out, counts = suppression.suppress([t], rels, 10)
    # the total equals the single suppressed cell: suppressed too (5 is primary anyway); zeros stay
    assert out["t"]["n"].to_list() == [None, 0, 0, None]
    assert out["t"]["pct"].to_list() == [None, 0.0, 0.0, None]
    assert counts == {"t": 4}

    t2 = suppression.CountTable(
        "t2", pl.DataFrame({"arm": ["SBCM", "MI", "Standard", "All"], "n": [3, 40, 25, 68]}), ("arm",), ("n",)
    )
    out2, c2 = suppression.suppress([t2], suppression.arm_total_relations(t2, ["n"], ARMS), 10)
    assert out2["t2"]["n"].to_list() == [None, 40, None, 68]  # complement = smallest non-zero (25)
    assert c2 == {"t2": 2}
    # a big total that is the only other non-zero cell of the line gets suppressed
    t3 = suppression.CountTable(
        "t3", pl.DataFrame({"arm": ["SBCM", "MI", "Standard", "All"], "n": [12, 0, 0, 12]}), ("arm",), ("n",)
    )
    out3, _ = suppression.suppress([t3], suppression.arm_total_relations(t3, ["n"], ARMS), 10)
    assert out3["t3"]["n"].to_list() == [12, 0, 0, 12]
    # an unknown cell in a relation is an error
    with pytest.raises(ValueError):
        suppression.suppress([t3], [suppression.Relation(t3.cell("X", "n"), ())], 10)


def test_recoverable_cells_by_elimination():
    C = suppression.Cell
    a, b, c, d = (C("x", (i,), "n") for i in "abcd")
    # a + b = T1, c + d = T2, a + c = T3, b + d = T4  (2x2 rectangle: one degree of freedom)
    tot = [C("x", (f"T{i}",), "n") for i in range(1, 5)]
    rels = [
        suppression.Relation(tot[0], (a, b)),
        suppression.Relation(tot[1], (c, d)),
        suppression.Relation(tot[2], (a, c)),
        suppression.Relation(tot[3], (b, d)),
    ]
    assert suppression.recoverable_cells([a, b, c, d], rels) == []
    # a hidden total of the rectangle is given away by the other three: T1 = T3 + T4 - T2
    assert suppression.recoverable_cells([a, b, c, d, tot[0]], rels) == [tot[0]]
    # a, b and c only: d published -> c fixed by T2, then a by T3, b by T1
    assert suppression.recoverable_cells([a, b, c], rels) == [a, b, c]


# ----------------------------------------------------------------- k-anonymity


def test_age_band():
    cases = {
        None: None,
        17: None,
        18: "18-29",
        29: "18-29",
        30: "30-39",
        39: "30-39",
        45: "40-49",
        79: "70-79",
        80: "80-89",
        89: "80-89",
        90: "90+",
        104: "90+",
    }
    for age, band in cases.items():
        assert kanon.age_band(age) == band
    df = pl.DataFrame({"age": list(cases)}, schema={"age": pl.Int64})
    assert df.select(kanon.age_band_expr("age"))["age_band"].to_list() == list(cases.values())


def test_k_anonymize_holds_and_reports():
    study = synthetic_study(500, 4)
    p = (
        study["participants"]
        .with_columns(kanon.age_band_expr("age"))
        .with_columns(pl.col("participant_key").alias("share_id"))
    )
    base = p.select("share_id", "arm", "age_band", "sex", "race", "ethnicity")
    assert kanon.check_k_anonymity(base, k=5) > 0
    out, altered, dropped = kanon.k_anonymize(base, k=5)
    assert kanon.check_k_anonymity(out, k=5) == 0
    assert out.height == base.height - dropped
    assert altered > 0
    assert out.columns == base.columns
    # untouched columns, kept order, altered count is exact
    merged = base.join(out, on="share_id", how="inner", suffix="_k")
    assert merged.height == out.height
    assert merged["share_id"].to_list() == out["share_id"].to_list()
    assert (merged["arm"] == merged["arm_k"]).fill_null(True).all() or merged.filter(
        pl.col("arm").ne_missing(pl.col("arm_k"))
    ).height == 0
    changed = merged.filter(pl.any_horizontal([pl.col(q).ne_missing(pl.col(f"{q}_k")) for q in kanon.QUASI]))
    assert changed.height == altered
    # a changed value is a blank or the coarsened race
    for q in kanon.QUASI:
        diff = merged.filter(pl.col(q).ne_missing(pl.col(f"{q}_k")))[f"{q}_k"].to_list()
        assert all(v is None or (q == "race" and v == kanon.RARE_RACE) for v in diff)
    # deterministic
    again = kanon.k_anonymize(base, k=5)
    assert again[0].equals(out) and again[1:] == (altered, dropped)
    # every race label left is either common or the coarse one
    counts = out.group_by("race").len()
    assert all(n >= 5 or r in (None, kanon.RARE_RACE) for r, n in counts.iter_rows())


def test_k_anonymize_drops_when_blanking_cannot_help():
    df = pl.DataFrame(
        {
            "age_band": ["18-29"] * 3,
            "sex": ["Male"] * 3,
            "race": ["White"] * 3,
            "ethnicity": ["Hispanic or Latino"] * 3,
            "x": [1, 2, 3],
        }
    )
    out, altered, dropped = kanon.k_anonymize(df, k=5)
    assert out.height == 0 and dropped == 3 and altered == 0
    out, altered, dropped = kanon.k_anonymize(df, k=3)
    assert out.equals(df) and (altered, dropped) == (0, 0)


# ----------------------------------------------------------------- workbook


def test_workbook_is_deterministic():
    study = synthetic_study(200, 8)
    sheets = {
        "engagement_by_arm": tables.engagement_by_arm(study["engagement"], ARMS),
        "retention_by_arm": tables.retention_by_arm(study["retention"], ARMS),
        "consort_flow": study["consort_flow"],
        "nih_inclusion_enrollment": nih.nih_enrollment(study["participants"]),
    }
    a = workbook.workbook_bytes(sheets, notes=["as of 2026-01-01"])
    b = workbook.workbook_bytes(dict(sheets), notes=["as of 2026-01-01"])
    assert a == b
    z = zipfile.ZipFile(io.BytesIO(a))
    core = z.read("docProps/core.xml").decode()
    assert "2000-01-01T00:00:00Z" in core
    assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in z.infolist())
    wbxml = z.read("xl/workbook.xml").decode()
    names = [s.split('"')[0] for s in wbxml.split('<sheet name="')[1:]]
    assert names == [
        "Notes",
        "engagement_by_arm",
        "retention_by_arm",
        "consort_flow",
        "nih_inclusion_enrollment",
    ]
    # a different table gives different bytes
    assert workbook.workbook_bytes({"x": pl.DataFrame({"a": [1]})}) != workbook.workbook_bytes(
        {"x": pl.DataFrame({"a": [2]})}
    )
    assert workbook.sheet_name("a/b:c" * 10, set()) == ("a_b_c" * 10)[:31]


# ----------------------------------------------------------------- report


class _Counter(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: dict[str, int] = {}
        self.attrs: list[tuple[str, str | None]] = []
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attrs += attrs
        a = dict(attrs)
        if tag == "svg":
            self.stack.append(a["viewbox"])
        if tag == "rect":  # every box lies inside its drawing
            _, _, w, h = (float(v) for v in self.stack[-1].split())
            x, y = float(a["x"]), float(a["y"])
            assert 0 <= x and x + float(a["width"]) <= w and 0 <= y and y + float(a["height"]) <= h

    def handle_data(self, data):
        self.text.append(data)


def _report_context(audience: str):
    study = synthetic_study(260, 2)
    eng = tables.engagement_by_arm(study["engagement"], ARMS)
    ret = tables.retention_by_arm(study["retention"], ARMS)
    grid = nih.nih_enrollment(study["participants"])
    consort = study["consort_flow"]
    t1 = tables.table1_by_arm(synthetic_table1(study), ARMS)
    alliance = pl.DataFrame(
        {
            "arm": ["SBCM"] * 5 + ["MI"] * 5,
            "session_number": list(range(1, 6)) * 2,
            "n": [30] * 10,
            "mean_total": [40.0, 42.5, 44.1, 45.0, 46.3, 39.0, 41.0, 41.5, 43.0, 44.2],
        }
    )
    counts = {}
    if audience == "public":
        pub, counts = suppression.suppress_extract(consort, eng, ret, grid, 10, arms=ARMS, by_allocation={"Standard"},
                                                   table1=t1)
        consort, eng, ret, t1 = pub["consort_flow"], pub["engagement_by_arm"], pub["retention_by_arm"], pub["table1"]
        grid = pl.concat([pub["nih_inclusion_enrollment"], pub["nih_totals"]])
    return {
        "as_of": "2026-03-01T00:00:00Z",
        "audience": audience,
        "consort_flow": consort,
        "engagement_by_arm": eng,
        "retention_by_arm": ret,
        "nih_grid": grid,
        "km_curves": tables.km_curves_by_arm(study["retention"], ARMS),
        "alliance_by_session": alliance,
        "min_cell": 10,
        "suppressed_counts": counts,
        "arms": CONTRACT_ARMS,
        "table1": t1,
        "study_name": "Alliance intake project (contract default)",
    }


@pytest.mark.parametrize("audience", ["funder", "public"])
def test_report_is_self_contained_and_has_the_figures(audience):
    ctx = _report_context(audience)
    text = report.report_html(ctx)
    assert text == report.report_html(ctx)
    p = _Counter()
    p.feed(text)
    p.close()
    assert p.tags.get("svg") == 3  # consort, KM, alliance
    assert p.tags.get("script", 0) == 0 and p.tags.get("link", 0) == 0 and p.tags.get("img", 0) == 0
    assert "http" not in text and "url(" not in text.replace("url(#arrowhead)", "")
    assert "@import" not in text and "@font-face" not in text
    assert p.tags.get("rect", 0) >= 3 + 4 * 3  # CONSORT boxes
    assert p.tags.get("table") == 4  # table1, retention, NIH, engagement
    for section in ("summary", "consort", "table1", "retention", "alliance", "nih"):
        assert f'<section id="{section}">' in text
    assert "2026-03-01T00:00:00Z" in text and f"Audience: {audience}" in text
    assert "<h1>Alliance intake project (contract default) \u2014" in text
    assert "Randomized study with 3 arms, from the study profile: SBCM, MI, Standard." in text
    # Table 1 of the randomized cohort, Overall then the arms in the profile's order
    assert re.search(r"<th>Overall \(n = \d+\)</th><th>SBCM \(n = \d+\)</th><th>MI \(n = \d+\)</th>"
                     r"<th>Standard \(n = \d+\)</th>", text)
    assert "NIH Inclusion Enrollment Report" in text and "More than One Race" in text
    for attr, value in p.attrs:
        if attr in ("href", "src", "xlink:href"):
            assert value is None or value.startswith("#")
    if audience == "funder":
        assert text.count('class="km" data-arm') == 3  # a step curve per arm
        assert "no small-cell suppression" in text
    else:
        assert "from 1 to 10 inclusive is suppressed" in text
        assert "\u2014" in text
        assert "Cells suppressed per file" in text


def test_alliance_by_session_helper():
    scores = pl.DataFrame(
        {
            "participant_key": ["a", "a", "b", "b", "c", "c", "d"],
            "respondent": ["client", "client", "client", "staff", "client", "client", "client"],
            "session_number": [1, 2, 1, 1, 1, 2, 1],
            "total": [40.0, 44.0, 41.0, 50.0, 30.0, 33.5, None],
        }
    )
    arm_of = pl.DataFrame({"participant_key": ["a", "b", "c", "d"], "arm": ["SBCM", "SBCM", "MI", "MI"]})
    out = tables.alliance_by_session(scores, arm_of, ARMS)
    assert out.rows() == [("SBCM", 1, 2, 40.5), ("SBCM", 2, 1, 44.0), ("MI", 1, 1, 30.0), ("MI", 2, 1, 33.5)]
    assert tables.alliance_by_session(scores, arm_of, ARMS, min_n=2).rows() == [("SBCM", 1, 2, 40.5)]
