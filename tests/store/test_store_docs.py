"""The store's page stays true: its Python example runs as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from nextmove.errors import StoreError
from nextmove.store import open_store

ROOT = Path(__file__).resolve().parents[2]


def test_store_docs_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = (ROOT / "docs" / "store.md").read_text(encoding="utf-8")
    block = text.split("```python\n")[1].split("```")[0]
    namespace: dict[str, object] = {}
    exec(compile(block, "store.md", "exec"), namespace)  # the doc's own example, run as written
    assert [r.account_id for r in namespace["mine"]] == ["acct-001"]  # type: ignore[attr-defined]
    assert (tmp_path / "ws" / "nextmove.db").is_file()
    with open_store(f"sqlite:///{tmp_path / 'ws' / 'nextmove.db'}") as store:
        assert store.get_run("2026-06-30").status == "succeeded"  # not a run that looks killed
    with pytest.raises(StoreError, match=r"already saved.*use a new run_id"):
        exec(compile(block, "store.md", "exec"), {})  # run again: the friendly refusal
