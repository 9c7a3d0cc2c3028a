"""dbt-duckdb plugin: make dbt's connection fit for identified data.

Loads httpfs from its wheel (encrypted writes need it; nothing is downloaded),
encrypts spill files, and registers ``participant_key(record_id)``: an
HMAC-SHA256 keyed with a key derived from the secret, so the published key
cannot be reversed without it.
"""

from __future__ import annotations

import os

from dbt.adapters.duckdb.plugins import BasePlugin
from duckdb import DuckDBPyConnection

from ingestion.vault import MEMORY_LIMIT, httpfs_extension_path, register_participant_key, sql_str


class Plugin(BasePlugin):
    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        conn.execute(f"LOAD {sql_str(str(httpfs_extension_path()))}")
        conn.execute("SET temp_file_encryption = true")
        # once per connection (DuckDB refuses to move its spill folder after it has spilled)
        conn.execute(f"SET memory_limit = {sql_str(MEMORY_LIMIT)}")
        spill = os.environ.get("ALLIANCE_SPILL_DIR")
        if spill:
            conn.execute(f"SET temp_directory = {sql_str(spill)}")
        conn.execute("SET autoinstall_known_extensions = false")
        key = os.environ.get("DBT_ENV_SECRET_PARTICIPANT_KEY", "")
        if key:
            register_participant_key(conn, key)
