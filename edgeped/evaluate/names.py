"""Names a person reads for slices: `kind=pedestrian`, not `hard_negative=none`.

metrics.json and budget names keep the schema's keys (`hard_negative=none`), so
files stay stable; reports, plots and galleries show these labels.
"""

from __future__ import annotations

TAG_TITLES = {"hard_negative": "kind"}
VALUE_TITLES = {("hard_negative", "none"): "pedestrian", ("hard_negative", "unknown"): "unlabelled"}


def slice_label(tag: str, value: str) -> str:
    """`lighting=night` stays; `hard_negative=none` becomes `kind=pedestrian`."""
    return f"{TAG_TITLES.get(tag, tag)}={VALUE_TITLES.get((tag, value), value)}"


def tag_title(tag: str) -> str:
    return TAG_TITLES.get(tag, tag)
