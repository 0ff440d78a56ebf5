"""The card blacklist a validator checks on every tap: a file of application serials, memory-mapped.

The file format (version 2) is in ``docs/blacklist-format.md``. In short: the records (10-byte packed-BCD serials)
are grouped into buckets by the top bits of their CRC-32 and ordered by (CRC-32, serial); after them comes a bucket
table with where each bucket starts and each bucket's own CRC-32, covered by a CRC of its own. Ten million cards make
a 102 MB file.

A lookup computes the serial's CRC-32, reads its bucket's bounds from the table and finds the serial among the
bucket's few dozen records with one ``bytes.find``: no search over the whole list, whatever the serials look like.
Opening reads and checks the header, the file size and the bucket table (2 MB for 10 M records), never the records:
a few milliseconds. Each bucket's bounds and CRC are checked when a lookup (an iteration, a delta copying from it)
first touches it. A bucket that fails raises :class:`BlacklistDamaged`, and from then on every lookup does: the list
as a whole is no longer trusted. That error is also an :class:`~terminal.errors.OutOfService`, so a validator whose
list turns out damaged mid-run neither crashes nor takes a damaged bucket for "not listed": it goes out of service,
with a message naming the file and the bucket, until the file is replaced and reopened, just as it would not have
started on a file found damaged at open (the format document says why).

A list file is only ever replaced whole (temp file in the same directory, fsync, rename), so a validator that has the
old file mapped keeps answering from it until it reopens the path. Never edit a published file in place: a mapped
file that shrinks under a reader kills it with SIGBUS.

Record order is not checked at open. The one writer, :class:`_Writer`, refuses a record that does not come after the
one before it, and a delta copies records only from buckets whose CRC matched, so a file whose CRCs match came out of
a writer that checked its order. A file from some other tool can be checked in full with
``Blacklist.verify(check_order=True)`` (``ykt blacklist info --check-order``).

Version 1 files (sorted serials, one CRC over all of them, checked at every open) are refused with a message saying to
rebuild the list from its source with ``ykt blacklist build``: reading them would bring the whole-file check back.

Input lists are text (one serial per line; blank lines and ``#`` comments allowed) or CSV (a header row naming a
column ``serial``, or a single column). A serial is written as its 20 digits or as the 19-digit number printed on
the card, which drops the first digit (0). Building ten million entries keeps at most ``chunk_records`` of them as
Python objects at a time: each chunk is sorted and spilled to a run file next to the output, and the runs are
merged as a stream.
"""

from __future__ import annotations

import array
import contextlib
import csv
import heapq
import itertools
import mmap
import operator
import os
import re
import struct
import sys
import tempfile
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self
from zlib import crc32

import construct as c

from protocols import bcd
from protocols.errors import ProtocolError
from protocols.layout import Layout

from .errors import ConfigError, OutOfService

MAGIC = b"\x89YKTBL\r\n"
VERSION = 2
SERIAL_SIZE = 10
BUCKET_RECORDS = 64
"""The writer gives a file as many buckets as it takes to hold at most this many records each on average (a power of
two): 262,144 buckets of 38 records for ten million."""
MAX_BUCKET_BITS = 24
MAX_RECORDS = 0xFFFF_FFFF  # the bucket table holds record positions as 32-bit numbers

Source = str | os.PathLike[str] | Iterable[str]
"""A list of serials: a path (``.csv`` means CSV), or text lines. A ``str`` is always a path."""

Progress = Callable[[str, int, int | None], None]
"""``progress(phase, done, total)``: phase ``"read"`` counts characters of the input, ``"write"`` and ``"copy"``
count records; ``total`` is ``None`` when unknown."""


class BlacklistError(ConfigError):
    """A list file or an input list is unusable; the message names the file and what is wrong."""


class BlacklistDamaged(BlacklistError, OutOfService):
    """A bucket of an open list failed its check when first touched: the list can no longer be trusted.

    An :class:`~terminal.errors.OutOfService` too: a validator stops taking fares (rather than crash mid-tap, or answer
    "not listed" from a list it cannot read) until the file is replaced and opened again."""


