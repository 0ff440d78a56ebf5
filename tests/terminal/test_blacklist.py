from __future__ import annotations

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
import terminal.blacklist as blacklist_module
from terminal.blacklist import (HEADER, INDEX_STRIDE, BadEntries, Blacklist, BlacklistError, _new_header, _Writer,
                                apply_delta, build_blacklist, parse_serial)
from terminal.errors import ConfigError

# Application serials from the spec (file 0x15 samples), in sorted order.
S1, S2, S3 = "03104770040067442802", "03104895199900000002", "03104991585000011383"
B1, B2, B3 = (bytes.fromhex(s) for s in (S1, S2, S3))
SMALL_FILE = bytes.fromhex(
    "89594B54424C0D0A 0001 000A 0000000000000003 00000001 5B06DAD7 2E98B06F"
    "03104770040067442802 03104895199900000002 03104991585000011383".replace(" ", ""))
EMPTY_FILE = bytes.fromhex("89594B54424C0D0A0001000A000000000000000000000001000000006CF41259")


def _serials(values) -> list[str]:
    return [f"{v:020d}" for v in values]


def _leftovers(directory: Path, *keep: str) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


def _write_file(path: Path, records: list[bytes], *, generation: int = 1, **changes) -> None:
    """A list file as some other tool might write it: valid checksums over whatever records it is given."""
    body = b"".join(records)
    header = _new_header(len(records), generation, zlib.crc32(body))
    for name, value in changes.items():
        setattr(header, name, value)
    header.header_crc = zlib.crc32(HEADER.build(header)[:28])
    path.write_bytes(HEADER.build(header) + body)


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
    assert _new_header(0, 1, 0) == model
    assert HEADER.size == 32


def test_exact_bytes_of_a_small_file(tmp_path):
    lines = ["# stolen cards", "", S3, S1[1:], f"{S2}  # reported 2024-05-01", S3, "  "]
    report = build_blacklist(lines, tmp_path / "list.bin")
    assert (tmp_path / "list.bin").read_bytes() == SMALL_FILE
    assert zlib.crc32(SMALL_FILE[32:]) == 0x5B06DAD7
    assert (report.entries, report.count, report.duplicates, report.generation) == (4, 3, 1, 1)
    assert _leftovers(tmp_path, "list.bin") == []


def test_empty_list_is_a_header(tmp_path):
    build_blacklist([], tmp_path / "empty.bin")
    assert (tmp_path / "empty.bin").read_bytes() == EMPTY_FILE
    with Blacklist.open(tmp_path / "empty.bin", check_order=True) as bl:
        assert len(bl) == 0
        assert B1 not in bl
        assert not bl.contains_digits(S1)
        assert list(bl) == []


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

def test_lookups_hits_misses_first_last(tmp_path):
    path = tmp_path / "l.bin"
    path.write_bytes(SMALL_FILE)
    with Blacklist.open(path) as bl:
        assert len(bl) == 3
        assert [B1 in bl, B2 in bl, B3 in bl] == [True, True, True]
        assert bl[0] == B1 and bl[-1] == B3 and list(bl) == [B1, B2, B3]
        for miss in ("00000000000000000000", "03104770040067442801", "03104770040067442803",
                     "03104991585000011384", "99999999999999999999"):
            assert bytes.fromhex(miss) not in bl
        assert bl.contains_digits(S2[1:]) and bl.contains_digits(S2)
        assert not bl.contains_digits("3104991585000011384")
        with pytest.raises(IndexError):
            bl[3]


def test_lookups_across_many_index_blocks(tmp_path):
    values = list(range(10**15, 10**15 + 20 * 7 * INDEX_STRIDE, 20))  # 7 blocks of the index, gaps of 20
    build_blacklist(_serials(values), tmp_path / "many.bin")
    with Blacklist.open(tmp_path / "many.bin") as bl:
        assert len(bl) == len(values)
        for v in values:
            assert bytes.fromhex(f"{v:020d}") in bl
            assert bytes.fromhex(f"{v - 1:020d}") not in bl
            assert bytes.fromhex(f"{v + 1:020d}") not in bl
        assert bytes.fromhex(f"{values[-1] + 20:020d}") not in bl


def test_open_reads_in_chunks_that_keep_index_samples_aligned(tmp_path, monkeypatch):
    assert blacklist_module._SCAN_BYTES % (INDEX_STRIDE * 10) == 0
    monkeypatch.setattr(blacklist_module, "_SCAN_BYTES", INDEX_STRIDE * 10 * 2)
    records = [bytes.fromhex(s) for s in _serials(range(0, 7 * INDEX_STRIDE * 3, 3))]
    _write_file(tmp_path / "c.bin", records)
    with Blacklist.open(tmp_path / "c.bin", check_order=True) as bl:
        assert bl._index == records[::INDEX_STRIDE]
        assert all(r in bl for r in records)
    _write_file(tmp_path / "c.bin", records[:4 * INDEX_STRIDE] + records[4 * INDEX_STRIDE - 1:])  # a duplicate
    with pytest.raises(BlacklistError, match=f"record {4 * INDEX_STRIDE} is not greater than the one before it"):
        Blacklist.open(tmp_path / "c.bin", check_order=True)


