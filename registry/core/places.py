"""Where the feature store keeps its data when ``FS_STATE_DIR`` does not say (standard library only: ``infra``
imports it, and the image's jar-fetching stage has no dependencies installed)."""

from __future__ import annotations

import os
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]


def _default_state() -> Path:
    """The checkout's ``.state``; for an installed package (no checkout around it) ``$XDG_STATE_HOME/featurestore``
    (``~/.local/state/featurestore``), not a folder inside site-packages, which a new virtualenv deletes."""
    if (_REPO / "pyproject.toml").is_file():
        return _REPO / ".state"
    xdg = os.environ.get("XDG_STATE_HOME", "")
    home = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "state"  # a relative one is ignored (XDG)
    return home / "featurestore"


DEFAULT_STATE = _default_state()

EARLIER_STATE = _REPO / ".state"
"""The default before 2026-12-07 for an installed package as well: ``.state`` beside the installed modules (in
site-packages). An upgrade in the same virtualenv keeps it there (pip does not remove what it did not install)."""


def left_behind() -> str | None:
    """For an installed package whose default ``DEFAULT_STATE`` does not exist yet while ``EARLIER_STATE`` holds
    something: why the default cannot be used (the earlier data would be passed over, and a fresh schema registry
    would give ids the topics' records already carry to other schemas); None otherwise."""
    if DEFAULT_STATE == EARLIER_STATE or DEFAULT_STATE.exists():
        return None
    try:
        held = EARLIER_STATE.is_dir() and any(EARLIER_STATE.iterdir())
    except OSError:
        return None
    if not held:
        return None
    return (
        f"FS_STATE_DIR is not set and the default state folder {DEFAULT_STATE} does not exist, while {EARLIER_STATE}"
        " holds the data of an earlier install (the default until 2026-12-07): set FS_STATE_DIR to it, or move it"
        " to the default, so that the registry, the schemas and the tables are the ones written before"
    )
