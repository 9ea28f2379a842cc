"""Markdown tables from a bench_peer.py result (pure: a dict in, text out).

It reads the harness's provenance keys (benchmarks/harness.py), so results written before
the harness (benchmarks/results/device/peer-20261201-*, peer-20261206-*) keep their own
Markdown beside them and are not re-rendered.
"""

from __future__ import annotations

from benchmarks.device import graphcost as gc

CORE_SHORT = {"cortex-a53": "a53", "cortex-a72": "a72", "cortex-a76": "a76"}


def _m(n: float | None) -> str:
    return "n/a" if n is None else f"{n / 1e6:.3f} M"


def _k(n: float | None) -> str:
    return "n/a" if n is None else f"{n / 1e3:,.1f} k"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out + [""]


def job(result: dict, core: str, runtime: str, name: str) -> dict | None:
    for r in result["counts"][core][runtime]["results"]:
        if r["name"] == name:
            return r
    return None


def insns(result: dict, core: str, runtime: str, name: str) -> int | None:
    r = job(result, core, runtime, name)
    return None if r is None else r["instructions_per_invoke"]


def peer_rows(result: dict) -> list[list[str]]:
    rows = []
    for name, host in result["host"].items():
        runtime = "litert" if name.startswith("LiteRT") else "ort"
        ref = "qat_int8" if "int8" in name else "float32"
        macs = result["macs"][ref]
        counts = [insns(result, c, runtime, name) for c in CORE_SHORT]
        a = result["agreement"][name]
        rows.append(
            [
                name,
                f"{result['inputs']['models'][name]['size_bytes'] / 1024:.0f} KiB",
                f"{host['p50_us']:.0f} / {host['p95_us']:.0f} us",
                *[_m(c) for c in counts],
                f"{macs / counts[2]:.2f}" if counts[2] else "n/a",
                f"{a['decision_agreement'] * 100:.2f}% ({a['flips']} flips)",
                f"{a['max_abs_dp']:.2g}",
                f"{a['recall']:.3f} / {a['fpr'] * 100:.2f}%",
            ]
        )
    return rows


def per_op(result: dict) -> tuple[list[dict], dict]:
    """Per-op instructions per core (prefix deltas) and host time, with MAC/instr."""
    ops = result["ops"]
    cores = {}
    for core in CORE_SHORT:
        prefix = [insns(result, core, "litert", f"prefix_{i + 1}") for i in range(len(ops))]
        cores[core] = gc.per_op_deltas(prefix)
    host = gc.per_op_deltas(result["host_prefix_p50_us"])
    rows = []
    for i, op in enumerate(ops):
        rows.append({**op, "instructions": {c: cores[c][i] for c in cores}, "host_us": host[i]})
    return rows, cores


def header(result: dict) -> list[str]:
    """Title, command, host, versions, emulated board and inputs."""
    machine = result["machine"]
    versions = dict(result["tool_versions"])
    python = versions.pop("python", "?")
    load = result["loadavg_before_after"][0]
    return [
        "# LiteRT vs ONNX Runtime, per-operator cost, batching and overhead",
        "",
        f"Command: `{result['command']}` ({result['date_utc']}).",
        f"Host: {machine['cpu']}, {machine['cpu_count']} cores, {machine['platform']}, "
        f"AVX-512 VNNI {'yes' if machine['avx512_vnni'] else 'no'}, load average at start "
        f"{f'{load[0]:.1f}' if load else 'n/a'}; Python {python}; "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f". ORT providers in the wheel: {', '.join(result['ort_providers'])}.",
        f"Emulated board: QEMU user mode, ASLR off, the counting plugin; aarch64 Python "
        f"{result['emulated']['cortex-a76']['python']}, numpy "
        f"{result['emulated']['cortex-a76']['numpy']}, onnxruntime "
        f"{result['emulated_ort']['cortex-a76']['runtime_version']}.",
        f"Test split: {result['inputs']['test_crops']} crops "
        f"({result['inputs']['test_positives']} pedestrians); ORT static int8 calibrated on "
        f"{result['inputs']['calibration_crops']} train crops. MACs: float32 "
        f"{result['macs']['float32']:,}, int8 {result['macs']['qat_int8']:,}.",
        "",
    ]


