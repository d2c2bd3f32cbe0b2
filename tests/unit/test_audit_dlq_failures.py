"""README "The stream job" / design §6 "Schema registry down": a bounded run that loses the registry ends with
one line, ``error: schema registry at <url> unavailable during the run: ...``. The decoder's IOException quotes
the registry's answer, which may span lines (a proxy's HTML page, a JSON parser's message quoting it): the line
stays one line."""

from __future__ import annotations

from py4j.protocol import Py4JJavaError

from jobs.failures import job_failure
from registry.core.errors import StoreUnavailableError
from registry.core.settings import Settings

SETTINGS = Settings(schema_registry_url="http://127.0.0.1:18081")


class _Throwable:
    """A Java exception as py4j hands it over: class name, message, no cause."""

    _target_id = "o1"

    def __init__(self, name: str, message: str) -> None:
        self._name, self._message = name, message

    def getClass(self) -> _Throwable:
        return self

    def getName(self) -> str:
        return self._name

    def getMessage(self) -> str:
        return self._message

    def getCause(self) -> None:
        return None


def test_a_registry_answer_over_several_lines_is_named_in_one_line() -> None:
    page = "<html>\n<head><title>502 Bad Gateway</title></head>\r\n<body>nginx</body>\n</html>\n"
    message = f"schema registry unreachable: HTTP 502 for schema id 7: {page}"
    failed = Py4JJavaError("An error occurred while calling o47.execute.", _Throwable("java.io.IOException", message))
    error = job_failure(failed, SETTINGS)
    assert isinstance(error, StoreUnavailableError)
    assert "\n" not in str(error) and "\r" not in str(error)
    assert str(error).startswith(
        "schema registry at http://127.0.0.1:18081 unavailable during the run: HTTP 502 for schema id 7: "
        "<html> <head><title>502 Bad Gateway</title></head> <body>nginx</body> </html>; the job stopped"
    )
