"""docs/features.md stays true: its example runs as written."""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "features.md"


def test_features_doc_example_runs() -> None:
    blocks = DOC.read_text(encoding="utf-8").split("```python\n")[1:]
    example = blocks[-1].split("```")[0]
    namespace: dict[str, object] = {}
    exec(compile(example, str(DOC), "exec"), namespace)  # the page's own example, run as written
    assert "training" in namespace


def test_features_doc_names_every_family_module() -> None:
    text = DOC.read_text(encoding="utf-8")
    for module in ("account.py", "signals.py", "touches.py", "outcomes.py"):
        assert f"nextmove/features/{module}" in text
