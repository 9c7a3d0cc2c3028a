"""REDCap data dictionaries of the two synthetic projects (intake, alliance).

The dictionaries are written exactly as REDCap writes them: the 18 standard
columns, one row per field, choices as ``code, label | code, label``.
"""

from __future__ import annotations

import csv
import io

REDCAP_DICTIONARY_HEADER: tuple[str, ...] = (
    "Variable / Field Name",
    "Form Name",
    "Section Header",
    "Field Type",
    "Field Label",
    "Choices, Calculations, OR Slider Labels",
    "Field Note",
    "Text Validation Type OR Show Slider Number",
    "Text Validation Min",
    "Text Validation Max",
    "Identifier?",
    "Branching Logic (Show field only if...)",
    "Required Field?",
    "Custom Alignment",
    "Question Number (surveys only)",
    "Matrix Group Name",
    "Matrix Ranking?",
    "Field Annotation",
)

# code -> label maps of the contract's intake project (CONTRACT 1.1)
SEX = {1: "Male", 2: "Female", 3: "Unknown or not reported"}
ETHNICITY = {1: "Hispanic or Latino", 2: "Not Hispanic or Latino", 3: "Unknown or not reported"}
RACE = {
    1: "American Indian or Alaska Native",
    2: "Asian",
    3: "Native Hawaiian or Other Pacific Islander",
    4: "Black or African American",
    5: "White",
    6: "Unknown or not reported",
}
EDUCATION = {1: "Less than high school", 2: "High school or GED", 3: "Some college", 4: "College degree or more"}
MARITAL_STATUS = {
    1: "Single, never married",
    2: "Married or living as married",
    3: "Separated",
    4: "Divorced",
    5: "Widowed",
}
DRUG_OF_CHOICE = {
    1: "Crack cocaine",
    2: "Powder cocaine",
    3: "Heroin",
    4: "Non-prescribed opioids",
    5: "Marijuana",
    6: "Methamphetamine",
    7: "Other",
}
SUD_DIAGNOSIS = {1: "Abuse", 2: "Dependence"}
COOCCURRING = {
    1: "Depressive disorder",
    2: "Bipolar disorder",
    3: "Obsessive-compulsive disorder",
    4: "PTSD",
    5: "Anxiety disorder",
    6: "Other",
}
ASAM_LEVEL = {1: "Outpatient", 2: "Intensive outpatient", 3: "Residential"}
REFERRAL_PROGRAM = {i: f"Program {i}" for i in range(1, 9)}
DECLINE_REASON = {1: "Not eligible", 2: "Declined", 3: "Other"}
RAND_ARM = {1: "Strengths-based case management", 2: "Motivational interviewing", 3: "Standard referral"}
WITHDRAWAL_SCOPE = {1: "No further data (keep what was collected)", 2: "Withdraw all data"}
WAI_SCALE = {1: "Seldom", 2: "Sometimes", 3: "Fairly often", 4: "Very often", 5: "Always"}

WAI_ITEMS = (
    "{who} and {other} agree about the things {who_obj} will need to do to help improve the situation.",
    "What {who} is doing in the program gives new ways of looking at the problem.",
    "{who} believes {other} likes {who_obj}.",
    "{other} does not understand what {who} is trying to accomplish.",
    "{who} is confident in {other}'s ability to help.",
    "{other} and {who} are working towards mutually agreed upon goals.",
    "{who} feels that {other} appreciates {who_obj}.",
    "{who} and {other} agree on what is important to work on.",
    "{other} and {who} respect each other.",
    "{who} and {other} collaborate on setting goals.",
    "{who} feels that the things done in sessions will help accomplish the desired changes.",
    "{who} and {other} have established a good understanding of the kind of changes that would be good.",
)


def choices(mapping: dict[int, str]) -> str:
    """REDCap's choices cell: ``1, Male | 2, Female``."""
    return " | ".join(f"{code}, {label}" for code, label in mapping.items())


def _field(name, form, ftype, label, choices_="", validation="", identifier="", note="", section="",
           vmin="", vmax="", branching="", required="", annotation=""):
    return {
        "Variable / Field Name": name,
        "Form Name": form,
        "Section Header": section,
        "Field Type": ftype,
        "Field Label": label,
        "Choices, Calculations, OR Slider Labels": choices_,
        "Field Note": note,
        "Text Validation Type OR Show Slider Number": validation,
        "Text Validation Min": vmin,
        "Text Validation Max": vmax,
        "Identifier?": identifier,
        "Branching Logic (Show field only if...)": branching,
        "Required Field?": required,
        "Custom Alignment": "",
        "Question Number (surveys only)": "",
        "Matrix Group Name": "",
        "Matrix Ranking?": "",
        "Field Annotation": annotation,
    }


