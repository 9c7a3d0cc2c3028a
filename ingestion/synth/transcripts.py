"""Qualitative interviews and focus groups: transcripts, coded units, REFI-QDA export.

A Python loop per transcript is fine here: a qualitative sub-study has at most a few
hundred transcripts (capped, whatever the size of the trial).
"""

from __future__ import annotations

import csv
import io
import random
import uuid
import zipfile
from dataclasses import dataclass, field
from xml.etree import ElementTree as ET

import numpy as np
import polars as pl

from . import names
from .calendar import STUDY_END, business_days, day_date, day_number, iso_local, local_expr
from .textbank import (
    CODEBOOK,
    FG_OPENERS,
    FILLER_INTERVIEWER,
    FILLER_PARTICIPANT,
    QUESTIONS,
    UTTERANCES,
    code_paths,
)

QDA_NS = "urn:QDA-XML:project:1.0"
CODERS: tuple[tuple[str, str], ...] = (("coder_a", "Coder A"), ("coder_b", "Coder B"), ("coder_c", "Coder C"))
UNIT_COLUMNS = ("unit_id", "transcript_id", "transcript_kind", "record_id", "speaker", "coder_id", "code_path",
                "start_char", "end_char", "text", "coded_at")
MAX_INTERVIEWS = 400
MAX_FOCUS_GROUPS = 40


@dataclass
class Unit:
    coder: str
    code_path: str
    start: int
    end: int
    speaker: str
    record_id: str
    minute: int = 0       # minute of the coding day (local)
    unit_id: str = ""
    coded_at: str = ""


@dataclass
class Transcript:
    tid: str
    kind: str                      # interview | focus_group
    coding_day: int
    event_day: int
    members: list[tuple[str, str]]  # (pseudonym, record_id)
    text: str = ""
    form: str = "csv"              # csv | qdpx
    units: list[Unit] = field(default_factory=list)


def guid(seed: int, *parts: object) -> str:
    """A deterministic GUID (uuid5) from the seed and a name."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"alliance-synth:{seed}:" + ":".join(map(str, parts))))


def pseudonym_list(k: int, rng: np.random.Generator) -> list[str]:
    base = [names.PSEUDONYMS[i] for i in rng.permutation(len(names.PSEUDONYMS))]
    out = list(base)
    letters = "ABCDEFGHJKLMNPRSTVW"
    for letter in letters:
        if len(out) >= k:
            break
        out.extend(f"{p} {letter}." for p in base)
    return out[:k]


class _Builder:
    """Builds one transcript's text, remembering where each coded passage lies."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.pos = 0
        # (start, end, code, speaker, content_start, line_end, forced)
        self.truth: list[tuple[int, int, str, str, int, int, bool]] = []
        self.used: set[str] = set()

    def say(self, leaf: str, rnd: random.Random) -> tuple[str, str]:
        """A participant utterance coded with ``leaf``, not yet used in this transcript."""
        options = [u for u in UTTERANCES[leaf] if u not in self.used] or list(UTTERANCES[leaf])
        text = rnd.choice(options)
        self.used.add(text)
        return text, leaf

    def turn(self, speaker: str, parts: list[tuple[str, str | None]], forced: bool = False) -> None:
        prefix = f"{speaker}: "
        content_start = self.pos + len(prefix)
        cur = content_start
        pieces: list[str] = []
        spans = []
        for text, code in parts:
            if pieces:
                cur += 1
            if code:
                spans.append((cur, cur + len(text), code))
            pieces.append(text)
            cur += len(text)
        line = prefix + " ".join(pieces)
        line_end = self.pos + len(line)
        for s, e, code in spans:
            self.truth.append((s, e, code, speaker, content_start, line_end, forced))
        self.lines.append(line)
        self.pos = line_end + 1

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _leaf_in(theme: str, rnd: random.Random) -> str:
    leaves = [p for p in UTTERANCES if p.startswith(theme + "/")]
    return rnd.choice(leaves)


