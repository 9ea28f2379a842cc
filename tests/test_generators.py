"""The generator registry: a generator is one registry entry, found by name on both runners."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from edgeped.data import generator_registry, scaleout
from edgeped.data.beam_runtime import BeamConfig
from edgeped.data.generator_registry import GENERATORS, Generator
from edgeped.data.generators import GeneratorConfig
from edgeped.errors import EdgepedError


@dataclass(frozen=True)
class _FakeConfig(GeneratorConfig):
    sparkle: float = 0.5


@pytest.fixture
def fake_generator():
    """Registers `fake` (and `fake-local`, without Beam) for one test, recording calls."""
    calls: list[tuple] = []

    def write(out_dir, config, **kwargs):
        calls.append(("local", out_dir, config, kwargs))
        return {"generator": "fake"}

    def beam_write(out_dir, config, beam, **kwargs):
        calls.append(("beam", out_dir, config, beam, kwargs))
        return {"generator": "fake", "runner": "beam"}

    GENERATORS.register("fake")(lambda: Generator("fake", _FakeConfig, write, "x", beam_write))
    GENERATORS.register("fake-local")(lambda: Generator("fake-local", _FakeConfig, write, "x"))
    yield calls
    for name in ("fake", "fake-local"):
        GENERATORS._items.pop(name)  # noqa: SLF001 - undo the test's registration


def test_a_registered_generator_runs_locally_and_on_beam(fake_generator, tmp_path):
    assert {"v1", "fleet", "fake"} <= set(generator_registry.names())
    manifest = generator_registry.write_dataset(
        "fake", str(tmp_path), {"drives": 3, "sparkle": 0.1}
    )
    assert manifest == {"generator": "fake"}
    kind, out, config, kwargs = fake_generator[0]
    assert (kind, out, config) == ("local", str(tmp_path), _FakeConfig(drives=3, sparkle=0.1))
    assert kwargs["shard_records"] == 4096 and kwargs["overwrite"] is False
    beam = BeamConfig()
    result = scaleout.synth("fake", str(tmp_path), {"sparkle": 0.2}, beam=beam, overwrite=True)
    assert result["runner"] == "beam"
    assert fake_generator[1][:4] == ("beam", str(tmp_path), _FakeConfig(sparkle=0.2), beam)
    assert fake_generator[1][4] == {"shard_records": 4096, "overwrite": True}


def test_a_generator_without_beam_is_refused_on_beam(fake_generator, tmp_path):
    with pytest.raises(EdgepedError, match="the fake-local generator has no Beam pipeline"):
        scaleout.synth("fake-local", str(tmp_path), {}, beam=BeamConfig())
    assert fake_generator == [], "nothing was written"


def test_options_a_generator_lacks_are_refused_by_name(fake_generator):
    with pytest.raises(EdgepedError, match="does not take --difficulty") as err:
        generator_registry.get("fake").config({"difficulty": 0.3})
    assert err.value.fix == "add --generator fleet"
    with pytest.raises(EdgepedError, match="unknown generator 'nope'"):
        generator_registry.get("nope")


@pytest.mark.parametrize(
    "name, config_class, beam_writer",
    [
        ("v1", "edgeped.data.synthetic.SynthConfig", "write_synthetic_beam"),
        ("fleet", "edgeped.data.fleet.FleetConfig", "write_fleet_beam"),
    ],
)
def test_builtin_generators_reach_their_beam_pipeline(
    name, config_class, beam_writer, monkeypatch, tmp_path
):
    from edgeped.data import beam_pipeline

    seen = []
    monkeypatch.setattr(
        beam_pipeline, beam_writer, lambda *args, **kwargs: seen.append(args) or {"ok": name}
    )
    assert scaleout.synth(name, str(tmp_path), {"drives": 2}, beam=BeamConfig()) == {"ok": name}
    ((out, config, _),) = seen
    assert out == str(tmp_path) and config.drives == 2
    assert f"{type(config).__module__}.{type(config).__name__}" == config_class
