"""dbt-duckdb plugin: make dbt's connection fit for identified data.

Loads httpfs from its wheel (encrypted writes need it; nothing is downloaded),
encrypts spill files, and registers ``participant_key(record_id)``: an
HMAC-SHA256 keyed with a key derived from the secret, so the published key
cannot be reversed without it.
"""

from __future__ import annotations

import hashlib
import hmac
import os

import pyarrow as pa
from dbt.adapters.duckdb.plugins import BasePlugin
from duckdb import DuckDBPyConnection
from duckdb.sqltypes import VARCHAR

from ingestion.vault import httpfs_extension_path, sql_str


def make_participant_key(key: str):
    k = key.encode()

    def participant_key(record_ids: pa.Array) -> pa.Array:
        values = record_ids.to_pylist()
        out = [None if v is None else hmac.new(k, v.encode(), hashlib.sha256).hexdigest()[:24] for v in values]
        return pa.array(out, type=pa.string())

    return participant_key


class Plugin(BasePlugin):
    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        conn.execute(f"LOAD {sql_str(str(httpfs_extension_path()))}")
        conn.execute("SET temp_file_encryption = true")
        conn.execute("SET autoinstall_known_extensions = false")
        key = os.environ.get("DBT_ENV_SECRET_PARTICIPANT_KEY", "")
        if key:
            conn.create_function(
                "participant_key", make_participant_key(key), [VARCHAR], VARCHAR, type="arrow",
                null_handling="special", side_effects=False,
            )
