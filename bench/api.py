"""The decision API under load: ``POST /v1/decide`` for single accounts at a fixed rate, on a real server.

A SQLite store gets a served run: one recommendation per account (``--accounts``) over the
default playbook's actions, each with its alternatives and their values, as a batch run leaves
them (seeded, made here, not counted). ``nextmove serve`` then runs as a
subprocess on a loopback port, and an open-loop load generator sends ``POST /v1/decide`` for a
random account at ``--rate`` requests per second for ``--seconds``: each request leaves at its
scheduled time whether or not earlier ones have come back, so a slow server cannot slow the load
down (a closed loop would hide queueing). Latency is measured from that scheduled time to the
answer. The server's resident memory is sampled every second.

    timeout 300 .venv/bin/python bench/api.py                      # 200 req/s for 60 s, 4,200 accounts
    timeout 120 .venv/bin/python bench/api.py --rate 50 --seconds 10   # a quick run

Target: p99 ≤ 20 ms, zero errors, memory flat (the last ten seconds' RSS within 10 % of the first
ten seconds' after warm-up).

``--fresh-signals`` measures decisions rescored with fresh signals instead (docs/api.md, "Fresh
signals"): the lab simulates a book of its own (``nextmove simulate``, ``--accounts``, default
2,000, and ``--months``), ``nextmove run`` makes and serves its run (fitting the effect model the
rescoring projects with), and ``nextmove serve --book`` serves it. Each request sends
``--signals-per-request`` signals (default 2) named as the book names them, picked at random, each
with a value the book holds for that signal; an answer not rescored counts as an error. Defaults:
20 req/s for 30 s, no target (the figures say what it costs).

    timeout 900 .venv/bin/python bench/api.py --fresh-signals      # 20 req/s for 30 s, 2,000 accounts
    timeout 600 .venv/bin/python bench/api.py --fresh-signals --accounts 1000 --rate 5 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from _util import machine

TARGET_P99_MS = 20.0
IDLE_S = 4.0
"""A connection idle this long is replaced before its next request: uvicorn closes one idle for 5 s
(its keep-alive timeout), and a request sent as it closes would come back empty. At 200 req/s over
64 connections none idles; at 5 req/s each would."""
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def seed_store(url: str, playbook_path: Path, accounts: int, seed: int) -> tuple[list[str], str]:
    """A store with a succeeded run of ``accounts`` recommendations and an admin key; (account ids, key)."""
    from datetime import UTC, datetime, timedelta

    from nextmove.playbook.loader import load_playbook
    from nextmove.store import RecommendationRecord, RunRecord, open_store
    from nextmove.store.keys import new_api_key

    playbook = load_playbook(playbook_path)
    rng = np.random.default_rng(seed)
    actions = playbook.action_ids
    as_of = datetime(2026, 6, 1, tzinfo=UTC)
    recs = []
    for i in range(accounts):
        values = rng.normal(800.0, 600.0, len(actions))
        half = rng.uniform(100.0, 900.0, len(actions))
        order = np.argsort(-values)
        chosen = actions[order[0]]
        alternatives: list[dict[str, Any]] = [
            {
                "action_id": actions[k],
                "variant": None,
                "value_usd": float(values[k]),
                "low": float(values[k] - half[k]),
                "high": float(values[k] + half[k]),
                "why": "rule" if rng.random() < 0.2 else "lower_value",
                "reason": "",
            }
            for k in order[1:]
        ]
        alternatives.append({"action_id": "none", "value_usd": 0.0, "low": 0.0, "high": 0.0, "why": "lower_value"})
        v, h = float(values[order[0]]), float(half[order[0]])
        recs.append(
            RecommendationRecord(
                run_id="bench-run",
                account_id=f"acct-{i:06d}",
                action_id=chosen,
                arm="control" if rng.random() < playbook.control_fraction else "model",
                propensity=0.9,
                expected_value_usd=v,
                value_low_usd=v - h,
                value_high_usd=v + h,
                default_action_id=actions[i % len(actions)],
                owner=f"csm-{i % 60}",
                evidence={
                    "schema": 1,
                    "summary": f"{chosen} for account {i}",
                    "projected": [
                        {"objective": o, "outcome": playbook.objectives[o].outcome, "without": 0.2}
                        for o in playbook.objectives
                    ],
                    "signals": [{"feature": "arr", "value": 1000.0 * i, "text": "ARR"}],
                },
                alternatives=alternatives,
                health_score=float(rng.uniform(0, 100)),
                health_band="At risk",
            )
        )
    key, record = new_api_key("service", name="bench")
    with open_store(url) as store:
        store.save_run(
            RunRecord(
                run_id="bench-run",
                book_source="bench",
                playbook_hash=playbook.content_hash(),
                status="succeeded",
                as_of=as_of,
                created_at=as_of + timedelta(hours=1),
            ),
            recs,
        )
        store.create_api_key(record)
    return [r.account_id for r in recs], key


def cpu_seconds_of(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` now (Linux)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


async def _post(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, key: str, body: bytes
) -> tuple[int, bytes]:
    """One keep-alive ``POST /v1/decide`` on an open connection; returns the status and the body (a lean
    client: httpx's own CPU per request was what limited the load on a shared 2-core machine)."""
    head = (
        f"POST /v1/decide HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    writer.write(head + body)
    await writer.drain()
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    answer = await reader.readexactly(length)
    return int(status_line.split()[1]), answer


RESCORED = b'"rescored_with_fresh_signals":true'
"""In the answer of a decision rescored with fresh signals (its receipt says so)."""


@dataclass(frozen=True)
class FreshSignals:
    """What a ``--fresh-signals`` request sends besides its account: signals of the book, values it holds."""

    values: dict[str, list[float]]
    """Values the book holds, by signal name (as the book names them)."""
    per_request: int

    def draw(self, rnd: random.Random) -> dict[str, float]:
        """``per_request`` signals picked at random, each with one of its values in the book."""
        names = rnd.sample(sorted(self.values), min(self.per_request, len(self.values)))
        return {name: rnd.choice(self.values[name]) for name in names}


async def load(
    base: str, key: str, ids: list[str], rate: float, seconds: float, seed: int, fresh: FreshSignals | None = None
) -> dict[str, Any]:
    """Send ``rate`` decisions per second for ``seconds``, open loop; latencies from the scheduled times.

    A dispatcher queues each request at its scheduled time; 64 keep-alive connections take them
    in turn, so a slow server makes the queue (and the measured latency) grow instead of slowing
    the load down. With ``fresh``, each request sends fresh signals, and an answer that was not
    rescored with them counts as an error.
    """
    rnd = random.Random(seed)
    latencies: list[float] = []
    errors: list[str] = []
    host, port = base.removeprefix("http://").split(":")
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
    total = int(rate * seconds)
    connections = 64

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        used = time.perf_counter()
        try:
            while (item := await queue.get()) is not None:
                at, body = item
                if time.perf_counter() - used > IDLE_S:  # the server may have closed it: a new one
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, int(port))
                try:
                    status, answer = await _post(reader, writer, f"{host}:{port}", key, body)
                    if status != 200:
                        errors.append(f"HTTP {status}")
                    elif fresh is not None and RESCORED not in answer:
                        errors.append("answered without rescoring")
                except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, int(port))
                used = time.perf_counter()
                latencies.append(used - at)
        finally:
            writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    start = time.perf_counter() + 0.2
    for i in range(total):
        at = start + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        request: dict[str, Any] = {"account_id": rnd.choice(ids)}
        if fresh is not None:
            request["signals"] = fresh.draw(rnd)
        queue.put_nowait((at, json.dumps(request).encode()))
    sent_in = time.perf_counter() - start
    for _ in workers:
        queue.put_nowait(None)
    # Bounded: what has not come back 10 s after the last scheduled send counts as an error.
    _done, pending = await asyncio.wait(workers, timeout=max(0.0, start + seconds + 10.0 - time.perf_counter()))
    for task in pending:
        task.cancel()
    unanswered = total - len(latencies)
    if unanswered > 0:
        errors.extend(["not answered by the end of the run"] * unanswered)
    figures = _figures(latencies, errors, total, sent_in)
    print(json.dumps({k: v for k, v in figures.items() if k != "error_examples"}), flush=True)
    return figures


