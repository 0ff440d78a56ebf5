"""The simulated T-Union CPU card: the purse application answering every command of the protocols layer.

Behaviour, in the order a tap meets it:

* SELECT ``A000000632010105`` (or FID 1001) selects the purse application and answers its FCI, whose 9F0C carries
  file 0x15; a blocked application is selected all the same but answers ``6283`` (no FCI). SELECT 3F00 selects the
  MF (9000, no FCI); the PPSE answers only on cards personalised with one. Anything else is 6A82.
* Reads need the application selected (6A82 otherwise): READ BINARY of 0x15/0x16/0x17, READ RECORD of 0x18 and 0x1E
  by number (1 = newest) and of 0x1A by number (ascending id order) or by id (P1 = byte 1 of the record). Le rules:
  :mod:`sim.card.files`.
* INITIALIZE FOR PURCHASE / CAPP PURCHASE / LOAD opens the transaction context: 9403 when the key index has no key
  for it, 9402 when the counter is exhausted, 9401 when the amount exceeds balance + overdraft, 6A80 when a load
  would take the balance past :data:`~sim.card.image.MAX_BALANCE`. Purse commands on a blocked application, or with
  no application selected, answer 6985.
* Between INITIALIZE and DEBIT/CREDIT the card takes only UPDATE CAPP DATA CACHE (after INITIALIZE FOR CAPP
  PURCHASE): any other command, or an UPDATE that fails, ends the transaction and drops its staged records, and is
  then processed as usual. DEBIT/CREDIT with no context answer 6985.
* UPDATE CAPP DATA CACHE stages a 0x1A record (``80 DC <id> D0 80``, the id must exist, the data must start
  ``27 <id>``) or a 0x1E record (``80 DC 00 F0 30``); the debit commits them with the balance, the counter, the
  0x18 record and the proof, all at once.
* DEBIT checks MAC1 (9302 and the context dropped on failure); CREDIT checks MAC2. GET TRANSACTION PROVE answers
  MAC2 ‖ TAC of the last transaction of the type in P2 when its ATC is the counter after it, else 9406.
* GET CHALLENGE gives a random that serves the next command only; APPLICATION BLOCK / UNBLOCK check the
  line-protection MAC (spec §3.6) under the maintenance key with it (6984 without one, 9302 for a bad MAC).

``execute`` never raises. Each command either fails before touching the image or computes everything it writes and
then assigns it, so the image after any command is what a real card's atomic EEPROM commit leaves.

Every command is parsed whole by the codecs (:data:`~protocols.card_commands.CARD_COMMANDS`) and its handler
gets that command object and nothing else: the card answers the APDU it was sent, field for field. What a card keeps
is what a real one keeps: the FCI (its files 0x15/0x17 are fixed at personalisation), its own keys and their cipher
contexts.
"""

from __future__ import annotations

import logging
import random as _random
from collections.abc import Callable, Sequence

from protocols.bcd import encode_datetime
from protocols.card_commands import (
    LOAD_INIT_RESPONSE, PURCHASE_INIT_RESPONSE, ApplicationBlock, ApplicationUnblock, CreditForLoad, DebitForPurchase,
    GetBalance, GetChallenge, GetResponse, GetTransactionProve, InitializeForCappPurchase, InitializeForLoad,
    InitializeForPurchase, MacCommand, Purse, ReadBinary, ReadRecord, RecordMode, SelectByFid, SelectByName,
    CARD_COMMANDS, UpdateCappDataCache,
)
from protocols.card_files import (
    PROCESS_RECORD_SIZE, PROCESS_RECORD_TAG, PUBLIC_APP_INFO, SFI_CARDHOLDER, SFI_MANAGEMENT, SFI_PROCESS,
    SFI_PUBLIC_APP_INFO, SFI_TRANSACTION_LOG, SFI_TRANSIT_LOG, TRANSACTION_LOG_RECORD, TRANSACTION_LOG_RECORDS,
    TRANSIT_RECORD_SIZE, TRANSIT_RECORDS, PublicAppInfo, TransactionType,
)
from protocols.crypto import (
    ALG_ID_SM4, SessionKey, TdesKey, line_protection_mac, load_mac1, load_mac2, load_session_key, load_tac, macs_equal,
    purchase_mac1, purchase_mac2, purchase_session_key, purchase_tac,
)
from protocols.status import CardStatus
from protocols.fci import PPSE_NAME, T_UNION_EP_AID, DirectoryEntry, Fci
from terminal.link import Activation

