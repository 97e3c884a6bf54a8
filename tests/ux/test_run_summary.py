"""`make run`'s failure summary: real `airflow dags test` runs on broken inputs, the exact reason lines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from include.notifications import exception_reason
from include.run_summary import failure_from_log, reason_line, results_block

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "raw"


def _run_etl(tmp_path: Path, raw: Path, db_url: str) -> Path:
    """`airflow dags test` of the ETL DAG exactly as `make run` does it: output to a log file."""
    log_file = tmp_path / "etl.log"
    env = {
        **os.environ,
        "AIRFLOW_CONN_POSTGRES_DEFAULT": db_url,
        "ECOM_RAW_DATA_DIR": str(raw),
        "ECOM_STAGING_DIR": str(tmp_path / "staging"),
        "ECOM_REPORTS_DIR": str(tmp_path / "reports"),
    }
    with log_file.open("w") as out:
        rc = subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), "dags", "test", "etl_ecommerce_pipeline"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=600,
            check=False,
        ).returncode
    assert rc != 0, log_file.read_text()[-3000:]
    return log_file


def _copy_sample(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    raw.mkdir()
    for p in SAMPLE.iterdir():
        (raw / p.name).write_bytes(p.read_bytes())
    return raw


def _why(log_file: Path, tmp_path: Path) -> list[str]:
    lines = results_block({"etl_ecommerce_pipeline": (1, 12.0, log_file)}, tmp_path)
    assert lines[1].startswith("etl_ecommerce_pipeline    FAILED")
    return lines[lines.index("why:") + 1 :]


@pytest.mark.slow
def test_missing_raw_dir_names_the_missing_file(tmp_path: Path, fresh_db: str, airflow_metadata_db: str) -> None:
    raw = tmp_path / "no-such-dir"
    log_file = _run_etl(tmp_path, raw, fresh_db)
    assert _why(log_file, tmp_path) == [
        # The claim (products first) names the first required source with no file that was never loaded.
        f"  etl_ecommerce_pipeline: task claim_files failed: MissingInputError: required input for 'products' not found:"
        f" no file matches 'products*.json' in {raw} and none was ever loaded",
        "    what to do: docs/runbook.md#missing-input",
        "    log: etl.log",
    ]


@pytest.mark.slow
def test_truncated_json_names_file_and_item(tmp_path: Path, fresh_db: str, airflow_metadata_db: str) -> None:
    raw = _copy_sample(tmp_path)
    text = (raw / "user_sessions.json").read_text()
    (raw / "user_sessions.json").write_text(text[: len(text) // 2])
    log_file = _run_etl(tmp_path, raw, fresh_db)
    why = _why(log_file, tmp_path)
    # The project's message (file, item), not ijson's bare "premature EOF" nor Airflow's wrapper.
    assert why[0].startswith(
        "  etl_ecommerce_pipeline: task extract_file failed: InputFileError: user_sessions.json: invalid JSON after item "
    )
    assert why[0].endswith(": parse error: premature EOF")
    assert why[1:] == ["    what to do: docs/runbook.md#input-file-error", "    log: etl.log"]


@pytest.mark.slow
def test_wrong_csv_header_names_the_missing_column(tmp_path: Path, fresh_db: str, airflow_metadata_db: str) -> None:
    raw = _copy_sample(tmp_path)
    lines = (raw / "orders.csv").read_text().splitlines()
    lines[0] = lines[0].replace("quantity", "qty")
    (raw / "orders.csv").write_text("\n".join(lines) + "\n")
    log_file = _run_etl(tmp_path, raw, fresh_db)
    assert _why(log_file, tmp_path) == [
        "  etl_ecommerce_pipeline: task extract_file failed: InputFileError: orders.csv, line 1: missing required"
        " column(s) ['quantity']; header has ['order_reference', 'customer_email', 'product_id', 'qty', 'unit_price',"
        " 'order_date', 'status', 'payment_method']",
        "    what to do: docs/runbook.md#input-file-error",
        "    log: etl.log",
    ]
    # The alert carries the same reason (built by the same function from the exception object).
    failure = failure_from_log(log_file)
    assert failure is not None
    from airflow.sdk.exceptions import AirflowFailException

    from include import pipeline
    from include.config_loader import load_config
    from include.extract import InputFileError

    os.environ["ECOM_RAW_DATA_DIR"] = str(raw)
    try:
        with pytest.raises(InputFileError) as caught:
            pipeline.extract("orders", load_config(), tmp_path / "direct")
    finally:
        del os.environ["ECOM_RAW_DATA_DIR"]
    wrapped = AirflowFailException(str(caught.value))  # what the DAG's fail-fast raises
    wrapped.__cause__ = caught.value
    assert exception_reason(wrapped) == failure.reason + " (runbook: docs/runbook.md#input-file-error)"


def test_reason_line_scrubs_secrets_and_emails() -> None:
    line = reason_line(
        "psycopg.OperationalError",
        "connection to postgresql://etl:hunter2@db.example.com:5432/x failed for jane@example.com\nDETAIL: more",
    )
    assert line == "OperationalError: connection to postgresql://***@db.example.com:5432/x failed for <email>"


def test_a_log_without_a_task_error_says_so(tmp_path: Path) -> None:
    log_file = tmp_path / "x.log"
    log_file.write_text("2026-01-01T00:00:00Z [info] nothing here\n")
    assert _why(log_file, tmp_path) == ["  etl_ecommerce_pipeline: no task error found in the log", "    log: x.log"]
