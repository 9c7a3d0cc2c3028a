"""Coded transcript units (CONTRACT 1.4): REFI-QDA projects, coded-unit CSV exports, the pseudonym list.

Pure readers: bytes in, polars frames out; nothing touches the disk or a database.

* ``read_qdpx``: a REFI-QDA project exchange file (a zip holding ``project.qde`` and a
  ``sources/`` folder) as NVivo, ATLAS.ti, MAXQDA or QualCoder write it. The zip is read
  in memory only (members are never extracted), with caps on member size, total size and
  compression ratio checked on the headers before reading and again while reading in
  bounded chunks. The XML is parsed by ``defusedxml`` with DTDs and entities forbidden.
* ``read_units_csv``: the same units exported as a table, validated as one vectorised pass.
  A CSV ``unit_id`` names a coded span (the unit), not a row: a unit coded with several codes,
  or by several coders, is several rows with the same ``unit_id``, and a row is known by
  (``unit_id``, ``coder_id``, ``code_path``). A unit's transcript, positions and text (and its
  kind, record_id and speaker) are those of its first row in file order; a row that disagrees
  on the transcript, positions or text (``unit_mismatch``) or that repeats a key with other
  content (``conflicting_repeat``) is quarantined; an exact repeat of a row is collapsed.
  Positions count Unicode code points. A transcript_id ending in a text-file extension
  (``.txt``, ``.docx``...) loses it, as a QDPX source name does, so that a CSV transcript_id
  names a QDPX source by its name.
* ``read_pseudonyms``: ``record_id,pseudonym`` (identified data; the caller keeps it in the vault).

A whole file that cannot be read raises ``ReadError(code, reason)``; a unit, row, source or
zip entry that cannot be used goes to the quarantine frame (``location``, ``reason_code``,
``reason``). Reasons are fixed one-line sentences (at most formatted with counts): they never
repeat a value from the data, and locations are row numbers, GUIDs or ordinals only.

Positions (``start_char`` inclusive, ``end_char`` exclusive) of QDPX units are always given in
the LF-normalised source text (``decode_text`` of the source file), so that
``text == decode_text(source)[start_char:end_char]`` holds for every unit. The CRLF rule: a
source file stored with CRLF line ends may have had its positions counted by the tool with
the CR characters included. Per source, the positions are taken as CRLF-counted when some
selection ends beyond the LF-normalised length (but within the CRLF length), or when more
selections fall on word boundaries in the CRLF text than in the LF text (ties: LF); the
positions are then converted to LF-normalised positions (each CR of a CRLF pair before the
position is subtracted). A selection still outside the text is quarantined
(``selection_out_of_range``).
"""

from __future__ import annotations

import bisect
import io
import re
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import unquote
from xml.etree.ElementTree import Element, ParseError

import polars as pl
from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from ingestion.readers import ReadError, decode_text, read_csv_strings

QDA_NS = "urn:QDA-XML:project:1.0"

# Zip limits: checked on the headers before reading, and again while reading in chunks.
MAX_TOTAL_BYTES = 500 * 2**20     # everything read from one archive
MAX_MEMBER_BYTES = 200 * 2**20    # one member
MAX_RATIO = 200                   # uncompressed : compressed, for members over RATIO_MIN_BYTES
RATIO_MIN_BYTES = 2**20
MAX_ENTRIES = 50_000
CHUNK_BYTES = 2**20

UNIT_COLUMNS = ("unit_id", "transcript_id", "transcript_kind", "record_id", "speaker", "coder_id", "code_path",
                "start_char", "end_char", "text", "coded_at")
UNIT_SCHEMA: dict[str, pl.DataType] = {
    "unit_id": pl.Utf8, "transcript_id": pl.Utf8, "transcript_kind": pl.Utf8, "record_id": pl.Utf8,
    "speaker": pl.Utf8, "coder_id": pl.Utf8, "code_path": pl.Utf8, "start_char": pl.Int64, "end_char": pl.Int64,
    "text": pl.Utf8, "coded_at": pl.Datetime("us", "UTC"), "coded_at_from_ingest": pl.Boolean,
    "location": pl.Utf8,  # where the unit is in its file (row number, GUIDs), for reasons given later
}
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {"location": pl.Utf8, "reason_code": pl.Utf8, "reason": pl.Utf8}
PSEUDONYM_SCHEMA: dict[str, pl.DataType] = {"record_id": pl.Utf8, "pseudonym": pl.Utf8}
KINDS = ("interview", "focus_group")

