"""Connections to the encrypted identified store (the vault) and the writer lock."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import os
from collections.abc import Iterator
from pathlib import Path

import duckdb

from ingestion.settings import ConfigError, Settings

DUCKDB_VERSION = "v1.5.5"
# DuckDB's own buffer memory per connection (it spills the rest, encrypted, to a temp
# folder). Its default is 80% of the machine; the nightly run must stay under 4 GiB.
MEMORY_LIMIT = "2GB"


def httpfs_extension_path() -> Path:
    """The httpfs extension shipped by the ``duckdb-extension-httpfs`` wheel.

    Writing an encrypted DuckDB file needs OpenSSL, which httpfs brings; it is
    loaded from the wheel's folder because nothing may be downloaded at run time.
    """
    import duckdb_extension_httpfs

    path = Path(duckdb_extension_httpfs.__file__).parent / "extensions" / DUCKDB_VERSION / "httpfs.duckdb_extension"
    if not path.is_file():
        raise ConfigError(f"httpfs extension for DuckDB {DUCKDB_VERSION} is not installed ({path})")
    return path


def sql_str(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def secure_connection(memory_limit: str | None = MEMORY_LIMIT, temp_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection fit for identified data.

    httpfs is loaded (encrypted writes), spill files are encrypted (into
    ``temp_dir``, owner-only, when given), memory is capped, and no extension
    may be fetched from the network.
    """
    conn = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    conn.execute(f"LOAD {sql_str(str(httpfs_extension_path()))}")
    conn.execute("SET temp_file_encryption = true")
    if memory_limit:
        conn.execute(f"SET memory_limit = {sql_str(memory_limit)}")
    if temp_dir is not None:
        temp_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(temp_dir, 0o700)
        conn.execute(f"SET temp_directory = {sql_str(str(temp_dir))}")
    return conn


def spill_dir(settings: Settings) -> Path:
    """Where DuckDB spills (encrypted) what does not fit in memory."""
    return settings.warehouse_dir / ".spill"


def attach_encrypted(conn: duckdb.DuckDBPyConnection, path: Path, alias: str, key: str, read_only: bool = False) -> None:
    opts = f"ENCRYPTION_KEY {sql_str(key)}"
    if read_only:
        opts += ", READ_ONLY"
    try:
        conn.execute(f"ATTACH {sql_str(str(path))} AS {alias} ({opts})")
    except duckdb.Error as exc:
        text = str(exc)
        if "without a key" in text or "key" in text.lower() and "encrypt" in text.lower():
            raise ConfigError(
                f"{path.name} cannot be opened with this secret (wrong ALLIANCE_SECRET_KEY or key file?)"
            ) from None
        if "lock" in text.lower():
            raise ConfigError(f"{path.name} is in use by another process; try again when it has finished") from None
        raise


def make_participant_key(key: str):
    """The keyed hash of a record_id (HMAC-SHA256, 96 bits): the analysts' participant_key."""
    import pyarrow as pa

    k = key.encode()

    def participant_key(record_ids):
        values = record_ids.to_pylist()
        out = [None if v is None else hmac.new(k, v.encode(), hashlib.sha256).hexdigest()[:24] for v in values]
        return pa.array(out, type=pa.string())

    return participant_key


def register_participant_key(conn: duckdb.DuckDBPyConnection, key: str) -> None:
    from duckdb.sqltypes import VARCHAR

    conn.create_function("participant_key", make_participant_key(key), [VARCHAR], VARCHAR, type="arrow",
                         null_handling="special", side_effects=False)


def participant_hash_key(conn: duckdb.DuckDBPyConnection, settings: Settings, create: bool = False) -> str:
    """The participant_key hash key, kept in the vault so that keys stay stable when the secret rotates.

    It is derived from the secret that created the vault, and stored (encrypted) beside the data.
    """
    exists = conn.execute(
        "select count(*) from duckdb_tables() where database_name = 'vault' and schema_name = 'identified' "
        "and table_name = 'keyring'").fetchone()[0]
    if exists:
        row = conn.execute("select value from vault.identified.keyring where name = 'participant_key'").fetchone()
        if row:
            return row[0]
    key = settings.participant_hash_key
    if create:
        conn.execute("create schema if not exists vault.identified")
        conn.execute("create table if not exists vault.identified.keyring (name varchar, value varchar)")
        conn.execute(f"insert into vault.identified.keyring values ('participant_key', {sql_str(key)})")
    return key


def open_vault(settings: Settings, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection whose default catalog is the vault (with the participant_key function)."""
    if read_only and not settings.vault_path.exists():
        raise ConfigError(f"no vault yet at {settings.vault_path}: run `alliance-wh run` first")
    settings.warehouse_dir.mkdir(parents=True, exist_ok=True)
    conn = secure_connection(temp_dir=spill_dir(settings))
    attach_encrypted(conn, settings.vault_path, "vault", settings.vault_key, read_only=read_only)
    conn.execute("USE vault")
    register_participant_key(conn, participant_hash_key(conn, settings, create=not read_only))
    if not read_only:
        with contextlib.suppress(OSError):
            os.chmod(settings.vault_path, 0o600)
    return conn


@contextlib.contextmanager
def writer_lock(settings: Settings) -> Iterator[None]:
    """Serialise the warehouse's writers (one DuckDB writer per file)."""
    settings.warehouse_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError("another alliance-wh run is writing the warehouse; wait for it to finish") from None
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def copy_vault(settings: Settings, new_key: str) -> Path:
    """Copy the vault, table by table, into a fresh file encrypted with ``new_key`` (owner-only).

    A fresh file holds none of the blocks that deleted rows leave behind. The
    caller renames it over the vault.
    """
    fresh = settings.vault_path.with_name(".vault.fresh.duckdb")
    for leftover in (fresh, fresh.with_name(fresh.name + ".wal")):
        leftover.unlink(missing_ok=True)
    conn = secure_connection(temp_dir=spill_dir(settings))
    try:
        attach_encrypted(conn, settings.vault_path, "old", settings.vault_key, read_only=True)
        attach_encrypted(conn, fresh, "fresh", new_key)
        conn.execute("copy from database old to fresh")
        conn.execute("detach fresh")
        conn.execute("detach old")
    finally:
        conn.close()
    os.chmod(fresh, 0o600)
    return fresh


def replace_vault(settings: Settings, fresh: Path) -> None:
    os.replace(fresh, settings.vault_path)
    settings.vault_path.with_name(settings.vault_path.name + ".wal").unlink(missing_ok=True)
