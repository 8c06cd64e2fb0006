"""What a scan yields for entries named like images that are not image files. A FIFO named
x.png hung `clipsearch index` forever (opening it waits for a writer), and a symlink x.jpg ->
/dev/zero filled the memory until the kernel killed the run: neither may ever be opened."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from clipsearch_onnx.errors import ImageError
from clipsearch_onnx.pipeline import read_file
from clipsearch_onnx.scan import Found, scan
from tests.fixtures_collection import run_cli

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")


def odd_entries(folder, *, endless=False):
    """A picture, a FIFO and devices named like pictures. `endless` adds /dev/zero, only where
    nothing could read it (a scan): a reader without the fix would fill the machine's memory."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), (200, 40, 40)).save(folder / "good.png")
    os.mkfifo(folder / "pipe.png")
    os.symlink("/dev/null", folder / "null.jpg")  # a device: read would give b"" here
    odd = {
        folder / "pipe.png": "not a regular file (a FIFO)",
        folder / "null.jpg": "not a regular file (a device)",
    }
    if endless:
        os.symlink("/dev/zero", folder / "zero.jpg")
        odd[folder / "zero.jpg"] = "not a regular file (a device)"
    return odd


def test_fifos_and_devices_are_named_never_found(tmp_path):
    odd = odd_entries(tmp_path / "photos", endless=True)
    found, skipped = [], {}
    for entry in scan(tmp_path / "photos"):
        if isinstance(entry, Found):
            found.append(entry.relpath)
        else:
            skipped[entry[0]] = entry[1]
    assert found == ["good.png"]
    assert skipped == {str(path): why for path, why in odd.items()}


def test_a_query_file_that_is_a_device_is_refused_and_a_pipe_is_read(tmp_path, exported_model):
    from clipsearch_onnx.encoder import Encoder
    from clipsearch_onnx.manifest import Manifest

    preprocess = Encoder(Manifest.load(exported_model), "fp32").preprocess
    with pytest.raises(ImageError, match="a device"):
        read_file("/dev/null", preprocess)  # without the fix: "empty file"
    # a pipe named on purpose (`--image <(cat x.png)`) is read
    good = tmp_path / "good.png"
    Image.new("RGB", (40, 30), (200, 40, 40)).save(good)
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; sys.stdout.buffer.write(open(sys.argv[1], 'rb').read())",
            good,
        ],
        stdout=subprocess.PIPE,
    )
    try:
        loaded = read_file(f"/dev/fd/{writer.stdout.fileno()}", preprocess)
    finally:
        writer.stdout.close()
        writer.wait(timeout=10)
    assert loaded.pixels.shape[0] == 3


def test_index_skips_a_fifo_and_devices_with_one_line_each(tmp_path, exported_model):
    odd = odd_entries(tmp_path / "photos")
    run = run_cli(
        "index", tmp_path / "photos", "--model", exported_model, "--index", tmp_path / "index",
        "-q", home=tmp_path, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert sorted(run.stderr.splitlines()) == sorted(
        f"skipped {path}: {why}" for path, why in odd.items()
    )


def scanned_without_privileges(root):
    """scan(root) as (found relpaths, {path: reason}), run where file permissions apply: here if
    not root, else in a child that drops root's right to read anything (util-linux setpriv)."""
    code = (
        "import json, sys\n"
        "from clipsearch_onnx.scan import Found, scan\n"
        "out = [e.relpath if isinstance(e, Found) else list(e) for e in scan(sys.argv[1])]\n"
        "print(json.dumps(out))\n"
    )
    prefix = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: permissions do not apply")
        caps = "-dac_override,-dac_read_search"
        prefix = [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}"]
    run = subprocess.run(
        [*prefix, sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    entries = json.loads(run.stdout)
    return [e for e in entries if isinstance(e, str)], {
        e[0]: e[1] for e in entries if isinstance(e, list)
    }


def test_a_folder_that_cannot_be_listed_is_named_not_dropped(tmp_path):
    root = tmp_path / "photos"
    (root / "locked").mkdir(parents=True)
    Image.new("RGB", (40, 30)).save(root / "a.png")
    Image.new("RGB", (40, 30)).save(root / "locked" / "b.png")
    (root / "locked").chmod(0)
    try:
        found, skipped = scanned_without_privileges(root)
    finally:
        (root / "locked").chmod(0o755)
    assert found == ["a.png"]
    assert list(skipped) == [str(root / "locked")]
    assert "cannot read this folder" in skipped[str(root / "locked")]
