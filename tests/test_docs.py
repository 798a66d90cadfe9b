"""The docs stay true: generated reference pages are current, and examples in them run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def test_docs_links_in_readme_exist() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for part in text.split("](")[1:]:
        target = part.split(")")[0]
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target
