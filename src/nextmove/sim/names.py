"""Deterministic made-up names for simulated companies and CSMs."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

_ADJECTIVES = (
    "Amber", "Apex", "Arctic", "Azure", "Blue", "Bold", "Bright", "Cedar", "Clear", "Cobalt",
    "Coral", "Crimson", "Crystal", "Delta", "Eastern", "Emerald", "Evergreen", "First", "Golden",
    "Granite", "Harbor", "Horizon", "Iron", "Juniper", "Keystone", "Lunar", "Maple", "Meridian",
    "Northern", "Nova", "Oak", "Pacific", "Pioneer", "Prime", "Quantum", "Red", "Silver", "Solar",
    "Summit", "True",
)  # fmt: skip
_NOUNS = (
    "Analytics", "Bio", "Bridge", "Capital", "Cloud", "Data", "Dynamics", "Energy", "Foods",
    "Freight", "Games", "Health", "Hotels", "Insights", "Labs", "Learning", "Logic", "Logistics",
    "Media", "Medical", "Metrics", "Mobility", "Networks", "Optics", "Partners", "Pay", "Press",
    "Retail", "Robotics", "Security", "Software", "Sports", "Studios", "Supply", "Systems",
    "Telecom", "Travel", "Ventures", "Vision", "Works",
)  # fmt: skip
_SUFFIXES = ("Inc", "LLC", "Ltd", "Group", "Co", "GmbH", "SA", "Corp")
_FIRST = (
    "Aisha", "Ben", "Carla", "Dev", "Elena", "Femi", "Grace", "Hiro", "Ines", "Jonas", "Kavya",
    "Liam", "Maya", "Noah", "Olga", "Priya", "Quinn", "Rafael", "Sara", "Tomas", "Uma", "Victor",
    "Wen", "Ximena", "Yusuf", "Zoe", "Amir", "Bianca", "Chen", "Diego",
)  # fmt: skip
_LAST = (
    "Adams", "Becker", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ivanova",
    "Jensen", "Kim", "Lopez", "Martin", "Nakamura", "Okafor", "Patel", "Quintero", "Rossi",
    "Schmidt", "Tanaka", "Usman", "Varga", "Walsh", "Xu", "Yilmaz", "Zhang", "Andersen", "Bauer",
    "Cohen", "Dias",
)  # fmt: skip


def company_name_order(rng: np.random.Generator) -> NDArray[np.int64]:
    """A random order of the company-name space, drawn once per world."""
    space = len(_ADJECTIVES) * len(_NOUNS) * len(_SUFFIXES)
    order: NDArray[np.int64] = rng.permutation(space).astype(np.int64)
    return order


def company_name(order: NDArray[np.int64], i: int) -> str:
    """The name of the ``i``-th company created; past the name space names get a number."""
    space = len(order)
    adj, rest = divmod(int(order[i % space]), len(_NOUNS) * len(_SUFFIXES))
    noun, suffix = divmod(rest, len(_SUFFIXES))
    name = f"{_ADJECTIVES[adj]} {_NOUNS[noun]} {_SUFFIXES[suffix]}"
    return name if i < space else f"{name} {i // space + 1}"


def person_names(rng: np.random.Generator, count: int) -> list[str]:
    """``count`` distinct person names (first and last); past the name space they get a number."""
    space = len(_FIRST) * len(_LAST)
    order = rng.permutation(space)
    names = []
    for i in range(count):
        first, last = divmod(int(order[i % space]), len(_LAST))
        name = f"{_FIRST[first]} {_LAST[last]}"
        names.append(name if i < space else f"{name} {i // space + 1}")
    return names
