"""REDCap exports: data dictionaries and full snapshots turned into change events.

A snapshot is diffed, as one set operation in DuckDB, against the state the
store already holds for that source: a record seen for the first time
(``intake_recorded``), a field whose value changed (``intake_field_corrected``),
a record that disappeared (``intake_record_removed``). Identifier fields, free
text and columns the dictionary does not declare go to the identified store
only.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import duckdb
import polars as pl

from ingestion.profile import StudyProfile
from ingestion.readers import ReadError, read_csv_strings
from ingestion.vault import sql_ident, sql_str

SNAPSHOT_NAME = re.compile(r"^(?P<project>.+)_DATA_(?P<date>\d{4}-\d{2}-\d{2})_(?P<hhmm>\d{4})\.csv$", re.IGNORECASE)
# A data dictionary: ours, or REDCap's own download name <PROJECT>_DataDictionary_<YYYY-MM-DD>.csv.
DICTIONARY_NAME = re.compile(r"^(data_dictionary|(?P<project>.+)_DataDictionary_(?P<date>\d{4}-\d{2}-\d{2}))\.csv$",
                             re.IGNORECASE)
SUSPECT_REMOVAL_SHARE = 0.05

# REDCap's standard data-dictionary headers, matched loosely (case, spacing).
_DICT_COLUMNS = {
    "field_name": "variable / field name",
    "form_name": "form name",
    "field_type": "field type",
    "field_label": "field label",
    "choices": "choices, calculations, or slider labels",
    "validation": "text validation type or show slider number",
    "identifier": "identifier?",
}
CODED_TYPES = ("radio", "dropdown", "yesno", "truefalse")
IDENTIFIED_TYPES = ("notes", "file")  # free text and uploads: identified store only
REPEAT_INSTRUMENT = "redcap_repeat_instrument"
REPEAT_INSTANCE = "redcap_repeat_instance"
EVENT_NAME = "redcap_event_name"  # longitudinal projects: one row per record and event
SURVEY_IDENTIFIER = "redcap_survey_identifier"
KEY_COLUMNS = (EVENT_NAME, REPEAT_INSTRUMENT, REPEAT_INSTANCE)
# The contract's direct-identifier concepts (CONTRACT 1.1): identified store only, whatever the
# dictionary's `Identifier?` column says.
IDENTIFIER_CONCEPTS = ("first_name", "last_name", "dob", "phone", "street_address", "zip", "email")
# Change-event names of each REDCap source: (first seen, field corrected, removed).
EVENT_NAMES = {
    "intake": ("intake_recorded", "intake_field_corrected", "intake_record_removed"),
    "alliance": ("survey_recorded", "survey_field_corrected", "survey_removed"),
}


def snapshot_export_time(name: str, tz: str) -> datetime | None:
    m = SNAPSHOT_NAME.match(name)
    if not m:
        return None
    try:
        local = datetime.strptime(f"{m['date']} {m['hhmm']}", "%Y-%m-%d %H%M")
    except ValueError:
        return None
    return local.replace(tzinfo=ZoneInfo(tz))


def is_dictionary_name(name: str) -> bool:
    return DICTIONARY_NAME.match(name) is not None


def dictionary_order(name: str) -> tuple[str, str]:
    """The order dictionaries are applied in: `data_dictionary.csv` first, then REDCap's by date."""
    m = DICTIONARY_NAME.match(name)
    return ((m["date"] or "") if m else "", name)


def parse_dictionary(data: bytes) -> pl.DataFrame:
    df = read_csv_strings(data, "data dictionary")
    norm = {re.sub(r"\s+", " ", c.strip().lower()): c for c in df.columns}
    cols = {}
    for key, header in _DICT_COLUMNS.items():
        match = norm.get(header) or next((orig for n, orig in norm.items() if n.startswith(header[:12])), None)
        if match is None and key in ("field_name", "form_name", "field_type"):
            raise ReadError("not_a_dictionary", f"the data dictionary lacks the REDCap column `{header}`")
        cols[key] = match
    out = pl.DataFrame(
        {key: (df[col] if col else pl.Series([None] * df.height, dtype=pl.Utf8)) for key, col in cols.items()}
    )
    out = out.with_columns(
        pl.col("field_name").str.strip_chars(),
        pl.col("form_name").str.strip_chars(),
        pl.col("field_type").str.strip_chars().str.to_lowercase(),
        pl.col("validation").str.strip_chars(),
        (pl.col("identifier").str.strip_chars().str.to_lowercase() == "y").fill_null(False).alias("identifier"),
    ).filter(pl.col("field_name").is_not_null() & (pl.col("field_name") != ""))
    if out.is_empty():
        raise ReadError("not_a_dictionary", "the data dictionary defines no fields")
    return out.with_row_index("ordinal", offset=1).with_columns(pl.col("ordinal").cast(pl.Int32))


