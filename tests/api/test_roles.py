"""Who may do what: every role × every endpoint against a real daemon, one request per cell.

The daemon runs in-process in a thread of its own (its own event loop, real uvicorn on a free
loopback port, storage in tmp, no rig: the meters are stale and it stays in fail-safe, which the
API does not mind). The requests go out with urllib from the test thread, so they never block the
loop that serves them.

The first part of this module is the support the other fleet-API tests share (``fleet_site``,
``live_daemon``, ``call``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.api.auth import ANONYMOUS, Auth, AuthError, TokensFileError
from controller.chargers.clock import Clock
from controller.config.loader import load_site
from controller.daemon.core import Daemon, DaemonOptions
from controller.fleet.tokens import token_sha256
from hil.rig import free_port
from tests.daemon.clocks import PINNED_AT, TZ, pinned_clock, tomorrow_at

DEMO = Path(__file__).resolve().parents[2] / "config" / "demo-site.yaml"
START_TIMEOUT_S = 20.0
__all__ = ["PINNED_AT", "TZ", "pinned_clock", "tomorrow_at"]  # the clocks, for the other fleet-API tests

# --- support shared by the fleet-API tests ------------------------------------------------------------

TOKENS: dict[str, str] = {
    "viewer": "viewer-token-0123456789",
    "fleet-acme": "acme-token-0123456789",  # tenant acme: VAN-01, VAN-02
    "fleet-bus": "bus-token-0123456789",  # vehicles: [BUS-01]
    "admin": "admin-token-0123456789",
}
TENANTS = {"VAN-01": "acme", "VAN-02": "acme", "BUS-01": "citybus"}  # VAN-03 has none


def write_tokens(path: Path, tokens: dict[str, str] = TOKENS) -> Path:
    """A tokens file for ``tokens`` (name → token; the role and scope follow from the name)."""
    entries: list[dict[str, Any]] = []
    for name, token in tokens.items():
        role = name.split("-")[0]
        entry: dict[str, Any] = {"name": name, "role": role, "token_sha256": token_sha256(token)}
        if name == "fleet-acme":
            entry["tenant"] = "acme"
        elif name == "fleet-bus":
            entry["vehicles"] = ["BUS-01"]
        entries.append(entry)
    path.write_text(yaml.safe_dump(entries, sort_keys=False))
    return path


def fleet_site(tmp: Path, *, tokens: bool = True, plan_every_s: float = 2.0) -> Path:
    """The demo site with tenants on its vehicles, free loopback ports, storage in ``tmp`` and the
    meters pointed at a port nobody listens on; with ``tokens``, a tokens file of :data:`TOKENS`."""
    data = yaml.safe_load(DEMO.read_text())
    dead = free_port()
    for meter in data["meters"]:
        meter["modbus"]["port"] = dead
    data["ocpp"]["listen"] = f"127.0.0.1:{free_port()}"
    data["api"] = {"listen": f"127.0.0.1:{free_port()}"}
    if tokens:
        data["api"]["tokens_file"] = str(write_tokens(tmp / "tokens.yaml"))
    data["metrics"]["listen"] = f"127.0.0.1:{free_port()}"
    data["storage"]["path"] = str(tmp / "depot.db")
    data["control"]["plan_every_s"] = plan_every_s
    for vehicle in data["vehicles"]:
        if vehicle["id"] in TENANTS:
            vehicle["tenant"] = TENANTS[vehicle["id"]]
    path = tmp / "site.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    load_site(path)  # fails early on a bad edit
    return path


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    base: str,
    method: str,
    path: str,
    *,
    token: str | None = None,
    json_body: Any = None,
    data: bytes | None = None,
    content_type: str | None = None,
    timeout_s: float = 10.0,
) -> Answer:
    """One HTTP request with urllib (blocking: call it from a thread other than the server's loop)."""
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if json_body is not None:
        data = json.dumps(json_body).encode()
        content_type = content_type or "application/json"
    if content_type is not None:
        headers["Content-Type"] = content_type
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with opener.open(request, timeout=timeout_s) as response:
            return Answer(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return Answer(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())


@dataclass
class Live:
    """A daemon running in a thread of its own: ``url`` of its API, ``run`` to call into its loop."""

    daemon: Daemon
    loop: asyncio.AbstractEventLoop
    url: str
    site_path: Path

    def now(self) -> datetime:
        """The daemon's clock, site-local (tests take "now" from here, never from the wall clock)."""
        return self.daemon.clock().astimezone(TZ)

    def run(self, coro: Any, timeout_s: float = 10.0) -> Any:
        """Run a coroutine in the daemon's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Answer:
        return call(self.url, method, path, token=token, **kwargs)


@contextlib.contextmanager
def live_daemon(site_path: Path, clock: Clock | None = None) -> Iterator[Live]:
    """Run the daemon for ``site_path`` in a background thread until the block ends (bounded waits);
    its clock is ``clock``, by default one pinned at :data:`PINNED_AT`."""
    site = load_site(site_path).site
    options = DaemonOptions(clock=clock or pinned_clock(), handle_signals=False, serve_metrics=False)
    daemon = Daemon(site, site_path, options)
    loops: list[asyncio.AbstractEventLoop] = []
    failed: list[BaseException] = []

    def main() -> None:
        async def run() -> None:
            loops.append(asyncio.get_running_loop())
            await daemon.run()

        try:
            asyncio.run(run())
        except BaseException as exc:  # reported to the test below
            failed.append(exc)

    thread = threading.Thread(target=main, name="depotctl-test-daemon", daemon=True)
    thread.start()
    host, _, port = site.api.listen.rpartition(":")
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if failed:
            raise AssertionError(f"the daemon did not start: {failed[0]!r}") from failed[0]
        with contextlib.suppress(OSError):
            if call(url, "GET", "/openapi.json", timeout_s=2).status == 200:
                break
        if time.monotonic() > deadline:
            raise AssertionError(f"the daemon's API did not answer within {START_TIMEOUT_S:g} s")
        time.sleep(0.05)
    try:
        yield Live(daemon, loops[0], url, site_path)
    finally:
        loops[0].call_soon_threadsafe(daemon.request_stop)
        thread.join(15)
        assert not thread.is_alive(), "the daemon did not stop within 15 s"


# --- the matrix -------------------------------------------------------------------------------------------

ROLES = ("none", "bad", "viewer", "fleet-acme", "fleet-bus", "admin")
OWN = {"none": "VAN-01", "bad": "VAN-01", "viewer": "VAN-01", "fleet-acme": "VAN-01", "fleet-bus": "BUS-01",
       "admin": "VAN-02"}
"""Per role, a vehicle it may write (if its role may write at all)."""
FOREIGN = {"none": "BUS-01", "bad": "BUS-01", "viewer": "BUS-01", "fleet-acme": "BUS-01", "fleet-bus": "VAN-02",
           "admin": "BUS-01"}
"""Per role, a vehicle outside a fleet token's scope (viewer and admin see every vehicle)."""


def _token(role: str) -> str | None:
    return None if role == "none" else "not-a-token" if role == "bad" else TOKENS[role]


def _request(endpoint: str, role: str) -> tuple[str, str, dict[str, Any]]:
    own, foreign = OWN[role], FOREIGN[role]
    departure = {"at": tomorrow_at(5, 30), "energy_kwh": 20}
    csv = f"vehicle,days,at,energy_kwh\n{own},mon-fri,06:15,30\n".encode()
    table: dict[str, tuple[str, str, dict[str, Any]]] = {
        "status": ("GET", "/api/v1/status", {}),
        "chargers": ("GET", "/api/v1/chargers", {}),
        "sessions": ("GET", "/api/v1/sessions", {}),
        "sessions-history": ("GET", "/api/v1/sessions?active=false", {}),
        "vehicles": ("GET", "/api/v1/vehicles", {}),
        "vehicle-own": ("GET", f"/api/v1/vehicles/{own}", {}),
        "vehicle-foreign": ("GET", f"/api/v1/vehicles/{foreign}", {}),
        "depart-own": ("PUT", f"/api/v1/vehicles/{own}/departure", {"json_body": departure}),
        "depart-foreign": ("PUT", f"/api/v1/vehicles/{foreign}/departure", {"json_body": departure}),
        "undepart-own": ("DELETE", f"/api/v1/vehicles/{own}/departure", {}),
        "undepart-foreign": ("DELETE", f"/api/v1/vehicles/{foreign}/departure", {}),
        "schedules": ("GET", "/api/v1/schedules", {}),
        "schedules-put-own": (
            "PUT", "/api/v1/schedules", {"json_body": [{"vehicle": own, "days": "mon-fri", "at": "06:30",
                                                        "energy_kwh": 30}]},
        ),
        "schedules-put-foreign": (
            "PUT", "/api/v1/schedules", {"json_body": [{"vehicle": foreign, "days": "sat", "at": "08:00",
                                                        "energy_kwh": 30}]},
        ),
        "schedules-delete": ("DELETE", "/api/v1/schedules", {}),
        "schedules-import": ("POST", "/api/v1/schedules/import", {"data": csv, "content_type": "text/csv"}),
        "assign-own": ("PUT", "/api/v1/chargers/CP03/vehicle", {"json_body": {"vehicle": own}}),
        "assign-foreign": ("PUT", "/api/v1/chargers/CP03/vehicle", {"json_body": {"vehicle": foreign}}),
        "report": ("GET", "/api/v1/reports/daily", {}),
        "report-csv": ("GET", "/api/v1/reports/daily?format=csv", {}),
        "openapi": ("GET", "/openapi.json", {}),
        "page": ("GET", "/", {}),
    }
    return table[endpoint]


_R = (401, 401, 200, 200, 200, 200)  # any token reads
_W = (401, 401, 403, 200, 200, 200)  # fleet and admin write
_X = (401, 401, 403, 404, 404, 200)  # a write to a vehicle outside a fleet token's scope: as if unknown
EXPECTED: dict[str, tuple[int, ...]] = {  # columns: ROLES
    "status": _R,
    "chargers": _R,
    "sessions": _R,
    "sessions-history": _R,
    "vehicles": _R,
    "vehicle-own": _R,
    "vehicle-foreign": (401, 401, 200, 404, 404, 200),
    "depart-own": _W,
    "depart-foreign": _X,
    "undepart-own": _W,
    "undepart-foreign": _X,
    "schedules": _R,
    "schedules-put-own": _W,
    "schedules-put-foreign": (401, 401, 403, 422, 422, 200),  # a body field: "unknown vehicle"
    "schedules-delete": _W,
    "schedules-import": _W,
    "assign-own": _W,
    "assign-foreign": _X,
    "report": _R,
    "report-csv": _R,
    "openapi": (200,) * 6,
    "page": (200,) * 6,
}
CELLS = [(endpoint, role, codes[i]) for endpoint, codes in EXPECTED.items() for i, role in enumerate(ROLES)]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_daemon(fleet_site(tmp_path_factory.mktemp("roles"))) as running:
        yield running


@pytest.mark.parametrize(("endpoint", "role", "expected"), CELLS, ids=[f"{e}-{r}" for e, r, _ in CELLS])
def test_role_matrix(live: Live, endpoint: str, role: str, expected: int) -> None:
    method, path, kwargs = _request(endpoint, role)
    answer = live.call(method, path, _token(role), **kwargs)
    assert answer.status == expected, (method, path, role, answer.body[:300])
    if answer.status == 401:
        assert answer.headers["www-authenticate"].startswith("Bearer")
    if answer.status in (401, 403, 404):
        assert isinstance(answer.json()["detail"], str) and answer.json()["detail"]


def test_a_foreign_vehicle_is_answered_like_an_unknown_one(live: Live) -> None:
    foreign = live.call("GET", "/api/v1/vehicles/BUS-01", TOKENS["fleet-acme"])
    unknown = live.call("GET", "/api/v1/vehicles/NOPE-99", TOKENS["fleet-acme"])
    assert (foreign.status, unknown.status) == (404, 404)
    assert foreign.json()["detail"].replace("BUS-01", "X") == unknown.json()["detail"].replace("NOPE-99", "X")


def test_lists_are_limited_to_the_tokens_vehicles(live: Live) -> None:
    def ids(role: str) -> list[str]:
        return [v["id"] for v in live.call("GET", "/api/v1/vehicles", TOKENS[role]).json()]

    assert ids("viewer") == ids("admin") == ["VAN-01", "VAN-02", "VAN-03", "BUS-01"]
    assert ids("fleet-acme") == ["VAN-01", "VAN-02"]
    assert ids("fleet-bus") == ["BUS-01"]

    entries = [
        {"vehicle": "VAN-01", "days": "mon-fri", "at": "06:30", "energy_kwh": 30},
        {"vehicle": "BUS-01", "days": "daily", "at": "05:00", "energy_kwh": 100},
    ]
    assert live.call("PUT", "/api/v1/schedules", TOKENS["admin"], json_body=entries).status == 200
    acme = live.call("GET", "/api/v1/schedules", TOKENS["fleet-acme"]).json()
    assert [e["vehicle"] for e in acme] == ["VAN-01"]
    # a scoped token's delete and import touch its own vehicles only
    assert live.call("DELETE", "/api/v1/schedules", TOKENS["fleet-acme"]).json() == {"removed": 1}
    rest = live.call("GET", "/api/v1/schedules", TOKENS["admin"]).json()
    assert [(e["vehicle"], e["days"], e["at"]) for e in rest] == [("BUS-01", "daily", "05:00")]
    # an error for a scoped token does not list the other tenants' vehicles
    bad = live.call("PUT", "/api/v1/schedules", TOKENS["fleet-bus"],
                    json_body=[{"vehicle": "VAN-09", "days": "mon", "at": "06:00", "energy_kwh": 5}])
    assert bad.status == 422 and "VAN-01" not in bad.body.decode()


def test_assigning_to_a_charger_is_refused_over_another_tenants_session(live: Live) -> None:
    """No sessions run without the rig; the rule is checked against the charger's running session."""
    live.run(_fake_session(live.daemon, "CP04", "BUS-01"))
    answer = live.call("PUT", "/api/v1/chargers/CP04/vehicle", TOKENS["fleet-acme"], json_body={"vehicle": "VAN-01"})
    assert answer.status == 403 and "outside your scope" in answer.json()["detail"]
    assert "BUS-01" not in answer.body.decode()
    sessions = live.call("GET", "/api/v1/sessions", TOKENS["fleet-acme"]).json()
    assert sessions == []
    assert [s["vehicle_id"] for s in live.call("GET", "/api/v1/sessions", TOKENS["fleet-bus"]).json()] == ["BUS-01"]
    status = live.call("GET", "/api/v1/status", TOKENS["fleet-acme"]).json()
    assert all(c["sessions"] == [] for c in status["chargers"])
    admin = live.call("GET", "/api/v1/status", TOKENS["admin"]).json()
    assert [s["vehicle_id"] for c in admin["chargers"] for s in c["sessions"]] == ["BUS-01"]
    live.run(_end_fake_session(live.daemon, "CP04"))


async def _fake_session(d: Daemon, charger_id: str, vehicle_id: str) -> None:
    from controller.chargers.state import ConnectorState, Transaction

    conn = d.cs.state(charger_id).connectors.setdefault(1, ConnectorState())
    conn.transaction = Transaction("T-1", 1, "TAG", vehicle_id, d.clock())


async def _end_fake_session(d: Daemon, charger_id: str) -> None:
    d.cs.states[charger_id].connectors[1].transaction = None


def test_tokens_are_reread_on_reload_and_a_bad_file_keeps_the_old_ones(tmp_path: Path) -> None:
    site_path = fleet_site(tmp_path)
    tokens_path = tmp_path / "tokens.yaml"
    with live_daemon(site_path) as live:
        assert live.call("GET", "/api/v1/vehicles", TOKENS["viewer"]).status == 200
        write_tokens(tokens_path, {"admin": TOKENS["admin"], "viewer-2": "a-new-viewer-token"})
        assert live.run(live.daemon.reload())
        assert live.call("GET", "/api/v1/vehicles", TOKENS["viewer"]).status == 401  # revoked
        assert live.call("GET", "/api/v1/vehicles", "a-new-viewer-token").status == 200

        tokens_path.write_text("- name: broken\n  role: superuser\n")
        assert live.run(live.daemon.reload())  # the site file itself is fine
        assert live.call("GET", "/api/v1/vehicles", "a-new-viewer-token").status == 200  # old tokens kept
        assert live.call("GET", "/api/v1/status", TOKENS["viewer"]).status == 401


def test_without_a_tokens_file_loopback_reads_and_writes_are_refused_with_how_to(tmp_path: Path) -> None:
    with live_daemon(fleet_site(tmp_path, tokens=False)) as live:
        assert live.call("GET", "/api/v1/status").status == 200
        assert live.call("GET", "/api/v1/vehicles").status == 200
        answer = live.call("PUT", "/api/v1/vehicles/VAN-01/departure",
                           json_body={"at": tomorrow_at(6), "energy_kwh": 10})
        assert answer.status == 403
        detail = answer.json()["detail"]
        assert "api.tokens_file" in detail and "depotctl token add" in detail


def test_without_a_tokens_file_a_network_listen_address_answers_nobody() -> None:
    for listen in ("0.0.0.0:8080", "[::]:8080", "10.1.2.3:8080", ":8080"):
        with pytest.raises(AuthError) as err:
            Auth(None, listen).authenticate(None)
        assert err.value.status_code == 403 and "api.tokens_file" in str(err.value.detail)
    for listen in ("127.0.0.1:8080", "[::1]:8080", "localhost:8080"):
        assert Auth(None, listen).authenticate(None) is ANONYMOUS


async def test_a_bad_tokens_file_stops_the_start_naming_its_line(tmp_path: Path) -> None:
    site_path = fleet_site(tmp_path)
    (tmp_path / "tokens.yaml").write_text("- name: x\n  role: viewer\n  token_sha256: nope\n")
    daemon = Daemon(load_site(site_path).site, site_path, DaemonOptions(handle_signals=False, serve_metrics=False))
    try:
        with pytest.raises(TokensFileError) as err:
            await daemon.start()
    finally:
        await daemon.stop()
    assert "tokens.yaml:3:" in str(err.value) and "token_sha256" in str(err.value)
    assert isinstance(err.value, OSError)  # `depotctl run` reports it as "cannot start: …"
