"""The PSAM as a validator uses it: started once, then MAC1, MAC2 and line-protection MACs on demand, and for legacy
M1 cards their sector keys, the issuer's auth code and the transaction MAC with its TSN (``docs/m1-purse-layout.md``).

A PSAM that stops answering, or answers garbage, takes the validator out of service (:class:`OutOfService`) rather
than letting it charge blindly; a PSAM that refuses one card's computation with a status word is a
:class:`StatusError` for that tap alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from protocols import card_commands as cc
from protocols import psam_commands as pc
from protocols.apdu import ResponseAPDU
from protocols.crypto import pad
from protocols.errors import ProtocolError
from protocols.status import PsamStatus

from .channel import Channel, Pending
from .errors import LinkError, OutOfService, StatusError

_MAC_COMMAND = cc.ApplicationBlock(bytes(4)).protected_header  # 84 1E 00 00 04: what the line-protection MAC covers
_CREDIT = pc.CreditSamForPurchase(bytes(4)).to_bytes()[:5]  # 80 72 00 00 04, then the card's 4-byte MAC2


class Psam:
    """A started T-Union PSAM behind a :class:`Channel`.

    ``two_level`` says whether the PSAM diversifies by issuer then card (T-Union, Lc 24 in 8070) or by card alone.
    ``session_tsn`` is the TSN of the last INIT SAM FOR PURCHASE while its session is still open (8072 not yet sent):
    tear recovery checks a proven MAC2 only when the session it needs is still the PSAM's current one.
    """

    def __init__(self, channel: Channel, *, df: int = pc.T_UNION_PSAM_DF, two_level: bool = True,
                 maintenance_key_version: int = 0x01) -> None:
        self.channel = channel
        self._purchase_data = pc.SAM_PURCHASE_DATA_2 if two_level else pc.SAM_PURCHASE_DATA_1
        self._init_sam = bytes((pc.InitSamForPurchase.CLA, pc.InitSamForPurchase.INS, 0, 0, self._purchase_data.size))
        self.df = df
        self.two_level = two_level
        self.maintenance_key_version = maintenance_key_version
        self.terminal_id = b""
        self.key_index = 0
        self.session_tsn: int | None = None
        self._cmd_terminal = pc.read_terminal_number().to_bytes()
        self._cmd_select = pc.select_application(df).to_bytes()
        self._cmd_key_index = pc.read_key_index().to_bytes()

    def _call(self, apdu: bytes, command: str) -> bytes:
        return self._data(lambda: self.channel.transmit(apdu), command)

    def _data(self, exchange: Callable[[], ResponseAPDU], command: str) -> bytes:
        """The data of the answer ``exchange()`` gives: a link failure or garbage puts the validator out of service, a
        status word other than 9000 is this tap's :class:`StatusError`."""
        try:
            response = exchange()
        except LinkError as exc:
            raise OutOfService(f"PSAM not answering ({command}): {exc}") from exc
        except ProtocolError as exc:
            raise OutOfService(f"PSAM answered garbage ({command}): {exc}") from exc
        if response.sw != PsamStatus.OK:
            raise StatusError(command, response.sw, peer=self.channel.peer)
        return response.data

    def start(self) -> None:
        """Power up, read the terminal number, select the purchase DF, read the key index."""
        try:
            if self.channel.activate() is None:
                raise OutOfService("no PSAM in the SAM slot")
            terminal_id = self._call(self._cmd_terminal, "READ BINARY terminal number")
            self._call(self._cmd_select, f"SELECT DF {self.df:04X}")
            key_index = self._call(self._cmd_key_index, "READ BINARY key index")
        except StatusError as exc:
            raise OutOfService(f"PSAM refused start-up: {exc}") from exc
        except LinkError as exc:
            raise OutOfService(f"PSAM not answering at start-up: {exc}") from exc
        if len(terminal_id) != pc.TERMINAL_NUMBER_SIZE or len(key_index) != 1:
            raise OutOfService(f"PSAM start-up: terminal number of {len(terminal_id)} bytes, "
                               f"key index of {len(key_index)} bytes")
        self.terminal_id = terminal_id
        self.key_index = key_index[0]
        self.session_tsn = None

    def send_purchase_mac1(self, *, random: bytes, offline_atc: int, amount: int, transaction_type: int,
                           when: bytes, key_version: int, algorithm_id: int, card_serial: bytes,
                           issuer_id: bytes) -> PendingMac1:
        """INIT SAM FOR PURCHASE sent ahead (:meth:`Channel.send`): the card may take what does not need MAC1 while
        the PSAM computes; :meth:`PendingMac1.result` gives the TSN and MAC1. ``when`` is the tap's date-time as the
        7 BCD bytes DEBIT will carry too (:func:`protocols.bcd.encode_datetime`, made once a tap); ``card_serial`` is
        the 8-byte diversification factor."""
        fields = (random, offline_atc, amount, transaction_type, when, key_version, algorithm_id, card_serial)
        data = (self._purchase_data.pack_wire(*fields, issuer_id) if self.two_level
                else self._purchase_data.pack_wire(*fields))
        self.session_tsn = None
        return PendingMac1(self, self.channel.send(self._init_sam + data))

    def purchase_mac1(self, *, random: bytes, offline_atc: int, amount: int, transaction_type: int, when: bytes,
                      key_version: int, algorithm_id: int, card_serial: bytes, issuer_id: bytes) -> tuple[int, bytes]:
        """INIT SAM FOR PURCHASE, waited for at once: the TSN and MAC1 for a debit."""
        return self.send_purchase_mac1(random=random, offline_atc=offline_atc, amount=amount,
                                       transaction_type=transaction_type, when=when, key_version=key_version,
                                       algorithm_id=algorithm_id, card_serial=card_serial,
                                       issuer_id=issuer_id).result()

    def check_mac2(self, mac2: bytes) -> bool:
        """CREDIT SAM FOR PURCHASE: True when the PSAM accepts the card's MAC2. Closes the PSAM's session."""
        self.session_tsn = None
        command = _CREDIT + mac2 if type(mac2) is bytes and len(mac2) == 4 else pc.CreditSamForPurchase(mac2).to_bytes()
        try:
            self._call(command, "CREDIT SAM FOR PURCHASE")
        except StatusError:
            return False
        return True

    def block_mac(self, challenge: bytes, card_serial: bytes, issuer_id: bytes) -> bytes:
        """The line-protection MAC for APPLICATION BLOCK (spec §3.6): DES INIT with the card's factors, then MAC with
        the card's challenge as IV over the padded command header."""
        factors = (card_serial, issuer_id) if self.two_level else (card_serial,)
        return self._des_mac(pc.KeyUsage.MAINTENANCE, self.maintenance_key_version, factors,
                             challenge.ljust(8, b"\0"), _MAC_COMMAND)

    def _des_mac(self, usage: int, version: int, factors: tuple[bytes, ...], iv: bytes, data: bytes) -> bytes:
        """DES INIT (``usage``, ``version``, ``factors``), then DES CRYPT's MAC over ``data`` padded (ISO 9797-1
        method 2) from ``iv``: the left 4 bytes of what the PSAM answers. Closes the PSAM's purchase session."""
        self.session_tsn = None
        self._call(pc.DesInit(usage, version, factors).to_bytes(), "DES INIT")
        mac = self._call(pc.DesMac(iv, pad(data)).to_bytes(), "DES MAC")
        if len(mac) < 4:
            raise OutOfService(f"PSAM answered a {len(mac)}-byte MAC to DES MAC")
        return mac[:4]

    def m1_sector_keys(self, uid: bytes, sectors: tuple[int, ...], *, key_version: int,
                       key_type: pc.M1KeyType = pc.M1KeyType.A) -> dict[int, bytes]:
        """M1 SECTOR KEYS: the 6-byte key (A unless ``key_type`` says B) of each of ``sectors`` of the M1 card with
        ``uid`` (its 4 authentication bytes) whose block 4 names ``key_version``. Closes the purchase session."""
        self.session_tsn = None
        keys = self._call(pc.M1SectorKeys(key_type, key_version, uid, sectors).to_bytes(), "M1 SECTOR KEYS")
        if len(keys) != 6 * len(sectors):
            raise OutOfService(f"PSAM answered {len(keys)} bytes to M1 SECTOR KEYS for {len(sectors)} sectors")
        return {sector: keys[6 * i:6 * i + 6] for i, sector in enumerate(sectors)}

    def m1_auth_code(self, card_number: bytes, key_version: int, data: bytes) -> bytes:
        """The issuer authentication code an M1 card with ``card_number`` should hold over ``data``
        (:func:`protocols.m1.crypto.auth_code_data`): DES INIT with usage 25 (M1 auth) and the card number, then
        DES CRYPT's MAC from a zero IV. The validator compares it with block 4's."""
        return self._des_mac(pc.KeyUsage.M1_AUTH, key_version, (card_number,), bytes(8), data)

    def m1_purchase_mac(self, *, key_version: int, card_number: bytes, uid: bytes, counter: int, balance_before: int,
                        amount: int, transaction_type: int, when: dt.datetime) -> tuple[int, bytes]:
        """M1 PURCHASE MAC: the TSN the PSAM gives this M1 debit, and its transaction MAC over the debit (``uid`` the 4
        bytes AUTH carries, ``counter`` the card's counter after the debit). The journal keeps the MAC as the debit's
        TAC; a back office recomputes it from the ``m1_tac`` master. Closes the purchase session."""
        self.session_tsn = None
        command = pc.M1PurchaseMac(key_version, card_number, uid, counter, balance_before, amount, transaction_type,
                                   when)
        data = self._call(command.to_bytes(), "M1 PURCHASE MAC")
        try:
            answer = pc.SAM_PURCHASE_RESPONSE.parse(data)  # TSN ‖ MAC, as INIT SAM FOR PURCHASE answers
        except ProtocolError as exc:
            raise OutOfService(f"PSAM answered garbage (M1 PURCHASE MAC): {exc}") from exc
        return answer.tsn, answer.mac1


class PendingMac1:
    """An INIT SAM FOR PURCHASE sent ahead (:meth:`Psam.send_purchase_mac1`)."""

    __slots__ = ("_psam", "_pending")

    def __init__(self, psam: Psam, pending: Pending) -> None:
        self._psam, self._pending = psam, pending

    def result(self) -> tuple[int, bytes]:
        """The TSN and MAC1; raises as every PSAM call does (:class:`OutOfService`, :class:`StatusError`)."""
        data = self._psam._data(self._pending.result, "INIT SAM FOR PURCHASE")
        try:
            answer = pc.SAM_PURCHASE_RESPONSE.parse(data)
        except ProtocolError as exc:
            raise OutOfService(f"PSAM answered garbage (INIT SAM FOR PURCHASE): {exc}") from exc
        self._psam.session_tsn = answer.tsn
        return answer.tsn, answer.mac1