@pytest.mark.parametrize("key", [B1[:9], B1 + b"\0", bytearray(B1), S1, None])
def test_lookup_of_a_non_serial_is_a_protocol_error(tmp_path, key):
    (tmp_path / "l.bin").write_bytes(SMALL_FILE)
    with Blacklist.open(tmp_path / "l.bin") as bl:
        with pytest.raises(ProtocolError, match="serial: expected 10 bytes"):
            key in bl  # noqa: B015


def test_closed_list_refuses_lookups(tmp_path):
    (tmp_path / "l.bin").write_bytes(SMALL_FILE)
    bl = Blacklist.open(tmp_path / "l.bin")
    bl.close()
    bl.close()
    for lookup in (lambda: B1 in bl, lambda: b"\0" * 10 in bl, lambda: bl[0], lambda: list(bl)):
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
    with pytest.raises(BlacklistError, match="no-such-dir/out.bin: cannot create a file next to it"):
        build_blacklist([S1], tmp_path / "no-such-dir" / "out.bin")
    with pytest.raises(BlacklistError, match="no-such-dir: cannot write sort runs: No such file or directory"):
        build_blacklist([S1, S2], tmp_path / "no-such-dir" / "out.bin", chunk_records=1)


def test_external_merge_collapses_duplicates_across_runs(tmp_path):
    values = [v % 50 * 7 for v in range(0, 400, 3)]  # 134 entries, 50 distinct, duplicates in every run
    report = build_blacklist(_serials(values), tmp_path / "out.bin", chunk_records=4)
    assert (report.entries, report.count) == (134, 50)
    with Blacklist.open(tmp_path / "out.bin", check_order=True) as bl:
        assert list(bl) == [bytes.fromhex(s) for s in _serials(sorted(set(values)))]
    assert _leftovers(tmp_path, "out.bin") == []  # run files and their directory are gone


def test_progress_is_reported(tmp_path):
    src = tmp_path / "list.txt"
    src.write_text(f"{S1}\n{S2}\n")
    calls = []
    build_blacklist(src, tmp_path / "out.bin", progress=lambda *call: calls.append(call))
    assert calls == [("read", 42, 42), ("write", 2, 2)]
    calls.clear()
    apply_delta(tmp_path / "out.bin", add=[S3], progress=lambda *call: calls.append(call))
    assert calls == [("copy", 2, 2), ("copy", 2, 2)]


# --- damaged, foreign and unsorted files

