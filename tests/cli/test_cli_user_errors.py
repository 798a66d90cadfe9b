"""A user's mistake (a bad path, a bad file, a bad value) is a clear message and exit 2, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from nextmove.cli import app
from nextmove.sim import SimConfig, simulate, write_book

runner = CliRunner()


@pytest.fixture(scope="module")
def book_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("user-errors") / "book"
    write_book(simulate(SimConfig(accounts=40, months=3, seed=1)), folder)
    return folder


def _said(output: str) -> str:
    return " ".join(output.split())


def _refused(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return _said(result.output)


def test_features_out_is_checked_before_computing(book_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x", encoding="utf-8")
    (tmp_path / "dir.csv").mkdir()
    base = ["features", "--book", str(book_dir), "--out"]
    assert "is a file, not a folder" in _refused([*base, str(tmp_path / "file.txt" / "f.csv")])
    assert "is a folder" in _refused([*base, str(tmp_path / "dir.csv")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.csv", "file.txt"]  # no .dir.csv.tmp left
    assert list((tmp_path / "dir.csv").iterdir()) == []
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert "not writable" in _refused([*base, str(locked / "f.csv")])


def test_run_truth_that_is_not_a_truth_table_is_named(book_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really parquet")
    said = _refused(
        ["run", "--book", str(book_dir), "--no-store", "--out", str(tmp_path / "o"), "--truth", str(broken)]
    )
    assert f"--truth {broken}: cannot be read as a Parquet file" in said
    other = tmp_path / "values.parquet"
    pl.DataFrame({"account_id": ["a"], "action_id": ["none"], "value_usd": ["lots"]}).write_parquet(other)
    said = _refused(["run", "--book", str(book_dir), "--no-store", "--out", str(tmp_path / "o"), "--truth", str(other)])
    assert "column value_usd must hold numbers, but row 1 holds 'lots'" in said
    assert not (tmp_path / "o").exists()


def test_evaluate_policy_files_that_cannot_be_read_are_named(book_dir: Path, tmp_path: Path) -> None:
    base = ["evaluate", "--book", str(book_dir), "--out", str(tmp_path / "e.json"), "--policy"]
    broken = tmp_path / "pol.parquet"
    broken.write_bytes(b"garbage")
    assert f"--policy {broken}: cannot be read as a Parquet file" in _refused([*base, str(broken)])
    latin = tmp_path / "latin.csv"
    latin.write_bytes("account_id,action_id,probability\ncafé,none,1\n".encode("latin-1"))
    assert "is not UTF-8 text: save it again as UTF-8" in _refused([*base, str(latin)])
    words = tmp_path / "words.csv"
    words.write_text("account_id,action_id,probability\na1,none,1\na2,none,abc\n", encoding="utf-8")
    assert "column probability must hold numbers, but row 2 holds 'abc'" in _refused([*base, str(words)])
    assert not (tmp_path / "e.json").exists()


def test_a_policy_table_with_text_probabilities_is_a_config_error() -> None:
    from nextmove.errors import ConfigError
    from nextmove.measure.policy import table_policy

    table = pl.DataFrame({"account_id": ["a", "b"], "action_id": ["none", "none"], "probability": ["1", "abc"]})
    with pytest.raises(ConfigError, match="policy row 1: probability must be a number in \\[0, 1\\], got 'abc'"):
        table_policy(table)


def test_serve_on_a_port_in_use_says_so_before_loading(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        said = _refused(["serve", "--book", str(tmp_path / "no-book"), "--host", "127.0.0.1", "--port", str(port)])
    assert f"port {port} is in use on 127.0.0.1: pass --port" in said


def _help(command: str) -> str:
    return _said(runner.invoke(app, [command, "--help"]).output.replace("│", " "))


def test_help_says_what_the_code_does() -> None:
    evaluate = _help("evaluate")
    assert "two horizons before" not in evaluate
    assert "last third of the usable decision span" in evaluate
    report = _help("report")
    assert "newest run that succeeded" in report
    init = _help("init")
    assert "``" not in init
    assert "went stale" not in init


def test_a_role_that_sees_every_account_reads_an_admin_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    result = runner.invoke(app, ["keys", "create", "--role", "admin", "--owner", "Ana", "--store", url])
    assert result.exit_code == 2, result.output
    assert "an admin key sees every account" in _said(result.output)


def test_contradictory_or_negative_options_are_refused(book_dir: Path, tmp_path: Path) -> None:
    said = _refused(["run", "--book", str(book_dir), "--no-store", "--store", f"sqlite:///{tmp_path / 's.db'}"])
    assert "--no-store and --store contradict each other" in said
    assert "--max-examples" in _refused(["validate", "--book", str(book_dir), "--max-examples", "-1"])


@pytest.mark.parametrize("command", ["health", "run"])
def test_reusing_a_model_from_a_store_that_does_not_exist_leaves_no_store_file(
    book_dir: Path, tmp_path: Path, command: str
) -> None:
    db = tmp_path / "new.db"
    out = ["--out", str(tmp_path / "h.csv")] if command == "health" else ["--out", str(tmp_path / "o")]
    result = runner.invoke(app, [command, "--book", str(book_dir), *out, "--reuse-model", "--store", f"sqlite:///{db}"])
    assert result.exit_code == 4, result.output
    assert "there is no store at" in _said(result.output)
    assert not db.exists()


def test_out_with_a_tilde_the_shell_did_not_expand_is_the_home_folder(
    book_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `--out=~/features.parquet`: bash expands no ~ after "=", so nextmove gets it as written.
    home, here = tmp_path / "home", tmp_path / "here"
    home.mkdir()
    here.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(here)
    result = CliRunner().invoke(app, ["features", "--book", str(book_dir), "--out=~/features.parquet"])
    assert result.exit_code == 0, result.output
    assert (home / "features.parquet").is_file()
    assert not (here / "~").exists()


def test_an_eligibility_nested_too_deeply_is_a_playbook_error_not_a_traceback(tmp_path: Path) -> None:
    # 3,000 `not` made `validate` and `run` end in a RecursionError traceback from Python's parser.
    (tmp_path / "accounts.csv").write_text("account_id,arr\na1,10\n", encoding="utf-8")
    deep = "not " * 3000 + "arr >= 10000"
    (tmp_path / "playbook.toml").write_text(
        '[objectives.r]\noutcome = "churn"\nsense = "avoid"\nvalue = "arr"\n\n'
        f'[[actions]]\nid = "call"\nname = "Call"\nteam = "cs"\nobjective = "r"\neligibility = "{deep}"\n',
        encoding="utf-8",
    )
    for command in ("validate", "run"):
        said = _refused([command, "--book", str(tmp_path), *(["--no-store"] if command == "run" else [])])
        assert "actions[0] (id='call'): action 'call': eligibility 'not not" in said
        assert "(12,012 characters): the expression is nested too deeply (" in said  # levels: by Python's parser
        assert "at most 100): write it with fewer operators within one another" in said
        assert len(said) < 800
