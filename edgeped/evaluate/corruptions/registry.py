"""The corruption registry: each family's parameters per severity and its code, by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeped.errors import EdgepedError
from edgeped.registry import Registry

SEVERITIES = (1, 2, 3, 4, 5)

Apply = Callable[[np.ndarray, np.ndarray, np.random.Generator, dict[str, Any]], np.ndarray]


@dataclass(frozen=True)
class Corruption:
    """One corruption: what it models, its parameters per severity, and the code."""

    name: str
    models: str  # one line: what a vehicle camera sees that this imitates
    metadata: str  # how the metadata moves ("" = it does not)
    severities: tuple[dict[str, Any], ...]  # severity s uses severities[s - 1]
    related_augmentation: str  # the training augmentation closest to it ("" = none)
    apply: Apply  # (linear image HxWx3 float32, metadata (6,), rng, params) -> linear image
    # The [augment] keys whose training augmentation imitates this shift: with any of them
    # on, the family counts as trained on, otherwise as held out (see `family_split`).
    augment_keys: tuple[str, ...] = ()

    def params(self, severity: int) -> dict[str, Any]:
        if severity not in SEVERITIES:
            raise EdgepedError(
                f"severity {severity!r} is not one of {SEVERITIES}", "use a severity from 1 to 5"
            )
        return self.severities[severity - 1]


# Filled in suite order as the family modules load (the package imports them).
CORRUPTIONS: Registry[Corruption] = Registry("corruption")


def corruption(
    name: str,
    *,
    models: str,
    severities: tuple[dict[str, Any], ...],
    metadata: str = "",
    related_augmentation: str = "",
    augment_keys: tuple[str, ...] = (),
) -> Callable[[Apply], Apply]:
    """Registers a corruption under `name` with its 5 severity parameter sets."""

    def register(fn: Apply) -> Apply:
        if len(severities) != len(SEVERITIES):
            raise ValueError(f"corruption {name!r} needs {len(SEVERITIES)} severities")
        CORRUPTIONS.register(name)(
            Corruption(name, models, metadata, severities, related_augmentation, fn, augment_keys)
        )
        return fn

    return register


def table(**columns: tuple) -> tuple[dict[str, Any], ...]:
    """Columns of parameter values (one per severity) -> one dict per severity."""
    return tuple(
        dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)
    )
