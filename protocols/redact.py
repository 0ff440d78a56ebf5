"""Exchanges as a trace or a log may keep them: every key a command or an answer carries zeroed, every length kept.

Three exchanges of an M1 tap carry keys in the clear: LOAD KEY (``FF 82``) sends a sector key to the reader, a
PN532's MIFARE AUTH (``60/61 block key uid``) sends it to the chip, and the PSAM's M1 SECTOR KEYS (``80 FC``) answers
the keys themselves, on a T=0 PSAM through the GET RESPONSE commands that fetch its answer. :class:`Redactor` follows
one link's exchanges in order and hands back what may be kept of each.
"""

from __future__ import annotations

from .mifare import without_key as auth_without_key
from .pcsc_mifare import without_key as load_key_without_key

_SECTOR_KEYS = b"\x80\xfc"
_GET_RESPONSE = b"\x00\xc0"
KEYED_PREFIXES = frozenset((b"\xff\x82", _SECTOR_KEYS,
                            *(bytes((auth, block)) for auth in (0x60, 0x61) for block in range(256))))
"""The first two bytes of every command that carries a key (LOAD KEY ``FF 82``, MIFARE AUTH ``60/61`` of any block)
or is answered with keys (M1 SECTOR KEYS ``80 FC``). :meth:`Redactor.exchange` touches no other command's exchange
while the redactor is not :attr:`~Redactor.waiting`, so a link may keep such exchanges without asking it."""


def answers_keys(command: bytes) -> bool:
    """Whether the answer to ``command`` is keys: the PSAM's M1 SECTOR KEYS."""
    return command[:2] == _SECTOR_KEYS


def without_keys(command: bytes) -> bytes:
    """``command`` with the key of a LOAD KEY or a MIFARE AUTH zeroed; any other command as it is."""
    return auth_without_key(load_key_without_key(command))


def blank_answer(response: bytes) -> bytes:
    """An answer's data zeroed, its status word kept."""
    return bytes(len(response) - 2) + response[-2:] if len(response) >= 2 else bytes(len(response))


class Redactor:
    """What may be kept of each exchange of one link, in order: a GET RESPONSE that fetches the rest of an answer of
    keys is blanked like the answer it continues."""

    def __init__(self) -> None:
        self.waiting = False
        """An answer of keys is being fetched by GET RESPONSE: the next GET RESPONSE is blanked too."""

    def exchange(self, command: bytes, response: bytes | None) -> tuple[bytes, bytes | None]:
        if not self.waiting and command[:2] not in KEYED_PREFIXES:
            return command, response  # nearly every exchange is a CPU card's or a PSAM's, with no key either way
        keys = answers_keys(command) or (self.waiting and command[:2] == _GET_RESPONSE)
        self.waiting = keys and response is not None and response[-2:-1] == b"\x61"
        if not keys:
            return without_keys(command), response
        return command, None if response is None else blank_answer(response)
