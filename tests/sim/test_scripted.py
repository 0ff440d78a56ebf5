"""The scripted card: command patterns, matching, divergence reports, tear steps, script files."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import ProtocolError, YktError
from protocols.hexutil import parse_hex
from sim.reader import SimReader
from sim.scripted import (
    DEFAULT_ACTIVATION,
    ApduPattern,
    Divergence,
    ScriptDivergence,
    ScriptedCard,
    Step,
    as_pattern,
)
from terminal.errors import CardRemoved, ConfigError
from terminal.jsondoc import activation_from_json, activation_to_json
from terminal.link import Activation

H = parse_hex
SELECT = H("00A4040008A000000632010105")
FCI = H("6F108408A000000632010105A5049F080102 9000")
BALANCE = H("805C000204")
INIT = H("805003020B01000000640000000000010F")


def step(command: str, response: str = "", tear: bool = False) -> Step:
    return Step(ApduPattern.parse(command), H(response), tear)


def purchase_script(**kwargs: object) -> ScriptedCard:
    return ScriptedCard([
        step("00A4040008A000000632010105", "6F108408A000000632010105A5049F080102 9000"),
        step("805C000204", "000003E8 9000"),
        step("8050 0302 0B ?? 00000064 ???????????? 0F", "000003E8 0005 000000 00 01 12345678 9000"),
        step("8054*", tear=True),
    ], **kwargs)  # type: ignore[arg-type]


# --- patterns ------------------------------------------------------------------------------------------------------


def test_pattern_parsing() -> None:
    assert ApduPattern.parse("00 A4:04-00_08") == ApduPattern(H("00A4040008"))
    wild = ApduPattern.parse("80 50 ?? 02")
    assert wild == ApduPattern(H("80500002"), H("FFFF00FF"))
    assert str(wild) == "8050??02"
    prefix = ApduPattern.parse("8054*")
    assert prefix == ApduPattern(H("8054"), prefix=True) == ApduPattern.parse("8054", prefix=True)
    assert str(prefix) == "8054*"
    assert ApduPattern.parse("*") == ApduPattern(b"", prefix=True)
    assert ApduPattern(H("8050"), H("FFFF")).mask == b""  # an all-FF mask is the exact pattern


def test_pattern_matching() -> None:
    exact = ApduPattern.exact(SELECT)
    assert exact.matches(SELECT)
    assert not exact.matches(SELECT + b"\x00") and not exact.matches(SELECT[:-1])
    wild = ApduPattern.parse("8050 0302 0B ?? 00000064 ???????????? 0F")
    assert wild.matches(INIT)
    assert wild.matches(H("805003020B07000000640102030405060F"))
    assert not wild.matches(H("805003020B07000000650102030405060F"))  # amount differs
    assert not wild.matches(INIT[:-1]) and not wild.matches(INIT + b"\x00")
    prefix = ApduPattern.parse("80 54 ??*")
    assert prefix.matches(H("805401")) and prefix.matches(H("805401000F") + bytes(16))
    assert not prefix.matches(H("8054")) and not prefix.matches(H("805C000204"))
    anything = ApduPattern.parse("*")
    assert anything.matches(b"") and anything.matches(SELECT)
    assert not ApduPattern(b"").matches(b"\x00")


@pytest.mark.parametrize(("text", "message"), [
    ("805", "odd number"),
    ("80 5?", "wildcard"),
    ("8G", "not a hex digit"),
    ("??*?", r"'\*' may only end"),
    ("80*54", r"'\*' may only end"),
    ("8054**", r"'\*' may only end"),
])
def test_bad_patterns_raise_protocol_error(text: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        ApduPattern.parse(text)


@pytest.mark.parametrize(("value", "mask"), [("8050", "FF"), ("8050", "FF0F"), ("8050", "FF00")])
def test_inconsistent_pattern_fields_are_refused(value: str, mask: str) -> None:
    with pytest.raises(ProtocolError):
        ApduPattern(H(value), H(mask))


patterns = st.builds(
    lambda pairs, prefix: ApduPattern.parse("".join("??" if b is None else f"{b:02x}" for b in pairs), prefix=prefix),
    st.lists(st.one_of(st.none(), st.integers(0, 255)), max_size=40), st.booleans())


@given(patterns)
def test_pattern_text_round_trip(pattern: ApduPattern) -> None:
    assert ApduPattern.parse(str(pattern)) == pattern


@given(patterns, st.binary(max_size=60))
def test_a_pattern_matches_the_commands_its_text_describes(pattern: ApduPattern, command: bytes) -> None:
    text = str(pattern).rstrip("*")
    want = [None if text[i:i + 2] == "??" else int(text[i:i + 2], 16) for i in range(0, len(text), 2)]
    fits = (len(command) >= len(want) if pattern.prefix else len(command) == len(want)) and all(
        w is None or w == c for w, c in zip(want, command, strict=False))
    assert pattern.matches(command) == fits
    filled = bytes(0x5A if w is None else w for w in want)
    assert pattern.matches(filled) and pattern.matches(filled + b"\x01") == pattern.prefix


@given(st.text(alphabet="0123456789abcdefABCDEF?* :-_xyz", max_size=30))
def test_random_pattern_text_raises_only_protocol_error(text: str) -> None:
    with contextlib.suppress(ProtocolError):
        ApduPattern.parse(text)


def test_as_pattern_takes_bytes_and_hex_as_prefixes() -> None:
    assert as_pattern("8054") == as_pattern(H("8054")) == ApduPattern(H("8054"), prefix=True)
    exact = ApduPattern.exact(SELECT)
    assert as_pattern(exact) is exact


def test_steps_need_a_status_word_or_a_tear() -> None:
    with pytest.raises(ProtocolError, match="status word"):
        Step(ApduPattern.parse("*"), H("90"))
    with pytest.raises(ProtocolError, match="tear"):
        Step(ApduPattern.parse("*"), H("9000"), tear=True)


# --- playing a script ----------------------------------------------------------------------------------------------


def test_a_script_followed_to_the_end() -> None:
    card = purchase_script()
    assert card.power_on() == DEFAULT_ACTIVATION and card.activations == 1
    assert card.execute(SELECT) == FCI
    assert card.execute(BALANCE) == H("000003E8 9000")
    assert card.execute(INIT) == H("000003E8 0005 000000 00 01 12345678 9000")
    assert not card.finished
    with pytest.raises(CardRemoved, match="exchange 3"):
        card.execute(H("805401000F") + bytes(15) + H("08"))
    assert card.finished and card.divergences == [] and card.first_divergence() is None
    card.check()


def test_a_wrong_command_is_recorded_answered_6f00_and_the_script_waits() -> None:
    card = purchase_script()
    assert card.execute(SELECT) == FCI
    assert card.execute(H("00B095001E")) == H("6F00")
    assert card.divergences == [Divergence(1, 1, ApduPattern(BALANCE), H("00B095001E"))]
    assert card.execute(BALANCE) == H("000003E8 9000")  # the expected command still works
    assert card.position == 2 and card.exchanges == 3
    with pytest.raises(ScriptDivergence) as caught:
        card.check()
    assert caught.value.divergence == card.divergences[0]
    assert str(caught.value) == "exchange 1 (script step 1): expected 805C000204, got 00B095001E"
    assert isinstance(caught.value, YktError)


def test_wildcard_mismatch_reports_the_pattern() -> None:
    card = purchase_script()
    card.execute(SELECT)
    card.execute(BALANCE)
    wrong_amount = H("805003020B01000000650000000000010F")
    assert card.execute(wrong_amount) == H("6F00")
    assert str(card.divergences[0]) == ("exchange 2 (script step 2): expected 805003020B??00000064????????????0F, "
                                        "got 805003020B01000000650000000000010F")


def test_exhausted_script() -> None:
    card = ScriptedCard([step("805C000204", "00000000 9000")], divergence_sw=0x6A81)
    card.execute(BALANCE)
    assert card.execute(BALANCE) == H("6A81")
    assert card.divergences == [Divergence(1, 1, None, BALANCE)]
    assert str(card.divergences[0]) == "exchange 1 (script step 1): expected the end of the script, got 805C000204"


def test_unfinished_script_fails_the_check() -> None:
    card = purchase_script()
    card.execute(SELECT)
    assert card.first_divergence() == Divergence(1, 1, ApduPattern(BALANCE), None)
    with pytest.raises(ScriptDivergence, match="expected 805C000204, got nothing"):
        card.check()


def test_strict_card_raises_at_once() -> None:
    card = purchase_script(strict=True)
    with pytest.raises(ScriptDivergence) as caught:
        card.execute(BALANCE)
    assert caught.value.divergence == Divergence(0, 0, ApduPattern(SELECT), BALANCE)
    assert card.divergences == [caught.value.divergence]


def test_scripted_tear_through_the_reader() -> None:
    card = ScriptedCard([step("805C000204", "00000064 9000"), step("8054*", tear=True),
                         step("805A*", "11223344 55667788 9000")])
    reader = SimReader(card, timing=None)
    reader.activate(1.0)
    assert reader.transceive(BALANCE, 1.0) == H("00000064 9000")
    with pytest.raises(CardRemoved):
        reader.transceive(H("805401000F") + bytes(16), 1.0)
    assert not reader.present and reader.torn[0].plan is None and reader.torn[0].index == 1
    with pytest.raises(CardRemoved):
        reader.transceive(H("805A000902000608"), 1.0)
    assert reader.activate(1.0) is None
    reader.put_back()
    assert reader.activate(1.0) == DEFAULT_ACTIVATION and card.activations == 2
    assert reader.transceive(H("805A000902000608"), 1.0) == H("11223344 55667788 9000")
    card.check()


def test_a_card_from_recorded_exchanges() -> None:
    card = ScriptedCard.from_exchanges([(SELECT, FCI), (BALANCE, H("00000064 9000")), (INIT, None)], strict=True)
    assert card.steps[2] == Step(ApduPattern.exact(INIT), b"", tear=True)
    assert card.execute(SELECT) == FCI
    with pytest.raises(ScriptDivergence, match="exchange 1 \\(script step 1\\): expected 805C000204, got 805C000208"):
        card.execute(H("805C000208"))
    assert card.execute(BALANCE) == H("00000064 9000")
    with pytest.raises(CardRemoved):
        card.execute(INIT)
    assert card.finished


# --- files ---------------------------------------------------------------------------------------------------------


def test_json_round_trip(tmp_path: Path) -> None:
    activation = Activation("T=CL", uid=H("01020304"), atqa=H("0004"), sak=0x28, ats=H("0D78807002 0102030405060708"))
    card = ScriptedCard(purchase_script().steps, activation=activation)
    doc = card.to_json()
    assert doc["format"] == "yikatong-script" and doc["version"] == 1
    assert doc["steps"][2] == {"command": "805003020B??00000064????????????0F",
                               "response": "000003E80005000000000112345678" "9000"}
    assert doc["steps"][3] == {"command": "8054*", "tear": True}
    again = ScriptedCard.from_json(json.loads(json.dumps(doc)))
    assert again.steps == card.steps and again.activation == activation
    path = tmp_path / "script.json"
    card.save(path)
    loaded = ScriptedCard.load(path, strict=True)
    assert loaded.steps == card.steps and loaded.activation == activation and loaded.strict


def test_activation_is_optional_in_a_file() -> None:
    card = ScriptedCard.from_json({"format": "yikatong-script", "version": 1, "steps": []})
    assert card.activation == DEFAULT_ACTIVATION and card.finished


def test_sam_activation_in_a_file() -> None:
    doc = {"protocol": "T=0", "atr": "3B6900008104000000000000", "sak": None, "ats": None}
    assert activation_from_json(doc, "activation") == Activation("T=0", atr=H("3B6900008104000000000000"))


activations = st.builds(
    Activation, st.sampled_from(["T=CL", "T=0", "T=1", "MIFARE"]), st.binary(max_size=10), st.binary(max_size=2),
    st.one_of(st.none(), st.integers(0, 255)), st.one_of(st.none(), st.binary(max_size=20)),
    st.one_of(st.none(), st.binary(max_size=33)))


@given(activations)
def test_activation_json_round_trip(activation: Activation) -> None:
    assert activation_from_json(json.loads(json.dumps(activation_to_json(activation))), "a") == activation


steps = st.one_of(
    st.builds(Step, patterns, st.binary(min_size=2, max_size=40)),
    st.builds(lambda pattern: Step(pattern, tear=True), patterns))


@given(st.lists(steps, max_size=8), activations)
def test_script_json_round_trip(script: list[Step], activation: Activation) -> None:
    doc = json.loads(json.dumps(ScriptedCard(script, activation=activation).to_json()))
    again = ScriptedCard.from_json(doc)
    assert again.steps == tuple(script) and again.activation == activation
    assert again.to_json() == doc


def good_doc() -> dict:
    return json.loads(json.dumps(purchase_script().to_json()))


def broken(change) -> dict:
    doc = good_doc()
    change(doc)
    return doc


@pytest.mark.parametrize(("doc", "message"), [
    ([], "script: expected an object"),
    (broken(lambda d: d.pop("steps")), r"script\.steps: missing"),
    (broken(lambda d: d.update(format="other")), r'script\.format: "other" is not'),
    (broken(lambda d: d.update(version=2)), r"script\.version: 2"),
    (broken(lambda d: d.update(version=True)), r"script\.version: true is not supported"),
    (broken(lambda d: d.update(extra=1)), r"script\.extra: unknown field"),
    (broken(lambda d: d.update(steps={})), r"script\.steps: expected a list"),
    (broken(lambda d: d["steps"].append("00A4")), r"script\.steps\[4\]: expected an object"),
    (broken(lambda d: d["steps"][1].update(response="9G00")), r"script\.steps\[1\]\.response: .*'G'"),
    (broken(lambda d: d["steps"][1].update(response="90")), r"script\.steps\[1\]\.response: .*status word"),
    (broken(lambda d: d["steps"][1].update(response=9000)),
     r"script\.steps\[1\]\.response: expected hex text, got 9000"),
    (broken(lambda d: d["steps"][0].update(command="00A?")), r"script\.steps\[0\]\.command: .*wildcard"),
    (broken(lambda d: d["steps"][0].update(command=None)),
     r"script\.steps\[0\]\.command: expected a pattern in hex text, got null"),
    (broken(lambda d: d["steps"][3].update(response="9000")), r"script\.steps\[3\]: give either"),
    (broken(lambda d: d["steps"][1].pop("response")), r"script\.steps\[1\]: give either"),
    (broken(lambda d: d["steps"][3].update(tear="yes")), r"script\.steps\[3\]\.tear: true or false"),
    (broken(lambda d: d["steps"][0].update(respnse="9000")), r"script\.steps\[0\]\.respnse: unknown field"),
    (broken(lambda d: d["activation"].update(protocol="T=2")), r'script\.activation\.protocol: "T=2" is not one of'),
    (broken(lambda d: d["activation"].update(sak=256)), r"script\.activation\.sak: a number"),
    (broken(lambda d: d["activation"].update(uid="01023")), r"script\.activation\.uid: odd number"),
    (broken(lambda d: d["activation"].pop("protocol")), r"script\.activation\.protocol: missing"),
])
def test_bad_documents_name_the_field(doc: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ScriptedCard.from_json(doc)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.json"):
        ScriptedCard.load(tmp_path / "missing.json")
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\xff{")
    with pytest.raises(ConfigError, match=r"garbage\.json: not UTF-8 text \(byte 0\)"):
        ScriptedCard.load(garbage)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"format": "yikatong-script", "version": 1, "steps": [{"command": "80"}]}))
    with pytest.raises(ConfigError, match=r"wrong\.json: script\.steps\[0\]: give either"):
        ScriptedCard.load(wrong)
