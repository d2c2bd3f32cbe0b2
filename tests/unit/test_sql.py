from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from jobs.sql import aggregate_sql, decode_last, interval, source_lateness, window_groups
from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.errors import DefinitionError
from registry.core.value_types import ValueType

MakeDef = Callable[..., FeatureDefinition]


def test_shipped_definitions_are_one_group(shipped_catalog: FeatureCatalog) -> None:
    (group,) = window_groups(shipped_catalog.active())
    assert group.entity == "user"
    assert group.source.topic == "card_transactions"
    assert group.window.kind == "sliding"
    assert [d.name for d in group.features] == ["txn_amount_sum_1h", "txn_count_1h"]


HOP_1H = "HOP(rowtime, INTERVAL '5' MINUTE(2), INTERVAL '1' HOUR(2))"


def test_shipped_aggregate_sql(shipped_catalog: FeatureCatalog) -> None:
    (group,) = window_groups(shipped_catalog.active())
    sql = aggregate_sql(group, "card_transactions_events")
    lines = sql.splitlines()
    assert lines[0] == (
        "SELECT CAST(`user_id` AS STRING) AS entity_id, "
        f"{HOP_1H.replace('HOP(', 'HOP_START(')} AS window_start, {HOP_1H.replace('HOP(', 'HOP_END(')} AS window_end,"
    )
    # One column per feature, named after it, in name order.
    assert [line for line in lines if " AS `txn_" in line] == [
        "  CAST(CASE WHEN ABS(SUM(CAST(`amount` AS DOUBLE))) <= 1.7976931348623157E308 THEN SUM(CAST(`amount` AS DOUBLE)) END"
        " AS DOUBLE) AS `txn_amount_sum_1h`,",
        "  CAST(COUNT(*) AS BIGINT) AS `txn_count_1h`",
    ]
    assert lines[-2] == "FROM `card_transactions_events`"
    # Grouped by the entity key and the 1-hour window sliding by 5 minutes, nothing else.
    assert lines[-1] == f"GROUP BY `user_id`, {HOP_1H}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(seconds=90), "INTERVAL '90' SECOND(2)"),
        (timedelta(milliseconds=1500), "INTERVAL '1.500' SECOND(2, 3)"),
        (timedelta(milliseconds=250), "INTERVAL '0.250' SECOND(2, 3)"),
        (timedelta(days=2), "INTERVAL '2' DAY(2)"),
        (timedelta(days=100), "INTERVAL '100' DAY(3)"),
        (timedelta(hours=1), "INTERVAL '1' HOUR(2)"),
        (timedelta(hours=36), "INTERVAL '36' HOUR(2)"),
        (timedelta(minutes=5), "INTERVAL '5' MINUTE(2)"),
        (timedelta(minutes=90), "INTERVAL '90' MINUTE(2)"),
        (timedelta(seconds=1), "INTERVAL '1' SECOND(2)"),
        (timedelta(seconds=123), "INTERVAL '123' SECOND(3)"),
    ],
)
def test_interval(value: timedelta, expected: str) -> None:
    assert interval(value) == expected


def test_window_groups_share_and_separate(make_definition: MakeDef) -> None:
    hour_count = make_definition(name="c_1h")
    hour_sum = make_definition(name="a_sum_1h", value_type="double", aggregation={"function": "sum", "field": "amount"})
    day_count = make_definition(name="c_1d", window={"kind": "sliding", "size": "1d", "slide": "1h"})
    tumbling = make_definition(name="c_10m", window={"kind": "tumbling", "size": "10m"})
    merchant = make_definition(name="m_1h", entity="merchant", **{"source.entity_key": "merchant_id"})
    other_topic = make_definition(name="o_1h", **{"source.topic": "refunds"})

    groups = window_groups([day_count, hour_count, merchant, tumbling, hour_sum, other_topic])
    by_features = {tuple(d.name for d in g.features): g for g in groups}
    assert set(by_features) == {("a_sum_1h", "c_1h"), ("c_1d",), ("c_10m",), ("m_1h",), ("o_1h",)}
    assert len(groups) == 5
    assert by_features[("c_1d",)].window.size == timedelta(days=1)
    assert by_features[("m_1h",)].entity == "merchant"
    assert by_features[("o_1h",)].source.topic == "refunds"
    # Deterministic order: by topic, then entity, then window.
    assert [g.source.topic for g in groups] == ["card_transactions"] * 4 + ["refunds"]
    assert [g.entity for g in groups] == ["merchant", "user", "user", "user", "user"]


