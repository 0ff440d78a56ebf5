"""The purse cryptography: DES/3DES/SM4 keys, PBOC MACs, key diversification, session keys, MAC1/MAC2/TAC."""

from .ciphers import BlockKey, DesKey, Sm4Key, TdesKey
from .keys import diversify, serial_factor
from .mac import line_protection_mac, mac_block, macs_equal, pboc_mac
from .padding import pad, unpad
from .purse import (ALG_ID_SM4, ALG_ID_TDES, SM4_LOAD_PAD, SM4_PURCHASE_PAD, Algorithm, CardKey, SessionKey,
                    algorithm_for, load_mac1, load_mac2, load_session_key, load_tac, purchase_mac1, purchase_mac2,
                    purchase_session_key, purchase_tac, tac_key)

__all__ = [
    "ALG_ID_SM4", "ALG_ID_TDES", "SM4_LOAD_PAD", "SM4_PURCHASE_PAD",
    "Algorithm", "BlockKey", "CardKey", "DesKey", "SessionKey", "Sm4Key", "TdesKey",
    "algorithm_for", "diversify", "line_protection_mac", "load_mac1", "load_mac2", "load_session_key", "load_tac",
    "mac_block", "macs_equal", "pad", "pboc_mac", "purchase_mac1", "purchase_mac2", "purchase_session_key",
    "purchase_tac", "serial_factor", "tac_key", "unpad",
]
