"""Progress of long commands: live bars on a terminal, flushed plain lines in a file, CI log or cron mail."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from rich.console import Console

from nextmove.cli._common import StageProgress, status
from nextmove.engine import RUN_STAGES


class FlushLog(io.StringIO):
    """A log file that remembers what had been flushed, as `tail -f` of a redirected run would show it."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed = ""

    def flush(self) -> None:
        self.flushed = self.getvalue()


def _clock() -> Iterator[float]:
    t = 0.0
    while True:
        yield t
        t += 2.5


def test_stage_progress_prints_a_flushed_line_as_each_stage_starts_and_ends_when_not_a_terminal() -> None:
    log = FlushLog()
    ticks = _clock()
    with StageProgress(RUN_STAGES, Console(file=log, force_terminal=False), clock=lambda: next(ticks)) as stages:
        for i, stage in enumerate(RUN_STAGES):
            stages.step(stage)
            # Readable the moment the stage starts, not when the run ends.
            assert log.flushed.endswith(f"{stage}…\n")
            if i:
                assert f"{RUN_STAGES[i - 1]}: done in 2.5 s\n{stage}…\n" in log.flushed
            if i == 1:
                stages.detail("learning from 4,558,168 decisions")
                assert log.flushed.endswith(f"{stage}: learning from 4,558,168 decisions\n")
    lines = log.getvalue().splitlines()
    expected = []
    for stage in RUN_STAGES:
        expected.append(f"{stage}…")
        if stage == RUN_STAGES[1]:
            expected.append(f"{stage}: learning from 4,558,168 decisions")
        expected.append(f"{stage}: done in 2.5 s")
    assert lines == expected
    assert log.flushed == log.getvalue()
    assert "\x1b" not in log.getvalue()  # no cursor movements or colours in a log file


def _fail_in_the_second_stage(progress: StageProgress) -> None:
    with progress as stages:
        stages.step(RUN_STAGES[0])
        stages.step(RUN_STAGES[1])
        stages.detail("learning from 10 decisions")
        raise RuntimeError("boom")


def test_stage_progress_says_which_stage_failed_and_how_long_it_ran_when_not_a_terminal() -> None:
    log = FlushLog()
    ticks = _clock()
    progress = StageProgress(RUN_STAGES, Console(file=log, force_terminal=False), clock=lambda: next(ticks))
    with pytest.raises(RuntimeError, match="boom"):
        _fail_in_the_second_stage(progress)
    assert log.flushed.splitlines() == [
        f"{RUN_STAGES[0]}…",
        f"{RUN_STAGES[0]}: done in 2.5 s",
        f"{RUN_STAGES[1]}…",
        f"{RUN_STAGES[1]}: learning from 10 decisions",
        f"{RUN_STAGES[1]}: failed after 2.5 s",
    ]


def test_stage_progress_draws_bars_on_a_terminal_and_marks_the_failed_stage() -> None:
    out = io.StringIO()
    terminal = Console(file=out, force_terminal=True, width=100)
    with pytest.raises(RuntimeError, match="boom"):
        _fail_in_the_second_stage(StageProgress(RUN_STAGES, terminal))
    text = out.getvalue().rsplit("\x1b[2K", 1)[-1]  # the last frame the terminal shows
    assert RUN_STAGES[0] in text
    assert f"{RUN_STAGES[1]}: failed" in text
    assert "✗" in text
    assert RUN_STAGES[-1] not in text  # stages never reached are dropped
    assert "done in" not in text  # the bars show the times; no log lines on a terminal


def test_status_prints_its_text_at_once_when_not_a_terminal() -> None:
    log = FlushLog()
    with status("Loading and validating the book…", Console(file=log, force_terminal=False)):
        assert log.flushed == "Loading and validating the book…\n"


def test_status_says_each_step_on_a_line_of_its_own_when_not_a_terminal() -> None:
    # What health and evaluate report as they go (a spinner's text on a terminal) reaches a log too.
    log = FlushLog()
    with status("Scoring health…", Console(file=log, force_terminal=False)) as step:
        step("fitting the churn model")
        assert log.flushed == "Scoring health…\nfitting the churn model\n"
    terminal = io.StringIO()
    with status("Scoring health…", Console(file=terminal, force_terminal=True)) as step:
        step("fitting [the] churn model")  # markup-like text is escaped, not read as style
