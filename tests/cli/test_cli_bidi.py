"""The book's bidi controls and zero-width characters are printed escaped, never sent to the terminal.

A right-to-left override (U+202E) in a signal's name showed the rest of its line reversed in a
terminal that applies the bidi algorithm; a zero-width space made two names that differ print alike.
"""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from nextmove.cli import app
from nextmove.cli._common import safe

runner = CliRunner()

# Every character that must never reach the terminal as it is: the bidi controls, the zero-width space, BOM.
HIDDEN = "\u061c\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"


def test_safe_writes_bidi_controls_and_zero_width_characters_as_escapes() -> None:
    for char in HIDDEN:
        assert safe(f"Acme{char} tnuocca") == f"Acme\\u{ord(char):04x} tnuocca"
    assert safe("Müller GmbH 株式会社 [web]") == "Müller GmbH 株式会社 \\[web]"  # letters of any script stay
    # The zero-width joiner and non-joiner are parts of Persian words and emoji sequences: printed as they are.
    assert safe("می\u200cخواهم 👩\u200d💻") == "می\u200cخواهم 👩\u200d💻"


def test_validate_prints_a_signal_name_holding_an_override_escaped(tmp_path: Path) -> None:
    book = tmp_path / "book"
    book.mkdir()
    (book / "accounts.csv").write_text("account_id,arr\nk1,10\nk2,20\n", encoding="utf-8", newline="")
    (book / "signals.csv").write_text(
        "account_id,ts,name,value\nk1,2025-01-01,logins\u202e bew,1\nk2,2025-01-02,pa\u200bge views,2\n",
        encoding="utf-8",
        newline="",
    )
    (book / "outcomes.csv").write_text(
        "account_id,ts,kind,value\nk1,2025-01-03,\u2067lapse\u2069,1\n", encoding="utf-8", newline=""
    )
    done = runner.invoke(app, ["validate", "--book", str(book)])
    assert done.exit_code == 0, done.output
    assert not any(char in done.output for char in HIDDEN), ascii(done.output)
    said = " ".join(done.output.split())
    assert "logins\\u202e bew (1)" in said
    assert "pa\\u200bge views (1)" in said
    assert "\\u2067lapse\\u2069 (1)" in said


def test_safe_escapes_every_bidi_control_the_sentences_drop() -> None:
    from nextmove.decide.phrases import BIDI_CONTROLS

    assert all(safe(char) == f"\\u{ord(char):04x}" for char in BIDI_CONTROLS)
