"""MIFARE Classic dumps in the ``.mfd`` layout (nfc-mfclassic, Proxmark): every block in order, 16 bytes each, the
sector trailers holding the real keys A and B, nothing else (1024 bytes for a 1K, 4096 for a 4K).

An image must make a card a reader can talk to: block 0 holds the UID (and, for a 4-byte UID, its BCC, the SAK and the
ATQA, least significant byte first, as NXP writes them), the SAK announces the size the dump has, and every trailer's
access bits are well formed (a card with malformed access bits has a sector no one can open). :func:`check_image`
names the first block that breaks a rule.
"""

from __future__ import annotations

from protocols.errors import ProtocolError
from protocols.iso14443 import bcc, classic_size_from_sak
from protocols.mifare import AccessConditions, CardSize, trailer_block

from .m1_card import M1Image


def check_image(image: M1Image) -> None:
    """Raise :class:`ProtocolError` naming the block when ``image`` is not a card a reader can use."""
    size = image.size
    if classic_size_from_sak(image.sak) != size:
        raise ProtocolError(f"block 0: SAK {image.sak:02X} does not announce a MIFARE Classic of {int(size)} bytes")
    head = image.block(0)
    if head[:len(image.uid)] != image.uid:
        raise ProtocolError(f"block 0: starts {head[:len(image.uid)].hex().upper()}, not the UID "
                            f"{image.uid.hex().upper()}")
    if len(image.uid) == 4 and head[4] != bcc(image.uid):
        raise ProtocolError(f"block 0: BCC {head[4]:02X} is not the XOR of the UID ({bcc(image.uid):02X})")
    for sector in range(size.sectors):
        block = trailer_block(sector, size)
        try:
            AccessConditions.parse(image.block(block)[6:9])
        except ProtocolError as exc:
            raise ProtocolError(f"block {block} (sector {sector} trailer): {exc}") from None


def export_mfd(image: M1Image) -> bytes:
    """The image as an ``.mfd`` dump."""
    return bytes(image.memory)


def import_mfd(data: bytes) -> M1Image:
    """The card an ``.mfd`` dump holds (4-byte UID: UID, SAK and ATQA are read from block 0); :class:`ProtocolError`
    naming the block when it is not a valid card."""
    if len(data) not in (CardSize.K1, CardSize.K4):
        raise ProtocolError(f"a dump of {len(data)} bytes is neither a MIFARE Classic 1K (1024) nor a 4K (4096)")
    head = data[:16]
    uid = head[:4]
    if head[4] != bcc(uid):
        raise ProtocolError(f"block 0: BCC {head[4]:02X} is not the XOR of UID {uid.hex().upper()} ({bcc(uid):02X}); "
                            "only dumps of 4-byte-UID cards can be imported")
    try:
        image = M1Image(uid, bytes((head[7], head[6])), head[5], bytearray(data))
    except ProtocolError as exc:
        raise ProtocolError(f"block 0: {exc}") from None
    check_image(image)
    return image
