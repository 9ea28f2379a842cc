import pytest

from edgeped.convert.inspect import load_interpreter
from edgeped.errors import EdgepedError


def test_missing_model(tmp_path):
    with pytest.raises(EdgepedError, match="model file not found"):
        load_interpreter(tmp_path / "nope.tflite")


def test_not_a_tflite(tmp_path):
    path = tmp_path / "x.tflite"
    path.write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(EdgepedError, match="not a TFLite model"):
        load_interpreter(path)


def test_garbage_after_magic(tmp_path):
    path = tmp_path / "x.tflite"
    path.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\xff" * 64)
    with pytest.raises(EdgepedError, match="corrupt or truncated"):
        load_interpreter(path)
