"""The fare file: what a valid file becomes, and the exact error for each kind of mistake."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import YktError
from terminal.errors import ConfigError
from terminal.fare_config import (
    CardTypeRule,
    FareBand,
    FlatFare,
    SectionFares,
    TransferRule,
    card_type_label,
    encode_line,
    line_name,
    parse_fares,
    read_fares,
)
from terminal.fares import FareRules

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "fares.md"
DEMO_FLAT = ROOT / "sim" / "fares" / "demo-flat.toml"
DEMO_SECTIONS = ROOT / "sim" / "fares" / "demo-sections.toml"

FLAT = "format = 1\n[fare]\nbase = 200\n"
SECTION_801 = "format = 1\n[lines.801]\nmax_trip_minutes = 120\nbands = [{ up_to = 5, fare = 100 }]\n"


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_fares(text, "fares.toml")
    return str(caught.value)


# --- valid files -----------------------------------------------------------------------------------------------------


def test_minimal_flat_file():
    table = parse_fares(FLAT, "fares.toml")
    assert table.source == "fares.toml"
    assert table.name == ""
    assert table.line_numbers == "binary"
    assert table.default == FlatFare(200)
    assert dict(table.lines) == {}
    assert dict(table.card_types) == {}
    assert table.other_card_types is None
    assert table.transfer is None
    assert table.card_rule(1) is None


def test_demo_flat_file():
    table = read_fares(DEMO_FLAT)
    assert table.source == str(DEMO_FLAT)
    assert table.name == "demo flat fare"
    assert table.default == FlatFare(200)
    assert dict(table.card_types) == {
        1: CardTypeRule("percent", 100),
        2: CardTypeRule("percent", 50),
        3: CardTypeRule("free"),
        5: CardTypeRule("free"),
        4: CardTypeRule("fixed", 1),
    }
    assert table.other_card_types == CardTypeRule("refuse", reason="card type not accepted")
    assert table.card_rule(9) == table.other_card_types
    assert table.transfer is None


def test_demo_sections_file():
    table = read_fares(DEMO_SECTIONS)
    assert table.default == FlatFare(200)
    assert set(table.lines) == {b"\x00\x01", b"\x03\x21", b"\x03\x22"}
    assert table.lines[b"\x00\x01"] == FlatFare(100)
    line_801 = table.lines[b"\x03\x21"]
    assert line_801 == SectionFares(180, 500, 0, (FareBand(5, 200), FareBand(10, 300), FareBand(20, 400)))
    line_802 = table.lines[b"\x03\x22"]
    assert isinstance(line_802, SectionFares)
    assert (line_802.max_trip_minutes, line_802.max_fare, line_802.boarding_fare) == (120, 400, 100)
    assert line_802.matrix[0] == (100, 100, 200, 300, 400)
    assert table.transfer == TransferRule(90, off=100, card_types=frozenset({1, 2}))


def _doc_examples() -> list[str]:
    return re.findall(r"```toml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)


def test_docs_have_examples():
    assert len(_doc_examples()) >= 5


@pytest.mark.parametrize("index", range(len(_doc_examples())))
def test_every_docs_example_loads(index):
    """The format page's examples are complete files; a change to the format that breaks one fails here."""
    table = parse_fares(_doc_examples()[index], f"docs example {index}")
    FareRules(table)


def test_card_types_by_name_number_and_other():
    table = parse_fares(FLAT + """
[card_types]
student = { percent = 50 }
9 = { fixed = 150 }
"12" = { refuse = true, reason = "staff only" }
military = { free = true }
other = { percent = 80 }
""", "fares.toml")
    assert dict(table.card_types) == {
        2: CardTypeRule("percent", 50),
        9: CardTypeRule("fixed", 150),
        12: CardTypeRule("refuse", reason="staff only"),
        5: CardTypeRule("free"),
    }
    assert table.other_card_types == CardTypeRule("percent", 80)
    assert table.card_rule(7) == CardTypeRule("percent", 80)


