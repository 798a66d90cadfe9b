"""Data factories shared by tests and benchmarks: books nextmove's lab did not generate."""

from nextmove.testing.hillstrom import HILLSTROM_PLAYBOOK, hillstrom_book, hillstrom_playbook, hillstrom_test_positions

__all__ = ["HILLSTROM_PLAYBOOK", "hillstrom_book", "hillstrom_playbook", "hillstrom_test_positions"]