class BadEntries(BlacklistError):
    """Entries of an input list are not serials. ``errors`` holds (line number, reason) for the first of them."""

    SHOWN = 10
    KEPT = 1000

    def __init__(self, source: str, errors: list[tuple[int, str]], total: int) -> None:
        shown = "; ".join(f"line {line}: {reason}" for line, reason in errors[:self.SHOWN])
        more = f"; and {total - self.SHOWN} more" if total > self.SHOWN else ""
        super().__init__(f"{source}: {total} bad entr{'y' if total == 1 else 'ies'}: {shown}{more}")
        self.errors = errors
        self.total = total


@dataclass(slots=True)
class BlacklistHeader:
    """The 34-byte header of a list file."""

    magic: bytes
    version: int
    record_size: int
    bucket_bits: int
    count: int
    generation: int
    table_crc: int
    header_crc: int

    @property
    def buckets(self) -> int:
        return 1 << self.bucket_bits


HEADER = Layout(
    BlacklistHeader,
    "magic" / c.Bytes(8),
    "version" / c.Int16ub,
    "record_size" / c.Int16ub,
    "bucket_bits" / c.Int16ub,
    "count" / c.Int64ub,
    "generation" / c.Int32ub,
    "table_crc" / c.Int32ub,
    "header_crc" / c.Int32ub,
    examples=(("89594B54424C0D0A 0002 000A 0000 0000000000000000 00000001 7BD5C66F 4EC195FE",
               BlacklistHeader(MAGIC, 2, 10, 0, 0, 1, 0x7BD5C66F, 0x4EC195FE)),),
)
_BODY = HEADER.size
_CRC_SPAN = _BODY - 4
_VERSION_END = 10  # magic and version: where every format version keeps them
_KEY = struct.Struct(">I10s")
"""A record's place in the file: its CRC-32, then the serial (ties of the CRC)."""
_COPY_RECORDS = 100_000
_WRITE_RECORDS = 65_536
_RUN_READ_RECORDS = 8_192  # per run being merged: a merge of k runs holds k times this many records
_PROGRESS_LINES = 65_536
_SEPARATORS = re.compile(r"[\s-]+")
_SPLITTERS = {size: struct.Struct(f"{size}s" * 256) for size in (SERIAL_SIZE, _KEY.size)}
"""Cut 256 records at a time into bytes objects, in C."""


def parse_serial(text: str) -> bytes:
    """A serial as people write it (20 digits, or the 19 printed on the card) to its 10 BCD bytes.

    Spaces and dashes between digit groups are ignored.
    """
    digits = text.strip()
    if not (digits.isascii() and digits.isdigit()):
        digits = _SEPARATORS.sub("", digits)
        if not (digits.isascii() and digits.isdigit()):
            raise ProtocolError(f"serial {text!r}: not decimal digits")
    if len(digits) not in (19, 20):
        raise ProtocolError(f"serial {text!r}: {len(digits)} digits, expected 20 (or 19 without the leading 0)")
    return bcd.from_digits(digits, SERIAL_SIZE, what="serial")


def order_key(serial: bytes) -> bytes:
    """Where a serial goes in a list file: records are in the order of these keys (its CRC-32, then itself)."""
    return _KEY.pack(crc32(serial), serial)


def bucket_bits(count: int) -> int:
    """How many CRC bits pick the bucket in a file of ``count`` records."""
    bits = 0
    while count > BUCKET_RECORDS << bits and bits < MAX_BUCKET_BITS:
        bits += 1
    return bits


@contextlib.contextmanager
def _os_errors(path: object, doing: str) -> Iterator[None]:
    """An OSError while ``doing`` something with ``path`` becomes a one-line :class:`BlacklistError`."""
    try:
        yield
    except OSError as exc:
        raise BlacklistError(f"{path}: cannot {doing}: {exc.strerror or exc}") from None


