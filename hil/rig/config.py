"""A site file re-pointed at the rig: the same depot with its endpoints on free loopback ports.

``rig_site_text(path, meter_ports=…, ocpp_port=…, …)`` reads the site file the project's way
(:func:`controller.config.yaml_source.parse_yaml`: every scalar kept as written, anchors and merge
keys resolved), rewrites the meters' ``host``/``port``, the OCPP, API and metrics listeners and the
storage path, and checks the result with :func:`controller.config.loader.load_site_text` — so a
test can start a daemon on it next to a :class:`~hil.rig.Rig` serving the same ports.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from controller.config.loader import load_site_text
from controller.config.yaml_source import parse_yaml
from controller.model.site import Meter, Site

LOOPBACK = "127.0.0.1"


def endpoint(meter: Meter) -> str:
    """The site file's ``host:port`` of a meter (the key of ``meter_ports``)."""
    return f"{meter.modbus.host}:{meter.modbus.port}"


def default_ocpp_url(site: Site) -> str:
    """``ws://HOST:PORT/PATH`` of the site's OCPP listener (a wildcard host becomes 127.0.0.1)."""
    host, _, port = site.ocpp.listen.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = LOOPBACK
    return f"ws://{host}:{port}{site.ocpp.path}"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nobody listens on right now (the OS's choice; may be taken again before use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def rig_site_text(
    site_path: str | Path,
    *,
    meter_ports: Mapping[str, int],
    ocpp_port: int,
    api_port: int,
    metrics_port: int,
    storage_path: str | Path,
    host: str = LOOPBACK,
    open_ocpp: bool = True,
) -> str:
    """The site file's YAML with its endpoints moved to ``host``.

    ``meter_ports``: the site's meter ``host:port`` (as written, e.g. ``"127.0.0.1:15020"``) → the
    port the rig serves it on (:attr:`hil.rig.Rig.meter_ports`); meters at other endpoints are left
    as they are. ``open_ocpp``: security profile 0 (the rig's chargers have no passwords), without
    passwords or TLS files. Raises :class:`~controller.config.problems.ConfigError` if the result
    does not validate, ``OSError`` if the file cannot be read.
    """
    path = Path(site_path)
    data: dict[str, Any] = parse_yaml(path.read_text(encoding="utf-8")).data
    for meter in data.get("meters") or []:
        link = meter.get("modbus") or {}
        if link.get("serial") is not None:
            continue
        key = f"{link.get('host')}:{link.get('port', 502)}"
        if key in meter_ports:
            link["host"], link["port"] = host, int(meter_ports[key])
    ocpp = data.setdefault("ocpp", {}) or {}
    data["ocpp"] = ocpp
    ocpp["listen"] = f"{host}:{ocpp_port}"
    if open_ocpp:
        ocpp["security_profile"] = 0
        for key in ("passwords_file", "tls_cert_file", "tls_key_file"):
            ocpp.pop(key, None)
    data["api"] = {**(data.get("api") or {}), "listen": f"{host}:{api_port}"}
    data["metrics"] = {**(data.get("metrics") or {}), "listen": f"{host}:{metrics_port}"}
    data["storage"] = {**(data.get("storage") or {}), "path": str(storage_path)}
    text = f"# {path.name} re-pointed at the hil rig (generated)\n" + yaml.safe_dump(
        data, sort_keys=False, allow_unicode=True
    )
    load_site_text(text, f"{path.name} (rig)")
    return text
