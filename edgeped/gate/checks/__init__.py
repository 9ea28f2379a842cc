"""The gate's checks, one module per budget family, registered by name in CHECKS.

A family module defines `@check("family")` functions that turn evidence into rows
through `Budget` (base.py); importing this package registers them all, in the order
the report lists them.
"""

from __future__ import annotations

# isort: off
# Registration order is report order: quality first, then the target, the artifact and
# the baseline. A new family module is imported here, after these.
from edgeped.gate.checks import quality  # noqa: F401
from edgeped.gate.checks import device  # noqa: F401
from edgeped.gate.checks import artifact  # noqa: F401
from edgeped.gate.checks import baseline  # noqa: F401
from edgeped.gate.checks import robustness  # noqa: F401
from edgeped.gate.checks import shadow  # noqa: F401

# isort: on
from edgeped.gate.checks.base import CHECKS, Budget, check, run_checks, stale_note
from edgeped.gate.checks.device import is_emulated

__all__ = ["CHECKS", "Budget", "check", "is_emulated", "run_checks", "stale_note"]
