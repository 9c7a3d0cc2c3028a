"""The case-management and treatment event log (vectorised over participants)."""

from __future__ import annotations

import json

import numpy as np
import polars as pl

from .calendar import STUDY_END, day_number, local_day_of, local_expr

EVENT_TYPES = (
    "session_scheduled", "session_attended", "session_missed", "session_cancelled", "contact_attempt",
    "treatment_admitted", "treatment_visit", "treatment_discharged", "event_voided",
)
SCHEDULED, ATTENDED, MISSED, CANCELLED, CONTACT, ADMITTED, VISIT, DISCHARGED, VOIDED = range(9)
SERVICES = ("", "case_management", "motivational_interviewing", "standard_referral")
MODES = ("", "in_person", "phone", "community")
DISCHARGE_REASONS = ("", "completed", "dropped_out", "administrative", "transferred", "incarcerated")
ACTIVITIES = ("strengths_assessment", "goal_planning", "linkage", "transport", "advocacy")
# activities bit-mask -> JSON list (index 0 = no activities key)
ACTIVITY_JSON = ["" if m == 0 else json.dumps([a for b, a in enumerate(ACTIVITIES) if m >> b & 1],
                                              separators=(",", ":"))
                 for m in range(32)]
STAFF_PREFIX = ("", "CM", "MI", "SR")
STAFF_POOL = (0, 12, 6, 4)

NOTES = (
    "Client doing well, talked about getting back to work.",
    "Left voicemail at {phone}, no answer.",
    "Number disconnected; will try the shelter.",
    "Met client at the corner store on {street} and rode the bus together to the program.",
    "Client's girlfriend answered, said he would call back.",
    "Discussed transport to intake appointment; gave bus tokens.",
    "Client upset about the waiting list; advocated with program staff.",
    "Client reports staying with cousin for now.",
    "Reminder call made the day before.",
    "Client asked to reschedule because of a court date.",
    "Entered in error - wrong client selected.",
)
VOID_NOTE = 10


def _within(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """0..k-1 positions inside each group of an exploded array."""
    total = int(counts.sum())
    return np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)


def _frame(**cols) -> pl.DataFrame:
    n = len(next(iter(cols.values())))
    base = {
        "pid": np.zeros(n, np.int64), "etype": np.zeros(n, np.int64), "service": np.zeros(n, np.int64),
        "session_number": np.zeros(n, np.int64), "staff": np.zeros(n, np.int64),
        "mode": np.zeros(n, np.int64), "duration": np.zeros(n, np.int64),
        "activities": np.zeros(n, np.int64), "program_id": np.zeros(n, np.int64),
        "reason": np.zeros(n, np.int64), "day": np.zeros(n, np.int64), "minute": np.zeros(n, np.int64),
        "sched_day": np.full(n, -1, np.int64), "sched_minute": np.zeros(n, np.int64),
        "note": np.full(n, -1, np.int64),
    }
    for k, v in cols.items():
        base[k] = np.asarray(v, dtype=np.int64) if np.ndim(v) else np.full(n, v, np.int64)
    return pl.DataFrame(base)


