"""A small registry of architectures: a name maps to a builder function."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from edgeped.registry import Registry

ARCHITECTURES: Registry[Callable[..., Any]] = Registry("architecture")
register = ARCHITECTURES.register


@dataclass(frozen=True)
class ModelSpec:
    """Which architecture to build, how wide (channel multiplier) and how deep.

    `depth` is the student family's blocks-per-stage knob (see models/student.py);
    the teacher and tiny architectures ignore it.
    """

    architecture: str = "student"
    width: float = 1.0
    use_metadata: bool = True
    dropout: float = 0.1
    depth: int = 1

    def __post_init__(self) -> None:
        _load_builders()
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"architecture {self.architecture!r} is unknown; allowed: {sorted(ARCHITECTURES)}"
            )
        if not 0.05 <= self.width <= 4.0:
            raise ValueError(f"width must be in [0.05, 4], got {self.width}")
        if not 1 <= self.depth <= 4:
            raise ValueError(f"depth must be an integer in [1, 4], got {self.depth}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "model") -> ModelSpec:
        from edgeped.config import from_mapping

        return from_mapping(cls, data, where=where)


def _load_builders() -> None:
    # Builders register on import; they import nothing heavy at module level.
    from edgeped.models import mobilenet, student, teacher, tiny, vgg  # noqa: F401


def build_model(spec: ModelSpec):
    """Builds an uncompiled Keras model with inputs `image` (and `meta`) and output `score`."""
    _load_builders()
    return ARCHITECTURES[spec.architecture](spec)
