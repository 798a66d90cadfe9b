"""nextmove: the single best next move for every customer, with the evidence attached."""

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
