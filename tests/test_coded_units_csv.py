"""Coded-units CSV as QDA tools export it (CONTRACT 1.4), through the whole pipeline.

A CSV ``unit_id`` names a span; a unit coded with several codes, or by several coders, is
several rows with the same unit_id, and a row is known by (unit_id, coder_id, code_path).
Here one participant (2001, SBCM, audio consent) has two interviews:

* ``INT-2001-1`` (40 characters), delivered as a CSV only: two coders (ann, bob) and three
  codes (X, Y, Z) on the same four units, one row that disagrees with its unit (quarantined)
  and one exact repeat of a row (one row);
* ``INT-2001-2`` (30 characters), coded by cara in a QDPX and by dan in a CSV, dan's X unit
  coded in the QDPX too (the same coder, span and code in both files: one coded unit).

Every expected figure is worked out by hand in the comments; none is computed by the code
under test.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
from conftest import warehouse_env
from intake_rows import FULL_INTAKE_COLUMNS, full_person
from test_transcripts import make_qdpx, project_xml

from orchestration.cli import run_pipeline

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
DICTIONARY = HERE / "fixtures" / "study" / "intake" / "data_dictionary.csv"
SECRET = "coded-units-csv-secret-0123456789"
RID = "2001"
TEXT_1 = "We set goals and she listens to me a lot"
TEXT_2 = "the bus never came so i walked"
assert len(TEXT_1) == 40 and len(TEXT_2) == 30
CODED_AT = "2025-06-30T12:00:00-04:00"
HEADER = ["unit_id", "transcript_id", "transcript_kind", "record_id", "speaker", "coder_id", "code_path",
          "start_char", "end_char", "text", "coded_at"]

# INT-2001-1: units U1 [0,8) 8 chars, U2 [8,20) 12, U3 [20,25) 5, U4 [25,40) 15.
SPANS_1 = {"U1": (0, 8), "U2": (8, 20), "U3": (20, 25), "U4": (25, 40)}
CODINGS_1 = [  # (unit, coder, code), in file order
    ("U1", "ann", "X"), ("U1", "ann", "Y"), ("U1", "ann", "Z"),
    ("U1", "bob", "X"), ("U1", "bob", "Y"), ("U1", "bob", "Z"),
    ("U2", "ann", "X"), ("U2", "bob", "X"), ("U2", "bob", "Y"),
    ("U3", "ann", "Y"), ("U3", "bob", "Z"),
    ("U4", "ann", "Z"),
]


def intake_csv() -> bytes:
    # Thaddeus Quillfeather's values, phone and address are the identifiers the screening looks for
    row = full_person(RID, "Thaddeus", "Quillfeather", race=(4,), phone="(410) 555-2001",
                      street_address="12 Larkspur Lane", email="thaddeus.q@example.org")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FULL_INTAKE_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerow(row)
    return buf.getvalue().encode("utf-8")


def units_csv(rows: list[list]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


def row(unit: str, tid: str, text: str, coder: str, code: str, s: int, e: int, coded_at: str = CODED_AT) -> list:
    return [unit, tid, "interview", RID, "", coder, code, s, e, text[s:e], coded_at]


def multi_coder_csv() -> bytes:
    rows = [row(u, "INT-2001-1", TEXT_1, coder, code, *SPANS_1[u]) for u, coder, code in CODINGS_1]
    # row 10 of the file: U2 again, by bob with Z, but from character 9: it disagrees with U2's
    # first row (row 7, [8,20)) and is quarantined; row 14 repeats row 13 exactly: one row.
    rows.insert(9, row("U2", "INT-2001-1", TEXT_1, "bob", "Z", 9, 20))
    rows.append(row("U4", "INT-2001-1", TEXT_1, "ann", "Z", *SPANS_1["U4"]))
    return units_csv(rows)


def dan_csv() -> bytes:
    # dan codes INT-2001-2 in a CSV: X on [0,15), Y on [20,30)
    return units_csv([row("D1", "INT-2001-2", TEXT_2, "dan", "X", 0, 15),
                      row("D2", "INT-2001-2", TEXT_2, "dan", "Y", 20, 30)])


def cara_qdpx() -> bytes:
    # cara codes INT-2001-2 in a QDPX: X on [0,10), Y on [10,30); the project also holds dan's
    # X on [0,15) (the same coder, span and code as his CSV row D1).
    def sel(name, s, e, code, user):
        return {"name": name, "start": s, "end": e, "user": user, "created": "2025-06-30T16:00:00Z",
                "codings": [{"name": name, "code": code, "user": user}]}

    xml = project_xml(users=[{"key": "cara", "id": "cara"}, {"key": "dan", "id": "dan"}],
                      codes=[("X", []), ("Y", [])],
                      sources=[{"name": "INT-2001-2", "path": "internal://int2.txt",
                                "selections": [sel("c1", 0, 10, "X", "cara"), sel("c2", 10, 30, "Y", "cara"),
                                               sel("d1", 0, 15, "X", "dan")]}])
    return make_qdpx({"project.qde": xml, "sources/int2.txt": TEXT_2.encode()})


def land_study(landing: Path) -> None:
    for source in ("intake", "transcripts"):
        (landing / source).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DICTIONARY, landing / "intake" / "data_dictionary.csv")
    (landing / "intake" / "ALLIANCE_DATA_2025-06-30_2305.csv").write_bytes(intake_csv())
    (landing / "transcripts" / "coded_units_int1.csv").write_bytes(multi_coder_csv())
    (landing / "transcripts" / "coded_units_dan.csv").write_bytes(dan_csv())
    (landing / "transcripts" / "project_cara.qdpx").write_bytes(cara_qdpx())


class Run:
    def __init__(self, settings, code: int):
        self.settings, self.code = settings, code

    def key(self, value: str) -> str:
        return hmac.new(self.settings.participant_hash_key.encode(), value.encode(), hashlib.sha256).hexdigest()[:24]

    def rows(self, sql: str) -> list[tuple]:
        with duckdb.connect(str(self.settings.analytics_path), read_only=True) as conn:
            return conn.execute(sql).fetchall()

    def vault_rows(self, sql: str) -> list[tuple]:
        from ingestion.vault import open_vault

        conn = open_vault(self.settings, read_only=True)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("coded_units_csv")
    with warehouse_env(tmp, SECRET):
        land_study(tmp / "landing")
        from ingestion.settings import load_settings

        yield Run(load_settings(), run_pipeline(quiet=True))


def test_the_run_publishes(run):
    assert run.code == 0
    failing = run.rows("select check_name from data_quality where not passed and severity = 'blocking'")
    assert failing == []


def test_every_row_of_a_multi_coder_unit_is_kept_and_the_conflicting_one_quarantined(run):
    # The file has 14 rows: the 12 codings of CODINGS_1, row 10 (U2 from character 9 instead of
    # 8: unit_mismatch) and row 14 (an exact repeat of row 13: one row). Kept: 12; quarantined: 1.
    batch = run.vault_rows("select batch_id, events_appended, rows_quarantined from events.batches "
                           "where file_name = 'coded_units_int1.csv'")
    assert [b[1:] for b in batch] == [(12, 1)]
    assert run.vault_rows(f"select location, reason_code from events.quarantine where batch_id = '{batch[0][0]}'") \
        == [("row 10", "unit_mismatch")]


def test_coded_units_has_one_row_per_unit_coder_and_code(run):
    # INT-2001-1: the 12 codings (U1 alone: 2 coders x 3 codes = 6 rows); INT-2001-2: cara X, cara Y,
    # dan X (in the CSV and the QDPX: one unit), dan Y = 4. Total 16, each with its own unit_key.
    got = run.rows(f"""select transcript_key, coder_id, code_path, start_char, end_char, text from coded_units
                       where participant_key = '{run.key(RID)}' order by all""")
    t1, t2 = run.key("transcript:INT-2001-1"), run.key("transcript:INT-2001-2")
    expected = [(t1, coder, code, *SPANS_1[u], TEXT_1[slice(*SPANS_1[u])]) for u, coder, code in CODINGS_1]
    expected += [(t2, "cara", "X", 0, 10, TEXT_2[0:10]), (t2, "cara", "Y", 10, 30, TEXT_2[10:30]),
                 (t2, "dan", "X", 0, 15, TEXT_2[0:15]), (t2, "dan", "Y", 20, 30, TEXT_2[20:30])]
    assert got == sorted(expected)
    assert run.rows("select count(*), count(distinct unit_key) from coded_units") == [(16, 16)]
    u1 = run.rows(f"""select count(*) from coded_units
                      where transcript_key = '{t1}' and start_char = 0 and end_char = 8""")
    assert u1 == [(6,)]


def test_the_same_coder_span_and_code_in_csv_and_qdpx_is_one_unit(run):
    # dan's X on [0,15) of INT-2001-2 is in both files: the event store holds both deliveries,
    # the analyst tables one coded unit.
    held = run.vault_rows("""select payload->>'source_format' from events.events
                             where event_type = 'coded_unit_recorded' and (payload->>'coder_id') = 'dan'
                               and (payload->>'code_path') = 'X' order by 1""")
    assert held == [("csv",), ("qdpx",)]
    t2 = run.key("transcript:INT-2001-2")
    assert run.rows(f"select count(*) from coded_units where transcript_key = '{t2}' and coder_id = 'dan' "
                    "and code_path = 'X'") == [(1,)]
    # code_matrix, arm SBCM: X = ann U1, ann U2, bob U1, bob U2, cara, dan = 6 units (not 7);
    # Y = ann U1, ann U3, bob U1, bob U2, cara, dan = 6; Z = ann U1, ann U4, bob U1, bob U3 = 4.
    got = run.rows("select code_path, units, participants from code_matrix where attribute = 'arm' "
                   "and value = 'SBCM' order by code_path")
    assert got == [("X", 6, 1), ("Y", 6, 1), ("Z", 4, 1)]


def _agreement(run) -> dict:
    return {(r[0], r[1], r[2]): r[3:] for r in run.rows(
        "select code_path, coder_a, coder_b, characters_compared, percent_agreement, cohens_kappa "
        "from coder_agreement")}


def test_kappa_and_percent_agreement_per_code_worked_by_hand(run):
    # Pair (ann, bob) on INT-2001-1. ann coded [0,40) (U1..U4), bob [0,25) (U1..U3): the
    # characters either coded with any code are [0,40) -> characters_compared = 40.
    # X: ann U1+U2 = 8+12 = 20, bob U1+U2 = 20; both 20, neither 20 -> po = 40/40 = 1;
    #    pa = pb = 1/2, pe = 1/4 + 1/4 = 1/2 -> kappa = (1 - 1/2)/(1/2) = 1; 100 %.
    # Y: ann U1+U3 = 8+5 = 13, bob U1+U2 = 8+12 = 20; both U1 = 8; either 13+20-8 = 25, neither
    #    15 -> po = 23/40 = .575; pa = 13/40 = .325, pb = 1/2, pe = .1625 + .3375 = .5
    #    -> kappa = (.575 - .5)/.5 = .15; 57.5 %.
    # Z: ann U1+U4 = 8+15 = 23, bob U1+U3 = 8+5 = 13; both U1 = 8; either 23+13-8 = 28,
    #    neither 12 -> po = 20/40 = .5; pa = 23/40 = .575, pb = 13/40 = .325,
    #    pe = .575 x .325 + .425 x .675 = .186875 + .286875 = .47375
    #    -> kappa = .02625/.52625 = 21/421 = 0.0498812...; 50 %.
    # (The quarantined row 10, bob Z on [9,20), would have made bob's Z 24 characters.)
    got = _agreement(run)
    expected = {("X", "ann", "bob"): (40, 100.0, 1.0), ("Y", "ann", "bob"): (40, 57.5, 0.15),
                ("Z", "ann", "bob"): (40, 50.0, 21 / 421)}
    for k, (n, pct, kappa) in expected.items():
        assert got[k][0] == n and float(got[k][1]) == pytest.approx(pct, abs=1e-9), (k, got[k])
        assert float(got[k][2]) == pytest.approx(kappa, abs=1e-9), (k, got[k])


def test_a_csv_coder_is_paired_with_a_qdpx_coder_on_the_same_transcript(run):
    # Pair (cara, dan) on INT-2001-2 (cara from the QDPX, dan from the CSV; his X also in the
    # QDPX, counted once). cara coded [0,30), dan [0,15) and [20,30): characters_compared = 30.
    # X: cara [0,10) 10, dan [0,15) 15; both 10, either 15, neither 15 -> po = 25/30 = 5/6;
    #    pa = 1/3, pb = 1/2, pe = 1/6 + 1/3 = 1/2 -> kappa = (5/6 - 1/2)/(1/2) = 2/3; 83.33 %.
    # Y: cara [10,30) 20, dan [20,30) 10; both 10, either 20, neither 10 -> po = 20/30 = 2/3;
    #    pa = 2/3, pb = 1/3, pe = 2/9 + 2/9 = 4/9 -> kappa = (2/9)/(5/9) = 2/5; 66.67 %.
    # No other pair shares a transcript: ann and bob never coded INT-2001-2, cara and dan never
    # coded INT-2001-1 -> 3 + 2 = 5 rows in all.
    got = _agreement(run)
    assert sorted(got) == sorted([("X", "ann", "bob"), ("Y", "ann", "bob"), ("Z", "ann", "bob"),
                                  ("X", "cara", "dan"), ("Y", "cara", "dan")])
    for k, (pct, kappa) in {("X", "cara", "dan"): (250 / 3, 2 / 3), ("Y", "cara", "dan"): (200 / 3, 0.4)}.items():
        n, p, kp = got[k]
        assert n == 30 and float(p) == pytest.approx(pct, abs=1e-9) and float(kp) == pytest.approx(kappa, abs=1e-9)


# ------------------------------------------------------------------------------------------------
# upgrade: a vault written by the code before a CSV unit could hold several rows
# ------------------------------------------------------------------------------------------------
# ``fixtures/transcripts/old_form``: coded_units_2025-05-01.csv (interview INT-2001-3, named with a
# ".txt" extension, 40 characters) and old_vault.json, what the code at commit 391b936 stored for
# it (see make_old_vault.py): one event per unit_id, id md5('transcripts|' || unit_id). That code
# quarantined both rows of V1 (ann X and bob X on [0,10): duplicate_unit_id), held V2 (ann Y
# [10,20)), V3 (bob Z [20,30), no coded_at: stamped with its ingest time) and V4 (ann X [30,40),
# given twice: one row) - 3 events.
OLD_FORM = HERE / "fixtures" / "transcripts" / "old_form"
OLD_FILE = "coded_units_2025-05-01.csv"
TEXT_3 = "i walk there now and it helps me stay on"


def re_exported_csv() -> bytes:
    # The tool's export a month later (new bytes): V1's two rows again, V2 now coded by bob too,
    # V3 still without coded_at, V4 once.
    def r(u, coder, code, s, e, at="2025-05-01T10:00:00-04:00"):
        return [u, "INT-2001-3.txt", "interview", RID, "", coder, code, s, e, TEXT_3[s:e], at]

    return units_csv([r("V1", "ann", "X", 0, 10), r("V1", "bob", "X", 0, 10), r("V2", "ann", "Y", 10, 20),
                      r("V2", "bob", "Y", 10, 20), r("V3", "bob", "Z", 20, 30, ""), r("V4", "ann", "X", 30, 40)])


def restore_old_vault(settings) -> None:
    """A fresh vault holding what the old code stored (old_vault.json), inserted as it was."""
    from ingestion.store import ensure_schema
    from ingestion.vault import open_vault

    dump = json.loads((OLD_FORM / "old_vault.json").read_text())
    conn = open_vault(settings)
    try:
        ensure_schema(conn)
        for table, rows in dump.items():
            conn.register("old_rows", pl.DataFrame(rows, infer_schema_length=None))
            conn.execute(f"insert into {table} by name select * from old_rows")
            conn.unregister("old_rows")
        conn.execute("checkpoint")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("coded_units_upgrade")
    with warehouse_env(tmp, SECRET):
        from ingestion.settings import load_settings

        settings = load_settings()
        restore_old_vault(settings)
        landing = tmp / "landing"
        for source in ("intake", "transcripts"):
            (landing / source).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DICTIONARY, landing / "intake" / "data_dictionary.csv")
        (landing / "intake" / "ALLIANCE_DATA_2025-06-30_2305.csv").write_bytes(intake_csv())
        # the file the old code read, delivered again (same bytes), and the re-export
        shutil.copyfile(OLD_FORM / OLD_FILE, landing / "transcripts" / OLD_FILE)
        (landing / "transcripts" / "coded_units_2025-06-30.csv").write_bytes(re_exported_csv())
        yield Run(settings, run_pipeline(quiet=True))


def test_upgrade_the_same_bytes_again_are_a_no_op(upgraded):
    # The old file's bytes were processed by the old code: by SHA-256 they are not read again,
    # so its rows the old code quarantined come in only with a re-export (next test).
    assert upgraded.code == 0
    assert upgraded.vault_rows(f"select count(*) from events.batches where file_name = '{OLD_FILE}'") == [(1,)]


def test_upgrade_a_re_export_brings_the_quarantined_rows_without_repeating_the_held_ones(upgraded):
    # Re-export: V1 ann X, V1 bob X, V2 bob Y are new (3 appended); V2 ann Y, V3 bob Z (no
    # coded_at then or now) and V4 ann X are the old events, same content (3 duplicates).
    assert upgraded.vault_rows("select events_appended, duplicates, rows_quarantined from events.batches "
                               "where file_name = 'coded_units_2025-06-30.csv'") == [(3, 3, 0)]
    old_ids = {e["event_id"] for e in json.loads((OLD_FORM / "old_vault.json").read_text())["events.events"]}
    held = upgraded.vault_rows("select event_id from events.events where event_type = 'coded_unit_recorded' "
                               "and (payload->>'transcript_id') like 'INT-2001-3%'")
    assert len(held) == 6 and old_ids <= {h[0] for h in held}


def test_upgrade_old_and_new_events_make_one_coded_unit_each(upgraded):
    # The old events (transcript named INT-2001-3.txt) and the new (INT-2001-3) are one
    # transcript: 6 coded units, one per unit x coder x code.
    t3 = upgraded.key("transcript:INT-2001-3")
    got = upgraded.rows(f"select coder_id, code_path, start_char, end_char, text from coded_units "
                        f"where transcript_key = '{t3}' order by all")
    assert got == sorted([("ann", "X", 0, 10, TEXT_3[0:10]), ("bob", "X", 0, 10, TEXT_3[0:10]),
                          ("ann", "Y", 10, 20, TEXT_3[10:20]), ("bob", "Y", 10, 20, TEXT_3[10:20]),
                          ("bob", "Z", 20, 30, TEXT_3[20:30]), ("ann", "X", 30, 40, TEXT_3[30:40])])
    # Pair (ann, bob): ann coded [0,20) and [30,40), bob [0,30): characters_compared = 40.
    # X: ann V1+V4 = 20, bob V1 = 10; both 10, neither 20 -> po = 30/40 = .75; pa = .5, pb = .25,
    #    pe = .125 + .375 = .5 -> kappa .5; 75 %.
    # Y: ann V2 10, bob V2 10; both 10, neither 30 -> po = 1; pa = pb = .25, pe = .0625 + .5625
    #    = .625 -> kappa (1 - .625)/.375 = 1; 100 %.
    # Z: ann none, bob V3 10; both 0, neither 30 -> po = .75; pa = 0, pb = .25, pe = .75
    #    -> kappa 0/.25 = 0; 75 %.
    got = _agreement(upgraded)
    assert set(got) == {("X", "ann", "bob"), ("Y", "ann", "bob"), ("Z", "ann", "bob")}
    for k, (pct, kappa) in {("X", "ann", "bob"): (75.0, 0.5), ("Y", "ann", "bob"): (100.0, 1.0),
                            ("Z", "ann", "bob"): (75.0, 0.0)}.items():
        n, p, kp = got[k]
        assert n == 40 and float(p) == pytest.approx(pct, abs=1e-9) and float(kp) == pytest.approx(kappa, abs=1e-9)
