import io

import pytest
from helpers import make_batch

from edgeped.data.tfrecord import (
    CorruptRecordError,
    decode_example,
    encode_example,
    iter_records,
    write_record,
)
from edgeped.data.verify import verify
from edgeped.data.writer import DatasetWriter


def _records(*payloads):
    h = io.BytesIO()
    for p in payloads:
        write_record(h, p)
    return h.getvalue()


def test_framing_round_trip():
    data = _records(b"one", b"", b"three" * 100)
    assert list(iter_records(io.BytesIO(data))) == [b"one", b"", b"three" * 100]


def test_tensorflow_reads_our_records(tmp_path):
    from edgeped._keras import tf

    path = tmp_path / "x.tfrecord"
    path.write_bytes(_records(encode_example({"a": b"xyz", "f": [1.5, 2.5], "i": [7]})))
    payload = next(iter(tf.data.TFRecordDataset(str(path)))).numpy()
    ex = tf.io.parse_single_example(
        payload,
        {
            "a": tf.io.FixedLenFeature([], tf.string),
            "f": tf.io.FixedLenFeature([2], tf.float32),
            "i": tf.io.FixedLenFeature([1], tf.int64),
        },
    )
    assert ex["a"].numpy() == b"xyz"
    assert ex["f"].numpy().tolist() == [1.5, 2.5]
    assert decode_example(payload)["i"] == [7]


def test_flipped_byte_fails_crc():
    data = bytearray(_records(b"payload-bytes"))
    data[14] ^= 0xFF
    with pytest.raises(CorruptRecordError, match="CRC"):
        list(iter_records(io.BytesIO(bytes(data))))


@pytest.mark.parametrize("cut", [5, 13, 20])
def test_truncation_is_detected(cut):
    data = _records(b"payload-bytes")
    with pytest.raises(CorruptRecordError, match="truncated"):
        list(iter_records(io.BytesIO(data[:cut])))


def test_verify_reports_every_bad_shard(tmp_path):
    w = DatasetWriter(tmp_path / "ds", shard_records=2, split_fractions=(1.0, 0.0, 0.0))
    w.add(make_batch(8))
    manifest = w.close()
    shards = [s["file"] for s in manifest["splits"]["train"]["shards"]]
    assert len(shards) == 4
    (tmp_path / "ds" / shards[0]).unlink()
    p1 = tmp_path / "ds" / shards[1]
    data = bytearray(p1.read_bytes())
    data[100] ^= 1
    p1.write_bytes(bytes(data))
    p2 = tmp_path / "ds" / shards[2]
    p2.write_bytes(p2.read_bytes()[:-10])
    status = {r.file: r.status for r in verify(tmp_path / "ds")}
    assert status == {
        shards[0]: "missing",
        shards[1]: "hash_mismatch",
        shards[2]: "size_mismatch",
        shards[3]: "ok",
    }
