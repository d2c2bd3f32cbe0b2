"""A session feature and a feature with allowed lateness on another source run in one job (design §5.3,
"Late but allowed"): whichever table environment the job builds first.

The job builds one table environment with late firing and one without (for session windows). Translating a
query of the first writes its configuration into the shared execution environment, so a table environment
created afterwards inherited late firing, and Flink refused the session query ("Session window doesn't
support EMIT strategy currently"): the job failed at start whenever a session feature's topic sorted after a
topic with lateness (window groups are built in topic order). Found by an audit on the real job; the session
environment now sets late firing off explicitly (jobs/flink_environment.py:table_environment).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

SOURCE = (
    "CREATE TEMPORARY TABLE {name} (k STRING, ts TIMESTAMP_LTZ(3), WATERMARK FOR ts AS ts) "
    "WITH ('connector' = 'datagen', 'number-of-rows' = '1')"
)


@pytest.fixture(scope="module")
def env() -> Any:
    from pyflink.datastream import StreamExecutionEnvironment

    return StreamExecutionEnvironment.get_execution_environment()


def test_a_session_query_translates_after_a_late_firing_query_did(env: Any) -> None:
    from jobs.flink_environment import table_environment

    late = table_environment(env, timedelta(minutes=10))
    late.execute_sql(SOURCE.format(name="late_src"))
    late.to_changelog_stream(
        late.sql_query(
            "SELECT k, TUMBLE_END(ts, INTERVAL '10' MINUTE) AS e, COUNT(*) AS n FROM late_src "
            "GROUP BY k, TUMBLE(ts, INTERVAL '10' MINUTE)"
        )
    )
    session = table_environment(env, None)  # built after the late query was translated, as the job does
    session.execute_sql(SOURCE.format(name="session_src"))
    session.to_changelog_stream(  # raised TableException: Session window doesn't support EMIT strategy
        session.sql_query(
            "SELECT k, SESSION_END(ts, INTERVAL '5' MINUTE) AS e, COUNT(*) AS n FROM session_src "
            "GROUP BY k, SESSION(ts, INTERVAL '5' MINUTE)"
        )
    )
    assert session.get_config().get("table.exec.emit.late-fire.enabled", "") == "false"
    assert late.get_config().get("table.exec.emit.late-fire.enabled", "") == "true"