def intake_dictionary() -> list[dict[str, str]]:
    """Rows of the intake project's data dictionary (CONTRACT 1.1)."""
    f = _field
    ia, co, ra, st = "intake_assessment", "consent", "randomization", "study_status"
    return [
        f("record_id", ia, "text", "Study ID"),
        f("first_name", ia, "text", "First name", identifier="y", section="Contact information"),
        f("last_name", ia, "text", "Last name", identifier="y"),
        f("dob", ia, "text", "Date of birth", validation="date_ymd", identifier="y"),
        f("phone", ia, "text", "Phone number", validation="phone", identifier="y"),
        f("street_address", ia, "text", "Street address", identifier="y"),
        f("zip", ia, "text", "ZIP code", validation="zipcode", identifier="y"),
        f("email", ia, "text", "E-mail address", validation="email", identifier="y"),
        f("assessment_date", ia, "text", "Date of intake assessment", validation="date_ymd",
          section="Intake assessment", required="y"),
        f("age", ia, "text", "Age at assessment (years)", validation="integer", vmin="0", vmax="110"),
        f("sex", ia, "radio", "Sex", choices(SEX), section="Demographics"),
        f("ethnicity", ia, "radio", "Ethnicity", choices(ETHNICITY)),
        f("race", ia, "checkbox", "Race (check all that apply)", choices(RACE)),
        f("education", ia, "radio", "Highest level of education completed", choices(EDUCATION)),
        f("marital_status", ia, "radio", "Marital status", choices(MARITAL_STATUS)),
        f("homeless", ia, "yesno", "Currently homeless?"),
        f("employed", ia, "yesno", "Currently employed?"),
        f("drug_of_choice", ia, "radio", "Primary drug of choice", choices(DRUG_OF_CHOICE),
          section="Substance use and diagnosis"),
        f("sud_diagnosis", ia, "radio", "Substance use disorder diagnosis (DSM-IV)", choices(SUD_DIAGNOSIS)),
        f("psychotic_disorder", ia, "yesno", "Psychotic disorder (exclusion criterion)"),
        f("alcohol_only", ia, "yesno", "Alcohol use disorder only (exclusion criterion)"),
        f("cooccurring", ia, "checkbox", "Co-occurring psychiatric disorders (check all that apply)",
          choices(COOCCURRING)),
        f("prior_tx_episodes", ia, "text", "Number of previous treatment episodes", validation="integer",
          vmin="0", vmax="99", note="0 = none"),
        f("last_tx_date", ia, "text", "End date of the most recent previous treatment episode",
          validation="date_ymd", branching="[prior_tx_episodes] > 0"),
        f("court_referred", ia, "yesno", "Referred by the court or criminal justice system?"),
        f("asam_level", ia, "radio", "ASAM level of care recommended", choices(ASAM_LEVEL),
          section="Referral"),
        f("referral_program", ia, "radio", "Treatment program referred to", choices(REFERRAL_PROGRAM)),
        f("staff_notes", ia, "notes", "Intake staff notes"),
        f("consent_date", co, "text", "Date informed consent signed", validation="date_ymd",
          note="Leave blank if not consented"),
        f("consent_version", co, "text", "Consent form version"),
        f("consent_audio", co, "yesno", "Agrees to audio-recorded and transcribed interviews",
          branching="[consent_date] <> ''"),
        f("consent_share", co, "yesno", "Agrees to sharing of de-identified data outside the study",
          branching="[consent_date] <> ''"),
        f("decline_reason", co, "radio", "Reason not consented", choices(DECLINE_REASON),
          branching="[consent_date] = ''"),
        f("rand_arm", ra, "radio", "Randomized arm", choices(RAND_ARM)),
        f("rand_date", ra, "text", "Date of randomization", validation="date_ymd"),
        f("withdrawn", st, "yesno", "Participant withdrew from the study"),
        f("withdrawal_date", st, "text", "Date of withdrawal", validation="date_ymd",
          branching="[withdrawn] = '1'"),
        f("withdrawal_scope", st, "radio", "Scope of withdrawal", choices(WITHDRAWAL_SCOPE),
          branching="[withdrawn] = '1'"),
        f("lost_to_followup", st, "yesno", "Lost to follow-up"),
    ]


def alliance_dictionary() -> list[dict[str, str]]:
    """Rows of the working-alliance project's data dictionary (two repeating instruments)."""
    rows = [_field("record_id", "wai_client", "text", "Study ID")]
    for form, prefix, who, other, who_obj in (
        ("wai_client", "waic", "I", "my case manager", "me"),
        ("wai_staff", "wais", "The client", "I", "the client"),
    ):
        rows.append(_field(f"{prefix}_date", form, "text", "Date of survey", validation="date_ymd"))
        rows.append(_field(f"{prefix}_session", form, "text", "Session number this survey followed",
                           validation="integer", vmin="1", vmax="5"))
        for i, item in enumerate(WAI_ITEMS, start=1):
            label = item.format(who=who, other=other, who_obj=who_obj)
            label = label[0].upper() + label[1:]
            rows.append(_field(f"{prefix}_{i}", form, "radio", label, choices(WAI_SCALE),
                               section="Working Alliance Inventory (short form revised)" if i == 1 else ""))
    return rows


def dictionary_csv(rows: list[dict[str, str]]) -> bytes:
    """Serialise dictionary rows as REDCap's CSV (RFC 4180, ``\\n`` line ends, UTF-8 without BOM)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(REDCAP_DICTIONARY_HEADER), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def export_columns(rows: list[dict[str, str]], dag: bool = False) -> list[str]:
    """Columns of a raw REDCap export of the project, in dictionary order.

    Checkbox fields expand to ``field___code``; each form's ``<form>_complete``
    follows its last field; ``redcap_data_access_group`` is second when ``dag``.
    """
    cols: list[str] = []
    for i, row in enumerate(rows):
        name, form = row["Variable / Field Name"], row["Form Name"]
        if row["Field Type"] == "checkbox":
            codes = [c.split(",", 1)[0].strip() for c in row["Choices, Calculations, OR Slider Labels"].split("|")]
            cols.extend(f"{name}___{c}" for c in codes)
        else:
            cols.append(name)
        if i == 0 and dag:
            cols.append("redcap_data_access_group")
        nxt = rows[i + 1]["Form Name"] if i + 1 < len(rows) else None
        if nxt != form:
            cols.append(f"{form}_complete")
    return cols
