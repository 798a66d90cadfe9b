"""Writing a simulated book and its truth to a folder, atomically."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import polars as pl

from nextmove._files import check_folder
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


def check_out_dir(out_dir: str | Path, *, overwrite: bool, how_to_overwrite: str = "pass overwrite=True") -> Path:
    """Check that :func:`write_book` may write to ``out_dir``, before anything is simulated.

    Parameters
    ----------
    out_dir
        The folder to create.
    overwrite
        Whether a non-empty ``out_dir`` may be replaced.
    how_to_overwrite
        What the caller's user does to replace it (the command line says ``pass --force``).

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    Raises
    ------
    ConfigError
        If ``out_dir`` exists and is not a folder, or is a folder that is not empty and
        ``overwrite`` is false.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "keep.txt").write_text("x")
    >>> check_out_dir(folder, overwrite=False, how_to_overwrite="pass --force")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nextmove.errors.ConfigError: ...: folder is not empty; pass --force to replace it, or choose another folder
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder; choose another output folder")
    check_folder(out, "the output folder")  # a parent that is a file, or not writable
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out}: folder is not empty; {how_to_overwrite} to replace it, or choose another folder")
    return out


def write_book(result: SimResult, out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Write the book, its playbook and its truth to ``out_dir``.

    Writes ``accounts.csv``, ``signals.parquet`` (or ``.csv`` under
    ``signals_format="csv"``), ``touches.csv``, ``outcomes.csv``, ``playbook.toml`` and
    ``truth/`` (tables in the signals format and a ``README.md``). Everything is written to a
    temporary folder beside ``out_dir`` and renamed into place, so a failure leaves nothing
    half-written.

    Parameters
    ----------
    result
        What :func:`simulate` returned.
    out_dir
        The folder to create.
    overwrite
        Replace ``out_dir`` if it exists and is not empty.

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    Raises
    ------
    ConfigError
        If ``out_dir`` exists, is not empty and ``overwrite`` is false, or is not a folder.
    """
    out = check_out_dir(out_dir, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    ext = result.config.signals_format
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        book = result.book
        _write(book.accounts, tmp / "accounts.csv")
        _write(book.signals, tmp / f"signals.{ext}")
        _write(book.touches, tmp / "touches.csv")
        _write(book.outcomes, tmp / "outcomes.csv")
        (tmp / "playbook.toml").write_text(result.playbook_text, encoding="utf-8")
        truth_dir = tmp / "truth"
        truth_dir.mkdir()
        truth = result.truth
        for name in ("values", "accounts", "decisions", "propensities", "groups", "group_actions"):
            _write(getattr(truth, name), truth_dir / f"{name}.{ext}")
        readme = TRUTH_README.format(
            seed=result.config.seed,
            as_of=result.as_of.strftime(CSV_DATETIME),
            horizon=result.world.playbook.horizon_days,
            ext=ext,
        )
        (truth_dir / "README.md").write_text(readme, encoding="utf-8")
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            if old.exists():
                shutil.rmtree(old)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
