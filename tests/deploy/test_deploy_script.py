"""scripts/deploy.sh, run against stand-ins for `docker` and `curl` (no Docker engine here):
it validates, builds, starts, waits for /api/v2/monitor/health, prints the UI address, and never
removes volumes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.deploy.helpers import ROOT, run

DOCKER_STUB = """#!/usr/bin/env bash
echo "docker $*" >> "$CALLS"
case "$*" in
  *" port airflow-apiserver 8080"*) echo "127.0.0.1:8080" ;;
esac
exit 0
"""

CURL_STUB = """#!/usr/bin/env bash
echo "curl $*" >> "$CALLS"
n=$(cat "$CURL_COUNT" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "$CURL_COUNT"
if [ "$n" -lt 2 ]; then exit 7; fi   # first try: connection refused
echo "$HEALTH_BODY"
"""

HEALTHY = (
    '{"metadatabase": {"status": "healthy"}, "scheduler": {"status": "healthy"}, '
    '"triggerer": {"status": "healthy"}, "dag_processor": {"status": "healthy"}}'
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the files deploy.sh reads, with stub docker/curl first on PATH."""
    proj = tmp_path / "proj"
    (proj / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "deploy.sh", proj / "scripts" / "deploy.sh")
    shutil.copy(ROOT / "docker-compose.prod.yml", proj / "docker-compose.prod.yml")
    env_file = proj / ".env"
    env_file.write_text("AIRFLOW_FERNET_KEY=x\n", encoding="utf-8")
    env_file.chmod(0o600)
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for name, body in (("docker", DOCKER_STUB), ("curl", CURL_STUB)):
        (stubs / name).write_text(body, encoding="utf-8")
        (stubs / name).chmod(0o755)
    return proj


def _deploy(project: Path, health: str = HEALTHY, **extra: str) -> tuple[int, str, list[str]]:
    tmp = project.parent
    env = {
        "PATH": f"{tmp / 'bin'}:{os.environ['PATH']}",
        "CALLS": str(tmp / "calls.log"),
        "CURL_COUNT": str(tmp / "curl.count"),
        "HEALTH_BODY": health,
        "HEALTH_TIMEOUT": "8",
        "HEALTH_INTERVAL": "0.1",
        **extra,
    }
    res = run(["bash", str(project / "scripts" / "deploy.sh")], env=env, cwd=project, timeout=60)
    calls_file = tmp / "calls.log"
    calls = calls_file.read_text(encoding="utf-8").splitlines() if calls_file.exists() else []
    return res.returncode, res.stdout + res.stderr, calls


def test_deploy_builds_starts_waits_for_health_and_prints_the_ui(project: Path) -> None:
    rc, out, calls = _deploy(project, WORKERS="3")
    assert rc == 0, out
    compose_calls = [c for c in calls if c.startswith("docker compose --env-file .env -f docker-compose.prod.yml")]
    verbs = [c.split("docker-compose.prod.yml ", 1)[1].split()[0] for c in compose_calls]
    assert verbs[:3] == ["config", "build", "up"], calls
    up = next(c for c in compose_calls if " up " in c)
    assert "-d" in up.split() and "--scale airflow-worker=3" in up
    assert any("http://127.0.0.1:8080/api/v2/monitor/health" in c for c in calls if c.startswith("curl"))
    assert "Airflow UI: http://127.0.0.1:8080/" in out


def test_deploy_never_removes_volumes(project: Path) -> None:
    rc, out, calls = _deploy(project)
    assert rc == 0, out
    for call in calls:
        assert " down" not in call and "prune" not in call and " -v" not in call and "--volumes" not in call, call
    script = (ROOT / "scripts" / "deploy.sh").read_text(encoding="utf-8")
    code = "\n".join(ln for ln in script.splitlines() if not ln.lstrip().startswith("#"))
    assert "prune" not in code and "down" not in code and "volume rm" not in code


def test_deploy_fails_when_airflow_stays_unhealthy(project: Path) -> None:
    body = HEALTHY.replace('"scheduler": {"status": "healthy"}', '"scheduler": {"status": "unhealthy"}')
    rc, out, _ = _deploy(project, health=body, HEALTH_TIMEOUT="1")
    assert rc != 0
    assert "not healthy" in out


def test_deploy_refuses_to_run_without_the_env_file(project: Path) -> None:
    (project / ".env").unlink()
    rc, out, calls = _deploy(project)
    assert rc != 0 and ".env not found" in out
    assert not any(" up " in c or " build" in c for c in calls)


def test_deploy_rejects_a_bad_worker_count(project: Path) -> None:
    rc, out, _ = _deploy(project, WORKERS="0")
    assert rc != 0 and "WORKERS must be a positive integer" in out
