"""A table's manifest list or manifest that cannot be decoded (a file cut short by a crash or an interrupted copy,
damaged bytes) is ``DamagedTableFile`` naming it: a command's one ``error:`` line, the API's and the job's store
failure. pyiceberg 0.8.1 raises what its Avro decoder met first, which depends on where the file was cut:
``EOFError``, ``UnicodeDecodeError``, ``ValueError("Expected sync bytes ...")`` (measured on one manifest list cut
at 0-1,845 bytes), and only the first was answered in one line.

``apply()`` wraps the two calls that read those files, ``Snapshot.manifests`` (the manifest list) and
``ManifestFile.fetch_manifest_entry`` (a manifest); an ``OSError`` (a file gone, unreadable) passes as it is.
Applied once, on import of ``sinks.iceberg``, as ``planning_race``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from registry.core.errors import StoreUnavailableError

_PATCHED = "_featurestore_damage_named"
_DECODING = (
    *(EOFError, UnicodeDecodeError, ValueError, IndexError, KeyError),
    *(TypeError, SystemError, OverflowError, MemoryError),
)
"""What pyiceberg's Avro reader raises on bytes that are not the file they should be (not OSError): of 400 random
1-5 byte changes to a manifest list, some gave ``TypeError: Unknown type: bool5an`` (its embedded schema) or
``SystemError: Negative size passed to PyBytes_FromStringAndSize`` (a length). Some damage cannot be answered at all:
a length byte of the embedded schema set to 0x81 ended the process in pyiceberg's Cython decoder (SIGSEGV)."""


class DamagedTableFile(StoreUnavailableError):
    """A file of an Iceberg table (its manifest list, a manifest) that cannot be decoded: cut short or damaged."""


def _named(read: Callable[..., Any], path_of: Callable[[Any], str], what: str) -> Callable[..., Any]:
    @functools.wraps(read)
    def named(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return read(self, *args, **kwargs)
        except _DECODING as exc:
            raise DamagedTableFile(
                f"the table's {what} {path_of(self)} cannot be read (cut short or damaged): {type(exc).__name__}: "
                f"{str(exc)[:200]}"
            ) from exc

    setattr(named, _PATCHED, True)
    return named


def apply() -> None:
    """Name the damaged file in the two reads (idempotent)."""
    from pyiceberg.manifest import ManifestFile
    from pyiceberg.table.snapshots import Snapshot

    if not getattr(Snapshot.manifests, _PATCHED, False):
        Snapshot.manifests = _named(  # type: ignore[method-assign]
            Snapshot.manifests, lambda snapshot: str(snapshot.manifest_list), "manifest list"
        )
    if not getattr(ManifestFile.fetch_manifest_entry, _PATCHED, False):
        ManifestFile.fetch_manifest_entry = _named(  # type: ignore[method-assign]
            ManifestFile.fetch_manifest_entry, lambda manifest: str(manifest.manifest_path), "manifest"
        )