def stage_dictionary(conn: duckdb.DuckDBPyConnection, data: bytes) -> int:
    d = parse_dictionary(data)
    conn.register("dict_df", d)
    conn.execute(
        """insert into stage_dictionary
           select ordinal, field_name, form_name, field_type, field_label, choices, validation, identifier from dict_df"""
    )
    conn.unregister("dict_df")
    return d.height


def latest_dictionary(conn: duckdb.DuckDBPyConnection, source: str) -> pl.DataFrame | None:
    df = conn.execute(
        """select * from events.dictionary_fields
           where batch_id = (select b.batch_id from events.batches b
                             where b.source = $src and b.status = 'applied'
                               and b.batch_id in (select batch_id from events.dictionary_fields where source = $src)
                             order by b.ingested_at desc, b.batch_id desc limit 1)
           order by ordinal""",
        {"src": source},
    ).pl()
    return None if df.is_empty() else df


def choice_codes(dictionary: pl.DataFrame) -> pl.DataFrame:
    """(field_name, code, label) for every coded field; yes/no fields get REDCap's implicit codes."""
    rows = []
    for name, ftype, choices in dictionary.select("field_name", "field_type", "choices").iter_rows():
        if ftype == "yesno":
            rows += [(name, "1", "Yes"), (name, "0", "No")]
        elif ftype == "truefalse":
            rows += [(name, "1", "True"), (name, "0", "False")]
        elif ftype in ("radio", "dropdown", "checkbox") and choices:
            for part in choices.split("|"):
                code, _, label = part.partition(",")
                if code.strip():
                    rows.append((name, code.strip(), label.strip()))
    return pl.DataFrame(rows, schema={"field_name": pl.Utf8, "code": pl.Utf8, "label": pl.Utf8}, orient="row")


def classify_columns(columns: list[str], dictionary: pl.DataFrame, record_field: str,
                     safe: tuple[str, ...], identified: tuple[str, ...] = ()) -> dict[str, str]:
    """Each export column -> 'key', 'value', 'identifier', 'free_text' or 'undeclared'.

    ``identified`` names fields kept in the identified store whatever the dictionary says
    (the profile's direct-identifier concepts and the date of birth age is derived from).
    REDCap's system columns need no dictionary row: the event, repeat instrument and
    instance are keys, a form's `_complete` and survey `_timestamp` and the data access
    group are values, the survey identifier (a participant-list email or name) an identifier.
    """
    info = {r["field_name"]: r for r in dictionary.iter_rows(named=True)}
    forms = {f for f in dictionary["form_name"].drop_nulls().to_list()}
    kinds: dict[str, str] = {}
    for col in columns:
        base = col.split("___")[0] if "___" in col else col
        if col == record_field or col in KEY_COLUMNS:
            kinds[col] = "key"
        elif col == SURVEY_IDENTIFIER or base in identified:
            kinds[col] = "identifier"
        elif base in info:
            r = info[base]
            if r["identifier"]:
                kinds[col] = "identifier"
            elif base not in safe and (
                r["field_type"] in IDENTIFIED_TYPES
                or (r["field_type"] == "text" and not (r["validation"] or "").strip())
            ):
                kinds[col] = "free_text"
            else:
                kinds[col] = "value"
        elif any(col.endswith(s) and col[: -len(s)] in forms for s in ("_complete", "_timestamp")):
            kinds[col] = "value"
        elif col.startswith("redcap_"):
            kinds[col] = "value"
        else:
            kinds[col] = "undeclared"
    return kinds


def profile_identified(profile: StudyProfile) -> tuple[str, ...]:
    """The fields the profile names as direct identifiers, and the field age is derived from."""
    names = [profile.fields[c] for c in IDENTIFIER_CONCEPTS if c in profile.fields]
    dob = profile.dob_field()
    return tuple(dict.fromkeys([*names, *([dob] if dob else [])]))


# The row key of a change event's payload: the record (old events, non-longitudinal exports:
# record, or record#instrument#instance for a repeating instrument's row); with an event
# (longitudinal), record#event[#instrument]#instance. _row_keys computes the same of an export.
KEY_SQL = """case when payload->>'event' is not null then concat_ws('#', payload->>'record_id', payload->>'event',
        payload->>'instrument',
        case when payload->>'instrument' is not null then coalesce(payload->>'instance', '1') else payload->>'instance' end)
    when payload->>'instrument' is null then payload->>'record_id'
    else concat_ws('#', payload->>'record_id', payload->>'instrument', coalesce(payload->>'instance', '1')) end"""


