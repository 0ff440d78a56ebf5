"""The simulated T-Union PSAM: terminal number, DF 8011, MAC1/MAC2 for purchases, DES INIT and DES CRYPT.

Files: the MF holds the terminal number (SFI 0x16, 6 bytes); DF 8011 holds the purchase key index (SFI 0x17,
1 byte). After power-on the MF is current; READ BINARY reaches the files of the current DF only (6A82 otherwise).

* INIT SAM FOR PURCHASE (8070, DF 8011 selected, else 6985): diversifies the purchase master key of the card's key
  version by the factors in the command (one level, Lc 1C: card serial; two levels, Lc 24: issuer then serial),
  derives the session key with the PSAM's own TSN, answers TSN ‖ MAC1 over the PSAM's own terminal number, and
  counts the TSN up (it wraps after FFFFFFFF). A key version the key set lacks is 6A88; an algorithm id that is
  not the key set's algorithm is 6A80.
* CREDIT SAM FOR PURCHASE (8072) checks MAC2 against the session of the 8070 just before it: 9000 good, 9302 bad,
  6985 when there is none. The session serves one 8072 and no other command may come between (GET RESPONSE
  fetching the 8070 answer aside): any other command, or a power-on, closes it.
* M1 PURCHASE MAC (807C, DF 8011 selected, else 6985): the transaction MAC of an M1 card's debit under the ``m1_tac``
  master of the key version in P2 diversified by the card number, over the debit with the PSAM's own terminal number
  and TSN (:data:`protocols.m1.crypto.PURCHASE_MAC_DATA`); answers TSN ‖ MAC and counts the TSN up, the same serial
  INIT SAM FOR PURCHASE counts. A key set without that master answers 6A88.
* DES INIT (801A, P1 key usage 44 TAC, 45 maintenance or 25 M1 auth code, P2 key version):
  diversifies that master key by the given factors (lowest level first) and keeps the result for DES CRYPT; for the
  TAC usage it folds the key into the TAC key as a card does.
* M1 SECTOR KEYS (80FC, DF 8011 selected, else 6985): the 6-byte keys of the sectors asked for, of an M1 card with
  the given UID, from the key set's M1 masters by its key rule (6A88 when the key set lacks a master).
* DES CRYPT (80FA) P1 00 encrypts whole blocks (ECB), P1 05 MACs with the IV it is given
  (spec §3.6: ISO 9797-1 algorithm 3 for a 16-byte key, DES CBC-MAC for a TAC key), the data padded by the caller;
  4 bytes, or the whole block when Le is 8. Without DES INIT: 6985. SM4 keys: 6A81 (no source shows SM4 on 80FA).

Every command is parsed whole by the codecs (:data:`~protocols.psam_commands.PSAM_COMMANDS`) and its handler gets
that command object: the PSAM answers the APDU it was sent, field for field.

Speed choice: the issuer-level key of two-level diversification is kept per issuer (and usage and version), so each
further card costs one diversification. Real PSAMs recompute it every time; only the time differs, not the bytes. The
card's own key is diversified anew for every 8070, as a real PSAM does.

``t0=True`` makes the PSAM answer like a T=0 card: a command that carried data and has response data answers
``61xx`` and the data waits for GET RESPONSE (``00 C0 00 00 xx``; a larger Le is ``6Cxx``, a smaller one gets that
much and ``61`` with the rest). Any other command drops waiting data. Without ``t0`` answers come whole.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from protocols.atr import DEFAULT_TA1, PPSS, Atr, pps_parameters
from protocols.bcd import encode_datetime
from protocols.card_commands import (
    GetResponse, ReadBinary, SelectByFid, SelectByName,
)
from protocols.crypto import (
    BlockKey, CardKey, SessionKey, Sm4Key, algorithm_for, diversify, mac_block, macs_equal, purchase_mac1,
    purchase_mac2, purchase_session_key, tac_key,
)
from protocols.errors import ProtocolError
from protocols.m1.crypto import PURCHASE_MAC_DATA, purchase_mac
from protocols.mifare import KeyType as MifareKeyType
from protocols.psam_commands import (
    SAM_PURCHASE_RESPONSE, SFI_KEY_INDEX, SFI_TERMINAL_NUMBER, T_UNION_PSAM_DF, TERMINAL_NUMBER_SIZE,
    CreditSamForPurchase, DesEncrypt, DesInit, DesMac, InitSamForPurchase, KeyUsage as PsamKeyUsage, M1KeyType,
    PSAM_COMMANDS, M1PurchaseMac, M1SectorKeys,
)
from protocols.status import PsamStatus, bytes_waiting, resend_with_le
from protocols.tlv import Tlv
from terminal.errors import ConfigError
from terminal.keyset import Keyset, KeyUsage
from terminal.link import Activation

from .card.files import OK, describe_command, read_binary, status
from .device import parse_or_status
from .issuing import load_demo_keyset

log = logging.getLogger(__name__)

MF_FID = 0x3F00
DEFAULT_ATR = bytes.fromhex("3B5C1800") + b"YKT-PSAM-SIM"
"""``3B 5C 18 00`` + 12 historical bytes: direct convention, TA1 = 18 (Fi 372, Di 12: 115200 bit/s at 3.5712 MHz,
twelve times the 9600 bit/s every card starts at after reset), TC1 = 00 (no extra guard time), no TD1, so T=0 only;
no TA2, so the rate of TA1 is taken with a PPS exchange (:meth:`SimPsam.pps`)."""
_DEFAULT_RATE_PPS = bytes((PPSS, 0x00, PPSS))
"""The PPS answer that keeps the default rate under T=0 (PPS1 left out)."""
DES_USAGES = {PsamKeyUsage.TAC: KeyUsage.TAC, PsamKeyUsage.MAINTENANCE: KeyUsage.MAINTENANCE,
              PsamKeyUsage.M1_AUTH: KeyUsage.M1_AUTH}
"""DES INIT P1 (key usage) to the key-set usage it diversifies."""
M1_KEY_TYPES = {M1KeyType.A: MifareKeyType.A, M1KeyType.B: MifareKeyType.B}

_MF, _DF = 1, 2
_TSN_MASK = 0xFFFFFFFF


def _carries_data(apdu: bytes) -> bool:
    """Whether a short command APDU has a data field (cases 3 and 4): on T=0 its answer must wait for GET RESPONSE."""
    return len(apdu) > 5 and apdu[4] != 0


class SimPsam:
    """A 交通部 (T-Union) PSAM in software; implements :class:`sim.device.Device`.

    ``keyset`` holds the master keys (by usage and version); ``terminal_number`` is the 6-byte 终端机编号;
    ``key_index`` the byte the terminal reads from SFI 0x17 and sends in INITIALIZE; ``tsn`` the next terminal
    transaction serial. Master keys stay in ``keyset``: nothing here logs, shows or answers them.
    """

    def __init__(self, keyset: Keyset, terminal_number: bytes, *, key_index: int = 1, tsn: int = 0,
                 t0: bool = False, atr: bytes = DEFAULT_ATR, df: int = T_UNION_PSAM_DF) -> None:
        if not isinstance(terminal_number, bytes) or len(terminal_number) != TERMINAL_NUMBER_SIZE:
            raise ConfigError(f"PSAM terminal number: {TERMINAL_NUMBER_SIZE} bytes")
        if not 0 <= key_index <= 0xFF:
            raise ConfigError("PSAM key index: one byte")
        if not 0 <= tsn <= _TSN_MASK:
            raise ConfigError("PSAM TSN: 0 to FFFFFFFF")
        self.keyset = keyset
        self.terminal_number = terminal_number
        self.key_index = key_index
        self.tsn = tsn
        self.t0 = t0
        self.df = df
        self.internal_errors = 0
        self._activation = Activation("T=0", atr=atr)
        self._ta1 = Atr.parse(atr).ta1
        self._after_reset = False  # a PPS is taken only right after the ATR
        self._df_fci = Tlv.constructed(0x6F, Tlv.primitive(0x83, df.to_bytes(2, "big"))).to_bytes()
        self._upper_keys: dict[tuple[KeyUsage, int, tuple[bytes, ...]], CardKey] = {}
        self._selected = _MF
        self._session: tuple[SessionKey, int] | None = None  # 8070's session key and amount, for 8072
        self._des_key: BlockKey | None = None  # DES INIT's key, for DES CRYPT
        self._waiting: bytes | None = None  # T=0: response data waiting for GET RESPONSE

    # --- Device -----------------------------------------------------------------------------------------------------

    def power_on(self) -> Activation:
        """Reset: the MF is current again; the purchase session, DES INIT key and waiting data are gone."""
        self._selected = _MF
        self._session = None
        self._des_key = None
        self._waiting = None
        self._after_reset = True
        return self._activation

    def pps(self, request: bytes) -> bytes:
        """ISO 7816-3 PPS, right after the ATR: a request for T=0 at the rate of the ATR's TA1 (or the default one) is
        confirmed by echoing it; any other request, or one that comes later, is answered with the default rate."""
        after_reset, self._after_reset = self._after_reset, False
        try:
            protocol, ta1 = pps_parameters(request)
        except ProtocolError:
            return _DEFAULT_RATE_PPS
        if after_reset and protocol == 0 and ta1 in (self._ta1, DEFAULT_TA1):
            return request
        return _DEFAULT_RATE_PPS

    def execute(self, apdu: bytes) -> bytes:
        """Answer one command APDU; any input gets a status word."""
        self._after_reset = False
        try:
            if type(apdu) is not bytes:
                apdu = bytes(apdu)
            session, waiting = self._session, self._waiting
            command = parse_or_status(PSAM_COMMANDS.parse, apdu)
            if isinstance(command, int):
                self._session = self._waiting = None
                return status(command)
            if type(command) is GetResponse:
                return self._get_response(command, waiting)
            self._session = self._waiting = None  # anything but GET RESPONSE ends the session and drops waiting data
            answer = _HANDLERS[type(command)](self, command, session)
            if self.t0 and len(answer) > 2 and _carries_data(apdu) and answer[-2:] == OK:
                # T=0: a command that carried data cannot also receive data; the answer waits for GET RESPONSE
                self._waiting = answer[:-2]
                return status(bytes_waiting(len(self._waiting)))
            return answer
        except Exception:  # the device contract: a status word for anything; a bug is counted and logged
            self.internal_errors += 1
            log.exception("simulated PSAM: internal error on %s", describe_command(apdu))
            return status(PsamStatus.INTERNAL_ERROR)

    # --- handlers ---------------------------------------------------------------------------------------------------

    def _get_response(self, cmd: GetResponse, waiting: bytes | None) -> bytes:
        if waiting is None:
            return status(PsamStatus.CONDITIONS_NOT_SATISFIED)
        le = cmd.le
        if le == 256 or le == len(waiting):
            self._waiting = None
            return waiting + OK
        if le > len(waiting):
            return status(resend_with_le(len(waiting)))
        self._waiting = waiting[le:]
        return waiting[:le] + status(bytes_waiting(len(self._waiting)))

    def _select(self, cmd: SelectByFid | SelectByName, session: object) -> bytes:
        if isinstance(cmd, SelectByName):
            return status(PsamStatus.FILE_NOT_FOUND)
        if cmd.fid == MF_FID:
            self._selected = _MF
            return OK
        if cmd.fid == self.df:
            self._selected = _DF
            return OK if cmd.p2 == 0x0C else self._df_fci + OK
        return status(PsamStatus.FILE_NOT_FOUND)

    def _read_binary(self, cmd: ReadBinary, session: object) -> bytes:
        if cmd.sfi == SFI_TERMINAL_NUMBER and self._selected == _MF:
            return read_binary(self.terminal_number, cmd.offset, cmd.le)
        if cmd.sfi == SFI_KEY_INDEX and self._selected == _DF:
            return read_binary(bytes((self.key_index,)), cmd.offset, cmd.le)
        return status(PsamStatus.FILE_NOT_FOUND)

    def _card_key(self, usage: KeyUsage, version: int, factors: tuple[bytes, ...]) -> CardKey | None:
        """The card's key of ``usage`` for ``factors`` (lowest level first); None when the key set has no such key.

        Every level above the card's is kept, so a second card of the same issuer costs one diversification.
        """
        upper = factors[1:]
        cache_key = (usage, version, upper)
        key = self._upper_keys.get(cache_key)
        if key is None:
            try:
                key = self.keyset.master(usage, version)
            except ConfigError:
                return None
            if upper:
                key = diversify(key, *upper)
            self._upper_keys[cache_key] = key
        return diversify(key, factors[0])

    def _init_for_purchase(self, cmd: InitSamForPurchase, session: object) -> bytes:
        if self._selected != _DF:
            return status(PsamStatus.CONDITIONS_NOT_SATISFIED)
        try:
            algorithm = algorithm_for(cmd.algorithm_id)
        except ProtocolError:
            return status(PsamStatus.WRONG_DATA)
        if algorithm is not self.keyset.algorithm:
            return status(PsamStatus.WRONG_DATA)
        serial, issuer = cmd.card_serial, cmd.issuer_id
        factors = (serial,) if issuer is None else (serial, issuer)
        dpk = self._card_key(KeyUsage.PURCHASE, cmd.key_version, factors)
        if dpk is None:
            return status(PsamStatus.KEY_NOT_FOUND)
        tsn = self.tsn
        key = purchase_session_key(dpk, cmd.random, cmd.offline_atc, tsn)
        mac1 = purchase_mac1(key, cmd.amount, cmd.transaction_type, self.terminal_number, encode_datetime(cmd.when))
        answer = SAM_PURCHASE_RESPONSE.pack(tsn, mac1)
        self.tsn = (tsn + 1) & _TSN_MASK
        self._session = (key, cmd.amount)
        return answer + OK

    def _credit_for_purchase(self, cmd: CreditSamForPurchase, session: tuple[SessionKey, int] | None) -> bytes:
        if session is None:
            return status(PsamStatus.CONDITIONS_NOT_SATISFIED)
        key, amount = session
        return OK if macs_equal(purchase_mac2(key, amount), cmd.mac) else status(PsamStatus.MAC_INVALID)

    def _des_init(self, cmd: DesInit, session: object) -> bytes:
        usage = DES_USAGES.get(cmd.key_usage)  # type: ignore[call-overload]
        if usage is None:
            return status(PsamStatus.WRONG_P1P2)
        key = self._card_key(usage, cmd.key_version, cmd.factors)
        if key is None:
            return status(PsamStatus.KEY_NOT_FOUND)
        self._des_key = tac_key(key) if usage is KeyUsage.TAC else key
        return OK

    def _m1_sector_keys(self, cmd: M1SectorKeys, session: object) -> bytes:
        if self._selected != _DF:
            return status(PsamStatus.CONDITIONS_NOT_SATISFIED)
        key_type = M1_KEY_TYPES[M1KeyType(cmd.key_type)]
        try:
            keys = b"".join(self.keyset.m1_sector_key(key_type, cmd.uid, sector, cmd.key_version)
                            for sector in cmd.sectors)
        except ConfigError:
            return status(PsamStatus.KEY_NOT_FOUND)
        return keys + OK

    def _m1_purchase_mac(self, cmd: M1PurchaseMac, session: object) -> bytes:
        if self._selected != _DF:
            return status(PsamStatus.CONDITIONS_NOT_SATISFIED)
        key = self._card_key(KeyUsage.M1_TAC, cmd.key_version, (cmd.card_number,))
        if key is None:
            return status(PsamStatus.KEY_NOT_FOUND)
        tsn = self.tsn
        data = PURCHASE_MAC_DATA.pack(cmd.card_number, cmd.uid, cmd.counter, cmd.balance_before, cmd.amount,
                                      cmd.transaction_type, self.terminal_number, tsn, cmd.when)
        self.tsn = (tsn + 1) & _TSN_MASK
        return SAM_PURCHASE_RESPONSE.pack(tsn, purchase_mac(key, data)) + OK

    def _des_encrypt(self, cmd: DesEncrypt, session: object) -> bytes:
        key = self._des_key
        if key is None:
            return status(PsamStatus.CONDITIONS_NOT_SATISFIED)
        if isinstance(key, Sm4Key):
            return status(PsamStatus.NOT_SUPPORTED)
        return key.encrypt(cmd.data) + OK

    def _des_mac(self, cmd: DesMac, session: object) -> bytes:
        key = self._des_key
        if key is None:
            return status(PsamStatus.CONDITIONS_NOT_SATISFIED)
        if isinstance(key, Sm4Key):
            return status(PsamStatus.NOT_SUPPORTED)
        block = mac_block(key, cmd.data, iv=cmd.iv, pad=False)
        return (block if cmd.le == 8 else block[:4]) + OK


_HANDLERS: dict[type, Callable[..., bytes]] = {
    SelectByFid: SimPsam._select,
    SelectByName: SimPsam._select,
    ReadBinary: SimPsam._read_binary,
    InitSamForPurchase: SimPsam._init_for_purchase,
    CreditSamForPurchase: SimPsam._credit_for_purchase,
    DesInit: SimPsam._des_init,
    DesEncrypt: SimPsam._des_encrypt,
    DesMac: SimPsam._des_mac,
    M1SectorKeys: SimPsam._m1_sector_keys,
    M1PurchaseMac: SimPsam._m1_purchase_mac,
}


def demo_psam(terminal_number: bytes = bytes.fromhex("200041599997"), **options: object) -> SimPsam:
    """A PSAM holding the demo key set (test-only keys), with the spec's example terminal number by default."""
    return SimPsam(load_demo_keyset(), terminal_number, **options)  # type: ignore[arg-type]