from ..device import parse_or_status
from .files import OK, describe_command, read_binary, read_record, status
from .image import MAX_ATC, MAX_BALANCE, CardImage, KeySlot, Proof, PurseState

log = logging.getLogger(__name__)

T_UNION_EP_FID = 0x1001
MF_FID = 0x3F00
EP_LABEL = b"MOT_T_EP"

_PPSE_FCI = Fci.ppse([DirectoryEntry(T_UNION_EP_AID, EP_LABEL, 2)]).to_bytes() + OK
_MF, _PPSE, _ADF = 1, 2, 3  # what is selected; None before any SELECT
_WORD = 0xFFFFFFFF  # a signed balance goes on the wire as 32-bit two's complement
_TRANSACTION_TYPES = {  # INITIALIZE class: (transaction type on the purse, on the passbook)
    InitializeForPurchase: (TransactionType.EP_PURCHASE.value, TransactionType.ED_PURCHASE.value),
    InitializeForCappPurchase: (TransactionType.COMPOSITE_PURCHASE.value, None),
    InitializeForLoad: (TransactionType.EP_LOAD.value, TransactionType.ED_LOAD.value),
}
_PURCHASES = frozenset((TransactionType.EP_PURCHASE, TransactionType.ED_PURCHASE, TransactionType.COMPOSITE_PURCHASE))
_LOADS = frozenset((TransactionType.EP_LOAD, TransactionType.ED_LOAD))
_BINARY_SFIS = frozenset((SFI_PUBLIC_APP_INFO, SFI_CARDHOLDER, SFI_MANAGEMENT))
_RECORD_SFIS = frozenset((SFI_TRANSACTION_LOG, SFI_PROCESS, SFI_TRANSIT_LOG))

_SYSTEM_RANDOM = _random.Random()  # seeded from the system; one for all cards (each Random holds 2.5 kB of state)


class _Transaction:
    """An open INITIALIZE: what DEBIT or CREDIT needs, held in RAM until it completes or anything else arrives.

    One per card, filled by each INITIALIZE (no object per tap).
    """

    __slots__ = ("amount", "atc", "kind", "purse", "random", "session", "slot", "staged", "terminal")

    def __init__(self) -> None:
        self.staged: list[tuple[int, int, bytes]] = []  # UPDATE CAPP DATA CACHE: (SFI, record id, record)

    def open(self, kind: int, purse: PurseState, slot: KeySlot, amount: int, terminal: bytes, random: bytes,
             atc: int, session: SessionKey | None) -> None:
        self.kind = kind  # transaction type: 01/02 load, 05/06 purchase, 09 composite purchase
        self.purse = purse
        self.slot = slot
        self.amount = amount
        self.terminal = terminal
        self.random = random
        self.atc = atc  # the counter INITIALIZE answered
        self.session = session  # load: made at INITIALIZE for MAC1; purchase: made at DEBIT, which brings the TSN
        self.staged.clear()


def log_record(atc: int, overdraft_limit: int, amount: int, kind: int, terminal: bytes, when: bytes) -> bytes:
    """The 0x18 record the card writes for a debit or load. ``when`` is the BCD date-time the transaction's MACs
    covered: the record's date and time are its first 4 and last 3 bytes, so it goes in as it is."""
    return TRANSACTION_LOG_RECORD.pack_wire(atc, overdraft_limit.to_bytes(3, "big"), amount, kind, terminal, when[:4],
                                            when[4:])