def _interview_text(rnd: random.Random, pseudo: str, phone_slip: str | None, surname: str | None,
                    title: str) -> _Builder:
    b = _Builder()
    b.turn("Interviewer", [("Thanks for sitting down with me. This is being recorded, like we talked about — "
                            "is that still okay with you?", None)])
    b.turn(pseudo, [(rnd.choice(["Yeah, that's fine.", "Sure, go ahead.", "Yeah. No problem."]), None)])
    themes = list(QUESTIONS)
    rnd.shuffle(themes)
    exchanges = 0
    for theme in themes:
        for question in rnd.sample(QUESTIONS[theme], rnd.randint(1, 3)):
            b.turn("Interviewer", [(question, None)])
            parts: list[tuple[str, str | None]] = []
            if rnd.random() < 0.25:
                parts.append((rnd.choice(FILLER_PARTICIPANT), None))
            parts.append(b.say(_leaf_in(theme, rnd), rnd))
            if rnd.random() < 0.4:
                parts.append(b.say(_leaf_in(rnd.choice(themes), rnd), rnd))
            b.turn(pseudo, parts)
            if rnd.random() < 0.35:
                b.turn("Interviewer", [(rnd.choice(FILLER_INTERVIEWER), None)])
                b.turn(pseudo, [b.say(_leaf_in(theme, rnd), rnd)])
            exchanges += 1
            if exchanges == 3 and phone_slip:
                b.turn("Interviewer", [(f"Before I forget — if anything comes up with the program, you can "
                                        f"reach me directly at {phone_slip}.", "Working alliance/Trust")],
                       forced=True)
                b.turn(pseudo, [("Okay, I'll write that down.", None)])
            if exchanges == 4 and surname:
                b.turn("Interviewer", [("How did the staff at the program treat you?", None)])
                b.turn(pseudo, [(f"At the clinic they kept calling me {title} {surname} out loud in the "
                                 f"waiting room, in front of everybody.", "Barriers to treatment/Stigma")],
                       forced=True)
    b.turn("Interviewer", [("Is there anything else you want to tell me that I didn't ask about?", None)])
    b.turn(pseudo, [(rnd.choice(["No, I think that's it. Thanks for listening.",
                                 "Just that the program should keep doing this. It helped.",
                                 "No. I'm good."]), None)])
    return b


def _focus_group_text(rnd: random.Random, members: list[str]) -> _Builder:
    b = _Builder()
    for line in FG_OPENERS:
        b.turn("Facilitator", [(line, None)])
    for m in members:
        b.turn(m, [(rnd.choice([f"Hi, I'm {m}.", f"{m}. Hey everybody.", f"I'm {m}, I guess."]), None)])
    themes = list(QUESTIONS)
    rnd.shuffle(themes)
    for theme in themes:
        b.turn("Facilitator", [(rnd.choice(QUESTIONS[theme]), None)])
        for m in rnd.sample(members, rnd.randint(2, min(4, len(members)))):
            if rnd.random() < 0.2:
                b.turn(m, [(rnd.choice(["Yeah, same here.", "I feel that.", "That's real."]), None)])
                continue
            b.turn(m, [b.say(_leaf_in(theme, rnd), rnd)])
    b.turn("Facilitator", [("Thank you all. This was really helpful.", None)])
    return b


def _sibling(path: str, rnd: random.Random) -> str:
    parent = path.rsplit("/", 1)[0]
    sibs = [p for p in UTTERANCES if p.rsplit("/", 1)[0] == parent and p != path]
    if not sibs:
        top = path.split("/", 1)[0]
        sibs = [p for p in UTTERANCES if p.startswith(top + "/") and p != path]
    return rnd.choice(sibs)


