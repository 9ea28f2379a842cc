"""The `edgeped` command line: a thin shell over the library.

One module per command group. Each command parses its options, calls one library
function, renders the result and returns an exit code; errors become messages in one
place (`_root._Group`). TensorFlow is imported only inside commands that need it.
"""

from __future__ import annotations

from edgeped.cli import (
    bench,
    convert,
    data,
    demo,
    doctor,
    drift,
    evaluate,
    gate,
    profile,
    quant_debug,
    release,
    shadow,
    train,
)
from edgeped.cli._options import finite_floats
from edgeped.cli._root import main

for _command in (
    data.data,
    train.train,
    convert.convert,
    quant_debug.quant_debug,
    evaluate.eval_,
    evaluate.compare,
    demo.demo,
    bench.bench,
    bench.deploy,
    profile.profile,
    gate.gate,
    release.release,
    release.keygen,
    release.trust,
    release.install,
    release.rollback,
    release.status,
    shadow.shadow,
    drift.drift,
    doctor.doctor,
):
    main.add_command(_command)
finite_floats(main)

__all__ = ["main"]
