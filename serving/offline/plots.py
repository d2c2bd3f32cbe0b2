"""The on-call page of a feature: freshness lag, null rate, drift and parity over time, as PNG plots.

``python -m serving.offline.plots --since 7d --out DIR [--entity-type user] [--feature NAME ...]``
writes one PNG per feature version found in the stored quality results (``registry.quality``) of
that span, named ``{entity_type}.{feature}.v{version}.png``, each with four panels over the same
time axis (UTC):

1. **freshness lag**: the hourly p99 lag in minutes: of served values, their age when served
   (``serving_log``); of offline rows, how long after their window closed they were ingested
   (``offline``);
2. **null rate**: the hourly null share, per source (served ``missing``/``expired`` values count);
3. **drift**: each stored PSI per source and training set, with the 0.25 threshold;
4. **parity**: each parity run's mismatch and missing ratios, with the 0.001 threshold.

A panel with nothing stored says so instead of drawing an empty axis. The statistics and parity
commands (``serving.offline.statistics``, ``serving.offline.parity``) fill the store; run them on a
schedule (``--every``) for the plots to show a history.
"""

from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C while the modules below load is the command's one line too, not a traceback
    from registry.core.interrupt import exit_on_ctrl_c

    exit_on_ctrl_c()

import argparse
import sqlite3
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from registry.core.arguments import ArgumentParser, text
from registry.core.shown import error_line, shown
from registry.quality import TABLES, QualityStore
from registry.sqlite_store import tables_of
from serving.offline.command_io import aside, discard

DRIFT_THRESHOLD = 0.25
PARITY_THRESHOLD = 0.001
PANELS = ("freshness lag p99 (min)", "null rate", "drift (PSI)", "parity (share of served values)")


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _series(rows: Sequence[dict[str, Any]], time_key: str, value_key: str, group_key: str) -> dict[str, Any]:
    out: dict[str, tuple[list[datetime], list[float]]] = {}
    for r in rows:
        if r.get(value_key) is None:
            continue
        xs, ys = out.setdefault(str(r[group_key]), ([], []))
        xs.append(_t(r[time_key]))
        ys.append(float(r[value_key]))
    return out


