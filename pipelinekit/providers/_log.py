"""pipelinekit's own log: silent unless the application that runs pipelinekit asks for it.

A library does not decide where its log goes, the application does: Python's advice for
libraries ("Configuring Logging for a Library": log to your own logger, give it a
``NullHandler``, add no other handler) and structlog's author on libraries
(hynek/structlog#179: the application configures logging; the library logs through a thin shim
that uses structlog when the application does, and the standard library otherwise).
``library_logger()`` is that shim. It has structlog's calls (``bind()``,
``info(event, **values)``, ...) and goes

- through ``structlog.get_logger("pipelinekit")`` when the application configured structlog
  (``structlog.is_configured()``): its processors, filters and renderers decide, and
  ``structlog.testing.capture_logs()`` sees every line;
- otherwise to the standard library's ``"pipelinekit"`` logger as ``event key='value' ...``:
  shown wherever the application's ``logging`` configuration shows it, and nowhere when it
  configured none (a ``NullHandler``, so not even warnings reach Python's last-resort stderr).

Unconfigured structlog prints every line to stdout, which suits an application trying structlog
out, not a library inside someone else's release script. structlog is not imported to decide: a
program that never imported it cannot have configured it, and importing it costs a tenth of a
second (it brings rich). An action's own log file gets its lines whatever is configured (see
``ActionLog``).
"""

from __future__ import annotations

import functools
import logging
import sys
from typing import Any, Protocol

__all__ = ["LOGGER_NAME", "StructuredLogger", "library_logger"]

#: The name of pipelinekit's logger, for structlog and for the standard library.
LOGGER_NAME = "pipelinekit"


class StructuredLogger(Protocol):
    """The calls pipelinekit makes on a logger: structlog's, a subset."""

    def bind(self, **values: Any) -> StructuredLogger:  # noqa: ANN401 - any value
        """A logger that adds ``values`` to every line."""
        ...

    def debug(self, event: str, **values: Any) -> Any:  # noqa: ANN401 - any value
        """Log at debug level."""
        ...

    def info(self, event: str, **values: Any) -> Any:  # noqa: ANN401 - any value
        """Log at info level."""
        ...

    def warning(self, event: str, **values: Any) -> Any:  # noqa: ANN401 - any value
        """Log at warning level."""
        ...

    def error(self, event: str, **values: Any) -> Any:  # noqa: ANN401 - any value
        """Log at error level."""
        ...


def library_logger(**values: Any) -> StructuredLogger:  # noqa: ANN401 - any value
    """Return pipelinekit's logger bound to ``values``; where it goes is the application's choice.

    Decided when called: take a new one for each run or action, not one for the process.
    """
    structlog = sys.modules.get("structlog")
    if structlog is not None and structlog.is_configured():
        logger: StructuredLogger = structlog.get_logger(LOGGER_NAME)
        return logger.bind(**values) if values else logger
    return StandardLogger(_standard_logger(), values)


@functools.cache
def _standard_logger() -> logging.Logger:
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(logging.NullHandler())
    return logger


class StandardLogger:
    """structlog's calls on a standard library logger: ``event key='value' ...`` lines."""

    __slots__ = ("_logger", "_values")

    def __init__(self, logger: logging.Logger, values: dict[str, Any]) -> None:
        """Log to ``logger``, adding ``values`` to every line."""
        self._logger = logger
        self._values = values

    def bind(self, **values: Any) -> StandardLogger:  # noqa: ANN401 - any value
        """A logger that also adds ``values`` to every line."""
        return StandardLogger(self._logger, {**self._values, **values})

    def _log(self, level: int, event: str, values: dict[str, Any]) -> None:
        # Checked first: a command's every output line is a debug call.
        if not self._logger.isEnabledFor(level):
            return
        fields = {**self._values, **values} if self._values else values
        rendered = " ".join(f"{key}={value!r}" for key, value in fields.items())
        # No arguments: a '%' in the text is never taken for a format.
        self._logger.log(level, f"{event} {rendered}" if rendered else event)

    def debug(self, event: str, **values: Any) -> None:  # noqa: ANN401 - any value
        """Log at debug level."""
        self._log(logging.DEBUG, event, values)

    def info(self, event: str, **values: Any) -> None:  # noqa: ANN401 - any value
        """Log at info level."""
        self._log(logging.INFO, event, values)

    def warning(self, event: str, **values: Any) -> None:  # noqa: ANN401 - any value
        """Log at warning level."""
        self._log(logging.WARNING, event, values)

    def error(self, event: str, **values: Any) -> None:  # noqa: ANN401 - any value
        """Log at error level."""
        self._log(logging.ERROR, event, values)