def _new_header(count: int, generation: int, bits: int, table_crc: int) -> BlacklistHeader:
    header = BlacklistHeader(MAGIC, VERSION, SERIAL_SIZE, bits, count, generation, table_crc, 0)
    header.header_crc = crc32(HEADER.build(header)[:_CRC_SPAN])
    return header


def _table_size(bits: int) -> int:
    """Bytes of the bucket table: 2^bits + 1 starts, 2^bits CRCs."""
    return 4 * ((2 << bits) + 1)


def _increasing(records: list[bytes]) -> bool:
    return all(map(operator.lt, records, itertools.islice(records, 1, None)))


def _split(data: bytes, size: int = SERIAL_SIZE) -> list[bytes]:
    """Records of ``size`` bytes, one bytes object each."""
    splitter = _SPLITTERS[size]
    whole = len(data) - len(data) % splitter.size
    records: list[bytes] = []
    for group in splitter.iter_unpack(memoryview(data)[:whole]):
        records.extend(group)
    records.extend(data[i:i + size] for i in range(whole, len(data), size))
    return records


def _words(raw: bytes) -> array.array[int]:
    """Big-endian 32-bit numbers as an array of ints."""
    words = array.array("I", raw)
    if sys.byteorder == "little":
        words.byteswap()
    return words


def _words_bytes(words: array.array[int]) -> bytes:
    out = array.array("I", words)
    if sys.byteorder == "little":
        out.byteswap()
    return out.tobytes()


def _runs(hashes: list[int], shift: int) -> Iterator[tuple[int, int]]:
    """(bucket, end) of each run of records of one bucket, from the records' CRC-32s (in order)."""
    done = 0
    while done < len(hashes):
        bucket = hashes[done] >> shift
        done = bisect_left(hashes, (bucket + 1) << shift, done)
        yield bucket, done


