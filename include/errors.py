"""The one error policy: which errors a retry cannot fix, and the helper every DAG task runs under.

A *non-retryable* error ends the task at once (Airflow's AirflowFailException: no retry) with its own
message: a structurally broken input file, an API answering 4xx, the reject-rate guard, a config error,
a failed `fail` quality check, a database refusing our credentials or rights. Everything else (network,
timeouts, locks, a server restarting) is re-raised unchanged and retried by Airflow.

How an error is recognised, in order:
1. it is a `NonRetryable` (InputFileError, RejectRateExceeded, … subclass it);
2. it says so itself: an attribute `retryable` that is False (ApiError of a 4xx answer);
3. its class is registered with `register_non_retryable` (a library class we cannot subclass);
4. `include.database.classify_db_error(err)` classifies it or its cause (SQLSTATE class 28, 42501).
No Airflow import at module level: include/ modules stay importable without Airflow.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


class NonRetryable(Exception):
    """Base of the errors a retry cannot fix; the task fails at once with the error's message."""

    retryable = False


_REGISTERED: set[type[BaseException]] = set()


def register_non_retryable(*types: type[BaseException]) -> None:
    """Declare exception classes (and their subclasses) non-retryable."""
    _REGISTERED.update(types)


def is_non_retryable(err: BaseException) -> bool:
    """Whether `err` is an error a retry cannot fix (see the module docstring for the rules)."""
    if isinstance(err, NonRetryable) or getattr(err, "retryable", True) is False:
        return True
    if isinstance(err, tuple(_REGISTERED)):
        return True
    from include.database import classify_db_error  # here: include.database imports this module

    # A database error usually arrives wrapped (LoadError from psycopg.Error): classify the whole cause chain.
    cause: BaseException | None = err
    while cause is not None:
        if classify_db_error(cause) is not None:
            return True
        cause = cause.__cause__
    return False


def _message(err: BaseException) -> str:
    return str(err) or type(err).__name__


@contextmanager
def fail_fast_on_non_retryable() -> Iterator[None]:
    """Run a task body: a non-retryable error becomes AirflowFailException (no retry); others are re-raised.

    Raises:
        AirflowFailException: the body raised a non-retryable error (chained to it, same message).
    """
    try:
        yield
    except Exception as err:  # classified, then either converted or re-raised unchanged
        if not is_non_retryable(err):
            raise
        from airflow.sdk.exceptions import AirflowFailException  # Airflow only where it is needed

        log.error("non-retryable %s: failing the task without retry", type(err).__name__)
        raise AirflowFailException(_message(err)) from err


# The short name the DAGs use.
fail_fast = fail_fast_on_non_retryable
