"""Fixtures of the API tests: stores with a served run, keys of every role, and real servers (uvicorn subprocesses)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

# The store tests' fixtures (pg_admin_url, pg_schema_url, store_url) serve these tests too.
from tests.store.conftest import pg_admin_url, pg_schema_url  # noqa: F401

from nextmove.playbook import Playbook
from nextmove.playbook.loader import load_playbook
from nextmove.store import RecommendationRecord, RunRecord, Store, open_store
from nextmove.store.keys import new_api_key

CHEAP_HASH = "scrypt:1024:8:1"
"""Keys for tests hash cheaply; the CLI test covers the default cost."""
OWNERS = ("ana", "ben", "cleo")
AS_OF = datetime(2026, 6, 1, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def seed_run(
    store: Store,
    playbook: Playbook,
    *,
    run_id: str = "run-1",
    accounts: int = 30,
    seed: int = 0,
    control_every: int = 10,
    as_of: datetime = AS_OF,
    account_ids: list[str] | None = None,
    owners: tuple[str, ...] = OWNERS,
    book_source: str = "tests",
) -> list[RecommendationRecord]:
    """Save a succeeded run with one recommendation per account, receipts in the agreed shape.

    The run says its book was read from ``book_source``. Values come from a seeded generator over
    the playbook's own actions; every fourth account has its second-best action blocked by an
    eligibility rule; every ``control_every``-th is in the control cohort (its action is the
    lifecycle default, or none).
    """
    rng = np.random.default_rng(seed)
    ids = account_ids if account_ids is not None else [f"acct-{i:03d}" for i in range(accounts)]
    actions = playbook.action_ids
    objectives = list(playbook.objectives)
    recs = []
    for i, account_id in enumerate(ids):
        values = rng.normal(800.0, 400.0, len(actions))
        order = np.argsort(-values)
        best = actions[order[0]]
        in_control = control_every > 0 and i % control_every == control_every - 1
        default = actions[i % len(actions)] if i % 3 else "none"
        chosen = default if in_control else best
        chosen_value = float(values[actions.index(chosen)]) if chosen != "none" else 0.0
        alternatives = []
        for rank, k in enumerate(order):
            if actions[k] == chosen:
                continue
            blocked = rank == 1 and i % 4 == 0
            alternatives.append(
                {
                    "action_id": actions[k],
                    "variant": None,
                    "value_usd": float(values[k]),
                    "low": float(values[k] - 300.0),
                    "high": float(values[k] + 300.0),
                    "why": "rule" if blocked else "lower_value",
                    "reason": "not eligible: arr > 1000000" if blocked else "lower projected value",
                }
            )
        if chosen != "none":
            alternatives.append(
                {"action_id": "none", "variant": None, "value_usd": 0.0, "low": 0.0, "high": 0.0, "why": "lower_value"}
            )
        evidence = {
            "schema": 1,
            "action_id": chosen,
            "variant": None,
            "arm": "control" if in_control else "model",
            "propensity": 1.0 if in_control else 0.9,
            "model_action_id": best,
            "default_action_id": default,
            "differs_from_default": chosen != default,
            "default_why": "the lifecycle playbook's move for this stage",
            "value_usd": chosen_value,
            "value_low_usd": chosen_value - 300.0,
            "value_high_usd": chosen_value + 300.0,
            "projected": [
                {
                    "objective": o,
                    "outcome": playbook.objectives[o].outcome,
                    "unit": "probability",
                    "without": round(float(rng.uniform(0.05, 0.5)), 4),
                    "with": 0.2,
                    "low": 0.1,
                    "high": 0.3,
                    "effect": -0.05,
                    "effect_usd": 100.0,
                }
                for o in objectives
            ],
            "signals": [{"feature": "arr", "value": 1000.0 * (i + 1), "previous": None, "text": "ARR"}],
            "comparables": [],
            "summary": f"{chosen} for {account_id}",
        }
        recs.append(
            RecommendationRecord(
                run_id=run_id,
                account_id=account_id,
                action_id=chosen,
                arm="control" if in_control else "model",
                propensity=1.0 if in_control else 0.9,
                expected_value_usd=chosen_value,
                value_low_usd=chosen_value - 300.0,
                value_high_usd=chosen_value + 300.0,
                default_action_id=default,
                differs_from_default=chosen != default,
                owner=owners[i % len(owners)],
                evidence=evidence,
                alternatives=alternatives,
                model_version="effect-test",
                health_score=float(20 + (i * 7) % 80),
                health_band=("Critical", "At risk", "Healthy")[i % 3],
            )
        )
    run = RunRecord(
        run_id=run_id,
        book_source=book_source,
        playbook_hash=playbook.content_hash(),
        status="succeeded",
        as_of=as_of,
        created_at=as_of + timedelta(hours=1),
        finished_at=as_of + timedelta(hours=2),
        summary={"accounts": len(ids)},
    )
    store.save_run(run, recs)
    return recs


def ended_process() -> dict[str, object]:
    """A run's ``params["process"]`` naming a process of this host that has ended (a run killed outright)."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return {"host": socket.gethostname(), "pid": gone.pid}


