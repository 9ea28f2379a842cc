"""Running edgeped's Beam pipelines: runner choice, `--beam-option K=V` parsing, results.

Without a `runner` option the pipelines run on Beam's FnApiRunner in
multi-processing mode on this machine (one worker per core unless
`direct_num_workers` says otherwise). The runner is named explicitly because
Beam's DirectRunner first tries to download its Prism runner from the internet;
this way nothing leaves the machine. Any other runner (DataflowRunner,
FlinkRunner, SparkRunner, PortableRunner) is chosen with `runner=...` and
configured with its own options, all passed through unchanged.

Small per-element results (manifest entries, verification reports, scores) come
back to the caller through files under a results folder: a local temp folder
by default, or `temp_location` (any Beam filesystem, e.g. gs://) on a cluster.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgeped.errors import EdgepedError

LOCAL_RUNNER = "FnApiRunner"


@dataclass(frozen=True)
class BeamConfig:
    """Where and how a Beam pipeline runs.

    Args:
        options: `K=V` strings, as on the command line (`--beam-option K=V`); keys
            are Beam pipeline option names without the leading dashes.
    """

    options: tuple[str, ...] = ()
    parsed: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parsed: dict[str, str] = {}
        for item in self.options:
            key, sep, value = item.partition("=")
            key = key.strip().lstrip("-")
            if not sep or not key:
                raise ValueError(f"options must be K=V, got {item!r} (e.g. direct_num_workers=2)")
            parsed[key] = value
        if "direct_num_workers" in parsed:
            try:
                if int(parsed["direct_num_workers"]) < 1:
                    raise ValueError
            except ValueError:
                raise ValueError(
                    f"options direct_num_workers must be an integer >= 1, "
                    f"got {parsed['direct_num_workers']!r}"
                ) from None
        object.__setattr__(self, "parsed", parsed)

    @property
    def runner(self) -> str:
        return self.parsed.get("runner", LOCAL_RUNNER)

    @property
    def is_local(self) -> bool:
        return self.runner in (LOCAL_RUNNER, "DirectRunner")

    @property
    def workers(self) -> int:
        return int(self.parsed.get("direct_num_workers", os.cpu_count() or 1))

    def to_dict(self) -> dict:
        return {"runner": self.runner, "options": list(self.options)}


def pipeline_options(config: BeamConfig):
    """Beam PipelineOptions for `config`; unknown option names are an error, not a warning.

    Raises:
        EdgepedError: an option name no installed Beam runner knows.
    """
    from apache_beam.options.pipeline_options import PipelineOptions

    flags = [f"--{k}={v}" for k, v in config.parsed.items() if k != "runner" or not config.is_local]
    if config.is_local:
        flags += [
            "--direct_running_mode=multi_processing",
            f"--direct_num_workers={config.workers}",
        ]
    options = PipelineOptions(flags)
    known = options.get_all_options()
    unknown = sorted(k for k in config.parsed if k not in known)
    if unknown:
        raise EdgepedError(
            f"unknown Beam option(s) {unknown}",
            "use Beam pipeline option names, e.g. runner=DataflowRunner, "
            "direct_num_workers=2, flink_master=HOST:PORT (see docs/scale.md)",
        )
    return options


def make_pipeline(config: BeamConfig):
    """A beam.Pipeline on the configured runner (FnApiRunner multi-processing by default)."""
    import apache_beam as beam

    options = pipeline_options(config)
    if config.is_local:
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        return beam.Pipeline(runner=FnApiRunner(), options=options)
    return beam.Pipeline(options=options)


class ResultFolder:
    """A folder each pipeline step writes its pickled result into, read back by the caller."""

    def __init__(self, config: BeamConfig) -> None:
        base = config.parsed.get("temp_location")
        self._local = base is None
        self.root = (
            tempfile.mkdtemp(prefix="edgeped-beam-")
            if base is None
            else f"{base.rstrip('/')}/edgeped-beam-{uuid.uuid4().hex}"
        )

    def writer(self) -> Callable[[tuple[str, Any]], None]:
        """A picklable function for a pipeline step: (key, value) -> file `key.pkl`."""
        return _Writer(self.root)

    def read(self, keys: Iterable[str]) -> list[Any]:
        """Loads the results of `keys`, in that order.

        Raises:
            EdgepedError: a step's result is missing (the pipeline did not finish it).
        """
        from apache_beam.io.filesystems import FileSystems

        out = []
        for key in keys:
            path = FileSystems.join(self.root, f"{key}.pkl")
            if not FileSystems.exists(path):
                raise EdgepedError(
                    f"the Beam pipeline left no result for {key}",
                    "check the runner's logs; every element must finish",
                )
            with FileSystems.open(path) as handle:
                out.append(pickle.loads(handle.read()))
        return out

    def cleanup(self) -> None:
        from apache_beam.io.filesystems import FileSystems

        if FileSystems.exists(self.root):
            FileSystems.delete([self.root])


class _Writer:
    def __init__(self, root: str) -> None:
        self.root = root

    def __call__(self, item: tuple[str, Any]) -> None:
        from apache_beam.io.filesystems import FileSystems

        key, value = item
        path = FileSystems.join(self.root, f"{key}.pkl")
        with FileSystems.create(path + ".tmp") as handle:
            handle.write(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        FileSystems.rename([path + ".tmp"], [path])


def run(pipeline) -> None:
    """Runs a pipeline to completion; a failed element becomes one clear EdgepedError.

    Raises:
        EdgepedError: an element failed (its own EdgepedError message when it had one).
    """
    try:
        result = pipeline.run()
        result.wait_until_finish()
    except EdgepedError:
        raise
    except Exception as exc:  # Beam wraps worker failures in its own exception types
        text = str(exc)
        marker = "EdgepedError: "
        if marker in text:
            problem = text.split(marker, 1)[1].split("\n  fix: ")
            fix = problem[1].splitlines()[0] if len(problem) > 1 else None
            raise EdgepedError(problem[0].splitlines()[0], fix) from exc
        raise EdgepedError(
            f"the Beam pipeline failed: {text.splitlines()[0] if text else type(exc).__name__}",
            "see the runner's log above; fix the input or the runner options and run again",
        ) from exc


def keyed(items: Sequence[Any], prefix: str) -> list[tuple[str, Any]]:
    """(prefix-00000, item) pairs: stable result keys in input order."""
    return [(f"{prefix}-{i:05d}", item) for i, item in enumerate(items)]
