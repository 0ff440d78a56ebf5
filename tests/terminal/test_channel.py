"""The channel's T=0 procedure: what goes to the link for every shape of command, and what is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.apdu import CommandAPDU
from protocols.errors import ProtocolError
from terminal.channel import Channel
from terminal.link import Activation, Link
from terminal.trace import ExchangeLog


class Recorder(Link):
    """A T=0 slot that answers 9000 to everything and keeps what it was sent."""

    name = "recorder"

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def activate(self, timeout: float) -> Activation | None:
        return Activation("T=0", atr=b"\x3b\x00")

    def transceive(self, apdu: bytes, timeout: float) -> bytes:
        self.sent.append(apdu)
        return b"\x90\x00"


def t0_channel() -> tuple[Channel, Recorder]:
    link = Recorder()
    channel = Channel(link, peer="PSAM")
    channel.activate()
    assert channel.t0
    return channel, link


def expected_on_t0(apdu: bytes) -> bytes | str:
    """ISO 7816-3 over T=0, by the command's parsed form: case 4 goes as case 3; extended or malformed is refused."""
    try:
        command = CommandAPDU.parse(apdu)
    except ProtocolError:
        return "malformed"
    if command.extended:
        return "extended"
    if command.case == 4:
        command.le = None
        return command.to_bytes()
    return apdu


short_commands = st.builds(lambda header, data, le: CommandAPDU(*header, data, le).to_bytes(),
                           st.tuples(*[st.integers(0, 255)] * 4), st.binary(max_size=255),
                           st.none() | st.integers(1, 256))


@given(short_commands | st.binary(max_size=300))
def test_t0_sends_what_the_parsed_command_says(apdu):
    channel, link = t0_channel()
    expected = expected_on_t0(apdu)
    if isinstance(expected, bytes):
        assert channel.transmit(apdu).sw == 0x9000
        assert link.sent == [expected] and type(link.sent[0]) is bytes
    else:
        with pytest.raises(ProtocolError, match="extended APDUs cannot" if expected == "extended" else None):
            channel.transmit(apdu)
        assert link.sent == []


@pytest.mark.parametrize("apdu, sent", [
    ("80700000 24" + "11" * 36 + "08", "80700000 24" + "11" * 36),  # case 4: Le dropped
    ("80720000 04 01020304", "80720000 04 01020304"),  # case 3
    ("00B09600 06", "00B09600 06"),  # case 2
    ("00A40000", "00A40000"),  # case 1
])
def test_t0_examples(apdu, sent):
    channel, link = t0_channel()
    channel.transmit(bytes.fromhex(apdu))
    assert link.sent == [bytes.fromhex(sent)]


def test_t0_refuses_extended_commands():
    channel, link = t0_channel()
    with pytest.raises(ProtocolError, match="PSAM: extended APDUs cannot be sent over T=0"):
        channel.transmit(bytes.fromhex("00B00000 000100"))
    assert link.sent == []


def test_the_clock_is_read_only_for_a_tracer():
    reads: list[int] = []

    def timer() -> int:
        reads.append(len(reads) * 1000)
        return reads[-1]

    untraced = Channel(Recorder(), timer=timer)
    assert untraced.transmit(b"\x00\xb0\x96\x00\x06").sw == 0x9000
    assert reads == []  # nothing to time an exchange for
    log = ExchangeLog()
    traced = Channel(Recorder(), timer=timer, tracer=log)
    traced.transmit(b"\x00\xb0\x96\x00\x06")
    assert len(reads) == 2 and [(e.command, e.response, e.start_ns, e.duration_ns) for e in log.exchanges] == \
        [(b"\x00\xb0\x96\x00\x06", b"\x90\x00", 0, 1000)]
