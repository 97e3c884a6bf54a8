"""The error policy's base class (minimal; the full module comes from the `entities` branch)."""


class NonRetryable(Exception):
    """An error no retry can fix (bad input, bad config, missing rights): fail the task now."""
