"""The load host as a load terminal sees it: two calls (:class:`LoadHost`).

The terminal holds no load key: the issuer's host checks the card's MAC1 under the card's load key and answers the
MAC2 the card takes in CREDIT FOR LOAD; the terminal then hands it the card's TAC. Implementations:
:class:`terminal.loads.http.HttpLoadHost` (the host over HTTP) and the simulator's in-process host
(:class:`sim.loadhost.InProcessLoadHost`), which the HTTP service wraps. How they fail: :mod:`terminal.loads.errors`.
"""

from __future__ import annotations

from typing import Protocol

from .messages import LoadAuthorization, LoadConfirmation, LoadRequest


class LoadHost(Protocol):
    """The issuer's load host, as one load terminal (one token) reaches it."""

    def authorize(self, request: LoadRequest) -> LoadAuthorization:
        """Check MAC1 and the limits, record the load, answer MAC2; :class:`LoadRefused` or
        :class:`HostUnreachable` otherwise. The same ``request_id`` again gets the same answer."""

    def confirm(self, load_id: int, tac: bytes) -> LoadConfirmation:
        """Hand the card's TAC for a load; a wrong TAC is refused (``bad_tac``) and flags the load."""
