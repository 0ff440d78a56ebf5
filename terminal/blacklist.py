"""The card blacklist a validator checks on every tap: a sorted file of application serials, memory-mapped.

Ten million cards make a 100 MB file. Mapping it costs little memory, and a lookup bisects a small in-memory index and
then one 128-record block of the mapping. A list file is only ever replaced whole (temp file in the same directory,
fsync, rename), so a validator that has the old file mapped keeps answering from it until it reopens the path.
Never edit a published file in place: a mapped file that shrinks under a reader kills it with SIGBUS.

File format, version 1 (integers big-endian)::

    off  len  field
      0    8  magic 89 59 4B 54 42 4C 0D 0A ("\\x89YKTBL\\r\\n": the high-bit byte and CR LF expose 7-bit or
              newline-translating copies at once)
      8    2  format version: 1
     10    2  record size: 10
     12    8  record count N
     20    4  generation: given at build (1 by default), +1 for every delta applied
     24    4  CRC-32 (zlib) of the N records
     28    4  CRC-32 of header bytes 0..27
     32  10N  the records: 10-byte packed-BCD application serials (file 0x15 bytes 10..19), strictly increasing
              as unsigned bytes (sorted, no duplicates)

What :meth:`Blacklist.open` checks, and why that is enough:

* magic, version, header CRC and record size: a foreign file or a damaged header;
* file size == 32 + 10 N exactly: a truncated, partly copied or appended-to file;
* the records' CRC, in one sequential read (40 ms per 10 M records from the page cache, see
  ``bench/results/blacklist.md``; read, not mapped, so the pages do not count against the validator's memory). The
  same pass keeps every 128th record as the index (4 MB per 10 M records) and checks that it is strictly
  increasing, which catches gross disorder (concatenated or reversed lists) for free.

Every record's order is not checked at open (1.2 s per 10 M records). The one writer, :class:`_Writer`, refuses
a record that is not greater than the one before it, and a delta copies runs of records only from a file whose CRC
matched, so a file whose CRC matches came out of a writer that checked its order. A file from some other tool
can be checked in full with ``Blacklist.open(path, check_order=True)`` (``ykt blacklist info --check-order``).

Input lists are text (one serial per line; blank lines and ``#`` comments allowed) or CSV (a header row naming a
column ``serial``, or a single column). A serial is written as its 20 digits or as the 19-digit number printed on
the card, which drops the first digit (0). Building ten million entries keeps at most ``chunk_records`` of them as
Python objects at a time: each chunk is sorted and spilled to a run file next to the output, and the runs are
merged as a stream.
"""

from __future__ import annotations

import contextlib
import csv
import heapq
import itertools
import mmap
import operator
import os
import re
import tempfile
import zlib
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import construct as c

from protocols import bcd
from protocols.errors import ProtocolError
from protocols.layout import Layout

from .errors import ConfigError

MAGIC = b"\x89YKTBL\r\n"
VERSION = 1
SERIAL_SIZE = 10
INDEX_STRIDE = 128
"""Every INDEX_STRIDE-th record is kept in memory at open; a lookup then bisects one block of this many records."""

Source = str | os.PathLike[str] | Iterable[str]
"""A list of serials: a path (``.csv`` means CSV), or text lines. A ``str`` is always a path."""

Progress = Callable[[str, int, int | None], None]
"""``progress(phase, done, total)``: phase ``"read"`` counts characters of the input, ``"write"`` and ``"copy"``
count records; ``total`` is ``None`` when unknown."""


class BlacklistError(ConfigError):
    """A list file or an input list is unusable; the message names the file and what is wrong."""


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
    """The 32-byte header of a list file."""

    magic: bytes
    version: int
    record_size: int
    count: int
    generation: int
    body_crc: int
    header_crc: int


HEADER = Layout(
    BlacklistHeader,
    "magic" / c.Bytes(8),
    "version" / c.Int16ub,
    "record_size" / c.Int16ub,
    "count" / c.Int64ub,
    "generation" / c.Int32ub,
    "body_crc" / c.Int32ub,
    "header_crc" / c.Int32ub,
    examples=(("89594B54424C0D0A 0001 000A 0000000000000000 00000001 00000000 6CF41259",
               BlacklistHeader(MAGIC, 1, 10, 0, 1, 0, 0x6CF41259)),),
)
_BODY = HEADER.size
_CRC_SPAN = _BODY - 4
_SCAN_BYTES = INDEX_STRIDE * SERIAL_SIZE * 800  # a multiple of the index stride, so samples stay aligned
_COPY_RECORDS = 100_000
_WRITE_RECORDS = 65_536
_RUN_READ_RECORDS = 8_192  # per run being merged: a merge of k runs holds k times this many records
_PROGRESS_LINES = 65_536
_SEPARATORS = re.compile(r"[\s-]+")


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


