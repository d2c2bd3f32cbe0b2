"""Promote a backfilled feature version: move the serving pointer only once the new version is ready.

A backfill recomputes a feature into a *new* version (the stream job replays history into it) while
the active version keeps serving; nothing reads the new version's rows until promotion. ``promote``
checks that the candidate is registered and that its offline data has caught up with the active
version's: the latest window end each version's offline data holds (how far in event time it has computed:
over the same events, windows of any length end their last windows at the same watermark) may trail the active
version's by at most ``max_lag`` (default: one window step of the candidate, the grain its ends fall on; 0 for
session windows), compared at the precision the table stores (microseconds: exactly
``max_lag`` is ready, 1 µs more is not) and named in exact milliseconds; trailing by more is refused, and so is a
candidate with no offline rows while the active version has some (the writer commits offline before
online, so online has those windows too), and so is a version the activation itself would refuse (its stream's
active features disagreeing on ``allowed_lateness`` or reading the topic two ways: ``--check`` says so, where it
said "ready" and the promotion then failed). Then it moves the pointer with one atomic UPDATE
(``DefinitionStore.activate``). Serving processes pick the move up at their next catalog refresh
(``LiveCatalog``); ``force`` overrides the lag alone, never a missing version's rows or an activation refusal; a request resolves all its names against one catalog snapshot, so it reports one
version per feature, old or new, never a value of one under the number of the other. A refused or
failed promotion (unknown version, a backfill that stopped short) leaves the active version as it was.

CLI: ``python -m serving.offline.promotion user txn_count_1h 2 [--max-lag 10m] [--force] [--check]``: exit 0
promoted, 1 refused or an error (one ``error:`` line), 2 a usage error; ``--check`` only reports, exit 0 ready,
2 not ready, 1 an error.
"""

from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C while the modules below load is the command's one line too, not a traceback
    from registry.core.interrupt import exit_on_ctrl_c

    exit_on_ctrl_c()

import argparse
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from registry.core.arguments import ArgumentParser, duration, whole
from registry.core.definitions import MAX_VERSION
from registry.core.durations import to_millis
from registry.core.errors import DefinitionError
from registry.core.timeline import step_ms
from registry.definition_store import DefinitionStore
from sinks.iceberg.as_of import iso_us, read_point
from sinks.iceberg.maintenance import unreadable_table_errors
from sinks.iceberg.reader import data_reach

if TYPE_CHECKING:
    from pyiceberg.table import Table


class PromotionRefusedError(DefinitionError):
    """The candidate version is not ready to serve; the active version was left untouched."""