STATE_DDL = (
    """create table if not exists events.redcap_rows (
        source varchar, row_key varchar, record_id varchar, instrument varchar, instance varchar,
        last_type varchar, last_seq bigint)""",
    """create table if not exists events.redcap_values (
        source varchar, row_key varchar, record_id varchar, field varchar, value varchar, last_seq bigint)""",
    "create table if not exists events.redcap_synced (source varchar, seq bigint)",
    # a digest of each row's held values, to tell an unchanged export row without comparing its fields
    "alter table events.redcap_rows add column if not exists row_hash ubigint",
    # the REDCap event of a longitudinal project's row (null: not longitudinal, and rows held before)
    "alter table events.redcap_rows add column if not exists event varchar",
)
# The digest of a row's (field, value) pairs: the xor of their hashes, so that it needs no
# ordered aggregate over the held state (those do not spill) and is the same whether computed
# from the held state (long) or from an export row (wide, see _wide_row_hash). DuckDB's hash()
# could change with its version: every row then looks changed once and is compared field by field.
ROW_HASH_NULL = "chr(0)"


def _wide_row_hash(columns: list[str], alias: str) -> str:
    parts = [f"hash({sql_str(c + '=')} || coalesce({alias}.{sql_ident(c)}, {ROW_HASH_NULL}))" for c in columns]
    if not parts:
        return "0::ubigint"
    return f"list_reduce([{', '.join(parts)}], lambda x, y: xor(x, y))"


# The fold of the change events applied since the state was last synced (sync_state).
_SYNC_SQL = (
    f"""create or replace temp table sync_events as
    select seq, event_type, {KEY_SQL} as row_key, payload->>'record_id' as record_id, payload->>'event' as event,
           payload->>'instrument' as instrument, payload->>'instance' as instance, payload
    from events.events
    where source = $src and seq > $from and seq <= $to and event_type in ($rec, $cor, $rem)""",
    """create or replace temp table sync_rows as
    select $src as source, row_key, any_value(record_id) as record_id,
           arg_max(instrument, seq) as instrument, arg_max(instance, seq) as instance,
           arg_max(event_type, seq) as last_type, max(seq) as last_seq, null::ubigint as row_hash,
           arg_max(event, seq) as event
    from sync_events where event_type in ($rec, $rem) group by row_key""",
    """create or replace temp table sync_values as
    with v as (
        select row_key, record_id, seq, entry.key as field, entry.value
        from (select row_key, record_id, seq,
                     unnest(map_entries(from_json(payload->'values', '"MAP(VARCHAR, VARCHAR)"'))) as entry
              from sync_events where event_type = $rec)
        union all
        select row_key, record_id, seq, payload->>'field', payload->>'new'
        from sync_events where event_type = $cor
    )
    select $src as source, row_key, any_value(record_id) as record_id, field,
           arg_max_null(value, seq) as value, max(seq) as last_seq
    from v group by row_key, field""",
    """delete from events.redcap_rows where source = $src and row_key in (select row_key from sync_rows)""",
    "insert into events.redcap_rows by name select * from sync_rows",
    """delete from events.redcap_values v where source = $src
    and exists (select 1 from sync_values s where s.row_key = v.row_key and s.field = v.field)""",
    "insert into events.redcap_values select * from sync_values",
    # the digest of every row whose values changed
    f"""update events.redcap_rows as r set row_hash = h.row_hash
    from (
        select row_key, bit_xor(hash(field || '=' || coalesce(value, {ROW_HASH_NULL}))) as row_hash
        from events.redcap_values
        where source = $src and row_key in (select row_key from sync_values union select row_key from sync_rows)
        group by row_key
    ) as h
    where r.source = $src and r.row_key = h.row_key""",
    "delete from events.redcap_synced where source = $src",
    "insert into events.redcap_synced values ($src, $to)",
)


