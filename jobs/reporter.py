"""Build the job's Prometheus reporter jar once: Flink's reporter, bound to one host.

Flink's own Prometheus reporter serves on every interface and has no host option; the class in
``jobs/java/reporter`` serves the same metrics on one host (127.0.0.1 by default). It is compiled with
the JDK's ``javac`` against PyFlink's own jars the first time a job needs it (``jobs.java_build``).
"""

from __future__ import annotations

from pathlib import Path

from jobs.java_build import java_jar

FACTORY = "org.apache.flink.metrics.prometheus.HostPrometheusReporterFactory"


def reporter_jar(cache_dir: Path, flink_jars: list[Path]) -> Path:
    """The reporter jar in ``cache_dir``, built first if missing. ``flink_jars``: PyFlink's flink-dist
    and metrics-prometheus jars, which it compiles against and runs beside."""
    return java_jar(
        "reporter",
        cache_dir,
        flink_jars,
        services={"org.apache.flink.metrics.reporter.MetricReporterFactory": FACTORY},
    )
