"""The command line: exit statuses and one-line errors, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orchestration.cli import main

BIN = Path(sys.executable).parent / "alliance-wh"


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2


def test_status_of_an_empty_warehouse(wh, capsys):
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "nothing ingested yet" in out and "published: nothing yet" in out


def test_a_wrong_secret_is_a_configuration_error_in_one_line(wh, monkeypatch, capsys):
    from conftest import FIXTURES, land

    from ingestion.ingest import ingest_landing

    land(wh, "intake", "data_dictionary.csv", FIXTURES / "intake_dictionary.csv")
    ingest_landing(wh)
    monkeypatch.setenv("ALLIANCE_SECRET_KEY", "a-different-secret-entirely")
    assert main(["status"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot be opened with this secret" in err[0]


def test_the_installed_command_reports_bad_settings_without_a_traceback(tmp_path):
    proc = subprocess.run([str(BIN), "run"], capture_output=True, text=True,
                          env={"ALLIANCE_WAREHOUSE_DIR": str(tmp_path), "ALLIANCE_SITE_TZ": "Nowhere/Atlantis",
                               "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "ALLIANCE_SITE_TZ" in proc.stderr


def test_accept_of_a_file_that_is_not_held_back_is_a_usage_error(wh, capsys):
    from conftest import FIXTURES, land

    path = land(wh, "intake", "data_dictionary.csv", FIXTURES / "intake_dictionary.csv")
    assert main(["accept", str(path)]) == 2
    assert "not a snapshot held back" in capsys.readouterr().err
