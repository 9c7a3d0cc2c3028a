"""A warehouse built by the last release before study profiles (commit RELEASE) keeps working.

The old code, checked out in a git worktree, generates a study, runs the pipeline and releases a
funder extract; the code of this checkout then runs over the same vault and kept build, publishes
the new columns, and replays the old extract byte for byte. A study cannot be rebuilt from its
landing zone once erasures and manifests exist, so this is what every upgrade must pass.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import SECRET, warehouse_env

from orchestration.cli import main

ROOT = Path(__file__).resolve().parents[1]
RELEASE = "391b936d6cf3375d75e664f1bddfab0489af53e8"  # main before the study-profile model (issue 15)
AS_OF = "2025-12-31"


def _old(tree: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree), "ALLIANCE_LANDING_DIR": str(tmp / "landing"),
           "ALLIANCE_WAREHOUSE_DIR": str(tmp / "warehouse"), "ALLIANCE_SECRET_KEY": SECRET}
    for k in ("ALLIANCE_STUDY_PROFILE", "ALLIANCE_SITE_TZ", "ALLIANCE_MIN_CELL", "ALLIANCE_K_ANON"):
        env.pop(k, None)
    code = "import sys; from orchestration.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=tree, env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def old_warehouse(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("upgrade")
    tree = tmp / "release"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), RELEASE],
                   check=True, capture_output=True)
    try:
        gen = _old(tree, tmp, "generate", "--participants", "120", "--seed", "11", "--out", str(tmp / "landing"))
        assert gen.returncode == 0, gen.stderr
        run = _old(tree, tmp, "run")
        assert run.returncode == 0, run.stdout + run.stderr
        ext = _old(tree, tmp, "extract", "--as-of", AS_OF)
        assert ext.returncode == 0, ext.stdout + ext.stderr
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)
    return tmp


def test_the_new_code_runs_over_a_warehouse_the_release_built(old_warehouse):
    tmp = old_warehouse
    analytics = tmp / "warehouse" / "analytics.duckdb"
    with duckdb.connect(str(analytics), read_only=True) as con:
        before = con.execute("select arm, count(*) from engagement group by arm order by arm").fetchall()
    with warehouse_env(tmp, SECRET):
        assert main(["run"]) == 0
    with duckdb.connect(str(analytics), read_only=True) as con:
        after = con.execute("select arm, count(*) from engagement group by arm order by arm").fetchall()
        labels = con.execute("select count(*) from participants where sex_label is not null").fetchone()[0]
        cohorts = {r[0] for r in con.execute("select distinct cohort from table1").fetchall()}
    assert after == before  # the same people, in the same arms
    assert labels > 0 and cohorts == {"enrolled", "randomized", "qualitative"}


def test_an_extract_the_release_wrote_replays_byte_for_byte(old_warehouse):
    tmp = old_warehouse
    manifests = sorted((tmp / "warehouse" / "extracts" / "funder").glob("*/manifest.json"))
    original = [m for m in manifests if not m.parent.name.endswith("-replay")][0]
    with warehouse_env(tmp, SECRET):
        assert main(["extract", "--replay", str(original)]) == 0
    folder = original.parent.parent / f"{original.parent.name}-replay"
    replay = json.loads((folder / "manifest.json").read_text())
    # every data file (CSVs, participant-level file, workbook) is the release's, byte for byte; the
    # report's arm colours changed with the code (Okabe-Ito by arm position), which the replay
    # manifest's other code version accounts for
    assert replay["code_version"] != json.loads(original.read_text())["code_version"]
    data_files = [p.name for p in original.parent.iterdir() if p.name not in ("manifest.json", "report.html")]
    assert len(data_files) == 6
    for name in data_files:
        assert (folder / name).read_bytes() == (original.parent / name).read_bytes(), name