def test_transfer_percent_and_card_types_by_number():
    table = parse_fares(FLAT + "[transfer]\nwindow_minutes = 60\npercent = 50\ncard_types = [2, \"elderly\", 200]\n",
                        "fares.toml")
    assert table.transfer == TransferRule(60, percent=50, card_types=frozenset({2, 3, 200}))


def test_section_line_defaults_and_matrix():
    table = parse_fares("format = 1\n[lines.7]\nmax_trip_minutes = 30\nmatrix = [[100, 300], [250, 100]]\n", "f")
    fares = table.lines[b"\x00\x07"]
    assert fares == SectionFares(30, 300, 0, (), ((100, 300), (250, 100)))
    assert table.default is None


def test_bcd_line_numbers():
    table = parse_fares("format = 1\nline_numbers = \"bcd\"\n[lines.801]\nbase = 300\n[lines.12]\nbase = 100\n", "f")
    assert set(table.lines) == {b"\x08\x01", b"\x00\x12"}


# --- errors: the file, the field path and the reason -----------------------------------------------------------------


@pytest.mark.parametrize("text, message", [
    # the brief's example
    (FLAT + "[card_types]\nstudent = { percent = 150 }\n",
     "fares.toml: card_types.student.percent: must be 0..100, got 150"),
    # version
    ("[fare]\nbase = 200\n", "fares.toml: format: required (this build reads format = 1)"),
    ("format = 2\n[fare]\nbase = 200\n", "fares.toml: format: unsupported version 2 (this build reads 1)"),
    ("format = true\n[fare]\nbase = 200\n", "fares.toml: format: unsupported version true (this build reads 1)"),
    ("format = 1.0\n[fare]\nbase = 200\n", "fares.toml: format: unsupported version 1.0 (this build reads 1)"),
    ("format = \"1\"\n[fare]\nbase = 200\n", "fares.toml: format: unsupported version \"1\" (this build reads 1)"),
    # unknown keys, at every level
    (FLAT + "[transfr]\nwindow_minutes = 90\n",
     "fares.toml: transfr: unknown key (allowed: card_types, fare, format, line_numbers, lines, name, transfer)"),
    ("format = 1\n\"two words\" = 1\n[fare]\nbase = 200\n",
     "fares.toml: \"two words\": unknown key (allowed: card_types, fare, format, line_numbers, lines, name, "
     "transfer)"),
    ("format = 1\n[fare]\nbase = 200\nbsae = 100\n", "fares.toml: fare.bsae: unknown key (allowed: base)"),
    (FLAT + "[card_types]\nstudent = { precent = 50 }\n",
     "fares.toml: card_types.student.precent: unknown key (allowed: fixed, free, percent, reason, refuse)"),
    (FLAT + "[transfer]\nwindow_minutes = 90\noff = 100\nwindow = 5\n",
     "fares.toml: transfer.window: unknown key (allowed: card_types, off, percent, window_minutes)"),
    ("format = 1\n[lines.801]\nmax_trip_minutes = 9\nbnads = []\n",
     "fares.toml: lines.801.bnads: unknown key (allowed: bands, base, boarding_fare, matrix, max_fare, "
     "max_trip_minutes)"),
    ("format = 1\n[lines.8]\nmax_trip_minutes = 9\nbands = [{ up_to = 5, fare = 100, far = 1 }]\n",
     "fares.toml: lines.8.bands[0].far: unknown key (allowed: fare, up_to)"),
    # types and ranges
    ("format = 1\n[fare]\nbase = true\n", "fares.toml: fare.base: must be an integer (fen), got true"),
    ("format = 1\n[fare]\nbase = 2.5\n", "fares.toml: fare.base: must be an integer (fen), got 2.5"),
    ("format = 1\n[fare]\nbase = \"200\"\n", "fares.toml: fare.base: must be an integer (fen), got \"200\""),
    ("format = 1\n[fare]\nbase = -1\n", "fares.toml: fare.base: must be 0..2147483647 (fen), got -1"),
    ("format = 1\n[fare]\nbase = 2147483648\n",
     "fares.toml: fare.base: must be 0..2147483647 (fen), got 2147483648"),
    ("format = 1\n[fare]\n", "fares.toml: fare.base: required"),
    ("format = 1\nfare = 200\n", "fares.toml: fare: must be a table, got 200"),
    ("format = 1\nname = 5\n[fare]\nbase = 1\n", "fares.toml: name: must be a string, got 5"),
    ("format = 1\nline_numbers = \"hex\"\n[fare]\nbase = 1\n",
     "fares.toml: line_numbers: must be \"binary\" or \"bcd\", got \"hex\""),
    ("format = 1\n", "fares.toml: no fare: give [fare] base (every line) or at least one [lines.<number>]"),
    # card types
    ("format = 1\ncard_types = 5\n[fare]\nbase = 200\n", "fares.toml: card_types: must be a table, got 5"),
    (FLAT + "[card_types]\nstudent = 50\n", "fares.toml: card_types.student: must be a table, got 50"),
    (FLAT + "[card_types]\nstudnet = { percent = 50 }\n",
     "fares.toml: card_types.studnet: unknown card type \"studnet\" "
     "(names: normal, student, elderly, test, military, or a code 0..255)"),
    (FLAT + "[card_types]\n300 = { percent = 50 }\n",
     "fares.toml: card_types.300: must be 0..255 (a card type code), got 300"),
    (FLAT + "[card_types]\nstudent = { percent = 50 }\n2 = { free = true }\n",
     "fares.toml: card_types.2: card type 2 is also given as card_types.student"),
    (FLAT + "[card_types]\nstudent = {}\n",
     "fares.toml: card_types.student: give exactly one of percent, fixed, free, refuse"),
    (FLAT + "[card_types]\nstudent = { percent = 50, free = true }\n",
     "fares.toml: card_types.student: give exactly one of percent, fixed, free, refuse, got percent and free"),
    (FLAT + "[card_types]\nelderly = { free = false }\n",
     "fares.toml: card_types.elderly.free: must be true (omit the entry for full fare), got false"),
    (FLAT + "[card_types]\ntest = { refuse = 1 }\n",
     "fares.toml: card_types.test.refuse: must be true (omit the entry to accept the card type), got 1"),
    (FLAT + "[card_types]\ntest = { percent = 50, reason = \"no\" }\n",
     "fares.toml: card_types.test.reason: only with refuse = true"),
    (FLAT + "[card_types]\ntest = { refuse = true, reason = 5 }\n",
     "fares.toml: card_types.test.reason: must be a string, got 5"),
    (FLAT + "[card_types]\ntest = { fixed = -1 }\n",
     "fares.toml: card_types.test.fixed: must be 0..2147483647 (fen), got -1"),
    (FLAT + "[card_types]\nother = { percent = 101 }\n",
     "fares.toml: card_types.other.percent: must be 0..100, got 101"),
    # transfer
    (FLAT + "[transfer]\nwindow_minutes = 90\n",
     "fares.toml: transfer: give exactly one of off (fen) and percent (percent of the fare paid)"),
    (FLAT + "[transfer]\nwindow_minutes = 90\noff = 100\npercent = 50\n",
     "fares.toml: transfer: give exactly one of off (fen) and percent (percent of the fare paid)"),
    (FLAT + "[transfer]\noff = 100\n", "fares.toml: transfer.window_minutes: required"),
    (FLAT + "[transfer]\nwindow_minutes = 0\noff = 100\n",
     "fares.toml: transfer.window_minutes: must be 1..1440 (minutes), got 0"),
    (FLAT + "[transfer]\nwindow_minutes = 90\npercent = -5\n",
     "fares.toml: transfer.percent: must be 0..100, got -5"),
    (FLAT + "[transfer]\nwindow_minutes = 90\noff = 100\ncard_types = []\n",
     "fares.toml: transfer.card_types: must be a non-empty array of card types, got an array"),
    (FLAT + "[transfer]\nwindow_minutes = 90\noff = 100\ncard_types = \"student\"\n",
     "fares.toml: transfer.card_types: must be a non-empty array of card types, got \"student\""),
    (FLAT + "[transfer]\nwindow_minutes = 90\noff = 100\ncard_types = [\"normal\", \"pupil\"]\n",
     "fares.toml: transfer.card_types[1]: unknown card type \"pupil\" "
     "(names: normal, student, elderly, test, military, or a code 0..255)"),
    (FLAT + "[transfer]\nwindow_minutes = 90\noff = 100\ncard_types = [1, 256]\n",
     "fares.toml: transfer.card_types[1]: must be 0..255 (a card type code), got 256"),
    # lines
    (FLAT + "[lines.abc]\nbase = 1\n", "fares.toml: lines.abc: a line is named by its number (decimal digits)"),
    (FLAT + "[lines.70000]\nbase = 1\n", "fares.toml: lines.70000: a binary line number is 0..65535, got 70000"),
    ("format = 1\nline_numbers = \"bcd\"\n[lines.10000]\nbase = 1\n",
     "fares.toml: lines.10000: a BCD line number is 0..9999, got 10000"),
    (FLAT + "[lines.1]\nbase = 1\n[lines.01]\nbase = 2\n", "fares.toml: lines.01: line 1 is given twice"),
    (FLAT + "[lines.1]\nbase = 100\nmax_trip_minutes = 60\n",
     "fares.toml: lines.1.max_trip_minutes: only for a section-fare line (this line has base, a flat fare)"),
    (FLAT + "[lines.801]\nmax_trip_minutes = 60\n",
     "fares.toml: lines.801: give base (a flat fare), or bands or matrix (tap-on / tap-off section fares)"),
    (FLAT + "[lines.801]\nmax_trip_minutes = 60\nbands = [{ up_to = 1, fare = 1 }]\nmatrix = [[1]]\n",
     "fares.toml: lines.801: give base (a flat fare), or bands or matrix (tap-on / tap-off section fares)"),
    ("format = 1\n[lines.801]\nbands = [{ up_to = 5, fare = 100 }]\n",
     "fares.toml: lines.801.max_trip_minutes: required"),
    ("format = 1\n[lines.801]\nmax_trip_minutes = 1441\nbands = [{ up_to = 5, fare = 100 }]\n",
     "fares.toml: lines.801.max_trip_minutes: must be 1..1440 (minutes), got 1441"),
    ("format = 1\n[lines.801]\nmax_trip_minutes = 60\nbands = []\n",
     "fares.toml: lines.801.bands: must be a non-empty array of { up_to, fare } tables, got an array"),
    ("format = 1\n[lines.801]\nmax_trip_minutes = 60\nbands = [5]\n",
     "fares.toml: lines.801.bands[0]: must be a table, got 5"),
    ("format = 1\n[lines.801]\nmax_trip_minutes = 60\nbands = [{ fare = 100 }]\n",
     "fares.toml: lines.801.bands[0].up_to: required"),
    ("format = 1\n[lines.801]\nmax_trip_minutes = 60\nbands = [{ up_to = 256, fare = 100 }]\n",
     "fares.toml: lines.801.bands[0].up_to: must be 0..255 (stations), got 256"),
    ("format = 1\n[lines.801]\nmax_trip_minutes = 60\nbands = [{ up_to = 5, fare = 1 }, { up_to = 5, fare = 2 }]\n",
     "fares.toml: lines.801.bands[1].up_to: must be more than the band before (5), got 5"),
    ("format = 1\n[lines.801]\nmax_trip_minutes = 60\nbands = [{ up_to = 5, fare = 100 }]\nboarding_fare = 101\n",
     "fares.toml: lines.801.boarding_fare: must not exceed max_fare (100), got 101"),
    ("format = 1\n[lines.801]\nmax_trip_minutes = 60\nbands = [{ up_to = 5, fare = 100 }]\nmax_fare = -3\n",
     "fares.toml: lines.801.max_fare: must be 0..2147483647 (fen), got -3"),
    ("format = 1\n[lines.802]\nmax_trip_minutes = 60\nmatrix = []\n",
     "fares.toml: lines.802.matrix: must be a non-empty array of rows, got an array"),
    ("format = 1\n[lines.802]\nmax_trip_minutes = 60\nmatrix = [[1, 2], 3]\n",
     "fares.toml: lines.802.matrix[1]: must be an array of fares, got 3"),
    ("format = 1\n[lines.802]\nmax_trip_minutes = 60\nmatrix = [[1, 2], [3]]\n",
     "fares.toml: lines.802.matrix[1]: has 1 fares; the matrix has 2 rows and must be square"),
    ("format = 1\n[lines.802]\nmax_trip_minutes = 60\nmatrix = [[1, 2], [3, -5]]\n",
     "fares.toml: lines.802.matrix[1][1]: must be 0..2147483647 (fen), got -5"),
    # TOML syntax
    ("format = 1\n[fare]\nbase = \n", "fares.toml: line 3, column 8: TOML syntax error: Invalid value"),
    ("format = 1\nformat = 2\n", "fares.toml: line 2, column 11: TOML syntax error: Cannot overwrite a value"),
    ("[fare\n", "fares.toml: line 1, column 6: TOML syntax error: Expected ']' at the end of a table declaration"),
])
def test_error_names_file_field_and_reason(text, message):
    assert error_of(text) == message