@dataclass(frozen=True)
class Readiness:
    entity: str
    name: str
    version: int
    active_version: int
    reach_ms: int | None  # latest window end stored offline for the candidate (whole ms, rounded down)
    active_reach_ms: int | None  # ... and for the active version
    problems: tuple[str, ...]
    reach_us: int | None = None  # the same two, exactly as stored (µs)
    active_reach_us: int | None = None
    lag_only: bool = False  # the one problem is the lag (what ``--force`` overrides), none other

    @property
    def ready(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        def at(us: int | None, ms: int | None) -> str:
            if us is None and ms is not None:
                us = ms * 1000
            return "no rows" if us is None else iso_us(us)

        head = (
            f"{self.entity}.{self.name}: v{self.version} reaches {at(self.reach_us, self.reach_ms)}, "
            f"active v{self.active_version} reaches {at(self.active_reach_us, self.active_reach_ms)}"
        )
        return head + ("" if self.ready else ": " + "; ".join(self.problems))


def _ms(us: int | None) -> int | None:
    return us // 1000 if us is not None else None


def _as_ms(us: int) -> str:
    """Microseconds as exact milliseconds: ``300001ms``, ``600000.001ms``."""
    whole, frac = divmod(us, 1000)
    return f"{whole}ms" if not frac else f"{whole}.{frac:03d}ms"


def readiness(
    store: DefinitionStore, table: Table, entity: str, name: str, version: int, *, max_lag: timedelta | None = None
) -> Readiness:
    """Whether ``version`` may take over serving from the active version.

    ``max_lag``: how far the candidate's offline data may trail the active version's (default: one
    window step of the candidate, the batch a running writer may still be flushing).
    """
    catalog = store.catalog()
    active = catalog.get(entity, name)
    candidate = catalog.get(entity, name, version)  # UnknownFeatureError if not registered
    name = candidate.name  # a former name (alias) resolves to the feature that carries it, as every read does
    point = read_point(table, None)
    reach = data_reach(table, point, entity, [candidate]).get((name, version))
    active_reach = data_reach(table, point, entity, [active]).get((active.name, active.version))
    lag_us = (to_millis(max_lag) if max_lag is not None else (step_ms(candidate) or 0)) * 1000
    problems = []
    trailing = False
    refusal = catalog.activation_refusal(entity, name, version)  # the activation's own refusal: --check says it too
    if refusal is not None:
        problems.append(f"v{version} cannot be activated: {refusal}")
    if active_reach is not None and reach is None:
        problems.append(f"v{version} has no offline rows: has its backfill run?")
    elif active_reach is not None and reach is not None:
        # At the precision the table stores (µs; design §5.1: never rounded to whole milliseconds), and
        # named in exact milliseconds: 300001ms is not "300s", 600000.001ms not 600000ms.
        # The window ends themselves: a window ending at E has seen every event before E, whatever its length
        # (subtracting the length refused a caught-up version with a longer window, and let a shorter one trail).
        trails_us = active_reach - reach
        if trails_us > lag_us:
            trailing = True
            problems.append(
                f"v{version} trails v{active.version} by {_as_ms(trails_us)} (allowed {_as_ms(lag_us)}): "
                "the backfill has not caught up"
            )
    lag_only = len(problems) == 1 and trailing
    return Readiness(
        entity,
        name,
        version,
        active.version,
        _ms(reach),
        _ms(active_reach),
        tuple(problems),
        reach,
        active_reach,
        lag_only,
    )


def promote(
    store: DefinitionStore,
    table: Table,
    entity: str,
    name: str,
    version: int,
    *,
    max_lag: timedelta | None = None,
    force: bool = False,
    owned_by: str | None = None,
) -> Readiness:
    """Make ``version`` the serving version if it is ready, or if only its lag stands in the way and ``force``;
    PromotionRefusedError if not (``force`` overrides no other problem: a version with no offline rows would serve
    ``missing`` everywhere, and one the activation refuses cannot serve).
    ``owned_by``: a team that must own the version and the latest (``DefinitionStore.activate``; ForbiddenError)."""
    ready = readiness(store, table, entity, name, version, max_lag=max_lag)
    if not ready.ready and not (force and ready.lag_only):
        raise PromotionRefusedError(f"not promoted: {ready.describe()}")
    store.activate(entity, ready.name, version, owned_by=owned_by)
    return ready


def main(argv: list[str] | None = None) -> int:
    from registry.core.errors import FeatureStoreError
    from registry.core.settings import settings_for_command
    from registry.core.shown import error_line, shown
    from serving.offline.report_command import print_report
    from sinks.factory import connect_iceberg
    from sinks.iceberg.writer import load_table

    parser = ArgumentParser(
        prog="python -m serving.offline.promotion",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("entity")
    parser.add_argument("name")
    parser.add_argument("version", type=whole(1, MAX_VERSION))
    parser.add_argument(
        "--max-lag", type=duration, help="how far the candidate may trail the active version, e.g. 10m (0s: not at all)"
    )
    parser.add_argument(
        "--force", action="store_true", help="promote even if not caught up (when the lag is the only problem)"
    )
    parser.add_argument("--check", action="store_true", help="only report readiness")
    args = parser.parse_args(argv)
    settings = settings_for_command()
    try:
        db = settings.definitions_db
        # moves a pointer: never a new store; checked before the catalog, so a missing one is named, nothing created
        store = DefinitionStore.existing(db, name=f"FS_DEFINITIONS_DB={shown(db)}")
        table = load_table(connect_iceberg(settings), settings.iceberg_namespace)
        max_lag: timedelta | None = args.max_lag
        if args.check:
            ready = readiness(store, table, args.entity, args.name, args.version, max_lag=max_lag)
            if not print_report(("ready: " if ready.ready else "not ready: ") + ready.describe()):
                return 1  # its reader stopped reading (`| head -1`): one error line, not a traceback
            return 0 if ready.ready else 2
        ready = promote(store, table, args.entity, args.name, args.version, max_lag=max_lag, force=args.force)
    except (FeatureStoreError, ValueError) as exc:
        print(error_line(exc), file=sys.stderr)
        return 1
    except unreadable_table_errors() as exc:  # a file of the table gone or cut short: one line, as training's
        print(error_line(f"the offline table {settings.iceberg_namespace}: {exc}"), file=sys.stderr)
        return 1
    return 0 if print_report(f"promoted: {ready.describe()}") else 1


if __name__ == "__main__":
    from registry.core.interrupt import run_command

    sys.exit(run_command(main, None))