def render(stored: dict[str, list[dict[str, Any]]], title: str, path: Path) -> Path:
    """Draw one feature version's stored results (``QualityStore.feature``'s answer) to ``path``."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    hourly, drift, parity = stored["hourly"], stored["drift"], stored["parity"]
    lag_minutes = [{**h, "lag_min": None if h["lag_p99_ms"] is None else h["lag_p99_ms"] / 60_000} for h in hourly]
    drift = [{**d, "line": f"{d['source']} vs {d['training_set']}"} for d in drift]
    panels: list[tuple[dict[str, Any], float | None]] = [
        (_series(lag_minutes, "hour", "lag_min", "source"), None),
        (_series(hourly, "hour", "null_rate", "source"), None),
        (_series(drift, "computed_at", "psi", "line"), DRIFT_THRESHOLD),
        (
            {
                **_series([{**p, "what": "mismatch"} for p in parity], "computed_at", "mismatch_ratio", "what"),
                **_series([{**p, "what": "missing"} for p in parity], "computed_at", "missing_ratio", "what"),
            },
            PARITY_THRESHOLD,
        ),
    ]
    figure = Figure(figsize=(10, 11), layout="constrained")
    axes = figure.subplots(len(PANELS), 1, sharex=True)
    figure.suptitle(title)
    for ax, name, (lines, threshold) in zip(axes, PANELS, panels, strict=True):
        ax.set_title(name, loc="left", fontsize=10)
        if not lines:
            ax.text(0.5, 0.5, "nothing stored in this span", ha="center", va="center", transform=ax.transAxes)
            continue
        for label, (xs, ys) in sorted(lines.items()):
            ax.plot(xs, ys, marker="o", markersize=3, label=label)
        if threshold is not None:
            ax.axhline(threshold, color="red", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
        ax.legend(fontsize=8, loc="upper left")
        ax.grid(True, alpha=0.3)
    locator = AutoDateLocator()
    axes[-1].xaxis.set_major_locator(locator)
    axes[-1].xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=UTC))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = aside(path)  # never a half-drawn PNG under its name
    try:
        figure.savefig(tmp, dpi=80, format="png")
        tmp.replace(path)
    finally:
        discard(tmp)
    return path


def render_all(
    quality: QualityStore,
    since: datetime,
    until: datetime,
    out: Path,
    *,
    entity_type: str | None = None,
    features: Sequence[str] = (),
) -> list[Path]:
    """One PNG per stored feature version (of ``entity_type``; of ``features`` if given) with results in
    ``[since, until)``; returns the paths written."""
    written = []
    for entity, name, version in quality.features(entity_type):
        if features and name not in features:
            continue
        stored = quality.feature(entity, name, version, since, until)
        if not any(stored.values()):
            continue
        title = f"{entity}.{name}@v{version}   {since:%Y-%m-%d %H:%M} - {until:%Y-%m-%d %H:%M} UTC"
        written.append(render(stored, title, out / f"{entity}.{name}.v{version}.png"))
    return written


def _any_stored(quality: QualityStore, since: datetime, until: datetime) -> bool:
    """Whether any feature version has results in ``[since, until)``."""
    return any(any(quality.feature(*version, since, until).values()) for version in quality.features(None))


def main(argv: list[str] | None = None) -> int:
    from registry.core.settings import settings_for_command
    from serving.offline.report_command import print_report, since_ms

    parser = ArgumentParser(
        prog="python -m serving.offline.plots",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--since", default="7d", help="how far back from now (a positive duration; default 7d)")
    parser.add_argument("--out", type=Path, required=True, help="the folder the PNG files are written to")
    parser.add_argument("--entity-type", type=text, help="only this entity type's features")
    parser.add_argument("--feature", action="append", default=[], help="only this feature (repeatable)")
    args = parser.parse_args(argv)
    try:
        if args.out.exists() and not args.out.is_dir():
            parser.error(f"argument --out: {shown(args.out)} is not a folder")
    except OSError as exc:  # a name the system refuses (too long): a usage error, not a traceback
        parser.error(f"argument --out: {exc}")
    try:  # checked here, not as the option's type: the error below quotes the text as written
        span = timedelta(milliseconds=since_ms(args.since))
    except argparse.ArgumentTypeError as exc:
        parser.error(f"argument --since: {exc}")
    until = datetime.now(UTC)
    db = settings_for_command().definitions_db
    try:
        # Read without creating: no file there, or one without quality results (an empty file, another program's
        # database, a registry no run has stored into), holds nothing stored, and is left as it was.
        stored = bool(set(TABLES) & (tables_of(db) or set()))
    except sqlite3.DatabaseError as exc:
        print(error_line(f"FS_DEFINITIONS_DB={shown(db)}: not a definition store (SQLite): {exc}"), file=sys.stderr)
        return 1
    try:
        paths = (
            render_all(
                QualityStore(db), until - span, until, args.out, entity_type=args.entity_type, features=args.feature
            )
            if stored
            else []
        )
    except OSError as exc:  # a folder that cannot be made or written, a full disk
        print(error_line(f"--out {shown(args.out)}: {exc}"), file=sys.stderr)
        return 1
    if paths and not print_report("\n".join(str(path) for path in paths)):
        return 1  # its reader stopped reading (`| head -1`): one error line, not a traceback
    drawn = {path.name.split(".")[1] for path in paths}  # {entity_type}.{feature}.v{version}.png: names hold no '.'
    asked = [f"--feature {name}" for name in dict.fromkeys(args.feature) if name not in drawn]
    if args.entity_type is not None and not paths:
        asked.insert(0, f"--entity-type {args.entity_type}")
    if asked and (
        paths or (stored and _any_stored(QualityStore(db), until - span, until))
    ):  # misspelt, or none in span
        print(error_line(f"no stored results in the last {args.since} for {', '.join(asked)}"), file=sys.stderr)
        return 1
    if not paths:
        print(
            error_line(f"nothing stored in the last {args.since}: run serving.offline.statistics and parity first"),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    from registry.core.interrupt import run_command

    sys.exit(run_command(main, None))
