"""The feature job with extra Flink options, to measure a setting before changing the job.

    python -m bench.stream_whatif KEY=VALUE [KEY=VALUE ...] -- [feature job arguments]

Runs ``jobs.feature_job.main`` unchanged, except that every execution environment it creates gets
these options on top of its own (``bench.stream --flink-conf`` uses it). Options in PyFlink's
``conf/config.yaml`` (FLINK_CONF_DIR) do not reach a job's Python operators; options set on the
job's configuration do, which is what this does.
"""

from __future__ import annotations

import sys
from typing import Any

from pyflink.datastream import StreamExecutionEnvironment

import jobs.feature_job


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    split = argv.index("--")
    options = [option.partition("=") for option in argv[:split]]
    if any(not sep for _, sep, _ in options):
        raise SystemExit(f"expected KEY=VALUE options, got {argv[:split]}")
    original = StreamExecutionEnvironment.get_execution_environment

    def with_options(configuration: Any = None) -> StreamExecutionEnvironment:
        from pyflink.common import Configuration

        configuration = configuration if configuration is not None else Configuration()
        for key, _, value in options:
            configuration.set_string(key.strip(), value.strip())
        return original(configuration)

    StreamExecutionEnvironment.get_execution_environment = staticmethod(with_options)  # type: ignore[method-assign,assignment]
    return jobs.feature_job.main(argv[split + 1 :])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