def test_window_groups_order_does_not_depend_on_input_order(make_definition: MakeDef) -> None:
    defs = [
        make_definition(name="b"),
        make_definition(name="a"),
        make_definition(name="t", window={"kind": "tumbling", "size": "10m"}),
    ]
    forward = [(g.window, tuple(d.name for d in g.features)) for g in window_groups(defs)]
    backward = [(g.window, tuple(d.name for d in g.features)) for g in window_groups(reversed(defs))]
    assert forward == backward
    assert ("a", "b") in [names for _, names in forward]


def test_tumbling_and_session_windows(make_definition: MakeDef) -> None:
    (tumbling,) = window_groups([make_definition(window={"kind": "tumbling", "size": "10m"})])
    assert (
        aggregate_sql(tumbling, "v").splitlines()[-1] == "GROUP BY `user_id`, TUMBLE(rowtime, INTERVAL '10' MINUTE(2))"
    )
    (session,) = window_groups([make_definition(window={"kind": "session", "gap": "30m"})])
    sql = aggregate_sql(session, "v", time_column="ts")
    assert sql.splitlines()[-1] == "GROUP BY `user_id`, SESSION(ts, INTERVAL '30' MINUTE(2))"
    assert "SESSION_END(ts, INTERVAL '30' MINUTE(2)) AS window_end" in sql


def test_merchant_group_keys_by_its_entity_key(make_definition: MakeDef) -> None:
    (group,) = window_groups([make_definition(entity="merchant", **{"source.entity_key": "merchant_id"})])
    sql = aggregate_sql(group, "v")
    assert sql.startswith("SELECT CAST(`merchant_id` AS STRING) AS entity_id, ")
    assert sql.splitlines()[-1] == f"GROUP BY `merchant_id`, {HOP_1H}"


@pytest.mark.parametrize(
    ("function", "field", "value_type", "expression"),
    [
        ("count", None, "long", "CAST(COUNT(*) AS BIGINT) AS `f`"),
        ("sum", "amount", "long", "CAST(SUM(CAST(`amount` AS BIGINT)) AS BIGINT) AS `f`"),
        (
            "mean",
            "amount",
            "double",
            "CAST(CASE WHEN ABS(AVG(CAST(`amount` AS DOUBLE))) <= 1.7976931348623157E308 THEN AVG(CAST(`amount` AS DOUBLE)) END"
            " AS DOUBLE) AS `f`",
        ),
        ("min", "merchant_id", "string", "CAST(MIN(`merchant_id`) AS STRING) AS `f`"),
        ("max", "amount", "double", "CAST(MAX(`amount`) AS DOUBLE) AS `f`"),
        (
            "last",
            "flag",
            "boolean",
            "MAX(CONCAT(LPAD(CAST(`event_time` AS STRING), 20, '0'), '|', CAST(`flag` AS STRING))) AS `f`",
        ),
        (
            "last",
            "amount",
            "double",
            "MAX(CONCAT(LPAD(CAST(`event_time` AS STRING), 20, '0'), '|', CAST(`amount` AS STRING))) AS `f`",
        ),
        ("count_distinct", "merchant_id", "long", "CAST(COUNT(DISTINCT `merchant_id`) AS BIGINT) AS `f`"),
    ],
)
def test_aggregate_expressions(
    make_definition: MakeDef, function: str, field: str | None, value_type: str, expression: str
) -> None:
    aggregation = {"function": function} if field is None else {"function": function, "field": field}
    (group,) = window_groups([make_definition(name="f", aggregation=aggregation, value_type=value_type)])
    assert f"  {expression}\n" in aggregate_sql(group, "v")


