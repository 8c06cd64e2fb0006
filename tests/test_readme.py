"""The README and `--help` tell the truth about the command line: every `clipsearch COMMAND
--option` the README shows exists, every option of every command says what it does, and the
README's exit-code and settings tables are the CLI's own."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from clipsearch_onnx.cli.parser import COMMANDS, build_parser
from clipsearch_onnx.errors import ExitCode
from clipsearch_onnx.settings import KEYS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def readme_command_lines() -> list[str]:
    """Every `clipsearch ...` the README shows: lines of its sh blocks and inline code spans."""
    blocks = re.findall(r"```sh\n(.*?)```", README, flags=re.S)
    lines = [line.split("  #")[0] for block in blocks for line in block.splitlines()]
    joined = [line for line in "\n".join(lines).replace("\\\n", " ").splitlines()]
    inline = re.findall(r"`(clipsearch [^`]+)`", README)
    return [line.strip() for line in [*joined, *inline] if line.strip().startswith("clipsearch ")]


def test_the_readme_shows_commands():
    shown = {shlex.split(line, posix=True)[1] for line in readme_command_lines()}
    assert {"index", "search", "dups", "serve", "embed-shards", "import"} <= shown


@pytest.mark.parametrize("line", readme_command_lines())
def test_every_command_and_option_the_readme_shows_exists(line):
    words = shlex.split(line.split(" | ")[0], posix=True)
    name = words[1]
    if name == "COMMAND":  # `clipsearch COMMAND --help`
        return
    assert name in COMMANDS, line
    known = options(subparsers()[name])
    for word in words[2:]:
        if word.startswith("-") and not re.fullmatch(r"-\d.*", word):
            flag = word.split("=")[0]
            assert flag in known or flag == "--help", (line, flag)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_option_of_every_command_says_what_it_does(name):
    parser = subparsers()[name]
    for action in parser._actions:
        if action.help is argparse.SUPPRESS:
            continue
        assert action.help, (name, action.option_strings or action.dest)


def test_the_readme_exit_codes_are_the_clis():
    rows = re.findall(r"^\| (\d+) \| ", README, flags=re.M)
    assert [int(code) for code in rows] == [int(code) for code in ExitCode]


def test_the_readme_settings_table_is_the_clis():
    rows = re.findall(r"^\| `(\w+)` \| `(CLIPSEARCH_\w+)` \| `(--[\w-]+)` \|", README, flags=re.M)
    assert rows == [(key.name, key.env, key.flag) for key in KEYS]


# Options of the other programs the README runs, and where each is defined.
OTHER_PROGRAMS = {
    "--calibration": "export/__main__.py",  # python -m export
    "--fast": "demo/__main__.py",  # python -m demo
    "--retrain": "demo/__main__.py",
    "--data": "demo/train.py",  # python -m demo.train
    "--half": "demo/train.py",
    "--only": "bench/__main__.py",  # python -m bench
    "--address": None,  # ray start
    "--head": None,
    "--check": None,  # ruff format --check
}


def test_every_option_the_readme_names_exists():
    known = set().union(*(options(p) for p in subparsers().values()))
    repo = Path(__file__).resolve().parents[1]
    for flag in set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", README)) - known:
        assert flag in OTHER_PROGRAMS, flag
        source = OTHER_PROGRAMS[flag]
        if source is not None:
            assert f'"{flag}"' in (repo / source).read_text(encoding="utf-8"), flag
