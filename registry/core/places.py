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