REASONS = {
    # whole file (ReadError)
    "not_a_zip": "the file is not a readable zip archive (not a REFI-QDA project, or truncated)",
    "too_many_entries": f"the archive holds more than {MAX_ENTRIES:,} entries",
    "zip_bomb": "the archive expands far beyond a plausible project (size or compression-ratio limit exceeded); "
                "nothing was read",
    "no_project_file": "the archive holds no project.qde (nor a single .qde file) at its root",
    "ambiguous_project_file": "the archive holds more than one .qde project file at its root",
    "encrypted_zip": "an archive member is encrypted and cannot be read",
    "corrupt_zip": "an archive member is damaged or uses an unsupported compression method",
    "unsafe_xml": "the project XML declares a DTD or entities, which are refused (entity-expansion and "
                  "external-entity attacks)",
    "bad_xml": "the project file is not well-formed XML",
    "not_a_qda_project": "the project XML's root element is not a REFI-QDA Project",
    "missing_columns": "the file lacks required columns",
    # zip entries and sources (quarantine)
    "unsafe_zip_path": "the archive entry's path is absolute, climbs out with '..', or is a link; it was not read",
    "unsafe_source_path": "the source's internal:// path climbs out of the sources folder; it was not read",
    "external_source": "the source's text lies outside the project file (not an internal:// path) and is not read",
    "source_file_missing": "the source's internal:// file is not in the archive's sources folder",
    "ambiguous_source_path": "more than one archive entry matches the source's internal:// path",
    "no_source_text": "the text source has neither an internal plain-text file nor inline PlainTextContent",
    "binary_source": "the source's text file holds binary data, not plain text",
    "conflicting_record_id": "the source is linked to cases that give different record_id values",
    # selections / codings (quarantine)
    "bad_positions": "the selection's positions are not whole numbers with start before end",
    "selection_out_of_range": "the selection's positions fall outside the source text",
    "unknown_code": "the coding refers to a code that is not in the codebook",
    "missing_coder": "neither the coding nor its selection names a creating user",
    "bad_timestamp": "the timestamp is not ISO-8601 (date and time, optional UTC offset)",
    "duplicate_unit_id": "the unit_id occurs more than once in the file with different content",
    # CSV units: a unit (unit_id) is a span; a row is known by (unit_id, coder_id, code_path)
    "unit_mismatch": "the row's transcript_id, start_char, end_char or text differ from those of the first row "
                     "of its unit_id",
    "conflicting_repeat": "the row repeats the unit_id, coder_id and code_path of an earlier row with other content",
    "held_unit_mismatch": "the row's transcript_id, start_char, end_char or text differ from those of its unit_id "
                          "already held from an earlier file",
    # CSV rows (quarantine)
    "missing_unit_id": "the row has no unit_id",
    "missing_transcript_id": "the row has no transcript_id",
    "missing_coder_id": "the row has no coder_id",
    "missing_code_path": "the row has no code_path",
    "bad_transcript_kind": "transcript_kind is not interview or focus_group",
    "text_length_mismatch": "the length of text does not equal end_char - start_char",
    # pseudonyms (quarantine)
    "missing_record_id": "the row has no record_id",
    "missing_pseudonym": "the row has no pseudonym",
    "conflicting_pseudonym": "the record_id is given more than one pseudonym in the file",
    "shared_pseudonym": "the pseudonym is given to more than one record_id in the file",
}

_GUID = re.compile(r"^\{?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}?$")
_INT = re.compile(r"^\s*[+-]?\d{1,15}\s*$")
_INTERVIEW_NAME = re.compile(r"^INT-(?P<rid>.+)-(?P<n>\d+)$", re.IGNORECASE)
_FG_NAME = re.compile(r"^FG-", re.IGNORECASE)
_TEXT_EXT = re.compile(r"\.(txt|docx?|rtf|odt|pdf)$", re.IGNORECASE)
# A turn starts at the beginning of a line with "<Speaker>:" (an optional [hh:mm:ss] stamp before it).
_TURN = re.compile(
    r"^[ \t]*(?:[\[(]?\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?[\])]?[ \t]+)?"
    r"(?P<speaker>[^\W\d_][^:\n]{0,59}?)[ \t]*:(?=[ \t]|$)",
    re.MULTILINE,
)
_TS_PARTS = r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2})(:\d{2})?([.,]\d+)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$"


@dataclass
class TranscriptBatch:
    units: pl.DataFrame       # UNIT_SCHEMA, one row per (selection/span x code x coder)
    quarantine: pl.DataFrame  # QUARANTINE_SCHEMA
    warnings: list[str] = field(default_factory=list)  # counts only, never values


# --------------------------------------------------------------------------------------- helpers

class _Quarantine:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str]] = []

    def add(self, location: str, code: str, extra: str = "") -> None:
        self.rows.append((location, code, REASONS[code] + extra))

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(self.rows, schema=QUARANTINE_SCHEMA, orient="row")


def _fail(code: str, extra: str = "") -> ReadError:
    return ReadError(code, REASONS[code] + extra)


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _parse_timestamps(expr: pl.Expr) -> pl.Expr:
    """ISO-8601 strings -> Datetime(us, UTC); no offset means UTC; unparseable -> null (vectorised)."""
    g = expr.str.strip_chars().str.extract_groups(_TS_PARTS)
    frac = g.struct.field("4").str.slice(1).fill_null("").str.pad_end(6, "0").str.slice(0, 6)
    off = g.struct.field("5").str.to_uppercase().fill_null("Z")
    off = (
        pl.when(off == "Z").then(pl.lit("+00:00"))
        .when(off.str.len_chars() == 3).then(off + ":00")
        .when(off.str.len_chars() == 5).then(off.str.slice(0, 3) + ":" + off.str.slice(3, 2))
        .otherwise(off)
    )
    canon = pl.concat_str(
        [g.struct.field("1"), pl.lit("T"), g.struct.field("2"), g.struct.field("3").fill_null(":00"),
         pl.lit("."), frac, off]
    )
    return canon.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", time_zone="UTC", strict=False)


