"""Reproducible training sets: the point-in-time join plus a manifest it can be rebuilt from.

``build_training_set`` returns the table and its manifest (``registry.training_sets.Manifest``): the pinned feature
versions with their transform and identity hashes, the Iceberg snapshot read, the ingestion cut-off, the labels' and
the result's content hashes (``serving.offline.content_hash``). ``rebuild`` joins the same labels against the same
snapshot with the same feature versions (the manifest's, not the active ones) and checks that the result hashes the
same, so it is byte-identical; anything that differs is a ``DatasetError`` naming it. The CLI (``build``,
``rebuild``, ``link-model``, ``show``; README "Training sets") streams Parquet chunk by chunk, writes the manifest
next to the output (``<out>.manifest.json``) and records it in the definitions database.
"""

from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C while the modules below load is the command's one line too, not a traceback
    from registry.core.interrupt import exit_on_ctrl_c

    exit_on_ctrl_c()

import argparse
import contextlib
import functools
import importlib.metadata
import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from registry.access import guard_catalog
from registry.core.arguments import ArgumentParser, text, whole
from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.errors import DatasetError, UnknownFeatureError
from registry.core.shown import error_line, flushed, shown
from registry.training_sets import Manifest, ManifestFeature
from serving.offline.command_io import (
    aside,
    check_build_paths,
    check_out_path,
    command_failures,
    copy_into_place,
    discard,
    open_labels,
    parse_as_of,
    same_file,
    write_parquet,
    written_path,
)
from serving.offline.content_hash import ContentHasher, content_sha256
from serving.offline.feature_resolution import resolve_columns
from serving.offline.historical import (
    DEFAULT_CHUNK_ROWS,
    add_join_arguments,
    check_chunk_rows,
    check_labels,
    join_label_batches,
    join_labels,
    output_schema,
)
from serving.offline.request_columns import Column, RequestColumn
from sinks.iceberg.as_of import ReadPoint, epoch_us, iso_us, plain_as_of, point_from, read_point

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from registry.training_sets import TrainingSetStore

_REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class TrainingSet:
    table: pa.Table
    manifest: Manifest


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, str]:
    """Versions that can change the bytes of a result: this package, Arrow, pyiceberg, the git commit."""
    versions = {"pyarrow": pa.__version__}
    for package in ("featurestore", "pyiceberg"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    git = functools.partial(subprocess.run, cwd=_REPO, capture_output=True, text=True, timeout=5)
    try:  # only where git tracks this very file: installed in site-packages, git would describe a repository around it
        if git(["git", "ls-files", "--error-unmatch", "serving/offline/training.py"]).returncode == 0:
            commit = git(["git", "describe", "--always", "--dirty", "--abbrev=40"])
            if commit.returncode == 0:
                versions["git_commit"] = commit.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return versions


def _as_of_text(as_of: int | datetime | None) -> str | None:
    if as_of is None:
        return None
    if isinstance(as_of, int):
        return f"snapshot:{as_of}"
    try:
        return iso_us(epoch_us(as_of))
    except OverflowError:  # before year 1 in UTC (a zone ahead of it): recorded as given, the same instant
        return as_of.isoformat()


def _manifest(
    table: Table,
    definitions: Sequence[Column],
    point: ReadPoint,
    as_of: int | datetime | None,
    *,
    entity_type: str,
    entity_column: str,
    timestamp_column: str,
    labels_sha256: str,
    labels_rows: int,
    row_count: int,
    content: str,
) -> Manifest:
    return Manifest.create(
        entity_type=entity_type,
        entity_column=entity_column,
        timestamp_column=timestamp_column,
        features=[
            ManifestFeature.of_request(d.feature) if isinstance(d, RequestColumn) else ManifestFeature.of(d)
            for d in definitions
        ],
        offline_table=".".join(table.name()),
        snapshot_id=point.snapshot_id,
        as_of=_as_of_text(as_of),
        ingested_until=iso_us(point.ingested_until_us) if point.ingested_until_us is not None else None,
        labels_sha256=labels_sha256,
        labels_rows=labels_rows,
        row_count=row_count,
        content_sha256=content,
        code_version=code_version(),
    )


def build_training_set(
    table: Table,
    catalog: FeatureCatalog,
    labels: pa.Table,
    features: Sequence[str],
    *,
    entity_type: str,
    entity_column: str,
    timestamp_column: str = "event_timestamp",
    as_of: int | datetime | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> TrainingSet:
    """``get_historical_features``'s table, plus the manifest that rebuilds it."""
    check_labels(labels)
    check_chunk_rows(chunk_rows)
    as_of = plain_as_of(as_of)  # a numpy snapshot id: the manifest's snapshot:<id>, as an int's
    definitions = resolve_columns(catalog, entity_type, features)
    point = read_point(table, as_of)
    result = join_labels(
        table,
        definitions,
        labels,
        entity_type=entity_type,
        entity_column=entity_column,
        timestamp_column=timestamp_column,
        point=point,
        chunk_rows=chunk_rows,
    )
    manifest = _manifest(
        table,
        definitions,
        point,
        as_of,
        entity_type=entity_type,
        entity_column=entity_column,
        timestamp_column=timestamp_column,
        labels_sha256=content_sha256(labels),
        labels_rows=labels.num_rows,
        row_count=result.num_rows,
        content=content_sha256(result),
    )
    return TrainingSet(result, manifest)


def pinned_definitions(catalog: FeatureCatalog, manifest: Manifest, *, requests: bool = True) -> list[Column]:
    """The manifest's feature versions, checked to compute and expire exactly as they did (a request-time
    feature: the same function source, inputs, request fields and type). ``requests=False`` leaves
    request-time features out (their functions are then neither imported nor checked)."""
    out: list[Column] = []
    for f in manifest.features:
        request = catalog.request_feature(f.entity, f.name, f.version)
        if request is not None and not requests:
            continue
        if request is not None:
            if not request.pinned_by(f.identity_hash):
                raise DatasetError(
                    f"{f.entity}.{f.ref} changed since training set {manifest.id} was built: identity hash "
                    f"{request.identity_hash}, manifest has {f.identity_hash}"
                )
            out.append(RequestColumn.of(catalog, request))
            continue
        try:
            d = catalog.get(f.entity, f.name, f.version)
        except UnknownFeatureError as exc:
            raise DatasetError(f"{f.entity}.{f.ref} of training set {manifest.id} is not registered: {exc}") from exc
        if (d.transform_hash, d.identity_hash) != (f.transform_hash, f.identity_hash):
            raise DatasetError(
                f"{f.entity}.{f.ref} changed since training set {manifest.id} was built: transform/identity hash "
                f"{d.transform_hash}/{d.identity_hash}, manifest has {f.transform_hash}/{f.identity_hash}"
            )
        out.append(d)
    stored = [d for c in out for d in ((c,) if isinstance(c, FeatureDefinition) else c.inputs)]
    catalog.check_read(stored)  # ForbiddenError naming every feature the caller has no grant for
    return out


def manifest_point(table: Table, manifest: Manifest) -> ReadPoint:
    """What the manifest's training set read: its snapshot, and only rows ingested by its ``ingested_until``;
    DatasetError when ``table`` is not the table the manifest names (its snapshot ids are another table's)."""
    identifier = ".".join(table.name())
    if manifest.offline_table != identifier:
        raise DatasetError(
            f"training set {manifest.id} was read from the offline table {shown(manifest.offline_table)}, "
            f"not {shown(identifier)}: set FS_ICEBERG_NAMESPACE to its namespace"
        )
    until = manifest.ingested_until
    until_us = epoch_us(datetime.fromisoformat(until)) if until is not None else None
    return point_from(manifest.snapshot_id, until_us, table)


def _check_labels(manifest: Manifest, labels_sha256: str) -> None:
    if labels_sha256 != manifest.labels_sha256:
        raise DatasetError(
            f"these labels are not training set {manifest.id}'s: content hash {labels_sha256}, "
            f"manifest has {manifest.labels_sha256}"
        )


def _check_content(manifest: Manifest, content: str, rows: int) -> None:
    if (content, rows) != (manifest.content_sha256, manifest.row_count):
        versions = (
            ""
            if manifest.code_version == code_version()
            else (f" (built with {manifest.code_version}, rebuilt with {code_version()})")
        )
        raise DatasetError(
            f"rebuilt training set {manifest.id} differs: {rows} rows hashing {content}, "
            f"manifest has {manifest.row_count} rows hashing {manifest.content_sha256}{versions}"
        )


def rebuild(
    table: Table, catalog: FeatureCatalog, manifest: Manifest, labels: pa.Table, *, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> TrainingSet:
    """The training set of ``manifest`` again, byte-identical, or a DatasetError saying what differs."""
    check_labels(labels)
    check_chunk_rows(chunk_rows)
    _check_labels(manifest, content_sha256(labels))
    result = join_labels(
        table,
        pinned_definitions(catalog, manifest),
        labels,
        entity_type=manifest.entity_type,
        entity_column=manifest.entity_column,
        timestamp_column=manifest.timestamp_column,
        point=manifest_point(table, manifest),
        chunk_rows=chunk_rows,
    )
    _check_content(manifest, content_sha256(result), result.num_rows)
    return TrainingSet(result, manifest)


# --- Parquet in, Parquet out, streaming ------------------------------------------------------------


def _stream(
    table: Table,
    definitions: Sequence[Column],
    labels_path: Path,
    out: Path,
    *,
    point: ReadPoint,
    entity_type: str,
    entity_column: str,
    timestamp_column: str,
    chunk_rows: int,
    verify: Manifest | None = None,
) -> tuple[str, int, str, int]:
    """Join a Parquet label file into ``out``; (labels hash, label rows, output hash, output rows)."""
    check_chunk_rows(chunk_rows)
    # As historical features reads them: a FIFO, a folder or a file that is not Parquet is refused at once, naming
    # --labels (a FIFO held the command for good).
    label_schema, label_batches = open_labels(labels_path, chunk_rows)
    schema = output_schema(label_schema, definitions)
    labels_hash, out_hash = ContentHasher(label_schema), ContentHasher(schema)

    def hashed_input() -> Iterator[pa.RecordBatch]:
        for batch in label_batches:
            labels_hash.update(batch)
            yield batch

    def hashed_output() -> Iterator[pa.RecordBatch]:
        batches = join_label_batches(
            table,
            definitions,
            label_schema,
            hashed_input(),
            entity_type=entity_type,
            entity_column=entity_column,
            timestamp_column=timestamp_column,
            point=point,
        )
        for batch in batches:
            out_hash.update(batch)
            yield batch
        if verify is not None:  # raising here keeps a differing result from ever appearing under `out`
            _check_labels(verify, labels_hash.hexdigest())
            _check_content(verify, out_hash.hexdigest(), out_hash.rows)

    write_parquet(hashed_output(), schema, out)
    return labels_hash.hexdigest(), labels_hash.rows, out_hash.hexdigest(), out_hash.rows


def build_parquet(
    table: Table,
    catalog: FeatureCatalog,
    labels_path: Path,
    out: Path,
    features: Sequence[str],
    *,
    entity_type: str,
    entity_column: str,
    timestamp_column: str = "event_timestamp",
    as_of: int | datetime | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Manifest:
    """``build_training_set`` from a Parquet file to a Parquet file, in bounded memory."""
    as_of = plain_as_of(as_of)
    definitions = resolve_columns(catalog, entity_type, features)
    point = read_point(table, as_of)
    labels_sha256, labels_rows, content, rows = _stream(
        table,
        definitions,
        labels_path,
        out,
        point=point,
        entity_type=entity_type,
        entity_column=entity_column,
        timestamp_column=timestamp_column,
        chunk_rows=chunk_rows,
    )
    return _manifest(
        table,
        definitions,
        point,
        as_of,
        entity_type=entity_type,
        entity_column=entity_column,
        timestamp_column=timestamp_column,
        labels_sha256=labels_sha256,
        labels_rows=labels_rows,
        row_count=rows,
        content=content,
    )


def rebuild_parquet(
    table: Table,
    catalog: FeatureCatalog,
    manifest: Manifest,
    labels_path: Path,
    out: Path,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> None:
    """``rebuild`` from a Parquet label file; ``out`` appears only if the result is identical."""
    _stream(
        table,
        pinned_definitions(catalog, manifest),
        labels_path,
        out,
        point=manifest_point(table, manifest),
        entity_type=manifest.entity_type,
        entity_column=manifest.entity_column,
        timestamp_column=manifest.timestamp_column,
        chunk_rows=chunk_rows,
        verify=manifest,
    )


# --- CLI ---------------------------------------------------------------------------------------------


def _recorded_labels(store: TrainingSetStore, training_set_id: str) -> str | None:
    """The labels path recorded for a training set at build time; None when it is not recorded (a manifest file
    from another registry) or recorded without one."""
    try:
        return store.get(training_set_id).labels_uri
    except DatasetError:
        return None


def _read_manifest(path: Path) -> Manifest:
    """``--manifest``'s file; a DatasetError in one line naming it for a file that is not a manifest."""
    from pydantic import ValidationError

    try:
        raw = path.read_bytes()
    except OSError as exc:  # missing, a folder, unreadable: named as --manifest too
        raise DatasetError(f"--manifest {shown(path)}: not a readable file: {exc.strerror or exc}") from None
    try:
        manifest = Manifest.from_json(raw.decode())
    except (UnicodeDecodeError, DatasetError) as exc:
        cause = exc.__cause__
        why = (
            "; ".join(f"{'.'.join(map(str, e['loc'])) or 'the file'}: {e['msg']}" for e in cause.errors())
            if isinstance(cause, ValidationError)
            else str(exc)
        )
        raise DatasetError(f"--manifest {shown(path)}: not a training-set manifest: {why}") from None
    content_id = Manifest.content_id(manifest.model_dump(mode="json"))
    if manifest.id != content_id:  # edited by hand: it would be rebuilt under an id that is not its content's
        raise DatasetError(
            f"--manifest {shown(path)}: its id {shown(manifest.id)} is not its content's ({content_id}): "
            "the file was changed after it was written"
        )
    return manifest


def _show(stored: object) -> str:
    from dataclasses import asdict

    from registry.training_sets import StoredTrainingSet

    assert isinstance(stored, StoredTrainingSet)
    out = asdict(stored)
    out["manifest"] = stored.manifest.model_dump(mode="json")
    return json.dumps(out, indent=2, sort_keys=True)


def main(argv: list[str] | None = None) -> int:
    """The command; its output flushed, in escapes where stdout cannot encode it (``flushed``)."""
    return flushed(_command, argv)


def _command(argv: list[str] | None) -> int:
    from registry.core.settings import settings_for_command
    from registry.definition_store import DefinitionStore
    from registry.training_sets import TrainingSetStore
    from sinks.factory import connect_iceberg

    parser = ArgumentParser(
        prog="python -m serving.offline.training",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="join labels into a training set; write it, its manifest, and record it")
    add_join_arguments(build)
    build.add_argument("--manifest", type=Path, help="where to write the manifest (default: <out>.manifest.json)")
    build.add_argument(
        "--copy-labels-to",
        type=Path,
        help="a folder (made if missing) to keep a copy of the labels in, <id>.labels.parquet, for later rebuilds",
    )
    again = sub.add_parser("rebuild", help="rebuild a recorded training set and check it is byte-identical")
    which = again.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", type=text, help="a recorded training set")
    which.add_argument("--manifest", type=Path, help="a manifest file")
    again.add_argument("--labels", type=Path, help="default: the labels path recorded at build time")
    again.add_argument("--out", type=Path, required=True, help="the Parquet file to write (its folder must exist)")
    again.add_argument(
        "--chunk-rows", type=whole(1), default=DEFAULT_CHUNK_ROWS, help="labels per chunk (bounds memory)"
    )
    link = sub.add_parser("link-model", help="record that a model version was trained on a training set")
    link.add_argument("--id", type=text, required=True, help="a recorded training set")
    link.add_argument("--model", type=text, required=True, help="the model's name")
    link.add_argument("--model-version", type=text, required=True, help="the model's version (any text)")
    show = sub.add_parser("show", help="a training set's manifest and models, or a model's training sets")
    what = show.add_mutually_exclusive_group(required=True)
    what.add_argument("--id", type=text, help="a recorded training set: its manifest and the models linked to it")
    what.add_argument("--model", type=text, help="a model: the training sets its versions were linked to")
    show.add_argument("--model-version", type=text, help="with --model: only this version")
    args = parser.parse_args(argv)
    if args.command == "show" and args.id is not None and args.model_version is not None:
        show.error("--model-version goes with --model, not --id")  # it was ignored
    settings = settings_for_command()
    try:
        db = settings.definitions_db
        # Every command reads the registry (training sets are kept in its file): a path with none is named,
        # and nothing is created there.
        definitions = DefinitionStore.existing(db, name=f"FS_DEFINITIONS_DB={shown(db)}")
        store = TrainingSetStore(db)
        # FS_AUTH=on: every subcommand needs a known FS_TOKEN (link-model writes to the registry), before anything else
        catalog = guard_catalog(definitions.catalog(), settings, action="training_set")
        if args.command == "link-model":
            linked = store.link_model(args.model, args.model_version, args.id)
            print(f"{linked.model} {linked.model_version} <- training set {linked.training_set_id}")
            return 0
        if args.command == "show":
            if args.id is not None:  # any text, an empty one too: a set not recorded is an error
                print(_show(store.get(args.id)))
            else:
                for m in store.training_sets_for(args.model, args.model_version):
                    print(f"{m.model} {m.model_version}  training set {m.training_set_id}  linked {m.linked_at}")
            return 0
        from sinks.iceberg.writer import load_table

        # the paths before the offline table: a refused one creates no catalog file and opens no table
        manifest_path = args.manifest or args.out.with_name(args.out.name + ".manifest.json")
        if args.command == "build":
            beside = "the manifest (--manifest; by default --out's name + .manifest.json)"
            check_build_paths(
                args.labels, args.out, manifest_path, args.copy_labels_to, "--manifest" if args.manifest else beside
            )
        else:
            check_out_path(args.out)  # before the join, not when the result is moved there
            if args.manifest is not None and same_file(args.manifest, args.out):
                raise DatasetError(f"--out {shown(args.out)} is the manifest: writing it would replace the manifest")
        table = load_table(connect_iceberg(settings), settings.iceberg_namespace)
        if args.command == "build":
            # Built aside and moved into place last: a step that fails leaves `--out` and the manifest as they were.
            staging, manifest_staging = aside(args.out, "building"), aside(manifest_path, "building")
            try:
                manifest = build_parquet(
                    table,
                    catalog,
                    args.labels,
                    staging,
                    args.features.split(","),
                    entity_type=args.entity_type,
                    entity_column=args.entity_column,
                    timestamp_column=args.timestamp_column,
                    as_of=parse_as_of(args.snapshot_id, args.as_of),
                    chunk_rows=args.chunk_rows,
                )
                labels_uri = args.labels
                if args.copy_labels_to is not None:
                    args.copy_labels_to.mkdir(parents=True, exist_ok=True)
                    labels_uri = args.copy_labels_to / f"{manifest.id}.labels.parquet"
                    if not (labels_uri.exists() and labels_uri.samefile(args.labels)):  # built from its kept copy
                        copy_into_place(args.labels, labels_uri, "--copy-labels-to")
                manifest_staging.write_text(manifest.to_json())
                # Recorded before anything is moved into place: a registry that refuses it (locked, gone) leaves
                # `--out` and the manifest as they were, not a set on disk the registry does not know.
                store.record(
                    manifest,
                    labels_uri=str(labels_uri.resolve()),
                    output_uri=str(written_path(args.out)),
                    labels_kept=args.copy_labels_to is not None,
                )
                staging.replace(args.out)
                manifest_staging.replace(manifest_path)
            finally:
                discard(staging)
                discard(manifest_staging)
            print(
                f"training set {manifest.id}: {manifest.row_count} rows, snapshot {manifest.snapshot_id}, "
                f"manifest {shown(manifest_path)}"
            )
            return 0
        if args.id is not None:
            stored = store.get(args.id)
            manifest, labels_path = stored.manifest, args.labels or stored.labels_uri
        else:
            manifest = _read_manifest(args.manifest)
            labels_path = args.labels or _recorded_labels(store, manifest.id)
        if labels_path is None:
            raise DatasetError(f"no labels path recorded for training set {manifest.id}: pass --labels")
        if args.labels is None and not Path(labels_path).is_file():
            raise DatasetError(
                f"labels {shown(labels_path)} recorded for training set {manifest.id} not found: pass --labels"
            )
        if same_file(Path(labels_path), args.out):
            raise DatasetError(f"--out {shown(args.out)} is the labels file: writing it would replace the labels")
        # Written aside, recorded, then moved into place, as a build: a registry that refuses the record (locked)
        # leaves --out as it was, not a file that another set is still recorded at.
        staging = aside(args.out, "building")
        try:
            rebuild_parquet(table, catalog, manifest, Path(labels_path), staging, chunk_rows=args.chunk_rows)
            store.written(str(written_path(args.out)), manifest.id)
            staging.replace(args.out)
        finally:
            discard(staging)
        print(f"training set {manifest.id} rebuilt to {shown(args.out)}: identical ({manifest.content_sha256})")
        return 0
    except command_failures() as exc:  # ArrowInvalid: labels that are not Parquet
        print(error_line(exc), file=sys.stderr)
        return 1


if __name__ == "__main__":
    from registry.core.interrupt import run_command

    sys.exit(run_command(main, None))