def sync_state(conn: duckdb.DuckDBPyConnection, source: str) -> int:
    """Bring the held REDCap state of ``source`` up to date with the event store; return events applied.

    The state (``events.redcap_rows``: each record, or record and event, or repeat
    instance, and its last lifecycle event; ``events.redcap_values``: each field's
    current value) is the fold of the source's change events, kept so that diffing a
    snapshot costs the snapshot, not the history. It is a projection: it catches up
    from the last sequence number it has applied (``events.redcap_synced``), so it
    can be dropped and rebuilt from the events at any time, and a run killed
    between a batch and its sync loses nothing. Events held before longitudinal
    projects were keyed by event carry no `event` and keep their old key (KEY_SQL).
    """
    for ddl in STATE_DDL:
        conn.execute(ddl)
    rec, cor, rem = EVENT_NAMES[source]
    params = {"src": source, "rec": rec, "cor": cor, "rem": rem}
    synced = _run(conn, "select coalesce(max(seq), 0) from events.redcap_synced where source = $src", params).fetchone()[0]
    top = _run(conn, "select coalesce(max(seq), 0) from events.events where source = $src", params).fetchone()[0]
    if top <= synced:
        return 0
    params = {**params, "from": synced, "to": top}
    conn.execute("begin transaction")
    try:
        _run(conn, _SYNC_SQL[0], params)
        n = conn.execute("select count(*) from sync_events").fetchone()[0]
        for sql in _SYNC_SQL[1:]:
            _run(conn, sql, params)
        conn.execute("commit")
    except BaseException:
        conn.execute("rollback")
        raise
    for name in ("sync_events", "sync_rows", "sync_values"):
        conn.execute(f"drop table if exists {name}")
    return n


def _run(conn: duckdb.DuckDBPyConnection, sql: str, params: dict) -> duckdb.DuckDBPyConnection:
    """Execute with only the named parameters the statement uses (DuckDB rejects extras)."""
    return conn.execute(sql, {k: v for k, v in params.items() if re.search(rf"\${k}\b", sql)})


def _row_keys(df: pl.DataFrame, record_field: str) -> pl.DataFrame:
    """Add __rid, __event, __inst, __num and __key, the row's key (as KEY_SQL gives it of a payload).

    The key is the record, or record#instrument#instance for a repeating instrument's row;
    in a longitudinal export (with `redcap_event_name`) record#event, with #instrument#instance
    for a repeating instrument's row (#instance alone for a repeating event's). A row without
    a record id, or a longitudinal export's row without its event, has none.
    """
    def blank(c: str) -> pl.Expr:
        if c not in df.columns:
            return pl.lit(None, pl.Utf8)
        return pl.when(pl.col(c).str.strip_chars() == "").then(None).otherwise(pl.col(c).str.strip_chars())

    df = df.with_columns(blank(record_field).alias("__rid"), blank(EVENT_NAME).alias("__event"),
                         blank(REPEAT_INSTRUMENT).alias("__inst"), blank(REPEAT_INSTANCE).alias("__num"))
    rid, event, inst, num = (pl.col(c) for c in ("__rid", "__event", "__inst", "__num"))
    instance = pl.when(inst.is_not_null()).then(num.fill_null("1")).otherwise(num)
    placed = event.is_not_null() if EVENT_NAME in df.columns else pl.lit(True)  # a longitudinal row needs its event
    return df.with_columns(
        pl.when(rid.is_null() | ~placed).then(None)
        .when(event.is_not_null()).then(pl.concat_str([rid, event, inst, instance], separator="#", ignore_nulls=True))
        .when(inst.is_null()).then(rid)
        .otherwise(pl.concat_str([rid, inst, num.fill_null("1")], separator="#"))
        .alias("__key")
    )


def _without_erased(conn: duckdb.DuckDBPyConnection, df: pl.DataFrame) -> pl.DataFrame:
    """The rows of participants who withdrew all data are quarantined: they never come back."""
    from ingestion.erasure import ERASED_REASON, erased_record_ids

    erased = erased_record_ids(conn, df["__rid"])
    if not erased:
        return df
    gone = df.filter(pl.col("__rid").is_in(list(erased)))
    conn.register("gone_df", gone.select("row_no"))
    conn.execute("insert into stage_quarantine select 'row ' || row_no, 'erased_participant', ? from gone_df",
                 [ERASED_REASON])
    conn.unregister("gone_df")
    return df.filter(~pl.col("__rid").is_in(list(erased)))


def _normalised_values(df: pl.DataFrame, dictionary: pl.DataFrame, value_cols: list[str]) -> pl.DataFrame:
    """Values trimmed, blank as null; booleans written TRUE/FALSE (as some tools do) for fields coded 0/1."""
    codes = choice_codes(dictionary)
    binary = set(codes.group_by("field_name").agg(pl.col("code").sort().alias("codes"))
                 .filter(pl.col("codes").list.contains("0") & pl.col("codes").list.contains("1"))["field_name"].to_list())

    def normalised(col: str) -> pl.Expr:
        v = pl.col(col).str.strip_chars()
        v = pl.when(v == "").then(None).otherwise(v)
        if col in binary:
            v = (pl.when(v.str.to_uppercase() == "TRUE").then(pl.lit("1"))
                 .when(v.str.to_uppercase() == "FALSE").then(pl.lit("0")).otherwise(v))
        return v.alias(col)

    return df.with_columns([normalised(c) for c in value_cols])