class Blacklist:
    """An open list file: ``serial in blacklist`` for 10-byte serials, answered from the mapping."""

    def __init__(self, path: Path, header: BlacklistHeader, mapping: mmap.mmap, starts: array.array[int],
                 crcs: array.array[int]) -> None:
        self.path = path
        self.header = header
        self._mm: mmap.mmap | None = mapping
        self._starts = starts
        self._crcs = crcs
        self._count = header.count
        self._shift = 32 - header.bucket_bits
        self._checked = bytearray(header.buckets)  # 1: the bucket passed its check
        self._damaged: str | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Blacklist:
        """Map a list file after checking its header, size and bucket table (see the module docstring)."""
        path = Path(path)
        with _os_errors(path, "open"), open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            header = _check_header(path, file.read(_BODY), size)
            file.seek(_BODY + header.count * SERIAL_SIZE)
            table = file.read(_table_size(header.bucket_bits))
            if len(table) != _table_size(header.bucket_bits):
                raise BlacklistError(f"{path}: file shrank while being read")
            if crc32(table) != header.table_crc:
                raise BlacklistError(f"{path}: bucket table checksum mismatch (damaged table)")
            starts = _words(table[:4 * (header.buckets + 1)])
            crcs = _words(table[4 * (header.buckets + 1):])
            mapping = mmap.mmap(file.fileno(), size, access=mmap.ACCESS_READ)
        return cls(path, header, mapping, starts, crcs)

    @property
    def generation(self) -> int:
        return self.header.generation

    @property
    def buckets(self) -> int:
        return self.header.buckets

    def __len__(self) -> int:
        return self._count

    def __contains__(self, serial: bytes) -> bool:
        if type(serial) is not bytes or len(serial) != SERIAL_SIZE:
            raise ProtocolError(f"serial: expected {SERIAL_SIZE} bytes, got {serial!r}")
        records = self._bucket(crc32(serial) >> self._shift)
        at = records.find(serial)
        while at > 0 and at % SERIAL_SIZE:  # a match across two records
            at = records.find(serial, at + 1)
        return at >= 0

    def contains_digits(self, text: str) -> bool:
        """Membership of a serial written as digits (see :func:`parse_serial`)."""
        return parse_serial(text) in self

    def __iter__(self) -> Iterator[bytes]:
        """The serials in file order (see :func:`order_key`)."""
        for bucket in range(self.buckets):
            yield from _split(self._bucket(bucket))

    def verify(self, *, check_order: bool = False) -> int:
        """Check every bucket now (bounds and CRC) and, with ``check_order``, that every record is in its bucket and
        after the one before it; returns the number of records in the largest bucket."""
        self._mapping()
        largest = 0
        last = b""
        for bucket in range(self.buckets):
            records = self._bucket(bucket)
            largest = max(largest, len(records) // SERIAL_SIZE)
            if check_order and records:
                last = self._check_order(bucket, records, last)
        return largest

    def close(self) -> None:
        if self._mm is not None:
            self._mm.close()
            self._mm = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Blacklist({str(self.path)!r}, {self._count} serials, generation {self.header.generation})"

    def _mapping(self) -> mmap.mmap:
        if self._mm is None:
            raise BlacklistError(f"{self.path}: the list is closed")
        return self._mm

    def _bucket(self, bucket: int) -> bytes:
        """The records of one bucket, checked on its first touch."""
        mm = self._mm
        if mm is None:
            raise BlacklistError(f"{self.path}: the list is closed")
        starts = self._starts
        records = mm[_BODY + starts[bucket] * SERIAL_SIZE:_BODY + starts[bucket + 1] * SERIAL_SIZE]
        if not self._checked[bucket]:
            self._check(bucket, records)
        return records

    def _check(self, bucket: int, records: bytes) -> None:
        if self._damaged is None:
            first, stop = self._starts[bucket], self._starts[bucket + 1]
            if not first <= stop <= self._count:
                problem = f"its bounds ({first} to {stop}) are not within the {self._count} records"
            elif crc32(records) != self._crcs[bucket]:
                problem = f"checksum mismatch in records {first} to {stop - 1}"
            else:
                self._checked[bucket] = 1
                return
            self._damaged = f"{self.path}: blacklist bucket {bucket} is damaged: {problem}; replace the list file"
            self._checked = bytearray(self.buckets)  # no bucket counts as checked any more: every lookup raises
        raise BlacklistDamaged(self._damaged)

    def _check_order(self, bucket: int, records: bytes, last: bytes) -> bytes:
        """Every record of a checked bucket belongs in it and comes after the one before; returns the last key."""
        keys = [order_key(record) for record in _split(records)]
        first = self._starts[bucket]
        for i, key in enumerate(keys):
            belongs = int.from_bytes(key[:4], "big") >> self._shift
            if belongs != bucket:
                raise BlacklistError(f"{self.path}: record {first + i} is in bucket {bucket}, but its CRC-32 puts it "
                                     f"in bucket {belongs}")
            if key <= (keys[i - 1] if i else last):
                raise BlacklistError(f"{self.path}: record {first + i} does not come after the one before it")
        return keys[-1]

    def _lower_bound(self, key: bytes) -> tuple[int, bool]:
        """Position of the first record whose :func:`order_key` is not less than ``key``, and whether it equals it."""
        bucket = int.from_bytes(key[:4], "big") >> self._shift
        keys = [order_key(record) for record in _split(self._bucket(bucket))]
        at = bisect_left(keys, key)
        return self._starts[bucket] + at, at < len(keys) and keys[at] == key

    def _raw(self, start: int, stop: int) -> bytes:
        """Records ``start`` up to ``stop`` as they are stored, their buckets checked."""
        starts, checked, buckets = self._starts, self._checked, self.buckets
        bucket = bisect_right(starts, start) - 1
        while bucket < buckets and starts[bucket] < stop:
            if not checked[bucket]:
                self._bucket(bucket)
            bucket += 1
        return self._mapping()[_BODY + start * SERIAL_SIZE:_BODY + stop * SERIAL_SIZE]

    def _runs(self, start: int, stop: int, bits: int) -> list[tuple[int, int]]:
        """The runs (see :func:`_runs`) of records ``start`` up to ``stop`` in a file of 2^``bits`` buckets, at most
        as many as this one's, from this file's table."""
        starts, buckets, drop = self._starts, self.buckets, self.header.bucket_bits - bits
        runs = []
        bucket = bisect_right(starts, start) - 1
        while bucket < buckets and starts[bucket] < stop:
            end = min(starts[bucket + 1], stop)
            if end > starts[bucket]:
                runs.append((bucket >> drop, end - start))
            bucket += 1
        return runs


def _check_header(path: Path, raw: bytes, size: int) -> BlacklistHeader:
    if len(raw) >= _VERSION_END and raw[:8] == MAGIC:
        version = int.from_bytes(raw[8:_VERSION_END], "big")
        if version == 1:
            raise BlacklistError(f"{path}: format version 1 (one checksum over the whole file, checked at every open); "
                                 f"this software reads version {VERSION}: rebuild the list from its source with "
                                 "'ykt blacklist build'")
        if version != VERSION:  # before the header CRC: another version may put its CRC elsewhere
            raise BlacklistError(f"{path}: format version {version}; this software reads version {VERSION}")
    if len(raw) < _BODY:
        raise BlacklistError(f"{path}: {size} bytes, too short for a blacklist header ({_BODY} bytes)")
    header = HEADER.parse(raw)
    if header.magic != MAGIC:
        raise BlacklistError(f"{path}: not a blacklist file (starts {header.magic.hex().upper()})")
    if crc32(raw[:_CRC_SPAN]) != header.header_crc:
        raise BlacklistError(f"{path}: header checksum mismatch (damaged header)")
    if header.record_size != SERIAL_SIZE:
        raise BlacklistError(f"{path}: record size {header.record_size}, expected {SERIAL_SIZE}")
    if header.bucket_bits > MAX_BUCKET_BITS or header.count > MAX_RECORDS:
        raise BlacklistError(f"{path}: {header.count} records in 2^{header.bucket_bits} buckets: at most "
                             f"{MAX_RECORDS} records in 2^{MAX_BUCKET_BITS} buckets")
    expected = _BODY + header.count * SERIAL_SIZE + _table_size(header.bucket_bits)
    if size != expected:
        raise BlacklistError(f"{path}: {size} bytes, but {header.count} records and their bucket table make "
                             f"{expected} (truncated, partly copied or appended-to file)")
    return header


class _Writer:
    """Writes a list file atomically; refuses any record that does not come after the one before it.

    ``capacity`` is about how many records will come (at least as many, if not exactly): it sets the number of
    buckets."""

    def __init__(self, target: Path, generation: int, capacity: int) -> None:
        if not 0 <= generation < 1 << 32:
            raise BlacklistError(f"{target}: generation {generation} is not a 32-bit unsigned number")
        self.target = target
        self.generation = generation
        self.bits = bucket_bits(capacity)
        self.count = 0
        self._shift = 32 - self.bits
        self._last = b""  # the last record's order key
        self._bucket = 0  # the bucket being written
        self._crc = 0  # of the records written to it so far
        self._starts: array.array[int] = array.array("I", [0])
        self._crcs: array.array[int] = array.array("I")
        with _os_errors(target, "create a file next to it"):
            fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        self._tmp = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._write(bytes(_BODY))

    def records(self, keys: list[bytes]) -> None:
        """Append records given by their order keys (:func:`order_key`), in order."""
        if keys:
            if not (self._last < keys[0] and _increasing(keys)):
                raise BlacklistError(f"{self.target}: refusing records out of order after record {self.count}")
            serials = [key[4:] for key in keys]
            self._append(b"".join(serials), _runs(list(map(crc32, serials)), self._shift), keys[-1])

    def copy(self, source: Blacklist, start: int, stop: int) -> None:
        """Append records ``start`` up to ``stop`` of an open list, whose order its own writer checked.

        With no more buckets than the source, a record's new bucket is its old one's top bits: the runs come from the
        source's table, and no record is hashed again."""
        for first in range(start, stop, _COPY_RECORDS):
            end = min(first + _COPY_RECORDS, stop)
            data = source._raw(first, end)
            if not self._last < order_key(data[:SERIAL_SIZE]):
                raise BlacklistError(f"{self.target}: refusing records out of order after record {self.count}")
            runs: Iterable[tuple[int, int]]
            if source.header.bucket_bits >= self.bits:
                runs = source._runs(first, end, self.bits)
            else:
                runs = _runs(list(map(crc32, _split(data))), self._shift)
            self._append(data, runs, order_key(data[-SERIAL_SIZE:]))

    def commit(self) -> BlacklistHeader:
        """Write the bucket table and the header, make the file durable and put it in place in one rename."""
        while self._bucket < 1 << self.bits:
            self._next_bucket(self.count)
        table = _words_bytes(self._starts) + _words_bytes(self._crcs)
        header = _new_header(self.count, self.generation, self.bits, crc32(table))
        with _os_errors(self.target, "write"):
            self._file.write(table)
            self._file.seek(0)
            self._file.write(HEADER.build(header))
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            try:
                mode = self.target.stat().st_mode & 0o777
            except FileNotFoundError:
                mode = 0o644
            os.chmod(self._tmp, mode)
            os.replace(self._tmp, self.target)
            dir_fd = os.open(self.target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # makes the rename itself durable
            finally:
                os.close(dir_fd)
        return header

    def abort(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self.abort()

    def _append(self, data: bytes, runs: Iterable[tuple[int, int]], last: bytes) -> None:
        """Write records in order, keeping each bucket's start and CRC for the table. ``runs`` says where each run of
        records of one bucket ends: (bucket, position after its last record in ``data``), in order."""
        count = len(data) // SERIAL_SIZE
        if self.count + count > MAX_RECORDS:
            raise BlacklistError(f"{self.target}: more than {MAX_RECORDS} records")
        view = memoryview(data)
        done = 0
        for bucket, end in runs:
            while self._bucket < bucket:
                self._next_bucket(self.count + done)
            self._crc = crc32(view[done * SERIAL_SIZE:end * SERIAL_SIZE], self._crc)
            done = end
        self._write(data)
        self.count += count
        self._last = last

    def _next_bucket(self, start: int) -> None:
        """Close the bucket being written; the next one starts at record ``start``."""
        self._crcs.append(self._crc)
        self._crc = 0
        self._bucket += 1
        self._starts.append(start)

    def _write(self, data: bytes) -> None:
        with _os_errors(self.target, "write"):
            self._file.write(data)


class _Entries:
    """The serials of one input list, read lazily; bad entries are collected and raised once the list is read."""

    def __init__(self, source: Source, fmt: str | None, progress: Progress | None) -> None:
        self.path: str | None = None
        self.lines: Iterable[str] = ()
        if isinstance(source, (str, os.PathLike)):
            self.path = self.name = os.fspath(source)
        else:
            self.lines, self.name = source, "list"
        if fmt is None:
            fmt = "csv" if self.path is not None and self.path.lower().endswith(".csv") else "text"
        if fmt not in ("text", "csv"):
            raise BlacklistError(f"{self.name}: unknown list format {fmt!r} (text or csv)")
        self.fmt = fmt
        self.progress = progress
        self.count = 0
        self._errors: list[tuple[int, str]] = []
        self._bad = 0

    def __iter__(self) -> Iterator[bytes]:
        if self.path is None:
            yield from self._parse(self._counted(iter(self.lines), None))
        else:
            newline = "" if self.fmt == "csv" else None
            with _os_errors(self.name, "read"), \
                    open(self.path, encoding="utf-8-sig", errors="replace", newline=newline) as file:
                yield from self._parse(self._counted(file, os.fstat(file.fileno()).st_size))
        if self._bad:
            raise BadEntries(self.name, self._errors, self._bad)

    def _parse(self, lines: Iterable[str]) -> Iterator[bytes]:
        return self._csv(lines) if self.fmt == "csv" else self._text(lines)

    def _text(self, lines: Iterable[str]) -> Iterator[bytes]:
        for number, line in enumerate(lines, 1):
            text = line.strip()
            if "#" in text:
                text = text.partition("#")[0].rstrip()
            if text and (serial := self._serial(number, text)):
                yield serial

    def _csv(self, lines: Iterable[str]) -> Iterator[bytes]:
        reader = csv.reader(lines)
        column: int | None = None
        try:
            for row in reader:
                if not any(cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
                    continue
                if column is None:
                    names = [cell.strip().lower() for cell in row]
                    if "serial" in names:
                        column = names.index("serial")
                        continue
                    if len(row) > 1:
                        raise BlacklistError(f"{self.name}: line {reader.line_num}: no column named 'serial' "
                                             f"in the header row ({', '.join(row)})")
                    column = 0
                if column >= len(row):
                    self._fail(reader.line_num, f"{len(row)} column(s); the serial is column {column + 1}")
                elif serial := self._serial(reader.line_num, row[column]):
                    yield serial
        except csv.Error as exc:
            raise BlacklistError(f"{self.name}: line {reader.line_num}: not CSV: {exc}") from None

    def _serial(self, number: int, text: str) -> bytes | None:
        try:
            serial = parse_serial(text)
        except ProtocolError as exc:
            self._fail(number, str(exc))
            return None
        self.count += 1
        return serial

    def _fail(self, number: int, reason: str) -> None:
        self._bad += 1
        if len(self._errors) < BadEntries.KEPT:
            self._errors.append((number, reason))

    def _counted(self, lines: Iterable[str], total: int | None) -> Iterable[str]:
        """The lines, reporting progress (in characters) every so many lines."""
        progress = self.progress
        if progress is None:
            return lines

        def counted() -> Iterator[str]:
            done = 0
            for number, line in enumerate(lines, 1):
                done += len(line)
                if number % _PROGRESS_LINES == 0:
                    progress("read", done, total)
                yield line
            progress("read", done, total)

        return counted()


def _write_run(path: Path, records: list[bytes]) -> None:
    """Records to a file, joined a slice at a time: ``bytes.join`` briefly needs 80 bytes per item it joins."""
    with open(path, "wb") as file:
        file.writelines(b"".join(records[start:start + _WRITE_RECORDS]) for start in range(0, len(records),
                                                                                          _WRITE_RECORDS))


def _read_run(path: Path) -> Iterator[bytes]:
    with _os_errors(path, "read a sort run"), open(path, "rb") as file:
        while block := file.read(_RUN_READ_RECORDS * _KEY.size):
            yield from _split(block, _KEY.size)


def _sorted_keys(serials: Iterable[bytes], spill_dir: Path, chunk_records: int) -> Generator[list[bytes]]:
    """The serials' order keys (:func:`order_key`) sorted and de-duplicated, in batches, holding at most
    ``chunk_records`` of them at a time.

    The input is read in full on the first ``next()``: each chunk is sorted and, unless it is the only one, written
    to a run file in a temporary directory under ``spill_dir`` (next to the output: ``/tmp`` may be RAM). The runs
    are then merged as a stream.
    """
    records = map(order_key, serials)
    with contextlib.ExitStack() as cleanup:
        runs: list[Path] = []
        tmp: str | None = None
        merged: Iterator[bytes] | None = None
        batch = list(itertools.islice(records, chunk_records))
        while batch:
            batch.sort()
            more = list(itertools.islice(records, 1))
            if not more and not runs:
                merged = iter(batch)
                break
            with _os_errors(spill_dir, "write sort runs"):
                if tmp is None:
                    tmp = cleanup.enter_context(tempfile.TemporaryDirectory(dir=spill_dir, prefix=".blacklist-"))
                run = Path(tmp, f"run{len(runs)}")
                _write_run(run, batch)
            runs.append(run)
            batch = more  # the spilled chunk is dropped before the next one is read
            batch.extend(itertools.islice(records, chunk_records - 1))
        if merged is None:
            merged = heapq.merge(*map(_read_run, runs))
        del batch
        unique = map(operator.itemgetter(0), itertools.groupby(merged))
        while out := list(itertools.islice(unique, _WRITE_RECORDS)):
            yield out


@dataclass(slots=True, frozen=True)
class BuildReport:
    path: Path
    entries: int  # serials read, duplicates included
    count: int  # serials in the file
    generation: int

    @property
    def duplicates(self) -> int:
        return self.entries - self.count


def build_blacklist(source: Source, out_path: str | os.PathLike[str], *, fmt: str | None = None,
                    generation: int = 1, chunk_records: int = 1_000_000,
                    progress: Progress | None = None) -> BuildReport:
    """Build a list file from a text or CSV list (``fmt`` "text" or "csv"; by default a ``.csv`` path is CSV).

    Nothing is written when any entry is bad: :class:`BadEntries` names the lines. The file appears atomically.
    """
    out = Path(out_path)
    entries = _Entries(source, fmt, progress)
    with contextlib.closing(_sorted_keys(entries, out.parent, chunk_records)) as batches:
        first = next(batches, [])  # reads the whole input: bad entries are raised before the output exists
        with _Writer(out, generation, capacity=entries.count) as writer:
            for batch in itertools.chain([first], batches):
                writer.records(batch)
                if progress:
                    progress("write", writer.count, entries.count)
            header = writer.commit()
    return BuildReport(out, entries.count, header.count, header.generation)


@dataclass(slots=True, frozen=True)
class DeltaReport:
    path: Path
    added: int
    already_present: int
    removed: int
    absent: int
    count: int
    generation: int


def _events(add: Iterator[bytes], remove: Iterator[bytes]) -> Iterator[tuple[bytes, bool]]:
    """Additions (True) and removals (False) by order key, in file order; a serial in both lists is an error."""
    previous = None
    for key, is_add in heapq.merge(zip(add, itertools.repeat(True)), zip(remove, itertools.repeat(False))):
        if key == previous:
            raise BlacklistError(f"serial {bcd.digits(key[4:])} is both in the list to add and the list to remove")
        previous = key
        yield key, is_add


def apply_delta(path: str | os.PathLike[str], *, add: Source | None = None, remove: Source | None = None,
                out: str | os.PathLike[str] | None = None, chunk_records: int = 1_000_000,
                progress: Progress | None = None) -> DeltaReport:
    """Write the list at ``path`` with ``add`` and ``remove`` applied to ``out`` (by default over ``path``).

    A streaming merge: unchanged runs of records are copied as blocks. The generation goes up by one.
    """
    target = Path(out if out is not None else path)
    with contextlib.ExitStack() as stack:
        old = stack.enter_context(Blacklist.open(path))
        lists = [_Entries(source or [], None, None) for source in (add, remove)]
        changes = []
        for entries in lists:
            keys = stack.enter_context(contextlib.closing(_sorted_keys(entries, target.parent, chunk_records)))
            first = next(keys, [])  # reads the list: bad entries are raised before the output exists
            changes.append(itertools.chain.from_iterable(itertools.chain([first], keys)))
        writer = stack.enter_context(_Writer(target, old.generation + 1, capacity=len(old) + lists[0].count))
        counts = {"added": 0, "already_present": 0, "removed": 0, "absent": 0}
        position = 0
        for key, is_add in _events(*changes):
            at, present = old._lower_bound(key)
            writer.copy(old, position, at)
            if is_add:
                counts["already_present" if present else "added"] += 1
                if not present:
                    writer.records([key])
                position = at
            else:
                counts["removed" if present else "absent"] += 1
                position = at + 1 if present else at
            if progress:
                progress("copy", position, len(old))
        writer.copy(old, position, len(old))
        if progress:
            progress("copy", len(old), len(old))
        header = writer.commit()
    return DeltaReport(target, count=header.count, generation=header.generation, **counts)
