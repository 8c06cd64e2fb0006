"""What a user gets after a typo or a bad setting: the command's own usage with the closest valid
option or command, unquoted words taken as one text, and one line with exit code 2 for a
setting that cannot be used, wherever it came from (flag, environment, config.toml)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clipsearch_onnx.cli import main
from clipsearch_onnx.settings import KEYS, Settings
from tests.fixtures_collection import assert_one_clean_line

REPO = Path(__file__).resolve().parents[1]
TOP_USAGE = "usage: clipsearch [-h] [--version] COMMAND"


def usage_error(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(list(argv))
    assert exit_.value.code == 2
    return capsys.readouterr().err


def test_a_mistyped_option_gets_the_commands_usage_and_the_closest_option(capsys):
    err = usage_error(capsys, "search", "--imgae", "x.jpg")
    assert err.startswith("usage: clipsearch search ")
    assert TOP_USAGE not in err
    assert err.rstrip().endswith(
        "clipsearch search: error: unrecognized arguments: --imgae (did you mean --image?)"
    )
    err = usage_error(capsys, "index", "photos", "--chekpoint=5")
    assert err.startswith("usage: clipsearch index ") and "did you mean --checkpoint?" in err


def test_a_mistyped_command_or_choice_gets_the_closest_one(capsys):
    err = usage_error(capsys, "serach", "a dog")
    assert "invalid choice: 'serach'; did you mean 'search'?" in err
    err = usage_error(capsys, "search", "x", "--precision", "int9")
    assert err.startswith("usage: clipsearch search ") and "did you mean 'int8'?" in err


def test_words_after_the_options_say_how_text_is_given(capsys):
    err = usage_error(capsys, "search", "a", "red", "--json", "circle")
    assert "unrecognized arguments: circle (the words of TEXT go together" in err


def test_unquoted_words_are_one_text(indexed_collection, capsys, monkeypatch):
    monkeypatch.setenv("CLIPSEARCH_HOME", str(indexed_collection.root))
    index = str(indexed_collection.index)
    assert main(["search", "a", "red", "circle", "--index", index, "--json"]) == 0
    unquoted = json.loads(capsys.readouterr().out)
    assert main(["search", "a red circle", "--index", index, "--json"]) == 0
    quoted = json.loads(capsys.readouterr().out)
    assert unquoted["query"] == quoted["query"] == {"text": "a red circle"}
    assert unquoted["results"] == quoted["results"]


@pytest.mark.parametrize(
    ("config", "env", "words"),
    [
        ('index = "/x"', {}, "unknown setting 'index'; did you mean 'index_dir'? (valid: "),
        ("threds = 2", {}, "did you mean 'threads'?"),
        ('threads = "abc"', {}, "threads must be a whole number of at least 1, not 'abc'"),
        ('precision = "foo"', {}, "precision must be int8 or fp32, not 'foo'"),
        ("index_dir = 3", {}, "index_dir must be a folder path, not 3"),
        ("threads = = 2", {}, "is not valid TOML"),
        ("", {"CLIPSEARCH_THREADS": "abc"}, "CLIPSEARCH_THREADS must be a whole number"),
        ("", {"CLIPSEARCH_BATCH_SIZE": "0"}, "CLIPSEARCH_BATCH_SIZE must be a whole number"),
        ("", {"CLIPSEARCH_PRECISION": "fp16"}, "CLIPSEARCH_PRECISION must be int8 or fp32"),
        ('decoding = "exact"', {}, "decoding must be fast or reference, not 'exact'"),
        ("", {"CLIPSEARCH_DECODING": "bogus"}, "CLIPSEARCH_DECODING must be fast or reference"),
    ],
)
def test_a_bad_setting_is_one_line_with_exit_2(tmp_path, monkeypatch, capsys, config, env, words):
    monkeypatch.setenv("CLIPSEARCH_HOME", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "config.toml").write_text(config + "\n", encoding="utf-8")
    assert main(["search", "a dog", "--index", str(tmp_path / "index")]) == 2
    err = capsys.readouterr().err
    assert_one_clean_line(err)
    assert words in err
    if "valid: " in words:
        valid = "model_dir, index_dir, precision, threads, batch_size, backend, decoding"
        assert f"(valid: {valid})" in err


def test_a_bad_flag_value_is_one_line_with_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CLIPSEARCH_HOME", str(tmp_path))
    assert main(["search", "a dog", "--threads", "0", "--index", str(tmp_path)]) == 2
    assert "--threads must be a whole number of at least 1, not 0" in capsys.readouterr().err
    index = ["--index", str(tmp_path / "index")]
    for command in (["search", "a dog", *index], ["embed", "--text", "a"], ["index", "x", *index]):
        assert main([*command, "--decoding", "bogus"]) == 2, command
        err = capsys.readouterr().err
        assert_one_clean_line(err)
        assert "--decoding must be fast or reference, not 'bogus'" in err


def test_every_config_key_is_documented_in_help_and_readme(capsys):
    assert {key.name for key in KEYS} == set(Settings._fields)
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    help_text = capsys.readouterr().out
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for key in KEYS:
        row = [line for line in help_text.splitlines() if line.split()[:1] == [key.name]]
        assert len(row) == 1 and key.env in row[0] and key.flag in row[0], help_text
        assert f"`{key.name}`" in readme and f"`{key.env}`" in readme
    for code in ("6", "7", "129", "130"):
        assert f"\n  {code} " in help_text
