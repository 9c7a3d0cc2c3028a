"""Coded transcript readers: REFI-QDA projects in each tool's conventions, CSV exports, pseudonyms, hostile input."""

from __future__ import annotations

import csv
import io
import random
import re
import struct
import uuid
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree as ET

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingestion import transcripts as tr
from ingestion.readers import ReadError, decode_text
from ingestion.transcripts import (
    QUARANTINE_SCHEMA,
    REASONS,
    UNIT_SCHEMA,
    read_pseudonyms,
    read_qdpx,
    read_units_csv,
)

NS = "urn:QDA-XML:project:1.0"
XSD = Path(__file__).parent / "fixtures" / "transcripts" / "Project-mrt2019.xsd"
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


# ------------------------------------------------------------------------------------ builders

def gid(name: str, style: str = "plain") -> str:
    g = str(uuid.uuid5(uuid.NAMESPACE_URL, "test:" + name))
    return "{" + g.upper() + "}" if style == "nvivo" else g


def key(name: str) -> str:
    return gid(name).lower()


def q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def project_xml(*, users=(), codes=(), variables=(), cases=(), sources=(), style="plain") -> bytes:
    """A QDA-XML 1.0 project. codes: nested (name, [children]); cases: (name, var, value_tag, value, [source]);
    sources: dicts(name, path | inline, selections=[dict(name, start, end, user, created, codings=[...])])."""
    g = lambda n: gid(n, style)  # noqa: E731
    root = ET.Element(q("Project"), name="Test project", origin="tests")
    if users:
        ue = ET.SubElement(root, q("Users"))
        for u in users:
            attrs = {"guid": g("user:" + u["key"])}
            attrs.update({k: v for k, v in u.items() if k in ("id", "name")})
            ET.SubElement(ue, q("User"), attrs)
    if codes:
        book = ET.SubElement(ET.SubElement(root, q("CodeBook")), q("Codes"))

        def add(parent, items, prefix):
            for name, children in items:
                path = f"{prefix}/{name}" if prefix else name
                el = ET.SubElement(parent, q("Code"), guid=g("code:" + path), name=name, isCodable="true")
                add(el, children, path)

        add(book, codes, "")
    if variables:
        ve = ET.SubElement(root, q("Variables"))
        for v, vtype in variables:
            ET.SubElement(ve, q("Variable"), guid=g("var:" + v), name=v, typeOfVariable=vtype)
    if cases:
        ce = ET.SubElement(root, q("Cases"))
        for name, var, tag, value, srcs in cases:
            case = ET.SubElement(ce, q("Case"), guid=g("case:" + name), name=name)
            vv = ET.SubElement(case, q("VariableValue"))
            ET.SubElement(vv, q("VariableRef"), targetGUID=g("var:" + var))
            ET.SubElement(vv, q(tag)).text = value
            for s in srcs:
                ET.SubElement(case, q("SourceRef"), targetGUID=g("source:" + s))
    if sources:
        se = ET.SubElement(root, q("Sources"))
        for s in sources:
            attrs = {"guid": g("source:" + s["name"]), "name": s["name"]}
            if "path" in s:
                attrs["plainTextPath"] = s["path"]
            src = ET.SubElement(se, q("TextSource"), attrs)
            if "inline" in s:
                ET.SubElement(src, q("PlainTextContent")).text = s["inline"]
            for sel in s.get("selections", ()):
                a = {"guid": g("sel:" + sel["name"]), "name": sel["name"],
                     "startPosition": str(sel["start"]), "endPosition": str(sel["end"])}
                if sel.get("user"):
                    a["creatingUser"] = g("user:" + sel["user"])
                if sel.get("created"):
                    a["creationDateTime"] = sel["created"]
                se_el = ET.SubElement(src, q("PlainTextSelection"), a)
                for c in sel.get("codings", ()):
                    ca = {"guid": g("coding:" + c["name"])}
                    if c.get("user"):
                        ca["creatingUser"] = c.get("raw_user") or g("user:" + c["user"])
                    if c.get("created"):
                        ca["creationDateTime"] = c["created"]
                    ce_el = ET.SubElement(se_el, q("Coding"), ca)
                    ET.SubElement(ce_el, q("CodeRef"), targetGUID=c.get("raw_code") or g("code:" + c["code"]))
        for extra in sources:
            for pic in extra.get("pictures", ()):
                ps = ET.SubElement(se, q("PictureSource"), guid=g("pic:" + pic), name=pic, path="internal://x.png")
                ET.SubElement(ps, q("PictureSelection"), guid=g("picsel:" + pic), firstX="0", firstY="0",
                              secondX="5", secondY="5")
    ET.register_namespace("", NS)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False)


def make_qdpx(members: dict[str, bytes], *, compress=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compress) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2025, 1, 1, 0, 0, 0))
            info.compress_type = compress
            zf.writestr(info, data)
    return buf.getvalue()


def span(text: str, phrase: str) -> tuple[int, int]:
    s = text.index(phrase)
    return s, s + len(phrase)


def selection(name, text, phrase, code, user, *, created=None, coding_created=None, counted=None):
    """A selection of ``phrase``; ``counted`` is the text the tool counted positions in (default: text)."""
    s, e = span(counted if counted is not None else text, phrase)
    return {"name": name, "start": s, "end": e, "user": user, "created": created,
            "codings": [{"name": name, "code": code, "user": user, "created": coding_created}]}


CODES = [("Working alliance", [("Case manager qualities", [("Good listener", []), ("Nonjudgmental", [])]),
                               ("Trust", [])]),
         ("Barriers to treatment", [("Transportation", []), ("Stigma", [])])]

INTERVIEW = (
    "Interviewer: How did your case manager treat you?\n"
    "Marigold: She listened to me, really listened.\n"
    "She never judged me for relapsing.\n"
    "Interviewer: And getting to the program?\n"
    "Marigold: The bus took two hours each way.\n"
)
FOCUS_GROUP = (
    "Facilitator: Welcome, everyone.\n"
    "Tamsin: Hi, I'm Tamsin.\n"
    "Orrin: Hey. The bus never came on time.\n"
    "Tamsin: People look at you different once they know.\n"
    "Facilitator: Thank you all.\n"
)
SECRETS = ("Marigold", "Tamsin", "Orrin", "listened", "bus", "1042", "1077", "judged")


