"""Ctrl-C at any moment of any command: exit code 130 and one line, "clipsearch: interrupted";
once the command is done (the interpreter shutting down), its own exit code and nothing said.

Each case is a real `clipsearch` process that gets a real SIGINT at a chosen moment. The moments
inside the process are picked by a launcher that is the console script plus a trigger: it sends
the signal when a given module starts to import (a meta-path hook), a few milliseconds later (from
a thread, so the signal lands while C code runs: this is how onnxruntime's start-up turns it into
`ImportError: initialization failed`), or while an ONNX Runtime session is being created.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures_collection import SLOW_RUN, cli_env, default_sigint, run_cli, start_cli

LINE = "clipsearch: interrupted"

LAUNCHER = """
import importlib.machinery, os, re, signal, sys, threading, time

MODE, TARGET, DELAY = sys.argv[1], sys.argv[2], float(sys.argv[3])
del sys.argv[1:4]


def interrupt():
    if DELAY:
        later = lambda: (time.sleep(DELAY), os.kill(os.getpid(), signal.SIGINT))
        threading.Thread(target=later, daemon=True).start()
    else:
        os.kill(os.getpid(), signal.SIGINT)


def interrupt_session_creation(module):
    create = module.InferenceSession._create_inference_session

    def create_interrupted(self, *args, **kwargs):
        interrupt()
        return create(self, *args, **kwargs)

    module.InferenceSession._create_inference_session = create_interrupted


class Trigger:
    fired = False

    def find_spec(self, name, path=None, target=None):
        if MODE == "import" and name == TARGET and not Trigger.fired:
            Trigger.fired = True
            interrupt()
        if MODE == "session" and name == "onnxruntime.capi.onnxruntime_inference_collection":
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            exec_module = spec.loader.exec_module
            spec.loader.exec_module = lambda m: (exec_module(m), interrupt_session_creation(m))
            return spec
        return None


sys.meta_path.insert(0, Trigger())

# from here on, the console script that pip writes
from clipsearch_onnx.entry import main
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])
    sys.exit(main())
"""

MOMENTS = [
    ("import", "argparse", 0),  # while the CLI itself loads, before main() runs
    ("import", "onnxruntime.capi.onnxruntime_pybind11_state", 0.001),  # in its C start-up
    ("import", "onnxruntime.capi.onnxruntime_pybind11_state", 0.002),
    ("import", "tokenizers", 0),
    ("import", "numpy", 0.003),  # a small index is searched with numpy alone (no FAISS)
    ("session", "-", 0),  # model loading: the text tower's session is being created
    ("session", "-", 0.003),
]


def interrupted_wrongly(proc: subprocess.Popen[str], what: str) -> str | None:
    """None if `proc` ended as an interrupt should, else what it did instead."""
    _, err = proc.communicate(timeout=120)
    lines = err.splitlines()
    if proc.returncode == 130 and len(lines) == 1 and lines[0].startswith(LINE):
        return None
    return f"{what}: exit {proc.returncode}, stderr:\n{err}"


def test_sigint_at_any_moment_of_a_search_exits_130_with_one_line(indexed_collection, tmp_path):
    launcher = tmp_path / "clipsearch"  # named like the script, as the CLI checks
    launcher.write_text(LAUNCHER, encoding="utf-8")
    search = ["search", "a red circle", "--index", str(indexed_collection.index)]
    procs = [
        (
            moment,
            subprocess.Popen(
                [sys.executable, str(launcher), *map(str, moment), *search],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=cli_env(tmp_path),
                preexec_fn=default_sigint,
            ),
        )
        for moment in MOMENTS
    ]
    wrong = [interrupted_wrongly(proc, " ".join(map(str, moment))) for moment, proc in procs]
    assert [w for w in wrong if w] == []


def test_sigint_during_a_first_index_run_exits_130_with_one_line(
    exported_model: Path, indexed_collection, tmp_path
):
    # On an idle machine the whole run can end within the first delay: each later try
    # interrupts sooner, and at least one of them must land while the run is working.
    for attempt, delay in enumerate((0.3, 0.1, 0.03, 0.01, 0.0)):
        index = tmp_path / f"index{attempt}"
        proc = start_cli(
            "index", indexed_collection.photos, "--index", index, "--model", exported_model,
            "--quiet", *SLOW_RUN, home=tmp_path,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not index.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(delay)
        if proc.poll() is not None:  # finished before the signal: too late, try sooner
            proc.communicate(timeout=120)
            continue
        proc.send_signal(signal.SIGINT)
        wrong = interrupted_wrongly(proc, f"index + {delay} s")
        if proc.returncode == 0:  # the signal came once the run was done: it must be complete
            assert_finished_run(proc, index, indexed_collection)
            continue
        assert wrong is None
        return
    pytest.fail("every run of `clipsearch index` ended before it could be interrupted")


def assert_finished_run(proc: subprocess.Popen[str], index: Path, collection) -> None:
    assert proc.stderr is not None and proc.stderr.closed  # communicate() read it
    info = run_cli("info", "--index", index, "--json", home=index.parent)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["count"] == len(collection.images)


def test_sigint_once_the_command_is_done_leaves_its_exit_code(indexed_collection, tmp_path):
    # Python puts SIGINT back to its default action late in its shutdown; a Ctrl-C there killed
    # a finished `clipsearch index` with nothing said (exit -2, seen in CI). The launcher sends
    # SIGINT from an exit handler that runs after the command's own last one, and waits there.
    launcher = tmp_path / "clipsearch"
    launcher.write_text(LATE_LAUNCHER, encoding="utf-8")
    search = ["search", "a red circle", "--index", str(indexed_collection.index), "--json"]
    proc = subprocess.run(
        [sys.executable, str(launcher), *search],
        capture_output=True,
        text=True,
        env=cli_env(tmp_path),
        preexec_fn=default_sigint,
        timeout=120,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr)  # the search had finished
    assert proc.stderr == ""
    assert len(json.loads(proc.stdout)["results"]) == 10


LATE_LAUNCHER = """
import atexit, os, re, signal, sys, time


def late_sigint():
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.2)


atexit.register(late_sigint)  # before main() registers its own: runs after it

from clipsearch_onnx.entry import main
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])
    sys.exit(main())
"""
