"""schemathesis over the OpenAPI document of a real server: no 5xx on at least 1,000 generated requests.

Generated requests are sent with an admin key, so that they reach every endpoint's logic rather
than stopping at the key check. Only the ``not_a_server_error`` check runs: the other checks
(status codes and schemas of every error) are the business of the other tests.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.api.conftest import Server, make_keys, seed_run

from nextmove.playbook import Playbook
from nextmove.store import open_store

MIN_REQUESTS = 1000


@pytest.mark.slow
def test_no_generated_request_gets_a_server_error(playbook: Playbook, playbook_path: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
    with open_store(url) as store:
        seed_run(store, playbook)
        keys = make_keys(store)
    server = Server(url, playbook_path, log=tmp_path / "server.log").start()
    try:
        command = [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--phases",
            "coverage,fuzzing",
            "--max-examples",
            "80",
            "--seed",
            "7",
            # One worker: with two threads, hypothesis' lambda descriptions run ast.parse
            # concurrently, which CPython 3.11 can fail with "AST constructor recursion depth
            # mismatch" (a runtime error of the tool, not of the server).
            "--workers",
            "1",
            "--no-shrink",
            "--generation-database",
            "none",
            "--header",
            f"Authorization: Bearer {keys.admin}",
            "--no-color",
        ]
        # Run in tmp_path: schemathesis keeps a cache folder in its working directory.
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path)
    finally:
        server.kill(signal.SIGTERM)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    generated = re.search(r"(\d+) generated", output)
    assert generated is not None, output[-3000:]
    assert int(generated.group(1)) >= MIN_REQUESTS, output[-3000:]
    print(f"schemathesis: {generated.group(1)} generated requests, no server error")
