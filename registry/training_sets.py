"""Training-set manifests and the models trained on them: the dataset link of the lineage chain.

A manifest says exactly what a training set is made of: the feature versions (with the hashes of
their transforms and TTLs), the offline snapshot read and the ingestion cut-off, the label file's
content hash, and the result's row count and content hash. ``serving.offline.training.rebuild`` turns a
manifest and the same labels back into a byte-identical table. The store keeps manifests next to the
feature definitions (same SQLite file, one ``BEGIN IMMEDIATE`` transaction per write) and links
model versions to the training sets they were trained on, so model -> dataset -> feature versions
-> transforms is one chain.

Pure model and SQLite only: no Arrow, no Iceberg (the serving and training code imports this).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from registry.core.catalog import validation_text
from registry.core.definitions import NAME_PATTERN, FeatureDefinition, Version
from registry.core.errors import DatasetError
from registry.core.request_features import RequestFeature
from registry.sqlite_store import SqliteStore

_DDL = """
CREATE TABLE IF NOT EXISTS training_sets (
    id TEXT PRIMARY KEY, manifest TEXT NOT NULL, labels_uri TEXT, output_uri TEXT, recorded_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS training_set_models (
    model TEXT NOT NULL, model_version TEXT NOT NULL,
    training_set_id TEXT NOT NULL REFERENCES training_sets (id), linked_at TEXT NOT NULL,
    PRIMARY KEY (model, model_version, training_set_id)
);
CREATE INDEX IF NOT EXISTS training_set_models_by_set ON training_set_models (training_set_id);
"""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ManifestFeature(_Frozen):
    """One feature version of a training set, pinned by the hashes of what computes it."""

    entity: str = Field(pattern=NAME_PATTERN)
    name: str = Field(pattern=NAME_PATTERN)
    version: Version
    value_type: str
    transform_hash: str
    identity_hash: str

    @classmethod
    def of(cls, d: FeatureDefinition) -> ManifestFeature:
        return cls(
            entity=d.entity,
            name=d.name,
            version=d.version,
            value_type=d.value_type,
            transform_hash=d.transform_hash,
            identity_hash=d.identity_hash,
        )

    @classmethod
    def of_request(cls, r: RequestFeature) -> ManifestFeature:
        """A request-time feature: its function's source hash stands for the transform."""
        return cls(
            entity=r.entity,
            name=r.name,
            version=r.version,
            value_type=r.value_type,
            transform_hash=r.function_hash or "",
            identity_hash=r.identity_hash,
        )

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"


class Manifest(_Frozen):
    """What a training set is made of; enough, with the same labels, to rebuild it byte for byte."""

    format: int = 1
    id: str = Field(
        description="content id: sha256 (16 hex) of this manifest without `id`, `created_at` and `code_version`"
    )
    entity_type: str
    entity_column: str
    timestamp_column: str
    features: tuple[ManifestFeature, ...]
    offline_table: str = Field(description="Iceberg table identifier, e.g. feature_store.offline_feature_values")
    snapshot_id: int | None = Field(description="the snapshot read; None: the table had none at `as_of`")
    as_of: str | None = Field(description="as requested: None (current snapshot), `snapshot:<id>` or a time")
    ingested_until: str | None = Field(description="only rows ingested at or before this time (ISO, µs)")
    labels_sha256: str
    labels_rows: int = Field(ge=0)
    row_count: int = Field(ge=0)
    content_sha256: str = Field(description="sha256 of the canonical Arrow IPC serialization of the result")
    code_version: dict[str, str] = Field(default_factory=dict)
    created_at: str

    @staticmethod
    def content_id(fields: dict[str, object]) -> str:
        # What the training set is (inputs and content), not when or with which build it was made.
        core = {k: v for k, v in fields.items() if k not in ("id", "created_at", "code_version")}
        return hashlib.sha256(json.dumps(core, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]

    @classmethod
    def create(cls, **fields: object) -> Manifest:
        """A manifest with its content ``id`` and ``created_at`` filled in."""
        fields.setdefault("created_at", datetime.now(UTC).isoformat())
        draft = cls.model_validate({**fields, "id": "-"})
        return draft.model_copy(update={"id": cls.content_id(draft.model_dump(mode="json"))})

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """A manifest's JSON text; anything else is a DatasetError in one line (each problem as
        ``field: message``), whose cause is pydantic's error."""
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise DatasetError(f"not a training-set manifest: {validation_text(exc)}") from exc
        except ValueError as exc:
            raise DatasetError(f"not a training-set manifest: {' '.join(str(exc).split())}") from exc


@dataclass(frozen=True)
class ModelLink:
    model: str
    model_version: str
    training_set_id: str
    linked_at: str


@dataclass(frozen=True)
class StoredTrainingSet:
    manifest: Manifest
    labels_uri: str | None
    output_uri: str | None
    recorded_at: str
    models: tuple[ModelLink, ...]


def _now() -> str:
    return datetime.now(UTC).isoformat()


class TrainingSetStore(SqliteStore):
    """Manifests by id, and which model versions were trained on which training sets."""

    DDL = _DDL
    PRAGMAS = ("foreign_keys=ON",)

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()

    def record(
        self,
        manifest: Manifest,
        *,
        labels_uri: str | None = None,
        output_uri: str | None = None,
        labels_kept: bool = False,
    ) -> bool:
        """Keep a manifest (idempotent: the id is its content). True if it was new.

        Paths already recorded are kept; missing ones are filled in. Another training set recorded at
        ``output_uri`` loses its ``output_uri`` (null): the build replaced its file. ``labels_kept``:
        ``labels_uri`` is a copy kept for rebuilds (``build --copy-labels-to``), which replaces the labels path
        recorded by an earlier build of the same training set (whose labels file may go away). The same training set built again (the same id)
        keeps the manifest of its latest build (``created_at``), so that its snapshot pin counts from then
        (``serving.offline.retention``), as the manifest file written beside that build says.
        """
        with self._tx() as conn:
            if output_uri is not None:  # that file holds this set now, no longer any other set built there before
                self._release(conn, output_uri, manifest.id)
            row = conn.execute(
                "SELECT labels_uri, output_uri, manifest FROM training_sets WHERE id = ?", (manifest.id,)
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO training_sets VALUES (?, ?, ?, ?, ?)",
                    (manifest.id, manifest.to_json(), labels_uri, output_uri, _now()),
                )
                return True
            held = Manifest.from_json(row[2])
            if datetime.fromisoformat(manifest.created_at) > datetime.fromisoformat(held.created_at):
                conn.execute("UPDATE training_sets SET manifest = ? WHERE id = ?", (manifest.to_json(), manifest.id))
            if labels_kept and labels_uri is not None:
                conn.execute("UPDATE training_sets SET labels_uri = ? WHERE id = ?", (labels_uri, manifest.id))
            conn.execute(
                "UPDATE training_sets SET labels_uri = COALESCE(labels_uri, ?), output_uri = COALESCE(output_uri, ?) "
                "WHERE id = ?",
                (labels_uri, output_uri, manifest.id),
            )
            return False

    def written(self, output_uri: str, training_set_id: str) -> None:
        """``training_set_id`` is written to ``output_uri`` (a rebuild): another set recorded there loses its
        ``output_uri``, and the set takes it where it has none, as for a build (``record``). Nothing is written
        when nothing changes (a registry that cannot be written serves such a rebuild)."""
        with self._read() as conn:
            changes = conn.execute(
                "SELECT 1 FROM training_sets WHERE (output_uri = ? AND id != ?) OR (id = ? AND output_uri IS NULL)",
                (output_uri, training_set_id, training_set_id),
            ).fetchone()
        if changes is None:
            return
        with self._tx() as conn:
            self._release(conn, output_uri, training_set_id)
            conn.execute(
                "UPDATE training_sets SET output_uri = COALESCE(output_uri, ?) WHERE id = ?",
                (output_uri, training_set_id),
            )

    @staticmethod
    def _release(conn: sqlite3.Connection, output_uri: str, training_set_id: str) -> None:
        conn.execute(
            "UPDATE training_sets SET output_uri = NULL WHERE output_uri = ? AND id != ?", (output_uri, training_set_id)
        )

    def get(self, training_set_id: str) -> StoredTrainingSet:
        with self._read() as conn:
            row = conn.execute(
                "SELECT manifest, labels_uri, output_uri, recorded_at FROM training_sets WHERE id = ?",
                (training_set_id,),
            ).fetchone()
            if row is None:
                raise DatasetError(f"no training set {training_set_id!r} is recorded")
            links = conn.execute(
                "SELECT model, model_version, training_set_id, linked_at FROM training_set_models "
                "WHERE training_set_id = ? ORDER BY linked_at, model, model_version",
                (training_set_id,),
            ).fetchall()
        return StoredTrainingSet(
            Manifest.from_json(row[0]), row[1], row[2], row[3], tuple(ModelLink(*r) for r in links)
        )

    def link_model(self, model: str, model_version: str, training_set_id: str) -> ModelLink:
        """Record that ``model`` ``model_version`` was trained on the training set (idempotent)."""
        if not model or not model_version:
            raise DatasetError("a model link needs a model name and a model version")
        with self._tx() as conn:
            if conn.execute("SELECT 1 FROM training_sets WHERE id = ?", (training_set_id,)).fetchone() is None:
                raise DatasetError(f"no training set {training_set_id!r} is recorded: build or record it first")
            conn.execute(
                "INSERT OR IGNORE INTO training_set_models VALUES (?, ?, ?, ?)",
                (model, model_version, training_set_id, _now()),
            )
            row = conn.execute(
                "SELECT model, model_version, training_set_id, linked_at FROM training_set_models "
                "WHERE model = ? AND model_version = ? AND training_set_id = ?",
                (model, model_version, training_set_id),
            ).fetchone()
        return ModelLink(*row)

    def training_sets_for(self, model: str, model_version: str | None = None) -> list[ModelLink]:
        query = "SELECT model, model_version, training_set_id, linked_at FROM training_set_models WHERE model = ?"
        params: tuple[str, ...] = (model,)
        if model_version is not None:
            query += " AND model_version = ?"
            params += (model_version,)
        with self._read() as conn:
            rows = conn.execute(query + " ORDER BY linked_at, model_version, training_set_id", params).fetchall()
        return [ModelLink(*r) for r in rows]

    def ids(self) -> list[str]:
        """Every recorded training set, oldest first."""
        with self._read() as conn:
            return [r[0] for r in conn.execute("SELECT id FROM training_sets ORDER BY recorded_at, id")]