def _figures(latencies: list[float], errors: list[str], total: int, sent_in: float) -> dict[str, Any]:
    ms = np.array(latencies or [float("nan")]) * 1000.0
    return {
        "answered": len(latencies),
        "requests": total,
        "achieved_rate": total / max(sent_in, 1e-9),
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:5],
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
    }


async def sample_memory(pid: int, every_s: float, out: list[tuple[float, int]], stop: asyncio.Event) -> None:
    """Append (time, RSS) of ``pid`` every ``every_s`` seconds until ``stop``."""
    t0 = time.perf_counter()
    while not stop.is_set():
        out.append((time.perf_counter() - t0, rss_bytes(pid)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)


async def measure(
    base: str, key: str, ids: list[str], args: argparse.Namespace, pid: int, fresh: FreshSignals | None = None
) -> dict[str, Any]:
    """Warm up, then load and memory sampling together."""
    warm = await load(base, key, ids, rate=min(args.rate, 50.0), seconds=args.warmup, seed=args.seed + 1, fresh=fresh)
    print(f"warm-up: {warm['answered']} answered, p50 {warm['p50_ms']:.1f} ms", flush=True)
    samples: list[tuple[float, int]] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_memory(pid, 1.0, samples, stop))
    cpu_before, client_before = cpu_seconds_of(pid), time.process_time()
    figures = await load(base, key, ids, rate=args.rate, seconds=args.seconds, seed=args.seed, fresh=fresh)
    cpu_ms = (cpu_seconds_of(pid) - cpu_before) * 1000.0
    figures["server_cpu_ms_per_request"] = cpu_ms / figures["requests"]
    # A server that cannot keep up answers fewer than were sent: its CPU per answer says what each cost.
    figures["server_cpu_ms_per_answer"] = cpu_ms / max(figures["answered"], 1)
    # The load generator shares the machine: its own CPU per request says what it takes from the server.
    figures["client_cpu_ms_per_request"] = (time.process_time() - client_before) * 1000.0 / figures["requests"]
    stop.set()
    await sampler
    rss = [r for _, r in samples]
    first, last = np.mean(rss[: max(1, len(rss) // 6)]), np.mean(rss[-max(1, len(rss) // 6) :])
    figures.update(
        rss_first_mib=float(first) / 2**20,
        rss_last_mib=float(last) / 2**20,
        rss_max_mib=max(rss) / 2**20,
        rss_growth=float(last / first - 1.0) if first else None,
    )
    return figures


def nextmove_command(*args: str) -> list[str]:
    """The command line of ``nextmove ARGS`` with this interpreter (the checkout's code, as imported here)."""
    return [sys.executable, "-c", "from nextmove.cli import main; main()", *args]


def lab_store(
    work: Path, url: str, accounts: int, months: int, seed: int, per_request: int
) -> tuple[list[str], str, Path, Path, FreshSignals]:
    """A lab book in ``work/book`` and its run, made and served by the CLI in ``url``'s store.

    Returns the run's account ids, an admin key, the book's folder, its playbook and the fresh
    signals to send (the book's own names and values).
    """
    from nextmove.book.validate import load_book
    from nextmove.playbook.loader import load_playbook
    from nextmove.store import open_store
    from nextmove.store.keys import new_api_key

    book_dir = work / "book"
    steps = [
        ["simulate", "--out", str(book_dir), "--accounts", str(accounts), "--months", str(months), "--seed", str(seed)],
        ["run", "--book", str(book_dir), "--store", url, "--out", str(work / "run"), "--seed", str(seed)],
    ]
    for step in steps:
        t = time.perf_counter()
        done = subprocess.run(
            nextmove_command(*step),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"nextmove {step[0]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        print(f"nextmove {step[0]}: {time.perf_counter() - t:.0f} s", flush=True)
    playbook_path = book_dir / "playbook.toml"
    book = load_book(book_dir, playbook=load_playbook(playbook_path))
    values = {
        str(name): column.to_list()
        for (name,), column in (
            (group, frame.get_column("value").drop_nulls()) for group, frame in book.signals.group_by("name")
        )
        if column.len()
    }
    key, record = new_api_key("admin", name="bench")
    with open_store(url) as store:
        store.create_api_key(record)
        run = store.latest_run()
        if run is None or not run.summary.get("model_version"):
            raise SystemExit("the lab run left no effect model to rescore with: nothing would be rescored")
        ids = [r.account_id for r in store.recommendations(run.run_id)]
    return ids, key, book_dir, playbook_path, FreshSignals(values, per_request)


def main() -> int:
    """Run the benchmark and print its figures (and JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--fresh-signals",
        action="store_true",
        help="decisions rescored with fresh signals, on a lab book's served run (server started with --book)",
    )
    parser.add_argument("--rate", type=float, help="requests per second (default 200; 20 with --fresh-signals)")
    parser.add_argument(
        "--seconds", type=float, help="length of the measured load (default 60; 30 with --fresh-signals)"
    )
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of warm-up load (not counted)")
    parser.add_argument(
        "--accounts", type=int, help="accounts in the served run (default 4,200; 2,000 with --fresh-signals)"
    )
    parser.add_argument("--months", type=int, default=18, help="months of the lab book's history (--fresh-signals)")
    parser.add_argument(
        "--signals-per-request", type=int, default=2, help="fresh signals sent with each decision (--fresh-signals)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    fresh_mode = args.fresh_signals
    if args.rate is None:
        args.rate = 20.0 if fresh_mode else 200.0
    if args.seconds is None:
        args.seconds = 30.0 if fresh_mode else 60.0
    if args.accounts is None:
        args.accounts = 2000 if fresh_mode else 4200

    from nextmove.playbook.loader import default_playbook_text

    fresh: FreshSignals | None = None
    with tempfile.TemporaryDirectory(prefix="nextmove-bench-api-") as tmp:
        work = Path(tmp)
        url = f"sqlite:///{(work / 'nextmove.db').as_posix()}"
        t = time.perf_counter()
        serve_args = ["--log-level", "warning"]
        if fresh_mode:
            ids, key, book_dir, playbook_path, fresh = lab_store(
                work, url, args.accounts, args.months, args.seed, args.signals_per_request
            )
            serve_args += ["--book", str(book_dir)]
            print(f"signals sent: {args.signals_per_request} per request of {', '.join(sorted(fresh.values))}")
        else:
            playbook_path = work / "playbook.toml"
            playbook_path.write_text(default_playbook_text(), encoding="utf-8")
            ids, key = seed_store(url, playbook_path, args.accounts, args.seed)
        print(f"store ready: {len(ids):,} accounts in {time.perf_counter() - t:.1f} s", flush=True)
        port = free_port()
        command = nextmove_command(
            "serve", "--port", str(port), "--store", url, "--playbook", str(playbook_path), *serve_args
        )
        log = (work / "server.log").open("wb")
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
        print(f"server pid {server.pid} (a profiler can attach to it)", flush=True)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    print((work / "server.log").read_text())
                    return 1
                time.sleep(0.2)
            load_before = os.getloadavg()[0]
            figures = asyncio.run(measure(base, key, ids, args, server.pid, fresh))
            figures["load_average_1min"] = [load_before, os.getloadavg()[0]]
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()  # still draining a backlog of requests: the figures are taken already
                server.wait(timeout=10)
            log.close()
    figures.update(
        rate=args.rate,
        seconds=args.seconds,
        accounts=len(ids),
        fresh_signals=args.signals_per_request if fresh_mode else 0,
        machine=machine(),
    )
    what = "decisions rescored with fresh signals" if fresh_mode else "decisions"
    print(
        f"{figures['requests']:,} {what} at {figures['achieved_rate']:.0f} req/s over {args.seconds:.0f} s: "
        f"p50 {figures['p50_ms']:.1f} ms, p90 {figures['p90_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, "
        f"max {figures['max_ms']:.1f} ms; errors {figures['errors']}; "
        f"server CPU {figures['server_cpu_ms_per_request']:.2f} ms per request "
        f"({figures['server_cpu_ms_per_answer']:.2f} ms per answer; "
        f"load generator {figures['client_cpu_ms_per_request']:.2f} ms)"
    )
    if figures["error_examples"]:
        print(f"errors, for example: {'; '.join(figures['error_examples'])}")
    print(
        f"server RSS {figures['rss_first_mib']:.0f} MiB (first sixth) → {figures['rss_last_mib']:.0f} MiB "
        f"(last sixth), max {figures['rss_max_mib']:.0f} MiB; load average {figures['load_average_1min']}"
    )
    if not fresh_mode:
        met = figures["p99_ms"] <= TARGET_P99_MS and figures["errors"] == 0
        print(f"target p99 ≤ {TARGET_P99_MS:.0f} ms and zero errors: {'met' if met else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
