"""Data factories shared by tests and benchmarks: books nextmove's lab did not generate."""

from nextmove.testing.consumers import CONSUMER_PLAYBOOK, write_consumer_book
from nextmove.testing.hillstrom import HILLSTROM_PLAYBOOK, hillstrom_book, hillstrom_playbook, hillstrom_test_positions
from nextmove.testing.subscriptions import SUBSCRIPTION_PLAYBOOK, write_subscription_book

__all__ = [
    "CONSUMER_PLAYBOOK",
    "HILLSTROM_PLAYBOOK",
    "SUBSCRIPTION_PLAYBOOK",
    "hillstrom_book",
    "hillstrom_playbook",
    "hillstrom_test_positions",
    "write_consumer_book",
    "write_subscription_book",
]