def render(result: dict) -> str:
    lines = [
        *header(result),
        "## 1. LiteRT vs ONNX Runtime (batch 1, 1 thread)",
        "",
        "Agreement is of decisions at the LiteRT model's card threshold against the LiteRT "
        "model of the same precision (float32 or QAT int8); recall/FPR on the test split.",
        "",
    ]
    lines += _table(
        [
            "model",
            "size",
            "host invoke p50 / p95",
            "a53",
            "a72",
            "a76",
            "MAC/instr a76",
            "decision agreement",
            "max abs dp",
            "recall / FPR",
        ],
        peer_rows(result),
    )
    rows = []
    for runtime, label in (("litert", "LiteRT invoke"), ("ort", "ORT session.run")):
        rows.append(
            [
                label + " of a one-ADD model",
                *[_k(insns(result, c, runtime, "trivial")) for c in CORE_SHORT],
                f"{result['host_trivial'][runtime]['p50_us']:.1f} us",
            ]
        )
    lines += ["Per-call overhead (a model with one ADD on a [1,12] tensor):", ""]
    lines += _table(["call", "a53", "a72", "a76", "host p50"], rows)

    rows_op, cores = per_op(result)
    lines += [
        "## 2. Per-operator cost of the QAT int8 model",
        "",
        "Instructions of op k = count(model cut after op k) - count(cut after op k-1); "
        "host time the same way from p50s (noisy at this scale: a few us).",
        "",
    ]
    rows = []
    for r in rows_op:
        a76 = r["instructions"]["cortex-a76"]
        rows.append(
            [
                str(r["index"]),
                r["kind"],
                r["class"],
                "x".join(str(d) for d in r["output_shape"][1:]),
                f"{r['macs']:,}",
                *[_k(r["instructions"][c]) for c in CORE_SHORT],
                f"{r['macs'] / a76:.2f}" if r["macs"] and a76 > 0 else "-",
                f"{r['host_us']:.1f}",
            ]
        )
    lines += _table(
        ["op", "kind", "class", "output", "MACs", "a53", "a72", "a76", "MAC/instr a76", "host us"],
        rows,
    )
    lines += ["By class (a76):", ""]
    total = sum(cores["cortex-a76"])
    rows = []
    for name, row in gc.by_class(_graph_ops(result), cores["cortex-a76"]).items():
        rows.append(
            [
                name,
                str(row["ops"]),
                f"{row['macs']:,}",
                _k(row["cost"]),
                f"{row['cost'] / total * 100:.1f}%",
                f"{row['macs'] / row['cost']:.2f}" if row["cost"] > 0 and row["macs"] else "-",
            ]
        )
    lines += _table(["class", "ops", "MACs", "a76 instructions", "share", "MAC/instr"], rows)
    for name, prof in result["ort_profile_us"].items():
        top = ", ".join(f"{k} {v:.1f} us" for k, v in list(prof.items())[:6])
        lines += [f"ORT node profile, {name} (host, mean per call): {top}.", ""]

    lines += ["## 3. Batch and threads", ""]
    rows = []
    for name in ("LiteRT float32", "LiteRT QAT int8"):
        per = [insns(result, "cortex-a76", "litert", name)]
        per += [insns(result, "cortex-a76", "litert", f"{name} batch {b}") for b in (4, 16, 64)]
        host = {
            (s["threads"], s["batch"]): s["p50_us_per_crop"]
            for s in result["host_sweep"]
            if s["model"] == name
        }
        for b, n in zip((1, 4, 16, 64), per, strict=True):
            rows.append(
                [
                    name,
                    str(b),
                    _m(n / b if n else None),
                    f"{per[0] / (n / b):.3f}" if n else "n/a",
                    f"{host.get((1, b), float('nan')):.1f} us",
                    f"{host.get((2, b), float('nan')):.1f} us",
                ]
            )
    lines += _table(
        [
            "model",
            "batch",
            "a76 instructions per crop",
            "vs batch 1 (x fewer)",
            "host per crop, 1 thread",
            "host per crop, 2 threads",
        ],
        rows,
    )

    lines += ["## 4. End-to-end overhead on a76 (batch 1)", ""]
    rows = []
    for runtime, names in (
        (
            "litert",
            [
                f"{m} phases {p}"
                for m in ("LiteRT float32", "LiteRT QAT int8")
                for p in ("runner", "fused")
            ],
        ),
        ("ort", [f"{n} phases runner" for n in result["host"] if n.startswith("ORT")]),
    ):
        for name in names:
            r = job(result, "cortex-a76", runtime, name)
            if r is None:
                continue
            ph = r["phases"]
            extra = sum(v for k, v in ph.items() if k != "invoke")
            rows.append(
                [
                    name,
                    *[
                        _k(ph.get(k))
                        for k in (
                            "preprocess_image",
                            "preprocess_meta",
                            "set_inputs",
                            "invoke",
                            "get_output",
                        )
                    ],
                    f"{extra / ph['invoke'] * 100:.1f}%",
                ]
            )
    lines += _table(
        [
            "call",
            "image u8 -> input",
            "metadata -> input",
            "copy in",
            "invoke",
            "read + dequantise",
            "overhead / invoke",
        ],
        rows,
    )
    return "\n".join(lines)


def _graph_ops(result: dict) -> list[gc.GraphOp]:
    return [
        gc.GraphOp(
            o["index"], o["kind"], o["class"], o["output"], tuple(o["output_shape"]), o["macs"]
        )
        for o in result["ops"]
    ]
