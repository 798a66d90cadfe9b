"""The example of docs/lab.md runs as written (with its output folder moved to a temporary one)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_lab_doc_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (ROOT / "docs" / "lab.md").read_text(encoding="utf-8")
    block = text.split("```python\n")[1].split("```")[0]
    monkeypatch.chdir(tmp_path)  # the example writes its book into the folder it runs from
    namespace: dict[str, object] = {}
    exec(compile(block, "lab.md", "exec"), namespace)  # the doc's own example, run as written
    assert (tmp_path / "lab-book" / "truth" / "values.parquet").exists()
    step = namespace["step"]
    assert step.regret_usd >= -1e-6  # type: ignore[attr-defined]