def _conflicting_unit_ids(content: list[str]) -> pl.Expr:
    """True on rows whose unit_id occurs again in the file with different content."""
    return pl.col("unit_id").is_not_null() & (pl.struct(content).n_unique().over("unit_id") > 1)


def _empty_units() -> pl.DataFrame:
    return pl.DataFrame(schema=UNIT_SCHEMA)


# ------------------------------------------------------------------------------------------- zip

def _entry_path(name: str) -> str | None:
    """The entry's path with '/' separators, or None when it is absolute or climbs out."""
    if not name or any(ord(c) < 32 for c in name):
        return None
    path = name.replace("\\", "/")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return None
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        return None
    return "/".join(parts)


def _is_link(info: zipfile.ZipInfo) -> bool:
    return (info.external_attr >> 16) & 0o170000 == 0o120000


class _Archive:
    """A zip read in memory: safe entries indexed by lower-cased path, bounded reads."""

    def __init__(self, data: bytes, q: _Quarantine, warnings: list[str]):
        try:
            self.zf = zipfile.ZipFile(io.BytesIO(data))
            infos = self.zf.infolist()
        except Exception:  # BadZipFile, truncated central directory, bad offsets ...
            raise _fail("not_a_zip") from None
        if len(infos) > MAX_ENTRIES:
            raise _fail("too_many_entries")
        self.by_lower: dict[str, list[tuple[str, zipfile.ZipInfo]]] = {}
        self.read_total = 0
        backslashed = 0
        for i, info in enumerate(infos, start=1):
            if info.is_dir():
                continue
            # A member that claims to expand more than MAX_RATIO-fold is hostile wherever it sits.
            if info.file_size > RATIO_MIN_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
                raise _fail("zip_bomb", f" (entry #{i})")
            path = _entry_path(info.filename)
            if path is None or _is_link(info):
                q.add(f"entry #{i}", "unsafe_zip_path")
                continue
            backslashed += "\\" in info.filename
            self.by_lower.setdefault(path.lower(), []).append((path, info))
        if backslashed:
            warnings.append(f"{backslashed} archive entr(y/ies) used '\\' as the folder separator; read as '/'")

    def find_project(self) -> zipfile.ZipInfo:
        root = [(p, i) for key, lst in self.by_lower.items() if "/" not in key for p, i in lst]
        named = [i for p, i in root if p.lower() == "project.qde"]
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            raise _fail("ambiguous_project_file")
        qde = [i for p, i in root if p.lower().endswith(".qde")]
        if len(qde) == 1:
            return qde[0]
        if len(qde) > 1:
            raise _fail("ambiguous_project_file")
        raise _fail("no_project_file")

    def read(self, info: zipfile.ZipInfo) -> bytes:
        """The member's bytes, read in chunks under the size caps; raises _MemberError or ReadError(zip_bomb)."""
        if info.flag_bits & 0x1:
            raise _MemberError("encrypted_zip")
        cap = min(info.file_size, MAX_MEMBER_BYTES)
        if info.file_size > MAX_MEMBER_BYTES or self.read_total + info.file_size > MAX_TOTAL_BYTES:
            raise _fail("zip_bomb")
        out = bytearray()
        try:
            with self.zf.open(info) as fh:
                while True:
                    chunk = fh.read(CHUNK_BYTES)
                    if not chunk:
                        break
                    out += chunk
                    self.read_total += len(chunk)
                    if len(out) > cap or self.read_total > MAX_TOTAL_BYTES:
                        raise _fail("zip_bomb")
        except ReadError:
            raise
        except Exception:  # CRC errors, bad local headers, zlib errors, unsupported methods
            raise _MemberError("corrupt_zip") from None
        return bytes(out)


class _MemberError(Exception):
    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


# ------------------------------------------------------------------------------------------- XML

def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _kids(el: Element | None, name: str) -> list[Element]:
    return [] if el is None else [c for c in el if _local(c.tag) == name]


def _kid(el: Element | None, name: str) -> Element | None:
    found = _kids(el, name)
    return found[0] if found else None


def _gkey(value: str | None) -> str | None:
    """A GUID as a lookup key: braces dropped, lower case (NVivo writes {UPPER}, others lower)."""
    if value is None or not value.strip():
        return None
    v = value.strip()
    return v.strip("{}").lower() if _GUID.match(v) else v


def _attr(el: Element, name: str) -> str | None:
    v = el.get(name)
    return v.strip() if v is not None and v.strip() else None


