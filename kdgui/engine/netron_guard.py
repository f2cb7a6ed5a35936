"""The checks in front of Netron's HTTP handler: loopback ``Host`` names only, bounded URLs.

Netron's own server answers any ``Host`` header. A web page elsewhere can point a name it
controls at 127.0.0.1 (DNS rebinding) and then read the model through the victim's browser;
such requests carry the foreign name in ``Host``, so only ``127.0.0.1``, ``localhost`` and
``[::1]`` (any port) are answered here and everything else gets 403. Request targets over
:data:`MAX_URL` characters get 414, and a client hanging up mid-request is logged at debug level
instead of socketserver's traceback on stderr.
"""

from __future__ import annotations

import http.server
import logging
from typing import Any

#: Host names (``Host`` header, port removed) the server answers; any other gets 403.
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})
#: Longest request target answered; longer ones get 414 (Netron's own URLs are short).
MAX_URL = 8192
_log = logging.getLogger(__name__)


def host_is_loopback(header: str | None) -> bool:
    """True for a ``Host`` header naming this machine's loopback (with or without a port).

    A missing header (HTTP/1.0 tools) is accepted: browsers, which DNS rebinding abuses,
    always send one.
    """
    if header is None:
        return True
    host = header.strip().lower()
    if host.startswith("["):
        name, _, rest = host.partition("]")
        name += "]"
        port = rest[1:] if rest.startswith(":") else rest
    else:
        name, _, port = host.partition(":")
    if port and not (port.isdigit() and len(port) <= 5):
        return False
    return name in LOOPBACK_NAMES


def _guarded_handler(base: type[http.server.BaseHTTPRequestHandler]) -> type:
    """Netron's request handler behind a Host and URL-length check.

    A class per server, so its ``content`` (the model served) is its own: netron keeps it on
    its one shared handler class, which a second server would overwrite.
    """

    class Guarded(base):  # type: ignore[misc, valid-type]
        content = getattr(base, "content", None)

        def parse_request(self) -> bool:
            if not super().parse_request():
                return False
            if len(self.path) > MAX_URL:
                self.send_error(414, "URI Too Long")
                return False
            if not host_is_loopback(self.headers.get("Host")):
                self.send_error(403, "Forbidden: this server answers loopback names only")
                return False
            return True

        def log_message(self, format: str, *args: Any) -> None:
            _log.debug("netron: " + format, *args)

    return Guarded


def _quiet_errors(request: Any, client_address: Any) -> None:
    """socketserver prints a traceback to stderr for a client that hangs up mid-request."""
    _log.debug("netron: request from %s failed", client_address, exc_info=True)


def guard(address: tuple[str, int]) -> None:
    """Put the guarded handler on the netron server listening at ``address``."""
    from netron import server as netron_server

    for thread in netron_server._threads(address):
        srv = thread.server
        srv.RequestHandlerClass = _guarded_handler(srv.RequestHandlerClass)
        srv.handle_error = _quiet_errors


