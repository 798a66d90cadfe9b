"""Helpers shared by the benchmarks: wall time, peak memory and running a step in its own process.

Peak memory is the process's maximum resident set size, which only grows: a step whose memory must
not be mixed with another's (data generation vs. the code measured) runs in a child process of its
own, see :func:`run_child`, and reports :func:`peak_rss_bytes`.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far, in bytes.

    On Linux this is ``VmHWM`` of ``/proc/self/status``: ``ru_maxrss`` is carried over from the
    parent through fork and exec, so a child started by a big parent would report the parent's size.
    Elsewhere, ``ru_maxrss`` (macOS reports bytes, others KiB).
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def current_rss_bytes() -> int:
    """Resident set size of this process now, in bytes (Linux only; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
    except OSError:
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (all threads), in seconds.

    Unlike wall time it hardly depends on what else the machine is doing.
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Timing:
    """Seconds spent in a ``with timed() as t:`` block, set when the block ends."""

    seconds: float = 0.0
    _start: float = field(default=0.0, repr=False)


@contextmanager
def timed() -> Iterator[Timing]:
    """Measure the wall time of a block."""
    t = Timing(_start=time.perf_counter())
    try:
        yield t
    finally:
        t.seconds = time.perf_counter() - t._start


def machine() -> str:
    """A one-line description of the machine: host, cores, memory."""
    cores = os.cpu_count() or 0
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    except (ValueError, OSError):
        mem = 0.0
    return f"{platform.node()}, {cores} cores, {mem:.0f} GiB, Python {platform.python_version()}"


def run_child(script: Path, args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``script args`` with this interpreter and return the JSON object its last stdout line prints.

    The child's stderr passes through; a failing child raises ``RuntimeError`` with its output.
    """
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def lab_book_and_training(config: Any, cache: Path | None) -> tuple[Any, Any, Any]:
    """A lab book (``simulate(config)``), its training set and its snapshot at as_of.

    With ``cache``, the training set and snapshot are kept there as Parquet, keyed by the book's
    size, seed and whether it logs propensities, and read back on later runs.
    """
    import polars as pl

    from nextmove.features import build_training_set, compute_features
    from nextmove.sim import simulate

    result = simulate(config)
    playbook = config.resolved_playbook()
    tag = f"lab_{config.accounts}_{config.months}_{config.seed}_{int(config.with_propensities)}"
    if cache is not None and (cache / f"{tag}_training.parquet").exists():
        training = pl.read_parquet(cache / f"{tag}_training.parquet")
        snapshot = pl.read_parquet(cache / f"{tag}_snapshot.parquet")
        return result, training, snapshot
    training = build_training_set(result.book, playbook)
    snapshot = compute_features(result.book, result.as_of, playbook=playbook)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        training.write_parquet(cache / f"{tag}_training.parquet")
        snapshot.write_parquet(cache / f"{tag}_snapshot.parquet")
    return result, training, snapshot


def fmt_bytes(n: float) -> str:
    """Bytes as MiB or GiB, for printing."""
    return f"{n / 1024**3:.2f} GiB" if n >= 1024**3 else f"{n / MIB:.0f} MiB"


def effect_params(items: list[str]) -> dict[str, Any]:
    """``--param KEY=VALUE`` options as EffectModel settings: JSON values (``3``, ``0.4``, ``true``,
    ``[1, 2]``) as such, anything else as a string (``touch_cost_feature=touch_any_count_28d``)."""
    params: dict[str, Any] = {}
    for item in items:
        key, _, raw = item.partition("=")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params


@dataclass(frozen=True)
class DecisionInputs:
    """What deciding a lab book at one time needs besides the model: active accounts' features,
    their owners and stages, the touches (for the rules) and the truth to score with."""

    snapshot: Any
    touches: Any
    as_of: Any
    owners: list[str]
    stages: list[str]
    truth: Any


def decision_inputs(book: Any, playbook: Any, as_of: Any, truth: Any, snapshot: Any | None = None) -> DecisionInputs:
    """The active accounts' snapshot (computed unless given) with their owners and stages."""
    from nextmove.engine.run import active_accounts
    from nextmove.features import compute_features

    if snapshot is None:
        active = active_accounts(book, playbook, as_of)
        snapshot = compute_features(book, as_of, playbook=playbook).join(active, on="account_id", how="semi")
    accounts = snapshot.select("account_id").join(
        book.accounts.select("account_id", "owner", "lifecycle_stage"), on="account_id", how="left"
    )
    return DecisionInputs(
        snapshot=snapshot,
        touches=book.touches,
        as_of=as_of,
        owners=accounts.get_column("owner").to_list(),
        stages=accounts.get_column("lifecycle_stage").to_list(),
        truth=truth,
    )


def decision_rules(inputs: DecisionInputs, playbook: Any) -> Any:
    """The playbook's rules (eligibility, cooldowns, caps) checked for the accounts of ``inputs``."""
    from nextmove.decide.rules import check_rules
    from nextmove.features import feature_schema

    return check_rules(inputs.snapshot, inputs.touches, playbook, inputs.as_of, feature_schema(inputs.snapshot))


def decide_and_score(
    inputs: DecisionInputs,
    model: Any,
    playbook: Any,
    risk_aversion: float = 0.0,
    values: Any | None = None,
    rules: Any | None = None,
) -> dict[str, Any]:
    """Project with ``model`` (or take the projected ``values`` given), decide with the real rules (or the
    ``rules`` already checked, :func:`decision_rules`) and capacities, and score against the truth
    (:func:`nextmove.engine.run.regret_against_truth`), plus the allocation method and the acting count."""
    from nextmove.decide.policy import DecisionOptions, decide
    from nextmove.engine.run import regret_against_truth

    if values is None:
        values = model.project(inputs.snapshot).values
    if rules is None:
        rules = decision_rules(inputs, playbook)
    decisions = decide(
        rules,
        values,
        playbook,
        owners=inputs.owners,
        stages=inputs.stages,
        run_key=inputs.as_of.isoformat(),
        options=DecisionOptions(risk_aversion=risk_aversion),
    )
    regret = regret_against_truth(decisions, inputs.truth)
    assert regret is not None
    return {
        **regret,
        "allocation": decisions.allocation.method,
        "gap_to_bound": decisions.allocation.gap_to_bound,
        "acting": int((decisions.choice >= 0).sum()),
    }
