"""Data factories shared by tests and benchmarks: books nextmove's lab did not generate."""

from nextmove.testing.hillstrom import HILLSTROM_PLAYBOOK, hillstrom_book, hillstrom_playbook, hillstrom_test_positions
from nextmove.testing.subscriptions import SUBSCRIPTION_PLAYBOOK, write_subscription_book

__all__ = [
    "HILLSTROM_PLAYBOOK",
    "SUBSCRIPTION_PLAYBOOK",
    "hillstrom_book",
    "hillstrom_playbook",
    "hillstrom_test_positions",
    "write_subscription_book",
]
