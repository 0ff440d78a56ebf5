from __future__ import annotations

import array
import io
import os
import stat
import sys
import tempfile
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import ProtocolError
from sim.cli import run
from terminal.blacklist import (
    BUCKET_RECORDS,
    HEADER,
    BadEntries,
    Blacklist,
    BlacklistDamaged,
    BlacklistError,
    _new_header,
    _Writer,
    apply_delta,
    bucket_bits,
    build_blacklist,
    order_key,
    parse_serial,
)
from terminal.errors import ConfigError, OutOfService
from terminal.outcome import TapStatus

from .validator_support import Rig, card, serial_of

# Application serials from the spec (file 0x15 samples), in numeric order; their CRC-32s are 92EDEDED, F53466D9 and
# 17428924, so a file holds them as S3, S1, S2.
S1, S2, S3 = "03104770040067442802", "03104895199900000002", "03104991585000011383"
B1, B2, B3 = (bytes.fromhex(s) for s in (S1, S2, S3))
SMALL_FILE = bytes.fromhex(
    "89594B54424C0D0A 0002 000A 0000 0000000000000003 00000001 B17183E8 4E1FFF26"  # header: 3 records, 1 bucket
    "03104991585000011383 03104770040067442802 03104895199900000002"  # the records by CRC-32
    "00000000 00000003 040AD10B".replace(" ", ""))  # the bucket table: starts 0 and 3, the bucket's CRC
EMPTY_FILE = bytes.fromhex("89594B54424C0D0A 0002 000A 0000 0000000000000000 00000001 7BD5C66F 4EC195FE"
                           "00000000 00000000 00000000".replace(" ", ""))  # one empty bucket: starts 0 and 0, CRC 0
DAMAGED_FILE = SMALL_FILE[:41] + b"\x00" + SMALL_FILE[42:]  # one bit of the first record cleared
V1_FILE = bytes.fromhex("89594B54424C0D0A0001000A000000000000000000000001000000006CF41259")  # an empty version-1 list


def _serials(values) -> list[str]:
    return [f"{v:020d}" for v in values]


def _leftovers(directory: Path, *keep: str) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


def _words(values) -> bytes:
    return array.array("I", values).tobytes() if sys.byteorder == "big" else \
        b"".join(v.to_bytes(4, "big") for v in values)


def _file_bytes(records: list[bytes], *, bits: int = 0, starts: list[int] | None = None, generation: int = 1,
                **changes) -> bytes:
    """A list file as some other tool might write it: valid checksums over whatever records and bucket starts it is
    given (by default, each record's bucket from its CRC-32, whatever the order)."""
    if starts is None:
        shift = 32 - bits
        buckets = [zlib.crc32(r) >> shift for r in records]
        starts = [sum(b < bucket for b in buckets) for bucket in range(1 << bits)] + [len(records)]
    body = b"".join(records)
    crcs = [zlib.crc32(body[starts[b] * 10:starts[b + 1] * 10]) for b in range(1 << bits)]
    table = _words(starts) + _words(crcs)
    header = _new_header(len(records), generation, bits, zlib.crc32(table))
    for name, value in changes.items():
        setattr(header, name, value)
    header.header_crc = zlib.crc32(HEADER.build(header)[:30])
    return HEADER.build(header) + body + table


# --- serials as people write them

@pytest.mark.parametrize("text", [S3, S3[1:], " 0310 4991 5850 0001 1383 ", "310-4991-5850-0001-1383", f"\t{S3}\n"])
def test_parse_serial_forms(text):
    assert parse_serial(text) == B3


def test_parse_serial_keeps_a_nonzero_first_digit():
    assert parse_serial("91234567890123456789") == bytes.fromhex("91234567890123456789")