@contextlib.contextmanager
def _os_errors(path: object, doing: str) -> Iterator[None]:
    """An OSError while ``doing`` something with ``path`` becomes a one-line :class:`BlacklistError`."""
    try:
        yield
    except OSError as exc:
        raise BlacklistError(f"{path}: cannot {doing}: {exc.strerror or exc}") from None


def _new_header(count: int, generation: int, body_crc: int) -> BlacklistHeader:
    header = BlacklistHeader(MAGIC, VERSION, SERIAL_SIZE, count, generation, body_crc, 0)
    header.header_crc = zlib.crc32(HEADER.build(header)[:_CRC_SPAN])
    return header


def _increasing(records: list[bytes]) -> bool:
    return all(map(operator.lt, records, itertools.islice(records, 1, None)))


def _split(block: bytes) -> list[bytes]:
    return [block[i:i + SERIAL_SIZE] for i in range(0, len(block), SERIAL_SIZE)]


class Blacklist:
    """An open list file: ``serial in blacklist`` for 10-byte serials, answered from the mapping."""

    def __init__(self, path: Path, header: BlacklistHeader, mapping: mmap.mmap, index: list[bytes]) -> None:
        self.path = path
        self.header = header
        self._mm: mmap.mmap | None = mapping
        self._index = index
        self._count = header.count

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, check_order: bool = False) -> Blacklist:
        """Map a list file after checking it (see the module docstring); ``check_order`` also checks every record."""
        path = Path(path)
        with _os_errors(path, "open"), open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            header = _check_header(path, file.read(_BODY), size)
            index = _scan(path, file, header, check_order)
            mapping = mmap.mmap(file.fileno(), size, access=mmap.ACCESS_READ)
        return cls(path, header, mapping, index)

    @property
    def generation(self) -> int:
        return self.header.generation

    def __len__(self) -> int:
        return self._count

    def __contains__(self, serial: bytes) -> bool:
        mm = self._mapping()
        if type(serial) is not bytes or len(serial) != SERIAL_SIZE:
            raise ProtocolError(f"serial: expected {SERIAL_SIZE} bytes, got {serial!r}")
        offset = _BODY + self._lower_bound(serial) * SERIAL_SIZE
        return mm[offset:offset + SERIAL_SIZE] == serial

    def contains_digits(self, text: str) -> bool:
        """Membership of a serial written as digits (see :func:`parse_serial`)."""
        return parse_serial(text) in self

    def __getitem__(self, i: int) -> bytes:
        mm = self._mapping()
        if i < 0:
            i += self._count
        if not 0 <= i < self._count:
            raise IndexError(f"record {i} of {self._count}")
        offset = _BODY + i * SERIAL_SIZE
        return mm[offset:offset + SERIAL_SIZE]

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, self._count, _COPY_RECORDS):
            yield from _split(self._raw(start, min(start + _COPY_RECORDS, self._count)))

    def close(self) -> None:
        if self._mm is not None:
            self._mm.close()
            self._mm = None

    def __enter__(self) -> Blacklist:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Blacklist({str(self.path)!r}, {self._count} serials, generation {self.header.generation})"

    def _mapping(self) -> mmap.mmap:
        if self._mm is None:
            raise BlacklistError(f"{self.path}: the list is closed")
        return self._mm

    def _lower_bound(self, serial: bytes) -> int:
        """Position of the first record not less than ``serial``."""
        block = bisect_right(self._index, serial) - 1
        if block < 0:
            return 0
        lo = block * INDEX_STRIDE
        hi = min(lo + INDEX_STRIDE, self._count)
        mm = self._mm
        while lo < hi:
            mid = (lo + hi) >> 1
            offset = _BODY + mid * SERIAL_SIZE
            if mm[offset:offset + SERIAL_SIZE] < serial:  # type: ignore[index]
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _raw(self, start: int, stop: int) -> bytes:
        """Records ``start`` up to ``stop`` as they are stored."""
        return self._mapping()[_BODY + start * SERIAL_SIZE:_BODY + stop * SERIAL_SIZE]


