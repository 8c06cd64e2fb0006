"""Which model (and precision) an index build, a query, an import and an eval use, and the one
record of a model's identity.

Every command asks this module, never `Manifest.load` on a path of its own:
    for_writing(settings, index_dir)   index: --model, else the index's model, else the default
    for_query(settings, index_dir)     search, TUI, web: the same, refused unless the index's model
    standalone(settings, precision)    embed, eval: --model, else the default model
    resolve(model, precision, recorded, default=)   the rule all of them apply (import calls it
                                       with default=False: a new index needs --model)

An index's model is recorded once, as a `ModelRecord` (JSON) under the catalog's meta key
"model", by `bind` when the writer first writes; catalogs written before this module hold the
same facts as separate meta keys and are read (and rewritten on the next write) transparently.
A record and a model match when their manifest fingerprints and precisions are equal: anything
else, whatever the family, is refused with one `ModelError` line.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clipsearch_onnx.errors import IndexError_, ModelError
from clipsearch_onnx.manifest import Manifest
from clipsearch_onnx.paths import default_model_dir

if TYPE_CHECKING:
    from clipsearch_onnx.catalog import Catalog
    from clipsearch_onnx.encoder import Encoder
    from clipsearch_onnx.settings import Settings

RECORD_KEY = "model"
_LEGACY_KEYS = ("model_fingerprint", "model_dir", "model_source", "precision", "dim")


@dataclass(frozen=True)
class ModelRecord:
    """What identifies the model an index's embeddings came from."""

    fingerprint: str  # sha256 of the model folder's manifest.json
    family: str  # "clip" | "siglip"
    source: str | None  # hub id or checkpoint folder the export came from
    revision: str | None  # hub commit of that source, None for a local folder
    dim: int
    precision: str  # the manifest's precision (variant) key: "int8", "fp32", ...
    dir: str  # the model folder when it was recorded (absolute)

    @classmethod
    def of(cls, manifest: Manifest, precision: str) -> ModelRecord:
        return cls(
            fingerprint=manifest.fingerprint,
            family=manifest.family,
            source=manifest.source.get("model"),
            revision=manifest.source.get("revision"),
            dim=manifest.embedding_dim,
            precision=precision,
            dir=str(manifest.model_dir.absolute()),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelRecord:
        return cls(
            fingerprint=str(data["fingerprint"]),
            family=str(data.get("family") or "clip"),
            source=data.get("source"),
            revision=data.get("revision"),
            dim=int(data["dim"]),
            precision=str(data["precision"]),
            dir=str(data["dir"]),
        )

    def describe(self) -> str:
        name = self.source or Path(self.dir).name
        return f"{name} ({self.family}, {self.precision}, in {self.dir})"


def record_from_meta(meta: dict[str, str]) -> ModelRecord | None:
    """The record in a catalog's meta table, or None when nothing was recorded yet."""
    try:
        if RECORD_KEY in meta:
            return ModelRecord.from_json(json.loads(meta[RECORD_KEY]))
        if "model_fingerprint" in meta:  # catalogs written before the record had one key
            return ModelRecord(
                fingerprint=meta["model_fingerprint"],
                family="clip",
                source=meta.get("model_source") or None,
                revision=None,
                dim=int(meta.get("dim") or 0),
                precision=meta.get("precision") or "int8",
                dir=meta.get("model_dir", ""),
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"the index's model record is damaged ({exc!r}); rebuild it") from exc
    return None


def read_record(index_dir: Path) -> ModelRecord | None:
    """The model record of the index in `index_dir`; None if it has none, or no catalog, or one
    that cannot be read (the writer reports a damaged catalog itself; --rebuild ignores it)."""
    from clipsearch_onnx.catalog import Catalog
    from clipsearch_onnx.layout import current_dir

    try:
        build = current_dir(index_dir)
        if build is None:
            return None
        catalog = Catalog.open(build, readonly=True)
    except IndexError_:
        return None
    try:
        return record_from_meta(catalog.meta())
    except (ModelError, IndexError_, sqlite3.DatabaseError):
        return None
    finally:
        catalog.close()


@dataclass(frozen=True)
class Model:
    """A resolved model: its manifest and the precision to run it at."""

    manifest: Manifest
    precision: str

    @property
    def record(self) -> ModelRecord:
        return ModelRecord.of(self.manifest, self.precision)

    @property
    def family(self) -> str:
        return self.manifest.family

    def encoder(self, threads: int | None = None, **options: Any) -> Encoder:
        from clipsearch_onnx.encoder import Encoder

        return Encoder(self.manifest, self.precision, threads, **options)


def _at(manifest: Manifest, precision: str | None) -> Model:
    precision = precision or manifest.default_precision
    if precision not in manifest.precisions:
        raise ModelError(
            f"model {manifest.model_dir} has no {precision} variant "
            f"(it has: {', '.join(sorted(manifest.precisions))})"
        )
    return Model(manifest, precision)


def _recorded_dir(recorded: ModelRecord) -> Path:
    path = Path(recorded.dir)
    if not recorded.dir or not path.is_dir():
        raise ModelError(
            f"the index was built with {recorded.describe()}, whose folder is gone; "
            "pass --model DIR with the same exported model"
        )
    return path


def resolve(
    model: Manifest | Path | None,
    precision: str | None,
    recorded: ModelRecord | None,
    *,
    default: bool = True,
) -> Model:
    """`model` (a manifest or folder), else the recorded model, else (with `default`) the default
    model; `precision`, else the recorded one, else the model's default."""
    if isinstance(model, Manifest):
        manifest = model
    elif model is not None:
        manifest = Manifest.load(model)
    elif recorded is not None:
        manifest = Manifest.load(_recorded_dir(recorded))
    elif default:
        manifest = Manifest.load(default_model_dir())
    else:
        raise ModelError("a new index needs --model DIR: the model its embeddings come from")
    precision = precision or (recorded.precision if recorded is not None else None)
    return _at(manifest, precision)


def check(recorded: ModelRecord | None, model: Model, where: Path | str | None = None) -> None:
    """Refuses `model` for an index that recorded another model or precision."""
    if recorded is None:
        return
    index = f"the index in {where}" if where else "this index"
    if recorded.fingerprint != model.manifest.fingerprint:
        raise ModelError(
            f"{index} was built with another model, {recorded.describe()}; "
            f"{model.manifest.model_dir} would give incomparable embeddings: use that model, "
            "or start over with --rebuild"
        )
    if recorded.precision != model.precision:
        raise ModelError(
            f"{index} holds {recorded.precision} embeddings; {model.precision} ones would not be "
            f"comparable: use --precision {recorded.precision}, or --rebuild"
        )


def for_writing(settings: Settings, index_dir: Path) -> Model:
    """The model to add images to `index_dir` with. Checked against the index by `bind`, under
    the writer's lock (after a --rebuild has cleared the old record)."""
    return resolve(settings.model_dir, settings.precision, read_record(index_dir))


def for_query(settings: Settings, index_dir: Path, *, catalog: Catalog | None = None) -> Model:
    """The model to embed queries for `index_dir` with; refuses one the index was not built with.
    `catalog`: the index's catalog when the caller has it open already."""
    recorded = record_from_meta(catalog.meta()) if catalog else read_record(index_dir)
    model = resolve(settings.model_dir, settings.precision, recorded)
    check(recorded, model, index_dir)
    return model


def standalone(settings: Settings, precision: str | None = None) -> Model:
    """The model for work without an index (embed, eval): --model, else the default model."""
    return resolve(settings.model_dir, precision or settings.precision, None)


def bind(catalog: Catalog, model: Model) -> None:
    """Records `model` as the index's model when the catalog is empty or has no record; else
    refuses a different one. The one writer calls it under its lock before writing."""
    meta = catalog.meta()
    recorded = record_from_meta(meta)
    record = model.record
    if recorded is not None and not catalog.is_empty():
        check(recorded, model)
        if RECORD_KEY in meta and recorded.dir == record.dir:
            return
    # New, emptied or pre-record catalogs get the record (a moved model folder its new place).
    catalog.set_meta(**{RECORD_KEY: json.dumps(record.to_json())})
