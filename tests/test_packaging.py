"""A regular install (`pip install .`, a wheel) holds every module and file the editable install
of `make setup` finds in the repository: pyproject.toml lists the packages by hand, and a
subpackage left out of the list is missing from the wheel (clipsearch_onnx.backends was: every
command of an installed wheel failed with ModuleNotFoundError)."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def setuptools_table() -> dict:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return pyproject["tool"]["setuptools"]


def folders() -> dict[str, Path]:
    """Every installed package name -> its folder in the repository (a folder with files in it,
    below one of package-dir's roots; caches left out)."""
    found = {}
    for name, root in setuptools_table()["package-dir"].items():
        for folder in [REPO / root, *sorted((REPO / root).rglob("*"))]:
            if not folder.is_dir() or folder.name == "__pycache__":
                continue
            if any(f.is_file() and not f.name.endswith(".pyc") for f in folder.iterdir()):
                relative = folder.relative_to(REPO / root).parts
                found[".".join((name, *relative))] = folder
    return found


def test_every_package_folder_is_installed():
    listed = set(setuptools_table()["packages"])
    assert set(folders()) <= listed, sorted(set(folders()) - listed)


def test_every_file_of_an_installed_package_is_a_module_or_package_data():
    table = setuptools_table()
    data = table.get("package-data", {})
    for name, folder in folders().items():
        for file in folder.iterdir():
            if not file.is_file() or file.suffix in (".py", ".pyc"):
                continue
            patterns = data.get(name, [])
            assert any(fnmatch.fnmatch(file.name, p) for p in patterns), (name, file.name)
