"""The study's arms as an extract sees them: from the study profile (CONTRACT 1.5), never a fixed list.

``StudyArms.labels`` are the profile's arm labels in the profile's order;
``by_allocation`` the arms whose intervention is given by allocation (their
profile service is none, such as the contract's ``Standard`` referral: in
CONSORT their ``received_intervention`` equals ``allocated`` by definition).
A study without arms (``labels`` empty) is not randomized: its by-arm rows
and curves are the one arm ``All`` (the enrolled, from consent).

Colours: arm i (profile order) takes the i-th colour of the Okabe-Ito
palette, which stays distinguishable without colour vision; ``All`` is grey.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

ALL = "All"
# the arm of every participant-level row in a study without arms (the contract's label of that state)
NOT_RANDOMIZED = "Not randomized"
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000")
ALL_COLOR = "#555555"


def plotted(labels: Sequence[str]) -> tuple[str, ...]:
    """The groups drawn as curves in the report: the arms; ``All`` in a study without arms."""
    return tuple(labels) if labels else (ALL,)


@dataclass(frozen=True)
class StudyArms:
    labels: tuple[str, ...]
    by_allocation: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "by_allocation", frozenset(self.by_allocation))
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"two arms share a label: {self.labels}")
        if ALL in self.labels:
            raise ValueError("`All` is every arm together, not an arm")
        unknown = self.by_allocation - set(self.labels)
        if unknown:
            raise ValueError(f"by_allocation names arms the study lacks: {sorted(unknown)}")

    @classmethod
    def of(cls, labels: Iterable[str], by_allocation: Iterable[str] = ()) -> StudyArms:
        return cls(tuple(labels), frozenset(by_allocation))

    @classmethod
    def from_profile(cls, profile) -> StudyArms:
        """The arms of a :class:`ingestion.profile.StudyProfile` (labels once each, in its order)."""
        labels = tuple(dict.fromkeys(profile.arms.values()))
        return cls(labels, frozenset(a for a in labels if profile.arm_services.get(a) is None))

    @property
    def randomized(self) -> bool:
        return bool(self.labels)

    @property
    def rows(self) -> tuple[str, ...]:
        """The rows of a by-arm file: every arm then ``All``; ``All`` alone in a study without arms."""
        return (*self.labels, ALL)

    @property
    def plotted(self) -> tuple[str, ...]:
        """The groups drawn as curves in the report (see :func:`plotted`)."""
        return plotted(self.labels)

    def color(self, arm: str) -> str:
        if arm in self.labels:
            return OKABE_ITO[self.labels.index(arm) % len(OKABE_ITO)]
        return ALL_COLOR if arm == ALL else "#000000"