@pytest.mark.parametrize(
    ("text", "value_type", "expected"),
    [
        (None, "long", None),
        ("00000001700000000000|42", "long", 42),
        ("00000001700000000000|-1.5", "double", -1.5),
        ("00000001700000000000|TRUE", "boolean", True),
        ("00000001700000000000|false", "boolean", False),
        ("00000001700000000000|a|b", "string", "a|b"),
        ("00000001700000000000|", "string", ""),
    ],
)
def test_decode_last(text: str | None, value_type: ValueType, expected: object) -> None:
    value = decode_last(text, value_type)
    assert value == expected
    assert type(value) is type(expected)


def test_last_encoding_orders_by_event_time() -> None:
    # The aggregate is MAX over "<event ms, zero-padded to 20>|<value>": later events sort higher.
    earlier, later = f"{999:020d}|zzz", f"{1000:020d}|aaa"
    assert max(earlier, later) == later
    assert decode_last(max(earlier, later), "string") == "aaa"


def test_source_lateness_must_agree(make_definition: MakeDef) -> None:
    a = make_definition(name="a", window={"kind": "tumbling", "size": "10m", "allowed_lateness": "1m"})
    b = make_definition(name="b", window={"kind": "sliding", "size": "1h", "slide": "5m", "allowed_lateness": "1m"})
    (lateness,) = source_lateness([a, b]).values()
    assert lateness == timedelta(minutes=1)
    c = make_definition(name="c")
    with pytest.raises(DefinitionError, match=r"features of topic card_transactions disagree on allowed_lateness"):
        source_lateness([a, b, c])


def test_a_double_sum_past_the_largest_double_is_null_not_an_infinity(make_definition: MakeDef) -> None:
    """Finite amounts can add up past 1.8e308: Flink's SUM is then an infinity, which serving sends as null (JSON
    has none) while training would read inf. The generated column is null in both stores instead; run by Flink."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    total, mean = (
        make_definition(name=name, aggregation={"function": function, "field": "amount"}, value_type="double")
        for name, function in (("total", "sum"), ("average", "mean"))
    )
    (group,) = window_groups([total, mean])
    columns = [line.strip().rstrip(",") for line in aggregate_sql(group, "v").splitlines() if " AS `" in line]
    columns = [c for c in columns if c.endswith(("`total`", "`average`"))]
    t_env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    t_env.get_config().set("parallelism.default", "1")
    rows = [
        (k, a)
        for k, amounts in (("big", [1e308, 1e308]), ("small", [1.5, 2.5]), ("low", [-1e308, -1e308]))
        for a in amounts
    ]
    t_env.create_temporary_view("v", t_env.from_elements(rows, ["k", "amount"]))
    with t_env.sql_query(f"SELECT k, {', '.join(columns)} FROM v GROUP BY k").execute().collect() as results:
        got = {r[0]: (r[1], r[2]) for r in results}
    assert got == {"big": (None, None), "small": (2.0, 4.0), "low": (None, None)}  # columns in name order


def _float_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader schema ``floats`` with ``amount`` an Avro float and ``n`` a long, beside the shipped one."""
    import json

    import schemas

    fields = [
        {"name": "user_id", "type": "string"},
        {"name": "event_time", "type": "long"},
        {"name": "amount", "type": "float"},
        {"name": "n", "type": "long"},
    ]
    (tmp_path / "floats.avsc").write_text(json.dumps({"type": "record", "name": "F", "fields": fields}))
    monkeypatch.setattr(schemas, "SCHEMA_DIR", tmp_path)


