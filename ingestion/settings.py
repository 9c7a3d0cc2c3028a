"""Settings: the one module that reads ``ALLIANCE_*`` environment variables.

Nothing reads the environment at import time; call :func:`load_settings`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PROFILE = Path(__file__).resolve().parent / "profiles" / "default.yaml"
KEY_FILE_NAME = ".secret.key"


class ConfigError(Exception):
    """A usage or configuration error (exit status 2)."""


@dataclass(frozen=True)
class Settings:
    landing_dir: Path
    warehouse_dir: Path
    site_tz: str
    min_cell: int
    k_anon: int
    study_profile: Path
    secret_source: str  # "env" or the key file path; never the secret itself
    _secret: str = field(repr=False, default="")

    # Files of the warehouse -------------------------------------------------
    @property
    def vault_path(self) -> Path:
        return self.warehouse_dir / "vault.duckdb"

    @property
    def analytics_path(self) -> Path:
        return self.warehouse_dir / "analytics.duckdb"

    @property
    def build_dir(self) -> Path:
        return self.warehouse_dir / "build"

    @property
    def build_path(self) -> Path:
        return self.build_dir / "build.duckdb"

    @property
    def runs_dir(self) -> Path:
        return self.warehouse_dir / "runs"

    @property
    def lock_path(self) -> Path:
        return self.warehouse_dir / ".writer.lock"

    # Keys derived from the secret --------------------------------------------
    def derive(self, purpose: str) -> str:
        """A hex key for one purpose, derived from the secret (HMAC-SHA256)."""
        return hmac.new(self._secret.encode(), purpose.encode(), hashlib.sha256).hexdigest()

    @property
    def vault_key(self) -> str:
        return self.derive("alliance/vault-file-key/v1")

    @property
    def build_key(self) -> str:
        return self.derive("alliance/build-file-key/v1")

    @property
    def participant_hash_key(self) -> str:
        return self.derive("alliance/participant-key/v1")


def _int_env(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _path_env(name: str, default: Path) -> Path:
    raw = os.environ.get(name, "").strip()
    return Path(raw).expanduser().resolve() if raw else default


def _resolve_secret(warehouse_dir: Path, create: bool) -> tuple[str, str]:
    env_secret = os.environ.get("ALLIANCE_SECRET_KEY")
    if env_secret is not None and env_secret != "":
        if len(env_secret) < 16:
            raise ConfigError("ALLIANCE_SECRET_KEY must be at least 16 characters long")
        return env_secret, "ALLIANCE_SECRET_KEY"
    key_file = warehouse_dir / KEY_FILE_NAME
    if key_file.exists():
        mode = key_file.stat().st_mode & 0o077
        if mode:
            raise ConfigError(
                f"key file {key_file} is readable by others; run: chmod 600 {key_file}"
            )
        secret = key_file.read_text(encoding="ascii").strip()
        if len(secret) < 16:
            raise ConfigError(f"key file {key_file} holds fewer than 16 characters")
        return secret, str(key_file)
    if not create:
        raise ConfigError(
            f"no secret: set ALLIANCE_SECRET_KEY or restore the key file {key_file}"
        )
    warehouse_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secret + "\n")
    return secret, str(key_file)


def load_settings(create_key: bool = True, require_secret: bool = True) -> Settings:
    """Read every ``ALLIANCE_*`` setting, with the contract's defaults.

    ``require_secret=False`` (checks that write nothing): without a secret or key file the
    settings carry none (``secret_source`` empty) instead of raising or creating a key file.
    """
    landing = _path_env("ALLIANCE_LANDING_DIR", PROJECT_ROOT / "landing")
    warehouse = _path_env("ALLIANCE_WAREHOUSE_DIR", PROJECT_ROOT / "warehouse")
    tz = os.environ.get("ALLIANCE_SITE_TZ", "").strip() or "America/New_York"
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"ALLIANCE_SITE_TZ is not a known time zone: {tz!r}") from None
    profile = _path_env("ALLIANCE_STUDY_PROFILE", DEFAULT_PROFILE)
    if not profile.is_file():
        raise ConfigError(f"ALLIANCE_STUDY_PROFILE does not name a file: {profile}")
    min_cell = _int_env("ALLIANCE_MIN_CELL", 10, 1)
    k_anon = _int_env("ALLIANCE_K_ANON", 5, 2)
    try:
        secret, source = _resolve_secret(warehouse, create_key and require_secret)
    except ConfigError:
        if require_secret:
            raise
        secret, source = "", ""
    return Settings(
        landing_dir=landing,
        warehouse_dir=warehouse,
        site_tz=tz,
        min_cell=min_cell,
        k_anon=k_anon,
        study_profile=profile,
        secret_source=source,
        _secret=secret,
    )