def _bad_codes(keyed: pl.DataFrame, dictionary: pl.DataFrame, value_cols: list[str]) -> pl.DataFrame | None:
    """Rows holding a value outside the dictionary's codes, column by column (the export stays wide)."""
    codes = choice_codes(dictionary)
    coded = set(dictionary.filter(pl.col("field_type").is_in(CODED_TYPES))["field_name"].to_list())
    checkbox_fields = set(dictionary.filter(pl.col("field_type") == "checkbox")["field_name"].to_list())
    allowed = {f: list(g["code"]) for (f,), g in codes.group_by("field_name")}
    checks = {c: allowed.get(c, []) for c in value_cols if c in coded}
    checks.update({c: ["0", "1"] for c in value_cols if "___" in c and c.split("___")[0] in checkbox_fields})
    parts = [
        keyed.filter(pl.col(c).is_not_null() & ~pl.col(c).is_in(ok)).select("row_no", "__key", "__rid", pl.lit(c).alias("field"))
        for c, ok in checks.items()
    ]
    found = pl.concat(parts) if parts else None
    if found is None or not found.height:
        return None
    return found.group_by("row_no", "__key", "__rid").agg(pl.col("field").unique().sort().str.join(", ").alias("fields")).select(
        "row_no", "__key", "__rid", pl.lit("unknown_code").alias("code"),
        (pl.lit("a value is not among the codes the data dictionary defines for: ") + pl.col("fields")).alias("reason"))


def _unreadable_rows(df: pl.DataFrame, dictionary: pl.DataFrame, value_cols: list[str], cut_short: bool,
                     rows_read: int) -> pl.DataFrame:
    """(row_no, __key, __rid, code, reason, whole_record) of every row that cannot be read.

    An export that does not end with a line break was cut short: its last row may be partial.
    A longitudinal row without its event cannot be placed: its whole record keeps its state.
    """
    def bad(rows: pl.DataFrame, code: str, reason: str, key: pl.Expr | None = None) -> pl.DataFrame:
        return rows.select("row_no", (pl.col("__key") if key is None else key).alias("__key"), "__rid",
                           pl.lit(code).alias("code"), pl.lit(reason).alias("reason"))

    longitudinal = EVENT_NAME in df.columns
    parts = [
        bad(df.filter(pl.col("row_no") == rows_read) if cut_short else df.head(0), "truncated_row",
            "the file ends in the middle of this row (no final line break): it may be cut short"),
        bad(df.filter(pl.col("__rid").is_null()), "missing_record_id", "the row has no record_id",
            pl.lit(None, pl.Utf8)),
        bad(df.filter(pl.col("__rid").is_not_null() & pl.col("__event").is_null()) if longitudinal else df.head(0),
            "missing_event", "the row has no redcap_event_name, though the export is longitudinal: its record "
            "keeps its previous state", pl.lit(None, pl.Utf8)),
        bad(df.filter(pl.col("__key").is_not_null() & pl.col("__key").is_duplicated()), "duplicate_record",
            "the record (and event, repeat instance) appears on more than one row of this export"),
    ]
    keyed = df.filter(pl.col("__key").is_not_null())
    codes = _bad_codes(keyed, dictionary, value_cols)
    if codes is not None:
        parts.append(codes)
    out = pl.concat(parts).sort("row_no")
    return out.with_columns((pl.col("code") == "missing_event").alias("whole_record"))