def test_matrix_of_more_than_255_stations_is_refused():
    row = "[" + ", ".join(["1"] * 256) + "]"
    text = f"format = 1\n[lines.5]\nmax_trip_minutes = 60\nmatrix = [{', '.join([row] * 256)}]\n"
    assert error_of(text) == "fares.toml: lines.5.matrix: has 256 rows; a bus record numbers stations 1..255"


def test_config_error_is_a_project_error():
    assert issubclass(ConfigError, YktError)


def test_read_fares_missing_file(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as caught:
        read_fares(path)
    assert str(caught.value) == f"{path}: cannot read: No such file or directory"


def test_read_fares_not_utf8(tmp_path):
    path = tmp_path / "fares.toml"
    path.write_bytes(b"format = 1\nname = \"\xb9\xab\xbd\xbb\"\n[fare]\nbase = 200\n")  # GBK, not UTF-8
    with pytest.raises(ConfigError) as caught:
        read_fares(path)
    assert str(caught.value) == f"{path}: not UTF-8 text (byte 19)"


def test_read_fares_names_the_path_in_errors(tmp_path):
    path = tmp_path / "city.toml"
    path.write_text("format = 1\n[fare]\nbase = -5\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        read_fares(path)
    assert str(caught.value) == f"{path}: fare.base: must be 0..2147483647 (fen), got -5"


def test_read_fares_reads_utf8_names(tmp_path):
    path = tmp_path / "city.toml"
    path.write_text("format = 1\nname = \"公交\"\n[fare]\nbase = 200\n", encoding="utf-8")
    assert read_fares(path).name == "公交"


# --- the rules' arithmetic -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule, fare, paid", [
    (CardTypeRule("percent", 50), 200, 100),
    (CardTypeRule("percent", 50), 125, 63),  # 62.5: half a fen rounds up
    (CardTypeRule("percent", 50), 1, 1),
    (CardTypeRule("percent", 33), 199, 66),  # 65.67
    (CardTypeRule("percent", 33), 150, 50),  # 49.5
    (CardTypeRule("percent", 80), 0, 0),
    (CardTypeRule("percent", 0), 500, 0),
    (CardTypeRule("percent", 100), 777, 777),
    (CardTypeRule("fixed", 100), 200, 100),
    (CardTypeRule("fixed", 300), 200, 300),  # a fixed fare replaces the fare, even a lower one
    (CardTypeRule("fixed", 100), 0, 0),  # ... but a zero fare stays zero
    (CardTypeRule("free"), 200, 0),
])
def test_card_type_rule_apply(rule, fare, paid):
    assert rule.apply(fare) == paid


