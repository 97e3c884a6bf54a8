"""A real Airflow 3 deployment on this machine, as a context manager: no Docker, real processes.

    from scripts.airflow_stack import AirflowStack

    with AirflowStack(run_dir) as stack:                       # LocalExecutor, all components
        stack.api("GET", "/api/v2/dags").json()
    with AirflowStack(run_dir, executor="CeleryExecutor", celery_workers=2) as stack: ...
    with AirflowStack(run_dir, components=("api-server",)) as stack: ...   # just a real REST API

What it does, in order:

1. starts an embedded PostgreSQL (`include.local_postgres`) in ``run_dir/pgdata`` and creates the
   ``airflow`` metadata database and the ``ecommerce_db`` warehouse database;
2. runs the "init" component: with the FAB auth manager (the default, as in production) the production
   init script ``scripts/container_init_airflow.sh`` itself (``airflow db migrate`` incl. FAB's tables,
   an Admin and a Viewer user from secrets, pools); with ``auth_manager="simple"`` the simple auth
   manager's passwords file and ``airflow db migrate``;
3. starts, from this venv, ``airflow api-server``, ``scheduler``, ``dag-processor`` and ``triggerer``
   (the ones in `components`), and for Celery a password-protected ``redis-server`` and
   `celery_workers` workers, on free ports; each component's output goes to ``run_dir/logs/<name>.log``.
   Each component gets its OWN environment: the secret-free settings every process shares
   (`common_env`) plus only the secret-bearing settings of `COMPONENT_SECRETS` (what production
   gives it: docker-compose.prod.yml must match, tests/deploy/test_deploy_components.py checks), and
   its own ``AIRFLOW_CONFIG`` file, as a container has its own ``airflow.cfg``: Airflow writes a random
   ``fernet_key``/``jwt_secret``/``secret_key`` into a new airflow.cfg, so a shared file would hand
   every process the same secrets behind the policy's back;
4. waits until ``/api/v2/monitor/health`` reports the started components healthy (and the Celery
   workers said "ready");
5. on exit stops every process it started, by pid (each runs in its own process group), then
   PostgreSQL; if the block raised, it first prints the tail of every component log.

Interface: `base_url`, `token()`, `api(method, path, **kw)`, `warehouse_url`, `metadata_url`,
`common_env`, `env_for(component)`, `process_env_keys(name)`, `admin_user` / `admin_password`,
`viewer_user` / `viewer_password` (FAB role Viewer), `logs_dir`, `airflow_home`, `print_logs()`, `task_log(...)`.
The warehouse database is migrated at start (``include.migrations.migrate``, as the superuser here):
the DAGs' loader runs no DDL.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from include import local_postgres

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
AIRFLOW_BIN = VENV_BIN / "airflow"

ALL_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
EXECUTORS = ("LocalExecutor", "CeleryExecutor")
ADMIN_USER = "admin"
VIEWER_USER = "monitor"  # FAB role Viewer; the airflow_api connection of the monitoring DAG logs in with it
INIT_SCRIPT = ROOT / "scripts" / "container_init_airflow.sh"
AUTH_MANAGERS = {
    "fab": "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager",
    "simple": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
}

# Settings that carry a credential (a password inside a URL or a JSON connection, a key, a signing secret).
METADATA_CONN = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"
FERNET_KEY = "AIRFLOW__CORE__FERNET_KEY"
JWT_SECRET = "AIRFLOW__API_AUTH__JWT_SECRET"  # noqa: S105 - the name of a setting
API_SECRET_KEY = "AIRFLOW__API__SECRET_KEY"  # noqa: S105 - the name of a setting
CELERY_BROKER = "AIRFLOW__CELERY__BROKER_URL"
CELERY_RESULTS = "AIRFLOW__CELERY__RESULT_BACKEND"
CONN_LOADER = "AIRFLOW_CONN_POSTGRES_DEFAULT"  # warehouse, loader role (DML)
CONN_REPORTING = "AIRFLOW_CONN_POSTGRES_REPORTING"  # warehouse, reporting role (quality/monitoring)
CONN_AIRFLOW_API = "AIRFLOW_CONN_AIRFLOW_API"  # REST API as the Viewer `monitor`
CONN_PRIVACY_KEY = "AIRFLOW_CONN_PRIVACY_KEY"  # key of the erasure tokens (privacy DAGs, the transform)
CONN_BACKUP_KEY = "AIRFLOW_CONN_BACKUP_KEY"  # key of the backup encryption (privacy_maintenance)
ADMIN_PASSWORD = "AIRFLOW_ADMIN_PASSWORD"  # noqa: S105 - the name of a variable
MONITOR_PASSWORD = "AIRFLOW_MONITOR_PASSWORD"  # noqa: S105 - the name of a variable

# The least-privilege policy, per component, on CeleryExecutor (production). `make e2e` runs the whole
# scenario with exactly these (checked in each running process's /proc/<pid>/environ); a secret left out
# here is one the component was shown not to need. docs/e2e.md has the evidence per line.
COMPONENT_SECRETS: dict[str, frozenset[str]] = {
    # migrations (Airflow + FAB), users, pools: nothing is encrypted or signed here
    "init": frozenset({METADATA_CONN, ADMIN_PASSWORD, MONITOR_PASSWORD}),
    # UI/REST API and the task Execution API: validates the JWTs the scheduler signs, decrypts
    # connections/variables for tasks, signs sessions and log-server requests
    "api-server": frozenset({METADATA_CONN, FERNET_KEY, JWT_SECRET, API_SECRET_KEY}),
    # signs each task's Execution-API token; sends to the broker, reads task states from the result backend
    "scheduler": frozenset({METADATA_CONN, JWT_SECRET, CELERY_BROKER, CELERY_RESULTS}),
    # parses DAGs (encrypts trigger/watcher arguments) and runs DAG callbacks (alert incident state in
    # the warehouse); its callbacks use an in-process Execution API that needs no JWT
    "dag-processor": frozenset({METADATA_CONN, FERNET_KEY, CONN_LOADER, CONN_REPORTING}),
    # runs triggers (decrypts their arguments); in-process Execution API, no JWT
    "triggerer": frozenset({METADATA_CONN, FERNET_KEY}),
    # runs tasks: the metadata only through the Execution API with the token that came with the task
    "celery-worker": frozenset(
        {
            CELERY_BROKER,
            CELERY_RESULTS,
            CONN_LOADER,
            CONN_REPORTING,
            CONN_AIRFLOW_API,
            CONN_PRIVACY_KEY,
            CONN_BACKUP_KEY,
        }
    ),
}
# On LocalExecutor the scheduler runs the tasks itself: it also needs what the tasks use.
_TASK_SECRETS = frozenset({CONN_LOADER, CONN_REPORTING, CONN_AIRFLOW_API, CONN_PRIVACY_KEY, CONN_BACKUP_KEY})
SECRET_SETTINGS = frozenset().union(*COMPONENT_SECRETS.values())
# docker-compose.prod.yml service of each component
COMPOSE_SERVICES = {
    "init": "airflow-init",
    "api-server": "airflow-apiserver",
    "scheduler": "airflow-scheduler",
    "dag-processor": "airflow-dag-processor",
    "triggerer": "airflow-triggerer",
    "celery-worker": "airflow-worker",
}
METADATA_DB = "airflow"
WAREHOUSE_DB = "ecommerce_db"
# health key in /api/v2/monitor/health of each component that reports there
_HEALTH_KEYS = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}


class StackError(RuntimeError):
    """A component did not start, died, or the API answered an error."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    env_keys: frozenset[str] = frozenset()
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.popen.pid