def _identified_long(good: pl.DataFrame, kinds: dict[str, str]) -> pl.DataFrame:
    """(__rid, field, value, kind) of the identifiers, free text and undeclared columns of the rows kept.

    The field name carries the row's place, so that two rows of a record do not overwrite each
    other: field#instrument#instance for a repeating instrument's row, field#event (and
    #instrument#instance) for a longitudinal row.
    """
    ident_cols = [c for c, k in kinds.items() if k in ("identifier", "free_text", "undeclared")]
    if not ident_cols:
        return pl.DataFrame(schema={"__rid": pl.Utf8, "field": pl.Utf8, "value": pl.Utf8, "kind": pl.Utf8})
    index = ["__rid", "__event", "__inst", "__num"]
    inst, num = pl.col("__inst"), pl.col("__num")
    instance = pl.when(inst.is_not_null()).then(num.fill_null("1")).otherwise(num)
    return (
        good.select([*index, *ident_cols])
        .unpivot(index=index, on=ident_cols, variable_name="field", value_name="value")
        .with_columns(
            pl.col("field").replace_strict(kinds, default="undeclared").alias("kind"),
            pl.when(pl.col("__event").is_not_null())
            .then(pl.concat_str([pl.col("field"), pl.col("__event"), inst, instance], separator="#", ignore_nulls=True))
            .when(inst.is_null()).then(pl.col("field"))
            .otherwise(pl.concat_str([pl.col("field"), inst, num.fill_null("1")], separator="#"))
            .alias("field"),
        )
        .select("__rid", "field", "value", "kind")
    )


def _intake_event_notes(conn: duckdb.DuckDBPyConnection, good: pl.DataFrame, profile: StudyProfile) -> None:
    """A longitudinal intake export needs the profile's `intake.event`: one line when it is missing or matches no row.

    The events are stored all the same (every event's fields are events in the store); only
    which rows are a participant's intake depends on it, and a corrected profile needs no re-ingest.
    """
    events = list(profile.intake_events)
    if not events:
        reason = ("the export is longitudinal (redcap_event_name) but the study profile names no intake.event: "
                  "its rows are stored, but no record becomes a participant until the profile names the event "
                  "that holds the intake fields")
        conn.execute("insert into stage_quarantine values (null, 'no_intake_event', ?)", [reason])
    elif good.height and not good.filter(pl.col("__event").is_in(events)).height:
        seen = sorted(good["__event"].drop_nulls().unique().to_list())
        listed = ", ".join(seen[:6]) + (", ..." if len(seen) > 6 else "")
        reason = (f"no row of the export is of the study profile's intake.event `{', '.join(events)}` "
                  f"(its events: {listed}): "
                  "no record of it is a participant")
        conn.execute("insert into stage_quarantine values (null, 'unknown_intake_event', ?)", [reason])


def stage_snapshot(
    conn: duckdb.DuckDBPyConnection,
    data: bytes,
    *,
    source: str,
    exported_at: datetime,
    profile: StudyProfile,
    force: bool = False,
) -> tuple[str, int, str]:
    """Stage the change events of one full snapshot. Returns (status, rows_read, detail).

    Rows are keyed by record (and, in a longitudinal export, REDCap event; for repeating
    instruments, instrument and instance). For the alliance project the base rows (blank
    redcap_repeat_instrument) carry no survey and are not records of it.
    """
    dictionary = latest_dictionary(conn, source)
    if dictionary is None:
        raise ReadError("no_dictionary", f"no data dictionary has been ingested for {source}/ yet; land data_dictionary.csv beside the export")
    record_field = (profile.field("record_id") or "record_id") if source == "intake" else "record_id"
    df = read_csv_strings(data, "REDCap export")
    if record_field not in df.columns:
        raise ReadError("missing_record_id_column", f"the export has no `{record_field}` column, so its rows cannot be matched to records")
    identified = profile_identified(profile) if source == "intake" else ()
    kinds = classify_columns(df.columns, dictionary, record_field, profile.safe_free_text, identified)
    df = _row_keys(df.with_row_index("row_no", offset=1), record_field)
    rows_read = df.height
    df = _without_erased(conn, df)
    if source == "alliance":
        df = df.filter(pl.col("__inst").is_not_null() | pl.col("__rid").is_null())

    # Rows that cannot be read are quarantined; their records keep their previous state.
    value_cols = [c for c, k in kinds.items() if k == "value"]
    df = _normalised_values(df, dictionary, value_cols)
    cut_short = bool(data) and not data.endswith((b"\n", b"\r"))
    bad_df = _unreadable_rows(df, dictionary, value_cols, cut_short, rows_read)
    conn.register("bad_df", bad_df)
    conn.execute("insert into stage_quarantine select 'row ' || row_no, code, reason from bad_df")
    conn.unregister("bad_df")
    bad_keys = bad_df["__key"].drop_nulls().unique()
    good = df.filter(pl.col("__key").is_not_null() & ~pl.col("__key").is_in(bad_keys.implode())
                     & ~pl.col("__rid").is_in(bad_df.filter("whole_record")["__rid"].implode()))
    ident = _identified_long(good, kinds)

    # Stale: a snapshot older than (or as old as) one already applied produces nothing.
    last = conn.execute(
        "select max(exported_at) from events.batches where source = ? and status in ('applied', 'accepted')", [source]
    ).fetchone()[0]
    undeclared = sum(1 for k in kinds.values() if k == "undeclared")
    detail = f"{undeclared} column(s) not in the data dictionary kept in the identified store only" if undeclared else ""
    if last is not None and exported_at <= last:
        return "stale", rows_read, "exported before a snapshot already applied; recorded, no events"
    try:
        _register_snapshot(conn, good, value_cols, bad_df)
        status, held_back = _stage_changes(conn, source, exported_at, value_cols,
                                           longitudinal=EVENT_NAME in df.columns, force=force)
        if status == "suspect":
            return "suspect", rows_read, held_back
        if source == "intake" and EVENT_NAME in df.columns:
            _intake_event_notes(conn, good, profile)
        _stage_identified(conn, ident, source, exported_at)
    finally:
        conn.execute("drop view if exists snap_long")
        for name in ("snap_wide", "snap_rows", "bad_keys", "snap_ident"):
            try:
                conn.unregister(name)
            except duckdb.Error:
                pass
    return ("accepted" if force else "applied"), rows_read, detail


