"""Synthetic study generator: a realistic landing zone (CONTRACT sections 1 and 5).

``generate_study(out_dir, participants, nights=None, seed=...)`` writes either one
complete landing zone into ``out_dir`` (``intake/``, ``sessions/``, ``alliance/``,
``transcripts/``) or, with ``nights=K``, ``out_dir/night-01`` .. ``night-KK``: the first
holding the history so far, each later one what arrived that night. The same
arguments always give byte-identical files (no wall clock, fixed zip timestamps).
"""

from __future__ import annotations

import pathlib

import numpy as np
import polars as pl

from .calendar import STUDY_END, day_date, day_number, iso_local, local_day_of, local_instant
from .dictionaries import alliance_dictionary, dictionary_csv, intake_dictionary
from .events import ATTENDED, VOIDED, build_events, finalize_events, jsonl_lines
from .population import Population, build_population
from .snapshots import alliance_snapshot, build_surveys, intake_snapshot
from .transcripts import Transcript, build_transcripts, coded_units_csv, pseudonyms_csv, qdpx_bytes

__all__ = ["generate_study"]

INTAKE_PROJECT = "ALLIANCE"
ALLIANCE_PROJECT = "ALLIANCE_WAI"
NIGHTLY_INTAKE_MINUTE = 23 * 60 + 5
NIGHTLY_ALLIANCE_MINUTE = 23 * 60 + 10
EARLY_INTAKE_MINUTE = 17 * 60 + 42
EARLY_ALLIANCE_MINUTE = 17 * 60 + 50
EARLY_SNAPSHOT_DAYS = 30


def generate_study(out_dir: pathlib.Path, participants: int, nights: int | None = None,
                   seed: int = 20260101) -> dict:
    """Write a synthetic study's landing files; return a summary of counts.

    ``participants`` people are assessed at intake (about 80% consent). Without ``nights``,
    one landing zone is written into ``out_dir``; with ``nights=K``, K nightly drops.
    """
    out_dir = pathlib.Path(out_dir)
    if participants < 1:
        raise ValueError("participants must be at least 1")
    if nights is not None and not 1 <= nights <= 99:
        raise ValueError("nights must be between 1 and 99")
    end = day_number(STUDY_END)
    pop = build_population(participants, seed)
    final_cut = local_instant(end, NIGHTLY_INTAKE_MINUTE)
    ev = finalize_events(build_events(pop.people, seed), pop.people, seed, final_cut)
    ev = ev.with_columns(local_day=local_day_of(pl.col("occurred")))
    pop = _force_withdrawals(pop, ev, seed)
    attended = _counted_sessions(ev)
    surveys = build_surveys(attended, seed, end)
    transcripts = build_transcripts(pop.people, seed)

    files: list[pathlib.Path] = []
    if nights is None:
        _write_zone(out_dir, pop, ev, surveys, transcripts, seed, files,
                    snapshot_days=[end - EARLY_SNAPSHOT_DAYS, end], day=end, prev_day=None)
    else:
        for k in range(1, nights + 1):
            day = end - (nights - k)
            snaps = [day - EARLY_SNAPSHOT_DAYS, day] if k == 1 else [day]
            _write_zone(out_dir / f"night-{k:02d}", pop, ev, surveys, transcripts, seed, files,
                        snapshot_days=snaps, day=day, prev_day=None if k == 1 else day - 1)

    people = pop.people
    lines_written = ev.height
    return {
        "assessed": people.height,
        "consented": int((people["consent_day"] >= 0).sum()),
        "randomized": int((people["rand_day"] >= 0).sum()),
        "session_events": lines_written,
        "session_events_unique": int(ev["seq"].n_unique()),
        "surveys": surveys.height,
        "transcripts": len(transcripts),
        "coded_units": sum(len(t.units) for t in transcripts),
        "files": len(files),
        "out_dir": str(out_dir),
        "nights": nights or 0,
    }


def _counted_sessions(ev: pl.DataFrame) -> pl.DataFrame:
    """Attended intervention sessions that were not voided (one row per event)."""
    voided = ev.filter(pl.col("etype") == VOIDED)["voids_seq"].drop_nulls().to_list()
    return (
        ev.filter((pl.col("etype") == ATTENDED) & pl.col("service").is_in([1, 2]) & ~pl.col("seq").is_in(voided))
        .unique("seq", keep="first", maintain_order=True)
        .select("pid", "record_id", "session_number", pl.col("local_day").alias("day"))
    )


