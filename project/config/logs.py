"""Logging helpers of the demo's settings."""

import logging


class OneLine(logging.Filter):
    """Logs a record as one WARNING line without its traceback: for what any client
    can provoke (a bad Host header), which must not flood the log with tracebacks
    at ERROR."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True