def _register_snapshot(conn: duckdb.DuckDBPyConnection, good: pl.DataFrame, value_cols: list[str],
                       bad_df: pl.DataFrame) -> None:
    """The export's readable rows as views: wide (snap_wide), long (snap_long) and their keys (snap_rows).

    bad_keys holds the keys whose rows could not be read and, for a row that could not be placed
    (no event), its record: neither is a removal.
    """
    conn.register("snap_wide", good.select(pl.col("__key").alias("row_key"), *value_cols))
    # the long form (row_key, field, value), unpivoted by DuckDB (streamed, within its memory limit)
    if value_cols:
        cols = ", ".join(sql_ident(c) for c in value_cols)
        conn.execute("create or replace temp view snap_long as select row_key, field, value from "
                     f"snap_wide unpivot include nulls (value for field in ({cols}))")
    else:
        conn.execute("create or replace temp view snap_long as select null::varchar as row_key, "
                     "null::varchar as field, null::varchar as value where false")
    conn.register("snap_rows", good.select(pl.col("__key").alias("row_key"), pl.col("__rid").alias("record_id"),
                                           pl.col("__event").alias("event"), pl.col("__inst").alias("instrument"),
                                           pl.col("__num").alias("instance")))
    conn.register("bad_keys", bad_df.select(pl.col("__key").alias("row_key"),
                                            pl.when("whole_record").then(pl.col("__rid")).alias("record_id")))


# Rows held as present that the export no longer holds, and whose key (or record) no unreadable row names.
_GONE_SQL = """select * from snap_held_life where last_type = $rec
    and row_key not in (select row_key from snap_rows)
    and row_key not in (select row_key from bad_keys where row_key is not null)
    and record_id not in (select record_id from bad_keys where record_id is not null)"""
_STAGE_INSERT = ("insert into stage_events (event_id, stream, event_type, event_version, occurred_at, recorded_at, "
                 "content_hash, payload)")


def _stage_changes(conn: duckdb.DuckDBPyConnection, source: str, exported_at: datetime, value_cols: list[str], *,
                   longitudinal: bool, force: bool) -> tuple[str, str]:
    """Diff the registered export against the held state into change events; (status, detail).

    A snapshot that would remove more than 5% of the rows held is held back as suspect.
    """
    rec, cor, rem = EVENT_NAMES[source]
    params = {"src": source, "rec": rec, "cor": cor, "rem": rem}
    sync_state(conn, source)
    # views over the held state (source is one of EVENT_NAMES' keys, a fixed word)
    conn.execute(f"create or replace temp view snap_held_life as select * from events.redcap_rows where source = '{source}'")
    conn.execute("create or replace temp view snap_held_values as "
                 f"select row_key, field, value from events.redcap_values where source = '{source}'")
    held_present = _run(conn, "select count(*) from snap_held_life where last_type = $rec", params).fetchone()[0]
    removed = _run(conn, f"select count(*) from ({_GONE_SQL})", params).fetchone()[0]
    if held_present and removed / held_present > SUSPECT_REMOVAL_SHARE and not force:
        # the share is of the rows held: a longitudinal export filtered by event removes rows, not records
        what = "record events" if longitudinal else "records"
        conn.execute("delete from stage_quarantine")
        conn.execute(
            "insert into stage_quarantine values (null, 'suspect_snapshot', ?)",
            [f"the snapshot would remove {removed} of {held_present} {what} (more than 5%); "
             f"nothing applied until `alliance-wh accept FILE` confirms it"],
        )
        return "suspect", f"would remove {removed} of {held_present} {what}"
    params = {**params, "ts": exported_at, "iso": exported_at.isoformat(), "v": 1}
    # the row's place in the payload: `event` only in a longitudinal export (others keep the old form)
    ident_obj = "'record_id', r.record_id, " + ("'event', r.event, " if longitudinal else "") + \
        "'instrument', r.instrument, 'instance', r.instance"
    _stage_recorded(conn, params, value_cols, ident_obj)
    _stage_corrected(conn, params, value_cols, ident_obj)
    _stage_removed(conn, params)
    return "applied", ""


