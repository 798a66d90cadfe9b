"""`init --force` and `simulate --force` replace only the files nextmove wrote, never the user's."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from nextmove.cli import app

runner = CliRunner()
SMALL = ["--accounts", "40", "--months", "3"]


def _said(result: object) -> str:
    return " ".join(str(getattr(result, "output", "")).split())


def test_init_force_keeps_the_users_tables_and_edited_playbook(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert runner.invoke(app, ["init", str(ws), *SMALL]).exit_code == 0
    # A run of the example (`nextmove run --book ws/book` writes ws/book/run) is left where it is.
    (ws / "book" / "run").mkdir()
    (ws / "book" / "run" / "summary.json").write_text("{}", encoding="utf-8")
    # Unchanged, the example may be replaced (with other options too).
    again = runner.invoke(app, ["init", str(ws), "--force", "--accounts", "50", "--months", "3"])
    assert again.exit_code == 0, again.output
    assert (ws / "book" / "run" / "summary.json").read_text(encoding="utf-8") == "{}"
    (ws / "book" / "my_export.csv").write_text("account_id\na1\n", encoding="utf-8")
    playbook = ws / "book" / "playbook.toml"
    edited = playbook.read_text(encoding="utf-8") + "\n# my edit\n"
    playbook.write_text(edited, encoding="utf-8")
    (ws / "notes.txt").write_text("mine", encoding="utf-8")
    refused = runner.invoke(app, ["init", str(ws), "--force", *SMALL])
    assert refused.exit_code == 2, refused.output
    said = _said(refused)
    assert "book/my_export.csv" in said
    assert "book/playbook.toml" in said
    assert "move them" in said
    assert (ws / "book" / "my_export.csv").read_text(encoding="utf-8") == "account_id\na1\n"
    assert playbook.read_text(encoding="utf-8") == edited
    # The user's own accounts.csv, under the example's name, is theirs too.
    (ws / "book" / "my_export.csv").unlink()
    playbook.write_text(edited.replace("\n# my edit\n", ""), encoding="utf-8")
    (ws / "book" / "accounts.csv").write_text("account_id\nmine\n", encoding="utf-8")
    refused = runner.invoke(app, ["init", str(ws), "--force", *SMALL])
    assert refused.exit_code == 2, refused.output
    assert "book/accounts.csv" in _said(refused)
    assert (ws / "book" / "accounts.csv").read_text(encoding="utf-8") == "account_id\nmine\n"
    assert (ws / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_init_force_without_a_manifest_knows_the_default_playbook_and_readme_but_not_the_tables(tmp_path: Path) -> None:
    # A workspace of an older nextmove has no manifest: its default playbook and README are known by
    # content, but its tables cannot be told from the user's own, so --force still stops at them.
    ws = tmp_path / "ws"
    assert runner.invoke(app, ["init", str(ws), *SMALL]).exit_code == 0
    (ws / ".nextmove-init.json").unlink()
    refused = runner.invoke(app, ["init", str(ws), "--force", *SMALL])
    assert refused.exit_code == 2
    said = _said(refused)
    assert "changed since): book/accounts.csv," in said  # README.md, unedited, would come first
    assert "book/playbook.toml" not in said


def test_simulate_force_refuses_a_folder_with_other_files_and_replaces_only_the_book(tmp_path: Path) -> None:
    out = tmp_path / "lab"
    assert runner.invoke(app, ["simulate", "--out", str(out), *SMALL]).exit_code == 0
    assert (out / "signals.parquet").is_file()
    (out / "run").mkdir()  # a run of the book (BOOK/run) is left where it is
    (out / "run" / "summary.json").write_text("{}", encoding="utf-8")
    # The book's own files are replaced, and a table in the other format is not left beside the new one.
    again = runner.invoke(app, ["simulate", "--out", str(out), "--force", "--format", "csv", *SMALL])
    assert again.exit_code == 0, again.output
    assert (out / "signals.csv").is_file()
    assert not (out / "signals.parquet").exists()
    assert not list((out / "truth").glob("*.parquet"))
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    assert (out / "run" / "summary.json").read_text(encoding="utf-8") == "{}"
    (out / "mine.txt").write_text("keep", encoding="utf-8")
    (out / "truth" / "notes.md").write_text("keep", encoding="utf-8")
    refused = runner.invoke(app, ["simulate", "--out", str(out), "--force", *SMALL])
    assert refused.exit_code == 2, refused.output
    said = _said(refused)
    assert "mine.txt" in said
    assert "truth/notes.md" in said
    assert (out / "mine.txt").read_text(encoding="utf-8") == "keep"
    assert (out / "signals.csv").is_file()


def test_simulate_into_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    done = runner.invoke(app, ["simulate", "--out", ".", *SMALL])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "accounts.csv").is_file()
    assert (tmp_path / "truth" / "values.parquet").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    again = runner.invoke(app, ["simulate", "--out", ".", "--force", *SMALL])
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["simulate", "--out", "{tmp}/o", "--accounts", "5"], "--accounts"),
        (["simulate", "--out", "{tmp}/o", "--months", "0"], "--months"),
        (["init", "{tmp}/o", "--accounts", "5"], "--accounts"),
    ],
)
def test_sizes_out_of_range_are_refused_before_anything_is_made(tmp_path: Path, args: list[str], option: str) -> None:
    result = runner.invoke(app, [a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == 2, result.output
    assert option in result.output
    assert not (tmp_path / "o").exists()


def test_simulate_force_refuses_a_book_it_did_not_simulate(tmp_path: Path) -> None:
    # A real export under the book's own file names, without the truth every simulated book has.
    export = tmp_path / "mybook"
    export.mkdir()
    files = {
        "accounts.csv": "account_id,arr\na1,100\n",
        "signals.csv": "account_id,ts,name,value\na1,2026-01-01,logins,3\n",
        "playbook.toml": "# my edited playbook\n",
    }
    for name, text in files.items():
        (export / name).write_text(text, encoding="utf-8")
    refused = runner.invoke(app, ["simulate", "--out", str(export), "--force", *SMALL])
    assert refused.exit_code == 2, refused.output
    assert "did not simulate" in _said(refused)
    assert {p.name: p.read_text(encoding="utf-8") for p in export.iterdir()} == files
