"""PN532 frames, the stream decoder and the command codecs, checked against the bytes libnfc exchanges."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import ProtocolError
from protocols.hexutil import parse_hex
from protocols.iso14443 import Ats
from protocols.pn532 import (
    COMMANDS,
    HSU_WAKEUP,
    MAX_EXCHANGE_DATA,
    AutoPollTarget,
    BadFrame,
    ChipError,
    CommandCode,
    ControlFrame,
    Diagnose,
    DiagnoseResponse,
    FirmwareVersion,
    Frame,
    FrameDecoder,
    FrameFault,
    GeneralStatus,
    GetFirmwareVersion,
    GetGeneralStatus,
    InAutoPoll,
    InAutoPollResponse,
    InCommunicateThru,
    InCommunicateThruResponse,
    InDataExchange,
    InDataExchangeResponse,
    InDeselect,
    InDeselectResponse,
    InListPassiveTarget,
    InListPassiveTargetResponse,
    InRelease,
    InReleaseResponse,
    InSelect,
    InSelectResponse,
    Modulation,
    ParameterFlags,
    PowerDown,
    PowerDownResponse,
    ReadRegister,
    ReadRegisterResponse,
    RFConfiguration,
    SAMConfiguration,
    SetParameters,
    TargetA,
    TargetStatus,
    TargetType,
    WakeUp,
    WriteRegister,
    chip_frame,
    describe_error,
    format_status,
    host_frame,
    name_of,
    parse_command,
    parse_frame,
)

H = parse_hex

# --- the nfc-list exchange, byte by byte (spec real-peers §2) ----------------------------------------------------

# (command, host frame, response data, chip frame)
NFC_LIST = [
    (SAMConfiguration(0x01), "0000FF03FDD414011700", "15", "0000FF02FED5151600"),
    (Diagnose.line_test(b"libnfc"), "0000FF09F7D400006C69626E6663BE00",
     "01006C69626E6663", "0000FF09F7D501006C69626E6663BC00"),
    (GetFirmwareVersion(), "0000FF02FED4022A00", "0332010607", "0000FF06FAD50332010607E800"),
    (SetParameters(0x14), "0000FF03FDD412140600", "13", "0000FF02FED5131800"),
    (ReadRegister((0x6302, 0x6303)), "0000FF06FAD406630263035B00", "078080", "0000FF04FCD50780802400"),
    (WriteRegister(((0x633C, 0x10),)), "0000FF05FBD408633C107500", "09", "0000FF02FED5092200"),
    (RFConfiguration.field(False), "0000FF04FCD4320100F900", "33", "0000FF02FED533F800"),
    (RFConfiguration.field(True), "0000FF04FCD4320101F800", "33", "0000FF02FED533F800"),
    (RFConfiguration.max_retries(0xFF, 0xFF, 0xFF), "0000FF06FAD43205FFFFFFF800", "33", "0000FF02FED533F800"),
    (InListPassiveTarget(1, Modulation.ISO14443A_106), "0000FF04FCD44A0100E100",
     "4B010100042804123456780578807002", "0000FF11EFD54B0101000428041234567805788070022B00"),
    (InDataExchange(1, H("00A4040008A000000632010105")), "0000FF10F0D4400100A4040008A0000006320101055C00",
     "41009000", "0000FF05FBD5410090005A00"),
    (InDeselect(0), "0000FF03FDD44400E800", "4500", "0000FF03FDD54500E600"),
    (InListPassiveTarget(), "0000FF04FCD44A0100E100", "4B00", "0000FF03FDD54B00E000"),
    (InRelease(0), "0000FF03FDD45200DA00", "5300", "0000FF03FDD55300D800"),
    (PowerDown(WakeUp.I2C | WakeUp.GPIO | WakeUp.SPI | WakeUp.HSU), "0000FF03FDD416F02600",
     "1700", "0000FF03FDD517001400"),
]


@pytest.mark.parametrize("command, command_frame, response, response_frame", NFC_LIST)
def test_nfc_list_exchange_is_byte_exact(command, command_frame, response, response_frame):
    assert host_frame(command.to_bytes()) == H(command_frame)
    frame = parse_frame(H(command_frame))
    assert frame == Frame(0xD4, command.to_bytes())
    assert parse_command(frame.data) == command
    assert chip_frame(H(response)) == H(response_frame)
    answer = parse_frame(H(response_frame))
    assert answer.tfi == 0xD5 and answer.code == command.CODE + 1
    parsed = command.parse_response(answer.data)
    if parsed is None:
        assert command.bare_response() == H(response)
    else:
        assert parsed.to_bytes() == H(response)


def test_nfc_list_values_decode_as_libnfc_reads_them():
    assert FirmwareVersion.parse(H("0332010607")) == FirmwareVersion(0x32, 1, 6, 7)
    assert FirmwareVersion(0x32, 1, 6, 7).name == "PN532 v1.6"
    assert SetParameters(ParameterFlags.AUTOMATIC_ATR_RES | ParameterFlags.AUTOMATIC_RATS).to_bytes() == H("1214")
    listed = InListPassiveTarget().parse_response(H("4B010100042804123456780578807002"))
    (target,) = listed.targets
    assert target == TargetA(1, H("0004"), 0x28, H("12345678"), H("0578807002"))
    assert target.atqa_value == 0x0004
    ats = Ats.parse(target.ats)
    assert (ats.fsc, ats.fwi, ats.cid_supported) == (256, 7, True)
    assert ReadRegister((0x6302, 0x6303)).parse_response(H("078080")) == ReadRegisterResponse(H("8080"))
    assert PowerDown(0xF0).parse_response(H("1700")).ok


def test_control_frames_are_byte_exact():
    assert ControlFrame.ACK.to_bytes() == H("0000FF00FF00")
    assert ControlFrame.NACK.to_bytes() == H("0000FFFF0000")
    assert ControlFrame.ERROR.to_bytes() == H("0000FF01FF7F8100")
    for control in ControlFrame:
        assert parse_frame(control.to_bytes()) is control


def test_hsu_wakeup_is_what_libnfc_sends():
    assert HSU_WAKEUP == H("5555" + "00" * 14)


# --- extended frames: 260-byte command, 258-byte response ---------------------------------------------------------

APDU_260 = H("80DC02D0FF") + bytes(range(255))
RAPDU_258 = bytes(range(256)) + H("9000")


def test_260_byte_apdu_goes_in_an_extended_frame():
    command = InDataExchange(1, APDU_260)
    raw = host_frame(command.to_bytes())
    assert len(APDU_260) == 260 and len(raw) == 273
    assert raw[:9] == H("0000FFFFFF0107F8D4") and raw[9:11] == H("4001")  # LEN 0107 = TFI + 40 01 + 260
    assert raw[-2:] == H("3D00")
    frame = parse_frame(raw)
    assert frame.extended and parse_command(frame.data) == command


def test_258_byte_response_comes_in_an_extended_frame():
    response = InDataExchangeResponse(0x00, RAPDU_258)
    raw = chip_frame(response.to_bytes())
    assert len(raw) == 271
    assert raw[:11] == H("0000FFFFFF0105FAD54100") and raw[-2:] == H("DA00")
    frame = parse_frame(raw)
    assert InDataExchange(1, APDU_260).parse_response(frame.data) == response


def test_normal_frame_stops_at_255_and_extended_can_be_chosen():
    assert not Frame(0xD4, bytes(254)).extended
    assert Frame(0xD4, bytes(255)).extended
    short_extended = Frame(0xD5, H("4100"), extended=True)
    raw = short_extended.to_bytes()
    assert raw == H("0000FFFFFF0003FDD54100EA00")
    assert parse_frame(raw) == short_extended
    with pytest.raises(ProtocolError):
        Frame(0xD4, bytes(265))


# --- frame parsing errors -----------------------------------------------------------------------------------------

def test_bad_length_checksum_is_named():
    with pytest.raises(ProtocolError, match="LCS"):
        parse_frame(H("0000FF03FCD414011700"))


def test_bad_data_checksum_is_named():
    with pytest.raises(ProtocolError, match="DCS"):
        parse_frame(H("0000FF03FDD414011800"))


@pytest.mark.parametrize("raw, reason", [
    ("00FF03FDD414011700", "00 00 FF"),
    ("0000FF03FDD4140117", "postamble"),
    ("0000FF03FDD41401170000", "postamble"),
    ("0000FF03FDD41401", "truncated"),
    ("0000FF03FDAA14014100", "TFI"),
    ("0000FF01FFD42C00", "length out of range"),
    ("0000FF00000000", "length out of range"),
    ("0000FFFFFF010AF5" + "D4" + "00" * 265 + "2C00", "length out of range"),
])
def test_malformed_frames_are_refused(raw, reason):
    with pytest.raises(ProtocolError, match=reason):
        parse_frame(H(raw))


@given(st.binary(max_size=300))
def test_random_bytes_parse_or_raise_protocol_error(raw):
    try:
        parsed = parse_frame(raw)
    except ProtocolError:
        return
    assert parsed.to_bytes() == raw


frames = st.builds(Frame, st.sampled_from((0xD4, 0xD5)), st.binary(min_size=1, max_size=264), st.booleans())
events = st.one_of(frames, st.sampled_from(list(ControlFrame)))


@given(frames)
def test_frame_round_trip(frame):
    raw = frame.to_bytes()
    assert parse_frame(raw) == frame
    assert parse_frame(raw).to_bytes() == raw


# --- the stream decoder -------------------------------------------------------------------------------------------

def test_decoder_reassembles_a_frame_fed_byte_by_byte():
    decoder = FrameDecoder()
    raw = H("0000FF06FAD50332010607E800")
    out = []
    for i in range(len(raw)):
        out += decoder.feed(raw[i:i + 1])
        if i < len(raw) - 2:  # nothing before the DCS
            assert out == []
    assert out == [Frame(0xD5, H("0332010607"))]
    assert decoder.pending == 0 and decoder.discarded == 0


def test_decoder_takes_a_late_postamble_for_what_it_is():
    decoder = FrameDecoder()
    assert decoder.feed(H("0000FF02FED5151600")[:-1]) == [Frame(0xD5, H("15"))]
    # the postamble comes with the next piece, and noise FF behind it must not pair with it into a start code
    assert decoder.feed(H("00 FF") + ControlFrame.ACK.to_bytes()) == [ControlFrame.ACK]
    assert decoder.discarded == 1


def test_decoder_gives_ack_and_answer_arriving_together():
    decoder = FrameDecoder()
    got = decoder.feed(ControlFrame.ACK.to_bytes() + H("0000FF02FED5151600"))
    assert got == [ControlFrame.ACK, Frame(0xD5, H("15"))]


def test_decoder_skips_wakeup_and_garbage_before_a_preamble():
    decoder = FrameDecoder()
    got = decoder.feed(HSU_WAKEUP + H("13 37 FF") + H("0000FF03FDD414011700"))
    assert got == [Frame(0xD4, H("1401"))]
    assert decoder.discarded == 5  # 55 55 13 37 FF; the zeros are preamble fill


def test_decoder_reports_bad_checksums_and_keeps_sync():
    decoder = FrameDecoder()
    bad_dcs = H("0000FF03FDD414011800")
    bad_lcs = H("0000FF03FCD414011700")
    good = H("0000FF02FED4022A00")
    got = decoder.feed(bad_dcs + bad_lcs + ControlFrame.NACK.to_bytes() + good)
    assert [type(e) for e in got] == [BadFrame, BadFrame, ControlFrame, Frame]
    assert got[0].fault is FrameFault.DATA_CHECKSUM and got[0].data == bad_dcs[1:-1]
    assert got[1].fault is FrameFault.LENGTH_CHECKSUM and got[1].data == H("00FF03FC")
    assert got[2:] == [ControlFrame.NACK, Frame(0xD4, H("02"))]


def test_decoder_finds_the_next_frame_after_a_lost_byte():
    decoder = FrameDecoder()
    damaged = H("0000FF05FBD5410090005A00")[:-4] + H("5A00")  # one data byte lost in transit
    follower = H("0000FF03FDD54500E600")
    got = decoder.feed(damaged + follower)
    assert got[-1] == Frame(0xD5, H("4500"))
    assert all(isinstance(e, BadFrame) for e in got[:-1]) and got[:-1]


def test_decoder_does_not_let_a_cut_frame_swallow_the_frames_behind_it():
    decoder = FrameDecoder()
    cut = H("0000FF10F0D5410090")  # announces 16 bytes; the sender was reset after 4
    got = decoder.feed(cut + H("0000FF03FDD54500E600") + ControlFrame.ACK.to_bytes())
    assert got[0].fault is FrameFault.DATA_CHECKSUM
    assert got[1:] == [Frame(0xD5, H("4500")), ControlFrame.ACK]


def test_decoder_recognises_the_error_frame_split_anywhere():
    raw = ControlFrame.ERROR.to_bytes()
    for cut in range(1, len(raw)):
        decoder = FrameDecoder()
        assert decoder.feed(raw[:cut]) + decoder.feed(raw[cut:]) == [ControlFrame.ERROR]


def test_decoder_extended_frame_split_across_many_feeds():
    raw = chip_frame(InDataExchangeResponse(0, RAPDU_258).to_bytes())
    decoder = FrameDecoder()
    out = []
    for start in range(0, len(raw), 7):
        out += decoder.feed(raw[start:start + 7])
    assert out == [Frame(0xD5, H("4100") + RAPDU_258, extended=True)]


def test_decoder_reset_drops_a_half_frame():
    decoder = FrameDecoder()
    assert decoder.feed(H("0000FF09F7D40000")) == []
    assert decoder.pending == 7  # from the start code on
    decoder.reset()
    assert decoder.pending == 0
    assert decoder.feed(ControlFrame.ACK.to_bytes()) == [ControlFrame.ACK]


def test_decoder_holds_a_trailing_zero_that_may_start_a_start_code():
    decoder = FrameDecoder()
    assert decoder.feed(H("AA 00")) == []
    assert decoder.pending == 1
    assert decoder.feed(H("FF 00 FF 00")) == [ControlFrame.ACK]


def test_decoder_refuses_oversized_extended_frames():
    decoder = FrameDecoder()
    got = decoder.feed(H("0000FFFFFF010AF5") + ControlFrame.ACK.to_bytes())
    assert got[0] == BadFrame(FrameFault.LENGTH, H("00FFFFFF010AF5"))
    assert got[-1] is ControlFrame.ACK


@given(st.lists(events, max_size=6), st.lists(st.integers(1, 40), max_size=60),
       st.lists(st.binary(max_size=8).filter(lambda b: 0 not in b), min_size=7, max_size=7))
def test_decoder_yields_every_frame_whatever_the_chunking_and_noise(sent, cuts, noise):
    stream = b"".join(noise[i] + e.to_bytes() for i, e in enumerate(sent)) + noise[-1]
    decoder, got, pos = FrameDecoder(), [], 0
    for size in cuts:
        got += decoder.feed(stream[pos:pos + size])
        pos += size
    got += decoder.feed(stream[pos:])
    assert got == sent
    assert decoder.discarded == sum(map(len, noise[:len(sent)])) + len(noise[-1])


@given(st.lists(st.binary(max_size=50), max_size=10))
def test_decoder_never_raises_on_noise(chunks):
    decoder = FrameDecoder()
    for chunk in chunks:
        for event in decoder.feed(chunk):
            assert isinstance(event, (Frame, ControlFrame, BadFrame))


# --- command and response codecs ----------------------------------------------------------------------------------

def b(n_max: int, n_min: int = 0):
    return st.binary(min_size=n_min, max_size=n_max)


byte = st.integers(0, 0xFF)
uids = st.sampled_from((4, 7, 10)).flatmap(lambda n: st.binary(min_size=n, max_size=n))
ats_bytes = st.binary(max_size=20).map(lambda rest: bytes((len(rest) + 1,)) + rest)


def targets_a(tg=st.integers(1, 2), with_ats=st.booleans()):
    def make(tg, atqa, sak, uid, ats, has_ats):
        sak = sak | 0x20 if has_ats else sak & ~0x20
        return TargetA(tg, atqa, sak, uid, ats if has_ats else None)
    return st.builds(make, tg, b(2, 2), byte, uids, ats_bytes, with_ats)


listed = st.one_of(
    st.just(()),
    st.tuples(targets_a(st.just(1))),
    st.tuples(targets_a(st.just(1)), targets_a(st.just(2))),
).filter(lambda ts: not ts or all(t.ats is not None or not t.sak & 0x20 for t in ts[:-1]))

COMMAND_STRATEGIES = {
    Diagnose: st.builds(Diagnose, byte, b(20)),
    GetFirmwareVersion: st.just(GetFirmwareVersion()),
    GetGeneralStatus: st.just(GetGeneralStatus()),
    ReadRegister: st.builds(ReadRegister, st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=8).map(tuple)),
    WriteRegister: st.builds(WriteRegister, st.lists(st.tuples(st.integers(0, 0xFFFF), byte), min_size=1,
                                                     max_size=8).map(tuple)),
    SetParameters: st.builds(SetParameters, byte),
    SAMConfiguration: st.one_of(st.builds(SAMConfiguration, st.integers(1, 4)),
                                st.builds(SAMConfiguration, st.integers(1, 4), byte),
                                st.builds(SAMConfiguration, st.integers(1, 4), byte, st.booleans())),
    PowerDown: st.builds(PowerDown, byte, st.none() | st.booleans()),
    RFConfiguration: st.one_of(st.builds(RFConfiguration.field, st.booleans(), auto_rfca=st.booleans()),
                               st.builds(RFConfiguration.timings, byte, byte),
                               st.builds(RFConfiguration.max_retries, byte, byte, byte),
                               st.builds(RFConfiguration, st.just(0x0A), b(11, 11))),
    InDataExchange: st.builds(InDataExchange, st.integers(0, 0x3F), b(MAX_EXCHANGE_DATA), st.booleans()),
    InCommunicateThru: st.builds(InCommunicateThru, b(40)),
    InDeselect: st.builds(InDeselect, byte),
    InListPassiveTarget: st.builds(InListPassiveTarget, st.integers(1, 2), st.integers(0, 4), b(10)),
    InRelease: st.builds(InRelease, byte),
    InSelect: st.builds(InSelect, byte),
    InAutoPoll: st.builds(InAutoPoll, st.integers(1, 0xFF), st.integers(1, 15),
                          st.lists(byte, min_size=1, max_size=15).map(tuple)),
}

RESPONSE_STRATEGIES = {
    DiagnoseResponse: st.builds(DiagnoseResponse, b(20)),
    FirmwareVersion: st.builds(FirmwareVersion, byte, byte, byte, byte),
    GeneralStatus: st.builds(GeneralStatus, byte, st.booleans(),
                             st.lists(st.builds(TargetStatus, byte, byte, byte, byte), max_size=2).map(tuple), byte),
    ReadRegisterResponse: st.builds(ReadRegisterResponse, b(8)),
    PowerDownResponse: st.builds(PowerDownResponse, byte),
    InDataExchangeResponse: st.builds(InDataExchangeResponse, byte, b(MAX_EXCHANGE_DATA)),
    InCommunicateThruResponse: st.builds(InCommunicateThruResponse, byte, b(40)),
    InDeselectResponse: st.builds(InDeselectResponse, byte),
    InReleaseResponse: st.builds(InReleaseResponse, byte),
    InSelectResponse: st.builds(InSelectResponse, byte),
    InListPassiveTargetResponse: st.builds(InListPassiveTargetResponse, listed),
    InAutoPollResponse: st.builds(InAutoPollResponse, st.lists(st.one_of(
        st.builds(AutoPollTarget, st.sampled_from(sorted((0x00, 0x10, 0x20))), targets_a()),
        st.builds(AutoPollTarget, st.sampled_from((0x01, 0x11, 0x23, 0x40)), b(30))), max_size=2).map(tuple)),
}


def test_every_command_has_a_strategy():
    assert set(COMMAND_STRATEGIES) == set(COMMANDS)
    assert {c.RESPONSE for c in COMMANDS} - {None} == set(RESPONSE_STRATEGIES)


@given(st.one_of(*COMMAND_STRATEGIES.values()))
def test_command_round_trip(command):
    raw = command.to_bytes()
    assert raw[0] == command.CODE
    assert parse_command(raw) == command
    assert parse_command(raw).to_bytes() == raw
    assert parse_frame(host_frame(raw)).data == raw


@given(st.one_of(*RESPONSE_STRATEGIES.values()))
def test_response_round_trip(response):
    raw = response.to_bytes()
    assert type(response).parse(raw) == response
    assert type(response).parse(raw).to_bytes() == raw


@given(st.binary(max_size=40))
def test_random_commands_parse_or_raise_protocol_error(raw):
    try:
        command = parse_command(raw)
    except ProtocolError:
        return
    assert command.to_bytes() == raw


@given(st.sampled_from(sorted(RESPONSE_STRATEGIES, key=lambda cls: cls.CODE)), st.binary(max_size=40),
       st.booleans())
def test_random_responses_parse_or_raise_protocol_error(cls, tail, with_code):
    raw = bytes((cls.CODE,)) + tail if with_code else tail
    try:
        response = cls.parse(raw)
    except ProtocolError:
        return
    assert response.to_bytes() == raw


@given(st.one_of(*COMMAND_STRATEGIES.values()), st.integers(1, 3))
def test_truncated_and_overlong_commands_never_leak_other_errors(command, cut):
    raw = command.to_bytes()
    for candidate in (raw[:-cut], raw + bytes(cut)):
        try:
            parse_command(candidate)
        except ProtocolError:
            pass


def test_unknown_and_target_mode_commands_are_refused_with_their_name():
    with pytest.raises(ProtocolError, match="TgInitAsTarget"):
        parse_command(H("8C00"))
    with pytest.raises(ProtocolError, match="unknown PN532 code FE"):
        parse_command(H("FE"))
    with pytest.raises(ProtocolError):
        parse_command(b"")


def test_names_for_traces():
    assert name_of(0x40) == "InDataExchange"
    assert name_of(0x41) == "InDataExchange response"
    assert name_of(CommandCode.InAutoPoll + 1) == "InAutoPoll response"
    assert name_of(0xFE) == "unknown PN532 code FE"


# --- what a driver checks on answers ------------------------------------------------------------------------------

def test_response_code_must_be_command_plus_one():
    with pytest.raises(ProtocolError, match="expected code 41"):
        InDataExchange(1, H("00")).parse_response(H("4300"))
    with pytest.raises(ProtocolError, match="bare response 15"):
        SAMConfiguration(1).parse_response(H("1500"))
    with pytest.raises(ProtocolError, match="has a response with parameters"):
        InDataExchange(1).bare_response()


def test_diagnose_line_test_checks_the_echo():
    command = Diagnose.line_test(b"libnfc")
    assert command.echo() == DiagnoseResponse(H("00") + b"libnfc")
    with pytest.raises(ProtocolError, match="echoed"):
        command.parse_response(H("0100") + b"libnfC")
    assert Diagnose(0x06).parse_response(H("0100")) == DiagnoseResponse(H("00"))  # card presence: a status
    with pytest.raises(ProtocolError):
        Diagnose(0x06).echo()


def test_read_register_answer_must_match_the_count():
    with pytest.raises(ProtocolError, match="asked 2 registers, got 1"):
        ReadRegister((0x6302, 0x6303)).parse_response(H("0780"))


def test_in_data_exchange_status_and_chaining_bits():
    answer = InDataExchange(1, H("00B0950000")).parse_response(H("4140") + bytes(10))
    assert answer.more and answer.ok and not answer.nad
    timeout = InDataExchangeResponse.parse(H("4101"))
    assert timeout.error == ChipError.TIMEOUT and not timeout.ok and timeout.data == b""
    assert InDataExchange(1, H("AA"), more=True).to_bytes() == H("4041AA")
    assert InDataExchange.parse(H("4041AA")) == InDataExchange(1, H("AA"), True)
    assert InDataExchange(1).to_bytes() == H("4001")  # the empty follow-up that fetches an MI remainder
    with pytest.raises(ProtocolError, match="RFU bit 7"):
        InDataExchange.parse(H("4081"))
    with pytest.raises(ProtocolError, match="exceed 262"):
        InDataExchange(1, bytes(263))


def test_in_list_passive_target_with_two_targets():
    first = TargetA(1, H("0004"), 0x08, H("DEADBEEF"))
    second = TargetA(2, H("0344"), 0x20, H("04112233445566"), H("067577810280"))
    raw = H("4B02") + H("01 0004 08 04 DEADBEEF") + H("02 0344 20 07 04112233445566 067577810280")
    response = InListPassiveTarget(2).parse_response(raw)
    assert response == InListPassiveTargetResponse((first, second))
    assert response.to_bytes() == raw
    with pytest.raises(ProtocolError, match="asked for 1 targets, got 2"):
        InListPassiveTarget(1).parse_response(raw)


def test_in_list_passive_target_ambiguities_are_refused_when_building():
    with pytest.raises(ProtocolError, match="cannot be told apart"):
        InListPassiveTargetResponse((TargetA(1, H("0004"), 0x08, H("DEADBEEF"), H("0278")),))
    with pytest.raises(ProtocolError, match="cannot be told apart"):
        InListPassiveTargetResponse((TargetA(1, H("0004"), 0x20, H("DEADBEEF")),
                                     TargetA(2, H("0004"), 0x08, H("CAFEBABE"))))
    # an ISO 14443-4 card listed last without ATS (automatic RATS off) is fine
    alone = InListPassiveTargetResponse((TargetA(1, H("0004"), 0x20, H("DEADBEEF")),))
    assert InListPassiveTargetResponse.parse(alone.to_bytes()) == alone


@pytest.mark.parametrize("raw", [
    "4B03", "4B01", "4B0101000408", "4B01010004080401020304FF", "4B0101000420040102030405",
    "4B010100040805010203040506",
])
def test_in_list_passive_target_malformed_answers(raw):
    with pytest.raises(ProtocolError):
        InListPassiveTargetResponse.parse(H(raw))


def test_in_list_passive_target_other_modulations_are_not_decoded():
    with pytest.raises(ProtocolError, match="only 106 kbit/s type A"):
        InListPassiveTarget(1, Modulation.ISO14443B_106).parse_response(H("4B00"))


def test_in_auto_poll_answer_with_a_type_a_and_a_felica_target():
    raw = H("6102") + H("10 09 01 0004 08 04 DEADBEEF") + H("11 03 01 02 03")
    response = InAutoPoll(0x0F, 1, (TargetType.MIFARE, TargetType.FELICA_212)).parse_response(raw)
    assert response == InAutoPollResponse((
        AutoPollTarget(TargetType.MIFARE, TargetA(1, H("0004"), 0x08, H("DEADBEEF"))),
        AutoPollTarget(TargetType.FELICA_212, H("010203")),
    ))
    assert response.to_bytes() == raw
    assert InAutoPoll(0xFF, 2, (0x00, 0x10, 0x20)).to_bytes() == H("60FF02001020")
    with pytest.raises(ProtocolError, match="does not match its data"):
        AutoPollTarget(TargetType.MIFARE, H("01"))


def test_in_auto_poll_type_a_data_with_an_ats_by_length():
    raw = H("6101") + H("20 0E 01 0004 20 04 01020304 0578807002")
    (entry,) = InAutoPollResponse.parse(raw).targets
    assert entry.target.ats == H("0578807002")
    with pytest.raises(ProtocolError, match="after the ATS"):
        InAutoPollResponse.parse(H("6101") + H("20 0C 01 0004 20 04 01020304 0278 AA"))


def test_general_status_layout():
    raw = H("05 00 01 01 01000000 00")
    status = GetGeneralStatus().parse_response(raw)
    assert status == GeneralStatus(0, True, (TargetStatus(1, 0, 0, 0),), 0)
    assert status.to_bytes() == raw
    with pytest.raises(ProtocolError):
        GeneralStatus.parse(H("05 00 02 00 00"))
    with pytest.raises(ProtocolError):
        GeneralStatus.parse(H("05 00 00 01 01000000"))


@pytest.mark.parametrize("make", [
    lambda: SAMConfiguration(0),
    lambda: SAMConfiguration(5),
    lambda: SAMConfiguration(1, None, True),
    lambda: RFConfiguration(0x03, b""),
    lambda: RFConfiguration(0x01, H("0101")),
    lambda: InListPassiveTarget(3),
    lambda: InListPassiveTarget(1, 5),
    lambda: InAutoPoll(0, 1, (0,)),
    lambda: InAutoPoll(1, 16, (0,)),
    lambda: InAutoPoll(1, 1, ()),
    lambda: ReadRegister(()),
    lambda: ReadRegister((0x10000,)),
    lambda: WriteRegister(((0x6302, 256),)),
    lambda: TargetA(1, H("00"), 0x08, H("01020304")),
    lambda: TargetA(1, H("0004"), 0x08, H("010203")),
    lambda: TargetA(1, H("0004"), 0x20, H("01020304"), H("0378")),
    lambda: GeneralStatus(0, False, (TargetStatus(1, 0, 0, 0),) * 3, 0),
    lambda: InSelect(256),
])
def test_values_that_cannot_be_encoded_raise_protocol_error(make):
    with pytest.raises(ProtocolError):
        make()


@pytest.mark.parametrize("raw", ["1405", "140100FF", "16F002", "3201", "320A00", "1201 02", "4400 00", "02 00"])
def test_malformed_commands_raise_protocol_error(raw):
    with pytest.raises(ProtocolError):
        parse_command(H(raw))


# --- status byte --------------------------------------------------------------------------------------------------

def test_error_codes_have_the_user_manual_meanings():
    assert describe_error(0x01) == "time-out: the target has not answered"
    assert describe_error(0x02).startswith("CRC error")
    assert describe_error(0x03).startswith("parity error")
    assert describe_error(0x14) == "MIFARE authentication error"
    assert "current context" in describe_error(0x27)
    assert "released by its initiator" in describe_error(0x29)
    assert describe_error(0x41) == "time-out: the target has not answered"  # MI masked off
    assert describe_error(0x3F) == "unknown PN532 error 0x3f"
    assert format_status(0x41) == "01 (time-out: the target has not answered) +MI"
    assert format_status(0x00) == "00 (success)"


def test_status_responses_read_their_error():
    assert InDeselect(1).parse_response(H("4527")).error == ChipError.WRONG_CONTEXT
    assert InRelease(1).parse_response(H("5300")).ok
    assert InSelect(1).parse_response(H("5501")).error == ChipError.TIMEOUT
    assert InCommunicateThru(H("B2")).parse_response(H("4300A3")).data == H("A3")
