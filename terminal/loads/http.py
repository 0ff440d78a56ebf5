"""The load host over HTTP (docs/load-host.md), with the standard library's ``http.client``: two small JSON calls need
no more.

Every call has a timeout. A refusal (a 4xx answer with the host's ``{"error", "message"}`` body) is a
:class:`~terminal.loads.errors.LoadRefused` with the host's code; anything else that is not a good answer (no
connection, no answer in time, a 5xx, a body that is not the answer) is
:class:`~terminal.loads.errors.HostUnreachable`, naming the host and what happened. The token is sent as
``Authorization: Bearer TOKEN`` and appears in no message.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from typing import Any

from protocols.errors import YktError
from terminal.errors import ConfigError
from terminal.jsondoc import FieldError

from .errors import HostUnreachable, LoadRefused
from .messages import (
    LoadAuthorization, LoadConfirmation, LoadRequest, authorization_from_json, confirmation_from_json, decode, encode,
    request_to_json,
)

DEFAULT_TIMEOUT_S = 5.0
_MAX_ANSWER = 64 * 1024


class HttpLoadHost:
    """A load host at ``url`` (``http://host:port``, or ``https://``), reached as the terminal that ``token`` names."""

    def __init__(self, url: str, token: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        parsed = urllib.parse.urlsplit(url)
        host = parsed.hostname
        if parsed.scheme not in ("http", "https") or not host:
            raise ConfigError(f"load host URL {url!r}: expected http://HOST[:PORT] or https://HOST[:PORT]")
        try:
            self._port = parsed.port  # a bad port raises here
        except ValueError as exc:
            raise ConfigError(f"load host URL {url!r}: {exc}") from None
        if not token or any(ch.isspace() for ch in token):
            raise ConfigError("the load host token must be non-empty text without spaces")
        self.url = url.rstrip("/")
        self._https = parsed.scheme == "https"
        self._host = host
        self._prefix = parsed.path.rstrip("/")
        self._token = token
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"HttpLoadHost({self.url!r})"

    def authorize(self, request: LoadRequest) -> LoadAuthorization:
        answer = self._post("/v1/loads", request_to_json(request))
        return self._read(answer, authorization_from_json)

    def confirm(self, load_id: int, tac: bytes) -> LoadConfirmation:
        answer = self._post(f"/v1/loads/{load_id}/confirm", {"tac": tac.hex().upper()})
        return self._read(answer, confirmation_from_json)

    # -- one call -----------------------------------------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return kind(self._host, self._port, timeout=self.timeout)

    def _post(self, path: str, document: dict[str, Any]) -> Any:
        body = encode(document)
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "Authorization": f"Bearer {self._token}"}
        connection = self._connection()
        try:
            connection.request("POST", self._prefix + path, body, headers)
            response = connection.getresponse()
            status = response.status
            raw = response.read(_MAX_ANSWER + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise HostUnreachable(f"load host {self.url} unreachable: {_reason(exc)}") from None
        finally:
            connection.close()
        if len(raw) > _MAX_ANSWER:
            raise HostUnreachable(f"load host {self.url}: answer of more than {_MAX_ANSWER} bytes")
        try:
            document = decode(raw)
        except LoadRefused as exc:
            raise HostUnreachable(f"load host {self.url} answered HTTP {status} with {exc.reason}") from None
        if 400 <= status < 500 and isinstance(document, dict) and isinstance(document.get("error"), str):
            raise LoadRefused(document["error"], str(document.get("message", "")))
        if status != 200:
            raise HostUnreachable(f"load host {self.url} answered HTTP {status}: {_shown(document)}")
        return document

    def _read(self, document: Any, reader: Any) -> Any:
        try:
            return reader(document)
        except (FieldError, YktError) as exc:
            raise HostUnreachable(f"load host {self.url} answered something else than an answer: {exc}") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the connection closed without an answer"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text


def _shown(document: Any) -> str:
    text = json.dumps(document, ensure_ascii=False)
    return text if len(text) <= 200 else text[:200] + "..."