def _check_header(path: Path, raw: bytes, size: int) -> BlacklistHeader:
    if len(raw) < _BODY:
        raise BlacklistError(f"{path}: {size} bytes, too short for a blacklist header ({_BODY} bytes)")
    header = HEADER.parse(raw)
    if header.magic != MAGIC:
        raise BlacklistError(f"{path}: not a blacklist file (starts {header.magic.hex().upper()})")
    if header.version != VERSION:  # before the header CRC: another version may put its CRC elsewhere
        raise BlacklistError(f"{path}: format version {header.version}; this software reads version {VERSION}")
    if zlib.crc32(raw[:_CRC_SPAN]) != header.header_crc:
        raise BlacklistError(f"{path}: header checksum mismatch (damaged header)")
    if header.record_size != SERIAL_SIZE:
        raise BlacklistError(f"{path}: record size {header.record_size}, expected {SERIAL_SIZE}")
    expected = _BODY + header.count * SERIAL_SIZE
    if size != expected:
        raise BlacklistError(f"{path}: {size} bytes, but {header.count} records make {expected} "
                             f"(truncated, partly copied or appended-to file)")
    return header


def _scan(path: Path, file: BinaryIO, header: BlacklistHeader, check_order: bool) -> list[bytes]:
    """Read the records once: check their CRC (and order, if asked) and return the sampled index."""
    crc = 0
    index: list[bytes] = []
    last = b""
    done = 0
    remaining = header.count * SERIAL_SIZE
    while remaining:
        chunk = file.read(min(_SCAN_BYTES, remaining))
        if not chunk:
            raise BlacklistError(f"{path}: file shrank while being read")
        remaining -= len(chunk)
        crc = zlib.crc32(chunk, crc)
        index.extend([chunk[i:i + SERIAL_SIZE] for i in range(0, len(chunk), INDEX_STRIDE * SERIAL_SIZE)])
        if check_order:
            records = _split(chunk)
            if not (last < records[0] and _increasing(records)):
                bad = next(i for i, rec in enumerate(records) if rec <= (records[i - 1] if i else last))
                raise BlacklistError(f"{path}: record {done + bad} is not greater than the one before it")
            last = records[-1]
        done += len(chunk) // SERIAL_SIZE
    if crc != header.body_crc:
        raise BlacklistError(f"{path}: records checksum mismatch (damaged or partly written file)")
    if not _increasing(index):
        bad = next(i for i in range(1, len(index)) if index[i] <= index[i - 1])
        raise BlacklistError(f"{path}: records out of order before record {bad * INDEX_STRIDE}")
    return index


class _Writer:
    """Writes a list file atomically; refuses any record that is not greater than the one before it."""

    def __init__(self, target: Path, generation: int) -> None:
        if not 0 <= generation < 1 << 32:
            raise BlacklistError(f"{target}: generation {generation} is not a 32-bit unsigned number")
        self.target = target
        self.generation = generation
        self.count = 0
        self._crc = 0
        self._last = b""
        with _os_errors(target, "create a file next to it"):
            fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        self._tmp = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._write(bytes(_BODY))

    def records(self, batch: list[bytes]) -> None:
        """Append sorted records."""
        if batch:
            if not (self._last < batch[0] and _increasing(batch)):
                raise BlacklistError(f"{self.target}: refusing records out of order after record {self.count}")
            self._append(b"".join(batch), batch[-1])

    def copy(self, source: Blacklist, start: int, stop: int) -> None:
        """Append records ``start`` up to ``stop`` of an open list, whose order its own writer checked."""
        for first in range(start, stop, _COPY_RECORDS):
            block = source._raw(first, min(first + _COPY_RECORDS, stop))
            if not self._last < block[:SERIAL_SIZE]:
                raise BlacklistError(f"{self.target}: refusing records out of order after record {self.count}")
            self._append(block, block[-SERIAL_SIZE:])

    def commit(self) -> BlacklistHeader:
        """Write the header, make the file durable and put it in place in one rename."""
        header = _new_header(self.count, self.generation, self._crc)
        with _os_errors(self.target, "write"):
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

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self.abort()

    def _append(self, block: bytes, last: bytes) -> None:
        self._crc = zlib.crc32(block, self._crc)
        self._write(block)
        self.count += len(block) // SERIAL_SIZE
        self._last = last

    def _write(self, data: bytes) -> None:
        with _os_errors(self.target, "write"):
            self._file.write(data)


