"""The feature API's own settings (``FS_*`` variables beside the stores' ``registry.core.settings``), read
and checked in one place before any client is built.

Every integer is a whole number within the range stated here, both ends included, in ASCII digits with
an optional sign; a fraction is a plain decimal number (``0.5``, ``.5``, ``1e-2``). Anything else (a
fraction for an integer, a word, an empty value, ``1_000``, `` 64 ``, non-ASCII digits, ``nan``, a number
out of range) is a ``SettingsError`` naming the variable, raised before the API connects to anything.
``serving/online/__main__.py``'s docstring says what each does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from registry.core.errors import SettingsError
from registry.core.settings import DECIMAL, int_setting
from serving.online.cache import DEFAULT_MAX_ENTRIES, DEFAULT_TTL_MS
from serving.online.overload import DEFAULT_MAX_ENTITIES_IN_FLIGHT, DEFAULT_MAX_IN_FLIGHT
from serving.online.responses import DEFAULT_BODY_TIMEOUT_MS
from serving.online.serving_log import DEFAULT_SAMPLE, DEFAULT_TOPIC
from sinks.cassandra.native_reader import (
    DEFAULT_PARTITIONS_PER_READ,
    MAX_PARTITIONS_PER_READ,
    MAX_SPECULATIVE_EXECUTIONS,
)
from sinks.cassandra.reader import DEFAULT_BATCH_BUDGET_S, DEFAULT_BUDGET_S
from sinks.serving_log import topic_from_env

__all__ = ["ApiOptions", "fraction_setting", "int_setting"]

GC_GEN0_THRESHOLD = 20_000
MAX_BUDGET_MS = 60_000
DRIVERS = ("native", "python")
# A name Kafka accepts for a topic (anything else would drop every sampled record at the first produce).


def fraction_setting(env: Mapping[str, str], name: str, default: float) -> float:
    """A number in ``[0, 1]`` (both included); SettingsError naming it otherwise."""
    raw = env.get(name, str(default))
    if DECIMAL.fullmatch(raw) is None:  # nan and inf too
        raise SettingsError(f"{name} must be a number from 0 to 1, not {raw!r}")
    try:  # as written: 1.00000000000000000001 is past 1, though its float is 1.0
        within = 0 <= Decimal(raw) <= 1
    except InvalidOperation:  # an exponent past what Decimal holds (1e-999999999999999999999): its float, 0.0 or inf
        within = 0.0 <= float(raw) <= 1.0
    if not within:
        raise SettingsError(f"{name} must be from 0 to 1, not {raw!r}")
    return float(raw)


@dataclass(frozen=True, slots=True)
class ApiOptions:
    """What the API process was configured with (``from_env``)."""

    budget_ms: int = int(DEFAULT_BUDGET_S * 1000)
    batch_budget_ms: int = int(DEFAULT_BATCH_BUDGET_S * 1000)
    driver: str = "native"
    partitions_per_read: int = DEFAULT_PARTITIONS_PER_READ
    speculative_delay_ms: int = 0  # 0: no speculative execution
    speculative_executions: int = 1
    cache_ttl_ms: int = DEFAULT_TTL_MS
    cache_max_entries: int = DEFAULT_MAX_ENTRIES
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    max_entities_in_flight: int = DEFAULT_MAX_ENTITIES_IN_FLIGHT
    serving_log_sample: float = DEFAULT_SAMPLE
    serving_log_topic: str = DEFAULT_TOPIC
    gc_gen0_threshold: int = GC_GEN0_THRESHOLD
    gil_switch_interval_us: int = 500
    body_timeout_ms: int = DEFAULT_BODY_TIMEOUT_MS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ApiOptions:
        d = cls()
        budget_ms = int_setting(env, "FS_REQUEST_BUDGET_MS", d.budget_ms, 1, MAX_BUDGET_MS)
        driver = env.get("FS_ONLINE_DRIVER", d.driver)
        if driver not in DRIVERS:
            raise SettingsError(f"FS_ONLINE_DRIVER must be native or python, not {driver!r}")
        # Speculation starts a second attempt while the first may still answer: only sooner than the budget.
        delay_ms = int_setting(env, "FS_SPECULATIVE_DELAY_MS", 0, 0, budget_ms - 1)
        if delay_ms and driver != "native":
            raise SettingsError("FS_SPECULATIVE_DELAY_MS needs FS_ONLINE_DRIVER=native (the native driver's policy)")
        topic = topic_from_env(env)
        return cls(
            budget_ms=budget_ms,
            batch_budget_ms=int_setting(env, "FS_BATCH_BUDGET_MS", d.batch_budget_ms, 1, MAX_BUDGET_MS),
            driver=driver,
            partitions_per_read=int_setting(
                env, "FS_ONLINE_PARTITIONS_PER_READ", d.partitions_per_read, 1, MAX_PARTITIONS_PER_READ
            ),
            speculative_delay_ms=delay_ms,
            speculative_executions=int_setting(
                env, "FS_SPECULATIVE_EXECUTIONS", d.speculative_executions, 1, MAX_SPECULATIVE_EXECUTIONS
            ),
            cache_ttl_ms=int_setting(env, "FS_CACHE_TTL_MS", d.cache_ttl_ms, 0, 3_600_000),
            cache_max_entries=int_setting(env, "FS_CACHE_MAX_ENTRIES", d.cache_max_entries, 1, 10_000_000),
            max_in_flight=int_setting(env, "FS_MAX_IN_FLIGHT", d.max_in_flight, 1, 100_000),
            max_entities_in_flight=int_setting(
                env, "FS_MAX_ENTITIES_IN_FLIGHT", d.max_entities_in_flight, 1, 1_000_000
            ),
            serving_log_sample=fraction_setting(env, "FS_SERVING_LOG_SAMPLE", d.serving_log_sample),
            serving_log_topic=topic,
            gc_gen0_threshold=int_setting(env, "FS_GC_GEN0_THRESHOLD", d.gc_gen0_threshold, 100, 10_000_000),
            gil_switch_interval_us=int_setting(env, "FS_GIL_SWITCH_INTERVAL_US", d.gil_switch_interval_us, 1, 100_000),
            body_timeout_ms=int_setting(env, "FS_BODY_TIMEOUT_MS", d.body_timeout_ms, 1, 60_000),
        )
