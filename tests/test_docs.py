"""The docs stay true: generated reference pages are current, and examples in them run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_generated_reference_pages_are_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "generate.py"), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_shows_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make demo" in text
    assert "make test" in text


def test_quickstart_python_example_runs() -> None:
    text = (ROOT / "docs" / "quickstart.md").read_text(encoding="utf-8")
    block = text.split("```python\n")[1].split("```")[0]
    namespace: dict[str, object] = {}
    exec(compile(block, "quickstart.md", "exec"), namespace)  # the doc's own example, run as written
    report = namespace["report"]
    assert [p.rule.value for p in report.problems] == ["negative"]  # type: ignore[attr-defined]
    said = block.split("print(fit.notes[0])\n")[1].replace("\n# ", " ").removeprefix("# ").strip()
    assert namespace["fit"].notes[0] == said  # type: ignore[attr-defined]


def test_evidence_examples_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # They used `decisions`, `lost` and `earlier`, which no page showed how to make.
    text = (ROOT / "docs" / "evidence.md").read_text(encoding="utf-8")
    blocks = [part.split("```")[0] for part in text.split("```python\n")[1:]]
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)  # the second writes its chunks into the current folder
    namespace: dict[str, object] = {}
    for i, block in enumerate(blocks):  # the second continues the first
        exec(compile(block, f"evidence.md, example {i + 1}", "exec"), namespace)
    receipts = namespace["receipts"]
    assert receipts.columns == ["account_id", "evidence", "alternatives", "summary"]  # type: ignore[attr-defined]
    assert namespace["chunks"] == [50] * (receipts.height // 50)  # type: ignore[attr-defined]
    assert sorted(p.name for p in tmp_path.glob("receipts-*.parquet"))[0] == "receipts-0.parquet"


def test_docs_links_in_readme_exist() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for part in text.split("](")[1:]:
        target = part.split(")")[0]
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


@pytest.mark.slow
def test_the_api_curl_session_runs_as_written(tmp_path: Path) -> None:
    # Its feedback sent "decision_id": "PUT-THE-DECISION-ID-HERE", so the whole batch was a 422.
    if shutil.which("curl") is None or shutil.which("bash") is None:
        # CI runs it always: a machine without curl must not pass it by skipping.
        if os.environ.get("CI"):
            pytest.fail("the api.md curl session needs curl and bash, and CI has neither")
        pytest.skip("the session needs curl and bash")
    from tests.api.conftest import CHEAP_HASH, Server, nextmove_command

    from nextmove.store import open_store
    from nextmove.store.keys import new_api_key

    page = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    session = page.split("## A session with curl")[1].split("```bash\n")[1].split("\n```\n")[0]
    ws = tmp_path / "ws"
    subprocess.run([*nextmove_command(), "init", str(ws)], check=True, capture_output=True, timeout=300)
    url = f"sqlite:///{(ws / 'nextmove.db').as_posix()}"
    with open_store(url) as store:
        key, record = new_api_key("admin", [], name="docs", scheme=CHEAP_HASH)
        store.create_api_key(record)
    book = ws / "book"
    server = Server(url, book / "playbook.toml", extra=["--book", str(book)], log=tmp_path / "server.log").start()
    try:
        assert "KEY=nm_..." in session
        assert "API=http://127.0.0.1:8000" in session
        script = session.replace("KEY=nm_...", f"KEY={key}").replace("API=http://127.0.0.1:8000", f"API={server.url}")
        said = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=ws, timeout=900, check=False)
    finally:
        server.kill(signal.SIGTERM)
    assert said.returncode == 0, said.stdout + said.stderr
    assert said.stderr == "", said.stderr  # every id was read out of its answer
    with open_store(url) as store:
        answered = [(e.method, e.path, e.status) for e in store.audit_log(limit=None)]
        done = [e for e in store.feedback(account_id="ACC-000017") if e.kind == "done"]
        decisions = store.decisions(account_id="ACC-000017")
    refused = [a for a in answered if a[2] >= 400]
    assert refused == [("GET", "/v1/lift", 409)], refused  # the one 409 the page announces
    assert ("POST", "/v1/feedback", 200) in answered
    decided = next(d for d in decisions if d.request_id == "crm-req-881")
    assert [(e.action_id, e.payload.get("decision_id")) for e in done] == [(decided.action_id, decided.decision_id)]
