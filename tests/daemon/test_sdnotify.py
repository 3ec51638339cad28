from __future__ import annotations

import socket
from pathlib import Path

from controller.daemon.sdnotify import Notifier


def test_without_systemd_every_call_is_a_quiet_no_op() -> None:
    n = Notifier({})
    assert not n.enabled
    assert n.ready() is False and n.watchdog() is False


def test_messages_reach_the_notify_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.settimeout(5)
        n = Notifier({"NOTIFY_SOCKET": path})
        assert n.ready("first good cycle")
        assert server.recv(4096) == b"READY=1\nSTATUS=first good cycle"
        assert n.watchdog()
        assert server.recv(4096) == b"WATCHDOG=1"
        assert n.stopping()
        assert server.recv(4096) == b"STOPPING=1"


def test_abstract_namespace_address(tmp_path: Path) -> None:
    name = f"depotctl-test-{tmp_path.name}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        server.settimeout(5)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).status("planning")
        assert server.recv(4096) == b"STATUS=planning"


def test_a_vanished_socket_is_not_an_error(tmp_path: Path) -> None:
    assert Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}).watchdog() is False
