"""Acceptance test: a small hand-built study whose every published number is derived by hand.

Twenty intake records, a session log, an alliance export and a coded-units CSV are
written in the landing formats of CONTRACT section 1; the pipeline runs once; every
test below compares one analyst table (or one edge of CONTRACT 3.1) with literal
values computed by hand from the fixture, with the derivation in a comment. The
contract is the judge: where a model disagrees with it, the test keeps the contract's
value and fails.

The cast (record_id: role; arm; rand_date). Days are local (America/New_York) dates.

    1001 A   SBCM      2025-03-04  session windows: day -1 / 5 / 60 / 61; interview transcript, two coders
    1002 B   SBCM      2025-03-04  23:30 local on day 60 (03:30 UTC on day 61): session, contact, admission
    1003 C   SBCM      2025-03-04  voided session and contact, a log line repeated three times; alliance edges
    1004 G   SBCM      2025-03-04  scope-1 withdrawal on 2025-03-24
    1005 L   SBCM      2025-03-04  admission before randomization ignored; dropped out on day 45
    1006 M   SBCM      2025-03-10  admitted on day 60; censored; holds the data cut event
    1007 Q   SBCM      2025-03-04  five sessions
    1008 D   MI        2025-03-04  same session_number twice; interview with held units
    1009 E   MI        2025-03-04  sessions of the wrong service; consent_audio = 0
    1010 N   MI        2025-01-10  admitted on day 61 (not linked), completed after 97 days
    1011 O   MI        2025-03-05  IET: admitted on assessment + 14, visits on admission + 1 and + 34
    1012 O2  MI        2025-03-05  IET: visits on admission + 0, + 1, + 35 only
    1013 F   Standard  2025-03-04  attends sessions (Standard counts 0); focus-group speaker
    1014 P   Standard  2025-03-05  admitted on assessment + 15; discharged after exactly 60 days
    1015 R   Standard  2025-03-04  missing age and education
    1016 S   Standard  2025-03-04  missing sex and prior episodes; contacts on day 60 and 61
    1017 H   SBCM      2025-03-04  scope-2 withdrawal (withdraw all data)
    1018 I   -         -           consented, rand_arm given but no rand_date: not randomized
    1019 J   -         -           not consented, decline_reason 2 (Declined); surname appears in a transcript
    1020 K   -         -           not consented, no decline_reason (Not recorded)
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import math
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest
from conftest import warehouse_env
from intake_rows import FULL_INTAKE_COLUMNS, full_person

from orchestration.cli import run_pipeline

pytestmark = pytest.mark.slow

STUDY = Path(__file__).parent / "fixtures" / "study"
SECRET = "fixture-study-secret-0123456789"

A, B, C, G, L, M, Q = "1001", "1002", "1003", "1004", "1005", "1006", "1007"
D, E, N, O, O2 = "1008", "1009", "1010", "1011", "1012"  # noqa: E741
F, P, R, S = "1013", "1014", "1015", "1016"
H, I, J, K = "1017", "1018", "1019", "1020"  # noqa: E741
RANDOMIZED = [A, B, C, G, L, M, Q, D, E, N, O, O2, F, P, R, S]  # published (H is erased)
CONSENTED = RANDOMIZED + [I]

# ------------------------------------------------------------------------------------------------
# intake: one REDCap raw export (all the dictionary's columns, in dictionary order)
# ------------------------------------------------------------------------------------------------
INTAKE_COLUMNS = FULL_INTAKE_COLUMNS

# Real names (identifiers). Unusual on purpose: the transcript screening must find J's surname.
NAMES = {
    A: ("Thaddeus", "Quillfeather"), B: ("Ignatius", "Marlowby"), C: ("Philippa", "Dunstanville"),
    G: ("Cornelius", "Ashgrove"), L: ("Henrietta", "Pemberleigh"), M: ("Barnaby", "Crowhurst"),
    Q: ("Ambrose", "Fenwicke"), D: ("Leopold", "Haverstock"), E: ("Ottoline", "Wrexham"),
    N: ("Peregrine", "Thistlewood"), O: ("Rupert", "Gallowglass"), O2: ("Clementine", "Ravensworth"),
    F: ("Horatio", "Bellweather"), P: ("Winifred", "Aldercott"), R: ("Ezekiel", "Stonebridge"),
    S: ("Lucius", "Harrowgate"), H: ("Octavius", "Merriwether"), I: ("Percival", "Lindqvist"),
    J: ("Augustus", "Brackenridge"), K: ("Bartholomew", "Coldwater"),
}


def person(rid: str, *, race=(), cooccurring=(), **values) -> dict:
    """A consented, randomized (SBCM) record with neutral defaults; ``values`` override fields."""
    first, last = NAMES[rid]
    return full_person(rid, first, last, race=race, cooccurring=cooccurring, **values)


NOT_CONSENTED = {"consent_date": "", "consent_version": "", "consent_audio": "", "consent_share": "",
                 "rand_arm": "", "rand_date": "", "randomization_complete": "0", "withdrawn": "",
                 "lost_to_followup": "", "study_status_complete": "0"}


def intake_rows() -> list[dict]:
    # race codes: 1 AIAN, 2 Asian, 3 NHPI, 4 Black, 5 White, 6 Unknown; cooccurring: 1 Depressive,
    # 2 Bipolar, 3 OCD, 4 PTSD, 5 Anxiety, 6 Other; drug: 1 Crack, 2 Powder, 3 Heroin, 4 Non-prescribed
    # opioids, 5 Marijuana, 6 Meth, 7 Other; education 1..4; asam 1 Outpatient, 2 IOP, 3 Residential.
    return [
        person(A, age="25", race=[4], education="1", homeless="1", drug_of_choice="1", cooccurring=[1, 2, 4],
               court_referred="1"),
        person(B, age="30", ethnicity="1", race=[5], education="1", marital_status="2", employed="1",
               drug_of_choice="1", cooccurring=[1, 5]),
        person(C, age="35", sex="2", race=[4, 5], education="1", marital_status="4", employed="1",
               drug_of_choice="2", cooccurring=[1, 4]),
        person(G, age="40", race=[5, 6], prior_tx_episodes="1", last_tx_date="2024-01-01", court_referred="1",
               withdrawn="1", withdrawal_date="2025-03-24", withdrawal_scope="1"),
        person(L, age="45", sex="2", race=[6], assessment_date="2025-02-01", consent_date="2025-02-01",
               prior_tx_episodes="1", last_tx_date="2023-02-02", asam_level="2"),
        person(M, age="50", race=[], rand_date="2025-03-10", prior_tx_episodes="1", last_tx_date="2023-03-03",
               court_referred="1", asam_level="2", lost_to_followup="1"),
        person(Q, age="55", race=[4], employed="", drug_of_choice="4", prior_tx_episodes="2",
               last_tx_date="2024-06-01", asam_level="2"),
        person(D, rand_arm="2", age="20", ethnicity="1", race=[2], drug_of_choice="5", cooccurring=[1]),
        person(E, rand_arm="2", age="30", sex="2", race=[2, 5], education="3", drug_of_choice="5",
               consent_audio="0"),
        person(N, rand_arm="2", age="40", race=[4], education="3", homeless="1", drug_of_choice="6",
               cooccurring=[4], prior_tx_episodes="1", last_tx_date="2024-12-01", court_referred="1",
               asam_level="2", assessment_date="2025-01-08", consent_date="2025-01-08", rand_date="2025-01-10",
               lost_to_followup="1"),
        person(O, rand_arm="2", age="50", race=[4], education="", drug_of_choice="7", prior_tx_episodes="1",
               last_tx_date="2020-05-05", court_referred="1", asam_level="2", rand_date="2025-03-05"),
        person(O2, rand_arm="2", age="60", sex="2", race=[5], education="3", drug_of_choice="6",
               prior_tx_episodes="3", last_tx_date="2022-01-01", asam_level="3", rand_date="2025-03-05",
               lost_to_followup="1"),
        person(F, rand_arm="3", age="22", race=[4], education="4", homeless="1"),
        person(P, rand_arm="3", age="33", sex="2", ethnicity="1", race=[5], education="4", prior_tx_episodes="4",
               last_tx_date="2025-01-01", asam_level="3", rand_date="2025-03-05", lost_to_followup="1"),
        person(R, rand_arm="3", age="", race=[4], education="", drug_of_choice="5", prior_tx_episodes="5",
               last_tx_date="2024-09-09", asam_level="3", lost_to_followup="1"),
        person(S, rand_arm="3", age="44", sex="", race=[4], education="4", drug_of_choice="6",
               prior_tx_episodes="", last_tx_date="2024-10-10", asam_level="3", lost_to_followup="1"),
        person(H, age="38", race=[4], withdrawn="1", withdrawal_date="2025-04-01", withdrawal_scope="2"),
        person(I, age="41", race=[4], rand_arm="2", rand_date="", randomization_complete="1", withdrawn="",
               lost_to_followup="", study_status_complete="0"),
        person(J, age="36", race=[5], **NOT_CONSENTED, decline_reason="2"),
        person(K, age="29", race=[4], **NOT_CONSENTED),
    ]


def intake_csv() -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=INTAKE_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(intake_rows())
    return buf.getvalue().encode("utf-8")


# ------------------------------------------------------------------------------------------------
# sessions: the event log (JSON Lines)
# ------------------------------------------------------------------------------------------------
CM, MI, SR = "case_management", "motivational_interviewing", "standard_referral"


def ev(event_id: str, event_type: str, rid: str, at: str, **kw) -> str:
    return json.dumps({"event_id": event_id, "event_type": event_type, "record_id": rid, "occurred_at": at, **kw})


def att(event_id, rid, at, service, number):
    return ev(event_id, "session_attended", rid, at, service=service, session_number=number, staff_id="CM01",
              mode="in_person", duration_min=45)


def contact(event_id, rid, at, service=CM):
    return ev(event_id, "contact_attempt", rid, at, service=service, mode="phone")


def admit(event_id, rid, at, program):
    return ev(event_id, "treatment_admitted", rid, at, program_id=program)


def visit(event_id, rid, at, program):
    return ev(event_id, "treatment_visit", rid, at, program_id=program)


def discharge(event_id, rid, at, program, reason):
    return ev(event_id, "treatment_discharged", rid, at, program_id=program, discharge_reason=reason)


def void(event_id, rid, at, voids):
    return ev(event_id, "event_voided", rid, at, voids_event_id=voids)


def session_lines() -> list[str]:
    # (DST began 2025-03-09 02:00: offsets are -05:00 before, -04:00 after)
    repeated = contact("C-c2", C, "2025-03-05T09:00:00-05:00")  # day 1; the same line three times
    return [
        # A (rand 03-04)
        att("A-s1", A, "2025-03-09T12:00:00-04:00", CM, 1),   # day 5: counts
        att("A-s2", A, "2025-05-03T12:00:00-04:00", CM, 2),   # day 60: counts
        att("A-s3", A, "2025-05-04T12:00:00-04:00", CM, 3),   # day 61: does not
        att("A-s4", A, "2025-03-04T02:30:00+00:00", CM, 4),   # 21:30 EST on 03-03, local day -1: does not
        # B (rand 03-04): 23:30 local on day 60 = 03:30 UTC on day 61
        att("B-s1", B, "2025-05-03T23:30:00-04:00", CM, 1),
        contact("B-c1", B, "2025-05-03T23:45:00-04:00"),
        admit("B-t1", B, "2025-05-03T23:50:00-04:00", 2),
        # C (rand 03-04)
        att("C-s1", C, "2025-03-07T10:00:00-05:00", CM, 1),   # day 3: counts
        att("C-s2", C, "2025-03-14T10:00:00-04:00", CM, 2),   # day 10, voided by C-v1
        contact("C-c1", C, "2025-03-04T09:00:00-05:00"),       # day 0: counts
        repeated, repeated, repeated,
        contact("C-c3", C, "2025-03-06T09:00:00-05:00"),       # day 2, voided by C-v2
        void("C-v2", C, "2025-03-06T11:00:00-05:00", "C-c3"),
        ev("C-m1", "session_missed", C, "2025-06-25T09:00:00-04:00", service=CM, session_number=3),  # voided
        void("C-v3", C, "2025-06-25T12:00:00-04:00", "C-m1"),
        void("C-v1", C, "2025-06-26T09:00:00-04:00", "C-s2"),
        # G (rand 03-04, scope-1 withdrawal 03-24)
        att("G-s1", G, "2025-03-09T12:00:00-04:00", CM, 1),   # day 5
        att("G-s2", G, "2025-03-24T18:00:00-04:00", CM, 2),   # day 20 = withdrawal date: counts
        att("G-s3", G, "2025-03-29T12:00:00-04:00", CM, 3),   # after the withdrawal
        contact("G-c1", G, "2025-03-06T09:00:00-05:00"),       # day 2
        contact("G-c2", G, "2025-03-26T09:00:00-04:00"),       # after the withdrawal
        admit("G-t1", G, "2025-03-14T10:00:00-04:00", 3),     # day 10 after rand, 11 after assessment
        discharge("G-t2", G, "2025-04-23T10:00:00-04:00", 3, "dropped_out"),  # after the withdrawal
        contact("G-c3", G, "2025-06-27T10:00:00-04:00"),       # after the withdrawal (and the cut)
        # L (assessment 02-01, rand 03-04)
        admit("L-t1", L, "2025-03-02T10:00:00-05:00", 1),     # before randomization
        discharge("L-t2", L, "2025-03-03T10:00:00-05:00", 1, "completed"),
        admit("L-t3", L, "2025-03-09T10:00:00-04:00", 2),     # day 5: the admission
        discharge("L-t4", L, "2025-04-23T10:00:00-04:00", 2, "dropped_out"),  # 45 days later
        # M (rand 03-10)
        admit("M-t1", M, "2025-05-09T10:00:00-04:00", 4),     # day 60
        visit("M-t2", M, "2025-06-20T15:00:00-04:00", 4),     # THE DATA CUT (19:00 UTC)
        # Q (rand 03-04)
        ev("Q-b1", "session_scheduled", Q, "2025-03-04T09:00:00-05:00", scheduled_for="2025-03-05T10:00:00-05:00",
           service=CM, session_number=1),
        att("Q-s1", Q, "2025-03-05T10:00:00-05:00", CM, 1),   # day 1
        att("Q-s2", Q, "2025-03-06T10:00:00-05:00", CM, 2),
        att("Q-s3", Q, "2025-03-07T10:00:00-05:00", CM, 3),
        att("Q-s4", Q, "2025-03-08T10:00:00-05:00", CM, 4),
        att("Q-s5", Q, "2025-03-10T10:00:00-04:00", CM, 5),
        # D (MI, rand 03-04)
        att("D-s1", D, "2025-03-06T10:00:00-05:00", MI, 1),   # day 2
        att("D-s2", D, "2025-03-13T10:00:00-04:00", MI, 1),   # session 1 again
        att("D-s3", D, "2025-03-20T10:00:00-04:00", MI, 2),
        # E (MI, rand 03-04)
        att("E-s1", E, "2025-03-05T10:00:00-05:00", CM, 1),   # wrong service
        att("E-s2", E, "2025-03-06T10:00:00-05:00", SR, 1),   # wrong service
        att("E-s3", E, "2025-03-08T10:00:00-05:00", MI, 2),   # day 4
        # N (MI, rand 01-10)
        admit("N-t1", N, "2025-03-12T10:00:00-04:00", 5),     # day 61
        discharge("N-t2", N, "2025-06-17T10:00:00-04:00", 5, "completed"),  # 97 days later
        # O (MI, assessment 03-03, rand 03-05)
        att("O-s1", O, "2025-03-06T10:00:00-05:00", MI, 1),   # day 1
        admit("O-t1", O, "2025-03-17T10:00:00-04:00", 6),     # assessment + 14, rand + 12
        visit("O-t2", O, "2025-03-18T10:00:00-04:00", 6),     # admission + 1
        visit("O-t3", O, "2025-04-20T10:00:00-04:00", 6),     # admission + 34
        # O2 (MI, assessment 03-03, rand 03-05)
        admit("O2-t1", O2, "2025-03-10T09:00:00-04:00", 7),   # assessment + 7, rand + 5
        visit("O2-t2", O2, "2025-03-10T15:00:00-04:00", 7),   # admission + 0
        visit("O2-t3", O2, "2025-03-11T10:00:00-04:00", 7),   # admission + 1
        visit("O2-t4", O2, "2025-04-14T10:00:00-04:00", 7),   # admission + 35
        discharge("O2-t5", O2, "2025-04-19T10:00:00-04:00", 7, "administrative"),  # 40 days
        # F (Standard, rand 03-04)
        att("F-s1", F, "2025-03-07T10:00:00-05:00", SR, 1),
        att("F-s2", F, "2025-03-09T12:00:00-04:00", CM, 1),
        contact("F-c1", F, "2025-03-05T10:00:00-05:00", SR),  # day 1
        # P (Standard, assessment 03-03, rand 03-05)
        admit("P-t1", P, "2025-03-18T10:00:00-04:00", 8),     # assessment + 15, rand + 13
        visit("P-t2", P, "2025-03-19T10:00:00-04:00", 8),
        visit("P-t3", P, "2025-03-20T10:00:00-04:00", 8),
        discharge("P-t4", P, "2025-05-17T10:00:00-04:00", 8, "transferred"),  # 60 days
        # S (Standard, rand 03-04)
        contact("S-c1", S, "2025-05-03T10:00:00-04:00"),       # day 60
        contact("S-c2", S, "2025-05-04T10:00:00-04:00"),       # day 61
        # H (scope 2)
        att("H-s1", H, "2025-03-06T10:00:00-05:00", CM, 1),
        contact("H-c1", H, "2025-06-28T10:00:00-04:00"),
        # I (consented, not randomized)
        admit("I-t1", I, "2025-03-10T10:00:00-04:00", 1),
        # J (not consented)
        contact("J-c1", J, "2025-06-29T10:00:00-04:00"),
    ]


# ------------------------------------------------------------------------------------------------
# alliance: REDCap export with two repeating instruments
# ------------------------------------------------------------------------------------------------
ALLIANCE_COLUMNS = (
    ["record_id", "redcap_repeat_instrument", "redcap_repeat_instance", "waic_date", "waic_session"]
    + [f"waic_{i}" for i in range(1, 13)] + ["wai_client_complete", "wais_date", "wais_session"]
    + [f"wais_{i}" for i in range(1, 13)] + ["wai_staff_complete"]
)
GOAL, TASK, BOND = (4, 6, 8, 11), (1, 2, 10, 12), (3, 5, 7, 9)


def survey(rid, form, instance, day, session, goal=(None,) * 4, task=(None,) * 4, bond=(None,) * 4,
           complete="2") -> dict:
    prefix = "waic" if form == "wai_client" else "wais"
    row = {c: "" for c in ALLIANCE_COLUMNS}
    row.update({"record_id": rid, "redcap_repeat_instrument": form, "redcap_repeat_instance": str(instance),
                f"{prefix}_date": day, f"{prefix}_session": str(session), f"{form}_complete": complete})
    for items, values in ((GOAL, goal), (TASK, task), (BOND, bond)):
        for i, v in zip(items, values, strict=True):
            row[f"{prefix}_{i}"] = "" if v is None else str(v)
    return row


def alliance_csv() -> bytes:
    four = lambda v: (v, v, v, v)  # noqa: E731
    rows = [
        {**{c: "" for c in ALLIANCE_COLUMNS}, "record_id": A},
        # instance order, date order and session order all differ: session 3 was surveyed first
        survey(A, "wai_client", 1, "2025-03-20", 3, goal=(5, 5, 4, 4), task=(5, 4, 5, None), bond=four(5)),
        survey(A, "wai_client", 2, "2025-03-25", 1, goal=(2, 3, 3, 4), task=four(3), bond=four(4)),
        survey(A, "wai_client", 3, "2025-04-01", 2, goal=(3, 4, 4, 5), task=four(4), bond=(4, 4, 5, 5)),
        survey(A, "wai_staff", 1, "2025-03-10", 1, goal=four(4), task=four(4), bond=four(4)),
        {**{c: "" for c in ALLIANCE_COLUMNS}, "record_id": C},
        survey(C, "wai_client", 1, "2025-03-08", 1, goal=four(2), task=four(2), bond=four(2)),
        survey(C, "wai_client", 2, "2025-03-09", 1, goal=four(3), task=four(3), bond=four(3)),
        survey(C, "wai_client", 3, "2025-03-15", 2, goal=(3, 3, None, None), task=four(3), bond=four(3)),
        survey(C, "wai_client", 4, "2025-03-16", 2, complete="0"),  # no item answered: not a survey
        {**{c: "" for c in ALLIANCE_COLUMNS}, "record_id": G},
        survey(G, "wai_client", 1, "2025-03-10", 1, goal=four(5), task=four(5), bond=four(5)),
        survey(G, "wai_client", 2, "2025-03-25", 2, goal=four(1), task=four(1), bond=four(1)),  # after withdrawal
        {**{c: "" for c in ALLIANCE_COLUMNS}, "record_id": H},
        survey(H, "wai_client", 1, "2025-03-07", 1, goal=four(3), task=four(3), bond=four(3)),
    ]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=ALLIANCE_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


# ------------------------------------------------------------------------------------------------
# transcripts: coded units CSV + pseudonyms
# ------------------------------------------------------------------------------------------------
PSEUDONYMS = {A: "Marigold", D: "Juniper", E: "Willow", F: "Sparrow", H: "Heron"}
# A's interview: 40 characters of talk, then 20 holding a phone number
TEXT_A = "We set goals and she listens to me a lot" + "Call me 410-555-0147"
assert len(TEXT_A) == 60
TEXT_D = "The bus was late again. I rode with Brackenridge to the clinic."
TEXT_E = "I like my counselor a lot."
TEXT_FG = "Sparrow: My worker always shows up.\nHeron: The sessions helped me."
TRUST, LISTEN, HOUSING, TRANSPORT = ("Working alliance/Trust", "Working alliance/Listening",
                                     "Barriers/Housing", "Barriers/Transport")


def _span(text: str, piece: str) -> tuple[int, int]:
    s = text.index(piece)
    return s, s + len(piece)


def units() -> list[tuple]:
    """(unit_id, transcript_id, kind, record_id, speaker, coder, code, start, end, text)."""
    fg_f = _span(TEXT_FG, "My worker always shows up.")
    fg_h = _span(TEXT_FG, "The sessions helped me.")
    d_ok = _span(TEXT_D, "The bus was late again.")
    d_name = _span(TEXT_D, "I rode with Brackenridge to the clinic.")
    rows = [
        ("U01", f"INT-{A}-1", "interview", A, "Marigold", "coder_a", TRUST, 0, 20),
        ("U02", f"INT-{A}-1", "interview", A, "Marigold", "coder_a", LISTEN, 10, 30),
        ("U03", f"INT-{A}-1", "interview", A, "Marigold", "coder_a", HOUSING, 30, 34),
        ("U04", f"INT-{A}-1", "interview", A, "Marigold", "coder_b", TRUST, 5, 20),
        ("U05", f"INT-{A}-1", "interview", A, "Marigold", "coder_b", LISTEN, 25, 40),
        ("U06", f"INT-{A}-1", "interview", A, "Marigold", "coder_b", TRANSPORT, 40, 60),  # phone: held
        ("U07", f"INT-{D}-1", "interview", D, "Juniper", "coder_a", TRANSPORT, *d_name),   # J's surname: held
        ("U08", f"INT-{D}-1", "interview", D, "Juniper", "coder_a", TRANSPORT, *d_ok),
        ("U09", f"INT-{E}-1", "interview", E, "Willow", "coder_a", TRUST, 0, len(TEXT_E)),  # no audio consent
        ("U10", f"INT-{E}-1", "interview", E, "Willow", "coder_b", TRUST, 0, len(TEXT_E)),  # no audio consent
        ("U11", "FG-1", "focus_group", F, "Sparrow", "coder_a", TRUST, *fg_f),
        ("U12", "FG-1", "focus_group", H, "Heron", "coder_a", TRUST, *fg_h),                 # scope 2
    ]
    texts = {f"INT-{A}-1": TEXT_A, f"INT-{D}-1": TEXT_D, f"INT-{E}-1": TEXT_E, "FG-1": TEXT_FG}
    return [(*r, texts[r[1]][r[7]:r[8]]) for r in rows]


def coded_units_csv() -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["unit_id", "transcript_id", "transcript_kind", "record_id", "speaker", "coder_id", "code_path",
                "start_char", "end_char", "text", "coded_at"])
    for u in units():
        w.writerow([*u, "2025-06-30T12:00:00-04:00"])
    return buf.getvalue().encode("utf-8")


def pseudonyms_csv() -> bytes:
    return ("record_id,pseudonym\n" + "".join(f"{r},{p}\n" for r, p in PSEUDONYMS.items())).encode("utf-8")


# ------------------------------------------------------------------------------------------------
# the fixture: land, run once, open the analyst database
# ------------------------------------------------------------------------------------------------
def write_landing(landing: Path) -> None:
    for source in ("intake", "sessions", "alliance", "transcripts"):
        (landing / source).mkdir(parents=True, exist_ok=True)
    # the contract's full dictionaries (copied from ingestion.synth.dictionaries)
    shutil.copyfile(STUDY / "intake" / "data_dictionary.csv", landing / "intake" / "data_dictionary.csv")
    shutil.copyfile(STUDY / "alliance" / "data_dictionary.csv", landing / "alliance" / "data_dictionary.csv")
    (landing / "intake" / "ALLIANCE_DATA_2025-06-30_2305.csv").write_bytes(intake_csv())
    (landing / "alliance" / "ALLIANCE_WAI_DATA_2025-06-30_2310.csv").write_bytes(alliance_csv())
    (landing / "sessions" / "sessions_2025-06-30.jsonl").write_text("\n".join(session_lines()) + "\n")
    (landing / "transcripts" / "coded_units_2025-06-30.csv").write_bytes(coded_units_csv())
    (landing / "transcripts" / "pseudonyms.csv").write_bytes(pseudonyms_csv())


class Published:
    def __init__(self, settings, code: int):
        self.settings = settings
        self.code = code
        self.conn = duckdb.connect(str(settings.analytics_path), read_only=True)
        self.rid = {self.key(r): r for r in NAMES}

    def key(self, record_id: str) -> str:
        return hmac.new(self.settings.participant_hash_key.encode(), record_id.encode(),
                        hashlib.sha256).hexdigest()[:24]

    def rows(self, sql: str) -> list[dict]:
        cur = self.conn.execute(sql)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    def by_record(self, table: str) -> dict[str, dict]:
        """Rows of a participant-level table keyed by record_id (one row per participant)."""
        out = {}
        for row in self.rows(f"select * from {table}"):
            rid = self.rid.get(row["participant_key"], row["participant_key"])
            assert rid not in out, f"{table}: two rows for {rid}"
            out[rid] = row
        return out


@pytest.fixture(scope="module")
def pub(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fixture_study")
    with warehouse_env(tmp, SECRET):
        write_landing(tmp / "landing")
        from ingestion.settings import load_settings

        settings = load_settings()
        code = run_pipeline(quiet=True)
        published = Published(settings, code)
        yield published
        published.conn.close()


# ================================================================================================
# the run
# ================================================================================================
def test_every_blocking_check_passes_and_the_database_is_published(pub):
    assert pub.settings.analytics_path.exists()
    failing = pub.rows("select check_name, severity from data_quality where not passed")
    assert all(r["severity"] != "blocking" for r in failing), failing


def test_the_run_succeeds(pub):
    # every step of the nightly job, the scope-2 erasure after publication included
    assert pub.code == 0


def test_scope_2_erasure_of_a_participant_with_coded_units(pub):
    # H withdrew all data and speaks (as "Heron") in focus group FG-1 (unit U12): after the run no
    # event, identifier, pseudonym or coded unit of H is left in the vault (CONTRACT 2, rule 2).
    from ingestion.vault import open_vault

    conn = open_vault(pub.settings, read_only=True)
    try:
        assert conn.execute(f"select count(*) from events.events where stream = 'participant/{H}'").fetchone()[0] == 0
        assert conn.execute("select count(*) from events.events where event_type = 'participant_erased'"
                            ).fetchone()[0] == 1
        for table in ("identifier_values", "pseudonyms"):
            assert conn.execute(f"select count(*) from identified.{table} where record_id = '{H}'"
                                ).fetchone()[0] == 0, table
        assert conn.execute("select count(*) from identified.transcript_units where unit_id = 'U12'"
                            ).fetchone()[0] == 0
    finally:
        conn.close()


def test_data_cut_is_the_latest_counted_event(pub):
    # Counted events end with M's treatment_visit at 2025-06-20T15:00-04:00 = 19:00 UTC. Later lines
    # that must not move it, each to a different instant: C's voided session_missed (06-25 09:00),
    # the event_voided lines themselves (06-25 12:00, 06-26 09:00), G's contact after a scope-1
    # withdrawal (06-27), H's contact (scope 2, 06-28), J's contact (not consented, 06-29).
    cut = pub.conn.execute("select data_cut from build_info").fetchone()[0]
    if cut.tzinfo is None:
        cut = cut.replace(tzinfo=UTC)
    assert cut == datetime(2025, 6, 20, 19, 0, tzinfo=UTC)


# ================================================================================================
# participants
# ================================================================================================
def test_participants_are_the_consented_minus_scope_2(pub):
    # 20 records - J, K (not consented) - H (withdrew all data) = 17, I included (not randomized)
    got = pub.by_record("participants")
    assert sorted(got) == sorted(CONSENTED)


def test_participants_carry_dictionary_labels(pub):
    got = pub.by_record("participants")
    a = got[A]
    assert (a["site"], a["arm"], a["consented_on"], a["randomized_on"], a["age"]) == (
        "north_intake", "SBCM", date(2025, 3, 3), date(2025, 3, 4), 25)
    assert (a["sex"], a["ethnicity"], a["race"], a["education"], a["marital_status"]) == (
        "Male", "Not Hispanic or Latino", "Black or African American", "Less than high school",
        "Single, never married")
    assert (a["homeless"], a["employed"], a["drug_of_choice"], a["drug_class"], a["court_referred"],
            a["asam_level"], a["prior_tx_episodes"]) == ("Yes", "No", "Crack cocaine", "Cocaine", "Yes",
                                                         "Outpatient", 0)
    assert sorted(a["cooccurring"]) == ["Bipolar disorder", "Depressive disorder", "PTSD"]
    assert got[B]["cooccurring"] is not None and sorted(got[B]["cooccurring"]) == ["Anxiety disorder",
                                                                                   "Depressive disorder"]
    assert list(got[G]["cooccurring"] or []) == []
    assert (got[G]["withdrawn"], got[G]["withdrawal_scope"]) == ("Yes", "No further data (keep what was collected)")
    assert got[A]["withdrawn"] == "No"
    assert [got[r]["arm"] for r in (D, F)] == ["MI", "Standard"]
    # drug_class: 1-2 Cocaine, 3-4 Opioids, else Other
    assert [got[r]["drug_class"] for r in (C, G, Q, D, N, O)] == ["Cocaine", "Opioids", "Opioids", "Other",
                                                                   "Other", "Other"]
    assert got[R]["age"] is None and got[S]["sex"] is None and got[R]["education"] is None


def test_participants_race_rule(pub):
    got = pub.by_record("participants")
    assert got[C]["race"] == "More than one race"          # Black + White
    assert got[E]["race"] == "More than one race"          # Asian + White
    assert got[G]["race"] == "White"                       # White + Unknown: Unknown counts only alone
    assert got[L]["race"] == "Unknown or not reported"     # only Unknown ticked
    assert got[M]["race"] == "Unknown or not reported"     # nothing ticked
    assert got[D]["race"] == "Asian"


def test_participants_not_randomized_has_null_arm(pub):
    # I: rand_arm = 2 but no rand_date. CONTRACT 3.1: randomized means both; a consented person who is
    # not randomized appears with a null arm (and a null randomized_on).
    i = pub.by_record("participants")[I]
    assert (i["randomized_on"], i["arm"]) == (None, None)


# ================================================================================================
# sessions
# ================================================================================================
def _sessions(pub, rid):
    rows = pub.rows(f"select * from sessions where participant_key = '{pub.key(rid)}'")
    return sorted((r["event_type"], r["service"], r["session_number"], r["days_since_randomization"])
                  for r in rows)


def test_sessions_days_are_local_dates(pub):
    # A-s4 at 02:30 UTC on 03-04 is 21:30 on 03-03 local: day -1; B's events at 23:30/23:45 local on
    # 05-03 are day 60 (03:30 UTC on 05-04 would give 61). All non-voided session/contact events listed.
    assert _sessions(pub, A) == sorted([("session_attended", CM, 1, 5), ("session_attended", CM, 2, 60),
                                        ("session_attended", CM, 3, 61), ("session_attended", CM, 4, -1)])
    assert _sessions(pub, B) == sorted([("session_attended", CM, 1, 60), ("contact_attempt", CM, None, 60)])


def test_sessions_drop_voided_and_duplicate_lines(pub):
    # C: C-s1 (day 3), C-c1 (day 0), C-c2 once (its line appears three times); C-s2, C-c3 and C-m1 were
    # voided and the event_voided lines are not session events.
    assert _sessions(pub, C) == sorted([("session_attended", CM, 1, 3), ("contact_attempt", CM, None, 0),
                                        ("contact_attempt", CM, None, 1)])


def test_sessions_stop_at_a_scope_1_withdrawal(pub):
    # G withdrew (scope 1) on 03-24 = day 20: G-s1 (5), G-s2 (20, on the date), G-c1 (2); not G-s3 (25),
    # G-c2 (22), G-c3 (06-27).
    assert _sessions(pub, G) == sorted([("session_attended", CM, 1, 5), ("session_attended", CM, 2, 20),
                                        ("contact_attempt", CM, None, 2)])


def test_sessions_hold_nobody_unconsented_or_erased(pub):
    keys = {r["participant_key"] for r in pub.rows("select participant_key from sessions")}
    assert not keys & {pub.key(r) for r in (H, J, K)}


# ================================================================================================
# engagement
# ================================================================================================
# (arm, sessions_attended, attended_any, days_to_first_session, contacts, linked, days_to_linkage,
#  iet_initiation, iet_engagement)
ENGAGEMENT = {
    # A: s1 day 5, s2 day 60 count; s3 day 61 and s4 day -1 (local) do not -> 2, first 5
    A: ("SBCM", 2, True, 5, 0, False, None, False, False),
    # B: session, contact and admission at 23:30-23:50 local on day 60 -> all within 60 days
    B: ("SBCM", 1, True, 60, 1, True, 60, False, False),
    # C: s1 day 3 (s2 voided); contacts day 0 and day 1 (three identical lines = 1); day-2 one voided
    C: ("SBCM", 1, True, 3, 2, False, None, False, False),
    # G: s1 day 5, s2 day 20 (= withdrawal date), s3 after it; contact day 2 (day 22 after withdrawal);
    #    admitted day 10 after rand = 11 after assessment -> linked, initiated, no visits
    G: ("SBCM", 2, True, 5, 1, True, 10, True, False),
    # L: admission on day -2 ignored; admitted day 5; assessment 02-01 so no admission within 14 days
    L: ("SBCM", 0, False, None, 0, True, 5, False, False),
    # M: admitted on day 60 exactly -> linked
    M: ("SBCM", 0, False, None, 0, True, 60, False, False),
    # Q: sessions 1..5 on days 1, 2, 3, 4, 6
    Q: ("SBCM", 5, True, 1, 0, False, None, False, False),
    # D: MI session 1 on days 2 and 9 (once), session 2 on day 16
    D: ("MI", 2, True, 2, 0, False, None, False, False),
    # E: case_management day 1 and standard_referral day 2 are not MI's service; MI s2 day 4
    E: ("MI", 1, True, 4, 0, False, None, False, False),
    # N: admitted on day 61 -> not linked; assessment 01-08, admission 03-12 -> not initiated
    N: ("MI", 0, False, None, 0, False, None, False, False),
    # O: s1 day 1; admitted assessment + 14 (rand + 12): initiated; visits on admission + 1 and + 34
    O: ("MI", 1, True, 1, 0, True, 12, True, True),
    # O2: admitted assessment + 7 (rand + 5); visits + 0, + 1, + 35 -> only one in 1..34
    O2: ("MI", 0, False, None, 0, True, 5, True, False),
    # F: Standard: 0 whatever is attended; contact day 1 (any service)
    F: ("Standard", 0, False, None, 1, False, None, False, False),
    # P: admitted assessment + 15 (rand + 13): linked, not initiated (two visits do not help)
    P: ("Standard", 0, False, None, 0, True, 13, False, False),
    R: ("Standard", 0, False, None, 0, False, None, False, False),
    # S: contacts on day 60 (counts) and day 61 (does not)
    S: ("Standard", 0, False, None, 1, False, None, False, False),
}
ENG_COLS = ("arm", "sessions_attended", "attended_any", "days_to_first_session", "contacts", "linked",
            "days_to_linkage", "iet_initiation", "iet_engagement")


def _eng(pub):
    return {r: tuple(row[c] for c in ENG_COLS) for r, row in pub.by_record("engagement").items()}


def _check_eng(pub, rids, cols=ENG_COLS):
    got = _eng(pub)
    idx = [ENG_COLS.index(c) for c in cols]
    for r in rids:
        assert r in got, f"{r} missing from engagement"
        assert tuple(got[r][i] for i in idx) == tuple(ENGAGEMENT[r][i] for i in idx), f"record {r}"


def test_engagement_is_one_row_per_published_randomized_participant(pub):
    assert sorted(pub.by_record("engagement")) == sorted(RANDOMIZED)


def test_engagement_whole_table(pub):
    assert _eng(pub) == ENGAGEMENT


def test_engagement_60_day_window_day_60_counts_day_61_not(pub):
    _check_eng(pub, [A, M, S], ("sessions_attended", "days_to_first_session", "contacts", "linked",
                                "days_to_linkage"))


def test_engagement_local_day_2330_belongs_to_that_day(pub):
    _check_eng(pub, [A, B])


def test_engagement_voided_and_duplicated_events(pub):
    _check_eng(pub, [C], ("sessions_attended", "days_to_first_session", "contacts"))


def test_engagement_session_number_once_and_own_service_only(pub):
    _check_eng(pub, [D, E], ("sessions_attended", "days_to_first_session"))


def test_engagement_standard_arm_attends_nothing(pub):
    _check_eng(pub, [F, P, R, S], ("sessions_attended", "attended_any", "days_to_first_session"))


def test_engagement_scope_1_withdrawal_stops_counting(pub):
    _check_eng(pub, [G])


def test_engagement_linkage_from_randomization(pub):
    _check_eng(pub, [L, M, N], ("linked", "days_to_linkage"))


def test_engagement_iet_initiation_day_14_counts_day_15_not(pub):
    _check_eng(pub, [O, P, G], ("iet_initiation",))


def test_engagement_iet_visits_1_to_34_days(pub):
    _check_eng(pub, [O, O2, P], ("iet_initiation", "iet_engagement"))


# ================================================================================================
# retention (data cut 2025-06-20 local)
# ================================================================================================
# (arm, program_id, admitted_on, discharged_on, days_in_treatment, retained_30, retained_60, retained_90,
#  dropped_out, censored)
RETENTION = {
    # B: admitted 05-03 (23:50 local), no discharge: censored at the cut 06-20 -> 48 days
    B: ("SBCM", 2, date(2025, 5, 3), None, 48, True, None, None, False, True),
    # G: admitted 03-14; dropped out 04-23 is after the withdrawal (03-24): censored there -> 10 days
    G: ("SBCM", 3, date(2025, 3, 14), None, 10, None, None, None, False, True),
    # L: the 03-02 admission (before rand) and its 03-03 discharge are ignored; 03-09 -> 04-23 = 45,
    #    dropped_out
    L: ("SBCM", 2, date(2025, 3, 9), date(2025, 4, 23), 45, True, False, False, True, False),
    # M: 05-09 to the cut 06-20 = 42, censored
    M: ("SBCM", 4, date(2025, 5, 9), None, 42, True, None, None, False, True),
    # N: admitted on day 61 (not linked, still a retention row); 03-12 -> 06-17 = 97, completed
    N: ("MI", 5, date(2025, 3, 12), date(2025, 6, 17), 97, True, True, True, False, False),
    # O: 03-17 to the cut 06-20 = 95, censored but past 90 days
    O: ("MI", 6, date(2025, 3, 17), None, 95, True, True, True, False, True),
    # O2: 03-10 -> 04-19 = 40, administrative
    O2: ("MI", 7, date(2025, 3, 10), date(2025, 4, 19), 40, True, False, False, False, False),
    # P: 03-18 -> 05-17 = 60 exactly -> retained_60 true, transferred
    P: ("Standard", 8, date(2025, 3, 18), date(2025, 5, 17), 60, True, True, False, False, False),
}
RET_COLS = ("arm", "program_id", "admitted_on", "discharged_on", "days_in_treatment", "retained_30",
            "retained_60", "retained_90", "dropped_out", "censored")


def _ret(pub):
    return {r: tuple(row[c] for c in RET_COLS) for r, row in pub.by_record("retention").items()}


def test_retention_rows_are_first_admissions_on_or_after_randomization(pub):
    # I (not randomized) is admitted but has no row; nobody else was admitted
    assert sorted(_ret(pub)) == sorted(RETENTION)


def test_retention_whole_table(pub):
    assert _ret(pub) == RETENTION


def test_retention_admission_before_randomization_is_ignored(pub):
    assert _ret(pub)[L] == RETENTION[L]


def test_retention_discharged_and_censored(pub):
    got = _ret(pub)
    for r in (L, N, O2, P, M, O):
        assert got[r] == RETENTION[r], f"record {r}"


def test_retention_scope_1_censored_at_withdrawal(pub):
    assert _ret(pub)[G] == RETENTION[G]


def test_retention_local_day_admission(pub):
    assert _ret(pub)[B] == RETENTION[B]


# ================================================================================================
# alliance
# ================================================================================================
def _scores(pub):
    out = []
    for row in pub.rows("select * from alliance_scores"):
        out.append((pub.rid.get(row["participant_key"]), row["respondent"], row["session_number"],
                    row["surveyed_on"], row["goal"], row["task"], row["bond"], row["total"],
                    row["items_answered"]))
    return sorted(out, key=lambda t: (t[0], t[1], t[2], t[3]))


def _approx_rows(got, expected):
    assert len(got) == len(expected), got
    for g, e in zip(got, expected, strict=True):
        assert g[:4] == e[:4]
        for gv, ev_ in zip(g[4:], e[4:], strict=True):
            assert (gv is None) == (ev_ is None) and (ev_ is None or gv == pytest.approx(ev_, abs=1e-9)), (g, e)


ALLIANCE_SCORES = [
    # (record, respondent, session, surveyed_on, goal, task, bond, total, items_answered)
    # A s1: goal (2+3+3+4)/4 = 3, task 3, bond 4, total 10/3
    (A, "client", 1, date(2025, 3, 25), 3.0, 3.0, 4.0, 10 / 3, 12),
    # A s2: goal (3+4+4+5)/4 = 4, task 4, bond (4+4+5+5)/4 = 4.5, total 12.5/3 = 25/6
    (A, "client", 2, date(2025, 4, 1), 4.0, 4.0, 4.5, 25 / 6, 12),
    # A s3: goal (5+5+4+4)/4 = 4.5, task (5+4+5)/3 = 14/3 (item 12 blank: 3 of 4), bond 5,
    #       total (4.5 + 14/3 + 5)/3 = 85/18; 11 items
    (A, "client", 3, date(2025, 3, 20), 4.5, 14 / 3, 5.0, 85 / 18, 11),
    (A, "staff", 1, date(2025, 3, 10), 4.0, 4.0, 4.0, 4.0, 12),
    (C, "client", 1, date(2025, 3, 8), 2.0, 2.0, 2.0, 2.0, 12),
    (C, "client", 1, date(2025, 3, 9), 3.0, 3.0, 3.0, 3.0, 12),
    # C s2: goal has 2 of 4 items -> null, so total null; 10 items. (The 03-16 row has no item: no survey.)
    (C, "client", 2, date(2025, 3, 15), None, 3.0, 3.0, None, 10),
    # G: 03-10 survey kept; the 03-25 one is after the scope-1 withdrawal (03-24). H (scope 2): none.
    (G, "client", 1, date(2025, 3, 10), 5.0, 5.0, 5.0, 5.0, 12),
]


def test_alliance_scores_wai_sr_scoring(pub):
    _approx_rows(_scores(pub), ALLIANCE_SCORES)


def test_alliance_scores_exclude_empty_rows_withdrawals_and_erased(pub):
    got = _scores(pub)
    assert [(r[0], r[3]) for r in got if r[0] in (C, G, H)] == [(C, date(2025, 3, 8)), (C, date(2025, 3, 9)),
                                                                (C, date(2025, 3, 15)), (G, date(2025, 3, 10))]
    assert None not in [r[0] for r in got]


def test_alliance_trajectory(pub):
    got = sorted((pub.rid.get(r["participant_key"]), r["respondent"], r["surveys"], r["first_total"],
                  r["last_total"], r["slope_per_session"]) for r in pub.rows("select * from alliance_trajectory"))
    expected = [
        # A client: in session order totals 10/3, 25/6, 85/18 (session 3 surveyed first, session 1 later);
        # x = 1, 2, 3 -> slope = (y3 - y1) / 2 = (85/18 - 60/18) / 2 = 25/36
        (A, "client", 3, 10 / 3, 85 / 18, 25 / 36),
        (A, "staff", 1, 4.0, 4.0, None),
        # C client: two surveys with a total, both session 1: first (03-08) 2.0, last (03-09) 3.0, no slope
        (C, "client", 2, 2.0, 3.0, None),
        (G, "client", 1, 5.0, 5.0, None),
    ]
    assert len(got) == len(expected), got
    for g, e in zip(got, expected, strict=True):
        assert g[:3] == e[:3]
        for gv, ev_ in zip(g[3:], e[3:], strict=True):
            assert (gv is None) == (ev_ is None) and (ev_ is None or gv == pytest.approx(ev_, abs=1e-9)), (g, e)


# ================================================================================================
# coded units, code matrix, coder agreement
# ================================================================================================
def test_coded_units_published(pub):
    # Published: U01-U05 (A), U08 (D), U11 (F). Held: U06 (phone number), U07 (J's surname). Not
    # published: U09, U10 (E has consent_audio = 0), U12 (H withdrew all data).
    got = sorted((pub.rid.get(r["participant_key"]), r["transcript_kind"], r["code_path"], r["theme"],
                  r["coder_id"], r["text"]) for r in pub.rows("select * from coded_units"))
    by_id = {u[0]: u for u in units()}
    expected = sorted((by_id[u][3], by_id[u][2], by_id[u][6], by_id[u][6].split("/")[0], by_id[u][5],
                       by_id[u][9]) for u in ("U01", "U02", "U03", "U04", "U05", "U08", "U11"))
    assert got == expected


def test_coded_units_hold_back_identifiers(pub):
    texts = [r["text"] for r in pub.rows("select text from coded_units")]
    assert not any("555-0147" in t or "Brackenridge" in t for t in texts)


def test_coded_units_respect_audio_consent_and_erasure(pub):
    keys = {r["participant_key"] for r in pub.rows("select participant_key from coded_units")}
    assert pub.key(E) not in keys and pub.key(H) not in keys


def test_code_matrix_by_arm(pub):
    got = sorted((r["code_path"], r["value"], r["units"], r["participants"])
                 for r in pub.rows("select * from code_matrix where attribute = 'arm'"))
    assert got == sorted([
        (TRUST, "SBCM", 2, 1),      # U01 (coder_a) + U04 (coder_b), both A
        (TRUST, "Standard", 1, 1),  # U11, F in the focus group (E's MI units and H's unit not published)
        (LISTEN, "SBCM", 2, 1),     # U02 + U05
        (HOUSING, "SBCM", 1, 1),    # U03
        (TRANSPORT, "MI", 1, 1),    # U08 (U07 held; A's U06 held, so no SBCM row)
    ])


def test_coder_agreement(pub):
    # Pair (coder_a, coder_b): the only transcript both coded with published units is INT-1001-1
    # (E's transcript is consent-excluded). Characters either coded there, published units only:
    # a [0,20) u [10,30) u [30,34), b [5,20) u [25,40) -> [0,40) = 40 (U06's [40,60) is held).
    # Trust:     a [0,20) 20, b [5,20) 15; both 15, neither 20 -> po 35/40 = .875; pa .5, pb .375,
    #            pe .5*.375 + .5*.625 = .5 -> kappa (.875-.5)/.5 = .75
    # Listening: a [10,30) 20, b [25,40) 15; both 5, neither [0,10) 10 -> po 15/40 = .375; pe .5
    #            -> kappa (.375-.5)/.5 = -.25
    # Housing:   a [30,34) 4, b none; both 0, neither 36 -> po .9; pa .1, pb 0, pe .9 -> kappa 0
    # Transport: only in coder_b's held unit -> no row
    got = sorted((r["code_path"], r["coder_a"], r["coder_b"], r["characters_compared"], r["percent_agreement"],
                  r["cohens_kappa"]) for r in pub.rows("select * from coder_agreement"))
    expected = sorted([
        (TRUST, "coder_a", "coder_b", 40, 87.5, 0.75),
        (LISTEN, "coder_a", "coder_b", 40, 37.5, -0.25),
        (HOUSING, "coder_a", "coder_b", 40, 90.0, 0.0),
    ])
    assert [g[:4] for g in got] == [e[:4] for e in expected]
    for g, e in zip(got, expected, strict=True):
        assert float(g[4]) == pytest.approx(e[4], abs=1e-9) and float(g[5]) == pytest.approx(e[5], abs=1e-9), g


# ================================================================================================
# consort_flow
# ================================================================================================
def test_consort_flow(pub):
    got = {(r["stage"], r["arm"], r["reason"] or None): r["n"]
           for r in pub.rows("select stage, arm, reason, n from consort_flow")}
    expected = {
        ("assessed", "All", None): 20,                  # every intake record, H, J, K included
        ("excluded", "All", "Declined"): 1,             # J
        ("excluded", "All", "Not recorded"): 1,         # K: no decline_reason
        ("excluded", "All", "Not randomized"): 1,       # I: rand_arm without rand_date
        ("randomized", "All", None): 17,                # 16 + H
        ("allocated", "SBCM", None): 8,                 # A B C G L M Q + H
        ("allocated", "MI", None): 5,                   # D E N O O2
        ("allocated", "Standard", None): 4,             # F P R S
        ("received_intervention", "SBCM", None): 6,     # A B C G Q H (L, M attended nothing)
        ("received_intervention", "MI", None): 3,       # D E O (N, O2 nothing)
        ("received_intervention", "Standard", None): 4,  # = allocated
        ("lost_to_followup", "SBCM", None): 1,          # M
        ("lost_to_followup", "MI", None): 2,            # N O2
        ("lost_to_followup", "Standard", None): 3,      # P R S
        ("withdrew", "SBCM", None): 2,                  # G (scope 1), H (scope 2)
        ("withdrew", "MI", None): 0,
        ("withdrew", "Standard", None): 0,
        ("analysed", "SBCM", None): 7,                  # 8 - H
        ("analysed", "MI", None): 5,
        ("analysed", "Standard", None): 4,
    }
    # the decline_reason labels nobody has (Not eligible, Other) may be listed with n = 0
    extra = {k: v for k, v in got.items() if k not in expected}
    assert all(k[0] == "excluded" and k[2] in ("Not eligible", "Other") and v == 0 for k, v in extra.items()), extra
    assert {k: got.get(k) for k in expected} == expected


# ================================================================================================
# table1
# ================================================================================================
def _t1(pub, cohort, stratum):
    rows = pub.rows(f"select * from table1 where cohort = '{cohort}' and stratum = '{stratum}'")
    cat, cont = {}, {}
    for r in rows:
        if r["level"] is None:
            cont[r["characteristic"]] = (r["n"], r["mean"], r["sd"])
        else:
            cat.setdefault(r["characteristic"], {})[r["level"]] = (
                r["n"], None if r["pct"] is None else str(r["pct"]))
    return cat, cont


# randomized cohort, Overall (16 published randomized participants; pct = n/16, half away from zero:
# 1/16 = 6.25 -> 6.3, 3/16 = 18.75 -> 18.8, 5/16 = 31.25 -> 31.3, 7/16 = 43.75 -> 43.8,
# 9/16 = 56.25 -> 56.3, 11/16 = 68.75 -> 68.8, 13/16 = 81.25 -> 81.3; exact binary floats, so
# round-half-even on a float would give 6.2, 31.2, 56.2 ...)
OVERALL = {
    "sex": {"Male": (10, "62.5"), "Female": (5, "31.3"), "Unknown or not reported": (0, "0.0"),
            "Missing": (1, "6.3")},                                                    # S blank
    "race": {"American Indian or Alaska Native": (0, "0.0"), "Asian": (1, "6.3"),   # D
             "Native Hawaiian or Other Pacific Islander": (0, "0.0"),
             "Black or African American": (7, "43.8"),                                # A Q N O F R S
             "White": (4, "25.0"),                                                    # B G(+Unknown) O2 P
             "Unknown or not reported": (2, "12.5"),                                  # L (only 6), M (none)
             "More than one race": (2, "12.5")},                                      # C, E
    "ethnicity": {"Hispanic or Latino": (3, "18.8"), "Not Hispanic or Latino": (13, "81.3"),
                  "Unknown or not reported": (0, "0.0")},
    "education": {"Less than high school": (3, "18.8"), "High school or GED": (5, "31.3"),
                  "Some college": (3, "18.8"), "College degree or more": (3, "18.8"),
                  "Missing": (2, "12.5")},                                            # O, R
    "marital_status": {"Single, never married": (14, "87.5"), "Married or living as married": (1, "6.3"),
                       "Separated": (0, "0.0"), "Divorced": (1, "6.3"), "Widowed": (0, "0.0")},
    "homeless": {"Yes": (3, "18.8"), "No": (13, "81.3")},                             # A F N
    "employed": {"Yes": (2, "12.5"), "No": (13, "81.3"), "Missing": (1, "6.3")},      # B C; Q blank
    "drug_of_choice": {"Crack cocaine": (2, "12.5"), "Powder cocaine": (1, "6.3"), "Heroin": (5, "31.3"),
                       "Non-prescribed opioids": (1, "6.3"), "Marijuana": (3, "18.8"),
                       "Methamphetamine": (3, "18.8"), "Other": (1, "6.3")},
    "drug_class": {"Cocaine": (3, "18.8"), "Opioids": (6, "37.5"), "Other": (7, "43.8")},
    "cooccurring": {"Depressive disorder": (4, "25.0"), "Bipolar disorder": (1, "6.3"),   # A B C D; A
                    "Obsessive-compulsive disorder": (0, "0.0"), "PTSD": (3, "18.8"),     # A C N
                    "Anxiety disorder": (1, "6.3"), "Other": (0, "0.0")},                 # B
    "prior_treatment": {"None": (6, "37.5"), "Once": (5, "31.3"), "Multiple": (4, "25.0"),
                        "Missing": (1, "6.3")},                                            # S blank
    # last_tx_date within 730 days before assessment: G (427 d), L (730 d exactly), N, Q, P, R, S -> 7;
    # M (731 d), O, O2 and the six with no episode (blank date) -> No
    "recent_treatment": {"Yes": (7, "43.8"), "No": (9, "56.3")},
    "asam_level": {"Outpatient": (7, "43.8"), "Intensive outpatient": (5, "31.3"), "Residential": (4, "25.0")},
    "court_referred": {"Yes": (5, "31.3"), "No": (11, "68.8")},                        # A G M N O
}
OVERALL_CONTINUOUS = {
    # ages 25 30 35 40 45 50 55 | 20 30 40 50 60 | 22 33 44 (R blank): n 15, mean 579/15 = 38.6,
    # sum of squared deviations 10298/5 -> variance 5149/35
    "age": (15, 38.6, math.sqrt(5149 / 35)),
    # episodes 0 x6, 1 x5, 2, 3, 4, 5 (S blank): mean 19/15, SS 524/15 -> variance 262/105
    "prior_tx_episodes": (15, 19 / 15, math.sqrt(262 / 105)),
    # sessions_attended A2 B1 C1 G2 L0 M0 Q5 | D2 E1 N0 O1 O2:0 | Standard 0 x4: mean 15/16,
    # SS 431/16 -> variance 431/240
    "sessions_attended": (16, 15 / 16, math.sqrt(431 / 240)),
}


def _check_continuous(got, expected):
    for name, (n, mean, sd) in expected.items():
        g = got.get(name)
        assert g is not None, f"{name} missing"
        assert g[0] == n, name
        assert (g[1] is None) == (mean is None) and (mean is None or float(g[1]) == pytest.approx(mean)), name
        assert (g[2] is None) == (sd is None) and (sd is None or float(g[2]) == pytest.approx(sd)), name


def test_table1_randomized_overall_categorical(pub):
    cat, _ = _t1(pub, "randomized", "Overall")
    for name, levels in OVERALL.items():
        assert cat.get(name) == levels, name


def test_table1_half_away_from_zero_rounding(pub):
    cat, _ = _t1(pub, "randomized", "Overall")
    assert cat["race"]["Asian"] == (1, "6.3")               # 6.25
    assert cat["sex"]["Female"] == (5, "31.3")              # 31.25
    assert cat["recent_treatment"]["No"] == (9, "56.3")     # 56.25
    assert cat["court_referred"]["No"] == (11, "68.8")      # 68.75


def test_table1_every_level_and_missing_rows(pub):
    cat, _ = _t1(pub, "randomized", "Overall")
    assert cat["race"]["American Indian or Alaska Native"] == (0, "0.0")
    assert cat["sex"]["Missing"] == (1, "6.3")
    assert "Missing" not in cat["ethnicity"] and "Missing" not in cat["race"]


def test_table1_randomized_overall_continuous(pub):
    _, cont = _t1(pub, "randomized", "Overall")
    _check_continuous(cont, OVERALL_CONTINUOUS)


def test_table1_randomized_by_arm(pub):
    expected_sex = {
        "SBCM": {"Male": (5, "71.4"), "Female": (2, "28.6"), "Unknown or not reported": (0, "0.0")},  # 5/7, 2/7
        "MI": {"Male": (3, "60.0"), "Female": (2, "40.0"), "Unknown or not reported": (0, "0.0")},
        "Standard": {"Male": (2, "50.0"), "Female": (1, "25.0"), "Unknown or not reported": (0, "0.0"),
                     "Missing": (1, "25.0")},
    }
    expected_cont = {
        # SBCM ages 25..55 step 5: mean 40, SS 700 -> var 700/6; sessions 2 1 1 2 0 0 5: mean 11/7, var 62/21
        "SBCM": {"age": (7, 40.0, math.sqrt(700 / 6)), "sessions_attended": (7, 11 / 7, math.sqrt(62 / 21))},
        # MI ages 20..60 step 10: mean 40, var 1000/4; sessions 2 1 0 1 0: mean 0.8, var 0.7
        "MI": {"age": (5, 40.0, math.sqrt(250)), "sessions_attended": (5, 0.8, math.sqrt(0.7))},
        # Standard ages 22 33 44 (R blank): mean 33, sd 11; sessions all 0
        "Standard": {"age": (3, 33.0, 11.0), "sessions_attended": (4, 0.0, 0.0)},
    }
    for arm in ("SBCM", "MI", "Standard"):
        cat, cont = _t1(pub, "randomized", arm)
        sex = {k: v for k, v in cat["sex"].items() if not (k == "Missing" and v[0] == 0)}
        assert sex == expected_sex[arm], arm
        _check_continuous(cont, expected_cont[arm])


def test_table1_qualitative_cohort(pub):
    # qualitative: participants with a published unit: A (SBCM), D (MI), F (Standard). Not E (no audio
    # consent), not H (erased), not J (their surname is only quoted).
    cat, cont = _t1(pub, "qualitative", "Overall")
    assert cat["sex"] == {"Male": (3, "100.0"), "Female": (0, "0.0"), "Unknown or not reported": (0, "0.0")}
    assert cat["race"]["Black or African American"] == (2, "66.7")  # A, F
    assert cat["race"]["Asian"] == (1, "33.3")                       # D
    # ages 25 20 22: mean 67/3, SS 38/3 -> variance 19/3
    _check_continuous(cont, {"age": (3, 67 / 3, math.sqrt(19 / 3))})
    for arm, age in (("SBCM", 25), ("MI", 20), ("Standard", 22)):
        _, c = _t1(pub, "qualitative", arm)
        _check_continuous(c, {"age": (1, float(age), None)})


def test_table1_excludes_the_erased_and_unrandomized(pub):
    # H (scope 2, SBCM) and I (not randomized) would change the SBCM and Overall denominators
    cat, cont = _t1(pub, "randomized", "Overall")
    assert sum(v[0] for v in cat["sex"].values()) == 16
    cat, _ = _t1(pub, "randomized", "SBCM")
    assert sum(v[0] for v in cat["sex"].values()) == 7