def build_events(people: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Every event of the study, un-cut (occurred may lie after the study end; cut later).

    Columns: pid, etype, service, session_number, staff, mode, duration, activities, program_id,
    reason, day, minute, sched_day, sched_minute, note (codes; 0 / -1 = absent).
    """
    rng = np.random.default_rng([seed, 2])
    r = people.filter(pl.col("rand_day") >= 0)
    pid = r["idx"].to_numpy()
    arm = r["rand_arm"].to_numpy()
    rand = r["rand_day"].to_numpy()
    asam = r["asam_level"].to_numpy()
    referral = r["referral_program"].to_numpy()
    n = len(pid)
    frames = []

    # -- intervention sessions (SBCM: case management; MI: motivational interviewing) --
    active = arm <= 2
    ap, aarm, arand = pid[active], arm[active], rand[active]
    na = len(ap)
    attend_n = np.where(rng.random(na) < 0.2, 0, rng.choice(np.arange(1, 6), size=na,
                                                            p=[0.10, 0.14, 0.20, 0.26, 0.30]))
    missed_n = rng.poisson(0.7, na) + np.where(attend_n == 0, rng.poisson(0.8, na), 0)
    cancel_n = rng.poisson(0.25, na)
    m = attend_n + missed_n + cancel_n
    span = np.maximum(m, rng.integers(25, 60, na))  # all appointments within 59 days
    staff_own = rng.integers(1, np.array(STAFF_POOL)[aarm] + 1)
    starts = np.cumsum(m) - m
    j = _within(starts, m)
    grp = np.repeat(np.arange(na), m)
    outcome = np.where(j < np.repeat(attend_n, m), ATTENDED,
                       np.where(j < np.repeat(attend_n + missed_n, m), MISSED, CANCELLED))
    shuffle = np.lexsort((rng.random(len(j)), grp))
    outcome = outcome[shuffle]
    u = rng.random(len(j))
    u = u[np.lexsort((u, grp))]  # sorted within each participant (grp is already in order)
    g_span, g_m = np.repeat(span, m), np.repeat(m, m)
    offset = 1 + np.floor(u * (g_span - g_m + 1)).astype(np.int64) + j
    att = (outcome == ATTENDED).astype(np.int64)
    cum = np.cumsum(att)
    padded = np.concatenate([[0], cum])
    before = (cum - att) - np.repeat(padded[starts], m)  # attended sessions earlier in the same group
    sn = before + 1
    keep = sn <= 5
    g_pid, g_arm, g_rand = np.repeat(ap, m)[keep], np.repeat(aarm, m)[keep], np.repeat(arand, m)[keep]
    outcome, offset, sn, j = outcome[keep], offset[keep], sn[keep], j[keep]
    staff = np.repeat(staff_own, m)[keep]
    k = len(outcome)
    swap = rng.random(k) < 0.1
    staff = np.where(swap, rng.integers(1, np.array(STAFF_POOL)[g_arm] + 1), staff)
    appt_day = g_rand + offset
    appt_min = 9 * 60 + 15 * rng.integers(0, 31, k)
    is_cm = g_arm == 1
    mode = np.where(is_cm, rng.choice([1, 3, 2], size=k, p=[0.55, 0.3, 0.15]),
                    rng.choice([1, 2], size=k, p=[0.8, 0.2]))
    dur = np.where(is_cm, np.clip(np.rint(rng.normal(50, 15, k) / 5) * 5, 15, 120),
                   np.clip(np.rint(rng.normal(45, 10, k) / 5) * 5, 20, 90)).astype(np.int64)
    acts = np.where(is_cm, (rng.random((k, 5)) < [0.25, 0.6, 0.45, 0.35, 0.3]) @ (1 << np.arange(5)),
                    2 | ((rng.random(k) < 0.4) << 2))
    acts = np.where(is_cm & (sn == 1), acts | 1, acts)
    acts = np.where(is_cm & (acts == 0), 2, acts)
    note = np.where(rng.random(k) < 0.05, rng.choice([0, 3, 5, 6, 7], size=k), -1)
    booking_day = np.maximum(g_rand, appt_day - rng.integers(1, 9, k))
    booking_min = 9 * 60 + rng.integers(0, 8 * 60, k)
    service = g_arm  # 1 case_management, 2 motivational_interviewing
    frames.append(_frame(pid=g_pid, etype=SCHEDULED, service=service, session_number=sn, staff=staff,
                         mode=mode, day=booking_day, minute=booking_min, sched_day=appt_day,
                         sched_minute=appt_min))
    a = outcome == ATTENDED
    frames.append(_frame(pid=g_pid[a], etype=ATTENDED, service=service[a], session_number=sn[a],
                         staff=staff[a], mode=mode[a], duration=dur[a], activities=acts[a],
                         day=appt_day[a], minute=appt_min[a], note=note[a]))
    mi = outcome == MISSED
    frames.append(_frame(pid=g_pid[mi], etype=MISSED, service=service[mi], session_number=sn[mi],
                         staff=staff[mi], day=appt_day[mi], minute=appt_min[mi] + 30,
                         note=np.where(rng.random(mi.sum()) < 0.1, 8, -1)))
    c = outcome == CANCELLED
    frames.append(_frame(pid=g_pid[c], etype=CANCELLED, service=service[c], session_number=sn[c],
                         staff=staff[c], day=appt_day[c], minute=appt_min[c] - 60 - 15 * rng.integers(0, 4, c.sum()),
                         note=np.where(rng.random(c.sum()) < 0.15, 9, -1)))
    # contact attempts
    nc = rng.poisson(1.3, na) + np.where(attend_n == 0, rng.poisson(1.5, na), 0)
    cp = np.repeat(np.arange(na), nc)
    kc = len(cp)
    frames.append(_frame(pid=ap[cp], etype=CONTACT, service=aarm[cp], staff=staff_own[cp],
                         mode=rng.choice([2, 3], size=kc, p=[0.8, 0.2]),
                         day=arand[cp] + rng.integers(0, 61, kc), minute=9 * 60 + rng.integers(0, 9 * 60, kc),
                         note=np.where(rng.random(kc) < 0.25, rng.choice([1, 2, 4, 8], size=kc), -1)))

    # -- standard referral: one brief session on the day of randomization ----
    st = arm == 3
    ks = int(st.sum())
    frames.append(_frame(pid=pid[st], etype=ATTENDED, service=3, session_number=1,
                         staff=rng.integers(1, STAFF_POOL[3] + 1, ks), mode=1,
                         duration=5 * rng.integers(3, 7, ks), activities=4, day=rand[st],
                         minute=9 * 60 + 15 * rng.integers(0, 30, ks)))

    # -- treatment --------------------------------------------------------------
    p_link = np.array([0.0, 0.58, 0.47, 0.40])[arm]
    linked = rng.random(n) < p_link
    late = ~linked & (rng.random(n) < 0.15)
    admit_off = np.where(linked, np.minimum(np.floor(rng.exponential(14, n)), 60),
                         61 + np.floor(rng.exponential(50, n)))
    admitted = linked | late
    tp = np.flatnonzero(admitted)
    admit = rand[tp] + admit_off[tp].astype(np.int64)
    kt = len(tp)
    program = np.where(rng.random(kt) < 0.8, referral[tp], rng.integers(1, 9, kt))
    reason = rng.choice([2, 1, 3, 4, 5], size=kt, p=[0.45, 0.27, 0.12, 0.08, 0.08])
    level = asam[tp]
    completed_len = np.where(level == 3, rng.integers(21, 36, kt),
                             np.where(level == 2, rng.integers(56, 91, kt), rng.integers(90, 181, kt)))
    los = np.select(
        [reason == 1, reason == 2, reason == 3, reason == 4],
        [completed_len, 1 + np.floor(rng.exponential(32, kt)), 5 + np.floor(rng.exponential(40, kt)),
         5 + np.floor(rng.exponential(30, kt))],
        3 + np.floor(rng.exponential(45, kt)),
    ).astype(np.int64)
    discharge = admit + los
    frames.append(_frame(pid=pid[tp], etype=ADMITTED, program_id=program, day=admit,
                         minute=9 * 60 + 15 * rng.integers(0, 25, kt)))
    frames.append(_frame(pid=pid[tp], etype=DISCHARGED, program_id=program, reason=reason, day=discharge,
                         minute=10 * 60 + 15 * rng.integers(0, 25, kt)))
    nv = np.minimum(np.maximum((los - 1) // 7, 0), 30)
    vg = np.repeat(np.arange(kt), nv)
    vj = _within(np.cumsum(nv) - nv, nv) + 1
    vday = admit[vg] + 7 * vj + rng.integers(-2, 3, len(vg))
    vday = np.clip(vday, admit[vg] + 1, discharge[vg] - 1)
    frames.append(_frame(pid=pid[tp][vg], etype=VISIT, program_id=program[vg], day=vday,
                         minute=9 * 60 + 15 * rng.integers(0, 36, len(vg))))
    ev = pl.concat(frames, how="vertical")
    return ev


def finalize_events(ev: pl.DataFrame, people: pl.DataFrame, seed: int, last_cut_utc) -> pl.DataFrame:
    """Timestamps, the study-end cut, faults (voids, late records, duplicates) and event ids.

    Returns one row per log LINE (duplicates included), sorted as written.
    """
    rng = np.random.default_rng([seed, 3])
    ev = ev.with_columns(
        occurred=local_expr("day", "minute"),
        scheduled_for=pl.when(pl.col("sched_day") >= 0).then(local_expr("sched_day", "sched_minute")),
    )
    n = ev.height
    # recorded a few minutes to hours later; a few are recorded days late
    delay_s = np.clip(np.exp(rng.normal(np.log(3600), 1.0, n)), 180, 10 * 3600).astype(np.int64)
    late = rng.random(n) < 0.004
    delay_s = np.where(late, rng.integers(2, 10, n) * 86400 + rng.integers(0, 8 * 3600, n), delay_s)
    ev = ev.with_columns(recorded=pl.col("occurred") + pl.duration(seconds=pl.Series(delay_s)))
    ev = _force_late(ev, rng)
    ev = ev.filter(pl.col("recorded") <= last_cut_utc)

    # voided sessions: a correction recorded a few days after the original
    att = ev.with_row_index("row").filter(
        (pl.col("etype") == ATTENDED) & (pl.col("service") <= 2) & (pl.col("service") >= 1)
    )
    pick = rng.random(att.height) < 0.004
    if att.height and not pick.any() and people.height >= 200:
        pick[rng.integers(0, att.height)] = True
    voided = att.filter(pl.Series(pick))
    if voided.height:
        vd = voided.height
        voids = voided.select(
            "pid", "service", "session_number", "staff", pl.col("row").alias("voids_row"),
            (local_day_of(pl.col("recorded")) + pl.Series(rng.integers(1, 5, vd))).alias("day"),
            pl.Series(rng.integers(9 * 60, 17 * 60, vd)).alias("minute"),
        ).with_columns(
            occurred=local_expr("day", "minute"),
            etype=pl.lit(VOIDED, pl.Int64),
            note=pl.Series(np.where(rng.random(vd) < 0.5, VOID_NOTE, -1)),
        ).with_columns(recorded=pl.col("occurred") + pl.duration(minutes=2))
        voids = voids.filter(pl.col("recorded") <= last_cut_utc)
    else:
        voids = None
    ev = ev.with_row_index("row").with_columns(pl.lit(None, pl.UInt32).alias("voids_row"))
    if voids is not None and voids.height:
        ev = pl.concat([ev, voids.with_columns(pl.lit(None, pl.UInt32).alias("row"))], how="diagonal_relaxed")
    ev = ev.with_columns(pl.col("service").fill_null(0), pl.col("note").fill_null(-1))
    for col in ("session_number", "staff", "mode", "duration", "activities", "program_id", "reason"):
        ev = ev.with_columns(pl.col(col).fill_null(0))
    ev = ev.with_columns(pl.when(pl.col("etype") == VOIDED).then(0).otherwise(pl.col("session_number"))
                         .alias("session_number"),
                         pl.when(pl.col("etype") == VOIDED).then(0).otherwise(pl.col("service")).alias("service"),
                         pl.when(pl.col("etype") == VOIDED).then(0).otherwise(pl.col("staff")).alias("staff"))

    # event ids in the order the source system recorded them
    ev = ev.sort(["recorded", "occurred", "pid", "etype", "session_number"])
    ev = ev.with_columns(seq=pl.int_range(1, pl.len() + 1, dtype=pl.Int64))
    ids = ev.filter(pl.col("row").is_not_null()).select(pl.col("row").alias("voids_row"),
                                                         pl.col("seq").alias("voids_seq"))
    ev = ev.join(ids, on="voids_row", how="left", maintain_order="left").drop("row", "voids_row")

    # a few log lines written twice (the exact same line)
    dup = rng.random(ev.height) < 0.001
    if ev.height and not dup.any() and people.height >= 200:
        dup[rng.integers(0, ev.height)] = True
    reps = np.where(dup, 2, 1)
    ev = ev.select(pl.all().gather(np.repeat(np.arange(ev.height), reps)))
    return ev.join(
        people.select(
            pl.col("idx").alias("pid"), "record_id",
            pl.format("({}) 555-0{}", "phone_area", "phone_line").alias("phone"),
            pl.format("{} {}", "street", "suffix").alias("street_name"),
        ),
        on="pid", how="left", maintain_order="left",
    )


def _force_late(ev: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """At least one event occurring days before the study end is recorded on its last day."""
    end = day_number(STUDY_END)
    cand = np.flatnonzero(((ev["etype"] == ATTENDED) & (ev["day"] >= end - 9) & (ev["day"] <= end - 4)).to_numpy())
    if not len(cand):
        return ev
    row = int(cand[rng.integers(0, len(cand))])
    tmp = pl.DataFrame({"d": [end], "m": [15 * 60]}).select(local_expr("d", "m").alias("t"))["t"]
    rec = ev["recorded"].scatter(row, tmp[0])
    return ev.with_columns(rec.alias("recorded"))


def jsonl_lines(ev: pl.DataFrame) -> pl.Series:
    """Render each event as one JSON line (keys that do not apply are omitted)."""
    from .calendar import iso_local

    def opt(key: str, cond: pl.Expr, val: pl.Expr) -> pl.Expr:
        return pl.when(cond).then(pl.concat_str([pl.lit(f',"{key}":'), val])).otherwise(pl.lit(""))

    q = lambda e: pl.concat_str([pl.lit('"'), e, pl.lit('"')])  # noqa: E731  (values need no escaping)
    etype = pl.col("etype").replace_strict(list(range(9)), list(EVENT_TYPES), return_dtype=pl.String)
    service = pl.col("service").replace_strict(list(range(4)), list(SERVICES), return_dtype=pl.String)
    mode = pl.col("mode").replace_strict(list(range(4)), list(MODES), return_dtype=pl.String)
    reason = pl.col("reason").replace_strict(list(range(6)), list(DISCHARGE_REASONS), return_dtype=pl.String)
    prefix = pl.col("service").replace_strict(list(range(4)), list(STAFF_PREFIX), return_dtype=pl.String)
    acts = pl.col("activities").replace_strict(list(range(32)), ACTIVITY_JSON, return_dtype=pl.String)
    notes = (
        pl.col("note").replace_strict(list(range(len(NOTES))), list(NOTES), default="", return_dtype=pl.String)
        .str.replace("{phone}", pl.col("phone"), literal=True)
        .str.replace("{street}", pl.col("street_name"), literal=True)
    )
    return ev.select(
        pl.concat_str(
            [
                pl.lit('{"event_id":'), q(pl.format("evt-{}", pl.col("seq").cast(pl.String).str.zfill(9))),
                pl.lit(',"event_type":'), q(etype),
                pl.lit(',"record_id":'), q(pl.col("record_id")),
                pl.lit(',"occurred_at":'), q(iso_local(pl.col("occurred"))),
                opt("scheduled_for", pl.col("scheduled_for").is_not_null(), q(iso_local(pl.col("scheduled_for")))),
                pl.lit(',"recorded_at":'), q(iso_local(pl.col("recorded"))),
                opt("service", pl.col("service") > 0, q(service)),
                opt("session_number", pl.col("session_number") > 0, pl.col("session_number").cast(pl.String)),
                opt("staff_id", pl.col("staff") > 0,
                    q(pl.concat_str([prefix, pl.col("staff").cast(pl.String).str.zfill(2)]))),
                opt("mode", pl.col("mode") > 0, q(mode)),
                opt("duration_min", pl.col("duration") > 0, pl.col("duration").cast(pl.String)),
                opt("activities", pl.col("activities") > 0, acts),
                opt("program_id", pl.col("program_id") > 0, pl.col("program_id").cast(pl.String)),
                opt("discharge_reason", pl.col("reason") > 0, q(reason)),
                opt("voids_event_id", pl.col("voids_seq").is_not_null(),
                    q(pl.format("evt-{}", pl.col("voids_seq").cast(pl.String).str.zfill(9)))),
                opt("note", pl.col("note") >= 0, q(notes)),
                pl.lit("}"),
            ]
        ).alias("line")
    )["line"]
