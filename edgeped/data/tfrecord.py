"""TFRecord framing and tf.train.Example coding without importing TensorFlow.

Shards written here are read by `tf.data.TFRecordDataset` for training, and read
back here (checking every CRC) by evaluation, verification and statistics, which
must stay free of TensorFlow. The Example message is built with protobuf from a
private descriptor pool, so it never clashes with TensorFlow's own registration.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from functools import lru_cache
from typing import BinaryIO

import google_crc32c

from edgeped.errors import EdgepedError

_MASK_DELTA = 0xA282EAD8


def _masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def write_record(handle: BinaryIO, payload: bytes) -> None:
    header = struct.pack("<Q", len(payload))
    handle.write(header)
    handle.write(struct.pack("<I", _masked_crc(header)))
    handle.write(payload)
    handle.write(struct.pack("<I", _masked_crc(payload)))


class CorruptRecordError(EdgepedError):
    """A TFRecord file is truncated or fails its CRC."""


def iter_records(handle: BinaryIO, name: str = "shard") -> Iterator[bytes]:
    """Yields payloads, checking both CRCs of every record.

    Raises:
        CorruptRecordError: a truncated record or a CRC mismatch, with its offset.
    """
    offset = 0
    while True:
        header = handle.read(12)
        if not header:
            return
        if len(header) < 12:
            raise CorruptRecordError(
                f"{name} is truncated at byte {offset} (partial record header)",
                "the shard was cut short: regenerate or re-copy it",
            )
        length, length_crc = struct.unpack("<QI", header)
        if _masked_crc(header[:8]) != length_crc:
            raise CorruptRecordError(
                f"{name} is corrupt at byte {offset} (length CRC mismatch)",
                "regenerate or re-copy the shard",
            )
        payload = handle.read(length)
        footer = handle.read(4)
        if len(payload) < length or len(footer) < 4:
            raise CorruptRecordError(
                f"{name} is truncated at byte {offset} (partial record)",
                "the shard was cut short: regenerate or re-copy it",
            )
        if _masked_crc(payload) != struct.unpack("<I", footer)[0]:
            raise CorruptRecordError(
                f"{name} is corrupt at byte {offset} (data CRC mismatch)",
                "regenerate or re-copy the shard",
            )
        offset += 16 + length
        yield payload


@lru_cache(maxsize=1)
def _example_class():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(
        name="edgeped_example.proto", package="edgeped_private", syntax="proto3"
    )
    label_rep = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
    label_opt = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    ftype = descriptor_pb2.FieldDescriptorProto

    def message(name, fields, nested=()):
        msg = (
            fdp.message_type.add(name=name) if not nested else nested[0].nested_type.add(name=name)
        )
        for fname, number, typ, label, type_name in fields:
            field = msg.field.add(name=fname, number=number, type=typ, label=label)
            if type_name:
                field.type_name = type_name
        return msg

    message("BytesList", [("value", 1, ftype.TYPE_BYTES, label_rep, None)])
    message("FloatList", [("value", 1, ftype.TYPE_FLOAT, label_rep, None)])
    message("Int64List", [("value", 1, ftype.TYPE_INT64, label_rep, None)])
    feature = message(
        "Feature",
        [
            ("bytes_list", 1, ftype.TYPE_MESSAGE, label_opt, ".edgeped_private.BytesList"),
            ("float_list", 2, ftype.TYPE_MESSAGE, label_opt, ".edgeped_private.FloatList"),
            ("int64_list", 3, ftype.TYPE_MESSAGE, label_opt, ".edgeped_private.Int64List"),
        ],
    )
    feature.oneof_decl.add(name="kind")
    for field in feature.field:
        field.oneof_index = 0
    features = message(
        "Features",
        [("feature", 1, ftype.TYPE_MESSAGE, label_rep, ".edgeped_private.Features.FeatureEntry")],
    )
    entry = features.nested_type.add(name="FeatureEntry")
    entry.field.add(name="key", number=1, type=ftype.TYPE_STRING, label=label_opt)
    entry.field.add(
        name="value",
        number=2,
        type=ftype.TYPE_MESSAGE,
        label=label_opt,
        type_name=".edgeped_private.Feature",
    )
    entry.options.map_entry = True
    message(
        "Example", [("features", 1, ftype.TYPE_MESSAGE, label_opt, ".edgeped_private.Features")]
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("edgeped_private.Example"))


def encode_example(features: dict[str, bytes | list[bytes] | list[float] | list[int]]) -> bytes:
    """Encodes a dict as a tf.train.Example. Value type picks the list kind.

    bytes or a list of bytes -> bytes_list; a list of floats -> float_list; a list
    of ints -> int64_list.
    """
    example = _example_class()()
    fmap = example.features.feature
    for key, value in features.items():
        if isinstance(value, bytes):
            fmap[key].bytes_list.value.append(value)
        elif value and isinstance(value[0], bytes):
            fmap[key].bytes_list.value.extend(value)
        elif value and isinstance(value[0], float):
            fmap[key].float_list.value.extend(value)
        else:
            fmap[key].int64_list.value.extend(int(v) for v in value)
    return example.SerializeToString(
        deterministic=True
    )  # sorted map keys: same bytes in every process


def decode_example(payload: bytes) -> dict[str, list]:
    """Decodes a tf.train.Example into {key: list of values}."""
    example = _example_class()()
    example.ParseFromString(payload)
    out = {}
    for key, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        out[key] = list(getattr(feature, kind).value) if kind else []
    return out
