"""Writing a simulated book and its truth to a folder, atomically."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from nextmove._files import StagedFiles, check_folder
from nextmove._signals import clean_up, signals_held
from nextmove.errors import ConfigError
from nextmove.sim.simulate import SimResult

CSV_DATETIME = "%Y-%m-%dT%H:%M:%SZ"

TRUTH_README = """\
# Ground truth of this simulated book

Written by `nextmove.sim` (seed {seed}, as of {as_of}). Nothing here is visible to the engine:
use it only to judge. The model behind it is described in `docs/lab.md`.

A decision's outcome is *attributed* to it when the outcome's `touch_id` is the decision's touch.
Every probability below is the exact probability that an outcome of that kind, attributed to the
decision, happens within the playbook's horizon ({horizon} days). `value_usd` is the expected
objective dollars of the action over doing nothing, minus the action's cost (`none` is worth 0).

- `values.{ext}`: one row per active account and candidate (every action and `none`) at
  as_of: `eligible` (eligibility, cooldown, caps), `cost_usd`, `p_churn`, `p_renewal`,
  `p_expansion`, `expected_expansion_usd`, `p_advocacy`, `p_recovery`, `p_onboarded`,
  `value_usd`, `is_oracle`.
- `accounts.{ext}`: one row per account, churned ones too: the behavioral `group`; the hidden
  states in (0, 1) at as_of (at churn for churned accounts): `engagement`, `satisfaction`,
  `expansion_readiness`, `advocacy_inclination`, `support_frustration`; `frustrated`;
  `committed_to_churn` (decided not to renew, not visible yet); the lifecycle stage; the
  lifecycle `default_action` and the `oracle_action` at as_of with their values in dollars.
- `decisions.{ext}`: one row per historical decision (touch, `none` included): the logging
  policy's `propensity`, the group, the true probabilities under the action taken (`p_churn` …)
  and under doing nothing (`p_churn_none` …), the `value_usd` of the action taken, and the
  oracle and lifecycle-default actions at that time with their values.
- `propensities.{ext}`: one row per historical decision: the logging policy's probability of
  every candidate (a column per action id and `none`; 0 when not eligible); rows sum to 1.
- `groups.{ext}`: one row per behavioral group: accounts, share, `mean_oracle_value_usd` (what
  the group gains from its best action: its true response), `response_rank` (1 = largest), the
  usual best action, the share for which doing nothing is best.
- `group_actions.{ext}`: one row per group and candidate: mean `value_usd`, share eligible, share
  for which it is the best, mean effect on each outcome probability (`mean_effect_churn` …).
