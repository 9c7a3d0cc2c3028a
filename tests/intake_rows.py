"""Builders of small REDCap intake exports for tests."""

from __future__ import annotations

import csv
import io

COLUMNS = [
    "record_id", "redcap_data_access_group", "first_name", "last_name", "phone", "assessment_date", "age", "sex",
    "ethnicity", "race___1", "race___2", "race___3", "race___4", "race___5", "race___6", "homeless",
    "drug_of_choice", "staff_notes", "intake_complete", "consent_date", "consent_audio", "consent_complete",
    "rand_arm", "rand_date", "randomization_complete", "withdrawn", "withdrawal_date", "withdrawal_scope",
    "study_status_complete",
]


def person(record_id: str, **values) -> dict:
    row = {c: "" for c in COLUMNS}
    row.update({
        "record_id": record_id, "redcap_data_access_group": "north_intake", "first_name": f"Zebulon{record_id}",
        "last_name": f"Quarternain{record_id}", "phone": "(410) 555-01" + record_id.zfill(2)[-2:],
        "assessment_date": "2025-03-03", "age": "40", "sex": "1", "ethnicity": "2", "race___4": "1",
        "homeless": "0", "drug_of_choice": "1", "intake_complete": "2", "consent_date": "2025-03-03",
        "consent_audio": "1", "consent_complete": "2", "rand_arm": "1", "rand_date": "2025-03-04",
        "randomization_complete": "2", "withdrawn": "0", "study_status_complete": "2",
    })
    for c in COLUMNS:
        if c.startswith("race___") and c not in values and row[c] == "":
            row[c] = "0"
    row.update(values)
    return row


def export(rows: list[dict], line_ending: str = "\n", bom: bool = False, encoding: str = "utf-8") -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator=line_ending)
    w.writeheader()
    w.writerows(rows)
    data = buf.getvalue().encode(encoding)
    return (b"\xef\xbb\xbf" + data) if bom else data


# Every column of an export of the contract's full intake project (the generator's dictionary).
FULL_INTAKE_COLUMNS = [
    "record_id", "redcap_data_access_group", "first_name", "last_name", "dob", "phone", "street_address", "zip",
    "email", "assessment_date", "age", "sex", "ethnicity", "race___1", "race___2", "race___3", "race___4",
    "race___5", "race___6", "education", "marital_status", "homeless", "employed", "drug_of_choice",
    "sud_diagnosis", "psychotic_disorder", "alcohol_only", "cooccurring___1", "cooccurring___2", "cooccurring___3",
    "cooccurring___4", "cooccurring___5", "cooccurring___6", "prior_tx_episodes", "last_tx_date",
    "court_referred", "asam_level", "referral_program", "staff_notes", "intake_assessment_complete",
    "consent_date", "consent_version", "consent_audio", "consent_share", "decline_reason", "consent_complete",
    "rand_arm", "rand_date", "randomization_complete", "withdrawn", "withdrawal_date", "withdrawal_scope",
    "lost_to_followup", "study_status_complete",
]


def full_person(rid: str, first: str, last: str, *, race=(), cooccurring=(), **values) -> dict:
    """A row of the full intake project: a consented, randomized (SBCM) record with neutral defaults."""
    row = {c: "" for c in FULL_INTAKE_COLUMNS}
    row.update({
        "record_id": rid, "redcap_data_access_group": "north_intake", "first_name": first, "last_name": last,
        "dob": "1980-01-15", "phone": f"(410) 555-{rid}", "street_address": f"{rid[-2:]} Larkspur Lane",
        "zip": "21201", "email": f"{first.lower()}.{last.lower()}@example.org",
        "assessment_date": "2025-03-03", "age": "40", "sex": "1", "ethnicity": "2", "education": "2",
        "marital_status": "1", "homeless": "0", "employed": "0", "drug_of_choice": "3", "sud_diagnosis": "2",
        "psychotic_disorder": "0", "alcohol_only": "0", "prior_tx_episodes": "0", "court_referred": "0",
        "asam_level": "1", "referral_program": "1", "intake_assessment_complete": "2",
        "consent_date": "2025-03-03", "consent_version": "v2.0", "consent_audio": "1", "consent_share": "1",
        "consent_complete": "2", "rand_arm": "1", "rand_date": "2025-03-04", "randomization_complete": "2",
        "withdrawn": "0", "lost_to_followup": "0", "study_status_complete": "2",
    })
    for i in range(1, 7):
        row[f"race___{i}"] = "1" if i in race else "0"
        row[f"cooccurring___{i}"] = "1" if i in cooccurring else "0"
    row.update(values)
    return row
