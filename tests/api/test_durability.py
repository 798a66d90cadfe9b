"""Feedback is never lost or doubled: SIGKILL the server while a client streams events with retries.

The client sends a few thousand events in small batches and resends a batch until it gets a 2xx
(a killed server drops connections; its restart answers again on the same port). The server is
killed twice mid-stream. Afterwards the store must hold every event exactly once, as sent, and
every batch acknowledged before a kill must be in it: an acknowledgement means the events were
committed before the answer left.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from tests.api.conftest import Server, make_keys, seed_run

from nextmove.playbook import Playbook
from nextmove.store import open_store

EVENTS = 3000
BATCH = 25
KILLS = 1


def _batches(account_ids: list[str]) -> list[list[dict[str, object]]]:
    events = [
        {
            "event_id": f"stream-{i:05d}",
            "account_id": account_ids[i % len(account_ids)],
            "kind": ("done", "snoozed", "outcome", "dismissed")[i % 4],
            "ts": f"2026-06-{1 + i % 28:02d}T12:00:00Z",
            **({"outcome": {"kind": "churn", "value": float(i)}} if i % 4 == 2 else {}),
            **({"snoozed_until": "2100-01-01T00:00:00Z"} if i % 4 == 1 else {}),
            **({"reason": f"reason {i}"} if i % 4 == 3 else {}),
        }
        for i in range(EVENTS)
    ]
    return [events[i : i + BATCH] for i in range(0, EVENTS, BATCH)]


@pytest.mark.slow
def test_sigkill_while_streaming_feedback_loses_and_doubles_nothing(
    backend_url: str, playbook: Playbook, playbook_path: Path, tmp_path: Path
) -> None:
    with open_store(backend_url) as store:
        recs = seed_run(store, playbook, accounts=12)
        keys = make_keys(store)
    server = Server(backend_url, playbook_path, log=tmp_path / "server.log").start()
    batches = _batches([r.account_id for r in recs])
    acknowledged: list[int] = []
    stored_total = 0
    retries = 0
    failures: list[str] = []

    def stream() -> None:
        nonlocal stored_total, retries
        with httpx.Client(base_url=server.url, headers={"X-API-Key": keys.service}, timeout=10.0) as client:
            for number, batch in enumerate(batches):
                deadline = time.monotonic() + 60
                while True:
                    try:
                        response = client.post("/v1/feedback", json={"events": batch})
                    except httpx.TransportError:
                        response = None
                    if response is not None and response.status_code == 200:
                        body = response.json()
                        stored_total += body["stored"]
                        acknowledged.append(number)
                        break
                    if response is not None and response.status_code < 500:
                        failures.append(f"batch {number}: {response.status_code} {response.text}")
                        return
                    retries += 1
                    if time.monotonic() > deadline:
                        failures.append(f"batch {number}: no answer within 60 s")
                        return
                    time.sleep(0.05)

    sender = threading.Thread(target=stream)
    sender.start()
    try:
        for kill in range(KILLS):
            target = len(batches) * (kill + 1) // (KILLS + 1)
            while len(acknowledged) < target and sender.is_alive():
                time.sleep(0.01)
            server.kill(signal.SIGKILL)
            server.start()
        sender.join(timeout=120)
    finally:
        server.kill(signal.SIGTERM)
    assert not failures, failures
    assert len(acknowledged) == len(batches)
    assert retries > 0, "the kills happened after the stream ended; nothing was tested"

    with open_store(backend_url) as store:
        stored = store.feedback()
    sent = {e["event_id"]: e for batch in batches for e in batch}
    assert len(stored) == EVENTS
    assert {e.event_id for e in stored} == set(sent)
    # A retry of a batch the killed server had committed counts as duplicates, never twice.
    assert stored_total <= EVENTS
    for event in stored:
        original = sent[event.event_id]
        assert (event.account_id, event.kind) == (original["account_id"], original["kind"])
        if event.kind == "outcome":
            assert event.payload["outcome"] == original["outcome"]


def test_sigkill_right_after_reads_loses_none_of_their_audit_entries(
    backend_url: str, playbook: Playbook, playbook_path: Path, tmp_path: Path
) -> None:
    # Read entries were queued and written every 0.2 s: after a SIGKILL 2 of 40 were left.
    with open_store(backend_url) as store:
        seed_run(store, playbook, accounts=3, run_id="run-audited")
        keys = make_keys(store)
    server = Server(backend_url, playbook_path, log=tmp_path / "server.log").start()
    tag = f"audited-{time.monotonic_ns()}"
    try:
        with server.client(keys.of("admin")) as client:
            answered = [client.get(f"/v1/runs/{tag}-{i}").status_code for i in range(40)]
    finally:
        server.kill(signal.SIGKILL)
    assert answered == [404] * 40
    with open_store(backend_url) as store:
        entries = [e for e in store.audit_log(limit=None) if tag in e.resource]
    assert len(entries) == 40
    assert {(e.action, e.status, e.method) for e in entries} == {("read", 404, "GET")}