def _force_withdrawals(pop: Population, ev: pl.DataFrame, seed: int) -> Population:
    """Guarantee one scope-1 withdrawal with session events after its date, and one scope-2 withdrawal."""
    rng = np.random.default_rng([seed, 6])
    end = day_number(STUDY_END)
    people = pop.people
    att = (
        _counted_sessions(ev)
        .group_by("pid").agg(pl.col("day").min().alias("first"), pl.col("day").max().alias("last"),
                             pl.len().alias("n"))
        .sort("pid")
    )
    free = set(people.filter((pl.col("withdrawal_scope") == 0) & (pl.col("rand_day") >= 0))["idx"].to_list())
    c1 = att.filter((pl.col("n") >= 2) & (pl.col("last") > pl.col("first") + 1) & pl.col("pid").is_in(list(free)))
    updates: dict[int, tuple[int, int]] = {}
    if c1.height:
        row = c1.row(int(rng.integers(0, c1.height)), named=True)
        updates[row["pid"]] = (1, row["first"] + 1)
    c2 = att.filter(pl.col("pid").is_in(list(free - set(updates))) & (pl.col("first") < end))
    if c2.height:
        row = c2.row(int(rng.integers(0, c2.height)), named=True)
        updates[row["pid"]] = (2, end)  # withdraws all data on the last day of the study
    if not updates:
        return pop
    upd = pl.DataFrame({"idx": list(updates), "_scope": [v[0] for v in updates.values()],
                        "_day": [v[1] for v in updates.values()]},
                       schema={"idx": pl.Int64, "_scope": pl.Int64, "_day": pl.Int64})
    people = people.join(upd, on="idx", how="left", maintain_order="left").with_columns(
        withdrawal_scope=pl.coalesce("_scope", "withdrawal_scope"),
        withdrawal_day=pl.coalesce("_day", "withdrawal_day"),
        ltf_day=pl.when(pl.col("_scope").is_not_null()).then(-1).otherwise(pl.col("ltf_day")),
    ).drop("_scope", "_day")
    return Population(people=people, corrections=pop.corrections)


def _write(path: pathlib.Path, data: bytes, files: list[pathlib.Path]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    files.append(path)


def _write_csv(path: pathlib.Path, df: pl.DataFrame, files: list[pathlib.Path]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.write_csv(path, line_terminator="\n", quote_style="necessary", null_value="")
    files.append(path)


def _stamp(day: int, minute: int) -> str:
    return f"{day_date(day).isoformat()}_{minute // 60:02d}{minute % 60:02d}"


def _write_zone(zone: pathlib.Path, pop: Population, ev: pl.DataFrame, surveys: pl.DataFrame,
                transcripts: list[Transcript], seed: int, files: list[pathlib.Path], *,
                snapshot_days: list[int], day: int, prev_day: int | None) -> None:
    """One landing zone: everything recorded up to ``day`` (after ``prev_day``'s export, if given)."""
    date = day_date(day).isoformat()
    _write(zone / "intake" / "data_dictionary.csv", dictionary_csv(intake_dictionary()), files)
    _write(zone / "alliance" / "data_dictionary.csv", dictionary_csv(alliance_dictionary()), files)
    for i, sday in enumerate(snapshot_days):
        last = i == len(snapshot_days) - 1
        im = NIGHTLY_INTAKE_MINUTE if last else EARLY_INTAKE_MINUTE
        am = NIGHTLY_ALLIANCE_MINUTE if last else EARLY_ALLIANCE_MINUTE
        _write_csv(zone / "intake" / f"{INTAKE_PROJECT}_DATA_{_stamp(sday, im)}.csv",
                   intake_snapshot(pop, sday, im, seed), files)
        _write_csv(zone / "alliance" / f"{ALLIANCE_PROJECT}_DATA_{_stamp(sday, am)}.csv",
                   alliance_snapshot(surveys, sday), files)

    cut = local_instant(day, NIGHTLY_INTAKE_MINUTE)
    sel = pl.col("recorded") <= cut
    if prev_day is not None:
        sel = sel & (pl.col("recorded") > local_instant(prev_day, NIGHTLY_INTAKE_MINUTE))
    path = zone / "sessions" / f"sessions_{date}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        part = ev.filter(sel)
        step = 250_000
        for off in range(0, part.height, step):
            lines = jsonl_lines(part.slice(off, step))
            fh.write(("\n".join(lines.to_list()) + "\n").encode("utf-8"))
    files.append(path)

    lo = -1 if prev_day is None else prev_day
    new = [t for t in transcripts if lo < t.coding_day <= day]
    if new:
        so_far = [t for t in transcripts if t.coding_day <= day]
        before = {m for t in so_far if t not in new for m in t.members}
        if prev_day is None or {m for t in new for m in t.members} - before:
            # the pseudonym list is re-exported whole whenever it changes
            _write(zone / "transcripts" / "pseudonyms.csv", pseudonyms_csv(so_far), files)
        csv_part = [t for t in new if t.form == "csv"]
        qdpx_part = [t for t in new if t.form == "qdpx"]
        if csv_part:
            _write(zone / "transcripts" / f"coded_units_{date}.csv", coded_units_csv(csv_part), files)
        if qdpx_part:
            export_iso = pl.select(iso_local(pl.lit(local_instant(day, NIGHTLY_INTAKE_MINUTE)))).item()
            _write(zone / "transcripts" / f"transcripts_{date}.qdpx", qdpx_bytes(qdpx_part, seed, export_iso), files)