def _run_by_flink(group_sql: str, names: tuple[str, ...], rows: list[tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    """The feature columns ``names`` of an aggregate query, run by Flink over ``rows`` of (k, event_time, amount,
    n) grouped by ``k``: per key, the columns in the query's (name) order."""
    from pyflink.table import DataTypes, EnvironmentSettings, TableEnvironment

    columns = [line.strip().rstrip(",") for line in group_sql.splitlines() if " AS `" in line]
    columns = [c for c in columns if c.endswith(tuple(f"`{n}`" for n in names))]
    t_env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    t_env.get_config().set("parallelism.default", "1")
    schema = DataTypes.ROW(
        [
            DataTypes.FIELD("k", DataTypes.STRING()),
            DataTypes.FIELD("event_time", DataTypes.BIGINT()),
            DataTypes.FIELD("amount", DataTypes.FLOAT()),
            DataTypes.FIELD("n", DataTypes.BIGINT()),
        ]
    )
    t_env.create_temporary_view("v", t_env.from_elements(rows, schema))
    with t_env.sql_query(f"SELECT k, {', '.join(columns)} FROM v GROUP BY k").execute().collect() as results:
        return {r[0]: tuple(r[1:]) for r in results}


def test_the_last_and_distinct_values_of_a_field_are_the_ones_max_and_python_see(
    make_definition: MakeDef, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An Avro float is a Flink FLOAT: ``last`` printed it as itself ("0.1") and read that back as the double 0.1,
    while min, max and sum widen the float (0.10000000149011612): one event, two values. ``count_distinct`` counted
    -0.0 and 0.0 as two. Of two events at one time, ``last`` of a long field as a double took "10.0" over "1.0E7"
    (the long feature took 10000000): two features, two last events. Run by Flink."""
    _float_schema(tmp_path, monkeypatch)

    def feature(name: str, function: str, field: str) -> FeatureDefinition:
        source = {"source.event_schema": "floats"}
        value_type = {"count_distinct": "long", "last_text": "string"}.get(function, "double")
        function = function.removesuffix("_text")
        return make_definition(
            name=name, aggregation={"function": function, "field": field}, value_type=value_type, **source
        )

    group_features = [
        feature("a_last", "last", "amount"),
        feature("b_top", "max", "amount"),
        feature("c_distinct", "count_distinct", "amount"),
        feature("d_last_n", "last", "n"),
        feature("e_text", "last_text", "amount"),  # a string feature keeps the float's own text
    ]
    (group,) = window_groups(group_features)
    at = 1_700_000_000_000
    rows = [("a", at, 0.1, 10), ("b", at, 1 / 3, 10), ("z", at, -0.0, 10), ("z", at + 1, 0.0, 10)]
    rows += [("t", at, 1.0, 10), ("t", at, 1.0, 10_000_000)]
    got = _run_by_flink(aggregate_sql(group, "v"), ("a_last", "b_top", "c_distinct", "d_last_n", "e_text"), rows)
    for k in ("a", "b"):
        assert repr(decode_last(got[k][0], "double")) == repr(got[k][1]), k
    assert decode_last(got["a"][0], "double") == 0.10000000149011612
    assert got["z"][2] == 1  # -0.0 and 0.0: one value
    assert decode_last(got["t"][3], "double") == 10_000_000.0  # as `last` of the same field as a long gives
    assert decode_last(got["a"][4], "string") == "0.1"


@pytest.mark.parametrize("name", ["entity_id", "window_start", "window_end", "revision"])
def test_a_feature_named_like_a_key_column_runs_over_a_range(make_definition: MakeDef, name: str) -> None:
    """Its column took the name of the window's own: a ranged run's filter (``jobs.feature_job``: window_start and
    window_end against the range) failed with Flink's "Column 'window_end' is ambiguous". Planned by Flink."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    (group,) = window_groups([make_definition(name=name), make_definition(name="other")])
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    t_env.execute_sql(
        "CREATE TEMPORARY TABLE v (user_id STRING, amount DOUBLE, event_time BIGINT,"
        " rowtime AS TO_TIMESTAMP_LTZ(event_time, 3), WATERMARK FOR rowtime AS rowtime)"
        " WITH ('connector' = 'datagen', 'number-of-rows' = '1')"
    )
    query = (
        f"SELECT * FROM ({aggregate_sql(group, 'v')})\nWHERE window_start >= TO_TIMESTAMP_LTZ(0, 3)"
        " AND window_end <= TO_TIMESTAMP_LTZ(3600000, 3)"
    )
    columns = t_env.sql_query(query).get_schema().get_field_names()
    assert columns[:4] == ["entity_id", "window_start", "window_end", "revision"]
    assert columns[4:] == ([f"{name}@v1", "other"] if name < "other" else ["other", f"{name}@v1"])
