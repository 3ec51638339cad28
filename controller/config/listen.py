"""``HOST:PORT`` listen addresses (``ocpp.listen``, ``api.listen``, ``metrics.listen``), parsed one way.

:func:`parse_listen` is the one parser: the site file's checks, the OCPP, API and metrics servers
and the command-line clients all read an address through it. :func:`local_url` is how a client on
this machine reaches a server bound to such an address.
"""

from __future__ import annotations

import re

_PORT = re.compile(r"[0-9]{1,5}")
_LOOPBACK = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def parse_listen(listen: str, what: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` / ``"[::1]:8080"`` / ``":8080"`` → ``(host, port)``; host ``""`` = every
    address, port 0 = any free port. Raises ``ValueError`` naming ``what`` (e.g. ``api.listen``)."""
    host, sep, port_text = listen.rpartition(":")
    if not sep:
        raise ValueError(f"{what} {listen!r}: expected HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{what} {listen!r}: write an IPv6 address in brackets, e.g. [::1]:8080")
    if any(c.isspace() or c in "[]" for c in host):
        raise ValueError(f"{what} {listen!r}: {host!r} is not a host name or address")
    if not _PORT.fullmatch(port_text):
        raise ValueError(f"{what} {listen!r}: port {port_text!r} is not a number")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"{what} {listen!r}: port {port} out of range 0..65535")
    return host, port


def is_fixed_address(listen: str, what: str) -> bool:
    """Whether ``listen`` names a host and a port of its own (what a site file must give: no
    wildcard-by-omission ``:8080``, no ``:0``)."""
    try:
        host, port = parse_listen(listen, what)
    except ValueError:
        return False
    return bool(host) and port > 0


def local_url(host: str, port: int) -> str:
    """``http://HOST:PORT`` to reach a server bound to ``host`` from this machine: a wildcard
    (``""``, ``0.0.0.0``, ``::``) becomes the loopback address of its family."""
    host = _LOOPBACK.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