def _code(b: _Builder, rnd: random.Random, primary: str, secondary: str | None,
          speaker_rid: dict[str, str]) -> list[Unit]:
    text = b.text()
    units: list[Unit] = []
    for s, e, code, speaker, c0, c1, forced in b.truth:
        rid = speaker_rid.get(speaker, "")
        if forced or rnd.random() < 0.92:
            if not forced and rnd.random() < 0.15:
                s1, e1 = c0, c1
            else:
                s1, e1 = s, e
            units.append(Unit(primary, code, s1, e1, speaker, rid))
            if not forced and rnd.random() < 0.1:
                units.append(Unit(primary, code.split("/", 1)[0], c0, c1, speaker, rid))
        if secondary and rnd.random() < 0.8:
            r = rnd.random()
            code2 = code if r < 0.78 else (_sibling(code, rnd) if r < 0.92 else code.rsplit("/", 1)[0])
            s2 = min(max(c0, s + rnd.randint(-12, 12)), c1 - 1)
            e2 = max(min(c1, e + rnd.randint(-12, 12)), s2 + 1)
            while s2 > c0 and text[s2 - 1] != " ":  # coders select whole words
                s2 -= 1
            while s2 < e2 - 1 and text[s2] == " ":
                s2 += 1
            while e2 < c1 and text[e2] != " ":
                e2 += 1
            while e2 > s2 + 1 and text[e2 - 1] == " ":
                e2 -= 1
            if e2 - s2 < 8:
                s2, e2 = s, e
            units.append(Unit(secondary, code2, s2, e2, speaker, rid))
    units.sort(key=lambda u: (u.coder, u.start, u.end, u.code_path))
    minute = {primary: 9 * 60 + 30, secondary: 13 * 60 + 30}
    for u in units:
        u.minute = minute[u.coder]
        minute[u.coder] += 2
    return units


