"""Every key a campaign used, and a scan of bytes and text for any of them.

The ring holds the key set's master keys, the issuer-level keys diversified from them for each issuer met, and each
card's own keys (a T-Union card's purchase, load, TAC and maintenance keys; an M1 card's sector keys). A key is found
in hex (upper or lower case: ASCII in a text or a SQLite file), as its raw bytes, or as the bytes literal Python would
print for it (``b'...'``, in an error message). M1 keys that are public defaults (``FFFFFFFFFFFF``, ``A0A1A2A3A4A5``,
``D3F7D3F7D3F7``, zeros: what blank sectors hold) are no secret, match any run of padding, and are left out.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from protocols.crypto import diversify
from protocols.mifare import CardSize, trailer_block
from terminal.keyset import Keyset, KeyUsage

from ..card.image import CardImage
from ..card.m1_card import M1Image

PUBLIC_M1_KEYS = frozenset(bytes.fromhex(k) for k in ("FFFFFFFFFFFF", "A0A1A2A3A4A5", "D3F7D3F7D3F7", "000000000000",
                                                         "B0B1B2B3B4B5"))
_HEX_RUN = re.compile(rb"[0-9A-Fa-f]{12,}")
_LITERAL = re.compile(r"""b'(?:[^'\\]|\\.)*'|b"(?:[^"\\]|\\.)*\"""")


def _windows(data: bytes, width: int) -> Iterator[bytes]:
    """Every ``width``-byte slice of ``data``, made without a Python step per byte."""
    return map(data.__getitem__, map(slice, range(len(data) - width + 1), range(width, len(data) + 1)))


def _occurrences(data: bytes, part: bytes) -> int:
    """How many times ``part`` starts in ``data`` (overlapping ones too)."""
    count, at = 0, data.find(part)
    while at >= 0:
        count, at = count + 1, data.find(part, at + 1)
    return count


class KeyRing:
    """Key byte strings (16-byte card keys, 6-byte M1 keys), and the scan for them."""

    def __init__(self) -> None:
        self.keys: set[bytes] = set()
        self._hex: dict[bytes, bytes] = {}  # lower-case hex -> key
        self._sizes: set[int] = set()

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, *keys: bytes) -> None:
        for key in keys:
            key = bytes(key)
            if len(key) < 6 or key in PUBLIC_M1_KEYS:
                continue
            if key not in self.keys:
                self.keys.add(key)
                self._hex[key.hex().encode()] = key
                self._sizes.add(len(key))

    def add_keyset(self, keyset: Keyset, issuers: Iterable[bytes] = ()) -> None:
        """The master keys, and the issuer-level keys of ``issuers`` (two-level sets)."""
        for usage in KeyUsage:
            for index in keyset.indexes(usage):
                master = keyset.master(usage, index)
                self.add(master.export())
                if keyset.levels == 2 and usage in (KeyUsage.PURCHASE, KeyUsage.LOAD, KeyUsage.TAC,
                                                     KeyUsage.MAINTENANCE):
                    for issuer in issuers:
                        self.add(diversify(master, issuer).export())

    def add_card(self, image: CardImage | M1Image) -> None:
        """A card's own keys: a T-Union card's key slots and maintenance key, or an M1 card's sector trailers."""
        if isinstance(image, M1Image):
            memory, size = image.memory, image.size
            for sector in range(40 if size is CardSize.K4 else 16):
                block = trailer_block(sector, size) * 16
                self.add(bytes(memory[block:block + 6]), bytes(memory[block + 10:block + 16]))
            return
        for slot in image.keys.values():
            for key in (slot.purchase, slot.load, slot.tac):
                if key is not None:
                    self.add(key.export())
        if image.maintenance_key is not None:
            self.add(image.maintenance_key.export())

    def save(self, path: Path) -> None:
        """Keep the ring in a file (one key in hex a line), for a later run on the same work directory."""
        path.write_text("".join(f"{key.hex().upper()}\n" for key in sorted(self.keys)), encoding="ascii")

    def load(self, path: Path) -> None:
        """Add the keys a file of :meth:`save` holds, if there is one."""
        if path.exists():
            self.add(*(bytes.fromhex(line) for line in path.read_text(encoding="ascii").split()))

    def found_in_bytes(self, data: bytes) -> Counter[bytes]:
        """The keys that show in ``data``, hex (either case) or raw, with how many times each does.

        Each window of ``data`` as long as a key is looked up in the ring (a set), so the cost grows with the data,
        not with the data times the keys (tens of thousands in a full run)."""
        found: Counter[bytes] = Counter()
        for run in _HEX_RUN.finditer(data):
            text = run.group().lower()
            for size in self._sizes:
                for hit in self._hex.keys() & _windows(text, 2 * size):
                    found[self._hex[hit]] += _occurrences(text, hit)
        for size in self._sizes:
            for key in self.keys.intersection(_windows(data, size)):
                found[key] += _occurrences(data, key)
        return found

    def found_in_text(self, text: str) -> Counter[bytes]:
        """The keys that show in a message: hex (either case), raw, or in a bytes literal."""
        found = self.found_in_bytes(text.encode("utf-8", "surrogateescape"))
        if "b'" in text or 'b"' in text:
            for literal in _LITERAL.finditer(text):
                try:
                    value = ast.literal_eval(literal.group())
                except (ValueError, SyntaxError):
                    continue
                if isinstance(value, bytes):
                    found.update({key: value.count(key) for key in self.keys if key in value})
        return found

    def count_bytes(self, data: bytes) -> int:
        """How many times a key shows in ``data``."""
        return sum(self.found_in_bytes(data).values())

    def count_text(self, text: str) -> int:
        """How many times a key shows in a message."""
        return sum(self.found_in_text(text).values())
