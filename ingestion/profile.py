"""Study profiles: a YAML file mapping the warehouse's concepts onto one REDCap project.

The form is CONTRACT section 1.5 (documented for data managers in
``docs/study-profile.md``). Loading validates the form alone (unknown keys,
unknown concepts, labels that are not the contract's); :func:`check_profile`
then holds it against the project's data dictionary (fields it lacks, codes it
does not list, codes of a fixed-category concept that map to no contract
label). Both report every problem at once, as one line each naming the file,
the key and what was expected; :class:`ProfileError` carries them (exit 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ingestion.settings import ConfigError

# The concepts of the contract's intake project (CONTRACT 1.1), plus `site` and `dob`.
CONCEPTS = (
    "record_id", "site", "first_name", "last_name", "dob", "phone", "street_address", "zip", "email",
    "assessment_date", "age", "sex", "ethnicity", "race", "education", "marital_status", "homeless",
    "employed", "drug_of_choice", "sud_diagnosis", "psychotic_disorder", "alcohol_only", "cooccurring",
    "prior_tx_episodes", "last_tx_date", "court_referred", "asam_level", "referral_program",
    "consent_date", "consent_version", "consent_audio", "consent_share", "decline_reason", "rand_arm",
    "rand_date", "withdrawn", "withdrawal_date", "withdrawal_scope", "lost_to_followup",
)
# Concepts whose value is yes/no (compared with the profile's `yes_code`).
YES_NO_CONCEPTS = (
    "homeless", "employed", "psychotic_disorder", "alcohol_only", "court_referred", "consent_audio",
    "consent_share", "withdrawn", "lost_to_followup",
)
# The contract's labels of the fixed-category concepts (CONTRACT 1.5), in the contract's order.
CONTRACT_LABELS: dict[str, tuple[str, ...]] = {
    "sex": ("Male", "Female", "Unknown or not reported"),
    "ethnicity": ("Hispanic or Latino", "Not Hispanic or Latino", "Unknown or not reported"),
    "race": (
        "American Indian or Alaska Native", "Asian", "Native Hawaiian or Other Pacific Islander",
        "Black or African American", "White", "More than one race", "Unknown or not reported",
    ),
}
# Withdrawal scopes by the contract's labels (CONTRACT 1.1), for codes `withdrawal_scopes` leaves out.
SCOPE_LABELS = {"No further data (keep what was collected)": 1, "No further data": 1, "Withdraw all data": 2}
SERVICES = ("case_management", "motivational_interviewing", "standard_referral")
# The contract's own three arms: the short form `"1": SBCM` names one of these.
CONTRACT_ARMS = {"SBCM": "case_management", "MI": "motivational_interviewing", "Standard": None}
DRUG_CLASSES = ("Cocaine", "Opioids", "Other")


def normalised_label(text: str | None) -> str:
    """A label compared ignoring case, spaces and punctuation."""
    return re.sub(r"[\W_]+", "", str(text or "").casefold())


class ProfileError(ConfigError):
    """Every problem found in a study profile, one line each (exit status 2)."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ArmSpec(_Strict):
    label: str = Field(min_length=1)
    # the session-log service whose sessions are the arm's intervention; none (or
    # standard_referral, the referral itself) for an arm that receives it by allocation
    service: Literal["case_management", "motivational_interviewing", "standard_referral"] | None = None


class Derivation(_Strict):
    from_: str = Field(alias="from", min_length=1)
    # assessment_date: at the assessment date, else the first snapshot holding the record
    at: Literal["assessment_date", "first_seen"] = "assessment_date"