def _damaged(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "bad.bin"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("data,message", [
    (b"", r"0 bytes, too short for a blacklist header \(32 bytes\)"),
    (SMALL_FILE[:31], "31 bytes, too short"),
    (b"\x89PNG\r\n\x1a\n" + bytes(40), r"not a blacklist file \(starts 89504E470D0A1A0A\)"),
    (b"YKTBL\r\n" + SMALL_FILE[7:], "not a blacklist file"),
    (SMALL_FILE[:8] + b"\x00\x02" + SMALL_FILE[10:], "format version 2; this software reads version 1"),
    (SMALL_FILE[:19] + b"\x02" + SMALL_FILE[20:], r"header checksum mismatch \(damaged header\)"),
    (SMALL_FILE[:-1], r"61 bytes, but 3 records make 62 \(truncated, partly copied or appended-to file\)"),
    (SMALL_FILE + b"\n", "63 bytes, but 3 records make 62"),
    (SMALL_FILE[:40] + b"\x00" + SMALL_FILE[41:], r"records checksum mismatch \(damaged or partly written file\)"),
])
def test_damaged_or_foreign_files_are_rejected(tmp_path, data, message):
    path = _damaged(tmp_path, data)
    with pytest.raises(BlacklistError, match=f"^{path}: {message}"):
        Blacklist.open(path)


def test_other_record_size_is_rejected(tmp_path):
    _write_file(tmp_path / "r.bin", [B1], record_size=12)
    with pytest.raises(BlacklistError, match="record size 12, expected 10"):
        Blacklist.open(tmp_path / "r.bin")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(BlacklistError, match=r"nope\.bin: cannot open: No such file or directory"):
        Blacklist.open(tmp_path / "nope.bin")
    with pytest.raises(BlacklistError, match="cannot open: Is a directory"):
        Blacklist.open(tmp_path)


def test_unsorted_file_with_valid_checksums(tmp_path):
    path = tmp_path / "u.bin"
    _write_file(path, [B1, B3, B2])  # disorder inside one index block: only the full check sees it
    Blacklist.open(path).close()
    with pytest.raises(BlacklistError, match="record 2 is not greater than the one before it"):
        Blacklist.open(path, check_order=True)
    _write_file(path, [B1, B1])
    with pytest.raises(BlacklistError, match="record 1 is not greater"):
        Blacklist.open(path, check_order=True)


def test_disorder_across_index_blocks_is_caught_at_open(tmp_path):
    records = [bytes.fromhex(s) for s in _serials(range(3 * INDEX_STRIDE))]
    records = records[INDEX_STRIDE:] + records[:INDEX_STRIDE]  # a list appended to another
    path = tmp_path / "u.bin"
    _write_file(path, records)
    with pytest.raises(BlacklistError, match=f"records out of order before record {2 * INDEX_STRIDE}"):
        Blacklist.open(path)


def test_writer_refuses_records_out_of_order(tmp_path):
    target = tmp_path / "w.bin"
    with pytest.raises(BlacklistError, match="refusing records out of order after record 2"):
        with _Writer(target, 1) as writer:
            writer.records([B1, B2])
            writer.records([B2])
    with pytest.raises(BlacklistError, match="refusing records out of order after record 0"):
        with _Writer(target, 1) as writer:
            writer.records([B2, B1])
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
    body = bytes.fromhex(new) + B1 + B3
    assert small.read_bytes() == HEADER.build(_new_header(3, 2, zlib.crc32(body))) + body
    assert _leftovers(tmp_path, "list.bin") == []


def test_delta_remove_everything_and_add_to_empty(small):
    report = apply_delta(small, remove=[S3, S1, S2])
    assert (report.removed, report.count) == (3, 0)
    with Blacklist.open(small) as bl:
        assert len(bl) == 0 and bl.generation == 2
    report = apply_delta(small, add=[S2, S3, S1])
    assert (report.added, report.count, report.generation) == (3, 3, 3)
    assert small.read_bytes()[32:] == SMALL_FILE[32:]


def test_delta_from_files_to_another_output(small, tmp_path):
    (tmp_path / "add.csv").write_text(f"serial,why\n{'0' * 20},test\n")
    (tmp_path / "remove.txt").write_text(f"# gone\n{S3}\n")
    report = apply_delta(small, add=tmp_path / "add.csv", remove=tmp_path / "remove.txt", out=tmp_path / "new.bin")
    assert report.path == tmp_path / "new.bin"
    assert small.read_bytes() == SMALL_FILE
    with Blacklist.open(tmp_path / "new.bin") as bl:
        assert list(bl) == [bytes(10), B1, B2]


def test_delta_contradiction_and_bad_entries_leave_the_file_alone(small, tmp_path):
    with pytest.raises(BlacklistError, match=f"serial {S2} is both in the list to add and the list to remove"):
        apply_delta(small, add=[S1, S2], remove=[S2[1:]])
    with pytest.raises(BadEntries, match=r"^list: 1 bad entry: line 2: serial '123': 3 digits"):
        apply_delta(small, add=[S1, "123"])
    assert small.read_bytes() == SMALL_FILE
    assert _leftovers(tmp_path, "list.bin") == []


def test_delta_of_a_damaged_file_is_refused(small):
    small.write_bytes(SMALL_FILE[:-1])
    with pytest.raises(BlacklistError, match="truncated"):
        apply_delta(small, add=[S1])


def test_replace_keeps_an_open_mapping_valid(small):
    old = Blacklist.open(small)
    apply_delta(small, add=["00000000000000000001"], remove=[S1, S2, S3])
    assert [B1 in old, B2 in old, B3 in old, bytes.fromhex("00000000000000000001") in old] == [True] * 3 + [False]
    assert list(old) == [B1, B2, B3] and old.generation == 1
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
        with Blacklist.open(path, check_order=True) as bl:
            assert list(bl) == sorted(expected)
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
        with Blacklist.open(path, check_order=True) as bl:
            assert list(bl) == [bytes.fromhex(s) for s in _serials(sorted((old | add) - remove))]
        assert (report.added, report.already_present) == (len(add - old), len(add & old))
        assert (report.removed, report.absent) == (len(remove & old), len(remove - old))


# --- the command line

def test_cli_build_info_check_update(tmp_path, capsys):
    src, out = tmp_path / "list.txt", tmp_path / "list.bin"
    src.write_text(f"{S3}\n{S1[1:]}\n{S2}\n{S2}\n")
    assert run(["blacklist", "build", str(src), "--out", str(out), "--generation", "7"]) == 0
    assert capsys.readouterr().out == f"{out}: 3 serials (4 read, 1 duplicates), generation 7\n"
    assert out.read_bytes()[32:] == SMALL_FILE[32:]

    assert run(["blacklist", "info", str(out), "--check-order"]) == 0
    info = capsys.readouterr().out.splitlines()
    assert info[2:4] == ["serials         3", "generation      7"]
    assert info[5:] == ["order           every record checked", "size            62 bytes",
                        f"first           {S1}", f"last            {S3}"]

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
    (["build", "{src}", "--out", "{dir}/x.bin"], "ykt: {src}: 1 bad entry: line 2: serial 'zz': not decimal digits\n"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    src, out = tmp_path / "bad.txt", tmp_path / "list.bin"
    src.write_text(f"{S1}\nzz\n")
    out.write_bytes(SMALL_FILE)
    fill = {"dir": tmp_path, "src": src, "out": out}
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
