"""Names that differ only by their Unicode form (NFC ``ü`` against NFD ``u`` + U+0308) are one name once a book is
read; ids are kept as written, and an id unknown only by its form says so."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from nextmove.book import gone_accounts
from nextmove.book.problems import Rule
from nextmove.book.validate import load_book, unmatched_kinds_notes, validate_book
from nextmove.features import compute_features
from nextmove.playbook.loader import parse_playbook

AS_OF = datetime(2025, 6, 1, tzinfo=UTC)
KIND = "Kündigung"
KIND_NFD = unicodedata.normalize("NFD", KIND)
SIGNAL = "Ödeme hatası"
SIGNAL_NFD = unicodedata.normalize("NFD", SIGNAL)
ACTION = "callback"  # action ids are ASCII (the playbook's pattern)
STAGE = "Verlängerung"
OWNER = "Jürgen Groß"
PLAYBOOK = parse_playbook(f'''
[objectives.retention]
outcome = "{KIND}"
sense = "avoid"
value = "fixed"
value_usd = 100
ends_account = true

[[actions]]
id = "{ACTION}"
name = "Rückruf"
team = "cs"
objective = "retention"
default_for_stages = ["{STAGE}"]
''')


def _write(folder: Path, tables: dict[str, str]) -> Path:
    folder.mkdir(exist_ok=True)
    for name, text in tables.items():
        (folder / f"{name}.csv").write_text(text, encoding="utf-8")
    return folder


def _book(folder: Path, *, nfd: bool) -> Path:
    """Four accounts; half of each name written in NFD when ``nfd``, as a second system exports them."""

    def half(name: str, i: int) -> str:
        return unicodedata.normalize("NFD", name) if nfd and i % 2 else name

    return _write(
        folder,
        {
            "accounts": "account_id,lifecycle_stage,owner\n"
            + "".join(f"a{i},{half(STAGE, i)},{half(OWNER, i)}\n" for i in range(4)),
            "signals": "account_id,ts,name,value\n"
            + "".join(f"a{i},2025-05-0{i + 1},{half(SIGNAL, i)},1\n" for i in range(4)),
            "touches": "account_id,action_id,ts\n" + "".join(f"a{i},{ACTION},2025-04-0{i + 1}\n" for i in range(4)),
            "outcomes": "account_id,ts,kind\n" + "".join(f"a{i},2025-05-1{i},{half(KIND, i)}\n" for i in range(4)),
        },
    )


def test_a_kind_written_in_nfd_is_the_same_kind(tmp_path: Path) -> None:
    # validate said valid and listed "Outcome kinds (2): Kündigung (2), Kündigung (2)"; the churns written in NFD
    # did not end their accounts, which still got actions.
    folder = _book(tmp_path / "book", nfd=True)
    report = validate_book(folder, playbook=PLAYBOOK, as_of=AS_OF)
    assert report.ok, [p.message() for p in report.problems]
    assert report.outcome_counts == {KIND: 4}
    assert report.signal_counts == {SIGNAL: 4}
    assert report.action_counts == {ACTION: 4}
    assert report.stage_counts == {STAGE: 4}
    book = load_book(folder, playbook=PLAYBOOK, as_of=AS_OF)
    assert book.outcomes.get_column("kind").unique().to_list() == [KIND]
    assert book.accounts.get_column("owner").unique().to_list() == [OWNER]
    assert unmatched_kinds_notes(book, PLAYBOOK) == []
    assert sorted(gone_accounts(book, PLAYBOOK, AS_OF).get_column("account_id").to_list()) == ["a0", "a1", "a2", "a3"]


def test_a_signal_written_in_nfd_is_one_feature_family(tmp_path: Path) -> None:
    # The NFD rows were a second signal: features odeme_hatas_* and odeme_hatas_2_*, each seeing half the events.
    book = load_book(_book(tmp_path / "book", nfd=True), playbook=PLAYBOOK, as_of=AS_OF)
    assert book.signal_names == [SIGNAL]
    snapshot = compute_features(book, AS_OF, playbook=PLAYBOOK, windows_days=(90,))
    counts = [c for c in snapshot.columns if c.endswith("_count_90d") and not c.startswith(("touch_", "role_"))]
    assert counts == ["odeme_hatasi_count_90d"]
    assert snapshot.get_column("odeme_hatasi_count_90d").to_list() == [1, 1, 1, 1]


def test_names_read_in_nfc_from_frames_and_categories_too() -> None:
    frames = {
        "accounts": pl.DataFrame(
            {"account_id": ["a1", "a2"], "segment": ["Küche", unicodedata.normalize("NFD", "Küche")]},
            schema_overrides={"segment": pl.Categorical},
        ),
        "outcomes": pl.DataFrame({"account_id": ["a1", "a2"], "ts": ["2025-05-01"] * 2, "kind": [KIND_NFD, KIND]}),
    }
    book = load_book(frames, as_of=AS_OF)
    assert book.accounts.get_column("segment").to_list() == ["Küche", "Küche"]
    assert book.outcomes.get_column("kind").to_list() == [KIND, KIND]


def test_ids_are_kept_as_written(tmp_path: Path) -> None:
    """A CRM joins back on its ids byte for byte: an id written in NFD stays in NFD."""
    nfd = unicodedata.normalize("NFD", "müller-1")
    folder = _write(
        tmp_path / "book",
        {
            "accounts": f"account_id\n{nfd}\n",
            "touches": f"account_id,action_id,ts,touch_id\n{nfd},none,2025-05-01,{nfd}-t\n",
            "outcomes": f"account_id,ts,kind,touch_id,outcome_id\n{nfd},2025-05-02,churn,{nfd}-t,{nfd}-o\n",
        },
    )
    book = load_book(folder, as_of=AS_OF)
    assert book.accounts.get_column("account_id").to_list() == [nfd]
    assert book.touches.row(0, named=True)["touch_id"] == f"{nfd}-t"
    assert book.outcomes.row(0, named=True)["outcome_id"] == f"{nfd}-o"


def test_an_id_unknown_only_by_its_form_says_so(tmp_path: Path) -> None:
    # The problem showed 'müşteri-1' as the unknown id, the very text of accounts.csv.
    known = "müşteri-1"
    written = unicodedata.normalize("NFD", known)
    folder = _write(
        tmp_path / "book",
        {
            "accounts": f"account_id\n{known}\nb2\n",
            "signals": f"account_id,ts,name,value\n{written},2025-05-01,x,1\nghost,2025-05-01,x,1\n",
            "touches": f"account_id,action_id,ts,touch_id\n{known},none,2025-05-01,tü\n",
            "outcomes": f"account_id,ts,kind,touch_id\n{known},2025-05-02,churn,{unicodedata.normalize('NFD', 'tü')}\n",
        },
    )
    report = validate_book(folder, as_of=AS_OF)
    unknown = [p for p in report.problems if p.rule is Rule.UNKNOWN_REFERENCE]
    assert [(p.table, p.row) for p in unknown] == [("signals", 1), ("signals", 2), ("outcomes", 1)]
    assert unknown[0].expected == (
        "an id present in accounts.account_id; 'mu\\u0308s\\u0327teri-1' differs from 'm\\xfc\\u015fteri-1' in "
        "accounts.csv only by Unicode normalisation (NFC vs NFD): write the ids the same way"
    )
    assert unknown[1].expected == "an id present in accounts.account_id"  # ghost: no id like it
    assert "differs from 't\\xfc' in touches.csv only by Unicode normalisation" in unknown[2].expected


def test_two_account_ids_differing_only_by_their_form_are_noted(tmp_path: Path) -> None:
    """Two accounts that print alike: kept apart (a CRM may hold both), but noted."""
    nfd = unicodedata.normalize("NFD", "josé-42")
    folder = _write(tmp_path / "book", {"accounts": f"account_id\nother\n{nfd}\njosé-42\n"})
    report = validate_book(folder, as_of=AS_OF)
    assert report.ok
    [note] = [n for n in report.notes if "Unicode normalisation" in n]
    assert "'jose\\u0301-42' (row 2) and 'jos\\xe9-42' (row 3)" in note
    book = load_book(folder, as_of=AS_OF)
    assert book.accounts.height == 3
