"""The one grammar of a host name or IPv4 address (``FS_HOST``, ``--bind-host``, the stores' hosts), importable
without pydantic (``infra`` reads ``FS_HOST`` with it before anything heavier loads)."""

from __future__ import annotations

import ipaddress
import re

_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def is_host_name(raw: str) -> bool:
    """An IPv4 address, or a host name as RFC 1123 spells one: dot-separated labels of 1-63 ASCII letters, digits
    and inner hyphens, 253 characters at most, not all of its labels numbers (``1.2.3``, ``999.999.999.999``)."""
    try:
        ipaddress.IPv4Address(raw)
        return True
    except ValueError:
        pass
    labels = raw.split(".")
    return (
        len(raw) <= 253
        and all(_LABEL.fullmatch(label) is not None for label in labels)
        and not all(label.isdigit() for label in labels)
    )
