"""Study profiles: a YAML file mapping concepts onto a REDCap project's fields and codes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ingestion.settings import ConfigError

REQUIRED_CONCEPTS = ("record_id",)


@dataclass(frozen=True)
class StudyProfile:
    name: str
    fields: dict[str, str]
    yes_code: str
    arms: dict[str, str]
    withdrawal_scopes: dict[str, int]
    drug_classes: dict[str, str]
    safe_free_text: tuple[str, ...]
    all_consented: bool

    def field(self, concept: str) -> str | None:
        return self.fields.get(concept)

    def dbt_vars(self) -> dict[str, Any]:
        """The profile as dbt vars (models read it with ``var('profile')``)."""
        return {
            "fields": self.fields,
            "yes_code": self.yes_code,
            "arms": self.arms,
            "withdrawal_scopes": {k: int(v) for k, v in self.withdrawal_scopes.items()},
            "drug_classes": self.drug_classes,
            "all_consented": self.all_consented,
        }


def load_profile(path: Path) -> StudyProfile:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"study profile {path} cannot be read: {type(exc).__name__}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("intake"), dict):
        raise ConfigError(f"study profile {path} has no `intake:` mapping")
    intake = doc["intake"]
    fields = {str(k): str(v) for k, v in (intake.get("fields") or {}).items() if v}
    for concept in REQUIRED_CONCEPTS:
        if concept not in fields:
            raise ConfigError(f"study profile {path} does not map the concept `{concept}`")
    return StudyProfile(
        name=str(doc.get("name", path.stem)),
        fields=fields,
        yes_code=str(intake.get("yes_code", "1")),
        arms={str(k): str(v) for k, v in (intake.get("arms") or {}).items()},
        withdrawal_scopes={str(k): int(v) for k, v in (intake.get("withdrawal_scopes") or {}).items()},
        drug_classes={str(k): str(v) for k, v in (intake.get("drug_classes") or {}).items()},
        safe_free_text=tuple(str(x) for x in intake.get("safe_free_text") or ()),
        all_consented=bool(intake.get("all_consented", False)),
    )
