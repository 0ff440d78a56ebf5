"""The issuer's load host: the one place that holds the master load and TAC keys.

:class:`LoadHostService` is the host itself, an in-process object; the HTTP service (:mod:`sim.loadhost.server`) is a
thin shell that authenticates nothing itself, parses the JSON and hands the bearer token and the request here.
:class:`InProcessLoadHost` is the same host as one terminal sees it, for tests and the simulator.

Authorizing a load (``POST /v1/loads``), in this order:

1. the bearer token names a registered terminal, and the request is for that terminal's number (``unauthorized``);
2. a request id this terminal used before gets that request's answer again, if the request is the same
   (``request_id_reused`` if not);
3. MAC1 verifies under the card's load key, diversified from the master load key of the card's key version
   (``unknown_key``, ``bad_mac1``);
4. the card's online counter is new (``replay``): a card whose counter the host has seen confirmed, flagged or passed
   is a clone or a replay, and so is a second request from the same card session (same random). A counter the host
   only *authorized* before, shown again in a new session with a valid MAC1, proves that the card was never credited
   with that authorization (a credit moves the counter): the old load is void, superseded by the new one. That is
   what a terminal does when a card is torn away before CREDIT FOR LOAD reached it;
5. the amount is within the per-load limit and the balance after it within the purse limit (``over_limit``);
6. MAC2 over the amount, type, terminal and date-time, under the same session key; the load is ``authorized``.

Confirming (``POST /v1/loads/{id}/confirm``): the TAC must verify under the card's TAC key over the load the host
authorized (new balance, counter, amount, type, terminal, date-time): then the load is ``confirmed``. A wrong TAC is
refused (``bad_tac``) and flags the load for investigation; a flagged or void load is never confirmed afterwards
(``not_confirmable``). The same good TAC again is answered as before.

Every operation is one ledger transaction under one lock: requests from many terminals are serialized.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from typing import Protocol

from protocols import bcd
from protocols.crypto import CardKey, load_mac1, load_mac2, load_session_key, load_tac, macs_equal, tac_key
from protocols.errors import ProtocolError
from protocols.hexutil import to_hex
from terminal.clock import Clock, SystemClock
from terminal.errors import ConfigError
from terminal.keyset import KeyUsage
from terminal.loads.errors import (
    BAD_MAC1, BAD_TAC, NOT_CONFIRMABLE, NOT_FOUND, OVER_LIMIT, REPLAY, REQUEST_ID_REUSED, UNAUTHORIZED, UNKNOWN_KEY,
    LoadRefused,
)
from terminal.loads.messages import (
    LoadAuthorization, LoadConfirmation, LoadRequest, authorization_from_json, authorization_to_json, encode,
    request_to_json,
)

from .ledger import LedgerLoad, LedgerState, LedgerTransaction, LoadLedger, StoredAnswer
from .terminals import RegisteredTerminal, Terminals

_WORD = 0xFFFFFFFF


class CardKeys(Protocol):
    """Where the host's card keys come from: a :class:`terminal.keyset.Keyset` (master keys, diversified per card),
    or anything else that answers the same way (an HSM; a fixed card key in a test of the public vectors)."""

    def card_key(self, usage: KeyUsage, index: int, *, issuer_id: bytes, card_serial: bytes) -> CardKey: ...


@dataclass(frozen=True, slots=True)
class _Refusal:
    """A refusal decided inside a transaction, raised once the transaction is committed."""

    error: LoadRefused


class LoadHostService:
    """The load host: card keys, the ledger, the registered terminals and their limits, and a clock for the ledger's
    time stamps. Safe to call from many threads."""

    def __init__(self, keys: CardKeys, ledger: LoadLedger, terminals: Terminals, *, clock: Clock | None = None) -> None:
        self.keys = keys
        self.ledger = ledger
        self.terminals = terminals
        self.clock = clock or SystemClock()
        self._lock = threading.Lock()

    def close(self) -> None:
        self.ledger.close()

    # -- the two operations -------------------------------------------------------------------------------------------

    def authenticate(self, token: str | None) -> RegisteredTerminal:
        """The terminal the bearer token belongs to; ``unauthorized`` when none does."""
        terminal = self.terminals.by_token(token)
        if terminal is None:
            raise LoadRefused(UNAUTHORIZED, "no known bearer token" if token else "a bearer token is required")
        return terminal

    def authorize(self, token: str | None, request: LoadRequest) -> LoadAuthorization:
        terminal = self.authenticate(token)
        if request.terminal != terminal.number:
            raise LoadRefused(UNAUTHORIZED, f"the token is not that of terminal {to_hex(request.terminal)}")
        digest = hashlib.sha256(json.dumps(request_to_json(request), sort_keys=True).encode()).hexdigest()
        with self._lock, self.ledger.transaction() as tx:
            stored = tx.answer(terminal.number, request.request_id)
            if stored is None:
                result: LoadAuthorization | _Refusal
                try:
                    result = self._authorize(tx, request)
                    stored = StoredAnswer(digest, 200, encode(authorization_to_json(result)).decode())
                except LoadRefused as refusal:
                    result = _Refusal(refusal)
                    stored = StoredAnswer(digest, refusal.status, _refusal_body(refusal))
                tx.remember(terminal.number, request.request_id, stored)
            elif stored.digest != digest:
                result = _Refusal(LoadRefused(REQUEST_ID_REUSED, f"request id {request.request_id} was used for "
                                                                 "another load request"))
            else:
                result = _answer(stored)
        if isinstance(result, _Refusal):
            raise result.error
        return result

    def confirm(self, token: str | None, load_id: int, tac: bytes) -> LoadConfirmation:
        terminal = self.authenticate(token)
        with self._lock, self.ledger.transaction() as tx:
            result = self._confirm(tx, terminal, load_id, tac)
        if isinstance(result, _Refusal):
            raise result.error
        return result

    # -- inside the transaction ---------------------------------------------------------------------------------------

    def _card_key(self, usage: KeyUsage, version: int, issuer: bytes, serial: bytes) -> CardKey:
        try:
            return self.keys.card_key(usage, version, issuer_id=issuer, card_serial=serial)
        except (ConfigError, ProtocolError):
            raise LoadRefused(UNKNOWN_KEY, f"the host holds no {usage.value} key of version {version:02X}") from None

    def _authorize(self, tx: LedgerTransaction, request: LoadRequest) -> LoadAuthorization:
        dlk = self._card_key(KeyUsage.LOAD, request.key_version, request.issuer, request.serial)
        session = load_session_key(dlk, request.random, request.online_counter)
        mac1 = load_mac1(session, request.balance_word, request.amount, request.transaction_type, request.terminal)
        if not macs_equal(mac1, request.mac1):
            raise LoadRefused(BAD_MAC1, "MAC1 does not verify under the card's load key")
        superseded = self._check_counter(tx, request)
        limits = self.terminals.limits
        if request.amount > limits.per_load:
            raise LoadRefused(OVER_LIMIT, f"{request.amount} fen is over the limit of {limits.per_load} fen a load")
        if request.balance + request.amount > limits.purse:
            raise LoadRefused(OVER_LIMIT, f"the balance would be {request.balance + request.amount} fen, over the "
                                          f"purse limit of {limits.purse} fen")
        when = bcd.encode_datetime(request.when)
        mac2 = load_mac2(session, request.amount, request.transaction_type, request.terminal, when)
        now = self.clock.now().isoformat()
        for old in superseded:
            tx.change(old.load_id, LedgerState.VOID, note="superseded", changed_at=now)
        load_id = tx.insert(
            state=LedgerState.AUTHORIZED, request_id=request.request_id, terminal=request.terminal,
            issuer=request.issuer, serial=request.serial, key_version=request.key_version,
            online_counter=request.online_counter, random=request.random, balance_before=request.balance,
            amount=request.amount, transaction_type=request.transaction_type, datetime=when.hex(), mac1=request.mac1,
            mac2=mac2, tac=None, note="", authorized_at=now, changed_at=now)
        for old in superseded:
            tx.change(old.load_id, LedgerState.VOID, changed_at=now,
                      note=f"superseded by load {load_id}: the card showed online counter {old.online_counter} again, "
                           "so it was never credited with this MAC2")
        return LoadAuthorization(load_id, mac2)

    def _check_counter(self, tx: LedgerTransaction, request: LoadRequest) -> list[LedgerLoad]:
        """Refuse a replayed or rewound counter; return the loads this request supersedes."""
        counter = request.online_counter
        superseded = []
        for load in tx.card_loads(request.issuer, request.serial, request.transaction_type):
            if load.online_counter > counter:
                raise LoadRefused(REPLAY, f"online counter {counter} is behind load {load.load_id} at counter "
                                          f"{load.online_counter}: the card's counter never goes back")
            if load.online_counter < counter:
                continue
            if load.state is not LedgerState.AUTHORIZED:
                raise LoadRefused(REPLAY, f"online counter {counter} was already loaded (load {load.load_id}, "
                                          f"{load.state.value})")
            if load.random == request.random:
                raise LoadRefused(REPLAY, f"this card session (online counter {counter}) already has load "
                                          f"{load.load_id}")
            superseded.append(load)
        return superseded

    def _confirm(self, tx: LedgerTransaction, terminal: RegisteredTerminal, load_id: int,
                 tac: bytes) -> LoadConfirmation | _Refusal:
        load = tx.get(load_id)
        if load is None or load.terminal != terminal.number:
            return _Refusal(LoadRefused(NOT_FOUND, f"terminal {to_hex(terminal.number)} has no load {load_id}"))
        if load.state in (LedgerState.VOID, LedgerState.FLAGGED):
            return _Refusal(LoadRefused(NOT_CONFIRMABLE, f"load {load_id} is {load.state.value}: {load.note}"))
        try:
            good = macs_equal(self._expected_tac(load), tac)
        except LoadRefused as refusal:
            return _Refusal(refusal)
        now = self.clock.now().isoformat()
        if good:
            if load.state is LedgerState.AUTHORIZED:
                tx.change(load_id, LedgerState.CONFIRMED, note=load.note, changed_at=now, tac=tac)
            return LoadConfirmation(load_id, LedgerState.CONFIRMED.value)
        if load.state is LedgerState.AUTHORIZED:
            tx.change(load_id, LedgerState.FLAGGED, changed_at=now, tac=tac,
                      note="the TAC received does not verify under the card's TAC key")
            return _Refusal(LoadRefused(BAD_TAC, f"the TAC does not verify: load {load_id} is flagged for "
                                                 "investigation"))
        tx.change(load_id, load.state, changed_at=now, note=_joined(load.note, f"a wrong TAC {to_hex(tac)} came "
                                                                              "after the confirmation"))
        return _Refusal(LoadRefused(BAD_TAC, f"the TAC does not verify (load {load_id} was confirmed with another)"))

    def _expected_tac(self, load: LedgerLoad) -> bytes:
        dtk = self._card_key(KeyUsage.TAC, load.key_version, load.issuer, load.serial)
        return load_tac(tac_key(dtk), (load.balance_before + load.amount) & _WORD, load.online_counter, load.amount,
                        load.transaction_type, load.terminal, bytes.fromhex(load.datetime))


class InProcessLoadHost:
    """The host as the terminal holding ``token`` reaches it, without HTTP: implements
    :class:`terminal.loads.host.LoadHost`."""

    def __init__(self, service: LoadHostService, token: str) -> None:
        self.service = service
        self._token = token

    def authorize(self, request: LoadRequest) -> LoadAuthorization:
        return self.service.authorize(self._token, request)

    def confirm(self, load_id: int, tac: bytes) -> LoadConfirmation:
        return self.service.confirm(self._token, load_id, tac)


def refusal_json(refusal: LoadRefused) -> dict[str, str]:
    """The body of a refusal: ``{"error": CODE, "message": TEXT}``."""
    return {"error": refusal.code, "message": refusal.reason}


def _refusal_body(refusal: LoadRefused) -> str:
    return encode(refusal_json(refusal)).decode()


def _answer(stored: StoredAnswer) -> LoadAuthorization | _Refusal:
    document = json.loads(stored.body)
    if stored.status != 200:
        return _Refusal(LoadRefused(document["error"], document["message"]))
    return authorization_from_json(document)


def _joined(note: str, more: str) -> str:
    return f"{note}; {more}" if note else more
