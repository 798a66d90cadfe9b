"""The example of docs/segments.md runs as written."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_segments_doc_python_example_runs() -> None:
    text = (ROOT / "docs" / "segments.md").read_text(encoding="utf-8")
    block = text.split("```python\n")[1].split("```")[0]
    namespace: dict[str, object] = {}
    exec(compile(block, "segments.md", "exec"), namespace)  # the doc's own example, run as written
    report = namespace["report"]
    ranks = [s.response.rank for s in report.segments]  # type: ignore[attr-defined]
    assert ranks == list(range(1, len(ranks) + 1))
    assert report.moves.accounts > 0  # type: ignore[attr-defined]
