"""Decide: eligibility, value, allocation under capacity, exploration and control, evidence.

(``allocate`` is not re-exported here: it would hide the ``nextmove.decide.allocate`` module.)
"""

from nextmove.decide.allocate import Allocation, Resource
from nextmove.decide.explain import explain_decisions, receipt_text
from nextmove.decide.policy import DecisionOptions, Decisions, decide, playbook_resources
from nextmove.decide.rules import Candidate, RuleCheck, Why, candidates, check_rules

__all__ = [
    "Allocation",
    "Candidate",
    "DecisionOptions",
    "Decisions",
    "Resource",
    "RuleCheck",
    "Why",
    "candidates",
    "check_rules",
    "decide",
    "explain_decisions",
    "playbook_resources",
    "receipt_text",
]
