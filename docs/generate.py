"""Regenerate the reference pages of docs/ from their single sources in the code."""

from __future__ import annotations

import sys
from pathlib import Path

from nextmove.book.contract import contract_markdown
from nextmove.playbook.reference import playbook_markdown

DOCS = Path(__file__).resolve().parent
PAGES = {"data-contract.md": contract_markdown, "playbook.md": playbook_markdown}


def main() -> int:
    """Write every generated page; with ``--check``, only report pages that are out of date."""
    check = "--check" in sys.argv[1:]
    stale = []
    for name, render in PAGES.items():
        path = DOCS / name
        text = render()
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(name)
        if not check:
            path.write_text(text, encoding="utf-8")
    if check and stale:
        print(f"out of date: {', '.join(stale)}; run `python docs/generate.py`")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
