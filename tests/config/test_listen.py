"""The one ``HOST:PORT`` parser (controller/config/listen.py): the site file's checks, the servers
and the clients read every listen address through it."""

from __future__ import annotations

import pytest

from controller.config.listen import is_fixed_address, local_url, parse_listen


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("[::1]:8080", ("::1", 8080)),
        ("[::ffff:10.0.0.1]:80", ("::ffff:10.0.0.1", 80)),
        (":8080", ("", 8080)),
        ("depot-pc.local:65535", ("depot-pc.local", 65535)),
    ],
)
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen, "api.listen") == expected


@pytest.mark.parametrize(
    ("listen", "reason"),
    [
        ("8080", "expected HOST:PORT"),
        ("host:port", "is not a number"),
        ("host:+80", "is not a number"),
        ("host: 80", "is not a number"),
        ("host:", "is not a number"),
        ("127.0.0.1:70000", "out of range"),
        ("::1:8080", "brackets"),
        ("a b:80", "not a host name or address"),
        ("[::1:80", "brackets"),
    ],
)
def test_parse_listen_rejects_naming_the_setting(listen: str, reason: str) -> None:
    with pytest.raises(ValueError, match=r"^ocpp\.listen ") as exc:
        parse_listen(listen, "ocpp.listen")
    assert reason in str(exc.value)


@pytest.mark.parametrize(
    ("listen", "fixed"),
    [("127.0.0.1:8080", True), ("[::1]:8080", True), ("0.0.0.0:9000", True), (":8080", False),
     ("127.0.0.1:0", False), ("127.0.0.1", False), ("127.0.0.1:x", False)],
)
def test_a_site_file_names_a_host_and_a_port(listen: str, fixed: bool) -> None:
    assert is_fixed_address(listen, "api.listen") is fixed


def test_local_url_reaches_a_wildcard_over_loopback() -> None:
    assert local_url("", 8080) == "http://127.0.0.1:8080"
    assert local_url("::", 80) == "http://[::1]:80"
    assert local_url("depot-pc", 80) == "http://depot-pc:80"
