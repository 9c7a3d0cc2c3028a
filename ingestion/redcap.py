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
                     safe: tuple[str, ...]) -> dict[str, str]:
    """Each export column -> 'key', 'value', 'identifier', 'free_text' or 'undeclared'."""
    info = {r["field_name"]: r for r in dictionary.iter_rows(named=True)}
    forms = {f for f in dictionary["form_name"].drop_nulls().to_list()}
    kinds: dict[str, str] = {}
    for col in columns:
        base = col.split("___")[0] if "___" in col else col
        if col == record_field:
            kinds[col] = "key"
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
        elif col.endswith("_complete") and col[: -len("_complete")] in forms:
            kinds[col] = "value"
        elif col in (REPEAT_INSTRUMENT, REPEAT_INSTANCE):
            kinds[col] = "key"
        elif col.startswith("redcap_"):
            kinds[col] = "value"
        else:
            kinds[col] = "undeclared"
    return kinds


KEY_SQL = """case when payload->>'instrument' is null then payload->>'record_id'
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


def sync_state(conn: duckdb.DuckDBPyConnection, source: str) -> int:
    """Bring the held REDCap state of ``source`` up to date with the event store; return events applied.

    The state (``events.redcap_rows``: each record or repeat instance and its
    last lifecycle event; ``events.redcap_values``: each field's current value)
    is the fold of the source's change events, kept so that diffing a snapshot
    costs the snapshot, not the history. It is a projection: it catches up from
    the last sequence number it has applied (``events.redcap_synced``), so it
    can be dropped and rebuilt from the events at any time, and a run killed
    between a batch and its sync loses nothing.
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
        _run(conn, f"""
            create or replace temp table sync_events as
            select seq, event_type, {KEY_SQL} as row_key, payload->>'record_id' as record_id,
                   payload->>'instrument' as instrument, payload->>'instance' as instance, payload
            from events.events
            where source = $src and seq > $from and seq <= $to and event_type in ($rec, $cor, $rem)
            """, params)
        n = conn.execute("select count(*) from sync_events").fetchone()[0]
        _run(conn, """
            create or replace temp table sync_rows as
            select $src as source, row_key, any_value(record_id) as record_id,
                   arg_max(instrument, seq) as instrument, arg_max(instance, seq) as instance,
                   arg_max(event_type, seq) as last_type, max(seq) as last_seq, null::ubigint as row_hash
            from sync_events where event_type in ($rec, $rem) group by row_key
            """, params)
        _run(conn, """
            create or replace temp table sync_values as
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
            from v group by row_key, field
            """, params)
        _run(conn, """delete from events.redcap_rows where source = $src
                      and row_key in (select row_key from sync_rows)""", params)
        conn.execute("insert into events.redcap_rows by name select * from sync_rows")
        _run(conn, """delete from events.redcap_values v where source = $src
                      and exists (select 1 from sync_values s where s.row_key = v.row_key and s.field = v.field)""",
             params)
        conn.execute("insert into events.redcap_values select * from sync_values")
        # the digest of every row whose values changed
        _run(conn, f"""
            update events.redcap_rows as r set row_hash = h.row_hash
            from (
                select row_key, bit_xor(hash(field || '=' || coalesce(value, {ROW_HASH_NULL}))) as row_hash
                from events.redcap_values
                where source = $src and row_key in (select row_key from sync_values union select row_key from sync_rows)
                group by row_key
            ) as h
            where r.source = $src and r.row_key = h.row_key
            """, params)
        _run(conn, "delete from events.redcap_synced where source = $src", params)
        _run(conn, "insert into events.redcap_synced values ($src, $to)", params)
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
    """Add __rid, __inst, __num and __key (record, or record#instrument#instance for repeating rows)."""
    blank = lambda c: pl.when(pl.col(c).str.strip_chars() == "").then(None).otherwise(pl.col(c).str.strip_chars())  # noqa: E731
    inst = blank(REPEAT_INSTRUMENT) if REPEAT_INSTRUMENT in df.columns else pl.lit(None, pl.Utf8)
    num = blank(REPEAT_INSTANCE) if REPEAT_INSTANCE in df.columns else pl.lit(None, pl.Utf8)
    df = df.with_columns(blank(record_field).alias("__rid"), inst.alias("__inst"), num.alias("__num"))
    return df.with_columns(
        pl.when(pl.col("__inst").is_null()).then(pl.col("__rid"))
        .otherwise(pl.concat_str([pl.col("__rid"), pl.col("__inst"), pl.col("__num").fill_null("1")], separator="#"))
        .alias("__key")
    )


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

    Rows are keyed by record (and, for repeating instruments, instrument and
    instance). For the alliance project the base rows (blank
    redcap_repeat_instrument) carry no survey and are not records of it.
    """
    recorded_type, corrected_type, removed_type = EVENT_NAMES[source]
    dictionary = latest_dictionary(conn, source)
    if dictionary is None:
        raise ReadError("no_dictionary", f"no data dictionary has been ingested for {source}/ yet; land data_dictionary.csv beside the export")
    record_field = (profile.field("record_id") or "record_id") if source == "intake" else "record_id"
    df = read_csv_strings(data, "REDCap export")
    if record_field not in df.columns:
        raise ReadError("missing_record_id_column", f"the export has no `{record_field}` column, so its rows cannot be matched to records")
    kinds = classify_columns(df.columns, dictionary, record_field, profile.safe_free_text)
    df = _row_keys(df.with_row_index("row_no", offset=1), record_field)
    rows_read = df.height
    # Participants who withdrew all data never come back: their rows are not ingested.
    from ingestion.erasure import ERASED_REASON, erased_record_ids

    erased = erased_record_ids(conn, df["__rid"])
    if erased:
        gone = df.filter(pl.col("__rid").is_in(list(erased)))
        conn.register("gone_df", gone.select("row_no"))
        conn.execute("insert into stage_quarantine select 'row ' || row_no, 'erased_participant', ? from gone_df",
                     [ERASED_REASON])
        conn.unregister("gone_df")
        df = df.filter(~pl.col("__rid").is_in(list(erased)))
    if source == "alliance":
        df = df.filter(pl.col("__inst").is_not_null() | pl.col("__rid").is_null())

    # Rows that cannot be read are quarantined; their records keep their previous state.
    # An export that does not end with a line break was cut short: its last row may be partial.
    cut_short = bool(data) and not data.endswith((b"\n", b"\r"))
    truncated = df.filter(pl.col("row_no") == rows_read) if cut_short else df.head(0)
    bad = [
        truncated.select("row_no", "__key", pl.lit("truncated_row").alias("code"),
                         pl.lit("the file ends in the middle of this row (no final line break): it may be cut short").alias("reason")),
        df.filter(pl.col("__rid").is_null()).select(
            "row_no", pl.lit(None, pl.Utf8).alias("__key"), pl.lit("missing_record_id").alias("code"),
            pl.lit("the row has no record_id").alias("reason")),
        df.filter(pl.col("__key").is_not_null() & pl.col("__key").is_duplicated()).select(
            "row_no", "__key", pl.lit("duplicate_record").alias("code"),
            pl.lit("the record (and repeat instance) appears on more than one row of this export").alias("reason")),
    ]
    codes = choice_codes(dictionary)
    value_cols = [c for c, k in kinds.items() if k == "value"]
    coded = dictionary.filter(pl.col("field_type").is_in(CODED_TYPES))["field_name"].to_list()
    # Booleans written as TRUE/FALSE (as some export tools do) for fields coded 0/1.
    binary = set(codes.group_by("field_name").agg(pl.col("code").sort().alias("codes"))
                 .filter(pl.col("codes").list.contains("0") & pl.col("codes").list.contains("1"))["field_name"].to_list())

    def normalised(col: str) -> pl.Expr:
        v = pl.col(col).str.strip_chars()
        v = pl.when(v == "").then(None).otherwise(v)
        if col in binary:
            v = (pl.when(v.str.to_uppercase() == "TRUE").then(pl.lit("1"))
                 .when(v.str.to_uppercase() == "FALSE").then(pl.lit("0")).otherwise(v))
        return v.alias(col)

    df = df.with_columns([normalised(c) for c in value_cols])
    keyed = df.filter(pl.col("__key").is_not_null())
    checkbox_fields = set(dictionary.filter(pl.col("field_type") == "checkbox")["field_name"].to_list())
    checkbox_cols = [c for c in value_cols if "___" in c and c.split("___")[0] in checkbox_fields]
    # values outside the dictionary's codes, column by column (the export stays wide)
    allowed = {f: list(g["code"]) for (f,), g in codes.group_by("field_name")}
    checks = {c: allowed.get(c, []) for c in value_cols if c in coded}
    checks.update({c: ["0", "1"] for c in checkbox_cols})
    bad_parts = [
        keyed.filter(pl.col(c).is_not_null() & ~pl.col(c).is_in(ok)).select("row_no", "__key", pl.lit(c).alias("field"))
        for c, ok in checks.items()
    ]
    bad_values = (pl.concat(bad_parts) if bad_parts
                  else pl.DataFrame(schema={"row_no": pl.UInt32, "__key": pl.Utf8, "field": pl.Utf8}))
    if bad_values.height:
        bad.append(bad_values.group_by("row_no", "__key").agg(pl.col("field").unique().sort().str.join(", ").alias("fields")).select(
            "row_no", "__key", pl.lit("unknown_code").alias("code"),
            (pl.lit("a value is not among the codes the data dictionary defines for: ") + pl.col("fields")).alias("reason")))
    bad_df = pl.concat(bad).sort("row_no")
    bad_keys = bad_df["__key"].drop_nulls().unique()
    conn.register("bad_df", bad_df)
    conn.execute("insert into stage_quarantine select 'row ' || row_no, code, reason from bad_df")
    conn.unregister("bad_df")

    good = df.filter(pl.col("__key").is_not_null() & ~pl.col("__key").is_in(bad_keys.implode()))
    ident_cols = [c for c, k in kinds.items() if k in ("identifier", "free_text", "undeclared")]
    if ident_cols:
        ident = (
            good.select(["__rid", "__inst", "__num", *ident_cols])
            .unpivot(index=["__rid", "__inst", "__num"], on=ident_cols, variable_name="field", value_name="value")
            .with_columns(
                pl.col("field").replace_strict(kinds, default="undeclared").alias("kind"),
                pl.when(pl.col("__inst").is_null()).then(pl.col("field"))
                .otherwise(pl.concat_str([pl.col("field"), pl.col("__inst"), pl.col("__num").fill_null("1")], separator="#"))
                .alias("field"),
            )
            .select("__rid", "field", "value", "kind")
        )
    else:
        ident = pl.DataFrame(schema={"__rid": pl.Utf8, "field": pl.Utf8, "value": pl.Utf8, "kind": pl.Utf8})

    # Stale: a snapshot older than (or as old as) one already applied produces nothing.
    last = conn.execute(
        "select max(exported_at) from events.batches where source = ? and status in ('applied', 'accepted')", [source]
    ).fetchone()[0]
    undeclared = sum(1 for k in kinds.values() if k == "undeclared")
    detail = f"{undeclared} column(s) not in the data dictionary kept in the identified store only" if undeclared else ""
    if last is not None and exported_at <= last:
        return "stale", rows_read, "exported before a snapshot already applied; recorded, no events"

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
                                           pl.col("__inst").alias("instrument"), pl.col("__num").alias("instance")))
    conn.register("bad_keys", pl.DataFrame({"row_key": bad_keys}, schema={"row_key": pl.Utf8}))
    params = {"src": source, "rec": recorded_type, "cor": corrected_type, "rem": removed_type}
    sync_state(conn, source)
    # views over the held state (source is one of EVENT_NAMES' keys, a fixed word)
    conn.execute(f"create or replace temp view snap_held_life as select * from events.redcap_rows where source = '{source}'")
    conn.execute("create or replace temp view snap_held_values as "
                 f"select row_key, field, value from events.redcap_values where source = '{source}'")
    held_present = _run(conn, "select count(*) from snap_held_life where last_type = $rec", params).fetchone()[0]
    removed = _run(
        conn, """select count(*) from snap_held_life where last_type = $rec
           and row_key not in (select row_key from snap_rows) and row_key not in (select row_key from bad_keys)""",
        params,
    ).fetchone()[0]
    if held_present and removed / held_present > SUSPECT_REMOVAL_SHARE and not force:
        conn.execute("delete from stage_quarantine")
        conn.execute(
            "insert into stage_quarantine values (null, 'suspect_snapshot', ?)",
            [f"the snapshot would remove {removed} of {held_present} records (more than 5%); "
             f"nothing applied until `alliance-wh accept FILE` confirms it"],
        )
        return "suspect", rows_read, f"would remove {removed} of {held_present} records"

    params = {**params, "ts": exported_at, "iso": exported_at.isoformat(), "v": 1}
    ident_obj = "'record_id', r.record_id, 'instrument', r.instrument, 'instance', r.instance"
    # a row's values straight from the wide export (an aggregate over the long form does not spill)
    values_obj = ", ".join(f"{sql_str(c)}, w.{sql_ident(c)}" for c in value_cols)
    _run(conn, f"""
        insert into stage_events (event_id, stream, event_type, event_version, occurred_at, recorded_at, content_hash, payload)
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
    _run(conn, f"""
        insert into stage_events (event_id, stream, event_type, event_version, occurred_at, recorded_at, content_hash, payload)
        with changed as (  -- held rows whose export row differs (by digest): only these are compared
            select w.row_key
            from snap_wide w join snap_held_life hl on hl.row_key = w.row_key and hl.last_type = $rec
            where {_wide_row_hash(value_cols, "w")} is distinct from hl.row_hash
        ),
        c as (
            select r.row_key, r.record_id, r.instrument, r.instance, l.field, h.value as old, l.value as new
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
    _run(conn, """
        insert into stage_events (event_id, stream, event_type, event_version, occurred_at, recorded_at, content_hash, payload)
        with r as (
            select row_key, record_id, instrument, instance from snap_held_life where last_type = $rec
            and row_key not in (select row_key from snap_rows) and row_key not in (select row_key from bad_keys)
        ),
        p as (
            select row_key, record_id, json_object('record_id', record_id,
                   'instrument', instrument, 'instance', instance) as payload
            from r
        )
        select md5(concat_ws('|', $src, $iso, row_key, $rem)), 'participant/' || record_id,
               $rem, $v, $ts, $ts, md5(payload::varchar), payload
        from p
        """,
        params,
    )
    # Identifiers and free text: kept (identified store only) when new or changed.
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
    conn.execute("drop view if exists snap_long")
    for name in ("snap_wide", "snap_rows", "bad_keys", "snap_ident"):
        conn.unregister(name)
    return ("accepted" if force else "applied"), rows_read, detail
