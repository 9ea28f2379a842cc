"""The streaming tf.data input pipeline over a dataset's TFRecord shards."""

from __future__ import annotations

from dataclasses import dataclass

from edgeped.data.preprocess import PIXEL_OFFSET, PIXEL_SCALE, Preprocessing
from edgeped.data.schema import CROP_SHAPE, NUM_METADATA
from edgeped.data.shards import Dataset


@dataclass(frozen=True)
class PipelineOptions:
    batch_size: int = 64
    shuffle_buffer: int = 4096
    seed: int = 0
    pos_weight: float = 1.0  # sample weight of a positive; negatives weigh 1
    use_metadata: bool = True
    repeat: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.shuffle_buffer < 0:
            raise ValueError(f"shuffle_buffer must be >= 0, got {self.shuffle_buffer}")
        if self.pos_weight <= 0:
            raise ValueError(f"pos_weight must be > 0, got {self.pos_weight}")


def make_dataset(dataset: Dataset, split: str, prep: Preprocessing, options: PipelineOptions,
                 *, shuffle: bool):
    """Builds a tf.data.Dataset yielding (inputs, label, sample_weight) batches.

    Shards are interleaved and shuffled through a bounded buffer, so memory does
    not grow with the dataset.
    """
    from edgeped._keras import tf

    files = [str(p) for p in dataset.shard_paths(split)]
    spec = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "metadata": tf.io.FixedLenFeature([NUM_METADATA], tf.float32),
        "label": tf.io.FixedLenFeature([1], tf.int64),
    }
    mean = tf.constant(prep.mean, tf.float32)
    std = tf.constant(prep.std, tf.float32)

    def parse(payload):
        ex = tf.io.parse_single_example(payload, spec)
        image = tf.reshape(tf.io.decode_raw(ex["image"], tf.uint8), CROP_SHAPE)
        image = (tf.cast(image, tf.float32) - PIXEL_OFFSET) / PIXEL_SCALE
        meta = ex["metadata"]
        present = tf.logical_not(tf.math.is_nan(meta))
        z = tf.clip_by_value((meta - mean) / std, -prep.clip, prep.clip)
        z = tf.where(present, z, tf.zeros_like(z))
        meta_in = tf.concat([z, tf.cast(present, tf.float32)], axis=0)
        label = tf.cast(ex["label"], tf.float32)
        weight = tf.where(label[0] > 0.5, options.pos_weight, 1.0)
        inputs = {"image": image, "meta": meta_in} if options.use_metadata else {"image": image}
        return inputs, label, weight

    files_ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        files_ds = files_ds.shuffle(len(files), seed=options.seed, reshuffle_each_iteration=True)
    ds = files_ds.interleave(tf.data.TFRecordDataset, cycle_length=min(4, len(files)),
                             num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle)
    if shuffle and options.shuffle_buffer:
        ds = ds.shuffle(options.shuffle_buffer, seed=options.seed, reshuffle_each_iteration=True)
    if options.repeat:
        ds = ds.repeat()
    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(options.batch_size).prefetch(tf.data.AUTOTUNE)
