"""The model resolver: which model each command uses, and the one record of an index's model."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from clipsearch_onnx import models
from clipsearch_onnx.catalog import Catalog
from clipsearch_onnx.errors import ModelError
from clipsearch_onnx.index import INDEX_JSON
from clipsearch_onnx.settings import Settings
from tests.fixtures_collection import build_of


def _other_model(src, dst):
    """A copy of `src` that is another model as far as identity goes (another manifest)."""
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["created"] = "another export"
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


def test_the_index_records_its_model_once_and_queries_follow_it(indexed_collection, tmp_path):
    index = indexed_collection.index
    record = models.read_record(index)
    assert record is not None
    assert (record.family, record.precision, record.dim) == ("clip", "int8", 24)
    assert record.dir == str(indexed_collection.model)
    assert "model" not in json.loads((build_of(index) / INDEX_JSON).read_text())  # stored once

    # A query with no --model uses the recorded one; with another model it is refused.
    chosen = models.for_query(Settings(index_dir=index), index)
    assert chosen.manifest.fingerprint == record.fingerprint
    other = _other_model(indexed_collection.model, tmp_path / "other")
    with pytest.raises(ModelError, match="another model") as err:
        models.for_query(Settings(model_dir=other, index_dir=index), index)
    assert "\n" not in str(err.value)
    with pytest.raises(ModelError, match="--precision int8"):
        models.for_query(Settings(precision="fp32", index_dir=index), index)


def test_writers_bind_the_model_and_refuse_another(indexed_collection, tmp_path):
    index = tmp_path / "index"
    shutil.copytree(indexed_collection.index, index)
    moved = tmp_path / "moved-model"
    shutil.copytree(indexed_collection.model, moved)
    catalog = Catalog.open(build_of(index))
    try:
        other = models.resolve(_other_model(moved, tmp_path / "other"), None, None)
        with pytest.raises(ModelError, match="another model"):
            models.bind(catalog, other)
        # The same model from a new folder is accepted, and the record follows it there.
        models.bind(catalog, models.resolve(moved, "int8", None))
    finally:
        catalog.close()
    assert models.read_record(index).dir == str(moved)
    with pytest.raises(ModelError, match="a new index needs --model"):
        models.resolve(None, None, None, default=False)


def test_catalogs_from_before_the_record_are_read(indexed_collection, tmp_path):
    index = tmp_path / "index"
    shutil.copytree(indexed_collection.index, index)
    record = models.read_record(index)
    # the old schema: five meta keys
    with sqlite3.connect(build_of(index) / "catalog.sqlite") as db:
        db.execute("DELETE FROM meta WHERE key = 'model'")
        db.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            [
                ("model_fingerprint", record.fingerprint),
                ("model_dir", record.dir),
                ("model_source", record.source),
                ("precision", "int8"),
                ("dim", "24"),
            ],
        )
    legacy = models.read_record(index)
    assert (legacy.fingerprint, legacy.family, legacy.dim, legacy.dir) == (
        record.fingerprint,
        "clip",
        24,
        record.dir,
    )
    assert models.for_query(Settings(index_dir=index), index).precision == "int8"


def test_a_damaged_catalog_has_no_record_so_rebuild_can_start(tmp_path):
    (tmp_path / "catalog.sqlite").write_bytes(b"not a database" * 100)
    assert models.read_record(tmp_path) is None


def test_models_command_lists_recommendations_and_exported_folders(siglip, tmp_path):
    from tests.fixtures_collection import run_cli

    shutil.copytree(siglip.model, tmp_path / "models" / "siglip")
    proc = run_cli("models", "--json", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    hub_ids = [r["hub_id"] for r in data["recommended"]]
    assert hub_ids[0] == "openai/clip-vit-base-patch32"  # the default stays first
    assert {"laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "google/siglip2-base-patch32-256"} <= set(
        hub_ids
    )
    assert all(r["export"].startswith("make export MODEL=") for r in data["recommended"])
    [found] = data["installed"]
    assert (found["family"], found["source"], found["default"]) == (
        "siglip",
        "someone/tiny-siglip",
        False,
    )


def test_a_manifest_from_a_newer_export_is_refused_in_one_line(tmp_path):
    from clipsearch_onnx.manifest import Manifest

    (tmp_path / "manifest.json").write_text(json.dumps({"format": 99}))
    with pytest.raises(ModelError, match="format 99") as err:
        Manifest.load(tmp_path)
    assert "\n" not in str(err.value)