def _parse_project(xml: bytes, warnings: list[str]) -> Element:
    try:
        root = SafeET.fromstring(xml, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise _fail("unsafe_xml") from None
    except (ParseError, ValueError, UnicodeError, LookupError):  # LookupError: an unknown encoding name
        raise _fail("bad_xml") from None
    if _local(root.tag) != "Project":
        raise _fail("not_a_qda_project")
    if not str(root.tag).startswith("{" + QDA_NS + "}"):
        warnings.append("the project XML does not use the REFI-QDA namespace urn:QDA-XML:project:1.0; read anyway")
    return root


def _code_paths(root: Element) -> dict[str, str]:
    """code GUID -> names from the top level down joined by '/' ('/' inside a name becomes '-')."""
    paths: dict[str, str] = {}
    stack: list[tuple[Element | None, str]] = [(_kid(_kid(root, "CodeBook"), "Codes"), "")]
    while stack:  # iterative: a hostile codebook may nest deeper than Python's recursion limit
        el, prefix = stack.pop()
        for code in _kids(el, "Code"):
            name = (code.get("name") or "").strip().replace("/", "-") or "(unnamed code)"
            path = f"{prefix}/{name}" if prefix else name
            key = _gkey(code.get("guid"))
            if key:
                paths[key] = path
            stack.append((code, path))
    return paths


def _users(root: Element) -> dict[str, str]:
    users = {}
    for u in _kids(_kid(root, "Users"), "User"):
        key = _gkey(u.get("guid"))
        if key:
            users[key] = _attr(u, "id") or _attr(u, "name") or key
    return users


def _case_record_ids(root: Element) -> dict[str, set[str]]:
    """source GUID -> record_id values given by cases linked to it."""
    var_keys = {_gkey(v.get("guid")) for v in _kids(_kid(root, "Variables"), "Variable")
                if (v.get("name") or "").strip().lower() == "record_id"}
    var_keys.discard(None)
    out: dict[str, set[str]] = {}
    for case in _kids(_kid(root, "Cases"), "Case"):
        values = set()
        for vv in _kids(case, "VariableValue"):
            ref = _kid(vv, "VariableRef")
            if ref is None or _gkey(ref.get("targetGUID")) not in var_keys:
                continue
            for tag in ("TextValue", "IntegerValue"):
                el = _kid(vv, tag)
                if el is not None and el.text and el.text.strip():
                    values.add(el.text.strip())
                    break
        if not values:
            continue
        for ref in _kids(case, "SourceRef"):
            key = _gkey(ref.get("targetGUID"))
            if key:
                out.setdefault(key, set()).update(values)
    return out


# ------------------------------------------------------------------------------------ source text

def _decode_keep_newlines(data: bytes) -> str:
    """decode_text's decoding (UTF-8 with/without BOM, else cp1252, else Latin-1) without touching line ends."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            return data.decode("latin-1")


def _source_texts(data: bytes) -> tuple[str, str]:
    """(LF-normalised text, text as stored) of a source file; raises _MemberError(binary_source)."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16 with a BOM (Windows tools)
        try:
            raw = data.decode("utf-16")
        except UnicodeDecodeError:
            raise _MemberError("binary_source") from None
        if "\x00" in raw:
            raise _MemberError("binary_source")
        return raw.replace("\r\n", "\n").replace("\r", "\n"), raw
    try:
        norm = decode_text(data)
    except ReadError:
        raise _MemberError("binary_source") from None
    return norm, _decode_keep_newlines(data)


def _on_boundaries(text: str, s: int, e: int) -> bool:
    if not (0 <= s < e <= len(text)):
        return False
    if text[s].isspace() or text[e - 1].isspace():
        return False
    if s > 0 and text[s - 1].isalnum() and text[s].isalnum():
        return False
    return not (e < len(text) and text[e - 1].isalnum() and text[e].isalnum())


def _crlf_counted(norm: str, raw: str, spans: list[tuple[int, int]]) -> bool:
    """The CRLF rule (see the module docstring)."""
    if len(raw) == len(norm) or not spans:
        return False
    if any(len(norm) < e <= len(raw) for _, e in spans):
        return True
    score_raw = sum(_on_boundaries(raw, s, e) for s, e in spans)
    score_norm = sum(_on_boundaries(norm, s, e) for s, e in spans)
    return score_raw > score_norm


def _turns(text: str) -> tuple[list[int], list[str]]:
    starts, speakers = [], []
    for m in _TURN.finditer(text):
        starts.append(m.start())
        speakers.append(m.group("speaker").strip())
    return starts, speakers


def _transcript_id(name: str | None, key: str) -> str:
    tid = (name or "").strip() or key
    return _TEXT_EXT.sub("", tid)


# ------------------------------------------------------------------------------------------ QDPX

_OTHER_SELECTIONS = ("PictureSelection", "PDFSelection", "AudioSelection", "VideoSelection", "TranscriptSelection")
_OTHER_SOURCES = ("PictureSource", "PDFSource", "AudioSource", "VideoSource")


def read_qdpx(data: bytes, file_name: str, ingested_at: datetime) -> TranscriptBatch:
    """Units of a REFI-QDA project file; ReadError when the file as a whole cannot be read.

    ``file_name`` is accepted for the caller's bookkeeping; nothing here depends on it.
    """
    q = _Quarantine()
    warnings: list[str] = []
    archive = _Archive(data, q, warnings)
    try:
        xml = archive.read(archive.find_project())
    except _MemberError as err:
        raise _fail(err.code) from None
    root = _parse_project(xml, warnings)

    codes = _code_paths(root)
    users = _users(root)
    case_rids = _case_record_ids(root)
    sources_el = _kid(root, "Sources")
    counts = {"other_sel": 0, "other_src": 0, "source_coding": 0, "uncoded": 0, "unknown_user": 0,
              "crlf": 0, "no_rid": 0, "inline": 0}
    for tag in _OTHER_SOURCES:
        for other in _kids(sources_el, tag):
            counts["other_src"] += 1
            counts["other_sel"] += sum(len(_kids(other, t)) for t in _OTHER_SELECTIONS)
            counts["source_coding"] += len(_kids(other, "Coding"))
    file_cache: dict[str, tuple[str, str]] = {}
    recs: list[dict] = []

    for si, src in enumerate(_kids(sources_el, "TextSource"), start=1):
        skey = _gkey(src.get("guid")) or f"source-{si}"
        sloc = f"source {skey}" if _GUID.match(src.get("guid") or "") else f"source #{si}"
        selections = _kids(src, "PlainTextSelection")
        counts["other_sel"] += sum(len(_kids(src, t)) for t in _OTHER_SELECTIONS)
        counts["source_coding"] += len(_kids(src, "Coding"))
        dropped = f" ({len(selections)} selection(s) not read)" if selections else ""

        # --- the text
        inline = _kid(src, "PlainTextContent")
        path = _attr(src, "plainTextPath")
        if path is not None:
            scheme, sep, rest = path.partition("://")
            if not sep or scheme.lower() != "internal":
                q.add(sloc, "external_source", dropped)
                continue
            rel = _entry_path(unquote(rest))
            if rel is None:
                q.add(sloc, "unsafe_source_path", dropped)
                continue
            matches = archive.by_lower.get(f"sources/{rel}".lower(), [])
            if not matches and unquote(rest) != rest:
                alt = _entry_path(rest)
                matches = archive.by_lower.get(f"sources/{alt}".lower(), []) if alt else []
            if len(matches) > 1:
                exact = [m for m in matches if m[0].split("/", 1)[1] == rel]
                matches = exact if len(exact) == 1 else matches
            if not matches:
                q.add(sloc, "source_file_missing", dropped)
                continue
            if len(matches) > 1:
                q.add(sloc, "ambiguous_source_path", dropped)
                continue
            entry, info = matches[0]
            try:
                if entry not in file_cache:
                    file_cache[entry] = _source_texts(archive.read(info))
            except _MemberError as err:
                q.add(sloc, err.code, dropped)
                continue
            norm, raw = file_cache[entry]
        elif inline is not None:
            # XML parsers already turn CRLF into LF in element text: positions are LF-counted.
            norm = (inline.text or "").replace("\r\n", "\n").replace("\r", "\n")
            raw = norm
            counts["inline"] += 1
        else:
            q.add(sloc, "no_source_text", dropped)
            continue

        # --- the participant
        tid = _transcript_id(src.get("name"), skey)
        kind = "focus_group" if _FG_NAME.match(tid) else "interview"
        record_id = None
        if kind == "interview":
            rids = case_rids.get(skey, set())
            if len(rids) > 1:
                q.add(sloc, "conflicting_record_id", dropped)
                continue
            if rids:
                record_id = next(iter(rids))
            elif m := _INTERVIEW_NAME.match(tid):
                record_id = m["rid"]
            else:
                counts["no_rid"] += 1

        # --- positions
        spans: list[tuple[Element, str, int, int]] = []
        for ki, sel in enumerate(selections, start=1):
            sel_key = _gkey(sel.get("guid")) or f"{skey}-selection-{ki}"
            loc = f"selection {sel_key}" if _GUID.match(sel.get("guid") or "") else f"selection #{ki} of {sloc}"
            s_raw, e_raw = sel.get("startPosition") or "", sel.get("endPosition") or ""
            if not (_INT.match(s_raw) and _INT.match(e_raw)) or int(s_raw) < 0 or int(s_raw) >= int(e_raw):
                q.add(loc, "bad_positions")
                continue
            spans.append((sel, loc, int(s_raw), int(e_raw)))
        crlf = _crlf_counted(norm, raw, [(s, e) for _, _, s, e in spans])
        if crlf:
            counts["crlf"] += 1
            pairs = [m.start() for m in re.finditer("\r\n", raw)]
        starts, speakers = _turns(norm)

        for sel, loc, s, e in spans:
            if crlf:
                if e > len(raw):
                    q.add(loc, "selection_out_of_range")
                    continue
                s -= bisect.bisect_left(pairs, s)
                e -= bisect.bisect_left(pairs, e)
            if e > len(norm) or s >= e:
                q.add(loc, "selection_out_of_range")
                continue
            codings = _kids(sel, "Coding")
            if not codings:
                counts["uncoded"] += 1
                continue
            t = bisect.bisect_right(starts, s) - 1
            speaker = speakers[t] if t >= 0 else None
            sel_key = _gkey(sel.get("guid")) or loc
            for ci, coding in enumerate(codings, start=1):
                c_key = _gkey(coding.get("guid")) or str(ci)
                cloc = f"{loc} coding {c_key}" if _GUID.match(coding.get("guid") or "") else f"{loc} coding #{ci}"
                ref = _kid(coding, "CodeRef")
                path_ = codes.get(_gkey(ref.get("targetGUID")) or "") if ref is not None else None
                if path_ is None:
                    q.add(cloc, "unknown_code")
                    continue
                user = _gkey(coding.get("creatingUser")) or _gkey(sel.get("creatingUser"))
                if user is None:
                    q.add(cloc, "missing_coder")
                    continue
                if user not in users:
                    counts["unknown_user"] += 1
                ts = _attr(coding, "creationDateTime") or _attr(sel, "creationDateTime")
                recs.append({
                    "location": cloc, "unit_id": f"{sel_key}:{c_key}", "transcript_id": tid,
                    "transcript_kind": kind, "record_id": record_id, "speaker": speaker,
                    "coder_id": users.get(user, user), "code_path": path_, "start_char": s, "end_char": e,
                    "text": norm[s:e], "ts_raw": ts,
                })

    if counts["other_sel"]:
        warnings.append(f"{counts['other_sel']} non-text selection(s) (picture, PDF, audio, video, transcript) skipped")
    if counts["other_src"]:
        warnings.append(f"{counts['other_src']} non-text source(s) (picture, PDF, audio, video) skipped")
    if counts["source_coding"]:
        warnings.append(f"{counts['source_coding']} coding(s) of whole sources (not of a text selection) skipped")
    if counts["uncoded"]:
        warnings.append(f"{counts['uncoded']} selection(s) carried no coding and were skipped")
    if counts["unknown_user"]:
        warnings.append(f"{counts['unknown_user']} coding(s) name a user the project does not list; "
                        "their coder_id is the user's GUID")
    if counts["crlf"]:
        warnings.append(f"{counts['crlf']} source(s) had positions counted with CRLF line ends; "
                        "converted to LF-normalised positions")
    if counts["no_rid"]:
        warnings.append(f"{counts['no_rid']} interview source(s) have no record_id (no case variable and no "
                        "INT-<record_id>-<n> name); their units carry no record_id")
    if sources_el is None or not _kids(sources_el, "TextSource"):
        warnings.append("the project holds no text sources")

    if not recs:
        return TranscriptBatch(_empty_units(), q.frame(), warnings)
    df = pl.DataFrame(recs, schema={
        "location": pl.Utf8, "unit_id": pl.Utf8, "transcript_id": pl.Utf8, "transcript_kind": pl.Utf8,
        "record_id": pl.Utf8, "speaker": pl.Utf8, "coder_id": pl.Utf8, "code_path": pl.Utf8,
        "start_char": pl.Int64, "end_char": pl.Int64, "text": pl.Utf8, "ts_raw": pl.Utf8,
    })
    units, bad = _finish(df, ingested_at, warnings)
    return TranscriptBatch(units, pl.concat([q.frame(), bad]), warnings)


def _timestamped(df: pl.DataFrame, reason: pl.Expr | None = None) -> pl.DataFrame:
    """``coded_at`` parsed from the raw string ``ts_raw``; ``_reason`` = the row's first reason code.

    ``reason`` is an optional expression giving earlier per-row reason codes; an unparseable
    timestamp comes after them (``bad_timestamp``).
    """
    df = df.with_columns(_parse_timestamps(pl.col("ts_raw")).alias("coded_at"))
    ts_bad = pl.col("ts_raw").is_not_null() & pl.col("coded_at").is_null()
    base = reason if reason is not None else pl.lit(None, pl.Utf8)
    return df.with_columns(pl.when(base.is_not_null()).then(base)
                           .when(ts_bad).then(pl.lit("bad_timestamp")).otherwise(None).alias("_reason"))


def _split(df: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rows without a reason, quarantine frame of the rows with one)."""
    bad = df.filter(pl.col("_reason").is_not_null()).select(
        pl.col("location"),
        pl.col("_reason").alias("reason_code"),
        pl.col("_reason").replace_strict(REASONS, return_dtype=pl.Utf8).alias("reason"),
    )
    return df.filter(pl.col("_reason").is_null()), bad


def _shaped(ok: pl.DataFrame, ingested_at: datetime) -> pl.DataFrame:
    """The units in UNIT_SCHEMA; a unit without a timestamp takes the ingest time (and says so)."""
    ingest = _utc(ingested_at)
    ok = ok.with_columns(
        pl.col("coded_at").is_null().alias("coded_at_from_ingest"),
        pl.col("coded_at").fill_null(pl.lit(ingest).cast(pl.Datetime("us", "UTC"))),
    )
    return ok.select([pl.col(c).cast(t) for c, t in UNIT_SCHEMA.items()])


def _finish(df: pl.DataFrame, ingested_at: datetime, warnings: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Timestamps, duplicate unit_ids and the final shape of QDPX units (a unit_id names one coding).

    ``df`` has the unit columns (coded_at as the raw string ``ts_raw``) and ``location``.
    """
    df = _timestamped(df)
    content = [c for c in UNIT_COLUMNS if c != "unit_id" and c != "coded_at"] + ["ts_raw"]
    df = df.with_columns(pl.when(pl.col("_reason").is_null() & _conflicting_unit_ids(content))
                         .then(pl.lit("duplicate_unit_id"))
                         .otherwise(pl.col("_reason")).alias("_reason"))
    ok, bad = _split(df)
    repeats = ok.height - ok.unique(subset=["unit_id"], keep="first", maintain_order=True).height
    ok = ok.unique(subset=["unit_id"], keep="first", maintain_order=True)
    if repeats:
        warnings.append(f"{repeats} identical repeat(s) of a unit_id collapsed")
    return _shaped(ok, ingested_at), bad


# ------------------------------------------------------------------------------------------- CSV

# A CSV unit (unit_id) is a span: its rows agree on these, taken from its first row in file order ...
UNIT_SPAN = ("transcript_id", "start_char", "end_char", "text")
# ... and these, which belong to the span too, are taken from the first row (a later row's are not kept).
UNIT_ATTRS = ("transcript_kind", "record_id", "speaker")
ROW_KEY = ("unit_id", "coder_id", "code_path")
# The text-file extension a QDPX source name may carry (dropped, as _transcript_id drops it),
# when something is left before it.
_TEXT_EXT_TAIL = r"(?i)(.)\.(?:txt|docx?|rtf|odt|pdf)$"


def _unit_rules(df: pl.DataFrame, warnings: list[str]) -> pl.DataFrame:
    """CONTRACT 1.4's unit rules over the rows that passed the row checks (``_reason`` null).

    A row whose transcript_id, positions or text differ from its unit's first row gets
    ``unit_mismatch``; a later row of a (unit_id, coder_id, code_path) already seen gets
    ``conflicting_repeat`` when its content differs and is dropped (counted) when it is an exact
    repeat. Kept rows take their unit's kind, record_id and speaker from the unit's first row.
    """
    valid = pl.col("_reason").is_null()
    firsts = (df.filter(valid).group_by("unit_id", maintain_order=True)
              .agg(*[pl.col(c).first().alias("_u_" + c) for c in (*UNIT_SPAN, *UNIT_ATTRS)]))
    df = df.join(firsts, on="unit_id", how="left").sort("row_no")
    differs = pl.any_horizontal([pl.col(c).ne_missing(pl.col("_u_" + c)) for c in UNIT_SPAN])
    df = df.with_columns(pl.when(valid & differs).then(pl.lit("unit_mismatch"))
                         .otherwise(pl.col("_reason")).alias("_reason"))
    content = pl.struct(*UNIT_ATTRS, "ts_raw")
    seen = df.filter(valid).with_columns(
        pl.int_range(pl.len()).over(ROW_KEY).alias("_nth"),
        content.eq_missing(content.first().over(ROW_KEY)).alias("_same"),
    ).filter(pl.col("_nth") > 0)
    conflicts = seen.filter(~pl.col("_same"))["row_no"].implode()
    repeats = seen.filter(pl.col("_same"))["row_no"].implode()
    df = df.filter(~pl.col("row_no").is_in(repeats)).with_columns(
        pl.when(pl.col("row_no").is_in(conflicts)).then(pl.lit("conflicting_repeat"))
        .otherwise(pl.col("_reason")).alias("_reason"))
    if seen.filter(pl.col("_same")).height:
        warnings.append(f"{seen.filter(pl.col('_same')).height} identical repeat(s) of a row "
                        "(same unit_id, coder_id and code_path) collapsed")
    attrs_differ = valid & pl.any_horizontal([pl.col(c).ne_missing(pl.col("_u_" + c)) for c in UNIT_ATTRS])
    n_attrs = df.filter(attrs_differ).height
    if n_attrs:
        warnings.append(f"{n_attrs} row(s) gave a transcript_kind, record_id or speaker other than the first row "
                        "of their unit_id; the first row's were used")
    return df.with_columns(*[pl.when(valid).then(pl.col("_u_" + c)).otherwise(pl.col(c)).alias(c)
                             for c in UNIT_ATTRS])


def _blank_to_null(col: str) -> pl.Expr:
    v = pl.col(col).str.strip_chars()
    return pl.when(v == "").then(None).otherwise(v).alias(col)


def read_units_csv(data: bytes, file_name: str, ingested_at: datetime) -> TranscriptBatch:
    """Units of a coded-units CSV export (CONTRACT 1.4); one vectorised validation pass.

    ``row N`` counts data records from 1 (the header is not a row), blank records skipped,
    as the REDCap reader counts them.
    """
    warnings: list[str] = []
    df = read_csv_strings(data, "coded-units file")
    missing = [c for c in UNIT_COLUMNS if c not in df.columns]
    if missing:
        raise _fail("missing_columns", ": " + ", ".join(missing))
    extra = len([c for c in df.columns if c not in UNIT_COLUMNS])
    if extra:
        warnings.append(f"{extra} column(s) the contract does not define were ignored")
    df = df.select(UNIT_COLUMNS).with_row_index("row_no", offset=1)
    ids = ("unit_id", "transcript_id", "record_id", "speaker", "coder_id", "code_path", "coded_at")
    df = df.with_columns(
        *[_blank_to_null(c) for c in ids],
        pl.col("transcript_kind").str.strip_chars().str.to_lowercase(),
        pl.col("text").fill_null(""),
    ).with_columns(
        pl.col("code_path").str.replace_all(r"\s*/\s*", "/"),
        pl.col("transcript_id").str.replace(_TEXT_EXT_TAIL, "$1"),  # the name a QDPX source gets
        *[pl.when(pl.col(c).str.contains(r"^\s*\d{1,15}\s*$")).then(pl.col(c).str.strip_chars())
          .otherwise(None).cast(pl.Int64).alias(c) for c in ("start_char", "end_char")],
        ("row " + pl.col("row_no").cast(pl.Utf8)).alias("location"),
        pl.col("coded_at").alias("ts_raw"),
    )
    span = pl.col("end_char") - pl.col("start_char")
    length = pl.col("text").str.len_chars().cast(pl.Int64)
    newlines = pl.col("text").str.count_matches("\n").cast(pl.Int64)
    crlf_len = (newlines > 0) & (length + newlines == span)
    reason = (
        pl.when(pl.col("unit_id").is_null()).then(pl.lit("missing_unit_id"))
        .when(pl.col("transcript_id").is_null()).then(pl.lit("missing_transcript_id"))
        .when(pl.col("coder_id").is_null()).then(pl.lit("missing_coder_id"))
        .when(pl.col("code_path").is_null()).then(pl.lit("missing_code_path"))
        .when(~pl.col("transcript_kind").is_in(KINDS).fill_null(False)).then(pl.lit("bad_transcript_kind"))
        .when(pl.col("start_char").is_null() | pl.col("end_char").is_null()
              | (pl.col("start_char") >= pl.col("end_char"))).then(pl.lit("bad_positions"))
        .when((length != span) & ~crlf_len).then(pl.lit("text_length_mismatch"))
        .otherwise(None)
    )
    n_crlf = int(df.select((crlf_len & (length != span)).fill_null(False).sum()).item())
    if n_crlf:
        warnings.append(f"{n_crlf} row(s) have positions that count each line break as two characters (CRLF); "
                        "kept as given")
    kind_mismatch = df.filter(
        pl.col("transcript_kind").is_in(KINDS)
        & ((pl.col("transcript_kind") == "focus_group") != pl.col("transcript_id").str.contains("(?i)^FG-"))
    ).height
    if kind_mismatch:
        warnings.append(f"{kind_mismatch} row(s) have a transcript_kind that does not match the transcript_id "
                        "naming (FG-<n> for focus groups)")
    df = _unit_rules(_timestamped(df, reason), warnings)
    ok, bad = _split(df)
    return TranscriptBatch(_shaped(ok, ingested_at), bad, warnings)


def read_pseudonyms(data: bytes) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(record_id, pseudonym) pairs and the quarantine frame of pseudonyms.csv.

    Exact repeats of a pair are collapsed; a record_id with two pseudonyms, or a pseudonym
    (compared case-insensitively) with two record_ids, quarantines every row involved.
    """
    df = read_csv_strings(data, "pseudonym list")
    missing = [c for c in ("record_id", "pseudonym") if c not in df.columns]
    if missing:
        raise _fail("missing_columns", ": " + ", ".join(missing))
    df = df.select("record_id", "pseudonym").with_row_index("row_no", offset=1).with_columns(
        _blank_to_null("record_id"), _blank_to_null("pseudonym"),
    )
    both = pl.col("record_id").is_not_null() & pl.col("pseudonym").is_not_null()
    df = df.with_columns(
        pl.when(both).then(pl.col("pseudonym").n_unique().over("record_id")).alias("_per_rid"),
        pl.when(both).then(pl.col("record_id").n_unique().over(pl.col("pseudonym").str.to_lowercase()))
        .alias("_per_name"),
    )
    reason = (
        pl.when(pl.col("record_id").is_null()).then(pl.lit("missing_record_id"))
        .when(pl.col("pseudonym").is_null()).then(pl.lit("missing_pseudonym"))
        .when(pl.col("_per_rid") > 1).then(pl.lit("conflicting_pseudonym"))
        .when(pl.col("_per_name") > 1).then(pl.lit("shared_pseudonym"))
        .otherwise(None)
    )
    df = df.with_columns(reason.alias("_reason"))
    bad = df.filter(pl.col("_reason").is_not_null()).select(
        ("row " + pl.col("row_no").cast(pl.Utf8)).alias("location"),
        pl.col("_reason").alias("reason_code"),
        pl.col("_reason").replace_strict(REASONS, return_dtype=pl.Utf8).alias("reason"),
    )
    ok = (df.filter(pl.col("_reason").is_null()).select("record_id", "pseudonym")
          .unique(maintain_order=True))
    return ok.cast(PSEUDONYM_SCHEMA), bad.cast(QUARANTINE_SCHEMA)
