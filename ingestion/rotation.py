"""`alliance-wh rotate-key`: re-encrypt the warehouse under a new secret.

The vault is copied into a fresh file encrypted with the key derived from the
new secret, then renamed over the old one; the build database (encrypted with
the old secret) is deleted, the next run rebuilds it. participant_key values do
not change: their hash key is kept inside the vault. With a key file, the new
secret replaces it (the old one is kept as `.secret.key.previous` until you have
checked the rotation and backed up the new key; then delete it).
"""

from __future__ import annotations

import dataclasses
import os
import secrets

from ingestion.settings import KEY_FILE_NAME, ConfigError, Settings
from ingestion.vault import copy_vault, open_vault, participant_hash_key, replace_vault, writer_lock


def rotate_key(settings: Settings, new_secret: str | None) -> str:
    """Re-encrypt the vault; returns where the new secret lives (never the secret)."""
    using_file = settings.secret_source != "ALLIANCE_SECRET_KEY"
    if new_secret is None:
        if not using_file:
            raise ConfigError("set ALLIANCE_NEW_SECRET_KEY to the new secret (16+ characters), then run rotate-key "
                              "and switch ALLIANCE_SECRET_KEY to it")
        new_secret = secrets.token_urlsafe(48)
    if len(new_secret) < 16:
        raise ConfigError("the new secret must be at least 16 characters long")
    if not settings.vault_path.exists():
        raise ConfigError(f"no vault at {settings.vault_path}: nothing to rotate")
    new = dataclasses.replace(settings, _secret=new_secret)
    with writer_lock(settings):
        conn = open_vault(settings)  # pins the participant_key hash key inside the vault if not yet there
        participant_hash_key(conn, settings, create=True)
        conn.execute("checkpoint")
        conn.close()
        fresh = copy_vault(settings, new.vault_key)
        key_file = settings.warehouse_dir / KEY_FILE_NAME
        if using_file:
            staged = key_file.with_name(KEY_FILE_NAME + ".next")
            fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(new_secret + "\n")
            os.replace(key_file, key_file.with_name(KEY_FILE_NAME + ".previous"))
            replace_vault(settings, fresh)
            os.replace(staged, key_file)
        else:
            replace_vault(settings, fresh)
        settings.build_path.unlink(missing_ok=True)
    return str(key_file) if using_file else "ALLIANCE_NEW_SECRET_KEY (now set ALLIANCE_SECRET_KEY to it)"