@given(st.integers(0, 10**9), st.integers(0, 100))
def test_percent_rounds_half_up(fare, percent):
    exact = Fraction(fare * percent, 100)
    paid = CardTypeRule("percent", percent).apply(fare)
    assert paid - Fraction(1, 2) <= exact < paid + Fraction(1, 2)
    assert 0 <= paid <= fare


@pytest.mark.parametrize("rule, fare, paid", [
    (TransferRule(90, off=100), 200, 100),
    (TransferRule(90, off=100), 60, 0),  # never below zero
    (TransferRule(90, percent=50), 125, 63),
    (TransferRule(90, percent=0), 125, 0),
])
def test_transfer_rule_apply(rule, fare, paid):
    assert rule.apply(fare) == paid


def test_rule_notes():
    assert [CardTypeRule("percent", 50).note, CardTypeRule("fixed", 1).note, CardTypeRule("free").note,
            CardTypeRule("refuse").note] == ["50%", "fixed 1", "free", "refused"]
    assert TransferRule(90, off=100).note == "transfer -100"
    assert TransferRule(90, percent=50).note == "transfer 50%"


def test_transfer_card_type_limit():
    limited = TransferRule(90, off=100, card_types=frozenset({2}))
    assert limited.applies_to(2) and not limited.applies_to(1)
    assert TransferRule(90, off=100).applies_to(255)