class IntakeSection(_Strict):
    # the event(s) holding the intake concepts: one name, or one per arm of a multi-arm project
    event: str | list[str] | None = None
    fields: dict[str, str] = {}
    codes: dict[str, dict[str, str]] = {}
    derive: dict[Literal["age"], Derivation] = {}
    constants: dict[str, str | int | bool] = {}
    yes_code: str = "1"
    arms: dict[str, ArmSpec | str] = {}
    withdrawal_scopes: dict[str, Literal[1, 2]] = {}
    drug_classes: dict[str, Literal["Cocaine", "Opioids", "Other"]] = {}
    safe_free_text: list[str] = []
    all_consented: bool = False

    @field_validator("fields", "codes", "arms", "withdrawal_scopes", "drug_classes", "constants", mode="before")
    @classmethod
    def _keys_as_text(cls, value: Any) -> Any:
        # YAML reads `1:` as an integer and `~` as None: codes and names are text
        if value is None:
            return {}
        if isinstance(value, dict):
            return {str(k): v for k, v in value.items()}
        return value

    @field_validator("codes", mode="before")
    @classmethod
    def _codes_as_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ({str(c): v for c, v in m.items()} if isinstance(m, dict) else m) for k, m in value.items()}
        return value

    @field_validator("fields")
    @classmethod
    def _known_concepts(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(CONCEPTS))
        if unknown:
            raise ValueError(f"unknown concept(s) {', '.join(unknown)}; expected one of the contract's concepts "
                             "(CONTRACT 1.1, docs/study-profile.md)")
        if "record_id" not in value:
            raise ValueError("the concept `record_id` must be mapped to the project's record id field")
        return value

    @field_validator("arms")
    @classmethod
    def _short_arms(cls, value: dict[str, ArmSpec | str]) -> dict[str, ArmSpec | str]:
        for code, spec in value.items():
            if isinstance(spec, str) and spec not in CONTRACT_ARMS:
                raise ValueError(f"arm {code}: the short form names one of {', '.join(CONTRACT_ARMS)}; "
                                 "another arm is written {label: ..., service: ...}")
        return value

    @model_validator(mode="after")
    def _cross_keys(self) -> IntakeSection:
        problems = []
        for concept, mapping in self.codes.items():
            if concept not in CONCEPTS:
                problems.append(f"codes: unknown concept `{concept}`")
            elif concept not in self.fields:
                problems.append(f"codes.{concept}: the concept is not mapped in `fields`")
            wanted = CONTRACT_LABELS.get(concept)
            for code, label in mapping.items():
                if wanted and label not in wanted:
                    problems.append(f"codes.{concept}.{code}: `{label}` is not a contract label; expected one of "
                                    + ", ".join(wanted))
        for concept in self.constants:
            if concept not in CONCEPTS or concept == "record_id":
                problems.append(f"constants: unknown concept `{concept}`")
            elif concept in self.fields:
                problems.append(f"constants.{concept}: the concept is also mapped in `fields`; give one or the other")
        labels = [a.label if isinstance(a, ArmSpec) else a for a in self.arms.values()]
        if len(set(labels)) != len(labels):
            problems.append("arms: two codes carry the same label")
        if "All" in labels:
            problems.append("arms: `All` is the label of every arm together; name the arm otherwise")
        if "rand_arm" in self.fields and not self.arms:
            problems.append("arms: `fields.rand_arm` is mapped but `arms` is empty (a study without arms maps no rand_arm)")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class ProfileDocument(_Strict):
    name: str | None = None
    intake: IntakeSection


