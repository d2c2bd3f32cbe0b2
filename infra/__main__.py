"""CLI: ``python -m infra {fetch,up,down,status,promtool} [service ...]``."""

from __future__ import annotations

import argparse
import signal
import sys

from infra import artifacts, stack
from infra.errors import InfraError
from infra.settings import StackSettings
from registry.core.shown import error_line, flushed


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="download and verify the pinned JVM artifacts")
    fetch.add_argument("components", nargs="*", default=list(artifacts.COMPONENTS))
    fetch.add_argument("--force", action="store_true")
    for name, help_text in (("up", "start services (idempotent)"), ("down", "stop services we started")):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("services", nargs="*")
    sub.add_parser("status", help="what runs")
    sub.add_parser("promtool", help="build (once) the pinned promtool the alert-rule tests run")
    args = parser.parse_args(argv)
    settings = StackSettings.from_env()
    try:
        if args.command == "fetch":
            unknown = [c for c in args.components if c not in artifacts.COMPONENTS]
            if unknown:
                known = ", ".join(artifacts.COMPONENTS)
                raise InfraError(f"unknown component(s): {', '.join(unknown)} (known: {known})")
            for component in args.components:
                artifacts.fetch(settings, component, force=args.force)
        elif args.command == "promtool":
            from infra.promtool import ensure_promtool

            print(ensure_promtool(settings.cache_dir))
        elif args.command == "up":
            stack.up(settings, args.services or None)
        elif args.command == "down":
            stack.down(settings, args.services or None)
        else:
            for name, state in stack.status(settings).items():
                print(f"{name:10} {state}")
    except InfraError as exc:
        print(error_line(exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    # SIGTERM (`timeout`, a cancelled CI job) ends the command as Ctrl-C does, through `up`'s clean-up: it ended at
    # once and left what `up` had started running. Set here, not in main: a caller's own handler is left alone.
    signal.signal(signal.SIGTERM, _terminated)
    signal.signal(signal.SIGHUP, _terminated)  # a closed terminal: as SIGTERM (it left the JVMs `up` started running)
    sys.exit(flushed(main, None))  # a reader that stopped reading (`status | head -1`): one error line
