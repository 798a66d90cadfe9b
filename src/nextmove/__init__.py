"""nextmove: the single best next move for every customer, with the evidence attached.

A book of business (accounts, signals, touches, outcomes: CSV or Parquet files, or a database) and a
playbook (objectives, the actions your teams may take, contact rules and capacities) go in; one
recommended action per account comes out, with the evidence behind it, its projected outcome, and
how it differs from the lifecycle-stage default. Lift against a randomised control cohort then
measures whether it worked.

The command line (``nextmove --help``) runs the whole loop: ``init``, ``validate``, ``run``,
``report``, ``lift``, ``serve``. From Python::

    import nextmove
    from nextmove.engine.run import run

    playbook = nextmove.load_playbook("my-workspace/book/playbook.toml")
    book = nextmove.load_book("my-workspace/book", playbook=playbook)
    result = run(book, playbook, out_dir="my-workspace/run")

The layers, each a subpackage: ``book`` (read and validate), ``playbook``, ``features``,
``models`` (outcomes, health, effects), ``decide`` (rules, capacity, exploration, evidence),
``measure`` (lift, off-policy evaluation), ``engine`` (the run, online decisions), ``store``,
``api``, ``report``, ``segment``, and ``sim`` (the lab: synthetic books with a known truth).
"""

from nextmove._version import __version__
from nextmove.book import Book
from nextmove.book.problems import BookValidationError, Problem, ValidationReport
from nextmove.book.validate import load_book, validate_book
from nextmove.playbook import Playbook
from nextmove.playbook.loader import load_playbook

__all__ = [
    "Book",
    "BookValidationError",
    "Playbook",
    "Problem",
    "ValidationReport",
    "__version__",
    "load_book",
    "load_playbook",
    "validate_book",
]
