"""Synthetic generators by name: each is one registry entry naming its config class, its
writer and its Beam writer.

The CLI looks a generator up by name and builds its config from whichever options the
config has fields for: an option the generator does not take is refused by name, never
silently dropped. The generator modules load on first use, not when the CLI starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgeped.errors import EdgepedError
from edgeped.registry import Registry


@dataclass(frozen=True)
class Generator:
    """A registered generator: its config class, its local writer and its Beam writer.

    ``beam_write(out_dir, config, beam, *, shard_records, overwrite)`` writes the same
    bytes as ``write`` on Apache Beam; None where the generator has no Beam pipeline.
    """

    name: str
    config_class: type
    write: Callable[..., dict]
    summary: str
    beam_write: Callable[..., dict] | None = None

    def fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self.config_class))

    def config(self, options: dict[str, Any]) -> Any:
        """Builds this generator's config from options (None = the default).

        Raises:
            EdgepedError: an option this generator has no field for, or a bad value.
        """
        given = {k: v for k, v in options.items() if v is not None}
        unknown = sorted(set(given) - set(self.fields()))
        if unknown:
            takers = [n for n in names() if n != self.name and set(unknown) <= set(get(n).fields())]
            flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
            raise EdgepedError(
                f"the {self.name} generator does not take {flags}",
                f"add --generator {takers[0]}" if takers else "drop those options",
            )
        try:
            return self.config_class(**given)
        except (TypeError, ValueError) as exc:
            raise EdgepedError(f"invalid option: {exc}", "see --help for allowed values") from exc


# name -> a function that imports the generator's module and describes it: the modules
# (numpy, renderers) load on first use, not when the CLI starts.
GENERATORS: Registry[Callable[[], Generator]] = Registry("generator")
register = GENERATORS.register


@register("v1")
def _v1() -> Generator:
    from edgeped.data import synthetic

    def beam_write(*args: Any, **kwargs: Any) -> dict:
        from edgeped.data.beam_pipeline import write_synthetic_beam

        return write_synthetic_beam(*args, **kwargs)

    return Generator(
        "v1",
        synthetic.SynthConfig,
        synthetic.write_synthetic,
        "the quick, easy street crops",
        beam_write,
    )


@register("fleet")
def _fleet() -> Generator:
    from edgeped.data import fleet

    def beam_write(*args: Any, **kwargs: Any) -> dict:
        from edgeped.data.beam_pipeline import write_fleet_beam

        return write_fleet_beam(*args, **kwargs)

    return Generator(
        "fleet",
        fleet.FleetConfig,
        fleet.write_fleet,
        "the realistic fleet (conditions, near-miss negatives, per-field dropouts)",
        beam_write,
    )


def names() -> tuple[str, ...]:
    return tuple(GENERATORS)


def get(name: str) -> Generator:
    """The registered generator `name`.

    Raises:
        EdgepedError: no generator has that name.
    """
    if name not in GENERATORS:
        raise EdgepedError(f"unknown generator {name!r}", f"use one of {', '.join(names())}")
    return GENERATORS[name]()


def check_shard_records(shard_records: object) -> None:
    """Refuses a shard size that is not a whole number >= 1 (either runner, before any work).

    Raises:
        EdgepedError: naming the value and an example.
    """
    if not isinstance(shard_records, int) or shard_records < 1:
        raise EdgepedError(
            f"shard_records must be a whole number >= 1, got {shard_records!r}",
            "pass e.g. --shard-records 4096",
        )


def write_dataset(
    name: str,
    out_dir: str,
    options: dict[str, Any],
    *,
    shard_records: int = 4096,
    overwrite: bool = False,
    split_fractions: tuple[float, float, float] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Renders generator `name`'s dataset into `out_dir`; returns the manifest.

    Everything is validated (options, shard size, an existing dataset without
    `overwrite`) before anything is written; every split given a share of the
    drives must get some, else nothing replaces `out_dir`.

    Raises:
        EdgepedError: as `Generator.config`, a bad shard size, or a write failure.
    """
    check_shard_records(shard_records)
    from edgeped.data.shards import DEFAULT_SPLIT_FRACTIONS, default_required_splits

    generator = get(name)
    config = generator.config(options)
    fractions = split_fractions or DEFAULT_SPLIT_FRACTIONS
    return generator.write(
        out_dir,
        config,
        shard_records=shard_records,
        overwrite=overwrite,
        split_fractions=fractions,
        required_splits=default_required_splits(fractions),
        progress=progress,
    )
