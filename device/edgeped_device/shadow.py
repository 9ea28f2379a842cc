"""Shadow mode: baseline and candidate on the same crops, one CRC-checked log record each."""

from __future__ import annotations

import hashlib
import json
import os
import time
import zlib

from .common import (
    META_FEATURES,
    RESULT_KIND,
    RESULT_SCHEMA_VERSION,
    RunnerError,
    import_runtime,
    jsonable,
    sha256_file,
)
from .fingerprint import fingerprint
from .inputs import load_crops
from .insn import MARKER_START, MARKER_STOP, insn_out_path, marker
from .memory import process_peak_mb, read_status_kb, reset_peak_rss
from .model import ModelIO, make_interpreter, read_model
from .preprocess import Preprocessor
from .stats import summarise

# The baseline and the candidate run in this one process on the same crops; every crop
# becomes one log record. The log is append-only JSON Lines, each line
# "<crc32 of the JSON, 8 hex digits> <JSON>\n", written with one os.write and fsynced
# (every --fsync-every records), so a crash loses at most the record being written and a
# torn last line is recognisable by its missing newline or CRC. The host reader is
# edgeped/rollout/shadow_log.py; both sides must agree on this format.

SHADOW_LOG_KIND = "edgeped.shadow_log"
SHADOW_LOG_SCHEMA_VERSION = 1
LUMA = (0.299, 0.587, 0.114)  # must match edgeped/rollout/drift.py


def image_stats(crop, np):
    """(mean brightness, contrast) of one uint8 crop: mean and std of its luma, in 0..1."""
    luma = crop.astype(np.float32) @ np.asarray(LUMA, np.float32)
    return float(luma.mean()) / 255.0, float(luma.std()) / 255.0


