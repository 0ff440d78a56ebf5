"""The load host over HTTP: a thin shell on :class:`~sim.loadhost.service.LoadHostService` (docs/load-host.md).

The standard library's ``ThreadingHTTPServer`` serves each connection on a thread of its own; the service serializes
what must be serialized. This layer only routes, reads the bearer token and the JSON body, and turns the service's
answers and refusals into JSON with their HTTP status. A failure of the ledger is ``500`` ``internal_error`` (the
request may be retried with the same request id); nothing else escapes as a traceback to the client. Requests are
logged in one line each (address, method, path, status), never with their headers: the token stays out of logs.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from protocols.errors import YktError
from terminal.loads.errors import BAD_REQUEST, METHOD_NOT_ALLOWED, NOT_FOUND, LoadRefused
from terminal.loads.messages import (
    authorization_to_json, confirmation_to_json, decode, encode, request_from_json, tac_from_json,
)

from .service import LoadHostService, refusal_json

MAX_BODY = 16 * 1024
_CONFIRM = re.compile(r"/v1/loads/([1-9][0-9]{0,18})/confirm")
_LOADS = "/v1/loads"
log = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    server: LoadHostServer
    protocol_version = "HTTP/1.1"
    timeout = 10  # seconds a connection may stay silent (a stop waits at most that long for an idle one)
    server_version = "yikatong-loadhost"
    sys_version = ""

    def do_POST(self) -> None:  # the standard library's name
        path = self.path.split("?", 1)[0]
        service = self.server.service
        try:
            match = _CONFIRM.fullmatch(path)
            if path != _LOADS and match is None:
                raise LoadRefused(NOT_FOUND, f"no such resource {path}")
            token = self._token()
            service.authenticate(token)  # before the body is read: a stranger learns nothing of the API
            if match is None:
                request = request_from_json(decode(self._body()))
                self._send(200, authorization_to_json(service.authorize(token, request)))
                return
            tac = tac_from_json(decode(self._body()))
            self._send(200, confirmation_to_json(service.confirm(token, int(match.group(1)), tac)))
        except LoadRefused as refusal:
            self._refuse(refusal)
        except YktError as exc:
            log.error("load host: %s", exc)
            self._send(500, {"error": "internal_error", "message": str(exc)})
        except Exception:  # a bug: logged for the operator, a plain 500 for the client, the service goes on
            log.exception("load host: internal error on %s %s", self.command, path)
            self._send(500, {"error": "internal_error", "message": "internal error"})

    def _other_method(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == _LOADS or _CONFIRM.fullmatch(path):
            self._refuse(LoadRefused(METHOD_NOT_ALLOWED, f"{self.command} is not allowed here; use POST"),
                         {"Allow": "POST"})
        else:
            self._refuse(LoadRefused(NOT_FOUND, f"no such resource {path}"))

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = _other_method

    def _token(self) -> str | None:
        value = self.headers.get("Authorization", "")
        scheme, _, token = value.strip().partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise LoadRefused(BAD_REQUEST, "chunked bodies are not taken: send Content-Length")
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise LoadRefused(BAD_REQUEST, "Content-Length is required")
        size = int(length)
        if size > MAX_BODY:
            raise _TooLarge(BAD_REQUEST, f"the body is {size} bytes, at most {MAX_BODY} are taken")
        body = self.rfile.read(size)
        if len(body) != size:
            raise LoadRefused(BAD_REQUEST, f"the body ended after {len(body)} of {size} bytes")
        return body

    def _refuse(self, refusal: LoadRefused, headers: dict[str, str] | None = None) -> None:
        extra = dict(headers or {})
        extra["Connection"] = "close"  # the body may be unread: the connection cannot carry another request
        status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE if isinstance(refusal, _TooLarge) else refusal.status
        if status == 401:
            extra["WWW-Authenticate"] = 'Bearer realm="yikatong load host"'
        self._send(status, refusal_json(refusal), extra)

    def _send(self, status: int, document: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        body = encode(document)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.server.log(f"{self.client_address[0]} {self.command} {self.path.split('?', 1)[0]} {int(code)}")

    def log_message(self, format: str, *args: Any) -> None:  # the standard library's signature
        self.server.log(f"{self.client_address[0]} {format % args}")


class _TooLarge(LoadRefused):
    """A body over :data:`MAX_BODY`: ``bad_request`` with status 413."""


class LoadHostServer(ThreadingHTTPServer):
    """The HTTP service on ``address`` (``("127.0.0.1", 0)``: a free port). :meth:`start` serves on a thread (tests);
    :meth:`serve_forever` serves on the caller's thread until :meth:`shutdown`. ``log`` receives one line a request."""

    daemon_threads = False  # server_close waits for the requests in progress (block_on_close)

    def __init__(self, service: LoadHostService, address: tuple[str, int] = ("127.0.0.1", 8760), *,
                 log: Callable[[str], None] | None = None) -> None:
        self.service = service
        self.log = log or (lambda line: None)
        self._thread: threading.Thread | None = None
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), self.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def start(self) -> LoadHostServer:
        self._thread = threading.Thread(target=self.serve_forever, name="load host", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (from another thread than the serving one) and close the socket."""
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join()
