"""A playbook is read in Unicode NFC, as a book's names are: an outcome kind, stage or signal written with combining
accents (as some editors and macOS write them) is the name the book writes with precomposed letters."""

from __future__ import annotations

import unicodedata

import pytest

from nextmove.errors import PlaybookError
from nextmove.playbook.loader import parse_playbook


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


def _playbook(kind: str, stage: str, signal: str, key: str = "bindung") -> str:
    return f'''
[objectives."{key}"]
outcome = "{kind}"
sense = "avoid"
value = "fixed"
value_usd = 100

[[actions]]
id = "call"
name = "Rückruf"
team = "cs"
objective = "{key}"
default_for_stages = ["{stage}"]

[signal_roles]
support = ["{signal}"]
'''


def test_a_playbooks_names_are_read_in_nfc() -> None:
    # The objective measured 'Ku\u0308ndigung', which no outcome row (read in NFC) has: nothing was learned.
    pb = parse_playbook(_playbook(nfd("Kündigung"), nfd("Verlängerung"), nfd("Ödeme hatası")))
    assert pb.objectives["bindung"].outcome == "Kündigung"
    assert pb.actions[0].default_for_stages == ["Verlängerung"]
    assert pb.actions[0].name == "Rückruf"
    assert pb.signal_roles.support == ["Ödeme hatası"]


def test_two_keys_differing_only_by_their_form_are_refused() -> None:
    text = (
        _playbook("churn", "renewal", "tickets", key="bindung")
        + """
[objectives."kündigung"]
outcome = "churn"
sense = "avoid"
value = "fixed"
value_usd = 1

[objectives."{}"]
outcome = "churn"
sense = "avoid"
value = "fixed"
value_usd = 2
""".format(nfd("kündigung"))
    )
    with pytest.raises(PlaybookError, match=r"objectives has the keys 'k\\xfcndigung' and 'ku\\u0308ndigung'"):
        parse_playbook(text, source="playbook.toml")
