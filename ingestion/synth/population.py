"""Screened people and their intake-project records (vectorised, one row per person)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from . import names
from .calendar import ENROLL_START, ENROLL_STOP, STUDY_END, business_days, day_number

CONSENT_V2_1 = day_number(ENROLL_START) + 330  # the consent form was revised once

STAFF_NOTE_TEMPLATES: tuple[str, ...] = (
    "Client came in with {first}'s sister; asked us to call her at {phone} if client can't be reached.",
    "Staying at the shelter on {street} for now. Best reached in the mornings.",
    "Client prefers to be called {first}. Has a court date next month.",
    "Mother ({last}) drove client to intake. Client anxious about losing housing.",
    "Client reports no phone at the moment; use e-mail {email}.",
    "Was in detox last week, discharged early. Motivated but worried about transport.",
    "Client asked that we not leave messages at home.",
    "Needs a bus pass. Lives off {street}, about an hour from most programs.",
    "Interpreter not needed. Client works nights some weeks.",
    "Referred from the ER after an overdose; partner present during intake.",
)


@dataclass
class Population:
    """True (final) values of every screened person, plus the faults to play back in snapshots."""

    people: pl.DataFrame          # one row per screened person, typed columns, *_day as day numbers
    corrections: pl.DataFrame     # record index, field, wrong value (string), corrected on (day, minute)


def _choice(rng: np.random.Generator, n: int, probs: dict[int, float]) -> np.ndarray:
    codes = np.array(list(probs), dtype=np.int64)
    p = np.array(list(probs.values()), dtype=float)
    return codes[rng.choice(len(codes), size=n, p=p / p.sum())]


def build_population(n: int, seed: int) -> Population:
    rng = np.random.default_rng([seed, 1])
    idx = np.arange(n, dtype=np.int64)

    # -- intake assessment -------------------------------------------------
    bdays = business_days(ENROLL_START, ENROLL_STOP)
    assess = np.sort(rng.choice(bdays, size=n))
    site = rng.choice(2, size=n, p=[0.56, 0.44])
    sex = _choice(rng, n, {1: 0.615, 2: 0.378, 3: 0.007})
    age = np.clip(np.rint(rng.normal(39.0, 10.5, n)), 18, 72).astype(np.int64)
    minor = rng.random(n) < 0.006
    age[minor] = rng.integers(16, 18, minor.sum())
    ethnicity = _choice(rng, n, {1: 0.06, 2: 0.92, 3: 0.02})

    race = np.zeros((n, 6), dtype=np.int8)
    race_main = _choice(rng, n, {4: 0.485, 5: 0.455, 1: 0.006, 2: 0.01, 3: 0.003, 6: 0.011, 0: 0.03})
    for c in range(1, 7):
        race[race_main == c, c - 1] = 1
    multi = race_main == 0
    race[multi, 3] = 1  # Black and ...
    second = rng.choice([0, 4, 1], size=multi.sum(), p=[0.3, 0.6, 0.1])
    race[np.flatnonzero(multi), second] = 1
    nothing = rng.random(n) < 0.004  # nothing ticked at all: counts as unknown
    race[nothing] = 0

    education = _choice(rng, n, {1: 0.35, 2: 0.42, 3: 0.17, 4: 0.06})
    marital = _choice(rng, n, {1: 0.54, 2: 0.08, 3: 0.17, 4: 0.17, 5: 0.04})
    homeless = (rng.random(n) < 0.42).astype(np.int64)
    employed = (rng.random(n) < 0.15).astype(np.int64)
    drug = _choice(rng, n, {1: 0.515, 2: 0.17, 3: 0.245, 4: 0.06, 5: 0.005, 6: 0.003, 7: 0.002})
    sud = _choice(rng, n, {1: 0.19, 2: 0.81})
    psychotic = (rng.random(n) < 0.02).astype(np.int64)
    alcohol_only = (rng.random(n) < 0.015).astype(np.int64)
    no_dx = rng.random(n) < 0.004
    sud_f = np.where(no_dx, 0, sud)  # 0 -> blank
    drug_f = np.where(alcohol_only == 1, 0, drug)
    cooc = (rng.random((n, 6)) < np.array([0.30, 0.08, 0.02, 0.15, 0.20, 0.05])).astype(np.int8)
    prior_any = rng.random(n) < 0.85
    prior_once = rng.random(n) < 1 / 3
    prior = np.where(~prior_any, 0, np.where(prior_once, 1, 2 + rng.geometric(0.3, n) - 1))
    last_tx = np.where(prior > 0, assess - rng.integers(20, 2200, n), -1)
    court = (rng.random(n) < 0.2).astype(np.int64)
    asam = _choice(rng, n, {1: 0.45, 2: 0.35, 3: 0.20})
    no_asam = rng.random(n) < 0.003
    asam_f = np.where(no_asam | no_dx, 0, asam)
    prog_by_level = np.array([[1, 2, 3], [4, 5, 3], [6, 7, 8]])  # programs offering each level
    referral = np.where(asam_f > 0, prog_by_level[np.maximum(asam_f, 1) - 1, rng.integers(0, 3, n)], 0)
    referral = np.where(rng.random(n) < 0.15, rng.integers(1, 9, n), referral)
    referral = np.where(asam_f > 0, referral, 0)

    eligible = (age >= 18) & (psychotic == 0) & (alcohol_only == 0) & (sud_f > 0) & (asam_f > 0)

    # -- consent -------------------------------------------------------------
    end = day_number(STUDY_END)
    agrees = eligible & (rng.random(n) < 0.845)
    consent = np.where(rng.random(n) < 0.85, assess, assess + rng.integers(1, 6, n))
    consent = np.where(agrees & (consent <= end), consent, -1)
    consented = consent >= 0
    decline = np.where(~eligible, np.where(rng.random(n) < 0.97, 1, 0),
                       np.where(rng.random(n) < 0.8, 2, np.where(rng.random(n) < 0.75, 3, 0)))
    decline = np.where(consented | (agrees & ~consented), 0, decline)
    consent_version = np.where(consent >= CONSENT_V2_1, 2, 1)  # 1 -> v2.0, 2 -> v2.1
    consent_audio = (rng.random(n) < 0.85).astype(np.int64)
    consent_share = (rng.random(n) < 0.9).astype(np.int64)

    # -- randomization (permuted blocks of six, in order of randomization) -----
    rand = np.where(rng.random(n) < 0.6, consent, consent + rng.integers(1, 8, n))
    rand = np.where(consented & (rng.random(n) < 0.975) & (rand <= end), rand, -1)
    randomized = rand >= 0
    order = np.lexsort((idx, rand))
    order = order[randomized[order]]
    nblocks = -(-len(order) // 6)
    block = np.tile(np.array([1, 1, 2, 2, 3, 3]), nblocks)
    keys = rng.random(nblocks * 6) + np.repeat(np.arange(nblocks), 6)
    block = block[np.argsort(keys, kind="stable")][: len(order)]
    arm = np.zeros(n, dtype=np.int64)
    arm[order] = block

    # -- status --------------------------------------------------------------
    w = rng.random(n)
    scope = np.where(randomized & (w < 0.012), 1, np.where(randomized & (w < 0.017), 2, 0))
    wdate = np.where(scope > 0, rand + rng.integers(7, 150, n), -1)
    scope = np.where(wdate <= end, scope, 0)
    wdate = np.where(scope > 0, wdate, -1)
    ltf = np.where(randomized & (scope == 0) & (rng.random(n) < 0.06), rand + 90, -1)
    ltf = np.where(ltf <= end, ltf, -1)

    # -- identifiers ---------------------------------------------------------
    male_first = np.array(names.FIRST_NAMES_MALE)
    female_first = np.array(names.FIRST_NAMES_FEMALE)
    use_male = (sex == 1) | ((sex == 3) & (rng.random(n) < 0.5))
    first = np.where(use_male, male_first[rng.integers(0, len(male_first), n)],
                     female_first[rng.integers(0, len(female_first), n)])
    last = np.array(names.SURNAMES)[rng.integers(0, len(names.SURNAMES), n)]
    dob = assess - age * 365 - (age // 4) - rng.integers(0, 365, n)
    phone_area = np.array(names.AREA_CODES)[rng.integers(0, len(names.AREA_CODES), n)]
    phone_line = rng.integers(100, 200, n)
    street_no = rng.integers(100, 4800, n)
    street = np.array(names.STREET_NAMES)[rng.integers(0, len(names.STREET_NAMES), n)]
    suffix = np.array(names.STREET_SUFFIXES)[rng.integers(0, len(names.STREET_SUFFIXES), n)]
    zipc = 21201 + rng.integers(0, 39, n)
    domain = np.array(names.EMAIL_DOMAINS)[rng.integers(0, len(names.EMAIL_DOMAINS), n)]
    email_no = rng.integers(1, 99, n)
    note_pick = np.where(rng.random(n) < 0.08, rng.integers(0, len(STAFF_NOTE_TEMPLATES), n), -1)

    people = pl.DataFrame(
        {
            "idx": idx,
            "record_id": (idx + 1001).astype(str),
            "site": np.where(site == 0, "north_intake", "south_intake"),
            "first_name": first,
            "last_name": last,
            "dob_day": dob,
            "phone_area": phone_area,
            "phone_line": phone_line,
            "street_no": street_no,
            "street": street,
            "suffix": suffix,
            "zip": zipc.astype(str),
            "domain": domain,
            "email_no": email_no,
            "assessment_day": assess,
            "age": age,
            "sex": sex,
            "ethnicity": ethnicity,
            **{f"race___{c}": race[:, c - 1] for c in range(1, 7)},
            "education": education,
            "marital_status": marital,
            "homeless": homeless,
            "employed": employed,
            "drug_of_choice": drug_f,
            "sud_diagnosis": sud_f,
            "psychotic_disorder": psychotic,
            "alcohol_only": alcohol_only,
            **{f"cooccurring___{c}": cooc[:, c - 1] for c in range(1, 7)},
            "prior_tx_episodes": prior,
            "last_tx_day": last_tx,
            "court_referred": court,
            "asam_level": asam_f,
            "referral_program": referral,
            "note_pick": note_pick,
            "eligible": eligible,
            "consent_day": consent,
            "consent_version": consent_version,
            "consent_audio": consent_audio,
            "consent_share": consent_share,
            "decline_reason": decline,
            "rand_arm": arm,
            "rand_day": rand,
            "withdrawal_scope": scope,
            "withdrawal_day": wdate,
            "ltf_day": ltf,
        }
    )
    # dob exactly consistent with age at assessment: recompute age from the dates
    people = people.with_columns(
        pl.from_epoch("dob_day", time_unit="d").alias("_dob"),
        pl.from_epoch("assessment_day", time_unit="d").alias("_ass"),
    ).with_columns(
        (
            pl.col("_ass").dt.year() - pl.col("_dob").dt.year()
            - (
                (pl.col("_ass").dt.month() < pl.col("_dob").dt.month())
                | ((pl.col("_ass").dt.month() == pl.col("_dob").dt.month())
                   & (pl.col("_ass").dt.day() < pl.col("_dob").dt.day()))
            ).cast(pl.Int64)
        ).cast(pl.Int64).alias("age")
    ).drop("_dob", "_ass")
    return Population(people=people, corrections=_corrections(people, rng, n))


def _corrections(people: pl.DataFrame, rng: np.random.Generator, n: int) -> pl.DataFrame:
    """Values that were entered wrong and corrected later (played back in snapshots)."""
    end = day_number(STUDY_END)
    assess = people["assessment_day"].to_numpy()
    pick = rng.random(n) < 0.01
    old_enough = np.flatnonzero(assess <= end - 45)
    if n >= 200 and len(old_enough):
        forced = old_enough[rng.integers(0, len(old_enough))]
        pick[forced] = True
    else:
        forced = -1
    rows = np.flatnonzero(pick)
    kind = rng.choice(3, size=len(rows), p=[0.5, 0.3, 0.2])
    kind[rows == forced] = 0
    age = people["age"].to_numpy()[rows]
    sex = people["sex"].to_numpy()[rows]
    edu = people["education"].to_numpy()[rows]
    delta = rng.integers(1, 11, len(rows)) * rng.choice([-1, 1], len(rows))
    wrong = np.where(kind == 0, np.maximum(age + delta, 18) + (age + delta < 18) * 20,
                     np.where(kind == 1, np.where(sex == 1, 2, 1), np.where(edu >= 3, edu - 1, edu + 1)))
    span = np.maximum(end - assess[rows], 1)
    corr_day = assess[rows] + 1 + (rng.random(len(rows)) * span).astype(np.int64)
    corr_day = np.minimum(corr_day, end)
    corr_day[rows == forced] = end  # corrected on the last day: visible between the last two exports
    minute = rng.integers(9 * 60, 17 * 60, len(rows))
    minute[rows == forced] = 10 * 60
    field = np.array(["age", "sex", "education"])[kind]
    return pl.DataFrame(
        {"idx": rows.astype(np.int64), "field": field, "wrong": wrong.astype(np.int64),
         "corr_day": corr_day.astype(np.int64), "corr_minute": minute.astype(np.int64)}
    )
