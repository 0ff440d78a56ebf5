"""Loading value onto cards (圈存): the load terminal, its journal, and the load host it asks for MAC2."""

from .errors import STATUS, HostUnreachable, LoadHostError, LoadRefused
from .host import LoadHost
from .http import HttpLoadHost
from .journal import LoadEntry, LoadJournal, LoadJournalError, LoadRecord, LoadState
from .messages import LoadAuthorization, LoadConfirmation, LoadRequest
from .terminal import LoadOutcome, LoadStatus, LoadTerminal

__all__ = [
    "STATUS", "HostUnreachable", "HttpLoadHost", "LoadAuthorization", "LoadConfirmation", "LoadEntry", "LoadHost",
    "LoadHostError", "LoadJournal", "LoadJournalError", "LoadOutcome", "LoadRecord", "LoadRefused", "LoadRequest",
    "LoadState", "LoadStatus", "LoadTerminal",
]
