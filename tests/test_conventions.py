"""One set of command-line conventions, checked on every command and option (docs/conventions.md)."""

import re

import click
import pytest

from edgeped.cli import main


def _commands(cmd=main, path=()):
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield " ".join(path), cmd


OPTIONS = [
    (name, opt)
    for name, cmd in _commands()
    for opt in cmd.params
    if isinstance(opt, click.Option) and not opt.hidden
]


def _id(item):
    return f"{item[0]} {item[1].opts[0]}"


@pytest.mark.parametrize("item", OPTIONS, ids=_id)
def test_every_option_has_help_and_one_default_format(item):
    _, opt = item
    text = opt.help or ""
    assert text.strip(), "option without help text"
    assert not re.search(r"\(default", text), "defaults are written [default: ...]"
    assert not re.search(r"\[[\d.]+\]|\(\d+\)", text), "a bare [0.5] or (480) default"


@pytest.mark.parametrize("item", OPTIONS, ids=_id)
def test_lists_repeat_the_option(item):
    _, opt = item
    text = (opt.help or "").lower()
    assert not re.search(r"\bcomma\b", text), "lists repeat the option, one value each"


def test_out_always_names_a_folder():
    outs = [(n, o) for n, o in OPTIONS if "--out" in o.opts]
    assert {n for n, _ in outs} >= {"bench", "compare", "demo", "data stats"}
    for name, opt in outs:
        assert isinstance(opt.type, click.Path) and not opt.type.file_okay, name


def test_every_json_option_takes_dash_for_stdout():
    jsons = [(n, o) for n, o in OPTIONS if "--json" in o.opts]
    assert {n for n, _ in jsons} >= {"gate", "data verify", "doctor"}
    for name, opt in jsons:
        assert "'-' for stdout" in (opt.help or ""), name


def test_verbose_is_on_the_root_command():
    assert any("-v" in p.opts and "--verbose" in p.opts for p in main.params)
