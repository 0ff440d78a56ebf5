"""The FCI a card returns to SELECT: of the T-Union purse application, and of the PPSE directory.

Both are ``6F{84 DF name, A5 proprietary template}``. The purse application's ``A5`` holds the label ``50``, the
priority ``87``, ``9F08`` (version), ``9F12`` (preferred name) and ``9F0C``, the issuer's discretionary data, which
on T-Union cards is the 30 bytes of file 0x15, so a reader can skip READ BINARY 0x15. The PPSE's ``A5`` holds a
``BF0C`` directory of ``61{4F AID, 50 label, 87 priority}`` entries.

:class:`Fci` keeps the whole TLV tree as the card sent it (unknown tags included, in the card's order), so it
re-encodes exactly, and reads the known fields from the tree. Parsing the 0x15 bytes is
:mod:`protocols.card_files`' business; :attr:`Fci.file15` only hands them over. A validator reads the purse's FCI
on every tap, and nearly every T-Union card sends the same one (the spec's sample: version, then 9F0C):
:func:`t_union_file15` takes file 0x15 from it by its fixed bytes, with no tree; any other FCI goes to :class:`Fci`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from . import tlv
from .card_files.catalog import PUBLIC_APP_INFO_SIZE
from .errors import ProtocolError
from .tlv import Tlv

PPSE_NAME = b"2PAY.SYS.DDF01"
T_UNION_EP_AID = bytes.fromhex("A000000632010105")
"""The T-Union (交通联合) electronic purse application, label ``MOT_T_EP``."""
T_UNION_CASH_AID = bytes.fromhex("A000000632010106")
"""The T-Union cash application, label ``MOT_T_CASH``, listed next to the purse in some PPSEs."""

TAG_FCI = 0x6F
TAG_DF_NAME = 0x84
TAG_PROPRIETARY = 0xA5
TAG_LABEL = 0x50
TAG_PRIORITY = 0x87
TAG_VERSION = 0x9F08
TAG_PREFERRED_NAME = 0x9F12
TAG_DISCRETIONARY = 0x9F0C
TAG_DIRECTORY = 0xBF0C
TAG_DIRECTORY_ENTRY = 0x61
TAG_ADF_NAME = 0x4F

_T_UNION_COMMON = bytes.fromhex("6F31 8408 A000000632010105 A525 9F080102 9F0C1E")
"""The fixed bytes of the common T-Union purse FCI, ``6F{84 <purse AID>, A5{9F08 02, 9F0C <file 0x15>}}``."""

_NAME_SIZES = range(1, 17)  # ISO 7816-4 DF names are at most 16 bytes; RIDs make AIDs at least 5, names may be shorter


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """One application the PPSE lists. Other tags in the entry stay in the FCI's tree."""

    aid: bytes
    label: bytes | None = None
    priority: int | None = None

    @classmethod
    def from_tlv(cls, node: Tlv) -> DirectoryEntry:
        aid = node.child(TAG_ADF_NAME)
        if aid is None:
            raise ProtocolError("PPSE directory entry 61 has no AID (4F)")
        _check_name(aid.value, "PPSE entry AID")
        label = node.child(TAG_LABEL)
        return cls(aid.value, label.value if label else None, _priority(node))

    def to_tlv(self) -> Tlv:
        _check_name(self.aid, "PPSE entry AID")
        children = [Tlv.primitive(TAG_ADF_NAME, self.aid)]
        if self.label is not None:
            children.append(Tlv.primitive(TAG_LABEL, self.label))
        if self.priority is not None:
            children.append(Tlv.primitive(TAG_PRIORITY, _priority_byte(self.priority)))
        return Tlv.constructed(TAG_DIRECTORY_ENTRY, *children)