class SimCard:
    """A T-Union (JT/T 978) purse card in software; implements :class:`sim.device.Device`.

    ``randbytes(n)`` supplies the card's randoms (INITIALIZE, GET CHALLENGE): by default a PRNG seeded from the
    system, fast and unpredictable enough for a simulator; tests and seeded populations pass their own source.
    ``sm4_id`` is the algorithm id an SM4 card answers in INITIALIZE (``04`` is UNCONFIRMED).

    The files 0x15/0x16/0x17 are fixed at personalisation (no command writes them), so the FCI is built once here:
    ``fci``, or the one most T-Union cards send (version 02, file 0x15 in 9F0C).
    ``internal_errors`` counts commands that hit a bug in the simulator (answered 6F00 and logged); tests expect 0.
    """

    def __init__(self, image: CardImage, *, randbytes: Callable[[int], bytes] | None = None,
                 sm4_id: int = ALG_ID_SM4, fci: Fci | None = None) -> None:
        self.image = image
        self.randbytes = randbytes if randbytes is not None else _SYSTEM_RANDOM.randbytes
        self.internal_errors = 0
        self._alg_id = image.algorithm.alg_id(sm4_id=sm4_id)
        self._activation = Activation("T=CL", uid=image.uid, atqa=image.atqa, sak=image.sak, ats=image.ats)
        if fci is None:
            fci = Fci.application(T_UNION_EP_AID, version=b"\x02", file15=image.public_info)
        self._fci = fci.to_bytes() + OK
        self._selected: int | None = None
        self._tx: _Transaction | None = None  # the open transaction, if any
        self._transaction = _Transaction()  # the RAM it lives in
        self._challenge: bytes | None = None

    # --- Device -----------------------------------------------------------------------------------------------------

    def power_on(self) -> Activation:
        """Enter the field: RAM is lost (selection, transaction context, staged records, challenge)."""
        self._selected = None
        self._tx = None
        self._challenge = None
        return self._activation

    def execute(self, apdu: bytes) -> bytes:
        """Answer one command APDU; any input gets a status word."""
        tx, self._tx = self._tx, None  # every command ends an open transaction unless its handler keeps it
        challenge, self._challenge = self._challenge, None  # a challenge serves the next command only
        try:
            if type(apdu) is not bytes:
                apdu = bytes(apdu)
            command = parse_or_status(CARD_COMMANDS.parse, apdu)
            if isinstance(command, int):
                return status(command)
            return _HANDLERS[type(command)](self, command, tx, challenge)
        except Exception:  # the card contract: a status word for anything; a bug is counted and logged, not raised
            self.internal_errors += 1
            log.exception("simulated card: internal error on %s", describe_command(apdu))
            return status(CardStatus.INTERNAL_ERROR)

    # --- conveniences for tests, tools and fixtures -----------------------------------------------------------------

    @property
    def info(self) -> PublicAppInfo:
        """File 0x15 parsed: issuer, serial, validity."""
        return PUBLIC_APP_INFO.parse(self.image.public_info)

    @property
    def serial(self) -> bytes:
        """The 10-byte application serial (file 0x15 bytes 10..19)."""
        return self.image.public_info[10:20]

    @property
    def issuer_id(self) -> bytes:
        return self.image.public_info[0:8]

    @property
    def balance(self) -> int:
        """The purse (EP) balance in fen; negative when an overdraft is used."""
        return self.image.purse.balance

    # --- selection and reads ----------------------------------------------------------------------------------------

    def _select_application(self, p2: int) -> bytes:
        self._selected = _ADF
        if self.image.blocked:
            return status(CardStatus.APPLICATION_BLOCKED)
        return OK if p2 == 0x0C else self._fci

    def _select_by_name(self, cmd: SelectByName, tx: object, challenge: object) -> bytes:
        if cmd.aid == T_UNION_EP_AID:
            return self._select_application(cmd.p2)
        if cmd.aid == PPSE_NAME and self.image.ppse:
            self._selected = _PPSE
            return OK if cmd.p2 == 0x0C else _PPSE_FCI
        return status(CardStatus.FILE_NOT_FOUND)

    def _select_by_fid(self, cmd: SelectByFid, tx: object, challenge: object) -> bytes:
        if cmd.fid == T_UNION_EP_FID:
            return self._select_application(cmd.p2)
        if cmd.fid == MF_FID:
            self._selected = _MF
            return OK
        return status(CardStatus.FILE_NOT_FOUND)

    def _read_binary(self, cmd: ReadBinary, tx: object, challenge: object) -> bytes:
        if self._selected != _ADF:
            return status(CardStatus.FILE_NOT_FOUND)
        sfi = cmd.sfi
        image = self.image
        if sfi == SFI_PUBLIC_APP_INFO:
            content = image.public_info
        elif sfi == SFI_MANAGEMENT:
            content = image.management
        elif sfi == SFI_CARDHOLDER:
            content = image.cardholder
        else:
            return status(CardStatus.INCOMPATIBLE_FILE if sfi in _RECORD_SFIS else CardStatus.FILE_NOT_FOUND)
        return read_binary(content, cmd.offset, cmd.le)

    def _read_record(self, cmd: ReadRecord, tx: object, challenge: object) -> bytes:
        if self._selected != _ADF:
            return status(CardStatus.FILE_NOT_FOUND)
        sfi, number = cmd.sfi, cmd.record
        image = self.image
        if sfi == SFI_PROCESS:
            if cmd.mode is RecordMode.IDENTIFIER:
                record = image.process_records.get(number)
                return status(CardStatus.RECORD_NOT_FOUND) if record is None else read_record(record, cmd.le)
            records: list[bytes] = list(image.process_records.values())
        elif sfi == SFI_TRANSACTION_LOG or sfi == SFI_TRANSIT_LOG:
            if cmd.mode is RecordMode.IDENTIFIER:
                return status(CardStatus.WRONG_P1P2)
            records = image.transaction_log if sfi == SFI_TRANSACTION_LOG else image.transit_log
        else:
            return status(CardStatus.INCOMPATIBLE_FILE if sfi in _BINARY_SFIS else CardStatus.FILE_NOT_FOUND)
        if number == 0:  # "the current record": a purse application keeps none
            return status(CardStatus.WRONG_P1P2)
        if number > len(records):
            return status(CardStatus.RECORD_NOT_FOUND)
        return read_record(records[number - 1], cmd.le)

    # --- purse ------------------------------------------------------------------------------------------------------

    def _purse_ready(self) -> bool:
        return self._selected == _ADF and not self.image.blocked

    def _purse(self, which: Purse) -> PurseState | None:
        return self.image.purse if which == Purse.EP else self.image.passbook  # == on an IntEnum: no enum hashing

    def _get_balance(self, cmd: GetBalance, tx: object, challenge: object) -> bytes:
        if not self._purse_ready():
            return status(CardStatus.CONDITIONS_NOT_SATISFIED)
        purse = self._purse(cmd.purse)
        if purse is None:
            return status(CardStatus.WRONG_P1P2)
        return (purse.balance & _WORD).to_bytes(4, "big") + OK

    def _initialize(self, cmd: InitializeForPurchase, tx: object, challenge: object) -> bytes:
        image = self.image
        if self._selected != _ADF or image.blocked:
            return status(CardStatus.CONDITIONS_NOT_SATISFIED)
        on_purse = cmd.purse == Purse.EP
        purse = image.purse if on_purse else image.passbook
        kind = _TRANSACTION_TYPES[type(cmd)][0 if on_purse else 1]
        if purse is None or kind is None:
            return status(CardStatus.WRONG_P1P2)
        slot = image.keys.get(cmd.key_index)
        load = kind in _LOADS
        if slot is None or slot.tac is None or (slot.load if load else slot.purchase) is None:
            return status(CardStatus.KEY_INDEX_UNSUPPORTED)
        amount, terminal, balance = cmd.amount, cmd.terminal_number, purse.balance
        if load:
            atc = purse.online_atc
            if atc >= MAX_ATC:
                return status(CardStatus.COUNTER_EXHAUSTED)
            if balance + amount > MAX_BALANCE:
                return status(CardStatus.WRONG_DATA)
            random = self.randbytes(4)
            session: SessionKey | None = load_session_key(slot.load, random, atc)  # type: ignore[arg-type]
            mac1 = load_mac1(session, balance & _WORD, amount, kind, terminal)  # type: ignore[arg-type]
            answer = LOAD_INIT_RESPONSE.pack(balance & _WORD, atc, slot.version, self._alg_id, random, mac1)
        else:
            atc = purse.offline_atc
            if atc >= MAX_ATC:
                return status(CardStatus.COUNTER_EXHAUSTED)
            if amount > balance + purse.overdraft_limit:
                return status(CardStatus.INSUFFICIENT_BALANCE)
            random = self.randbytes(4)
            session = None
            answer = PURCHASE_INIT_RESPONSE.pack(balance & _WORD, atc, purse.overdraft_limit, slot.version,
                                                 self._alg_id, random)
        tx = self._transaction
        tx.open(kind, purse, slot, amount, terminal, random, atc, session)
        self._tx = tx
        return answer + OK

    def _update_capp_data_cache(self, cmd: UpdateCappDataCache, tx: _Transaction | None,
                                challenge: object) -> bytes:
        if tx is None or tx.kind != TransactionType.COMPOSITE_PURCHASE:
            return status(CardStatus.CONDITIONS_NOT_SATISFIED)
        sfi, record_id, data = cmd.sfi, cmd.record, cmd.data
        if sfi == SFI_PROCESS:
            if cmd.mode is not RecordMode.IDENTIFIER:
                return status(CardStatus.WRONG_P1P2)
            if record_id not in self.image.process_records:
                return status(CardStatus.RECORD_NOT_FOUND)
            if len(data) != PROCESS_RECORD_SIZE:
                return status(CardStatus.WRONG_LENGTH)
            if data[0] != PROCESS_RECORD_TAG or data[1] != record_id:
                return status(CardStatus.WRONG_DATA)
        elif sfi == SFI_TRANSIT_LOG:
            if cmd.mode is not RecordMode.IDENTIFIER or record_id != 0:
                return status(CardStatus.WRONG_P1P2)
            if len(data) != TRANSIT_RECORD_SIZE:
                return status(CardStatus.WRONG_LENGTH)
        else:
            known = sfi in _BINARY_SFIS or sfi in _RECORD_SFIS
            return status(CardStatus.INCOMPATIBLE_FILE if known else CardStatus.FILE_NOT_FOUND)
        tx.staged.append((sfi, record_id, data))
        self._tx = tx
        return OK

    def _debit(self, cmd: DebitForPurchase, tx: _Transaction | None, challenge: object) -> bytes:
        if tx is None or tx.kind not in _PURCHASES:
            return status(CardStatus.CONDITIONS_NOT_SATISFIED)
        slot, amount, kind, terminal = tx.slot, tx.amount, tx.kind, tx.terminal
        tsn, mac1 = cmd.tsn, cmd.mac1
        when = encode_datetime(cmd.when)  # the MACs cover the BCD date-time
        session = purchase_session_key(slot.purchase, tx.random, tx.atc, tsn)  # type: ignore[arg-type]
        if not macs_equal(purchase_mac1(session, amount, kind, terminal, when), mac1):
            return status(CardStatus.MAC_INVALID)
        mac2 = purchase_mac2(session, amount)
        tac = purchase_tac(slot.tac_key(), amount, kind, terminal, tsn, when)
        purse = tx.purse
        record = log_record(tx.atc, purse.overdraft_limit, amount, kind, terminal, when)
        # Everything is computed; what follows cannot fail, so the commit is all or nothing.
        purse.balance -= amount
        purse.offline_atc = tx.atc + 1
        self._commit(record, tx.staged)
        self.image.proofs[kind] = Proof(tx.atc + 1, mac2, tac)
        return tac + mac2 + OK

    def _credit(self, cmd: CreditForLoad, tx: _Transaction | None, challenge: object) -> bytes:
        if tx is None or tx.kind not in _LOADS:
            return status(CardStatus.CONDITIONS_NOT_SATISFIED)
        amount, kind, terminal = tx.amount, tx.kind, tx.terminal
        when = encode_datetime(cmd.when)
        if not macs_equal(load_mac2(tx.session, amount, kind, terminal, when), cmd.mac2):  # type: ignore[arg-type]
            return status(CardStatus.MAC_INVALID)
        purse = tx.purse
        balance = purse.balance + amount
        tac = load_tac(tx.slot.tac_key(), balance & _WORD, tx.atc, amount, kind, terminal, when)
        record = log_record(tx.atc, purse.overdraft_limit, amount, kind, terminal, when)
        purse.balance = balance
        purse.online_atc = tx.atc + 1
        self._commit(record, ())
        self.image.proofs[kind] = Proof(tx.atc + 1, cmd.mac2, tac)
        return tac + OK

    def _commit(self, record: bytes, staged: Sequence[tuple[int, int, bytes]]) -> None:
        """Write the card's own 0x18 record and the staged CAPP records (already checked, so nothing can fail)."""
        image = self.image
        image.transaction_log.insert(0, record)
        del image.transaction_log[TRANSACTION_LOG_RECORDS:]
        for sfi, record_id, data in staged:
            if sfi == SFI_PROCESS:
                image.process_records[record_id] = data
            else:
                image.transit_log.insert(0, data)
                del image.transit_log[TRANSIT_RECORDS:]

    def _prove(self, cmd: GetTransactionProve, tx: object, challenge: object) -> bytes:
        if not self._purse_ready():
            return status(CardStatus.CONDITIONS_NOT_SATISFIED)
        proof = self.image.proofs.get(cmd.transaction_type)
        if proof is None or proof.atc != cmd.atc:
            return status(CardStatus.NO_PROOF)
        return proof.mac2 + proof.tac + OK

    # --- line protection --------------------------------------------------------------------------------------------

    def _get_challenge(self, cmd: GetChallenge, tx: object, challenge: object) -> bytes:
        self._challenge = self.randbytes(cmd.le)
        return self._challenge + OK

    def _line_protected(self, cmd: MacCommand, challenge: bytes | None, blocked: bool) -> bytes:
        if self._selected != _ADF:
            return status(CardStatus.CONDITIONS_NOT_SATISFIED)
        key = self.image.maintenance_key
        if key is None:
            return status(CardStatus.DATA_NOT_FOUND)
        if not isinstance(key, TdesKey):  # no source shows line protection on an SM4 card
            return status(CardStatus.NOT_SUPPORTED)
        if challenge is None:
            return status(CardStatus.NO_CHALLENGE)
        if not macs_equal(line_protection_mac(key, challenge, cmd.protected_header), cmd.mac):
            return status(CardStatus.MAC_INVALID)
        self.image.blocked = blocked
        return OK

    def _block(self, cmd: ApplicationBlock, tx: object, challenge: bytes | None) -> bytes:
        return self._line_protected(cmd, challenge, True)

    def _unblock(self, cmd: ApplicationUnblock, tx: object, challenge: bytes | None) -> bytes:
        return self._line_protected(cmd, challenge, False)

    def _get_response(self, cmd: GetResponse, tx: object, challenge: object) -> bytes:
        return status(CardStatus.CONDITIONS_NOT_SATISFIED)  # on ISO 14443-4 every answer comes whole: none waits


_HANDLERS: dict[type, Callable[..., bytes]] = {
    SelectByName: SimCard._select_by_name,
    SelectByFid: SimCard._select_by_fid,
    ReadBinary: SimCard._read_binary,
    ReadRecord: SimCard._read_record,
    GetBalance: SimCard._get_balance,
    InitializeForPurchase: SimCard._initialize,
    InitializeForCappPurchase: SimCard._initialize,
    InitializeForLoad: SimCard._initialize,
    UpdateCappDataCache: SimCard._update_capp_data_cache,
    DebitForPurchase: SimCard._debit,
    CreditForLoad: SimCard._credit,
    GetTransactionProve: SimCard._prove,
    GetChallenge: SimCard._get_challenge,
    ApplicationBlock: SimCard._block,
    ApplicationUnblock: SimCard._unblock,
    GetResponse: SimCard._get_response,
}
"""Handlers by command class, shared by every card (a per-card table of bound methods would cost memory per card)."""
