"""Option values checked before any work starts: no float option takes NaN or infinity.

click's FLOAT (and FloatRange, whose bounds NaN compares false against) accept "nan"
and "inf", which then meet the library as a wait that never ends or a rate that makes
every comparison false. `finite_floats` swaps every float option of every command for
a type that refuses them as a usage error (exit 64) naming the option.
"""

from __future__ import annotations

import math

import click


def _refuse(value, rv, param, ctx, kind) -> None:
    if isinstance(rv, float) and not math.isfinite(rv):
        kind.fail(f"{value!r} is not a finite number", param, ctx)


class FiniteFloat(click.types.FloatParamType):
    """A float that is not NaN or infinite."""

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        _refuse(value, rv, param, ctx, self)
        return rv


class FiniteFloatRange(click.FloatRange):
    """A bounded float that is not NaN (which passes every bound) or infinite."""

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        _refuse(value, rv, param, ctx, self)
        return rv


def _finite(kind: click.ParamType) -> click.ParamType:
    if isinstance(kind, (FiniteFloat, FiniteFloatRange)):
        return kind
    if isinstance(kind, click.FloatRange):
        return FiniteFloatRange(
            kind.min, kind.max, min_open=kind.min_open, max_open=kind.max_open, clamp=kind.clamp
        )
    if isinstance(kind, click.types.FloatParamType):
        return FiniteFloat()
    return kind


def finite_floats(command: click.Command) -> None:
    """Makes every float parameter of `command` and its subcommands refuse NaN and inf."""
    for param in command.params:
        param.type = _finite(param.type)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            finite_floats(sub)
