"""Logging filters used by ``LOGGING`` in the settings."""
import logging


class WithoutTraceback(logging.Filter):
    """Keep the message, drop the traceback: for expected refusals such as a request for a host that is not
    in ``ALLOWED_HOSTS`` (scanners send many), where a stack trace is noise, not a clue."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True