@dataclass
class Keys:
    """One key per role (the manager's team: ana and ben; the CSM: ana)."""

    admin: str
    manager: str
    csm: str
    other_csm: str
    service: str
    ids: dict[str, str] = field(default_factory=dict)

    def of(self, role: str) -> str:
        """The key of ``role`` (``admin``, ``manager``, ``csm``, ``other_csm``, ``service``)."""
        key: str = getattr(self, role)
        return key


def make_keys(store: Store) -> Keys:
    """Create and store a key of every role."""
    made: dict[str, str] = {}
    ids: dict[str, str] = {}
    for name, role, owners in (
        ("admin", "admin", []),
        ("manager", "manager", ["ana", "ben"]),
        ("csm", "csm", ["ana"]),
        ("other_csm", "csm", ["cleo"]),
        ("service", "service", []),
    ):
        key, record = new_api_key(role, owners, name=name, scheme=CHEAP_HASH)
        store.create_api_key(record)
        made[name] = key
        ids[name] = record.key_id
    return Keys(ids=ids, **made)


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def nextmove_command() -> list[str]:
    """How to run the ``nextmove`` command of this environment."""
    script = Path(sys.executable).parent / "nextmove"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from nextmove.cli import main; main()"]


class Server:
    """A real ``nextmove serve`` process on a loopback port."""

    def __init__(self, store_url: str, playbook_path: Path, *, extra: list[str] | None = None, log: Path) -> None:
        self.store_url = store_url
        self.playbook_path = playbook_path
        self.extra = extra or []
        self.log = log
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> Server:
        """Start the process and wait until /healthz answers."""
        command = [
            *nextmove_command(),
            "serve",
            "--port",
            str(self.port),
            "--store",
            self.store_url,
            "--playbook",
            str(self.playbook_path),
            "--refresh-s",
            "0.3",
            "--log-level",
            "warning",
            *self.extra,
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"the server did not answer /healthz within {timeout_s} s:\n{self.log.read_text()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop the process with ``sig`` and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)

    def client(self, key: str | None = None, timeout: float = 30.0) -> httpx.Client:
        """An HTTP client of the server, sending ``key`` if given."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)


@dataclass
class Served:
    """A running server over a seeded store, with keys of every role."""

    server: Server
    keys: Keys
    recs: list[RecommendationRecord]
    store_url: str
    playbook: Playbook
    signal_names: list[str] = field(default_factory=list)
    """Signal names of the server's book, if it has one."""

    def client(self, role: str | None = None) -> httpx.Client:
        """A client with the key of ``role`` (None: no key)."""
        return self.server.client(None if role is None else self.keys.of(role))


@pytest.fixture(scope="session")
def playbook_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in default playbook, as a file."""
    from nextmove.playbook.loader import default_playbook_text

    path = tmp_path_factory.mktemp("playbook") / "playbook.toml"
    path.write_text(default_playbook_text(), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def playbook(playbook_path: Path) -> Playbook:
    """The built-in default playbook."""
    return load_playbook(playbook_path)


def _pg_url(admin_url: str) -> Iterator[str]:
    import uuid

    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    schema = f"nextmove_api_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(admin_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty store URL on each backend, for one test module."""
    if request.param == "sqlite":
        yield f"sqlite:///{(tmp_path_factory.mktemp('store') / 'nextmove.db').as_posix()}"
        return
    admin: str = request.getfixturevalue("pg_admin_url")
    yield from _pg_url(admin)


ServedFactory = Callable[..., Served]


@pytest.fixture(scope="module")
def served(
    backend_url: str, playbook: Playbook, playbook_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """A real server over a store with a served run of 30 accounts and keys of every role (per backend)."""
    with open_store(backend_url) as store:
        recs = seed_run(store, playbook)
        keys = make_keys(store)
    log = tmp_path_factory.mktemp("server") / "server.log"
    server = Server(backend_url, playbook_path, log=log).start()
    try:
        yield Served(server, keys, recs, backend_url, playbook)
    finally:
        server.kill(signal.SIGTERM)
