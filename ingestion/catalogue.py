"""Catalogue of every event type the store holds: name, version, payload fields.

Event types are past-tense facts. A payload never carries a direct identifier,
a free-text note or a pseudonym: those live in the ``identified`` schema.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EventType:
    name: str
    version: int
    source: str
    payload: tuple[str, ...]
    description: str


# Version 3 (a session event's payload): the fields of its line that are present, besides the
# envelope the store holds in columns (event_id, event_type, occurred_at, recorded_at, and
# record_id in the stream, participant/<record_id>) and the note (identified store only); an
# absent field is absent, not null. Version 2 also carried record_id. Version 1 (the first
# events) also carried event_id, event_type, occurred_at, recorded_at and every absent field as
# null. The staging models read all three alike (payload ->> field; record_id from the stream).
SESSION_PAYLOAD_FIELDS = (
    "scheduled_for", "service", "session_number", "staff_id", "mode", "duration_min",
    "activities", "program_id", "discharge_reason", "voids_event_id",
)
SESSION_PAYLOAD_VERSION = 3

SESSION_EVENT_TYPES = (
    "session_scheduled", "session_attended", "session_missed", "session_cancelled",
    "contact_attempt", "treatment_admitted", "treatment_visit", "treatment_discharged",
    "event_voided",
)

CATALOGUE: dict[str, EventType] = {
    e.name: e
    for e in [
        EventType("intake_recorded", 1, "intake", ("values",),
                  "A REDCap intake record seen for the first time (or again after a removal); "
                  "values maps each non-identifying field to its raw coded value."),
        EventType("intake_field_corrected", 1, "intake", ("field", "old", "new"),
                  "A field of an intake record changed between two snapshots."),
        EventType("intake_record_removed", 1, "intake", (),
                  "A record held before is absent from a later snapshot."),
        EventType("survey_recorded", 1, "alliance", ("instrument", "instance", "values"),
                  "A working-alliance survey row (a repeating-instrument instance) seen for the first time."),
        EventType("survey_field_corrected", 1, "alliance", ("instrument", "instance", "field", "old", "new"),
                  "A field of a survey row changed between two alliance snapshots."),
        EventType("survey_removed", 1, "alliance", ("instrument", "instance"),
                  "A survey row held before is absent from a later alliance snapshot."),
        EventType("coded_unit_recorded", 1, "transcripts",
                  ("unit_id", "transcript_id", "transcript_kind", "record_id", "coder_id", "code_path",
                   "start_char", "end_char", "coded_at", "coded_at_from_ingest", "text_sha256", "source_format"),
                  "A span of a transcript coded with one code by one coder. Its text and speaker (a "
                  "pseudonym) are held in the identified store, keyed by unit_id."),
        EventType("participant_erased", 1, "erasure",
                  ("participant_key", "consented", "randomized", "arm", "consent_date", "rand_date",
                   "withdrawal_date", "received_intervention", "lost_to_followup", "first_recorded_at",
                   "landing_files", "pseudonym_keys"),
                  "A participant who withdrew all data was erased; only the fact and what the CONSORT "
                  "flow needs remain (their other events were deleted and the vault rewritten)."),
        *[
            EventType(name, SESSION_PAYLOAD_VERSION, "sessions", SESSION_PAYLOAD_FIELDS,
                      f"A `{name}` line of the case-management / treatment log (note removed).")
            for name in SESSION_EVENT_TYPES
        ],
    ]
}

EVENT_VERSIONS = {name: e.version for name, e in CATALOGUE.items()}

SESSION_SERVICES = ("case_management", "motivational_interviewing", "standard_referral")
SESSION_MODES = ("in_person", "phone", "community")
DISCHARGE_REASONS = ("completed", "dropped_out", "administrative", "transferred", "incarcerated")
ACTIVITIES = ("strengths_assessment", "goal_planning", "linkage", "transport", "advocacy")
