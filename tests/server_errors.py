"""Keep an in-process gateway from logging the traceback of a 500 that a test provokes on purpose.

A gateway started by ``start_gateway`` runs in a thread of the test process. When it answers 500, it
logs the traceback there (``polyroute.api.responses``, then ``uvicorn.error`` once the response is
sent), and on CPython 3.11 formatting a traceback parses source with ``ast``; pytest does the same in
the main thread to show the test's failure, and two threads in the ``ast`` module at once can fail with
``SystemError: AST constructor recursion depth mismatch``, which aborts the whole run. Inside
``server_errors_unlogged()`` those records are dropped before any handler formats them, and leaving
the block waits until the server has finished with the last of them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_GATEWAY_LOGGER = "polyroute.api.responses"
_SERVER_LOGGER = "uvicorn.error"


class _Drop(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.failed = threading.Event()
        """The gateway logged an unexpected error (before it answered 500)."""
        self.reported = threading.Event()
        """The server logged the exception that followed (after the answer was sent)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            (self.failed if record.name == _GATEWAY_LOGGER else self.reported).set()
        return False


@contextmanager
def server_errors_unlogged(timeout_s: float = 5.0) -> Iterator[None]:
    """Drop the gateway's and the server's error records while the block runs."""
    drop = _Drop()
    loggers = [logging.getLogger(name) for name in (_GATEWAY_LOGGER, _SERVER_LOGGER)]
    for logger in loggers:
        logger.addFilter(drop)
    try:
        yield
    finally:
        if drop.failed.is_set():
            drop.reported.wait(timeout_s)
        for logger in loggers:
            logger.removeFilter(drop)
