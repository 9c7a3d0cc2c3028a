"""Resources shared by every area: the warehouse settings and the dbt CLI."""


import json
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from ingestion.profile import StudyProfile, load_profile
from ingestion.settings import Settings, load_settings
from orchestration.steps.dbt_setup import DBT_PROJECT_DIR, dbt_executable

# One writer at a time: every asset that writes a DuckDB file runs in this pool.
WRITER_POOL = "warehouse_writer"


class WarehouseResource(dg.ConfigurableResource):
    """Settings come from ALLIANCE_* variables, read when a step runs (never at import)."""

    def settings(self) -> Settings:
        return load_settings()

    def profile(self) -> StudyProfile:
        return load_profile(self.settings().study_profile)

    def run_file(self, run_id: str, name: str) -> Path:
        folder = self.settings().runs_dir / run_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    def write_run_json(self, run_id: str, name: str, data: dict) -> None:
        self.run_file(run_id, name).write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")

    def read_run_json(self, run_id: str, name: str) -> dict:
        path = self.run_file(run_id, name)
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def progress(message: str) -> None:
    """A line of the CLI's progress display (stderr); silent under the web UI."""
    import os
    import sys

    if os.environ.get("ALLIANCE_PROGRESS") == "1":
        print(f"  - {message}", file=sys.stderr, flush=True)


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "warehouse": WarehouseResource(),
            "dbt": DbtCliResource(
                project_dir=str(DBT_PROJECT_DIR), profiles_dir=str(DBT_PROJECT_DIR), dbt_executable=dbt_executable()
            ),
        }
    )
