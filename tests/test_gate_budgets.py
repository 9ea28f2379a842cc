"""budgets.toml: the shipped file equals the defaults, round trips, and rejects bad values."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from edgeped.errors import EdgepedError
from edgeped.gate.budgets import Budgets, CostBudgets, DeviceBudgets, QualityBudgets, load_budgets

REPO = Path(__file__).resolve().parents[1]


def _to_toml(data: dict) -> str:
    """A minimal TOML writer for the budgets' shape (scalars, lists, nested tables)."""

    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    lines, tables = [], []
    for key, v in data.items():
        (tables if isinstance(v, dict) else lines).append((key, v))
    out = [f'"{k}" = {value(v)}' for k, v in lines]
    for name, table in tables:
        out.append(f"[{name}]")
        out += [f'"{k}" = {value(v)}' for k, v in table.items() if not isinstance(v, dict)]
        for sub, inner in ((k, v) for k, v in table.items() if isinstance(v, dict)):
            out.append(f"[{name}.{sub}]")
            out += [f'"{k}" = {value(v)}' for k, v in inner.items()]
    return "\n".join(out) + "\n"


CONFIGS = [
    Budgets(),
    Budgets(
        model="student_ptq_int8",
        quality=QualityBudgets(min_recall=0.9, max_fpr=0.02, min_slice_positives=50),
        cost=CostBudgets(
            max_size_mb=4.0, max_instructions_per_invoke={"a53": 9_000_000, "cortex-a76": 5_000_000}
        ),
        device=DeviceBudgets(
            parity_required=False, min_xnnpack_share=0.9, allowed_fallback_ops=("TOPK_V2",)
        ),
    ),
]


@pytest.mark.parametrize("budgets", CONFIGS, ids=["defaults", "custom"])
@pytest.mark.parametrize("fmt", ["json", "toml"])
def test_round_trip(budgets, fmt, tmp_path):
    data = budgets.to_dict()
    if fmt == "json":
        back = Budgets.from_dict(json.loads(json.dumps(data)))
    else:
        path = tmp_path / "b.toml"
        path.write_text(_to_toml(data))
        assert tomllib.loads(path.read_text()) == data
        back = load_budgets(path)
    assert back == budgets


def test_shipped_budgets_are_the_defaults_and_the_issue_seeds():
    shipped = load_budgets(REPO / "budgets.toml")
    assert shipped == Budgets()
    assert (shipped.quality.min_recall, shipped.quality.max_fpr, shipped.quality.min_auc_pr) == (
        0.92,
        0.01,
        0.70,
    )
    assert shipped.runtime.max_e2e_ms_per_crop_p95 == 12.0 == shipped.runtime.max_invoke_ms_p95
    assert shipped.cost.max_size_mb == 25.0 and shipped.runtime.max_peak_rss_mb == 200.0
    assert shipped.device.parity_required


def test_every_key_is_documented():
    doc = (REPO / "docs" / "budgets.md").read_text()
    data = Budgets().to_dict()
    keys = [k for k in data if not isinstance(data[k], dict)]
    for table in data.values():
        if isinstance(table, dict):
            keys += list(table)
    for key in keys:
        assert f"`{key}`" in doc, key


@pytest.mark.parametrize(
    "text, field",
    [
        ("[quality]\nmin_recall = 1.5\n", "min_recall"),
        ("[quality]\nmin_slice_positives = 0\n", "min_slice_positives"),
        ("[runtime]\nmax_invoke_ms_p95 = -1.0\n", "max_invoke_ms_p95"),
        ("[runtime]\nmax_peak_rss = 10.0\n", "max_peak_rss"),
        ('[runtime]\ntarget_kinds = ["arm64-emu"]\n', "target_kinds"),
        ("[cost.max_instructions_per_invoke]\ncortex-a53 = 1.5\n", "cortex-a53"),
        ('[device]\nparity_required = "yes"\n', "parity_required"),
        ("[latency]\nx = 1\n", "latency"),
        ('model = ""\n', "model"),
        ("[quality\n", "TOML"),
    ],
)
def test_bad_budgets_name_the_key(tmp_path, text, field):
    path = tmp_path / "b.toml"
    path.write_text(text)
    with pytest.raises(EdgepedError) as err:
        load_budgets(path)
    assert field in str(err.value)


def test_missing_budgets_file(tmp_path):
    with pytest.raises(EdgepedError, match="not found"):
        load_budgets(tmp_path / "none.toml")


def test_core_names_are_normalised():
    assert CostBudgets(max_instructions_per_invoke={"A72": 5}).max_instructions_per_invoke == {
        "cortex-a72": 5
    }
