"""The book's and the user's text is printed as it is: never read as Rich markup."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from nextmove.cli import app

runner = CliRunner()


def _said(text: str) -> str:
    return " ".join(text.split())


def _book(folder: Path, signal: str, kind: str = "churn", column: str = "note") -> Path:
    folder.mkdir()
    (folder / "accounts.csv").write_text(f'account_id,arr,"{column}"\na1,10,x\na2,20,y\n', encoding="utf-8", newline="")
    (folder / "signals.csv").write_text(
        f'account_id,ts,name,value\na1,2025-01-01,"{signal}",1\na2,2025-01-02,logins,2\n',
        encoding="utf-8",
        newline="",
    )
    (folder / "outcomes.csv").write_text(
        f'account_id,ts,kind,value\na1,2025-01-03,"{kind}",1\n', encoding="utf-8", newline=""
    )
    return folder


def test_validate_prints_names_holding_square_brackets_as_they_are(tmp_path: Path) -> None:
    # A signal named "logins [/web]" made validate fail with a MarkupError traceback (exit 1); one named
    # "page views [web]" was printed as "page views ".
    book = _book(tmp_path / "b1", "logins [/web]", kind="won [/x]", column="plan [tier]")
    done = runner.invoke(app, ["validate", "--book", str(book)])
    said = _said(done.output)
    assert done.exit_code == 0, done.output
    assert "logins [/web] (1)" in said
    assert "won [/x] (1)" in said
    assert "plan [tier]" in said

    book = _book(tmp_path / "b2", "page views [web]")
    done = runner.invoke(app, ["validate", "--book", str(book)])
    assert done.exit_code == 0, done.output
    assert "page views [web] (1)" in _said(done.output)


def test_keys_with_square_brackets_in_the_owner_and_name_are_shown_and_listed(tmp_path: Path) -> None:
    # The key was stored, then printing it raised a MarkupError: its secret was never shown, and
    # `keys list` failed from then on; a name "[prod] crm sync" was listed as " crm sync".
    store = f"sqlite:///{tmp_path / 'keys.db'}"
    made = runner.invoke(
        app,
        ["keys", "create", "--role", "csm", "--owner", "Ana [/oops]", "--name", "[prod] crm sync", "--store", store],
    )
    assert made.exit_code == 0, made.output
    assert "for Ana [/oops]." in made.output
    secret = made.output.strip().splitlines()[-1]
    assert secret.startswith("nm_")
    listed = runner.invoke(app, ["keys", "list", "--store", store])
    assert listed.exit_code == 0, listed.output
    assert "Ana [/oops]" in listed.output
    assert "[prod] crm sync" in listed.output


_ROLES_PLAYBOOK = """
[objectives.r]
outcome = "churn"
sense = "avoid"
value = "arr"

[[actions]]
id = "call"
name = "Call"
team = "cs"
objective = "r"

[signal_roles]
usage = ["logins", "logons"]
"""


def test_validate_shows_control_characters_of_book_names_rather_than_sending_them_to_the_terminal(
    tmp_path: Path,
) -> None:
    # A signal named so retitled the terminal, cleared the screen and turned what followed red, in
    # "Signals seen" and in the note listing the book's signals (the playbook names one it lacks).
    book = _book(tmp_path / "b", "cpu\x1b]0;TITLE\x07\x1b[2J\x1b[31mRED\x9b1m", kind="churn\x1b[5m")
    (book / "playbook.toml").write_text(_ROLES_PLAYBOOK, encoding="utf-8")
    done = runner.invoke(app, ["validate", "--book", str(book)])
    assert done.exit_code == 0, done.output
    for control in ("\x1b", "\x07", "\x9b"):
        assert control not in done.output
    shown = r"cpu\x1b]0;TITLE\x07\x1b[2J\x1b[31mRED\x9b1m"
    said = _said(done.output)
    assert f"{shown} (1)" in said  # Signals seen
    assert f"(the book's signals: {shown}, logins)" in said  # the note
    assert r"churn\x1b[5m (1)" in said


def test_an_error_quoting_a_control_character_shows_it_and_keeps_its_own_lines(tmp_path: Path) -> None:
    book = _book(tmp_path / "b", "logins")
    playbook = _ROLES_PLAYBOOK.replace('objective = "r"', 'objective = "r"\neligibility = "arr > 0 and \\u001b[2J"')
    (book / "playbook.toml").write_text(playbook, encoding="utf-8")
    done = runner.invoke(app, ["validate", "--book", str(book)])
    assert done.exit_code == 2, done.output
    assert "\x1b" not in done.output
    # The expression and the caret under the character at fault, each on its own line.
    assert "\n    arr > 0 and \\x1b[2J\n                ^\n" in done.output
