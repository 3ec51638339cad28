"""``HOST:PORT`` listen addresses of the daemon's servers (API, metrics), parsed one way."""

from __future__ import annotations


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
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{what} {listen!r}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{what} {listen!r}: port {port} out of range 0..65535")
    return host, port