def test_bands_lookup():
    fares = SectionFares(60, 500, 0, (FareBand(5, 200), FareBand(10, 300), FareBand(20, 400)))
    assert [fares.fare(3, 3 + d) for d in (0, 1, 5, 6, 10, 11, 20, 21, 200)] == \
        [200, 200, 200, 300, 300, 400, 400, 500, 500]
    assert fares.fare(30, 24) == 300  # travelled backwards: 6 stations
    assert fares.fare(0, 255) == 500


def test_bands_are_capped_by_max_fare():
    fares = SectionFares(60, 250, 0, (FareBand(2, 100), FareBand(4, 300)))
    assert [fares.fare(1, 1 + d) for d in (2, 3, 4, 5)] == [100, 250, 250, 250]


def test_bands_starting_above_zero_leave_short_rides_in_the_first_band():
    fares = SectionFares(60, 900, 0, (FareBand(3, 100), FareBand(7, 200)))
    assert fares.fare(9, 9) == 100


def test_matrix_lookup():
    fares = SectionFares(60, 350, 0, matrix=((100, 200, 400), (150, 100, 300), (400, 250, 100)))
    assert fares.fare(1, 2) == 200
    assert fares.fare(2, 1) == 150  # asymmetric
    assert fares.fare(1, 3) == 350  # capped
    assert fares.fare(3, 3) == 100
    assert fares.fare(0, 2) == 350  # outside the matrix: the max fare
    assert fares.fare(2, 4) == 350


def test_line_numbers():
    assert encode_line(251, "binary") == b"\x00\xfb"
    assert encode_line(801, "bcd") == b"\x08\x01"
    assert encode_line(65535, "binary") == b"\xff\xff"
    with pytest.raises(ValueError):
        encode_line(65536, "binary")
    with pytest.raises(ValueError):
        encode_line(10000, "bcd")
    assert line_name(b"\x00\xfb", "binary") == "251"
    assert line_name(b"\x08\x01", "bcd") == "801"
    assert line_name(b"\x00\xfb", "bcd") == "00FB"


def test_card_type_labels():
    assert [card_type_label(c) for c in (1, 2, 3, 4, 5, 0, 9)] == \
        ["normal", "student", "elderly", "test", "military", "type 0", "type 9"]