@dataclass(frozen=True)
class StudyProfile:
    name: str
    fields: dict[str, str]
    yes_code: str
    arms: dict[str, str]  # rand_arm code -> arm label
    arm_services: dict[str, str | None]  # arm label -> its intervention's service (None: by allocation)
    withdrawal_scopes: dict[str, int]
    drug_classes: dict[str, str]
    safe_free_text: tuple[str, ...]
    all_consented: bool
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)
    derive_age: tuple[str, str] | None = None  # (the concept or field of the date of birth, at)
    intake_events: tuple[str, ...] = ()  # longitudinal projects: the events holding the intake concepts
    path: Path | None = None

    def field(self, concept: str) -> str | None:
        return self.fields.get(concept)

    @property
    def randomized(self) -> bool:
        return bool(self.arms)

    def dob_field(self) -> str | None:
        if self.derive_age is None:
            return None
        source = self.derive_age[0]
        return self.fields.get(source, source)

    def dbt_vars(self, resolved_codes: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
        """The profile as dbt vars (models read it with ``var('profile')``).

        ``resolved_codes`` are the codes of the fixed-category concepts resolved against the
        dictionary (:func:`resolve_codes`); without it, the profile's own `codes`.
        """
        codes = dict(resolved_codes if resolved_codes is not None else self.codes)
        arms = codes.pop("arms", None) or self.arms
        scopes = codes.pop("withdrawal_scope", None) or self.withdrawal_scopes
        return {
            "fields": self.fields,
            "yes_code": self.yes_code,
            "arms": arms,
            "arm_services": self.arm_services,
            "withdrawal_scopes": {k: int(v) for k, v in scopes.items()},
            "drug_classes": self.drug_classes,
            "all_consented": self.all_consented,
            "codes": codes,
            "constants": self.constants,
            "derive_age": ({"field": self.dob_field(), "at": self.derive_age[1]} if self.derive_age else None),
            "intake_event": list(self.intake_events) or None,
        }


def _validation_lines(path: Path, err: ValidationError) -> list[str]:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"] if not str(p).startswith(("function-", "literal[")))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (see docs/study-profile.md for every key)"
        elif e["type"] == "missing":
            msg = "missing: this key is required"
        for part in msg.split("; "):
            lines.append(f"{path.name}: {key or '(top)'}: {part}")
    return sorted(set(lines), key=lines.index)


def _yes_no_constant(concept: str, value: str | int | bool, yes_code: str) -> str:
    if concept not in YES_NO_CONCEPTS:
        return str(value)
    yes = value is True or str(value).strip().lower() in ("1", "yes", "true")
    return yes_code if yes else ("0" if yes_code != "0" else "1")


def load_profile(path: Path) -> StudyProfile:
    """Read and validate a profile's form; raise :class:`ProfileError` listing every problem."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ProfileError([f"{path.name}: the file cannot be read as YAML ({type(exc).__name__})"]) from None
    if not isinstance(doc, dict):
        raise ProfileError([f"{path.name}: (top): expected a mapping with an `intake:` section"])
    try:
        parsed = ProfileDocument.model_validate(doc)
    except ValidationError as err:
        raise ProfileError(_validation_lines(path, err)) from None
    intake = parsed.intake
    arms = {code: (spec.label if isinstance(spec, ArmSpec) else spec) for code, spec in intake.arms.items()}
    services = {(spec.label if isinstance(spec, ArmSpec) else spec):
                (spec.service if isinstance(spec, ArmSpec) else CONTRACT_ARMS[spec])
                for spec in intake.arms.values()}
    # standard_referral is the referral itself: an arm of that service receives it by allocation
    services = {label: (None if s == "standard_referral" else s) for label, s in services.items()}
    age = intake.derive.get("age")
    return StudyProfile(
        name=parsed.name or path.stem,
        fields=dict(intake.fields),
        yes_code=intake.yes_code,
        arms=arms,
        arm_services=services,
        withdrawal_scopes={k: int(v) for k, v in intake.withdrawal_scopes.items()},
        drug_classes=dict(intake.drug_classes),
        safe_free_text=tuple(intake.safe_free_text),
        all_consented=intake.all_consented,
        codes={k: dict(v) for k, v in intake.codes.items()},
        constants={k: _yes_no_constant(k, v, intake.yes_code) for k, v in intake.constants.items()},
        derive_age=(age.from_, age.at) if age else None,
        intake_events=(tuple(intake.event) if isinstance(intake.event, list)
                       else (intake.event,) if intake.event else ()),
        path=path,
    )


# -- The profile held against the data dictionary ------------------------------------------------
# REDCap's system fields need no dictionary row (CONTRACT 1.5).
SYSTEM_FIELD = re.compile(r"^redcap_(data_access_group|event_name|repeat_instrument|repeat_instance|survey_identifier)$"
                          r"|_complete$|_timestamp$")


@dataclass
class DictionaryView:
    """What the check needs of a data dictionary: its fields, their types and their codes."""

    name: str
    types: dict[str, str]
    codes: dict[str, list[tuple[str, str]]]  # field -> [(code, label)] in dictionary order
    identifiers: frozenset[str] = frozenset()  # `Identifier? = y`: the vault only, whatever the profile says
    free_text: frozenset[str] = frozenset()  # notes, uploads, text without validation: the vault unless declared safe

    @classmethod
    def of(cls, name: str, dictionary: pl.DataFrame) -> DictionaryView:
        from ingestion.redcap import IDENTIFIED_TYPES, choice_codes

        types = dict(dictionary.select("field_name", "field_type").iter_rows())
        codes: dict[str, list[tuple[str, str]]] = {}
        for f, code, label in choice_codes(dictionary).iter_rows():
            codes.setdefault(f, []).append((code, label))
        rows = dictionary.select("field_name", "field_type", "validation", "identifier").iter_rows()
        identifiers, free_text = set(), set()
        for f, ftype, validation, identifier in rows:
            if identifier:
                identifiers.add(f)
            elif ftype in IDENTIFIED_TYPES or (ftype == "text" and not (validation or "").strip()):
                free_text.add(f)
        return cls(name, types, codes, frozenset(identifiers), frozenset(free_text))

    def has(self, field_name: str) -> bool:
        return field_name in self.types or bool(SYSTEM_FIELD.search(field_name))


def _fixed_concepts(profile: StudyProfile) -> list[str]:
    return [c for c in ("sex", "ethnicity", "race", "rand_arm", "withdrawal_scope") if c in profile.fields]


def _mapping_of(profile: StudyProfile, concept: str) -> dict[str, str]:
    if concept == "rand_arm":
        return profile.arms
    if concept == "withdrawal_scope":
        return {k: str(v) for k, v in profile.withdrawal_scopes.items()}
    return profile.codes.get(concept, {})


def _match_label(profile: StudyProfile, concept: str, label: str) -> str | None:
    """The contract label (or arm label, or scope) a dictionary label names, ignoring case and punctuation."""
    if concept == "rand_arm":
        candidates = {normalised_label(a): a for a in profile.arms.values()}
    elif concept == "withdrawal_scope":
        candidates = {normalised_label(k): str(v) for k, v in SCOPE_LABELS.items()}
    else:
        candidates = {normalised_label(x): x for x in CONTRACT_LABELS[concept]}
    return candidates.get(normalised_label(label))


def resolve_codes(profile: StudyProfile, dictionary: DictionaryView) -> tuple[dict[str, dict[str, str]], list[str]]:
    """Every code of the fixed-category concepts, and of the concepts `codes` names, mapped to its label.

    A fixed-category code that `codes` (or `arms`, `withdrawal_scopes`) leaves out is matched by its
    dictionary label; a code matching none is a problem. Codes of other concepts that `codes` leaves
    out keep their dictionary label (they flow through). Returns (resolved, problems).
    """
    where = f"{profile.path.name if profile.path else 'profile'}"
    resolved: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    for concept in sorted(set(_fixed_concepts(profile)) | set(profile.codes)):
        fname = profile.fields[concept]
        listed = dictionary.codes.get(fname)
        mapping = _mapping_of(profile, concept)
        key = {"rand_arm": "arms", "withdrawal_scope": "withdrawal_scopes"}.get(concept, f"codes.{concept}")
        if not listed:
            resolved[concept] = dict(mapping)
            continue
        listed_codes = {c for c, _ in listed}
        for code in mapping:
            if code not in listed_codes:
                problems.append(f"{where}: intake.{key}.{code}: code `{code}` is not among the codes "
                                f"{dictionary.name} lists for `{fname}` ({', '.join(sorted(listed_codes))})")
        out = {}
        for code, label in listed:
            if code in mapping:
                out[code] = mapping[code]
            elif concept in _fixed_concepts(profile):
                match = _match_label(profile, concept, label)
                if match is None:
                    problems.append(f"{where}: intake.{key}: code `{code}` ({label}) of `{fname}` in "
                                    f"{dictionary.name} is not mapped and its label matches no "
                                    f"{_expected_labels(profile, concept)}")
                else:
                    out[code] = match
        resolved["arms" if concept == "rand_arm" else concept] = out
    return resolved, problems


def _expected_labels(profile: StudyProfile, concept: str) -> str:
    if concept == "rand_arm":
        return "arm label (" + ", ".join(profile.arms.values()) + ")"
    if concept == "withdrawal_scope":
        return "withdrawal scope (" + ", ".join(SCOPE_LABELS) + ")"
    return "contract label (" + ", ".join(CONTRACT_LABELS[concept]) + ")"


def check_profile(profile: StudyProfile, dictionary: DictionaryView) -> list[str]:
    """Every problem of the profile held against the intake data dictionary (empty: it fits)."""
    where = f"{profile.path.name if profile.path else 'profile'}"
    problems = []
    for concept, fname in profile.fields.items():
        if not dictionary.has(fname):
            problems.append(f"{where}: intake.fields.{concept}: field `{fname}` is not in {dictionary.name}")
    problems += _unreadable_concepts(profile, dictionary, where)
    if profile.derive_age is not None:
        source = profile.dob_field() or ""
        if not dictionary.has(source):
            problems.append(f"{where}: intake.derive.age.from: `{profile.derive_age[0]}` names no field of "
                            f"{dictionary.name} (expected the concept or field of the date of birth)")
        if "age" in profile.fields:
            problems.append(f"{where}: intake.derive.age: `age` is also mapped in `fields`; give one or the other")
    for name in profile.safe_free_text:
        if not dictionary.has(name):
            problems.append(f"{where}: intake.safe_free_text: field `{name}` is not in {dictionary.name}")
    for code in profile.drug_classes:
        listed = {c for c, _ in dictionary.codes.get(profile.fields.get("drug_of_choice", ""), [])}
        if "drug_of_choice" not in profile.fields:
            problems.append(f"{where}: intake.drug_classes: `drug_of_choice` is not mapped in `fields`")
            break
        if listed and code not in listed:
            problems.append(f"{where}: intake.drug_classes.{code}: code `{code}` is not among the codes "
                            f"{dictionary.name} lists for `{profile.fields['drug_of_choice']}`")
    known = {f: t for f, t in dictionary.types.items()}
    for concept in set(_fixed_concepts(profile)) | set(profile.codes):
        fname = profile.fields.get(concept)
        if fname in known and concept in CONTRACT_LABELS and known[fname] not in ("radio", "dropdown", "checkbox",
                                                                                   "yesno", "truefalse"):
            if not profile.codes.get(concept):
                problems.append(f"{where}: intake.codes.{concept}: `{fname}` is a {known[fname]} field with no "
                                "listed codes: map its values in `codes`")
    problems += resolve_codes(profile, dictionary)[1]
    return problems


# Concepts that are identifiers themselves: the vault is where their fields belong.
IDENTIFIER_CONCEPTS = ("record_id", "first_name", "last_name", "dob", "phone", "street_address", "zip", "email")


def _unreadable_concepts(profile: StudyProfile, dictionary: DictionaryView, where: str) -> list[str]:
    """Concepts whose field never reaches the event payloads (an identifier, or undeclared free text):
    mapped so, the concept would be blank for everyone, a quiet wrong answer."""
    problems = []
    for concept, fname in profile.fields.items():
        if concept in IDENTIFIER_CONCEPTS:
            continue
        if fname in dictionary.identifiers:
            problems.append(f"{where}: intake.fields.{concept}: `{fname}` is marked as an identifier in "
                            f"{dictionary.name}, so it stays in the vault and `{concept}` would be blank for everyone")
        elif fname in dictionary.free_text and fname not in profile.safe_free_text:
            problems.append(f"{where}: intake.fields.{concept}: `{fname}` is free text in {dictionary.name} (kept in "
                            f"the vault only); list it in `safe_free_text` if it holds no identifier")
    return problems