class ShadowLog:
    """The append-only log file: one CRC-checked JSON line per record."""

    def __init__(self, path: str, fsync_every: int) -> None:
        if os.path.exists(path):
            raise RunnerError(
                "log_exists",
                f"shadow log {path} already exists",
                "pass a new --shadow-log path; a log is never overwritten",
            )
        parent = os.path.dirname(os.path.abspath(path))
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        except OSError as exc:
            raise RunnerError(
                "log_unwritable",
                f"cannot create shadow log {path}: {exc}",
                "check the directory exists and is writable",
            ) from exc
        self.path = os.path.abspath(path)
        self.fsync_every = fsync_every
        self.pending = 0
        self.records = 0
        self.bytes = 0
        # Make the new file's directory entry durable, so the log itself survives a crash.
        try:
            dfd = os.open(parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass

    def append(self, record: dict) -> None:
        body = json.dumps(record, separators=(",", ":"), allow_nan=False, default=jsonable).encode()
        line = b"%08x " % (zlib.crc32(body) & 0xFFFFFFFF) + body + b"\n"
        try:
            written = os.write(self.fd, line)
            if written != len(line):
                raise OSError(f"short write ({written} of {len(line)} bytes)")
            self.pending += 1
            if self.pending >= self.fsync_every:
                os.fsync(self.fd)
                self.pending = 0
        except OSError as exc:
            raise RunnerError(
                "log_write_failed",
                f"writing shadow log {self.path} failed after {self.records} records: {exc}",
                "free space on the board and run again",
            ) from exc
        self.records += 1
        self.bytes += len(line)

    def close(self) -> None:
        if self.fd is None:
            return
        try:
            if self.pending:
                os.fsync(self.fd)
        finally:
            os.close(self.fd)
            self.fd = None


class ShadowModel:
    """One side of the shadow pair: interpreter, preprocessing and its own threshold."""

    def __init__(self, role, path, spec, runtime_parts, args) -> None:
        np, Interpreter, load_delegate, resolver = runtime_parts
        self.np = np
        self.role = role
        self.path = path
        self.data = read_model(path)
        self.sha256 = hashlib.sha256(self.data).hexdigest()
        self.interpreter = make_interpreter(
            self.data, path, Interpreter, load_delegate, resolver, args
        )
        self.io = ModelIO(self.interpreter, np)
        self.io.resize(1)
        pre = spec.get("preprocess") or {}
        self.pre = Preprocessor(
            self.io,
            pre.get("mean", [0.0] * META_FEATURES),
            pre.get("std", [1.0] * META_FEATURES),
            pre.get("clip", 4.0),
            str(spec.get("image_rule") or "fixed"),
        )
        self.name = str(spec.get("name") or role)
        self.threshold = float(spec["threshold"])
        q = spec.get("threshold_int8")
        self.int8 = np.dtype(self.io.output["dtype"]) == np.dtype(np.int8)
        self.threshold_int8 = int(q) if (q is not None and self.int8) else None

    def step(self, crop, meta):
        """Scores one crop; returns (probability, raw int or None, decision, invoke ms)."""
        self.pre.set_inputs(crop, meta)
        t0 = time.perf_counter()
        self.interpreter.invoke()
        ms = (time.perf_counter() - t0) * 1e3
        raw = self.pre.raw_output()
        p = float(self.pre.probabilities(raw)[0])
        if self.threshold_int8 is not None:
            q = int(raw[0, 0])
            return p, q, int(q >= self.threshold_int8), ms
        return p, (int(raw[0, 0]) if self.int8 else None), int(p >= self.threshold), ms

    def describe(self) -> dict:
        return {
            "name": self.name,
            "path": self.path,
            "sha256": self.sha256,
            "size_bytes": len(self.data),
            "threshold": self.threshold,
            "threshold_int8": self.threshold_int8,
            "decision_rule": (
                "raw int8 output >= threshold_int8"
                if self.threshold_int8 is not None
                else "probability >= threshold"
            ),
            "io": self.io.quantisation(),
        }


def load_shadow_spec(path) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            spec = json.load(handle)
        for role in ("baseline", "candidate"):
            float(spec[role]["threshold"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunnerError(
            "shadow_spec_invalid",
            f"cannot read shadow spec {path}: {exc}",
            'it must hold {"baseline": {"threshold": T, ...}, "candidate": {"threshold": T, ...}}',
        ) from exc
    return spec


def load_replay(path, np, count: int, seed: int):
    """Crops plus what the log carries through per crop: ids, labels, slice tags."""
    images, metadata, info = load_crops(path, np, count, seed)
    n = len(images)
    ids = [f"crop-{i}" for i in range(n)]
    labels, tags = None, {}
    if path is not None:
        with np.load(path, allow_pickle=False) as npz:
            if "crop_id" in npz.files:
                ids = [str(v) for v in npz["crop_id"]]
            if "label" in npz.files:
                labels = [int(v) for v in npz["label"]]
            for key in npz.files:
                if key.startswith("tag/"):
                    tags[key[4:]] = [str(v) for v in npz[key]]
        bad = [
            k
            for k, v in [
                ("crop_id", ids),
                ("label", labels or ids),
                *[(f"tag/{t}", v) for t, v in tags.items()],
            ]
            if len(v) != n
        ]
        if bad:
            raise RunnerError(
                "crops_invalid",
                f"crops {path}: {bad} do not have {n} entries",
                "every per-crop array needs one entry per image",
            )
    return images, metadata, info, ids, labels, tags


def _meta_list(row):
    return [None if v != v else round(float(v), 6) for v in row]


def run_shadow(args) -> dict:
    """Shadow mode: baseline alone for the cost reference, then both models, logging."""
    t_process = time.perf_counter()
    np, Interpreter, load_delegate, resolver, runtime = import_runtime()
    if args.pin:
        os.sched_setaffinity(0, args.pin)
    spec = load_shadow_spec(args.shadow_spec)
    images, metadata, crops_info, ids, labels, tags = load_replay(
        args.crops, np, args.random_count, args.seed
    )
    parts = (np, Interpreter, load_delegate, resolver)
    log = ShadowLog(args.shadow_log, args.fsync_every)
    try:
        startup_peak_kb = read_status_kb("VmHWM")
        phase_reset = reset_peak_rss()
        rss_before_kb = read_status_kb("VmRSS")
        base = ShadowModel("baseline", args.model, spec["baseline"], parts, args)

        # Cost reference: what the baseline costs alone per crop (preprocess + invoke +
        # decision), on the same crops, before the candidate exists in the process.
        n = len(images)
        for i in range(min(args.warmup, n)):
            base.step(images[i : i + 1], metadata[i : i + 1])
        alone_ms = []
        for k in range(args.cost_runs):
            i = k % n
            t0 = time.perf_counter()
            base.step(images[i : i + 1], metadata[i : i + 1])
            alone_ms.append((time.perf_counter() - t0) * 1e3)
        alone_peak_kb = read_status_kb("VmHWM")

        cand = ShadowModel("candidate", args.shadow, spec["candidate"], parts, args)
        for i in range(min(args.warmup, n)):
            cand.step(images[i : i + 1], metadata[i : i + 1])
        log.append(
            {
                "t": "header",
                "kind": SHADOW_LOG_KIND,
                "schema_version": SHADOW_LOG_SCHEMA_VERSION,
                "started_unix": time.time(),
                "baseline": base.describe(),
                "candidate": cand.describe(),
                "inputs": crops_info,
                "labels": labels is not None,
                "tag_fields": sorted(tags),
                "repeat": args.shadow_repeat,
                "fsync_every": args.fsync_every,
                "environment": fingerprint(runtime),
            }
        )

        def shadow_step(seq, i, sink):
            t0 = time.perf_counter()
            crop, meta = images[i : i + 1], metadata[i : i + 1]
            pb, qb, yb, msb = base.step(crop, meta)
            pc, qc, yc, msc = cand.step(crop, meta)
            brightness, contrast = image_stats(crop[0], np)
            record = {
                "t": "crop",
                "seq": seq,
                "id": ids[i],
                "ts": time.time(),
                "meta": _meta_list(metadata[i]),
                "img": [round(brightness, 6), round(contrast, 6)],
                "b": {"p": pb, "q": qb, "y": yb, "ms": round(msb, 5)},
                "c": {"p": pc, "q": qc, "y": yc, "ms": round(msc, 5)},
            }
            if labels is not None:
                record["label"] = labels[i]
            if tags:
                record["tags"] = {name: values[i] for name, values in tags.items()}
            t1 = time.perf_counter()
            sink.append(record)
            t2 = time.perf_counter()
            return (t2 - t0) * 1e3, (t2 - t1) * 1e3

        shadow_ms, log_ms, seq = [], [], 0
        for _ in range(args.shadow_repeat):
            for i in range(n):
                total, write = shadow_step(seq, i, log)
                shadow_ms.append(total)
                log_ms.append(write)
                seq += 1
        shadow_peak_kb = read_status_kb("VmHWM")
        insn = (
            count_shadow_instructions(base, shadow_step, images, metadata, args)
            if args.insn_count
            else None
        )
    except BaseException:
        log.close()
        raise

    alone, both, writes = summarise(alone_ms, np), summarise(shadow_ms, np), summarise(log_ms, np)
    known = phase_reset and alone_peak_kb and shadow_peak_kb
    cost = {
        "baseline_alone_ms_per_crop": alone,
        "shadow_ms_per_crop": both,
        "log_write_ms": writes,
        "added_ms_per_crop_p50": both["p50"] - alone["p50"],
        "added_ms_per_crop_mean": both["mean"] - alone["mean"],
        "baseline_alone_peak_rss_mb": alone_peak_kb / 1024 if known else None,
        "shadow_peak_rss_mb": shadow_peak_kb / 1024 if known else None,
        "added_peak_rss_mb": (shadow_peak_kb - alone_peak_kb) / 1024 if known else None,
        "rss_before_load_mb": rss_before_kb / 1024 if rss_before_kb else None,
        "process_peak_rss_mb": process_peak_mb(startup_peak_kb, shadow_peak_kb),
        "instructions": insn,
        "cost_runs": args.cost_runs,
    }
    log.append({"t": "summary", "records": seq, "finished_unix": time.time(), "cost": cost})
    log.close()
    return {
        "ok": True,
        "kind": RESULT_KIND,
        "schema_version": RESULT_SCHEMA_VERSION,
        "mode": "shadow",
        "log": {
            "path": log.path,
            "records": seq,
            "bytes": log.bytes,
            "sha256": sha256_file(log.path),
        },
        "baseline": base.describe(),
        "candidate": cand.describe(),
        "inputs": crops_info,
        "cost": cost,
        "environment": fingerprint(runtime),
        "process_seconds": time.perf_counter() - t_process,
    }


class _NullSink:
    """Where counted shadow steps write their records: the write cost without the log."""

    def __init__(self) -> None:
        self.fd = os.open(os.devnull, os.O_WRONLY)

    def append(self, record: dict) -> None:
        body = json.dumps(record, separators=(",", ":"), allow_nan=False, default=jsonable).encode()
        os.write(self.fd, b"%08x " % (zlib.crc32(body) & 0xFFFFFFFF) + body + b"\n")

    def close(self) -> None:
        os.close(self.fd)


def count_shadow_instructions(base, shadow_step, images, metadata, args) -> dict:
    """Guest instructions of one baseline-alone step and one shadow step, same crop."""
    path = insn_out_path()
    sink = _NullSink()
    fd = os.open(os.devnull, os.O_RDONLY)
    counts = {}
    try:
        for name in ("baseline_alone", "shadow"):
            with open(path) as handle:
                before = len(handle.read().split())
            for _ in range(args.insn_runs):
                marker(fd, MARKER_START)
                if name == "shadow":
                    shadow_step(-1, 0, sink)
                else:
                    base.step(images[0:1], metadata[0:1])
                marker(fd, MARKER_STOP)
            with open(path) as handle:
                counts[name] = [int(v) for v in handle.read().split()[before:]]
            if len(counts[name]) != args.insn_runs:
                raise RunnerError(
                    "insn_unavailable",
                    f"the plugin recorded {len(counts[name])} of {args.insn_runs} regions",
                    "check that qemu-aarch64 was started with the plugin",
                )
    finally:
        os.close(fd)
        sink.close()
    med = {k: int(sorted(v)[len(v) // 2]) for k, v in counts.items()}
    return {
        "per_step": counts,
        "baseline_alone_per_crop": med["baseline_alone"],
        "shadow_per_crop": med["shadow"],
        "added_per_crop": med["shadow"] - med["baseline_alone"],
        "runs": args.insn_runs,
        "note": "shadow step = both invokes, preprocessing, image stats and the record's "
        "encoding and write(2); fsync is kernel time and not counted",
    }