class AirflowStack:
    """Real Airflow components on an embedded PostgreSQL; see the module docstring.

    Args:
        run_dir: everything of this stack lives here (database, AIRFLOW_HOME, logs, staging, reports).
        executor: ``"LocalExecutor"`` or ``"CeleryExecutor"``.
        celery_workers: number of Celery workers (CeleryExecutor only), named ``worker1``, ``worker2``...
        components: which of `ALL_COMPONENTS` to start; ``("api-server",)`` gives just the REST API.
        dags_folder: the DAGs the processes see (default: the project's ``dags/``).
        parallelism: ``[core] parallelism`` (LocalExecutor forks this many workers; keep it low).
        worker_concurrency: processes per Celery worker.
        extra_env: added to (and overriding) the secret-free environment of every process.
        startup_timeout: seconds to wait for health after the processes are started.
        auth_manager: ``"fab"`` (production's; users from the init script) or ``"simple"`` (faster start).
    """

    def __init__(
        self,
        run_dir: Path | str,
        *,
        executor: str = "LocalExecutor",
        celery_workers: int = 2,
        components: Iterable[str] = ALL_COMPONENTS,
        dags_folder: Path | str | None = None,
        parallelism: int = 4,
        worker_concurrency: int = 2,
        extra_env: Mapping[str, str] | None = None,
        startup_timeout: float = 180,
        auth_manager: str = "fab",
    ) -> None:
        if executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
        if auth_manager not in AUTH_MANAGERS:
            raise ValueError(f"auth_manager must be one of {sorted(AUTH_MANAGERS)}, got {auth_manager!r}")
        self.auth_manager = auth_manager
        self.components = tuple(components)
        unknown = set(self.components) - set(ALL_COMPONENTS)
        if unknown:
            raise ValueError(f"unknown components {sorted(unknown)}; known: {ALL_COMPONENTS}")
        self.run_dir = Path(run_dir).resolve()
        self.executor = executor
        self.celery_workers = celery_workers if executor == "CeleryExecutor" else 0
        self.dags_folder = Path(dags_folder or ROOT / "dags").resolve()
        self.parallelism = parallelism
        self.worker_concurrency = worker_concurrency
        self.extra_env = dict(extra_env or {})
        self.startup_timeout = startup_timeout

        self.airflow_home = self.run_dir / "airflow_home"
        self.logs_dir = self.run_dir / "logs"
        self.pg_dir = self.run_dir / "pgdata"
        self.admin_user = ADMIN_USER
        self.admin_password = secrets.token_urlsafe(12)
        self.viewer_user = VIEWER_USER
        self.viewer_password = secrets.token_urlsafe(12)
        self.api_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.api_port}"
        self.worker_names = [f"worker{i}" for i in range(1, self.celery_workers + 1)]
        self.common_env: dict[str, str] = {}
        self._secrets: dict[str, str] = {}
        self.metadata_url = ""
        self.warehouse_url = ""
        self.timings: dict[str, float] = {}
        self._server: local_postgres.LocalServer | None = None
        self._procs: list[_Proc] = []
        self._token: str | None = None
        self._session = requests.Session()

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> AirflowStack:
        try:
            self.start()
        except BaseException:
            self.print_logs()
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.print_logs()
        self.stop()

    def start(self) -> None:
        """Database, AIRFLOW_HOME, migration, processes, health: see the module docstring."""
        t0 = time.monotonic()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.airflow_home.mkdir(parents=True, exist_ok=True)
        self._server = local_postgres.start(self.pg_dir)
        self.metadata_url = local_postgres.create_database(self._server, METADATA_DB)
        self.warehouse_url = local_postgres.create_database(self._server, WAREHOUSE_DB)
        import psycopg

        from include.migrations import migrate

        with psycopg.connect(self.warehouse_url, autocommit=True) as conn:
            migrate(conn)
        self._build_env()
        if self.auth_manager == "fab":
            self._run_once("init", ["bash", str(INIT_SCRIPT)], timeout=420, component="init")
        else:
            (self.airflow_home / "simple_auth_manager_passwords.json.generated").write_text(
                json.dumps({self.admin_user: self.admin_password, self.viewer_user: self.viewer_password})
            )
            self._run_once("init", [str(AIRFLOW_BIN), "db", "migrate"], timeout=300, component="init")
        self.timings["db_migrate"] = time.monotonic() - t0

        t1 = time.monotonic()
        if self.executor == "CeleryExecutor":
            self._start_redis()
        for name in self.components:
            self._spawn(name, [str(AIRFLOW_BIN), *self._command(name)], component=name)
        for i, worker in enumerate(self.worker_names, start=1):
            self._spawn(
                f"celery-{worker}",
                [
                    str(AIRFLOW_BIN),
                    "celery",
                    "worker",
                    "-H",
                    f"{worker}@%h",
                    "-c",
                    str(self.worker_concurrency),
                    "--without-mingle",
                    "--without-gossip",
                ],
                env={
                    "ECOM_E2E_WORKER_NAME": worker,
                    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self._worker_log_ports[i]),
                },
                component="celery-worker",
            )
        self.wait_healthy(self.startup_timeout)
        self.timings["healthy"] = time.monotonic() - t1

    def stop(self) -> None:
        """Stop every started process by pid (SIGTERM to its group, SIGKILL after 30 s), then PostgreSQL."""
        for proc in reversed(self._procs):
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in reversed(self._procs):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            # children (LocalExecutor workers, Celery pool, log servers) share the group
            _signal_group(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=5)
        self._procs.clear()
        self._session.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                local_postgres.stop(self.pg_dir)
            self._server = None

    # ------------------------------------------------------------------ environment
    def _build_env(self) -> None:
        """`common_env` (no secrets) and the secret values; `env_for` combines them per component."""
        if self._server is None:
            raise StackError("PostgreSQL is not started")
        # ports of the log servers: never the fixed defaults (8793/8794), which another stack may hold
        self._worker_log_ports = [free_port() for _ in range(self.celery_workers + 1)]
        self.redis_port = free_port() if self.executor == "CeleryExecutor" else 0
        self.redis_password = secrets.token_hex(16)
        staging = self.run_dir / "staging"
        reports = self.run_dir / "reports"
        (self.run_dir / "config").mkdir(parents=True, exist_ok=True)
        staging.mkdir(parents=True, exist_ok=True)
        reports.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        pythonpath = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env.update(
            {
                "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
                "PYTHONPATH": os.pathsep.join(pythonpath),  # scripts.e2e_hostname for hostname_callable
                "AIRFLOW_HOME": str(self.airflow_home),
                "AIRFLOW__CORE__EXECUTOR": self.executor,
                "AIRFLOW__CORE__AUTH_MANAGER": AUTH_MANAGERS[self.auth_manager],
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.admin_user}:admin,{self.viewer_user}:viewer",
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "scripts.e2e_hostname.get_hostname",
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                # A task parses its DAG file before it runs; on a shared 2-core machine under load (load average
                # 13 seen) that took > 30 s (the default) and the task failed with "Dag not found during start up".
                "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
                "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "180",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self._worker_log_ports[0]),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW_ADMIN_USER": self.admin_user,
                "ECOM_STAGING_DIR": str(staging),
                "ECOM_REPORTS_DIR": str(reports),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.executor == "CeleryExecutor":
            env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = str(self.worker_concurrency)
        env.update(self.extra_env)
        leaked = SECRET_SETTINGS & env.keys()
        if leaked:
            raise StackError(f"secret-bearing settings must not be in the shared environment: {sorted(leaked)}")
        self.common_env = env

        api_conn = {"conn_type": "http", "host": self.base_url, "login": self.viewer_user}
        redis = f"redis://:{self.redis_password}@127.0.0.1:{self.redis_port}"
        self._secrets = {
            METADATA_CONN: self._server.url(METADATA_DB, scheme="postgresql+psycopg2"),
            FERNET_KEY: _fernet_key(),
            JWT_SECRET: secrets.token_urlsafe(32),
            API_SECRET_KEY: secrets.token_urlsafe(24),
            CELERY_BROKER: f"{redis}/0",
            # task states go to Redis, not to the metadata database: a worker holds no metadata password
            CELERY_RESULTS: f"{redis}/1",
            # Until the warehouse roles exist (issue 12 (c)), both connections use the database owner.
            CONN_LOADER: self._server.url(WAREHOUSE_DB),
            CONN_REPORTING: self._server.url(WAREHOUSE_DB),
            CONN_AIRFLOW_API: json.dumps({**api_conn, "password": self.viewer_password}),
            CONN_PRIVACY_KEY: json.dumps({"conn_type": "generic", "password": secrets.token_urlsafe(32)}),
            CONN_BACKUP_KEY: json.dumps({"conn_type": "generic", "password": secrets.token_urlsafe(32)}),
            ADMIN_PASSWORD: self.admin_password,
            MONITOR_PASSWORD: self.viewer_password,
        }

    def secret_keys_for(self, component: str) -> frozenset[str]:
        """The secret-bearing settings `component` gets on this stack's executor."""
        keys = COMPONENT_SECRETS.get(component, frozenset())  # redis-server: none
        if self.executor != "CeleryExecutor":
            keys = keys - {CELERY_BROKER, CELERY_RESULTS}
            if component == "scheduler":  # LocalExecutor: the scheduler's children run the tasks
                keys = keys | _TASK_SECRETS
        return keys

    def env_for(self, component: str) -> dict[str, str]:
        """The whole environment of one component: `common_env`, its secrets, its own airflow.cfg."""
        env = dict(self.common_env)
        env.update({k: self._secrets[k] for k in self.secret_keys_for(component)})
        env["AIRFLOW_CONFIG"] = str(self.run_dir / "config" / f"{component}.cfg")
        return env

    def process_env_keys(self, name: str) -> frozenset[str]:
        """Names of the environment variables process `name` was started with (its whole environment).

        Not read back from /proc/<pid>/environ: setproctitle (api-server, Celery) overwrites that area.
        """
        return next(p.env_keys for p in self._procs if p.name == name)

    def _command(self, name: str) -> list[str]:
        if name == "api-server":
            return ["api-server", "--host", "127.0.0.1", "--port", str(self.api_port), "--workers", "1"]
        return [name]

    # ------------------------------------------------------------------ processes
    def _spawn(self, name: str, argv: list[str], *, component: str, env: Mapping[str, str] | None = None) -> _Proc:
        log_path = self.logs_dir / f"{name}.log"
        full_env = {**self.env_for(component), **(env or {})}
        with open(log_path, "ab") as out:
            popen = subprocess.Popen(
                argv,
                env=full_env,
                cwd=self.run_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() ends it and its children by this pid
            )
        proc = _Proc(name, popen, log_path, frozenset(full_env))
        self._procs.append(proc)
        return proc

    def _run_once(self, name: str, argv: list[str], timeout: float, *, component: str) -> None:
        proc = self._spawn(name, argv, component=component)
        try:
            rc = proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise StackError(f"{name} did not finish within {timeout:.0f}s; log: {proc.log_path}") from None
        finally:
            self._procs.remove(proc)
            _signal_group(proc.pid, signal.SIGKILL)
        if rc != 0:
            raise StackError(f"{name} failed (exit {rc}):\n{_tail(proc.log_path, 40)}")

    def _start_redis(self) -> None:
        redis = shutil.which("redis-server")
        if not redis:
            raise StackError("redis-server not found: `apt-get install -y redis-server` (make e2e does it)")
        data = self.run_dir / "redis"
        data.mkdir(exist_ok=True)
        conf = data / "redis.conf"  # the password in a 0600 file, not on the command line
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"requirepass {self.redis_password}\n")
        self._spawn(
            "redis",
            [
                redis,
                str(conf),
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(data),
                "--daemonize",
                "no",
            ],
            component="redis",
        )
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.redis_port), timeout=1) as s:
                s.sendall(f"AUTH {self.redis_password}\r\nPING\r\n".encode())
                time.sleep(0.1)
                if b"+PONG" in s.recv(64):
                    return
            self._check_alive()
            if time.monotonic() > deadline:
                raise StackError("redis-server did not answer PING within 20s")
            time.sleep(0.2)

    def _check_alive(self) -> None:
        for proc in self._procs:
            rc = proc.popen.poll()
            if rc is not None:
                raise StackError(f"{proc.name} (pid {proc.pid}) exited with {rc}:\n{_tail(proc.log_path, 60)}")

    def pids(self) -> dict[str, int]:
        """Name -> pid of every process this stack started and still tracks."""
        return {p.name: p.pid for p in self._procs}

    # ------------------------------------------------------------------ health
    def health(self) -> dict[str, Any]:
        """The JSON of ``/api/v2/monitor/health`` (no authentication needed)."""
        resp = self._session.get(f"{self.base_url}/api/v2/monitor/health", timeout=10)
        resp.raise_for_status()
        return dict(resp.json())

    def wait_healthy(self, timeout: float) -> dict[str, Any]:
        """Wait until every started component reports healthy (and Celery workers are ready)."""
        deadline = time.monotonic() + timeout
        last: Any = "no answer yet"
        while True:
            self._check_alive()
            missing: list[str] = []
            if "api-server" in self.components:
                try:
                    last = self.health()
                except (requests.RequestException, ValueError) as exc:
                    last = repr(exc)
                    missing.append("api-server")
                else:
                    if last.get("metadatabase", {}).get("status") != "healthy":
                        missing.append("metadatabase")
                    for comp, key in _HEALTH_KEYS.items():
                        if comp in self.components and (last.get(key) or {}).get("status") != "healthy":
                            missing.append(comp)
            for worker in self.worker_names:
                if " ready." not in (self.logs_dir / f"celery-{worker}.log").read_text(errors="replace"):
                    missing.append(f"celery-{worker}")
            if not missing:
                return last if isinstance(last, dict) else {}
            if time.monotonic() > deadline:
                raise StackError(f"not healthy after {timeout:.0f}s: {missing}; last health answer: {last}")
            time.sleep(1)

    # ------------------------------------------------------------------ REST API
    def login(self, username: str, password: str) -> requests.Response:
        """``POST /auth/token`` with a username and password (FAB or simple auth manager); the raw answer."""
        return self._session.post(
            f"{self.base_url}/auth/token", json={"username": username, "password": password}, timeout=30
        )

    def token(self, refresh: bool = False) -> str:
        """A JWT from ``POST /auth/token`` for the admin user (cached)."""
        if self._token is None or refresh:
            resp = self.login(self.admin_user, self.admin_password)
            if resp.status_code not in (200, 201):
                raise StackError(f"POST /auth/token -> {resp.status_code}: {resp.text[:500]}")
            self._token = str(resp.json()["access_token"])
        return self._token

    def api(self, method: str, path: str, *, check: bool = True, timeout: float = 30, **kw: Any) -> requests.Response:
        """Authenticated request to ``base_url + path`` (e.g. ``"/api/v2/dags"``); `kw` go to `requests`.

        Raises `StackError` with the status and body when `check` and the answer is not 2xx.
        """
        headers = dict(kw.pop("headers", None) or {})
        for attempt in (1, 2):
            headers["Authorization"] = f"Bearer {self.token(refresh=attempt == 2)}"
            resp = self._session.request(method, f"{self.base_url}{path}", headers=headers, timeout=timeout, **kw)
            if resp.status_code != 401:
                break
        if check and not resp.ok:
            raise StackError(f"{method} {path} -> {resp.status_code}: {resp.text[:1000]}")
        return resp

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1) -> str:
        """The log of one task try as plain text (events of the structured log, one per line)."""
        resp = self.api(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": "true", "map_index": map_index},
            headers={"Accept": "application/json"},
            check=False,
        )
        if not resp.ok:
            return f"(log not available: {resp.status_code} {resp.text[:300]})"
        return "\n".join(_format_log_item(item) for item in resp.json().get("content", []))

    # ------------------------------------------------------------------ logs
    def print_logs(self, lines: int = 60, file: Any = None) -> None:
        """Print the tail of every component log (called on failure)."""
        out = file or sys.stderr
        if not self.logs_dir.exists():
            return
        for path in sorted(self.logs_dir.glob("*.log")):
            print(f"\n===== {path.name} (last {lines} lines; full log: {path}) =====", file=out)
            print(_tail(path, lines), file=out)
        pg_log = self.pg_dir / "server.log"
        if pg_log.exists():
            print(f"\n===== postgres server.log (last 20 lines) =====\n{_tail(pg_log, 20)}", file=out)
        out.flush()


_LOG_NOISE = {
    "event",
    "timestamp",
    "level",
    "logger",
    "error_detail",
    "dag_id",
    "run_id",
    "task_id",
    "ti_id",
    "map_index",
    "try_number",
    "filename",
    "lineno",
    "loc",
}


def _format_log_item(item: Any) -> str:
    """One structured task-log event as text; an exception is shown like a Python traceback."""
    if not isinstance(item, dict):
        return str(item)
    extra = {k: v for k, v in item.items() if k not in _LOG_NOISE}
    head = " ".join(
        str(x)
        for x in (
            item.get("timestamp", ""),
            item.get("level", ""),
            item.get("event", ""),
            json.dumps(extra, default=str) if extra else "",
        )
        if x
    )
    lines = [head]
    for exc in item.get("error_detail") or []:
        lines.append("  Traceback:")
        lines += [f"    {f.get('filename')}:{f.get('lineno')} in {f.get('name')}" for f in exc.get("frames", [])]
        lines.append(f"  {exc.get('exc_type')}: {exc.get('exc_value')}")
    return "\n".join(lines)


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])
