"""The container recipes run the tools/ scripts the tests and CI run, not copies of them.

The Dockerfiles are parsed into instructions; every script a RUN or CMD starts must be
one the test fixtures or the Makefile (CI's `make test`) run too, must exist, parse as
bash, be copied into the image where the recipe calls it, and be called with options it
accepts.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
_SCRIPT = re.compile(r"tools/([\w.-]+\.sh)")
_FIXTURE_SCRIPT = re.compile(r"""["']tools["']\s*/\s*["']([\w.-]+\.sh)["']""")


def instructions(path: Path) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction: continuations joined, comment lines dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment lines, inside a continuation too
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text, pending = pending + line, ""
        keyword, _, args = text.partition(" ")
        out.append((keyword.upper(), args.strip()))
    assert not pending, f"{path.name}: the last instruction ends in a continuation"
    return out


def shell_commands(args: str) -> list[list[str]]:
    """The simple commands of a RUN/CMD argument (shell or JSON form), split on && ; |."""
    if args.startswith("["):
        argv = json.loads(args)
        if argv[:2] in (["sh", "-c"], ["bash", "-c"]):
            return shell_commands(argv[2])
        return [argv]
    commands, current = [], []
    lexer = shlex.shlex(args, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    for token in lexer:
        if token in ("&&", ";", "||", "|", "&"):
            commands.append(current)
            current = []
        else:
            current.append(token)
    return [c for c in commands + [current] if c]


def scripts_run(recipe: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """(script path as the image names it, its arguments) for every `bash X.sh ...`."""
    out = []
    for keyword, args in recipe:
        if keyword not in ("RUN", "CMD"):
            continue
        for argv in shell_commands(args):
            words = [w for w in argv if "=" not in w.split("/")[0]]  # drop VAR=value prefixes
            if len(words) >= 2 and words[0] == "bash" and words[1].endswith(".sh"):
                out.append((words[1], words[2:]))
    return out


def copied(recipe: list[tuple[str, str]], workdir: str = "/") -> dict[str, Path]:
    """Image path -> repo path for every file a COPY brings from the build context."""
    out: dict[str, Path] = {}
    for keyword, args in recipe:
        if keyword == "WORKDIR":
            workdir = args
        if keyword != "COPY" or args.startswith("--from"):
            continue
        *sources, dest = shlex.split(args)
        dest = posixpath.normpath(posixpath.join(workdir, dest))
        for source in sources:
            src = ROOT / source
            if source == ".":  # the whole context: the files the recipes may run
                for path in [*ROOT.glob("tools/*"), *ROOT.glob("device/**/*.py")]:
                    out[posixpath.join(dest, path.relative_to(ROOT).as_posix())] = path
            elif src.is_dir():  # a folder's contents, as Docker copies them
                for path in src.rglob("*.py"):
                    out[posixpath.join(dest, path.relative_to(src).as_posix())] = path
            elif args.rstrip().endswith("/"):
                out[posixpath.join(dest, src.name)] = src
            else:
                out[dest] = src
    return out


def scripts_the_tests_run() -> set[str]:
    """tools/ scripts the test fixtures or the Makefile run, and those they call in turn."""
    names = set(_FIXTURE_SCRIPT.findall((ROOT / "tests" / "conftest.py").read_text()))
    names |= set(_SCRIPT.findall((ROOT / "Makefile").read_text()))
    todo = list(names)
    while todo:
        body = (ROOT / "tools" / todo.pop()).read_text()
        for called in _SCRIPT.findall(body):
            if called not in names:
                names.add(called)
                todo.append(called)
    return names


def accepted_options(script: Path) -> set[str]:
    """The --options and subcommands a script compares its arguments with."""
    text = script.read_text()
    options = set(re.findall(r'"(--[\w-]+)"', text))
    options |= set(re.findall(r"^\s*([\w-]+)\)", text, flags=re.M))  # case arms
    return options


RECIPES = sorted(DOCKER.glob("Dockerfile.*"))


def test_tested_scripts_are_found():
    # The fixtures build the board and start the sshd; CI installs through install.sh.
    assert {"setup_arm64_emu.sh", "setup_test_sshd.sh", "install.sh"} <= scripts_the_tests_run()
    assert "install_device_runtime.sh" in scripts_the_tests_run(), "called by setup_arm64_emu.sh"


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_every_script_a_recipe_runs_is_a_tested_one_copied_into_the_image(recipe):
    parsed = instructions(recipe)
    files = copied(parsed)
    tested = scripts_the_tests_run()
    for image_path, args in scripts_run(parsed):
        name = Path(image_path).name
        assert name in tested, f"{recipe.name} runs {name}, which no test or CI runs"
        workdir = ([a for k, a in parsed if k == "WORKDIR"] or ["/"])[-1]
        in_image = posixpath.normpath(posixpath.join(workdir, image_path))
        assert in_image in files, f"{recipe.name}: {in_image} is run but never copied in"
        source = files[in_image]
        assert source == ROOT / "tools" / name, f"{in_image} is not tools/{name}"
        proc = subprocess.run(["bash", "-n", str(source)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        options = accepted_options(source)
        for arg in args:
            if arg.startswith("--") or arg in ("start", "stop"):
                assert arg in options, f"{recipe.name}: {name} does not accept {arg}"


def test_ecu_image_installs_the_runtime_and_sshd_like_the_tests():
    parsed = instructions(DOCKER / "Dockerfile.ecu-arm64")
    run = {Path(p).name: args for p, args in scripts_run(parsed)}
    assert "install_device_runtime.sh" in run and run["setup_test_sshd.sh"][0] == "start"
    files = copied(parsed)
    runner = [p for p, src in files.items() if src == ROOT / "device" / "runner.py"]
    assert runner and (ROOT / "device" / "runner.py").is_file()
    package = ROOT / "device" / "edgeped_device"
    beside = posixpath.dirname(runner[0])
    for module in package.rglob("*.py"):  # the runner imports its package from beside it
        image_path = posixpath.join(beside, module.relative_to(package.parent).as_posix())
        assert files.get(image_path) == module, f"{image_path} is not copied in"
    commands = [argv for k, a in parsed if k == "RUN" for argv in shell_commands(a)]
    assert any(runner[0] in argv and "--help" in argv for argv in commands), (
        "the image build starts the copied runner once"
    )
    assert not any("pip" in argv for argv in commands), (
        "runtime installs go through install_device_runtime.sh"
    )


def test_dev_image_builds_the_board_where_the_tests_look_and_runs_make_test():
    parsed = instructions(DOCKER / "Dockerfile.dev")
    run = {Path(p).name: args for p, args in scripts_run(parsed)}
    env = dict(shlex.split(a)[0].split("=", 1) for k, a in parsed if k == "ENV")
    # conftest's arm64_board fixture reads EDGEPED_ARM64_EMU: the image's board is reused.
    assert "EDGEPED_ARM64_EMU" in (ROOT / "tests" / "conftest.py").read_text()
    assert run["setup_arm64_emu.sh"] == [env["EDGEPED_ARM64_EMU"]]
    assert run["install.sh"] == ["--dev"]
    cmd = [argv for k, a in parsed if k == "CMD" for argv in shell_commands(a)]
    assert cmd == [["make", "test"]]
    assert re.search(r"^test:", (ROOT / "Makefile").read_text(), flags=re.M)


def test_the_parser_sees_what_a_recipe_does(tmp_path):
    recipe = tmp_path / "Dockerfile.x"
    recipe.write_text(
        "FROM debian\n"
        "# a comment\n"
        "COPY tools/install.sh /opt/t/\n"
        "RUN X=1 bash /opt/t/install.sh --dev \\\n"
        "  # inside a continuation\n"
        " && echo ok\n"
        'CMD ["sh", "-c", "bash /opt/t/other.sh start && exec tail -F x"]\n'
    )
    parsed = instructions(recipe)
    assert [k for k, _ in parsed] == ["FROM", "COPY", "RUN", "CMD"]
    assert scripts_run(parsed) == [("/opt/t/install.sh", ["--dev"]), ("/opt/t/other.sh", ["start"])]
    assert copied(parsed) == {"/opt/t/install.sh": ROOT / "tools" / "install.sh"}
