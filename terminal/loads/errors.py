"""How a load host refuses, and how reaching it fails: one code table for the host, its HTTP shell and the terminal.

A refusal (:class:`LoadRefused`) is the host's considered answer, with a code from :data:`STATUS`; an unreachable or
broken host (:class:`HostUnreachable`) gave none, so the terminal cannot know whether it authorized anything. Either
way the terminal sends the card nothing more, and the card is not credited.
"""

from __future__ import annotations

from protocols.errors import YktError

BAD_REQUEST = "bad_request"
UNAUTHORIZED = "unauthorized"
NOT_FOUND = "not_found"
METHOD_NOT_ALLOWED = "method_not_allowed"
BAD_MAC1 = "bad_mac1"
UNKNOWN_KEY = "unknown_key"
OVER_LIMIT = "over_limit"
REPLAY = "replay"
REQUEST_ID_REUSED = "request_id_reused"
BAD_TAC = "bad_tac"
NOT_CONFIRMABLE = "not_confirmable"

STATUS = {
    BAD_REQUEST: 400,  # malformed body: not JSON, a field missing, unknown, of the wrong size or out of range
    UNAUTHORIZED: 401,  # no known bearer token, or a request for another terminal number than the token's
    NOT_FOUND: 404,  # no such path, or no such load for this terminal
    METHOD_NOT_ALLOWED: 405,
    BAD_MAC1: 422,  # MAC1 does not verify under the card's load key: not a genuine card, or altered data
    UNKNOWN_KEY: 422,  # the host holds no load or TAC key of that key version
    OVER_LIMIT: 422,  # the amount is over the per-load limit, or the balance after it over the purse limit
    REPLAY: 409,  # the card's online counter was already used (or passed) by another request
    REQUEST_ID_REUSED: 409,  # the request id was used before for another load request
    BAD_TAC: 409,  # the TAC does not verify: the load is flagged for investigation
    NOT_CONFIRMABLE: 409,  # the load is void or flagged: no TAC changes that
}
"""Every refusal code and its HTTP status."""


class LoadHostError(YktError):
    """The load host did not authorize or confirm a load."""


class LoadRefused(LoadHostError):
    """The host refused, with a ``code`` of :data:`STATUS` and a ``message`` for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"load host refused ({code}): {message}")
        self.code = code
        self.reason = message

    @property
    def status(self) -> int:
        return STATUS.get(self.code, 400)


class HostUnreachable(LoadHostError):
    """The host could not be reached, did not answer in time, or answered something that is not an answer."""
