"""Identifier screening of coded transcript units (consent rule 4), in DuckDB.

Every unit's text is checked, set-wise, against every identifier value held for
any participant and against patterns of direct identifiers. A unit that trips
a rule is held back: its unit_id and a reason code go to
``identified.unit_holds`` (replaced whole on each run, so a participant who
joins later is checked against every earlier unit too). Reasons never repeat
the identifier. Runs offline: no models, no downloads.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl

# Identifier fields by role (the contract's intake project; other projects'
# identifier fields are matched as whole values by their REDCap `Identifier?`).
NAME_FIELDS_LAST = ("last_name",)
NAME_FIELDS_FIRST = ("first_name",)
# Common words that are also first names: matched only when capitalised mid-sentence.
COMMON_WORD_NAMES = (
    "hope", "grace", "may", "bill", "faith", "joy", "june", "april", "will", "mark", "rose", "sunny",
    "summer", "autumn", "dawn", "iris", "ivy", "lily", "daisy", "ruby", "pearl", "amber", "crystal",
    "destiny", "honor", "patience", "charity", "sky", "river", "rich", "frank", "gene", "pat", "sue",
    "don", "ray", "art", "bob", "jack", "jean", "sandy", "robin", "chase", "hunter", "king", "guy",
)
MONTHS = "jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
STREET_TYPES = ("st|street|ave|avenue|rd|road|blvd|boulevard|ln|lane|dr|drive|ct|court|way|pl|place|"
                "ter|terrace|pkwy|parkway|hwy|highway|cir|circle|sq|square|aly|alley")
PATTERNS = {
    "pattern_ssn": r"\b\d{3}-\d{2}-\d{4}\b",
    "pattern_phone": r"(?:\(\d{3}\)\s*|\b\d{3}[-.\s])\d{3}[-.\s]\d{4}\b",
    "pattern_email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    "pattern_street_address": rf"(?i)\b\d{{1,6}}\s+(?:[a-z0-9]+\.?\s+){{0,3}}(?:{STREET_TYPES})\b\.?",
    "pattern_full_date": (
        rf"(?i)\b\d{{4}}-\d{{1,2}}-\d{{1,2}}\b|\b\d{{1,2}}/\d{{1,2}}/\d{{2,4}}\b|\b\d{{1,2}}-\d{{1,2}}-\d{{4}}\b"
        rf"|\b(?:{MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b"
        rf"|\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{MONTHS})\.?,?\s+\d{{4}}\b"
    ),
}
REASONS = {
    "held_last_name": "the text contains a surname held for a participant",
    "held_first_name": "the text contains a first name held for a participant",
    "held_phone": "the text contains a phone number held for a participant",
    "held_email": "the text contains an e-mail address held for a participant",
    "held_address": "the text contains a street address held for a participant",
    "held_identifier": "the text contains an identifier value held for a participant",
    "pattern_ssn": "the text contains a social-security-style number",
    "pattern_phone": "the text contains a phone number",
    "pattern_email": "the text contains an e-mail address",
    "pattern_street_address": "the text contains a street address",
    "pattern_full_date": "the text contains a full calendar date (day, month and year)",
}

COMMON_ZIPF = 4.5  # words at least this frequent in English are "common words"


def is_common_word(token: str) -> bool:
    """A name that is also an everyday English word (long, hope, may, bill...)."""
    if token.lower() in COMMON_WORD_NAMES:
        return True
    from wordfreq import zipf_frequency

    return zipf_frequency(token, "en") >= COMMON_ZIPF


SCHEMA_SQL = """
create table if not exists identified.unit_holds (
    unit_id varchar not null,
    reason_code varchar not null,
    reason varchar not null,
    screened_at timestamptz not null
)
"""


@dataclass
class ScreeningReport:
    units: int
    held: int
    by_reason: dict[str, int]
    pseudonyms_that_are_real_names: int


def screen_units(conn: duckdb.DuckDBPyConnection) -> ScreeningReport:
    """Screen every held unit; replace identified.unit_holds in one transaction."""
    conn.execute(SCHEMA_SQL)
    conn.execute("begin transaction")
    try:
        _screen(conn)
        conn.execute("commit")
    except BaseException:
        conn.execute("rollback")
        raise
    units = conn.execute("select count(distinct unit_id) from identified.transcript_units").fetchone()[0]
    held = conn.execute("select count(distinct unit_id) from identified.unit_holds").fetchone()[0]
    by_reason = dict(conn.execute(
        "select reason_code, count(distinct unit_id) from identified.unit_holds group by 1 order by 1").fetchall())
    clash = conn.execute(
        """select count(distinct p.pseudonym) from current_pseudonyms p
           join held_tokens t on lower(p.pseudonym) = t.token and t.role in ('first', 'last')"""
    ).fetchone()[0]
    return ScreeningReport(units, held, by_reason, clash)


def _screen(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(
        """
        create or replace temp table current_values as
        select record_id, field, arg_max_null(value, recorded_at) as value
        from identified.identifier_values
        where kind = 'identifier'
        group by all
        having arg_max_null(value, recorded_at) is not null
        """
    )
    conn.execute(
        """
        create or replace temp table current_pseudonyms as
        select record_id, pseudonym from identified.pseudonyms
        where batch_id = (select batch_id from identified.pseudonyms order by recorded_at desc, batch_id desc limit 1)
        """
    )
    last = ", ".join(f"'{f}'" for f in NAME_FIELDS_LAST)
    first = ", ".join(f"'{f}'" for f in NAME_FIELDS_FIRST)
    # Name tokens of held names (a double-barrelled name gives each part), lower-cased.
    conn.execute(
        f"""
        create or replace temp table held_tokens as
        select distinct lower(tok) as token,
               case when field in ({last}) then 'last' else 'first' end as role
        from (select field, unnest(regexp_split_to_array(trim(value), '[\\s-]+')) as tok
              from current_values where field in ({last}, {first}))
        where length(tok) >= 2
        """
    )
    tokens = [t for (t,) in conn.execute("select distinct token from held_tokens").fetchall()]
    conn.register("token_flags", pl.DataFrame(
        {"token": tokens, "is_common": [is_common_word(t) for t in tokens]},
        schema={"token": pl.Utf8, "is_common": pl.Boolean}))
    conn.execute("create or replace temp table held_token_flags as select * from token_flags")
    conn.unregister("token_flags")
    # Words of each unit, with whether each starts a sentence (or a speaker's turn).
    conn.execute(
        """
        create or replace temp table unit_words as
        with texts as (select unit_id, any_value(text) as text from identified.transcript_units group by unit_id),
        m as (
            select unit_id,
                   unnest(regexp_extract_all(text, '(?:[.!?]["”’)]*\\s+|\\n\\s*)?[A-Za-z][A-Za-z''’]*')) as m,
                   generate_subscripts(regexp_extract_all(text, '(?:[.!?]["”’)]*\\s+|\\n\\s*)?[A-Za-z][A-Za-z''’]*'), 1) as pos
            from texts
        )
        select unit_id,
               regexp_extract(m, '[A-Za-z][A-Za-z''’]*$') as word,
               pos = 1 or not regexp_matches(m, '^[A-Za-z]') as sentence_start
        from m
        """
    )
    conn.execute(
        """
        create or replace temp table holds as
        select distinct w.unit_id,
               case when t.role = 'last' then 'held_last_name' else 'held_first_name' end as reason_code
        from unit_words w
        join held_tokens t on lower(w.word) = t.token
        join held_token_flags f on f.token = t.token
        where case
            -- a surname that is not a common word: any case
            when t.role = 'last' and not f.is_common then true
            -- a first name that is not a common word: capitalised
            when not f.is_common then w.word[1] = upper(w.word[1])
            -- a name that is also a common word (Hope, Grace, May, Bill, Long): capitalised mid-sentence
            else w.word[1] = upper(w.word[1]) and w.word[1] <> lower(w.word[1]) and not w.sentence_start
        end
        """
    )
    conn.execute(
        """
        insert into holds
        with texts as (select unit_id, any_value(text) as text from identified.transcript_units group by unit_id),
        digits as (
            select unit_id, regexp_replace(d, '[^0-9]', '', 'g') as digits
            from (select unit_id, unnest(regexp_extract_all(text, '\\(?\\d[\\d\\s().-]{6,}\\d')) as d from texts)
        ),
        held_phone as (
            select distinct right(regexp_replace(value, '[^0-9]', '', 'g'), 10) as digits
            from current_values where length(regexp_replace(value, '[^0-9]', '', 'g')) >= 7
              and field not in ('zip', 'dob')
        )
        select distinct d.unit_id, 'held_phone' from digits d join held_phone h
            on right(d.digits, 10) = h.digits
        union
        select distinct t.unit_id, 'held_email' from texts t join current_values v
            on v.value like '%@%' and contains(lower(t.text), lower(trim(v.value)))
        union
        select distinct t.unit_id, 'held_address' from texts t join current_values v
            on v.field in ('street_address', 'address') and length(trim(v.value)) >= 6
            and contains(lower(regexp_replace(t.text, '\\s+', ' ', 'g')),
                         lower(regexp_replace(split_part(trim(v.value), chr(10), 1), '\\s+', ' ', 'g')))
        """
    )
    for code, pattern in PATTERNS.items():
        conn.execute(
            f"""insert into holds
                select distinct unit_id, '{code}' from identified.transcript_units
                where regexp_matches(text, $p)""",
            {"p": pattern},
        )
    reasons = " ".join(f"when '{k}' then '{v}'" for k, v in REASONS.items())
    conn.execute("delete from identified.unit_holds")
    conn.execute(
        f"""insert into identified.unit_holds
            select distinct unit_id, reason_code, case reason_code {reasons} end, now() from holds"""
    )
