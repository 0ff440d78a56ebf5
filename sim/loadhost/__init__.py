"""The issuer's load host: the in-process service, its SQLite ledger, its terminals file and its HTTP shell.

:func:`open_service` builds a host from files, or from the demo key set and the demo terminals (test only).
"""

from __future__ import annotations

import os
from pathlib import Path

from terminal.clock import Clock
from terminal.keyset import load_keyset

from .ledger import LedgerError, LedgerLoad, LedgerState, LoadLedger
from .server import LoadHostServer
from .service import CardKeys, InProcessLoadHost, LoadHostService
from .terminals import DEMO_TERMINALS, Limits, RegisteredTerminal, Terminals, load_terminals


def open_service(ledger: str | os.PathLike[str], *, keys: str | os.PathLike[str] | None = None,
                 terminals: str | os.PathLike[str] | None = None, clock: Clock | None = None) -> LoadHostService:
    """A load host on the ledger file ``ledger`` (created if absent), with the key set and terminals files given, or
    the demo key set and the demo terminals (test-only) when they are not."""
    from sim.issuing import DEMO_KEYSET

    keyset = load_keyset(Path(keys) if keys is not None else DEMO_KEYSET)
    registry = load_terminals(Path(terminals) if terminals is not None else DEMO_TERMINALS)
    return LoadHostService(keyset, LoadLedger(ledger), registry, clock=clock)


__all__ = [
    "DEMO_TERMINALS", "CardKeys", "InProcessLoadHost", "LedgerError", "LedgerLoad", "LedgerState", "Limits",
    "LoadHostServer", "LoadHostService", "LoadLedger", "RegisteredTerminal", "Terminals", "load_terminals",
    "open_service",
]
