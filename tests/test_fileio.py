import errno
import os

import pytest

from edgeped.errors import EdgepedError
from edgeped.fileio import atomic_output, read_json, write_json_atomic, write_text_atomic


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "out.json"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as handle:
            handle.write(b"half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.json"]


def test_full_disk_is_a_clear_error(tmp_path, monkeypatch):
    def no_space(*_):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(EdgepedError, match="disk full") as info:
        write_text_atomic(tmp_path / "x.txt", "data")
    assert "free space" in info.value.fix
    assert os.listdir(tmp_path) == []


def test_json_nan_becomes_null_and_corrupt_json_is_named(tmp_path):
    write_json_atomic(tmp_path / "m.json", {"a": float("nan"), "b": [1.0, float("nan")]})
    assert read_json(tmp_path / "m.json") == {"a": None, "b": [1.0, None]}
    (tmp_path / "bad.json").write_text('{"a": 1')
    with pytest.raises(EdgepedError, match="not valid JSON"):
        read_json(tmp_path / "bad.json", "metrics")


def test_written_files_are_readable_by_others(tmp_path):
    write_text_atomic(tmp_path / "x.txt", "data")
    assert (tmp_path / "x.txt").stat().st_mode & 0o044 == 0o044
