"""record_etl_failure's arguments from real Airflow-shaped failures: the project's exception, not the wrapper."""

from __future__ import annotations

from types import SimpleNamespace

from airflow.sdk.exceptions import AirflowFailException

from include.extract import InputFileError
from include.run_failures import failure_of, record_etl_failure


def _wrapped() -> AirflowFailException:
    try:
        try:
            raise InputFileError("orders.csv", "missing required column(s) ['quantity']", line=1)
        except InputFileError as err:
            raise AirflowFailException(str(err)) from err
    except AirflowFailException as wrapper:
        return wrapper


def test_task_context_gives_the_root_exception() -> None:
    ti = SimpleNamespace(task_id="extract_orders", run_id="manual__1")
    run_id, step, error = failure_of({"ti": ti, "run_id": "manual__1", "exception": _wrapped()})
    assert (run_id, step) == ("manual__1", "extract_orders")
    assert isinstance(error, InputFileError) and error.file == "orders.csv"


def test_dag_context_without_exception_gives_one_scrubbed_line() -> None:
    ti = SimpleNamespace(task_id="load_data", run_id="manual__2")
    run_id, step, error = failure_of({"ti": ti, "run_id": "manual__2", "reason": "task_failure for a@b.com"})
    assert (run_id, step) == ("manual__2", "load_data")
    assert error == "DagRunFailed: task load_data failed (task_failure for <email>)"


def test_the_callback_never_raises_when_the_warehouse_is_unreachable(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_DEFAULT", "postgresql://u:p@127.0.0.1:1/none")
    record_etl_failure({"run_id": "manual__3"})  # logs a warning, never raises