def build_transcripts(people: pl.DataFrame, seed: int) -> list[Transcript]:
    """Select interviewees and focus groups, write their transcripts and code them."""
    rng = np.random.default_rng([seed, 5])
    end = day_number(STUDY_END)
    p = people.filter((pl.col("rand_day") >= 0) & (pl.col("rand_day") <= end - 100))
    n_rand = int((people["rand_day"] >= 0).sum())
    if p.height == 0:
        return []
    idx = p["idx"].to_numpy()
    audio = p["consent_audio"].to_numpy() == 1
    rand = p["rand_day"].to_numpy()
    with_audio = idx[audio]
    n_int = int(min(max(round(0.065 * n_rand), 3), MAX_INTERVIEWS, len(with_audio)))
    chosen = rng.choice(with_audio, size=n_int, replace=False) if n_int else np.array([], np.int64)
    no_audio = idx[~audio]
    n_na = min(2 if n_int >= 30 else 1, len(no_audio))
    chosen_na = rng.choice(no_audio, size=n_na, replace=False) if n_na else np.array([], np.int64)
    interviewees = np.sort(np.concatenate([chosen, chosen_na]))
    remaining = np.setdiff1d(with_audio, interviewees)
    n_fg = int(min(max(n_int // 20, 1), MAX_FOCUS_GROUPS))
    sizes = rng.integers(4, 7, n_fg)
    if sizes.sum() > len(remaining):
        n_fg = max(0, len(remaining) // 4)
        sizes = np.full(n_fg, 4)
    fg_members = rng.choice(remaining, size=int(sizes.sum()), replace=False) if n_fg else np.array([], np.int64)
    pseudo = pseudonym_list(len(interviewees) + len(fg_members), rng)
    bdays = business_days(day_date(0), STUDY_END)
    lookup = people.select("idx", "record_id", "last_name", "sex", "phone_area").to_dict(as_series=False)
    rand_of = dict(zip(idx.tolist(), rand.tolist(), strict=True))

    out: list[Transcript] = []
    for k, pid in enumerate(interviewees.tolist()):
        iday = int(rand_of[pid] + rng.integers(75, 111))
        iday = int(bdays[np.searchsorted(bdays, iday)]) if iday <= bdays[-1] else iday
        cday = iday + int(rng.integers(10, 46))
        t = Transcript(f"INT-{lookup['record_id'][pid]}-1", "interview", cday, iday,
                       [(pseudo[k], lookup["record_id"][pid])])
        out.append(t)
    fg_first = int(rand.min()) + 60
    pos = len(interviewees)
    for g in range(n_fg):
        members = fg_members[int(sizes[:g].sum()): int(sizes[: g + 1].sum())].tolist()
        last_rand = max(rand_of[m] for m in members)
        fday = int(max(fg_first, last_rand + 30) + rng.integers(0, 60))
        cday = fday + int(rng.integers(14, 51))
        t = Transcript(f"FG-{g + 1}", "focus_group", cday, fday,
                       [(pseudo[pos + i], lookup["record_id"][m]) for i, m in enumerate(members)])
        pos += len(members)
        out.append(t)
    # the last transcript to be coded is coded on the study's last day (arrives on the last night)
    delivered = [t for t in out if t.event_day <= end - 2]
    if delivered:
        last = max(delivered, key=lambda t: (min(t.coding_day, end + 10_000), t.tid))
        if last.coding_day > end:
            last = max(delivered, key=lambda t: (t.event_day, t.tid))
        last.coding_day = end
    out = [t for t in out if t.coding_day <= end]
    out.sort(key=lambda t: (t.coding_day, t.kind, t.tid))

    # fault injection targets: interviews of participants who consented to audio
    rid_to_pid = {lookup["record_id"][i]: i for i in interviewees.tolist() + fg_members.tolist()}
    audio_rids = set(people.filter(pl.col("consent_audio") == 1)["record_id"].to_list())
    ints = [t for t in out if t.kind == "interview" and t.members[0][1] in audio_rids]
    phone_tid = ints[0].tid if ints else None
    surname_tid = ints[1].tid if len(ints) > 1 else (ints[0].tid if ints else None)

    forms = rng.random(len(out)) < 0.5
    if len(out) >= 2:
        forms[0], forms[1] = True, False
    coders = [c for c, _ in CODERS]
    unit_no = 0
    for i, t in enumerate(out):
        rnd = random.Random(seed * 1_000_003 + i)
        t.form = "qdpx" if forms[i] else "csv"
        if t.kind == "interview":
            name, rid = t.members[0]
            pid = rid_to_pid[rid]
            phone = f"({lookup['phone_area'][pid]}) 555-01{rnd.randint(10, 99)}" if t.tid == phone_tid else None
            surname = lookup["last_name"][pid] if t.tid == surname_tid else None
            title = "Ms." if lookup["sex"][pid] == 2 else "Mr."
            b = _interview_text(rnd, name, phone, surname, title)
        else:
            b = _focus_group_text(rnd, [m for m, _ in t.members])
        t.text = b.text()
        primary = coders[0] if rnd.random() < 0.55 else coders[1] if rnd.random() < 0.8 else coders[2]
        secondary = None
        if rnd.random() < 0.4 or i < 2:
            secondary = rnd.choice([c for c in coders if c != primary])
        t.units = _code(b, rnd, primary, secondary, {m: r for m, r in t.members})
        for u in t.units:
            unit_no += 1
            u.unit_id = f"CU-{unit_no:06d}"
    _stamp(out)
    return out


def _stamp(ts: list[Transcript]) -> None:
    """coded_at: ISO-8601 with the site's offset (DST-correct), computed in one batch."""
    days = [t.coding_day for t in ts for _ in t.units]
    mins = [u.minute for t in ts for u in t.units]
    if not days:
        return
    iso = pl.DataFrame({"d": days, "m": mins}).select(iso_local(local_expr("d", "m")))
    it = iter(iso.to_series().to_list())
    for t in ts:
        for u in t.units:
            u.coded_at = next(it)


def coded_units_csv(ts: list[Transcript]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(UNIT_COLUMNS)
    for t in ts:
        for u in t.units:
            w.writerow([u.unit_id, t.tid, t.kind, u.record_id, u.speaker, u.coder, u.code_path,
                        u.start, u.end, t.text[u.start:u.end], u.coded_at])
    return buf.getvalue().encode("utf-8")


def pseudonyms_csv(ts: list[Transcript]) -> bytes:
    pairs = sorted({(int(r), p) for t in ts for p, r in t.members})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["record_id", "pseudonym"])
    w.writerows([str(r), p] for r, p in pairs)
    return buf.getvalue().encode("utf-8")


def _code_elements(parent: ET.Element, seed: int) -> None:
    codes = ET.SubElement(parent, "Codes")
    palette = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")
    for ti, (top, subs) in enumerate(CODEBOOK.items()):
        te = ET.SubElement(codes, "Code", guid=guid(seed, "code", top), name=top, isCodable="true",
                           color=palette[ti % len(palette)])
        for sub, leaves in subs.items():
            se = ET.SubElement(te, "Code", guid=guid(seed, "code", f"{top}/{sub}"), name=sub, isCodable="true")
            for leaf in leaves:
                ET.SubElement(se, "Code", guid=guid(seed, "code", f"{top}/{sub}/{leaf}"), name=leaf,
                              isCodable="true")


def qdpx_bytes(ts: list[Transcript], seed: int, export_iso: str) -> bytes:
    """A REFI-QDA project (QDA-XML 1.0) holding these transcripts and their codings."""
    ET.register_namespace("", QDA_NS)
    q = lambda tag: f"{{{QDA_NS}}}{tag}"  # noqa: E731
    user_guid = {cid: guid(seed, "user", cid) for cid, _ in CODERS}
    root = ET.Element(q("Project"), name="Alliance trial qualitative substudy", origin="alliance-wh synth",
                      creatingUserGUID=user_guid["coder_a"], creationDateTime=export_iso)
    users = ET.SubElement(root, q("Users"))
    for cid, cname in CODERS:
        ET.SubElement(users, q("User"), guid=user_guid[cid], id=cid, name=cname)
    book = ET.SubElement(root, q("CodeBook"))
    _code_elements(book, seed)
    # re-qualify codebook tags (SubElement above used bare names for brevity)
    for el in book.iter():
        if not el.tag.startswith("{"):
            el.tag = q(el.tag)
    var_guid = guid(seed, "variable", "record_id")
    variables = ET.SubElement(root, q("Variables"))
    ET.SubElement(variables, q("Variable"), guid=var_guid, name="record_id", typeOfVariable="Text")
    interviews = [t for t in ts if t.kind == "interview"]
    if interviews:
        cases = ET.SubElement(root, q("Cases"))
        for t in interviews:
            name, rid = t.members[0]
            case = ET.SubElement(cases, q("Case"), guid=guid(seed, "case", rid), name=name)
            vv = ET.SubElement(case, q("VariableValue"))
            ET.SubElement(vv, q("VariableRef"), targetGUID=var_guid)
            ET.SubElement(vv, q("TextValue")).text = rid
            ET.SubElement(case, q("SourceRef"), targetGUID=guid(seed, "source", t.tid))
    sources = ET.SubElement(root, q("Sources"))
    for t in ts:
        sg = guid(seed, "source", t.tid)
        created = t.units[0].coded_at if t.units else export_iso
        src = ET.SubElement(sources, q("TextSource"), guid=sg, name=t.tid, plainTextPath=f"internal://{sg}.txt",
                            creatingUser=user_guid[t.units[0].coder if t.units else "coder_a"],
                            creationDateTime=created)
        for u in t.units:
            sel = ET.SubElement(src, q("PlainTextSelection"), guid=guid(seed, "selection", u.unit_id),
                                name=u.unit_id, startPosition=str(u.start), endPosition=str(u.end),
                                creatingUser=user_guid[u.coder], creationDateTime=u.coded_at)
            coding = ET.SubElement(sel, q("Coding"), guid=guid(seed, "coding", u.unit_id),
                                   creatingUser=user_guid[u.coder], creationDateTime=u.coded_at)
            ET.SubElement(coding, q("CodeRef"), targetGUID=guid(seed, "code", u.code_path))
    ET.indent(root, space="  ")
    xml = ET.tostring(root, encoding="unicode", xml_declaration=False)
    xml_bytes = ('<?xml version="1.0" encoding="utf-8"?>\n' + xml + "\n").encode("utf-8")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        entries = [("project.qde", xml_bytes)]
        entries += [(f"sources/{guid(seed, 'source', t.tid)}.txt", t.text.encode("utf-8")) for t in ts]
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(2025, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return buf.getvalue()


def all_code_paths() -> list[str]:
    return code_paths()