@pytest.mark.parametrize("text,reason", [
    ("031049915850000113", "18 digits, expected 20 (or 19 without the leading 0)"),
    ("031049915850000113831", "21 digits"),
    ("0310499158500001138A", "not decimal digits"),
    ("\u0660" * 20, "not decimal digits"),  # Arabic-Indic digits pass str.isdigit()
    ("", "not decimal digits"),
])
def test_parse_serial_errors(text, reason):
    with pytest.raises(ProtocolError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_serial(text)


# --- the file format

def test_header_layout_example():
    (hex_text, model), = HEADER.examples
    raw = bytes.fromhex(hex_text.replace(" ", ""))
    assert HEADER.parse(raw) == model
    assert HEADER.build(model) == raw
    assert _new_header(0, 1, 0, zlib.crc32(bytes(12))) == model
    assert HEADER.size == 34


def test_exact_bytes_of_a_small_file(tmp_path):
    lines = ["# stolen cards", "", S3, S1[1:], f"{S2}  # reported 2024-05-01", S3, "  "]
    report = build_blacklist(lines, tmp_path / "list.bin")
    assert (tmp_path / "list.bin").read_bytes() == SMALL_FILE
    assert [zlib.crc32(b) for b in (B3, B1, B2)] == [0x17428924, 0x92EDEDED, 0xF53466D9]  # the file's order
    assert order_key(B3) < order_key(B1) < order_key(B2) and order_key(B1) == bytes.fromhex("92EDEDED") + B1
    assert zlib.crc32(B3 + B1 + B2) == 0x040AD10B
    assert (report.entries, report.count, report.duplicates, report.generation) == (4, 3, 1, 1)
    assert _leftovers(tmp_path, "list.bin") == []


def test_empty_list_is_a_header_and_one_empty_bucket(tmp_path):
    build_blacklist([], tmp_path / "empty.bin")
    assert (tmp_path / "empty.bin").read_bytes() == EMPTY_FILE
    with Blacklist.open(tmp_path / "empty.bin") as bl:
        assert bl.verify(check_order=True) == 0
        assert (len(bl), bl.buckets) == (0, 1)
        assert B1 not in bl
        assert not bl.contains_digits(S1)
        assert list(bl) == []


def test_buckets_grow_with_the_list():
    assert [bucket_bits(n) for n in (0, 1, BUCKET_RECORDS, BUCKET_RECORDS + 1, 10_000_000)] == [0, 0, 0, 1, 18]
    assert bucket_bits(10**12) == 24  # at most 2^24 buckets


def test_generation_is_written(tmp_path):
    build_blacklist([S1], tmp_path / "g.bin", generation=0xDEADBEEF)
    with Blacklist.open(tmp_path / "g.bin") as bl:
        assert bl.generation == 0xDEADBEEF
    with pytest.raises(BlacklistError, match="generation 4294967296 is not a 32-bit unsigned number"):
        build_blacklist([S1], tmp_path / "h.bin", generation=1 << 32)


def test_new_file_mode_and_replaced_file_keeps_its_mode(tmp_path):
    path = tmp_path / "m.bin"
    build_blacklist([S1], path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    path.chmod(0o600)
    build_blacklist([S2], path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# --- lookups

def test_lookups_hits_and_misses(tmp_path):
    path = tmp_path / "l.bin"
    path.write_bytes(SMALL_FILE)
    with Blacklist.open(path) as bl:
        assert len(bl) == 3
        assert [B1 in bl, B2 in bl, B3 in bl] == [True, True, True]
        assert list(bl) == [B3, B1, B2]  # file order
        for miss in ("00000000000000000000", "03104770040067442801", "03104770040067442803",
                     "03104991585000011384", "99999999999999999999"):
            assert bytes.fromhex(miss) not in bl
        assert bl.contains_digits(S2[1:]) and bl.contains_digits(S2)
        assert not bl.contains_digits("3104991585000011384")


def test_a_match_across_two_records_is_not_a_hit(tmp_path):
    # 0310499158500001 1302 then 0310477004 006744 2802 by CRC-32 (8DFD3A92, 92EDEDED): their bytes 5 to 14 read as
    # the serial 50000113020310477004, whose CRC-32 (C7F4C21D) puts it after them in the same bucket
    x = bytes.fromhex("03104991585000011302")
    straddling = bytes.fromhex("50000113020310477004")
    assert x[5:] + B1[:5] == straddling
    build_blacklist([x.hex(), S1], tmp_path / "two.bin")
    with Blacklist.open(tmp_path / "two.bin") as bl:
        assert list(bl) == [x, B1]
        assert straddling not in bl
    build_blacklist([x.hex(), S1, straddling.hex()], tmp_path / "three.bin")
    with Blacklist.open(tmp_path / "three.bin") as bl:
        assert list(bl) == [x, B1, straddling]
        assert straddling in bl  # found at a record boundary after the match across x and B1


def test_lookups_across_many_buckets(tmp_path):
    values = list(range(10**15, 10**15 + 20 * 3000, 20))  # 3000 serials with gaps of 20
    build_blacklist(_serials(values), tmp_path / "many.bin")
    with Blacklist.open(tmp_path / "many.bin") as bl:
        assert (len(bl), bl.buckets) == (3000, 64)
        assert 0 < bl.verify(check_order=True) < 3 * BUCKET_RECORDS  # records per bucket, at most
        for v in values:
            assert bytes.fromhex(f"{v:020d}") in bl
            assert bytes.fromhex(f"{v - 1:020d}") not in bl
            assert bytes.fromhex(f"{v + 1:020d}") not in bl
        assert sorted(bl) == [bytes.fromhex(s) for s in _serials(values)]


@pytest.mark.parametrize("key", [B1[:9], B1 + b"\0", bytearray(B1), S1, None])
def test_lookup_of_a_non_serial_is_a_protocol_error(tmp_path, key):
    (tmp_path / "l.bin").write_bytes(SMALL_FILE)
    with Blacklist.open(tmp_path / "l.bin") as bl, pytest.raises(ProtocolError, match="serial: expected 10 bytes"):
        key in bl  # noqa: B015


def test_closed_list_refuses_lookups(tmp_path):
    (tmp_path / "l.bin").write_bytes(SMALL_FILE)
    bl = Blacklist.open(tmp_path / "l.bin")
    bl.close()
    bl.close()
    for lookup in (lambda: B1 in bl, lambda: b"\0" * 10 in bl, lambda: list(bl), bl.verify):
        with pytest.raises(BlacklistError, match="the list is closed"):
            lookup()


# --- input lists

def test_text_file_with_bom_comments_and_crlf(tmp_path):
    src = tmp_path / "list.txt"
    src.write_bytes(b"\xef\xbb\xbf# header\r\n" + f"{S1}\r\n\r\n{S2[1:]}\r\n{S3}".encode())
    build_blacklist(src, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == SMALL_FILE


def test_csv_with_a_serial_column(tmp_path):
    src = tmp_path / "list.CSV"
    src.write_text(f'name,Serial ,reason\n"Wang, Li",{S3},lost\n\n,{S1[1:]},\n"x",{S2},"stolen"\n',
                   encoding="utf-8-sig")
    report = build_blacklist(src, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == SMALL_FILE
    assert report.entries == 3


@pytest.mark.parametrize("lines", [[S3, S1, S2], ["serial", S3, S1, S2], ["# exported", "SERIAL", S3, S1, S2]])
def test_csv_with_one_column(tmp_path, lines):
    build_blacklist([line + "\n" for line in lines], tmp_path / "out.bin", fmt="csv")
    assert (tmp_path / "out.bin").read_bytes() == SMALL_FILE


def test_csv_without_a_serial_column(tmp_path):
    with pytest.raises(BlacklistError, match=r"^list: line 2: no column named 'serial' in the header row \(card, n\)$"):
        build_blacklist(["", "card,n", f"{S1},1"], tmp_path / "out.bin", fmt="csv")


def test_csv_bad_rows_name_their_lines(tmp_path):
    lines = ["id,serial", f"1,{S1}", "2", '3,"0310', '4991"', f"4,{S2}x"]
    with pytest.raises(BadEntries) as caught:
        build_blacklist([line + "\n" for line in lines], tmp_path / "out.bin", fmt="csv")
    assert caught.value.errors == [
        (3, "1 column(s); the serial is column 2"),
        (5, "serial '0310\\n4991': 8 digits, expected 20 (or 19 without the leading 0)"),  # quoted over 2 lines
        (6, f"serial '{S2}x': not decimal digits"),
    ]


def test_bad_lines_are_reported_with_numbers_and_nothing_is_written(tmp_path):
    src = tmp_path / "list.txt"
    src.write_bytes(f"{S1}\n12345\n# fine\n{S2}\n0310 4991 585O 0001 1383\n\xff{S3}\n".encode("latin-1"))
    with pytest.raises(BadEntries) as caught:
        build_blacklist(src, tmp_path / "out.bin")
    err = caught.value
    assert err.total == 3
    assert err.errors == [
        (2, "serial '12345': 5 digits, expected 20 (or 19 without the leading 0)"),
        (5, "serial '0310 4991 585O 0001 1383': not decimal digits"),
        (6, f"serial '\ufffd{S3}': not decimal digits"),  # not UTF-8
    ]
    assert str(err).startswith(f"{src}: 3 bad entries: line 2: serial '12345': 5 digits")
    assert "\n" not in str(err)
    assert isinstance(err, ConfigError)
    assert _leftovers(tmp_path, "list.txt") == []


def test_many_bad_lines_are_summarised(tmp_path):
    with pytest.raises(BadEntries) as caught:
        build_blacklist(["x"] * 25, tmp_path / "out.bin")
    assert caught.value.total == 25 and len(caught.value.errors) == 25
    assert str(caught.value).endswith("line 10: serial 'x': not decimal digits; and 15 more")


def test_unreadable_source_and_unknown_format(tmp_path):
    with pytest.raises(BlacklistError, match=r"nope\.txt: cannot read: No such file or directory"):
        build_blacklist(tmp_path / "nope.txt", tmp_path / "out.bin")
    with pytest.raises(BlacklistError, match="unknown list format 'xml'"):
        build_blacklist([S1], tmp_path / "out.bin", fmt="xml")
    with pytest.raises(BlacklistError, match=r"no-such-dir/out\.bin: cannot create a file next to it"):
        build_blacklist([S1], tmp_path / "no-such-dir" / "out.bin")
    with pytest.raises(BlacklistError, match="no-such-dir: cannot write sort runs: No such file or directory"):
        build_blacklist([S1, S2], tmp_path / "no-such-dir" / "out.bin", chunk_records=1)


def test_external_merge_collapses_duplicates_across_runs(tmp_path):
    values = [v % 50 * 7 for v in range(0, 400, 3)]  # 134 entries, 50 distinct, duplicates in every run
    report = build_blacklist(_serials(values), tmp_path / "out.bin", chunk_records=4)
    assert (report.entries, report.count) == (134, 50)
    with Blacklist.open(tmp_path / "out.bin") as bl:
        bl.verify(check_order=True)
        assert sorted(bl) == [bytes.fromhex(s) for s in _serials(sorted(set(values)))]
    assert _leftovers(tmp_path, "out.bin") == []  # run files and their directory are gone


def test_progress_is_reported(tmp_path):
    src = tmp_path / "list.txt"
    src.write_text(f"{S1}\n{S2}\n")
    calls = []
    build_blacklist(src, tmp_path / "out.bin", progress=lambda *call: calls.append(call))
    assert calls == [("read", 42, 42), ("write", 2, 2)]
    calls.clear()
    apply_delta(tmp_path / "out.bin", add=[S3], progress=lambda *call: calls.append(call))
    assert calls == [("copy", 0, 2), ("copy", 2, 2)]  # S3 goes before S1 and S2 (by CRC-32)


# --- damaged, foreign and unsorted files

def _damaged(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "bad.bin"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("data,message", [
    (b"", r"0 bytes, too short for a blacklist header \(34 bytes\)"),
    (SMALL_FILE[:33], "33 bytes, too short"),
    (b"\x89PNG\r\n\x1a\n" + bytes(40), r"not a blacklist file \(starts 89504E470D0A1A0A\)"),
    (b"YKTBL\r\n" + SMALL_FILE[7:], "not a blacklist file"),
    (SMALL_FILE[:8] + b"\x00\x03" + SMALL_FILE[10:], "format version 3; this software reads version 2"),
    (SMALL_FILE[:21] + b"\x02" + SMALL_FILE[22:], r"header checksum mismatch \(damaged header\)"),
    (SMALL_FILE[:-1], (r"75 bytes, but 3 records and their bucket table make 76 \(truncated, partly copied or "
                      r"appended-to file\)")),
    (SMALL_FILE + b"\n", "77 bytes, but 3 records"),
    (SMALL_FILE[:-5] + b"\x01" + SMALL_FILE[-4:], r"bucket table checksum mismatch \(damaged table\)"),
])
def test_damaged_or_foreign_files_are_rejected_at_open(tmp_path, data, message):
    path = _damaged(tmp_path, data)
    with pytest.raises(BlacklistError, match=f"^{path}: {message}"):
        Blacklist.open(path)


def test_a_version_1_file_says_to_rebuild(tmp_path):
    path = _damaged(tmp_path, V1_FILE)
    with pytest.raises(BlacklistError, match=r"format version 1 \(one checksum over the whole file, checked at every "
                                             r"open\); this software reads version 2: rebuild the list from its "
                                             r"source with 'ykt blacklist build'$"):
        Blacklist.open(path)


@pytest.mark.parametrize("changes,message", [
    ({"record_size": 12}, "record size 12, expected 10"),
    ({"bucket_bits": 25}, "1 records in 2\\^25 buckets: at most 4294967295 records in 2\\^24 buckets"),
])
def test_other_record_size_or_too_many_buckets_are_rejected(tmp_path, changes, message):
    path = _damaged(tmp_path, _file_bytes([B1], **changes))
    with pytest.raises(BlacklistError, match=message):
        Blacklist.open(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(BlacklistError, match=r"nope\.bin: cannot open: No such file or directory"):
        Blacklist.open(tmp_path / "nope.bin")
    with pytest.raises(BlacklistError, match="cannot open: Is a directory"):
        Blacklist.open(tmp_path)


def _many(tmp_path: Path) -> tuple[Path, list[bytes]]:
    """A list of 300 serials in 8 buckets, and its records in file order."""
    path = tmp_path / "many.bin"
    build_blacklist(_serials(range(1000, 4000, 10)), path)
    with Blacklist.open(path) as bl:
        assert bl.buckets == 8
        return path, list(bl)


def _bucket_of(path: Path, serial: bytes) -> tuple[int, int]:
    """The bucket holding ``serial`` and its number of records."""
    with Blacklist.open(path) as bl:
        bucket = zlib.crc32(serial) >> (32 - 3)
        return bucket, bl._starts[bucket + 1] - bl._starts[bucket]


def test_a_damaged_bucket_is_found_at_its_first_touch_and_the_list_stays_refused(tmp_path):
    path, records = _many(tmp_path)
    victim = records[100]
    bucket, _ = _bucket_of(path, victim)
    other = next(r for r in records if zlib.crc32(r) >> 29 != bucket)
    data = bytearray(path.read_bytes())
    data[34 + 100 * 10 + 9] ^= 0x01  # one bit of one record
    path.write_bytes(data)
    bl = Blacklist.open(path)  # the records are not read at open
    assert other in bl  # its bucket is sound
    with pytest.raises(BlacklistDamaged, match=rf"^{path}: blacklist bucket {bucket} is damaged: checksum mismatch "
                                               r"in records \d+ to \d+; replace the list file$") as caught:
        victim in bl  # noqa: B015
    assert isinstance(caught.value, OutOfService) and isinstance(caught.value, BlacklistError)
    for lookup in (lambda: other in bl, lambda: b"\0" * 10 in bl, lambda: list(bl), bl.verify):
        with pytest.raises(BlacklistDamaged, match=f"bucket {bucket} is damaged"):
            lookup()  # nothing is answered from a list found damaged
    bl.close()
    with Blacklist.open(path) as fresh, pytest.raises(BlacklistDamaged, match=f"bucket {bucket} is damaged"):
        fresh.verify()


def test_bucket_bounds_outside_the_records_are_damage(tmp_path):
    path = _damaged(tmp_path, _file_bytes([B1, B2], starts=[0, 3]))  # valid checksums, a bucket past the end
    message = r"bucket 0 is damaged: its bounds \(0 to 3\) are not within the 2 records"
    with Blacklist.open(path) as bl, pytest.raises(BlacklistDamaged, match=message):
        B1 in bl  # noqa: B015


def test_a_damaged_list_takes_the_validator_out_of_service_without_charging(tmp_path):
    rider = card()
    path = tmp_path / "black.bin"
    build_blacklist([S1, S2, S3], path)
    data = bytearray(path.read_bytes())
    data[34 + 5] ^= 0x10
    path.write_bytes(data)
    rig = Rig(blacklist=Blacklist.open(path))
    outcome = rig.tap(rider)
    assert outcome.status is TapStatus.OUT_OF_SERVICE
    assert outcome.detail == f"{path}: blacklist bucket 0 is damaged: checksum mismatch in records 0 to 2; replace " \
                             "the list file"
    assert rider.balance == 10000 and rig.journaled() == 0 and not rider.image.blocked
    with pytest.raises(OutOfService, match="bucket 0 is damaged"):
        rig.tap(rider, advance=5)
    assert serial_of(rider) not in (B1, B2, B3)


def test_disorder_and_records_in_the_wrong_bucket_are_found_by_the_full_check(tmp_path):
    path = _damaged(tmp_path, _file_bytes([B1, B3, B2]))  # valid checksums, out of order in their one bucket
    with Blacklist.open(path) as bl:
        bl.verify()
        with pytest.raises(BlacklistError, match="record 1 does not come after the one before it"):
            bl.verify(check_order=True)
    path = _damaged(tmp_path, _file_bytes([B3, B3]))
    with Blacklist.open(path) as bl, pytest.raises(BlacklistError, match="record 1 does not come after"):
        bl.verify(check_order=True)
    # B1 (92EDEDED) and B2 (F53466D9) belong in bucket 1 of 2 and B3 (17428924) in bucket 0: swap the buckets
    path = _damaged(tmp_path, _file_bytes([B1, B2, B3], bits=1, starts=[0, 2, 3]))
    with Blacklist.open(path) as bl:
        assert bl.verify() == 2
        with pytest.raises(BlacklistError, match="record 0 is in bucket 0, but its CRC-32 puts it in bucket 1"):
            bl.verify(check_order=True)


def test_writer_refuses_records_out_of_order(tmp_path):
    target = tmp_path / "w.bin"
    k1, k2, k3 = (order_key(b) for b in (B3, B1, B2))
    with pytest.raises(BlacklistError, match="refusing records out of order after record 2"), \
            _Writer(target, 1, 3) as writer:
        writer.records([k1, k2])
        writer.records([k2])
    with pytest.raises(BlacklistError, match="refusing records out of order after record 0"), \
            _Writer(target, 1, 3) as writer:
        writer.records([k3, k1])
    assert _leftovers(tmp_path) == []


# --- deltas

@pytest.fixture
def small(tmp_path) -> Path:
    path = tmp_path / "list.bin"
    path.write_bytes(SMALL_FILE)
    return path


def test_delta_exact_contents_and_counts(small, tmp_path):
    new = "00000000000000000001"
    report = apply_delta(small, add=[new, S1[1:], new], remove=[S2, "99999999999999999999"])
    assert (report.added, report.already_present, report.removed, report.absent) == (1, 1, 1, 1)
    assert (report.count, report.generation, report.path) == (3, 2, small)
    assert small.read_bytes() == _file_bytes(sorted([bytes.fromhex(new), B1, B3], key=order_key), generation=2)
    assert _leftovers(tmp_path, "list.bin") == []


def test_delta_remove_everything_and_add_to_empty(small):
    report = apply_delta(small, remove=[S3, S1, S2])
    assert (report.removed, report.count) == (3, 0)
    with Blacklist.open(small) as bl:
        assert len(bl) == 0 and bl.generation == 2
    report = apply_delta(small, add=[S2, S3, S1])
    assert (report.added, report.count, report.generation) == (3, 3, 3)
    assert small.read_bytes()[34:] == SMALL_FILE[34:]


def test_delta_from_files_to_another_output(small, tmp_path):
    (tmp_path / "add.csv").write_text(f"serial,why\n{'0' * 20},test\n")
    (tmp_path / "remove.txt").write_text(f"# gone\n{S3}\n")
    report = apply_delta(small, add=tmp_path / "add.csv", remove=tmp_path / "remove.txt", out=tmp_path / "new.bin")
    assert report.path == tmp_path / "new.bin"
    assert small.read_bytes() == SMALL_FILE
    with Blacklist.open(tmp_path / "new.bin") as bl:
        assert list(bl) == sorted([bytes(10), B1, B2], key=order_key)


def test_delta_contradiction_and_bad_entries_leave_the_file_alone(small, tmp_path):
    with pytest.raises(BlacklistError, match=f"serial {S2} is both in the list to add and the list to remove"):
        apply_delta(small, add=[S1, S2], remove=[S2[1:]])
    with pytest.raises(BadEntries, match=r"^list: 1 bad entry: line 2: serial '123': 3 digits"):
        apply_delta(small, add=[S1, "123"])
    assert small.read_bytes() == SMALL_FILE
    assert _leftovers(tmp_path, "list.bin") == []


def test_delta_of_a_damaged_file_is_refused(small, tmp_path):
    small.write_bytes(SMALL_FILE[:-1])
    with pytest.raises(BlacklistError, match="truncated"):
        apply_delta(small, add=[S1])
    damaged = DAMAGED_FILE
    small.write_bytes(damaged)
    with pytest.raises(BlacklistDamaged, match="bucket 0 is damaged: checksum mismatch"):
        apply_delta(small, add=["00000000000000000001"])  # copying from the damaged bucket
    assert small.read_bytes() == damaged
    assert _leftovers(tmp_path, "list.bin") == []


@pytest.mark.parametrize("entries, add, buckets", [
    (list(range(0, 640, 10)) * 3, [1, 2], (4, 2)),  # 192 entries, 64 serials, then 64: runs from the old table
    (list(range(0, 640, 10)), [1, 2], (1, 2)),  # 64 serials, then 64: each record hashed again
])
def test_delta_to_fewer_or_more_buckets(tmp_path, entries, add, buckets):
    path = tmp_path / "b.bin"
    build_blacklist(_serials(entries), path)  # buckets for every entry read, duplicates included
    with Blacklist.open(path) as bl:
        assert bl.buckets == buckets[0]
    apply_delta(path, add=_serials(add), remove=_serials([10, 20]))
    with Blacklist.open(path) as bl:
        assert bl.buckets == buckets[1]
        bl.verify(check_order=True)
        assert sorted(bl) == [bytes.fromhex(s) for s in _serials(sorted(set(entries) - {10, 20} | set(add)))]


def test_replace_keeps_an_open_mapping_valid(small):
    old = Blacklist.open(small)
    apply_delta(small, add=["00000000000000000001"], remove=[S1, S2, S3])
    assert [B1 in old, B2 in old, B3 in old, bytes.fromhex("00000000000000000001") in old] == [True] * 3 + [False]
    assert list(old) == [B3, B1, B2] and old.generation == 1
    build_blacklist([S2], small)
    assert B1 in old
    with Blacklist.open(small) as new:
        assert list(new) == [B2] and B1 not in new
    old.close()


# --- properties

serial_values = st.integers(0, 10**20 - 1)


@settings(max_examples=60, deadline=None)
@given(st.lists(serial_values, max_size=400), st.lists(serial_values, max_size=50), st.integers(1, 500))
def test_membership_equals_set_membership(values, probes, chunk):
    expected = {bytes.fromhex(s) for s in _serials(values)}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "p.bin")
        report = build_blacklist(_serials(values), path, chunk_records=chunk)
        assert (report.entries, report.count) == (len(values), len(expected))
        with Blacklist.open(path) as bl:
            bl.verify(check_order=True)
            assert list(bl) == sorted(expected, key=order_key)
            for serial in [bytes.fromhex(s) for s in _serials(probes)] + sorted(expected):
                assert (serial in bl) == (serial in expected)
        assert os.listdir(tmp) == ["p.bin"]


@settings(max_examples=40, deadline=None)
@given(st.sets(serial_values, max_size=300), st.sets(serial_values, max_size=60), st.sets(serial_values, max_size=60),
       st.integers(1, 100))
def test_delta_equals_set_arithmetic(old, add, remove, chunk):
    remove -= add
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "d.bin")
        build_blacklist(_serials(old), path)
        report = apply_delta(path, add=_serials(add), remove=_serials(remove), chunk_records=chunk)
        with Blacklist.open(path) as bl:
            bl.verify(check_order=True)
            assert sorted(bl) == [bytes.fromhex(s) for s in _serials(sorted((old | add) - remove))]
        assert (report.added, report.already_present) == (len(add - old), len(add & old))
        assert (report.removed, report.absent) == (len(remove & old), len(remove - old))


# --- the command line

def test_cli_build_info_check_update(tmp_path, capsys):
    src, out = tmp_path / "list.txt", tmp_path / "list.bin"
    src.write_text(f"{S3}\n{S1[1:]}\n{S2}\n{S2}\n")
    assert run(["blacklist", "build", str(src), "--out", str(out), "--generation", "7"]) == 0
    assert capsys.readouterr().out == f"{out}: 3 serials (4 read, 1 duplicates), generation 7\n"
    assert out.read_bytes()[34:] == SMALL_FILE[34:]

    assert run(["blacklist", "info", str(out), "--check-order"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"file            {out}", "format          version 2, 10-byte records in 1 bucket (by CRC-32)",
        "serials         3", "generation      7", "checksums       every bucket's CRC-32 verified",
        "order           every record checked", "largest bucket  3 records", "size            76 bytes"]
    assert run(["blacklist", "info", str(out)]) == 0
    assert "order           not checked (--check-order checks it)" in capsys.readouterr().out

    assert run(["blacklist", "check", str(out), "00000000000000000001"]) == 0
    assert capsys.readouterr().out == "00000000000000000001  not listed\n"
    assert run(["blacklist", "check", str(out), "00000000000000000001", S2[1:]]) == 1
    assert capsys.readouterr().out == f"00000000000000000001  not listed\n{S2}  listed\n"

    (tmp_path / "remove.txt").write_text(S2)
    assert run(["blacklist", "update", str(out), "--remove", str(tmp_path / "remove.txt")]) == 0
    assert capsys.readouterr().out == (f"{out}: 2 serials, generation 8: 0 added, 0 already listed, "
                                       f"1 removed, 0 not listed\n")


@pytest.mark.parametrize("args,message", [
    (["check", "{out}", "123"], "ykt: serial '123': 3 digits, expected 20 (or 19 without the leading 0)\n"),
    (["info", "{dir}/nope.bin"], "ykt: {dir}/nope.bin: cannot open: No such file or directory\n"),
    (["info", "{damaged}"], ("ykt: {damaged}: blacklist bucket 0 is damaged: checksum mismatch in records 0 to 2; "
                            "replace the list file\n")),
    (["check", "{damaged}", S1], ("ykt: {damaged}: blacklist bucket 0 is damaged: checksum mismatch in records 0 to "
                                 "2; replace the list file\n")),
    (["info", "{v1}"], ("ykt: {v1}: format version 1 (one checksum over the whole file, checked at every open); this "
                       "software reads version 2: rebuild the list from its source with 'ykt blacklist build'\n")),
    (["build", "{src}", "--out", "{dir}/x.bin"], "ykt: {src}: 1 bad entry: line 2: serial 'zz': not decimal digits\n"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    src, out = tmp_path / "bad.txt", tmp_path / "list.bin"
    src.write_text(f"{S1}\nzz\n")
    out.write_bytes(SMALL_FILE)
    damaged, v1 = tmp_path / "damaged.bin", tmp_path / "v1.bin"
    damaged.write_bytes(DAMAGED_FILE)
    v1.write_bytes(V1_FILE)
    fill = {"dir": tmp_path, "src": src, "out": out, "damaged": damaged, "v1": v1}
    assert run(["blacklist", *(a.format(**fill) for a in args)]) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", message.format(**fill))


def test_cli_update_needs_a_list(small, capsys):
    assert run(["blacklist", "update", str(small)]) == 2
    assert "nothing to do: give --add and/or --remove" in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cli_draws_progress_only_on_a_terminal(tmp_path, capsys, monkeypatch):
    src = tmp_path / "list.txt"
    src.write_text(f"{S1}\n")
    assert run(["blacklist", "build", str(src), "--out", str(tmp_path / "a.bin")]) == 0
    assert capsys.readouterr().err == ""
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert run(["blacklist", "build", str(src), "--out", str(tmp_path / "b.bin")]) == 0
    assert "\rread: " in terminal.getvalue() and "\rwrite: " in terminal.getvalue()