def _stage_recorded(conn: duckdb.DuckDBPyConnection, params: dict, value_cols: list[str], ident_obj: str) -> None:
    """A row not held as present (new, or back after a removal): all its values."""
    # a row's values straight from the wide export (an aggregate over the long form does not spill)
    values_obj = ", ".join(f"{sql_str(c)}, w.{sql_ident(c)}" for c in value_cols)
    _run(conn, f"""
        {_STAGE_INSERT}
        with new_rows as (
            select s.* from snap_rows s left join snap_held_life h using (row_key)
            where h.last_type is distinct from $rec
        ),
        p as (
            select r.row_key, r.record_id, json_object({ident_obj}, 'values', json_object({values_obj})) as payload
            from new_rows r join snap_wide w using (row_key)
        )
        select md5(concat_ws('|', $src, $iso, row_key, $rec)), 'participant/' || record_id,
               $rec, $v, $ts, $ts, md5(payload::varchar), payload
        from p
        """,
        params,
    )


def _stage_corrected(conn: duckdb.DuckDBPyConnection, params: dict, value_cols: list[str], ident_obj: str) -> None:
    """A field of a held row whose value changed: one correction each."""
    _run(conn, f"""
        {_STAGE_INSERT}
        with changed as (  -- held rows whose export row differs (by digest): only these are compared
            select w.row_key
            from snap_wide w join snap_held_life hl on hl.row_key = w.row_key and hl.last_type = $rec
            where {_wide_row_hash(value_cols, "w")} is distinct from hl.row_hash
        ),
        c as (
            select r.row_key, r.record_id, r.event, r.instrument, r.instance, l.field, h.value as old, l.value as new
            from snap_long l
            join changed using (row_key)
            join snap_rows r using (row_key)
            left join (select * from snap_held_values where row_key in (select row_key from changed)) h
              on h.row_key = l.row_key and h.field = l.field
            where l.value is distinct from h.value
        ),
        p as (select row_key, record_id, field, json_object({ident_obj}, 'field', field, 'old', old, 'new', new) as payload
              from c as r)
        select md5(concat_ws('|', $src, $iso, row_key, $cor, field)), 'participant/' || record_id,
               $cor, $v, $ts, $ts, md5(payload::varchar), payload
        from p
        """,
        params,
    )


def _stage_removed(conn: duckdb.DuckDBPyConnection, params: dict) -> None:
    """A held row the export no longer holds (and no unreadable row stands for)."""
    _run(conn, f"""
        {_STAGE_INSERT}
        with p as (
            select row_key, record_id, case when event is null
                then json_object('record_id', record_id, 'instrument', instrument, 'instance', instance)
                else json_object('record_id', record_id, 'event', event, 'instrument', instrument, 'instance', instance)
                end as payload
            from ({_GONE_SQL})
        )
        select md5(concat_ws('|', $src, $iso, row_key, $rem)), 'participant/' || record_id,
               $rem, $v, $ts, $ts, md5(payload::varchar), payload
        from p
        """,
        params,
    )


def _stage_identified(conn: duckdb.DuckDBPyConnection, ident: pl.DataFrame, source: str, exported_at: datetime) -> None:
    """Identifiers and free text: kept (identified store only) when new or changed."""
    conn.register("snap_ident", ident.rename({"__rid": "record_id"}))
    _run(conn, """
        insert into stage_identified
        with held as (
            select record_id, field, arg_max_null(value, recorded_at) as value
            from identified.identifier_values where source = $src group by all
        )
        select s.record_id, s.field, nullif(trim(s.value), ''), s.kind, $ts
        from snap_ident s left join held h using (record_id, field)
        where nullif(trim(s.value), '') is distinct from h.value
          and not (h.record_id is null and nullif(trim(s.value), '') is null)
        """,
        {"src": source, "ts": exported_at},
    )
