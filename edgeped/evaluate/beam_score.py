"""Batch scoring of .tflite models over every shard with Apache Beam (no TensorFlow).

Beam's RunInference takes SavedModels, not .tflite, and the artifact that ships
is the .tflite: each worker builds its LiteRT interpreters once, in
`DoFn.setup`, and scores whole shards. A shard is read and batched exactly as
the in-process evaluator reads it (1024-record batches within the shard, the
model's own batch inside), and a metadata-dropout experiment draws the same
per-record random numbers (the generator is advanced to the shard's offset in
its split), so the scores, `test_scores.npz` and `metrics.json` are the same as
`edgeped eval` without Beam.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeped.convert.model_card import CardFacts, card_path
from edgeped.data.beam_runtime import BeamConfig, ResultFolder, make_pipeline, run
from edgeped.data.schema import TAG_FIELDS
from edgeped.data.shards import Dataset, examples_to_batch
from edgeped.data.tfrecord import iter_records
from edgeped.errors import EdgepedError
from edgeped.evaluate.run import EvalConfig
from edgeped.evaluate.scores import SplitScores

READ_BATCH = 1024  # the records per batch score_split reads; same batches, same floats
DROPOUT_SEED = 12345  # score_split's generator for metadata_dropout


def _shard_batches(path: Path, batch_records: int):
    if not path.is_file():
        raise EdgepedError(f"shard missing: {path}", "run `edgeped data verify` and regenerate")
    payloads: list[bytes] = []
    with open(path, "rb") as handle:
        for payload in iter_records(handle, path.name):
            payloads.append(payload)
            if len(payloads) >= batch_records:
                yield examples_to_batch(payloads, path.name)
                payloads = []
    if payloads:
        yield examples_to_batch(payloads, path.name)


def _score_shard_fn():
    """The DoFn class, defined lazily so importing this module does not import Beam."""
    import apache_beam as beam

    class ScoreShard(beam.DoFn):
        """Scores whole shards with one interpreter per model, built once per worker."""

        def __init__(self, models: dict[str, tuple[str, dict]], config: EvalConfig, write):
            self.models, self.config, self.write = models, config, write

        def setup(self) -> None:
            from edgeped.data.preprocess import Preprocessing
            from edgeped.evaluate.inference import TfliteScorer

            self.scorers = {
                name: TfliteScorer(
                    path,
                    Preprocessing.from_dict(prep),
                    batch=self.config.batch,
                    num_threads=self.config.threads,
                )
                for name, (path, prep) in self.models.items()
            }

        def process(self, element):
            key, (path, offset) = element
            rng = np.random.default_rng(DROPOUT_SEED)
            rng.bit_generator.advance(offset)  # one 64-bit draw per record before this shard
            parts: dict[str, list] = {
                k: [] for k in ("labels", "drives", "crops", *TAG_FIELDS, *self.scorers)
            }
            for batch in _shard_batches(Path(path), READ_BATCH):
                if self.config.metadata_dropout:
                    batch.metadata[rng.random(len(batch)) < self.config.metadata_dropout] = np.nan
                parts["labels"].append(batch.labels)
                parts["drives"].append(batch.drive_id)
                parts["crops"].append(batch.crop_id)
                for t in TAG_FIELDS:
                    parts[t].append(batch.tags(t))
                for name, scorer in self.scorers.items():
                    parts[name].append(scorer.score(batch.images, batch.metadata).probability)
            self.write((key, {k: np.concatenate(v) for k, v in parts.items() if v}))

    return ScoreShard


def beam_scorer(beam_config: BeamConfig) -> Callable:
    """A `scorer` for `evaluate_run` that scores val and test shards on Beam workers."""

    def score(dataset: Dataset, models, config: EvalConfig, progress) -> tuple:
        import apache_beam as beam

        elements, by_split = [], {}
        for split in ("val", "test"):
            if dataset.count(split) == 0:
                raise EdgepedError(
                    f"the {split} split of {dataset.root} is empty",
                    "generate more drives so every split gets some",
                )
            offset, keys = 0, []
            for k, entry in enumerate(dataset.manifest["splits"][split]["shards"]):
                key = f"{split}-{k:05d}"
                elements.append((key, (str(dataset.shard_path(entry)), offset)))
                keys.append(key)
                offset += int(entry["records"])
            by_split[split] = keys
        folder = ResultFolder(beam_config)
        try:
            p = make_pipeline(beam_config)
            fn = _score_shard_fn()(
                {
                    n: (str(path), CardFacts.from_card(card, card_path(path)).preprocessing)
                    for n, (path, card) in models.items()
                },
                config,
                folder.writer(),
            )
            _ = p | "shards" >> beam.Create(elements) | beam.Reshuffle() | beam.ParDo(fn)
            progress(
                f"scoring {len(elements)} shards with {len(models)} model(s) on {beam_config.runner}"
            )
            run(p)
            out = tuple(_split_scores(folder.read(by_split[s]), models) for s in ("val", "test"))
        finally:
            folder.cleanup()
        return out

    return score


def _split_scores(parts: list[dict], models) -> SplitScores:
    parts = [p for p in parts if "labels" in p]  # an empty shard scores nothing
    cat = lambda k: np.concatenate([p[k] for p in parts])  # noqa: E731
    return SplitScores(
        cat("labels"),
        {t: cat(t) for t in TAG_FIELDS},
        {n: cat(n) for n in models},
        cat("drives"),
        cat("crops"),
    )
