"""The error policy's classification and conversion, pinned for mutation testing (include/errors.py)."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from include.errors import NonRetryable, fail_fast_on_non_retryable, is_non_retryable, register_non_retryable


class _Flagged(Exception):
    retryable = False


class _FlaggedRetryable(Exception):
    retryable = True


def test_registration_covers_the_class_and_its_subclasses() -> None:
    # classes made per call: the registry is process-wide and this test may run more than once in one process
    class _Registered(Exception):
        pass

    class _Child(_Registered):
        pass

    class Other(Exception):
        pass

    assert not is_non_retryable(_Child("x"))
    register_non_retryable(_Registered, Other)
    assert is_non_retryable(_Registered("x"))
    assert is_non_retryable(_Child("x"))
    assert is_non_retryable(Other("x"))
    assert not is_non_retryable(ValueError("x"))


def test_flags_and_cause_chain() -> None:
    assert is_non_retryable(NonRetryable("x"))
    assert is_non_retryable(_Flagged("x"))
    assert not is_non_retryable(_FlaggedRetryable("x"))
    assert not is_non_retryable(RuntimeError("x"))
    wrapped = RuntimeError("outer")
    wrapped.__cause__ = ValueError("inner")
    assert not is_non_retryable(wrapped)


def test_fail_fast_converts_with_the_message_or_the_class_name() -> None:
    with pytest.raises(AirflowFailException) as err, fail_fast_on_non_retryable():
        raise NonRetryable("bad input")
    assert str(err.value) == "bad input"
    assert isinstance(err.value.__cause__, NonRetryable)
    with pytest.raises(AirflowFailException) as err, fail_fast_on_non_retryable():
        raise _Flagged()
    assert str(err.value) == "_Flagged"
    with pytest.raises(ValueError, match="retry me"), fail_fast_on_non_retryable():
        raise ValueError("retry me")


def test_a_permission_error_anywhere_in_the_cause_chain_is_non_retryable() -> None:
    import psycopg

    denied = psycopg.errors.InsufficientPrivilege("permission denied for table orders")
    assert is_non_retryable(denied)
    middle = RuntimeError("load failed")
    middle.__cause__ = denied
    outer = RuntimeError("task failed")
    outer.__cause__ = middle
    assert is_non_retryable(outer)
    other = RuntimeError("task failed")
    other.__cause__ = psycopg.errors.SerializationFailure("retry me")
    assert not is_non_retryable(other)