@dataclass(frozen=True, slots=True)
class Fci:
    """A SELECT response's FCI template, typed access over the exact TLV tree."""

    template: Tlv

    @classmethod
    def parse(cls, data: bytes) -> Fci:
        """The response data of SELECT (without SW); malformed TLV or a malformed known field is a ProtocolError."""
        node = tlv.parse_one(data)
        if node.tag != TAG_FCI:
            raise ProtocolError(f"FCI: expected template 6F, got {node.tag:X}")
        fci = cls(node)
        _check_name(fci.df_name, "FCI DF name (84)")
        a5 = fci.proprietary
        if a5 is not None:
            _priority(a5)
            _directory(a5)
        return fci

    @classmethod
    def application(cls, aid: bytes, *, label: bytes | None = None, priority: int | None = None,
                    version: bytes | None = None, preferred_name: bytes | None = None, file15: bytes | None = None,
                    extra: Iterable[Tlv] = ()) -> Fci:
        """The FCI of an ADF such as the T-Union purse, fields in the order cards send them; ``extra`` goes last in
        A5."""
        _check_name(aid, "FCI AID")
        if file15 is not None and len(file15) != PUBLIC_APP_INFO_SIZE:
            raise ProtocolError(f"FCI 9F0C: file 0x15 is {PUBLIC_APP_INFO_SIZE} bytes, got {len(file15)}")
        fields = ((TAG_LABEL, label), (TAG_PRIORITY, None if priority is None else _priority_byte(priority)),
                  (TAG_VERSION, version), (TAG_PREFERRED_NAME, preferred_name), (TAG_DISCRETIONARY, file15))
        a5 = [Tlv.primitive(tag, value) for tag, value in fields if value is not None]
        a5.extend(extra)
        return cls(Tlv.constructed(TAG_FCI, Tlv.primitive(TAG_DF_NAME, aid), Tlv.constructed(TAG_PROPRIETARY, *a5)))

    @classmethod
    def ppse(cls, entries: Iterable[DirectoryEntry], *, name: bytes = PPSE_NAME) -> Fci:
        """The FCI of the PPSE: ``6F{84 name, A5{BF0C{61 ...}}}``."""
        directory = Tlv.constructed(TAG_DIRECTORY, *(entry.to_tlv() for entry in entries))
        return cls(Tlv.constructed(TAG_FCI, Tlv.primitive(TAG_DF_NAME, name),
                                   Tlv.constructed(TAG_PROPRIETARY, directory)))

    def to_bytes(self) -> bytes:
        return self.template.to_bytes()

    @property
    def df_name(self) -> bytes:
        """The selected DF's name (84): the AID for an application, ``2PAY.SYS.DDF01`` for the PPSE."""
        node = self.template.child(TAG_DF_NAME)
        if node is None:
            raise ProtocolError("FCI has no DF name (84)")
        return node.value

    aid = df_name

    @property
    def proprietary(self) -> Tlv | None:
        """The A5 template, or ``None`` when the card sent none."""
        return self.template.child(TAG_PROPRIETARY)

    def _a5(self, tag: int) -> bytes | None:
        node = self.template.lookup(TAG_PROPRIETARY, tag)
        return None if node is None else node.value

    @property
    def label(self) -> bytes | None:
        """Application label (50), e.g. ``b"MOT_T_EP"``; bytes, since the code table is the issuer's choice."""
        return self._a5(TAG_LABEL)

    @property
    def priority(self) -> int | None:
        a5 = self.proprietary
        return None if a5 is None else _priority(a5)

    @property
    def version(self) -> bytes | None:
        """9F08 as sent (one byte ``02`` on T-Union cards, two bytes in EMV)."""
        return self._a5(TAG_VERSION)

    @property
    def preferred_name(self) -> bytes | None:
        return self._a5(TAG_PREFERRED_NAME)

    @property
    def discretionary_data(self) -> bytes | None:
        """9F0C as sent, whatever its length."""
        return self._a5(TAG_DISCRETIONARY)

    @property
    def file15(self) -> bytes | None:
        """The 30 bytes of file 0x15 carried in 9F0C; ``None`` when 9F0C is absent or another size, in which case a
        reader falls back to READ BINARY 0x15."""
        data = self.discretionary_data
        return data if data is not None and len(data) == PUBLIC_APP_INFO_SIZE else None

    @property
    def directory(self) -> tuple[DirectoryEntry, ...]:
        """The PPSE's entries (A5/BF0C/61) in card order; empty for an application FCI."""
        a5 = self.proprietary
        return () if a5 is None else _directory(a5)


def t_union_file15(data: bytes) -> bytes | None:
    """File 0x15 from the common T-Union purse FCI (:data:`_T_UNION_COMMON` and 30 bytes: the FCI of the purse AID
    whose ``A5`` holds only version 02 and 9F0C), as :attr:`Fci.file15` reads it; ``None`` for any other FCI, which
    :meth:`Fci.parse` reads (or refuses)."""
    if len(data) == len(_T_UNION_COMMON) + PUBLIC_APP_INFO_SIZE and data.startswith(_T_UNION_COMMON):
        return data[len(_T_UNION_COMMON):]
    return None


def _check_name(name: bytes, what: str) -> None:
    if not isinstance(name, bytes) or len(name) not in _NAME_SIZES:
        raise ProtocolError(f"{what}: expected 1 to 16 bytes, got {name!r}")


def _directory(a5: Tlv) -> tuple[DirectoryEntry, ...]:
    bf0c = a5.child(TAG_DIRECTORY)
    if bf0c is None:
        return ()
    return tuple(DirectoryEntry.from_tlv(n) for n in bf0c.children or () if n.tag == TAG_DIRECTORY_ENTRY)


def _priority(template: Tlv) -> int | None:
    node = template.child(TAG_PRIORITY)
    if node is None:
        return None
    if len(node.value) != 1:
        raise ProtocolError(f"application priority indicator (87) is one byte, got {len(node.value)}")
    return node.value[0]


def _priority_byte(priority: int) -> bytes:
    if not isinstance(priority, int) or not 0 <= priority <= 0xFF:
        raise ProtocolError(f"application priority indicator must be 0..255, got {priority!r}")
    return bytes((priority,))