def assert_clean(frame: pl.DataFrame, secrets=SECRETS) -> None:
    """Every reason is a contract sentence (plus counts); none repeats a data value."""
    assert frame.schema == pl.Schema(QUARANTINE_SCHEMA)
    for loc, code, reason in frame.iter_rows():
        assert reason.startswith(REASONS[code]), (code, reason)
        assert re.fullmatch(r"( \(.*\))?(: [a-z_, ]+)?", reason[len(REASONS[code]):]), reason
        for s in secrets:
            assert s.lower() not in reason.lower(), (s, reason)
            assert s.lower() not in loc.lower(), (s, loc)


def validate_xsd(xml: bytes) -> None:
    import xmlschema

    xmlschema.XMLSchema(str(XSD)).validate(io.BytesIO(xml))


def codes_of(batch) -> list[str]:
    return sorted(batch.quarantine["reason_code"].to_list())


# ---------------------------------------------------------------------------- tool conventions

def nvivo_project() -> tuple[bytes, str]:
    """NVivo: GUIDs in braces (upper case), sources/ lower case, CRLF text, positions counted with CRLF."""
    crlf = INTERVIEW.replace("\n", "\r\n")
    sels = [
        selection("n1", INTERVIEW, "She listened to me, really listened.", "Working alliance/Case manager qualities/Good listener",
                  "jd", counted=crlf, coding_created="2024-03-12T14:30:00Z", created="2024-03-12T14:00:00Z"),
        selection("n2", INTERVIEW, "She never judged me for relapsing.", "Working alliance/Case manager qualities/Nonjudgmental",
                  "jd", counted=crlf, coding_created="2024-03-12T10:31:00.1234567-04:00"),
        selection("n3", INTERVIEW, "The bus took two hours each way.", "Barriers to treatment/Transportation",
                  "kl", counted=crlf, created="2024-03-13T09:00:00+01:00"),
    ]
    xml = project_xml(
        style="nvivo",
        users=[{"key": "jd", "id": "JD", "name": "Jane Doe"}, {"key": "kl", "name": "Kim Lee"}],
        codes=CODES, variables=[("record_id", "Text")],
        cases=[("Marigold", "record_id", "TextValue", "1042", ["Interview Marigold"])],
        sources=[{"name": "Interview Marigold", "path": "internal://" + gid("file1", "nvivo") + ".txt",
                  "selections": sels}],
    )
    data = make_qdpx({"project.qde": xml,
                      "sources/" + gid("file1", "nvivo") + ".txt": b"\xef\xbb\xbf" + crlf.encode("utf-8")})
    return data, xml


def test_nvivo_like_crlf_braces_and_case_record_id():
    data, xml = nvivo_project()
    validate_xsd(xml)
    b = read_qdpx(data, "nvivo.qdpx", NOW)
    assert b.units.schema == pl.Schema(UNIT_SCHEMA)
    assert b.quarantine.height == 0
    u = b.units.sort("start_char")
    assert u.height == 3
    for row in u.iter_rows(named=True):
        assert row["text"] == INTERVIEW[row["start_char"]:row["end_char"]]
        assert row["record_id"] == "1042"
        assert row["speaker"] == "Marigold"
        assert row["transcript_kind"] == "interview"
        assert row["transcript_id"] == "Interview Marigold"
    assert u["coder_id"].to_list() == ["JD", "JD", "Kim Lee"]
    assert u["unit_id"][0] == f"{key('sel:n1')}:{key('coding:n1')}"
    assert u["coded_at"].to_list() == [
        datetime(2024, 3, 12, 14, 30, tzinfo=UTC),
        datetime(2024, 3, 12, 14, 31, 0, 123456, tzinfo=UTC),
        datetime(2024, 3, 13, 8, 0, tzinfo=UTC),
    ]
    assert not u["coded_at_from_ingest"].any()
    assert any("CRLF" in w for w in b.warnings)


def test_crlf_file_with_lf_counted_positions_keeps_positions():
    crlf = INTERVIEW.replace("\n", "\r\n")
    sels = [selection(f"l{i}", INTERVIEW, p, "Working alliance/Trust", "jd")
            for i, p in enumerate(["She listened to me, really listened.", "She never judged me for relapsing.",
                                   "The bus took two hours each way."])]
    xml = project_xml(users=[{"key": "jd", "id": "JD"}], codes=CODES,
                      sources=[{"name": "INT-1042-1", "path": "internal://a.txt", "selections": sels}])
    b = read_qdpx(make_qdpx({"project.qde": xml, "sources/a.txt": crlf.encode()}), "x.qdpx", NOW)
    assert b.quarantine.height == 0 and b.units.height == 3
    assert sorted(b.units["text"].to_list()) == sorted(
        ["She listened to me, really listened.", "She never judged me for relapsing.", "The bus took two hours each way."])
    assert b.units["record_id"].unique().to_list() == ["1042"]   # from the INT-<record_id>-<n> name
    assert not any("CRLF" in w for w in b.warnings)


def atlas_project() -> tuple[bytes, bytes]:
    """ATLAS.ti: Sources/ capitalised, timestamps without offset, a picture source alongside."""
    sels = [selection("a1", FOCUS_GROUP, "The bus never came on time.", "Barriers to treatment/Transportation", "u1",
                      coding_created="2024-05-01T10:00:00"),
            selection("a2", FOCUS_GROUP, "People look at you different once they know.", "Barriers to treatment/Stigma",
                      "u2", coding_created="2024-05-01T10:05:00"),
            selection("a3", FOCUS_GROUP, "Facilitator: Welcome", "Working alliance", "u1",
                      coding_created="2024-05-01T10:06:00")]
    xml = project_xml(users=[{"key": "u1", "id": "coder_a", "name": "A"}, {"key": "u2", "id": "coder_b"}],
                      codes=CODES,
                      sources=[{"name": "FG-2", "path": "internal://fg2.txt", "selections": sels,
                                "pictures": ["flipchart"]}])
    return make_qdpx({"project.qde": xml, "Sources/fg2.txt": FOCUS_GROUP.encode()}), xml


def test_atlas_like_focus_group_speakers():
    data, xml = atlas_project()
    validate_xsd(xml)
    b = read_qdpx(data, "atlas.qdpx", NOW)
    assert b.quarantine.height == 0
    u = b.units.sort("start_char")
    assert u["speaker"].to_list() == ["Facilitator", "Orrin", "Tamsin"]
    assert u["record_id"].null_count() == 3
    assert set(u["transcript_kind"]) == {"focus_group"}
    assert u["transcript_id"].unique().to_list() == ["FG-2"]
    assert u["coded_at"][1] == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)  # no offset: UTC
    assert u["coded_at"][2] == datetime(2024, 5, 1, 10, 5, tzinfo=UTC)
    assert any("non-text selection" in w for w in b.warnings)
    assert any("non-text source" in w for w in b.warnings)


