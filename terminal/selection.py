"""Naming the scheme of a card that has no T-Union purse, so that a validator can decline it for what it is.

A city card of another scheme (a MOHURD city card, Shenzhen Tong, ...) answers the T-Union SELECT with "not found".
Its own application is found without keys in at most three exchanges: the PPSE directory, where the card keeps one,
lists it; otherwise SELECT by FID 1001, the purse application's file identifier on PBOC-style city cards, answers its
FCI (Shenzhen Tong cards do); otherwise the MOHURD application, the most widespread other scheme, answers its own
SELECT (some MOHURD cards answer FID 1001 without an FCI). A card that answers none of them is left unnamed.
"""

from __future__ import annotations

from protocols import card_commands as cc
from protocols.errors import ProtocolError
from protocols.fci import PPSE_NAME, Fci
from protocols.schemes import MOHURD, PURSE, Scheme, scheme_of
from protocols.status import CardStatus

from .channel import Channel

PURSE_FID = 0x1001
_SELECT_PPSE = cc.SelectByName(PPSE_NAME, le=256).to_bytes()
_SELECT_PURSE_FID = cc.SelectByFid(PURSE_FID).to_bytes()
_SELECT_MOHURD = cc.SelectByName(MOHURD.aids[0], le=256).to_bytes()


def _fci(channel: Channel, command: bytes) -> Fci | None:
    answer = channel.transmit(command)
    if answer.sw != CardStatus.OK or not answer.data:
        return None
    try:
        return Fci.parse(answer.data)
    except ProtocolError:
        return None


def listed_scheme(fci: Fci) -> Scheme | None:
    """The scheme of the first purse a directory (PPSE) lists, else of the first application anyone names."""
    named = [scheme for scheme in (scheme_of(entry.aid) for entry in fci.directory) if scheme is not None]
    return next((scheme for scheme in named if scheme.kind == PURSE), named[0] if named else None)


def identify_scheme(channel: Channel) -> Scheme | None:
    """The scheme of the card on ``channel``, found without keys (module notes); ``None`` when it names none.

    Link errors (the card left) go to the caller, as for any exchange of a tap.
    """
    ppse = _fci(channel, _SELECT_PPSE)
    scheme = None if ppse is None else listed_scheme(ppse)
    if scheme is not None:
        return scheme
    for probe in (_SELECT_PURSE_FID, _SELECT_MOHURD):
        fci = _fci(channel, probe)
        scheme = None if fci is None else scheme_of(fci.df_name)
        if scheme is not None:
            return scheme
    return None
