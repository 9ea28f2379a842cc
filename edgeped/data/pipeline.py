"""The streaming tf.data input pipeline over a dataset's TFRecord shards."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeped.data.augment import AugmentConfig, augment_image
from edgeped.data.positives import positive_files
from edgeped.data.preprocess import (
    PIXEL_OFFSET,
    PIXEL_SCALE,
    STD_FLOOR,
    STD_OUT_CLIP,
    STD_OUT_SCALE,
    Preprocessing,
)
from edgeped.data.schema import CROP_SHAPE, NUM_METADATA, PLAIN_NEGATIVE_KINDS, TAG_FIELDS
from edgeped.data.shards import Dataset
from edgeped.errors import EdgepedError

PLAIN_KINDS = PLAIN_NEGATIVE_KINDS  # every other hard_negative tag is a near miss
# The second augmented view's input key (PipelineOptions.second_view) and random stream.
VIEW2_KEY = "image_view2"
VIEW2_STREAM = 2


@dataclass(frozen=True)
class PipelineOptions:
    batch_size: int = 64
    shuffle_buffer: int = 4096
    seed: int = 0
    pos_weight: float = 1.0  # sample weight of a positive; negatives weigh 1
    use_metadata: bool = True
    repeat: bool = False
    # Class-balanced sampling: draw positives with this probability per example
    # (streams repeat, so the caller sets steps per epoch). None = natural mix.
    positive_fraction: float | None = None
    # Training-time augmentation (see edgeped.data.augment); None = off.
    augment: AugmentConfig | None = None
    # With augment on: each example's inputs also carry VIEW2_KEY, a second independent
    # draw of the augmentations of the same crop (the consistency loss compares the two),
    # or with augment.consistency_anchor = "clean" the crop unaugmented.
    second_view: bool = False
    # Mined hard negatives (uint8 crops, raw metadata) mixed into each batch at hard_fraction.
    hard_negatives: tuple[np.ndarray, np.ndarray] | None = None
    hard_fraction: float = 0.25
    # Leave out records whose tag has one of these values, e.g. (("lighting", "night"),),
    # for held-out-condition experiments.
    exclude: tuple[tuple[str, str], ...] = ()
    # Near-miss negatives (records tagged pole, cyclist, ... in the shards): their loss
    # weight, and with positive_fraction set, their share of the negative stream
    # (None = as they come). Both read the tag stored in every record.
    hard_negative_weight: float = 1.0
    near_miss_fraction: float | None = None
    # With positive_fraction set, the rare class's raw records are kept in memory
    # after the first pass when the split's positives take at most this many MB
    # (0 = never). Measured 2.5x more batches/s on the demo set; memory grows by at
    # most this cap, and fleet-sized splits (7.7 GB of positives at 12.5M crops)
    # stream without it.
    cache_positives_mb: float = 128.0
    # (index, count): read only every count-th shard file from index, the share of one
    # of count multi-worker input pipelines (tf.distribute); None = every file.
    shard: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.second_view and self.augment is None:
            raise ValueError("second_view needs augment: without it both views are the same crop")
        if self.shard is not None and not 0 <= self.shard[0] < self.shard[1]:
            raise ValueError(
                f"shard must be (index, count) with 0 <= index < count, got {self.shard}"
            )
        if self.hard_negative_weight <= 0:
            raise ValueError(f"hard_negative_weight must be > 0, got {self.hard_negative_weight}")
        if self.near_miss_fraction is not None:
            if not 0.0 < self.near_miss_fraction < 1.0:
                raise ValueError(
                    f"near_miss_fraction must be in (0, 1) or None, got {self.near_miss_fraction}"
                )
            if self.positive_fraction is None:
                raise ValueError(
                    "near_miss_fraction needs positive_fraction (class-balanced sampling) to be set"
                )
        for tag, _ in self.exclude:
            if tag not in TAG_FIELDS:
                raise ValueError(f"exclude tag must be one of {TAG_FIELDS}, got {tag!r}")
        if not 0.0 < self.hard_fraction < 1.0:
            raise ValueError(f"hard_fraction must be in (0, 1), got {self.hard_fraction}")
        if self.positive_fraction is not None and not 0.0 < self.positive_fraction < 1.0:
            raise ValueError(
                f"positive_fraction must be in (0, 1) or None, got {self.positive_fraction}"
            )
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.cache_positives_mb < 0:
            raise ValueError(f"cache_positives_mb must be >= 0, got {self.cache_positives_mb}")
        if self.shuffle_buffer < 0:
            raise ValueError(f"shuffle_buffer must be >= 0, got {self.shuffle_buffer}")
        if self.pos_weight <= 0:
            raise ValueError(f"pos_weight must be > 0, got {self.pos_weight}")


def positives_fit_in_memory(dataset: Dataset, split: str, limit_mb: float) -> bool:
    info = dataset.manifest["splits"][split]
    records, positives = info.get("records", 0), info.get("positives")
    if not limit_mb or not records or positives is None:
        return False
    size = sum(shard["bytes"] for shard in info["shards"]) * positives / records
    return size <= limit_mb * 1e6


def make_dataset(
    dataset: Dataset, split: str, prep: Preprocessing, options: PipelineOptions, *, shuffle: bool
):
    """Builds a tf.data.Dataset yielding (inputs, label, sample_weight) batches.

    Shards are interleaved and shuffled through a bounded buffer, so memory does
    not grow with the dataset (beyond the positives' cache, capped by
    ``options.cache_positives_mb``).
    """
    from edgeped._keras import tf

    files = [str(p) for p in dataset.shard_paths(split)]
    if options.shard is not None:
        index, count = options.shard
        files = files[index::count]
        if not files:
            raise EdgepedError(
                f"input pipeline {index} of {count} gets none of the {split} split's shards",
                "write the dataset with more, smaller shards (several per worker)",
            )
    spec = {
        **{tag: tf.io.FixedLenFeature([], tf.string) for tag in {t for t, _ in options.exclude}},
        "image": tf.io.FixedLenFeature([], tf.string),
        "metadata": tf.io.FixedLenFeature([NUM_METADATA], tf.float32),
        "label": tf.io.FixedLenFeature([1], tf.int64),
    }
    mean = tf.constant(prep.mean, tf.float32)
    std = tf.constant(prep.std, tf.float32)

    def parse(payload, seed):
        ex = tf.io.parse_single_example(payload, spec)
        image = tf.reshape(tf.io.decode_raw(ex["image"], tf.uint8), CROP_SHAPE)
        inputs, label, weight = prepare(
            image, ex["metadata"], tf.cast(ex["label"], tf.float32), seed
        )
        if options.hard_negative_weight != 1.0:
            weight = tf.where(near_miss(payload), weight * options.hard_negative_weight, weight)
        return inputs, label, weight

    kind_spec = {
        "label": tf.io.FixedLenFeature([1], tf.int64),
        "hard_negative": tf.io.FixedLenFeature([], tf.string),
    }

    def negative_kind(payload):
        """(is a negative, its tag names plain background rather than a near miss)."""
        ex = tf.io.parse_single_example(payload, kind_spec)
        plain = tf.reduce_any(tf.equal(ex["hard_negative"], tf.constant(list(PLAIN_KINDS))))
        return tf.equal(ex["label"][0], 0), plain

    def near_miss(payload):
        """A negative whose tag names a near-miss kind (not plain background)."""
        is_negative, plain = negative_kind(payload)
        return tf.logical_and(is_negative, tf.logical_not(plain))

    def plain_negative(payload):
        is_negative, plain = negative_kind(payload)
        return tf.logical_and(is_negative, plain)

    label_spec = {"label": tf.io.FixedLenFeature([1], tf.int64)}

    def positive(payload):
        return tf.io.parse_single_example(payload, label_spec)["label"][0] > 0

    def negative(payload):
        return tf.logical_not(positive(payload))

    def standardize(levels):
        """The TensorFlow twin of the "standardize" rule on u8-scale floats (HxWx3)."""
        mean = tf.reduce_mean(levels, axis=[0, 1], keepdims=True)
        std = tf.sqrt(tf.maximum(tf.reduce_mean(tf.square(levels - mean), axis=[0, 1]), 0.0))
        scale = STD_OUT_SCALE / tf.maximum(std, STD_FLOOR)
        return tf.clip_by_value((levels - mean) * scale, -STD_OUT_CLIP, STD_OUT_CLIP)

    def prepare(image, meta, label, seed):
        image = (tf.cast(image, tf.float32) - PIXEL_OFFSET) / PIXEL_SCALE
        present = tf.logical_not(tf.math.is_nan(meta))
        z = tf.clip_by_value((meta - mean) / std, -prep.clip, prep.clip)
        z = tf.where(present, z, tf.zeros_like(z))
        meta_in = tf.concat([z, tf.cast(present, tf.float32)], axis=0)
        if options.augment is not None:
            image_seed, meta_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
            if options.second_view:
                # Its own stream, so the first view is the same draw with or without it.
                if options.augment.consistency_anchor == "clean":
                    view2 = image
                else:
                    view2_seed = tf.random.experimental.stateless_fold_in(seed, VIEW2_STREAM)
                    view2 = augment_image(tf, image, options.augment, view2_seed)
            image = augment_image(tf, image, options.augment, image_seed)
            if options.use_metadata and options.augment.metadata_dropout:
                keep = (
                    tf.random.stateless_uniform([], meta_seed) >= options.augment.metadata_dropout
                )
                meta_in = meta_in * tf.cast(keep, tf.float32)
        if prep.image_rule == "standardize":
            # Augmentations imitate the camera, so they act before the rule, as a
            # corruption does before the device applies it.
            # Rounded to u8 levels first: a dark crop has few levels on the device too.
            image = standardize(tf.round(image * PIXEL_SCALE + PIXEL_OFFSET))
            if options.second_view:
                view2 = standardize(tf.round(view2 * PIXEL_SCALE + PIXEL_OFFSET))
        weight = tf.where(label[0] > 0.5, options.pos_weight, 1.0)
        inputs = {"image": image, "meta": meta_in} if options.use_metadata else {"image": image}
        if options.second_view:
            inputs[VIEW2_KEY] = view2
        return inputs, label, weight

    def seeded(ds, fn, stream: int):
        """Maps fn(*element, seed) in parallel; the seed is (run seed, stream, element index),
        so augmentation draws do not depend on which thread gets which element."""
        base = tf.constant(options.seed * 16 + stream, tf.int64)
        return tf.data.Dataset.zip((ds, tf.data.Dataset.counter())).map(
            lambda element, i: fn(
                *(element if isinstance(element, tuple) else (element,)), tf.stack([base, i])
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    def kept(payload):
        ex = tf.io.parse_single_example(payload, spec)
        keep = tf.constant(True)
        for tag, value in options.exclude:
            keep = tf.logical_and(keep, tf.not_equal(ex[tag], value))
        return keep

    def records(seed_offset: int, paths: list[str] = files):
        files_ds = tf.data.Dataset.from_tensor_slices(paths)
        if shuffle:
            files_ds = files_ds.shuffle(
                len(paths), seed=options.seed + seed_offset, reshuffle_each_iteration=True
            )
        # Deterministic order even when shuffling: the shuffle is seeded, so the same
        # command reads the same batches (a sloppy interleave made reruns differ).
        ds = files_ds.interleave(
            tf.data.TFRecordDataset,
            cycle_length=min(4, len(paths)),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        return ds.filter(kept) if options.exclude else ds

    def shuffled(ds, seed_offset: int, buffer: int):
        if shuffle and buffer:
            ds = ds.shuffle(buffer, seed=options.seed + seed_offset, reshuffle_each_iteration=True)
        return ds

    if options.positive_fraction is not None:
        # Each class streams on its own, repeated, and the mix is drawn per example:
        # the batch composition is set by positive_fraction, not by prevalence.
        # Records are split by label on the raw bytes (a one-field parse), so only
        # the records drawn into a batch are decoded and augmented: at 2.5%
        # prevalence that is ~40x less work than parsing every record scanned.
        companions = positive_files(dataset, split)
        if companions:
            # Positive-only shards written at import (edgeped.data.positives): the rare
            # class is read directly, never by rescanning every shard.
            if options.shard is not None:
                companions = companions[options.shard[0] :: options.shard[1]]
            pos = records(0, [str(p) for p in companions])
        else:
            pos = records(0).filter(positive)
        if positives_fit_in_memory(dataset, split, options.cache_positives_mb):
            pos = pos.cache()  # later epochs stop rescanning every shard for the rare class
        pos = seeded(shuffled(pos, 1, 1024).repeat(), parse, 1)
        if options.near_miss_fraction is None:
            neg = shuffled(records(2).filter(negative), 2, options.shuffle_buffer).repeat()
        else:
            # Mix near misses and plain background at the set share.
            if not dataset.manifest["splits"][split].get("hard_negatives"):
                raise EdgepedError(
                    f"near_miss_fraction is set but the {split} split of "
                    f"{dataset.root} has no near-miss negatives",
                    "leave near_miss_fraction unset for this dataset",
                )
            near = shuffled(records(5).filter(near_miss), 5, max(options.shuffle_buffer // 4, 1))
            plain = shuffled(records(6).filter(plain_negative), 6, options.shuffle_buffer)
            neg = tf.data.Dataset.sample_from_datasets(
                [near.repeat(), plain.repeat()],
                weights=[options.near_miss_fraction, 1.0 - options.near_miss_fraction],
                seed=options.seed + 7,
            )
        neg = seeded(neg, parse, 2)
        ds = tf.data.Dataset.sample_from_datasets(
            [pos, neg],
            weights=[options.positive_fraction, 1.0 - options.positive_fraction],
            seed=options.seed,
        )
    else:
        ds = shuffled(records(0), 0, options.shuffle_buffer)
        if options.repeat:
            ds = ds.repeat()
        ds = seeded(ds, parse, 0)
    if options.hard_negatives is not None:
        images, metadata = options.hard_negatives
        hard = tf.data.Dataset.from_tensor_slices(
            (images, metadata.astype(np.float32), np.zeros((len(images), 1), np.float32))
        )
        hard = seeded(shuffled(hard.repeat(), 3, min(len(images), 4096)), prepare, 3)
        ds = tf.data.Dataset.sample_from_datasets(
            [ds.repeat(), hard],
            weights=[1.0 - options.hard_fraction, options.hard_fraction],
            seed=options.seed + 4,
        )
    return ds.batch(options.batch_size).prefetch(tf.data.AUTOTUNE)