def test_maxqda_like_nested_codes_inline_text_integer_case():
    codes = [("Working alliance", [("Case manager qualities", [("Good listener", []), ("Yes/No answers", [])])])]
    sels = [selection("m1", INTERVIEW, "really listened", "Working alliance/Case manager qualities/Good listener",
                      "m", coding_created="2024-01-02T03:04:05+00:00"),
            selection("m2", INTERVIEW, "How did your case manager treat you?",
                      "Working alliance/Case manager qualities/Yes/No answers", "m", created="2024-01-02T03:04:05Z")]
    xml = project_xml(users=[{"key": "m", "name": "MAXQDA user"}], codes=codes,
                      variables=[("Record_ID", "Integer")],
                      cases=[("Case 7", "Record_ID", "IntegerValue", " 1077 ", ["Interview 7"])],
                      sources=[{"name": "Interview 7", "inline": INTERVIEW, "selections": sels}])
    validate_xsd(xml)
    b = read_qdpx(make_qdpx({"project.qde": xml}), "maxqda.qdpx", NOW)
    assert b.quarantine.height == 0
    u = b.units.sort("start_char")
    assert u["code_path"].to_list() == ["Working alliance/Case manager qualities/Yes-No answers",
                                        "Working alliance/Case manager qualities/Good listener"]
    assert u["speaker"].to_list() == ["Interviewer", "Marigold"]
    assert u["record_id"].to_list() == ["1077", "1077"]
    assert u["coder_id"].unique().to_list() == ["MAXQDA user"]
    assert u["text"].to_list() == ["How did your case manager treat you?", "really listened"]


def test_qualcoder_like_names_only_and_missing_timestamps():
    sels = [selection("q1", INTERVIEW, "She never judged me", "Working alliance/Trust", "default",
                      created="2024-06-01T12:00:00+02:00"),
            selection("q2", INTERVIEW, "two hours", "Barriers to treatment/Transportation", "default")]
    xml = project_xml(users=[{"key": "default", "name": "default"}], codes=CODES,
                      sources=[{"name": "INT-1042-2", "path": "internal://1.txt", "selections": sels}])
    validate_xsd(xml)
    b = read_qdpx(make_qdpx({"Project.QDE": xml, "sources/1.txt": INTERVIEW.encode()}), "qc.qdpx", NOW)
    assert b.quarantine.height == 0
    u = b.units.sort("start_char")
    assert u["coder_id"].to_list() == ["default", "default"]
    assert u["coded_at"].to_list() == [datetime(2024, 6, 1, 10, 0, tzinfo=UTC), NOW]
    assert u["coded_at_from_ingest"].to_list() == [False, True]
    assert u["record_id"].to_list() == ["1042", "1042"]


def test_single_qde_with_other_name_and_text_extension_in_source_name():
    sels = [selection("x1", INTERVIEW, "two hours", "Working alliance", "u")]
    xml = project_xml(users=[{"key": "u", "id": "U"}], codes=CODES,
                      sources=[{"name": "INT-2001-1.txt", "path": "internal://t.txt", "selections": sels}])
    b = read_qdpx(make_qdpx({"My Study.qde": xml, "SOURCES/T.TXT": INTERVIEW.encode()}), "x.qdpx", NOW)
    assert b.units["transcript_id"].to_list() == ["INT-2001-1"]
    assert b.units["record_id"].to_list() == ["2001"]


def test_per_selection_problems_are_quarantined():
    text = INTERVIEW
    good = selection("ok", text, "two hours", "Working alliance/Trust", "u")
    unknown_code = selection("uc", text, "two hours", "Working alliance/Trust", "u")
    unknown_code["codings"][0]["raw_code"] = gid("no such code")
    unknown_user = selection("uu", text, "each way", "Working alliance/Trust", "u")
    unknown_user["codings"][0]["raw_user"] = gid("ghost")
    no_user = selection("nu", text, "each way", "Working alliance/Trust", None)
    reversed_ = {**selection("rv", text, "each way", "Working alliance/Trust", "u"), "start": 50, "end": 40}
    junk = {**selection("jk", text, "each way", "Working alliance/Trust", "u"), "start": "1e3"}
    beyond = {**selection("oob", text, "each way", "Working alliance/Trust", "u"), "end": len(text) + 5}
    bad_ts = selection("ts", text, "each way", "Working alliance/Trust", "u", coding_created="12/03/2024 Marigold")
    uncoded = {**selection("nc", text, "each way", "Working alliance/Trust", "u"), "codings": []}
    xml = project_xml(users=[{"key": "u", "id": "U"}], codes=CODES,
                      sources=[{"name": "INT-1042-1", "path": "internal://s.txt",
                                "selections": [good, unknown_code, unknown_user, no_user, reversed_, junk, beyond,
                                               bad_ts, uncoded]}])
    b = read_qdpx(make_qdpx({"project.qde": xml, "sources/s.txt": text.encode()}), "x.qdpx", NOW)
    assert codes_of(b) == ["bad_positions", "bad_positions", "bad_timestamp", "missing_coder",
                           "selection_out_of_range", "unknown_code"]
    assert sorted(b.units["coder_id"].to_list()) == sorted(["U", key("ghost")])
    assert any("user the project does not list" in w for w in b.warnings)
    assert any("carried no coding" in w for w in b.warnings)
    locs = dict(zip(b.quarantine["reason_code"], b.quarantine["location"], strict=False))
    assert locs["unknown_code"] == f"selection {key('sel:uc')} coding {key('coding:uc')}"
    assert locs["selection_out_of_range"] == f"selection {key('sel:oob')}"
    assert_clean(b.quarantine)


def test_duplicate_unit_ids_in_a_project():
    base = selection("d", INTERVIEW, "two hours", "Working alliance/Trust", "u")
    other = selection("d", INTERVIEW, "each way", "Working alliance/Trust", "u")
    same = [selection("s", INTERVIEW, "two hours", "Working alliance/Trust", "u")] * 2
    xml = project_xml(users=[{"key": "u", "id": "U"}], codes=CODES,
                      sources=[{"name": "INT-1-1", "path": "internal://s.txt", "selections": [base, other, *same]}])
    b = read_qdpx(make_qdpx({"project.qde": xml, "sources/s.txt": INTERVIEW.encode()}), "x.qdpx", NOW)
    assert codes_of(b) == ["duplicate_unit_id", "duplicate_unit_id"]
    assert b.units.height == 1
    assert any("identical repeat" in w for w in b.warnings)


