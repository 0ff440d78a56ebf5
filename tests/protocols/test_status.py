"""The status-word tables: one for the card's commands, one for the PSAM's, each word once with its meaning; the
terminal names words only through them."""

from __future__ import annotations

import ast
import re
import tokenize
from pathlib import Path

import pytest

from protocols.status import TABLES, CardStatus, PsamStatus, describe, format_sw, is_known
from sim.card import SimCard
from sim.psam import SimPsam

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("table", [CardStatus, PsamStatus])
def test_each_word_once_with_a_meaning(table: type) -> None:
    assert len(table.__members__) == len(list(table))  # no value given twice (an Enum would make it an alias)
    assert all(word.meaning and word.bytes == word.value.to_bytes(2, "big") for word in table)


def test_the_psam_table_holds_what_a_psam_answers_with_its_own_meaning() -> None:
    assert describe(0x6A88, "sam") == PsamStatus.KEY_NOT_FOUND.meaning != describe(0x6A88)
    assert format_sw(0x9302, "sam") == "9302 (MAC invalid (MAC2 rejected))"
    assert is_known(0x9401, "sam")  # a card's word in a PSAM trace is still named, from the card's table
    assert TABLES == {"card": CardStatus, "sam": PsamStatus}


def test_what_the_simulated_devices_answer_is_in_their_tables() -> None:
    for device, table in ((SimCard, CardStatus), (SimPsam, PsamStatus)):
        source = Path(device.__module__.replace(".", "/") + ".py")
        named = {node.attr for node in ast.walk(ast.parse((ROOT / source).read_text(encoding="utf-8")))
                 if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                 and node.value.id == table.__name__}
        assert named and named <= set(table.__members__)


def _status_literals(path: Path) -> list[str]:
    """Hex literals of four digits that read as a status word (6xxx, 9xxx)."""
    with path.open("rb") as source:
        return [f"{path.relative_to(ROOT)}:{token.start[0]}: {token.string}"
                for token in tokenize.tokenize(source.readline)
                if token.type == tokenize.NUMBER and re.fullmatch(r"0[xX][69][0-9a-fA-F]{3}", token.string)]


def test_the_terminal_names_status_words_only_through_the_tables() -> None:
    offences = [line for path in sorted((ROOT / "terminal").rglob("*.py")) for line in _status_literals(path)]
    assert offences == []