class _Entries:
    """The serials of one input list, read lazily; bad entries are collected and raised once the list is read."""

    def __init__(self, source: Source, fmt: str | None, progress: Progress | None) -> None:
        self.source = source
        self.is_path = isinstance(source, (str, os.PathLike))
        self.name = os.fspath(source) if self.is_path else "list"  # type: ignore[arg-type]
        if fmt is None:
            fmt = "csv" if self.is_path and self.name.lower().endswith(".csv") else "text"
        if fmt not in ("text", "csv"):
            raise BlacklistError(f"{self.name}: unknown list format {fmt!r} (text or csv)")
        self.fmt = fmt
        self.progress = progress
        self.count = 0
        self._errors: list[tuple[int, str]] = []
        self._bad = 0

    def __iter__(self) -> Iterator[bytes]:
        if not self.is_path:
            yield from self._parse(self._counted(iter(self.source), None))  # type: ignore[arg-type]
        else:
            newline = "" if self.fmt == "csv" else None
            with _os_errors(self.name, "read"), \
                    open(self.source, encoding="utf-8-sig", errors="replace", newline=newline) as file:  # type: ignore
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
        for start in range(0, len(records), _WRITE_RECORDS):
            file.write(b"".join(records[start:start + _WRITE_RECORDS]))


def _read_run(path: Path) -> Iterator[bytes]:
    with _os_errors(path, "read a sort run"), open(path, "rb") as file:
        while block := file.read(_RUN_READ_RECORDS * SERIAL_SIZE):
            yield from _split(block)


def _sorted_unique(records: Iterable[bytes], spill_dir: Path, chunk_records: int) -> Iterator[list[bytes]]:
    """The records sorted and de-duplicated, in batches, holding at most ``chunk_records`` of them at a time.

    The input is read in full on the first ``next()``: each chunk is sorted and, unless it is the only one, written
    to a run file in a temporary directory under ``spill_dir`` (next to the output: ``/tmp`` may be RAM). The runs
    are then merged as a stream.
    """
    records = iter(records)
    with contextlib.ExitStack() as cleanup:
        runs: list[Path] = []
        batch = list(itertools.islice(records, chunk_records))
        while batch:
            batch.sort()
            more = list(itertools.islice(records, 1))
            if not more and not runs:
                merged: Iterator[bytes] = iter(batch)
                break
            with _os_errors(spill_dir, "write sort runs"):
                if not runs:
                    tmp = cleanup.enter_context(tempfile.TemporaryDirectory(dir=spill_dir, prefix=".blacklist-"))
                run = Path(tmp, f"run{len(runs)}")
                _write_run(run, batch)
            runs.append(run)
            batch = more  # the spilled chunk is dropped before the next one is read
            batch.extend(itertools.islice(records, chunk_records - 1))
        else:
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
    with contextlib.closing(_sorted_unique(entries, out.parent, chunk_records)) as batches:
        first = next(batches, [])  # reads the whole input: bad entries are raised before the output exists
        with _Writer(out, generation) as writer:
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
    """Additions (True) and removals (False) in serial order; a serial in both lists is an error."""
    previous = None
    for serial, is_add in heapq.merge(zip(add, itertools.repeat(True)), zip(remove, itertools.repeat(False))):
        if serial == previous:
            raise BlacklistError(f"serial {bcd.digits(serial)} is both in the list to add and the list to remove")
        previous = serial
        yield serial, is_add


def apply_delta(path: str | os.PathLike[str], *, add: Source | None = None, remove: Source | None = None,
                out: str | os.PathLike[str] | None = None, chunk_records: int = 1_000_000,
                progress: Progress | None = None) -> DeltaReport:
    """Write the list at ``path`` with ``add`` and ``remove`` applied to ``out`` (by default over ``path``).

    A streaming merge: unchanged runs of records are copied as blocks. The generation goes up by one.
    """
    target = Path(out if out is not None else path)
    with contextlib.ExitStack() as stack:
        old = stack.enter_context(Blacklist.open(path))
        changes = [stack.enter_context(contextlib.closing(_sorted_unique(_Entries(source or [], None, None),
                                                                         target.parent, chunk_records)))
                   for source in (add, remove)]
        writer = stack.enter_context(_Writer(target, old.generation + 1))
        counts = {"added": 0, "already_present": 0, "removed": 0, "absent": 0}
        position = 0
        for serial, is_add in _events(*map(itertools.chain.from_iterable, changes)):
            at = old._lower_bound(serial)
            writer.copy(old, position, at)
            present = at < len(old) and old[at] == serial
            if is_add:
                counts["already_present" if present else "added"] += 1
                if not present:
                    writer.records([serial])
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
