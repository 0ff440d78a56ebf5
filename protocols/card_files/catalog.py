"""Where each file of the T-Union purse application lives and how big it is.

A validator reads 0x15 and 0x17 whole, the logs record by record, and writes 0x1A and 0x1E through UPDATE CAPP DATA
CACHE; these numbers are what those APDUs carry (SFI in P1/P2, sizes in Le/Lc) and what a simulated card allocates.
"""

from __future__ import annotations

# Transparent file: issuer, serial, validity. The FCI of SELECT carries the same 30 bytes in tag 9F0C.
SFI_PUBLIC_APP_INFO = 0x15
PUBLIC_APP_INFO_SIZE = 30

# Transparent file: personal data (layout UNCONFIRMED).
SFI_CARDHOLDER = 0x16
CARDHOLDER_SIZE = 55

# Transparent file: region codes, interoperability class, card type.
SFI_MANAGEMENT = 0x17
MANAGEMENT_SIZE = 60

# Cyclic file the card writes itself on every debit and load; record 1 is the newest.
SFI_TRANSACTION_LOG = 0x18
TRANSACTION_LOG_RECORD_SIZE = 23
TRANSACTION_LOG_RECORDS = 10

# Variable-length record file of the composite application; T-Union records are 128 bytes, one per record id.
SFI_PROCESS = 0x1A
PROCESS_RECORD_SIZE = 128

# Cyclic file the terminal appends to on every composite purchase; record 1 is the newest.
SFI_TRANSIT_LOG = 0x1E
TRANSIT_RECORD_SIZE = 48
TRANSIT_RECORDS = 30