"""


def _write(frame: pl.DataFrame, path: Path) -> None:
    if path.suffix == ".csv":
        frame.write_csv(path, datetime_format=CSV_DATETIME)
    else:
        frame.write_parquet(path, statistics=False)


BOOK_FILES = ("accounts.csv", "signals.parquet", "signals.csv", "touches.csv", "outcomes.csv", "playbook.toml")
"""The files :func:`write_book` writes at the top of its folder (signals in either format)."""

TRUTH_TABLES = ("values", "accounts", "decisions", "propensities", "groups", "group_actions")
TRUTH_FILES = (*(f"{name}.{ext}" for name in TRUTH_TABLES for ext in ("parquet", "csv")), "README.md")
"""The files :func:`write_book` writes in ``truth/`` (tables in either format)."""


def foreign_files(out_dir: Path) -> list[str]:
    """The entries of ``out_dir`` (relative names) that :func:`write_book` would not have written.

    A folder other than ``truth/`` (a run's outputs, ``BOOK/run`` by default) is not counted:
    :func:`write_book` never writes into it nor removes it.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> for name in ("accounts.csv", "mine.txt", "truth/values.csv", "truth/notes.md", "run/summary.json"):
    ...     (folder / name).parent.mkdir(exist_ok=True)
    ...     _ = (folder / name).write_text("x")
    >>> foreign_files(folder)
    ['mine.txt', 'truth/notes.md']
    """
    foreign: list[str] = []
    for entry in sorted(out_dir.iterdir()):
        if entry.name == "truth" and entry.is_dir() and not entry.is_symlink():
            foreign += [
                f"truth/{f.name}" for f in sorted(entry.iterdir()) if f.name not in TRUTH_FILES or not f.is_file()
            ]
        elif entry.is_dir() and not entry.is_symlink():
            continue  # a run's outputs (BOOK/run) or the user's own folder: left as it is
        elif entry.name not in BOOK_FILES or not entry.is_file() or entry.is_symlink():
            foreign.append(entry.name)
    return foreign


def _name_some(names: list[str], most: int = 5) -> str:
    shown = ", ".join(names[:most])
    return shown if len(names) <= most else f"{shown} and {len(names) - most} more"


def check_out_dir(out_dir: str | Path, *, overwrite: bool, how_to_overwrite: str = "pass overwrite=True") -> Path:
    """Check that :func:`write_book` may write to ``out_dir``, before anything is simulated.

    Parameters
    ----------
    out_dir
        The folder to create.
    overwrite
        Whether the book's own files in a non-empty ``out_dir`` may be replaced. Never other
        files: a folder that holds any is refused.
    how_to_overwrite
        What the caller's user does to replace it (the command line says ``pass --force``).

    Returns
    -------
    pathlib.Path
        ``out_dir``, made absolute (so ``.`` names the current folder).

    Raises
    ------
    ConfigError
        If ``out_dir`` exists and is not a folder, or is a folder that is not empty and
        ``overwrite`` is false, or holds files other than a simulated book's own.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "keep.txt").write_text("x")
    >>> check_out_dir(folder, overwrite=False, how_to_overwrite="pass --force")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nextmove.errors.ConfigError: ...: folder is not empty; pass --force to replace the book in it, or choose ...
    >>> check_out_dir(folder, overwrite=True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nextmove.errors.ConfigError: ...: holds files that are not a simulated book's (keep.txt), which would be ...
    >>> export = Path(tempfile.mkdtemp())
    >>> _ = (export / "accounts.csv").write_text("account_id")
    >>> check_out_dir(export, overwrite=True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nextmove.errors.ConfigError: ...: holds a book that nextmove did not simulate (accounts.csv, and no ...
    """
    out = Path(out_dir).resolve()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out_dir}: exists and is not a folder; choose another output folder")
    check_folder(out, "the output folder")  # a parent that is a file, or not writable
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ConfigError(
                f"{out_dir}: folder is not empty; {how_to_overwrite} to replace the book in it, "
                "or choose another folder"
            )
        foreign = foreign_files(out)
        if foreign:
            raise ConfigError(
                f"{out_dir}: holds files that are not a simulated book's ({_name_some(foreign)}), which would be "
                "left beside the new book or lost: replacing replaces only a book's own files (accounts.csv, "
                "signals, touches.csv, outcomes.csv, playbook.toml, truth/); move them elsewhere or choose "
                "another folder"
            )
        book_files = [e.name for e in out.iterdir() if e.name in BOOK_FILES]
        if book_files and not any((out / "truth" / f"values.{ext}").is_file() for ext in ("parquet", "csv")):
            # Every simulated book has its truth: a book without one is an export, the user's own data.
            raise ConfigError(
                f"{out_dir}: holds a book that nextmove did not simulate ({_name_some(sorted(book_files))}, and no "
                "truth/values): replacing it would overwrite your data; choose another folder"
            )
    return out


def _discard(*staged: StagedFiles) -> None:
    for files in staged:
        files.discard()


def write_book(result: SimResult, out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Write the book, its playbook and its truth to ``out_dir``.

    Writes ``accounts.csv``, ``signals.parquet`` (or ``.csv`` under
    ``signals_format="csv"``), ``touches.csv``, ``outcomes.csv``, ``playbook.toml`` and
    ``truth/`` (tables in the signals format and a ``README.md``). Everything is written to a
    hidden temporary folder first and moved into place only once all is written, so a failure
    leaves ``out_dir`` as it was.

    Parameters
    ----------
    result
        What :func:`simulate` returned.
    out_dir
        The folder to create.
    overwrite
        Replace the book's own files (those listed above, and a signals or truth table in the
        other format) if ``out_dir`` is not empty. A folder that holds any other file is refused,
        whatever ``overwrite`` says: nothing but a book's own files is ever replaced or removed.

    Returns
    -------
    pathlib.Path
        ``out_dir``, made absolute.

    Raises
    ------
    ConfigError
        If ``out_dir`` exists, is not empty and ``overwrite`` is false, holds other files than a
        book's own, or is not a folder.
    """
    out = check_out_dir(out_dir, overwrite=overwrite)
    ext = result.config.signals_format
    staged = StagedFiles(out)
    staged_truth = StagedFiles(out / "truth")
    try:
        book = result.book
        tmp = staged.folder
        _write(book.accounts, tmp / "accounts.csv")
        _write(book.signals, tmp / f"signals.{ext}")
        _write(book.touches, tmp / "touches.csv")
        _write(book.outcomes, tmp / "outcomes.csv")
        (tmp / "playbook.toml").write_text(result.playbook_text, encoding="utf-8")
        truth_dir = staged_truth.folder
        truth = result.truth
        for name in TRUTH_TABLES:
            _write(getattr(truth, name), truth_dir / f"{name}.{ext}")
        readme = TRUTH_README.format(
            seed=result.config.seed,
            as_of=result.as_of.strftime(CSV_DATETIME),
            horizon=result.world.playbook.horizon_days,
            ext=ext,
        )
        (truth_dir / "README.md").write_text(readme, encoding="utf-8")
        with signals_held():  # the book and its truth move together, a Ctrl-C or SIGTERM waiting for both
            written = set(staged.publish()) | {f"truth/{name}" for name in staged_truth.publish()}
    except BaseException:
        # Whole even through a second Ctrl-C; twice when the first call raises (a Ctrl-C in Polars raises twice).
        try:
            clean_up(_discard, staged_truth, staged)
        except KeyboardInterrupt:
            clean_up(_discard, staged_truth, staged)
        raise
    # A table in the other format, left from an earlier book, would be read beside the new one.
    for name in (*BOOK_FILES, *(f"truth/{name}" for name in TRUTH_FILES)):
        if name not in written:
            (out / name).unlink(missing_ok=True)
    return out