def test_source_level_problems():
    sel = lambda n: selection(n, INTERVIEW, "two hours", "Working alliance", "u")  # noqa: E731
    sources = [
        {"name": "INT-1-1", "path": "internal://../../etc/passwd", "selections": [sel("a")]},
        {"name": "INT-1-2", "path": "relative://Marigold.txt", "selections": [sel("b")]},
        {"name": "INT-1-3", "path": "absolute:///home/study/Marigold.txt", "selections": [sel("c")]},
        {"name": "INT-1-4", "path": "internal://missing.txt", "selections": [sel("d")]},
        {"name": "INT-1-5", "path": "internal://bin.txt", "selections": [sel("e")]},
        {"name": "INT-1-6", "selections": [sel("f")]},
        {"name": "INT-1-7", "path": "internal://dup.txt", "selections": [sel("g")]},
        {"name": "INT-1042-8", "path": "internal://ok.txt", "selections": [sel("h")]},
        {"name": "INT-1-9", "path": "internal://ok.txt", "selections": [sel("i")]},
    ]
    xml = project_xml(users=[{"key": "u", "id": "U"}], codes=CODES, variables=[("record_id", "Text")],
                      cases=[("c1", "record_id", "TextValue", "1042", ["INT-1-9"]),
                             ("c2", "record_id", "TextValue", "1077", ["INT-1-9"])],
                      sources=sources)
    data = make_qdpx({"project.qde": xml, "sources/bin.txt": b"\x00\x01Marigold\x00",
                      "sources/dup.txt": b"a", "Sources/dup.txt": b"b", "sources/ok.txt": INTERVIEW.encode()})
    b = read_qdpx(data, "x.qdpx", NOW)
    assert codes_of(b) == sorted(["unsafe_source_path", "external_source", "external_source", "source_file_missing",
                                  "binary_source", "no_source_text", "ambiguous_source_path",
                                  "conflicting_record_id"])
    assert b.units["record_id"].to_list() == ["1042"]
    assert all(loc.startswith("source ") for loc in b.quarantine["location"])
    assert_clean(b.quarantine)


def test_encrypted_members(tmp_path):
    xml = project_xml(users=[{"key": "u", "id": "U"}], codes=CODES,
                      sources=[{"name": "INT-1-1", "path": "internal://s.txt",
                                "selections": [selection("a", INTERVIEW, "two hours", "Working alliance", "u")]}])
    data = set_encrypted(make_qdpx({"project.qde": xml, "sources/s.txt": INTERVIEW.encode()}), "sources/s.txt")
    b = read_qdpx(data, "x.qdpx", NOW)
    assert codes_of(b) == ["encrypted_zip"]
    with pytest.raises(ReadError) as err:
        read_qdpx(set_encrypted(data, "project.qde"), "x.qdpx", NOW)
    assert err.value.code == "encrypted_zip"


def set_encrypted(data: bytes, name: str) -> bytes:
    """Set the 'encrypted' flag of one member in its local and central headers."""
    buf = bytearray(data)
    nb = name.encode()
    for sig, flag_at, name_len_at, name_at in ((b"PK\x03\x04", 6, 26, 30), (b"PK\x01\x02", 8, 28, 46)):
        pos = buf.find(sig)
        while pos >= 0:
            n = struct.unpack_from("<H", buf, pos + name_len_at)[0]
            if bytes(buf[pos + name_at: pos + name_at + n]) == nb:
                struct.pack_into("<H", buf, pos + flag_at, struct.unpack_from("<H", buf, pos + flag_at)[0] | 1)
            pos = buf.find(sig, pos + 4)
    return bytes(buf)


# ---------------------------------------------------------------------------------- hostile input

def minimal_project() -> dict[str, bytes]:
    sels = [selection("a", INTERVIEW, "two hours", "Working alliance", "u")]
    xml = project_xml(users=[{"key": "u", "id": "U"}], codes=CODES,
                      sources=[{"name": "INT-1042-1", "path": "internal://s.txt", "selections": sels}])
    return {"project.qde": xml, "sources/s.txt": INTERVIEW.encode()}


def read_error(data: bytes) -> str:
    with pytest.raises(ReadError) as err:
        read_qdpx(data, "hostile.qdpx", NOW)
    assert err.value.reason.startswith(REASONS[err.value.code])
    for s in SECRETS:
        assert s.lower() not in err.value.reason.lower()
    return err.value.code


def test_zip_slip_entries_are_quarantined_never_extracted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    members = minimal_project()
    members.update({"../evil.txt": b"x", "/etc/cron.d/evil": b"x", "..\\..\\win.txt": b"x",
                    "C:\\Windows\\evil.txt": b"x", "sources/../../up.txt": b"x", "sources\\ok\\..\\..\\..\\x": b"x"})
    data = make_qdpx(members)
    # a symbolic-link entry
    buf = io.BytesIO(data)
    with zipfile.ZipFile(buf, "a") as zf:
        info = zipfile.ZipInfo("sources/link.txt")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    b = read_qdpx(buf.getvalue(), "slip.qdpx", NOW)
    assert codes_of(b) == ["unsafe_zip_path"] * 7
    assert all(re.fullmatch(r"entry #\d+", loc) for loc in b.quarantine["location"])
    assert b.units.height == 1
    assert list(tmp_path.iterdir()) == []
    assert not Path("/tmp/evil.txt").exists()
    assert_clean(b.quarantine)


def test_backslash_separators_inside_the_archive_are_tolerated():
    members = minimal_project()
    members["sources\\s.txt"] = members.pop("sources/s.txt")
    b = read_qdpx(make_qdpx(members), "x.qdpx", NOW)
    assert b.units.height == 1 and b.quarantine.height == 0
    assert any("'\\'" in w for w in b.warnings)


def test_zip_bomb_by_ratio():
    members = minimal_project()
    members["sources/padding.txt"] = bytes(20 * 2**20)  # 20 MB of zeros, ~20 KB compressed
    assert read_error(make_qdpx(members)) == "zip_bomb"


def test_zip_bomb_claiming_huge_size():
    data = bytearray(make_qdpx(minimal_project()))
    # the central directory claims 3 GB for the source text
    for p in [m.start() for m in re.finditer(b"PK\x01\x02", bytes(data))]:
        n = struct.unpack_from("<H", data, p + 28)[0]
        if bytes(data[p + 46:p + 46 + n]) == b"sources/s.txt":
            struct.pack_into("<I", data, p + 24, 3 * 2**30)
    assert read_error(bytes(data)) == "zip_bomb"


def test_zip_member_that_lies_about_its_size_is_not_read_past_its_claim():
    members = minimal_project()
    members["sources/s.txt"] = INTERVIEW.encode() + bytes(5 * 2**20)
    data = bytearray(make_qdpx(members))
    for sig, size_at, name_len_at, name_at in ((b"PK\x03\x04", 22, 26, 30), (b"PK\x01\x02", 24, 28, 46)):
        for p in [m.start() for m in re.finditer(sig, bytes(data))]:
            n = struct.unpack_from("<H", data, p + name_len_at)[0]
            if bytes(data[p + name_at:p + name_at + n]) == b"sources/s.txt":
                struct.pack_into("<I", data, p + size_at, 1000)   # claims 1 000 bytes
    b = read_qdpx(bytes(data), "x.qdpx", NOW)
    assert codes_of(b) == ["corrupt_zip"]   # read stops at the claimed size; CRC then fails


def test_size_caps(monkeypatch):
    monkeypatch.setattr(tr, "MAX_MEMBER_BYTES", 100)
    assert read_error(make_qdpx(minimal_project())) == "zip_bomb"
    monkeypatch.setattr(tr, "MAX_MEMBER_BYTES", 200 * 2**20)
    monkeypatch.setattr(tr, "MAX_TOTAL_BYTES", len(minimal_project()["project.qde"]) + 10)
    assert read_error(make_qdpx(minimal_project())) == "zip_bomb"


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<Project xmlns="urn:QDA-XML:project:1.0" name="&lol3;"/>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE Project [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Project xmlns="urn:QDA-XML:project:1.0" name="&xxe;"/>"""
DTD_ONLY = b"""<?xml version="1.0"?>
<!DOCTYPE Project SYSTEM "http://example.org/evil.dtd">
<Project xmlns="urn:QDA-XML:project:1.0" name="p"/>"""


@pytest.mark.parametrize(("xml", "code"), [
    (BILLION_LAUGHS, "unsafe_xml"),
    (XXE, "unsafe_xml"),
    (DTD_ONLY, "unsafe_xml"),
    (b"<Project xmlns='urn:QDA-XML:project:1.0' name='x'><Sources>", "bad_xml"),
    (b"<Project name='&undefined;'/>", "bad_xml"),
    (b"\x00\x01\x02 not xml", "bad_xml"),
    (b"<Other xmlns='urn:QDA-XML:project:1.0'/>", "not_a_qda_project"),
])
def test_hostile_or_broken_xml(xml, code):
    assert read_error(make_qdpx({"project.qde": xml})) == code


@pytest.mark.parametrize(("data", "code"), [
    (b"", "not_a_zip"),
    (b"Marigold said this is not a zip file at all", "not_a_zip"),
    (make_qdpx(minimal_project())[:200], "not_a_zip"),
    (make_qdpx(minimal_project())[:-30], "not_a_zip"),
    (make_qdpx({"sources/s.txt": b"text", "readme.txt": b"x"}), "no_project_file"),
    (make_qdpx({"sub/project.qde": b"<Project/>"}), "no_project_file"),
    (make_qdpx({"a.qde": b"<Project/>", "b.qde": b"<Project/>"}), "ambiguous_project_file"),
    (make_qdpx({"project.qde": b"<Project/>", "PROJECT.QDE": b"<Project/>"}), "ambiguous_project_file"),
])
def test_unreadable_archives(data, code):
    assert read_error(data) == code


def test_project_without_sources_and_foreign_namespace():
    b = read_qdpx(make_qdpx({"project.qde": b"<Project name='p'/>"}), "x.qdpx", NOW)
    assert b.units.height == 0 and b.units.schema == pl.Schema(UNIT_SCHEMA)
    assert any("namespace" in w for w in b.warnings) and any("no text sources" in w for w in b.warnings)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzzed_archives_never_raise_anything_but_read_error(data):
    base = bytearray(make_qdpx(minimal_project(), compress=data.draw(st.sampled_from([zipfile.ZIP_STORED,
                                                                                       zipfile.ZIP_DEFLATED]))))
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(base) - 1))
        base[i] = data.draw(st.integers(0, 255))
    try:
        b = read_qdpx(bytes(base), "fuzz.qdpx", NOW)
    except ReadError as err:
        assert err.code in REASONS
        return
    assert b.units.schema == pl.Schema(UNIT_SCHEMA)
    assert b.quarantine.schema == pl.Schema(QUARANTINE_SCHEMA)
    for row in b.units.iter_rows(named=True):
        assert len(row["text"]) == row["end_char"] - row["start_char"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzzed_project_xml_never_raises_anything_but_read_error(data):
    members = minimal_project()
    xml = bytearray(members["project.qde"])
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(xml) - 1))
        xml[i:i + 1] = data.draw(st.sampled_from([b"", b"<", b">", b'"', b"&", b"/", b"-", b"0", b"9", b"{", b"\xff",
                                                  b"\x00", b"\r\n", b"]]>", b"x"]))
    members["project.qde"] = bytes(xml)
    members["sources/s.txt"] = data.draw(st.sampled_from([INTERVIEW.encode(), b"", b"\xff\xfe\x00", b"\r\n" * 50]))
    try:
        b = read_qdpx(make_qdpx(members), "fuzz.qdpx", NOW)
    except ReadError as err:
        assert err.code in REASONS
        return
    assert b.units.schema == pl.Schema(UNIT_SCHEMA)
    assert_clean(b.quarantine)


def test_deeply_nested_codebook_does_not_recurse():
    depth = 5000
    opening = "".join(f'<Code guid="{gid(f"deep{i}")}" name="L{i}" isCodable="true">' for i in range(depth))
    xml = (f'<Project xmlns="{NS}" name="p"><Users><User guid="{gid("u")}" id="U"/></Users>'
           f"<CodeBook><Codes>{opening}{'</Code>' * depth}</Codes></CodeBook><Sources>"
           f'<TextSource guid="{gid("s")}" name="INT-5-1"><PlainTextContent>A: hello there</PlainTextContent>'
           f'<PlainTextSelection guid="{gid("sel")}" startPosition="3" endPosition="8" creatingUser="{gid("u")}">'
           f'<Coding guid="{gid("c")}"><CodeRef targetGUID="{gid(f"deep{depth - 1}")}"/></Coding>'
           "</PlainTextSelection></TextSource></Sources></Project>").encode()
    b = read_qdpx(make_qdpx({"project.qde": xml}), "deep.qdpx", NOW)
    assert b.units["text"].to_list() == ["hello"]
    assert b.units["code_path"][0].count("/") == depth - 1
    assert b.units["speaker"].to_list() == ["A"]


WORDS = ["she", "listened", "bus", "program", "two", "hours", "never", "judged", "really", "case", "manager", "a"]


def test_crlf_rule_on_random_transcripts():
    rnd = random.Random(7)
    for trial in range(150):
        lines = []
        for _ in range(rnd.randint(2, 12)):
            who = rnd.choice(["Interviewer", "Marigold"])
            lines.append(f"{who}: " + " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(2, 12))) + ".")
        text = "\n".join(lines) + "\n"
        crlf = text.replace("\n", "\r\n")
        counted_crlf = rnd.random() < 0.5
        counted = crlf if counted_crlf else text
        sels, expect = [], {}
        for k in range(rnd.randint(1, 4)):
            li = rnd.randrange(len(lines))
            words = lines[li].split(": ", 1)[1].rstrip(".").split(" ")
            a = rnd.randrange(len(words))
            b = rnd.randint(a + 1, len(words))
            phrase = " ".join(words[a:b])
            line_start = sum(len(x) + 1 for x in lines[:li])
            start = line_start + len(lines[li].split(": ", 1)[0]) + 2 + sum(len(w) + 1 for w in words[:a])
            s = start + (li if counted_crlf else 0)
            assert counted[s:s + len(phrase)] == phrase
            name = f"t{trial}-{k}"
            sels.append({"name": name, "start": s, "end": s + len(phrase), "user": "u",
                         "codings": [{"name": name, "code": "Working alliance", "user": "u"}]})
            expect[f"{key('sel:' + name)}:{key('coding:' + name)}"] = (start, phrase)
        xml = project_xml(users=[{"key": "u", "id": "U"}], codes=CODES,
                          sources=[{"name": "INT-1-1", "path": "internal://s.txt", "selections": sels}])
        out = read_qdpx(make_qdpx({"project.qde": xml, "sources/s.txt": crlf.encode()}), "x.qdpx", NOW)
        assert out.quarantine.height == 0
        for uid, s, e, t in out.units.select("unit_id", "start_char", "end_char", "text").iter_rows():
            assert t == text[s:e] == expect[uid][1] and s == expect[uid][0], (trial, counted_crlf)


# ------------------------------------------------------------------------------- generator output

@pytest.mark.parametrize("seed", [3, 1])
def test_generated_study_reads_cleanly(tmp_path, seed):
    from ingestion.synth import generate_study

    generate_study(tmp_path, 200, seed=seed)
    folder = tmp_path / "transcripts"
    pairs, pq = read_pseudonyms((folder / "pseudonyms.csv").read_bytes())
    assert pq.height == 0 and pairs.height > 0
    rid_of = dict(zip(pairs["pseudonym"], pairs["record_id"], strict=True))
    staff = {"Interviewer", "Facilitator"}
    kinds = set()
    for path in sorted(folder.glob("*.qdpx")):
        data = path.read_bytes()
        b = read_qdpx(data, path.name, NOW)
        assert b.quarantine.height == 0 and b.warnings == []
        zf = zipfile.ZipFile(io.BytesIO(data))
        root = ET.fromstring(zf.read("project.qde"))
        src_text = {s.get("name"): decode_text(zf.read("sources/" + s.get("plainTextPath").split("//")[1]))
                    for s in root.iter(q("TextSource"))}
        assert b.units.height == sum(1 for _ in root.iter(q("Coding")))
        for row in b.units.iter_rows(named=True):
            assert row["text"] == src_text[row["transcript_id"]][row["start_char"]:row["end_char"]]
            assert row["speaker"] in staff or row["speaker"] in rid_of
            kinds.add(row["transcript_kind"])
            if row["transcript_kind"] == "interview":
                assert row["record_id"] == row["transcript_id"].split("-")[1]
                assert row["record_id"] in set(rid_of.values())
                if row["speaker"] not in staff:
                    assert rid_of[row["speaker"]] == row["record_id"]
            else:
                assert row["record_id"] is None
        assert not b.units["coded_at_from_ingest"].any()
    for path in sorted(folder.glob("coded_units_*.csv")):
        b = read_units_csv(path.read_bytes(), path.name, NOW)
        assert b.quarantine.height == 0 and b.warnings == []
        assert b.units.height == pl.read_csv(path, infer_schema=False).height
        for row in b.units.iter_rows(named=True):
            assert len(row["text"]) == row["end_char"] - row["start_char"]
            assert row["speaker"] in staff or rid_of[row["speaker"]] == row["record_id"]
            kinds.add(row["transcript_kind"])
    assert kinds == {"interview", "focus_group"}


# ---------------------------------------------------------------------------------------- CSV

HEADER = "unit_id,transcript_id,transcript_kind,record_id,speaker,coder_id,code_path,start_char,end_char,text,coded_at\n"


def test_csv_rows_each_bad_case():
    rows = [
        'CU-1,INT-1042-1,interview,1042,Marigold,coder_a,Working alliance / Trust,10,18,listened,2024-03-12T09:30:00-04:00',
        ',INT-1042-1,interview,1042,Marigold,coder_a,Trust,10,18,listened,',
        'CU-3, ,interview,1042,Marigold,coder_a,Trust,10,18,listened,',
        'CU-4,INT-1042-1,interview,1042,Marigold,,Trust,10,18,listened,',
        'CU-5,INT-1042-1,interview,1042,Marigold,coder_a,  ,10,18,listened,',
        'CU-6,INT-1042-1,Marigold,1042,Marigold,coder_a,Trust,10,18,listened,',
        'CU-7,INT-1042-1,interview,1042,Marigold,coder_a,Trust,ten,18,listened,',
        'CU-8,INT-1042-1,interview,1042,Marigold,coder_a,Trust,-2,6,listened,',
        'CU-9,INT-1042-1,interview,1042,Marigold,coder_a,Trust,18,18,,',
        'CU-10,INT-1042-1,interview,1042,Marigold,coder_a,Trust,10,20,listened,',
        'CU-11,INT-1042-1,interview,1042,Marigold,coder_a,Trust,10,18,listened,12 March 2024 Marigold',
        'CU-12,FG-1,focus_group,1077,Tamsin,coder_b,Trust,0,3,bus,2024-03-12',
        'CU-13,FG-1,Focus_Group ,1077,Tamsin,coder_b,Trust,0,3,bus,2024-03-12 10:00',
        'CU-14,FG-1,focus_group,1077,Tamsin,coder_b,Trust,0,3,bus,2024-03-12T10:00:00Z',
        'CU-14,FG-1,focus_group,1077,Tamsin,coder_b,Stigma,0,3,bus,2024-03-12T10:00:00Z',
        'CU-15,FG-1,focus_group,,Facilitator,coder_b,Trust,0,3,bus,2024-03-12T10:00:00Z',
        'CU-15,FG-1,focus_group,,Facilitator,coder_b,Trust,0,3,bus,2024-03-12T10:00:00Z',
        'CU-16,INT-1042-1,interview,1042,Marigold,coder_a,Trust,10,20,"liste\nned",2024-03-12T09:30:00Z',
        'CU-14,FG-1,focus_group,1077,Tamsin,coder_c,Trust,1,4,bus,2024-03-12T10:00:00Z',     # other span
        'CU-14,FG-1,focus_group,1077,Tamsin,coder_b,Stigma,0,3,bus,2024-03-13T10:00:00Z',    # key again, other time
        'CU-14,FG-1,focus_group,1077,Tamsin,coder_c,Trust,0,3,bus,2024-03-12T10:00:00Z',     # a third row of CU-14
        'CU-14.txt,INT-1042-1.TXT,interview,1042,Marigold,coder_a,Trust,10,18,listened,',
    ]
    b = read_units_csv((HEADER + "\n".join(rows) + "\n").encode(), "coded_units.csv", NOW)
    got = dict(zip(b.quarantine["location"], b.quarantine["reason_code"], strict=True))
    assert got == {
        "row 2": "missing_unit_id", "row 3": "missing_transcript_id", "row 4": "missing_coder_id",
        "row 5": "missing_code_path", "row 6": "bad_transcript_kind", "row 7": "bad_positions",
        "row 8": "bad_positions", "row 9": "bad_positions", "row 10": "text_length_mismatch",
        "row 11": "bad_timestamp", "row 12": "bad_timestamp",
        "row 19": "unit_mismatch", "row 20": "conflicting_repeat",
    }
    assert_clean(b.quarantine)
    u = b.units
    # CU-14 is one span coded three times (Trust and Stigma by coder_b, Trust by coder_c); the
    # second CU-15 row repeats the first exactly and is one row.
    assert u.select("unit_id", "coder_id", "code_path").rows() == [
        ("CU-1", "coder_a", "Working alliance/Trust"), ("CU-13", "coder_b", "Trust"), ("CU-14", "coder_b", "Trust"),
        ("CU-14", "coder_b", "Stigma"), ("CU-15", "coder_b", "Trust"), ("CU-16", "coder_a", "Trust"),
        ("CU-14", "coder_c", "Trust"), ("CU-14.txt", "coder_a", "Trust")]
    assert u["location"].to_list() == ["row 1", "row 13", "row 14", "row 15", "row 16", "row 18", "row 21", "row 22"]
    assert u["transcript_id"][-1] == "INT-1042-1"   # a text-file extension is dropped, as from a QDPX source name
    assert u["code_path"][0] == "Working alliance/Trust"
    assert u["coded_at"][0] == datetime(2024, 3, 12, 13, 30, tzinfo=UTC)
    assert u["transcript_kind"][1] == "focus_group"
    assert u["coded_at"][1] == datetime(2024, 3, 12, 10, 0, tzinfo=UTC)
    assert u["record_id"][4] is None
    assert any("1 identical repeat" in w for w in b.warnings)
    assert any("CRLF" in w for w in b.warnings)   # CU-16 counts its line break as two characters
    assert u.schema == pl.Schema(UNIT_SCHEMA)


def test_csv_blank_coded_at_takes_ingest_time_and_crlf_file():
    body = HEADER + "CU-1,INT-1-1,interview,1,Marigold,c,Trust,0,3,bus,\n"
    b = read_units_csv(body.replace("\n", "\r\n").encode("cp1252"), "x.csv", NOW)
    assert b.units["coded_at"].to_list() == [NOW]
    assert b.units["coded_at_from_ingest"].to_list() == [True]


def test_csv_missing_columns_and_extra_columns():
    with pytest.raises(ReadError) as err:
        read_units_csv(b"unit_id,transcript_id,text\nCU-1,INT-1,hello\n", "x.csv", NOW)
    assert err.value.code == "missing_columns"
    assert "coder_id" in err.value.reason and "hello" not in err.value.reason
    b = read_units_csv((HEADER.rstrip("\n") + ",notes\n" + "CU-1,INT-1-1,interview,1,M,c,T,0,3,bus,,Marigold\n")
                       .encode(), "x.csv", NOW)
    assert b.units.height == 1 and "notes" not in b.units.columns
    assert any("not define" in w for w in b.warnings)
    with pytest.raises(ReadError):
        read_units_csv(b"", "x.csv", NOW)



@pytest.mark.parametrize(("fields", "code"), [
    ({"unit_id": "  "}, "missing_unit_id"),
    ({"start_char": "1.5"}, "bad_positions"),
    ({"start_char": "1e3"}, "bad_positions"),
    ({"end_char": "Marigold"}, "bad_positions"),
    ({"start_char": "9999999999999999999"}, "bad_positions"),
    ({"start_char": "18", "end_char": "10"}, "bad_positions"),   # end before start
    ({"transcript_kind": "Marigold group"}, "bad_transcript_kind"),
    ({"transcript_kind": ""}, "bad_transcript_kind"),
    ({"text": "Marigold!"}, "text_length_mismatch"),
])
def test_csv_bad_rows_get_one_line_reasons_without_values(fields, code):
    good = {"unit_id": "CU-1", "transcript_id": "INT-1042-1", "transcript_kind": "interview", "record_id": "1042",
            "speaker": "Marigold", "coder_id": "coder_a", "code_path": "Trust", "start_char": "10", "end_char": "18",
            "text": "listened", "coded_at": ""}
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(good), lineterminator="\n")
    w.writeheader()
    w.writerows([good, {**good, "coder_id": "coder_b", **fields}])
    b = read_units_csv(buf.getvalue().encode(), "x.csv", NOW)
    assert b.quarantine.rows() == [("row 2", code, REASONS[code])]
    assert "\n" not in REASONS[code]
    assert_clean(b.quarantine)
    assert b.units.select("unit_id", "coder_id").rows() == [("CU-1", "coder_a")]



def test_csv_positions_count_unicode_code_points():
    # "café 👍 ok": c a f é (4, é one code point) + space + 👍 (one code point, two UTF-16 units)
    # + space + o k = 9 code points. A tool counting UTF-16 units gives 10: the length check fails.
    text = "caf\u00e9 \U0001F44D ok"
    assert len(text) == 9
    body = HEADER + f"CU-1,INT-1-1,interview,1,,c,Trust,3,12,{text},\nCU-2,INT-1-1,interview,1,,c,Trust,3,13,{text},\n"
    b = read_units_csv(body.encode(), "x.csv", NOW)
    assert b.units.select("unit_id", "start_char", "end_char", "text").rows() == [("CU-1", 3, 12, text)]
    assert b.quarantine.rows() == [("row 2", "text_length_mismatch", REASONS["text_length_mismatch"])]

@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(*[st.sampled_from(v) for v in (
    ["U1", "U2", "", " U1 "], ["INT-1-1", "INT-1-1.txt", "FG-2", ""], ["interview", "focus_group", "FG", ""],
    ["1", ""], ["Marigold", ""], ["ann", "bob", ""], ["X", "X / Y", ""], ["0", "2", "x", "-1", "3.0"],
    ["3", "5", "", "99999999999999999999"], ["bus", "us", "b\nus", ""], ["", "2024-03-12T10:00:00Z", "junk"])]),
    min_size=1, max_size=12))
def test_fuzzed_csv_rows_never_raise_and_every_row_is_accounted_for(rows):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER.strip().split(","))
    w.writerows(rows)
    b = read_units_csv(buf.getvalue().encode(), "fuzz.csv", NOW)
    assert b.units.schema == pl.Schema(UNIT_SCHEMA)
    assert_clean(b.quarantine)
    # every row is kept, quarantined, or an exact repeat of a kept row (collapsed)
    repeats = sum(int(m.group(1)) for w_ in b.warnings if (m := re.match(r"(\d+) identical repeat", w_)))
    assert b.units.height + b.quarantine.height + repeats == len(rows)
    assert b.units.select("unit_id", "coder_id", "code_path").is_unique().all()
    spans = b.units.group_by("unit_id").agg(pl.struct("transcript_id", "start_char", "end_char", "text").n_unique())
    assert (spans["transcript_id"] == 1).all()


# ---------------------------------------------------------------------------- CSV rows in the store

def _ingest_csv(wh, name: str, rows: list[list]):
    from conftest import land

    from ingestion.ingest import ingest_landing

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER.strip().split(","))
    w.writerows(rows)
    land(wh, "transcripts", name, buf.getvalue())
    return {o.file_name: o for o in ingest_landing(wh).outcomes}


def _held(wh, sql: str) -> list[tuple]:
    from conftest import vault_rows

    return vault_rows(wh, sql)


def test_csv_rows_in_later_files_append_nothing_new_and_conflicts_are_quarantined(wh):
    t = "the bus never came"
    at = "2025-06-30T12:00:00Z"

    def r(u, coder, code, s, e, when=at):
        return [u, "INT-1-1", "interview", "1", "", coder, code, s, e, t[s:e], when]

    first = [r("U1", "ann", "X", 0, 7), r("U1", "bob", "X", 0, 7, ""), r("U2", "ann", "Y", 8, 18)]
    out = _ingest_csv(wh, "a.csv", first)["a.csv"]
    assert (out.events_appended, out.duplicates, out.rows_quarantined) == (3, 0, 0)
    # the same file again: nothing read (the same bytes)
    assert _ingest_csv(wh, "a.csv", first) == {}
    # a later file repeating the three rows (bob's still without coded_at: the ingest time does not
    # make it new) and adding two: only those two are appended
    out = _ingest_csv(wh, "b.csv", [*first, r("U1", "ann", "Y", 0, 7), r("U3", "bob", "Y", 12, 18)])["b.csv"]
    assert (out.events_appended, out.duplicates, out.rows_quarantined) == (2, 3, 0)
    # a later file repeating a key with other content (another coded_at): a conflict; a row of U2
    # over other characters than U2 as held: held_unit_mismatch; a new coder on U3: appended
    out = _ingest_csv(wh, "c.csv", [r("U1", "ann", "X", 0, 7, "2025-07-01T12:00:00Z"), r("U2", "bob", "Y", 9, 18),
                                    r("U3", "cid", "Y", 12, 18)])["c.csv"]
    assert (out.events_appended, out.duplicates) == (1, 0)
    assert out.reasons == {"conflicting_event_id": 1, "held_unit_mismatch": 1}
    assert _held(wh, "select location, reason from events.quarantine where reason_code = 'held_unit_mismatch'") \
        == [("row 2", REASONS["held_unit_mismatch"])]
    assert _held(wh, "select count(*), count(distinct (payload->>'unit_id', payload->>'coder_id', "
                     "payload->>'code_path')) from events.events where event_type = 'coded_unit_recorded'") == [(6, 6)]
    # a unit's text and speaker are stored once, however many rows it has
    assert _held(wh, "select unit_id, count(*) from identified.transcript_units group by 1 order by 1") \
        == [("U1", 1), ("U2", 1), ("U3", 1)]

# -------------------------------------------------------------------------------- pseudonyms

def test_pseudonyms():
    data = (
        b"record_id,pseudonym\n"
        b" 1042 , Marigold \n"
        b"1042,Marigold\n"
        b"1077,\n"
        b",Orrin\n"
        b"1100,Tamsin\n"
        b"1100,Wren\n"
        b"1200,Juniper\n"
        b"1201,juniper\n"
        b"1300,Sable\n"
    )
    pairs, bad = read_pseudonyms(data)
    assert pairs.rows() == [("1042", "Marigold"), ("1300", "Sable")]
    assert dict(zip(bad["location"], bad["reason_code"], strict=True)) == {
        "row 3": "missing_pseudonym", "row 4": "missing_record_id", "row 5": "conflicting_pseudonym",
        "row 6": "conflicting_pseudonym", "row 7": "shared_pseudonym", "row 8": "shared_pseudonym",
    }
    assert_clean(bad, SECRETS + ("Wren", "Juniper", "1100", "1200"))
    with pytest.raises(ReadError) as err:
        read_pseudonyms(b"record_id,name\n1,x\n")
    assert err.value.code == "missing_columns"


def test_utf16_source_and_interview_without_record_id():
    sels = [selection("w1", INTERVIEW, "two hours", "Working alliance", "u")]
    xml = project_xml(users=[{"key": "u", "id": "U"}], codes=CODES,
                      sources=[{"name": "Interview nine", "path": "internal://w.txt", "selections": sels}])
    data = make_qdpx({"project.qde": xml, "sources/w.txt": INTERVIEW.replace("\n", "\r\n").encode("utf-16")})
    b = read_qdpx(data, "x.qdpx", datetime(2026, 1, 15, 7, 0))   # naive ingest time: taken as UTC
    assert b.quarantine.height == 0
    assert b.units["text"].to_list() == ["two hours"] and b.units["record_id"].to_list() == [None]
    assert b.units["coded_at"].to_list() == [datetime(2026, 1, 15, 7, 0, tzinfo=UTC)]
    assert any("have no record_id" in w for w in b.warnings)
