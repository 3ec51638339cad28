"""``ocpp.upstream:`` — the operator's CSMS in local-controller mode: rules and conversion.

OCPP's security profiles fix the transport: 0 (no security) and 1 (HTTP Basic auth) run over
``ws://``, 2 (TLS and HTTP Basic auth) over ``wss://``. Profiles 1 and 2 need the passwords the
CSMS expects, one per charger, in a passwords file of the same format as ``ocpp.passwords_file``.
The files (passwords, CA certificates) are read here, when the site is checked for running (not
``offline``), so a file the proxy could not use stops ``check-config`` and a reload.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from controller.config.passwords import PasswordsError, read_password_file
from controller.config.schema import OcppSection, SiteFile, UpstreamSection
from controller.config.yaml_source import Path
from controller.model import site as m

Report = Callable[[Path, str], None]

BASE: Path = ("ocpp", "upstream")
PROFILE_SCHEME: dict[int, str] = {0: "ws", 1: "ws", 2: "wss"}
PROFILE_NAME: dict[int, str] = {0: "no security", 1: "HTTP Basic auth", 2: "TLS and HTTP Basic auth"}
_PROFILES_TEXT = "OCPP security profiles 0 (none) and 1 (Basic auth) run over ws://, 2 (TLS + Basic auth) over wss://"


def check_upstream(sf: SiteFile, error: Report, warn: Report) -> None:
    """Every rule of ``ocpp.upstream``, including reading its passwords file (and the CA file)."""
    up = sf.ocpp.upstream
    if up is None:
        return
    scheme = _check_url(up, error)
    profile = up.security_profile
    if scheme is not None and scheme != PROFILE_SCHEME[profile]:
        want = PROFILE_SCHEME[profile]
        fix = " (or security_profile: 2 for TLS)" if want == "ws" else ""
        error(
            (*BASE, "url"),
            f"security profile {profile} ({PROFILE_NAME[profile]}) needs a {want}:// url{fix}: {_PROFILES_TEXT}",
        )
    if up.ca_file is not None and scheme == "ws":
        error(
            (*BASE, "ca_file"),
            "a CA file verifies the CSMS's TLS certificate: it needs a wss:// url (security profile 2)",
        )
    if profile == 0:
        warn((*BASE, "security_profile"), "profile 0: depotctl connects to the CSMS without a password (lab use only)")
        if up.passwords_file is not None:
            warn((*BASE, "passwords_file"), "not used at security profile 0")
    elif up.passwords_file is None:
        error(
            (*BASE, "passwords_file"),
            f"security profile {profile} needs a passwords_file (charger id → the password the CSMS expects)",
        )
    else:
        _check_passwords(sf, up.passwords_file, error, warn)
    if up.ca_file is not None and scheme == "wss":
        _check_ca_file(up.ca_file, error)


def _check_url(up: UpstreamSection, error: Report) -> str | None:
    """The url's scheme (``ws`` or ``wss``) when the url is usable, else ``None`` after an error."""
    path: Path = (*BASE, "url")
    url = up.url
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        error(path, f"must start with ws:// or wss:// (an OCPP websocket endpoint), got {url!r}")
        return None
    if parts.username is not None or parts.password is not None:
        error(path, "credentials do not belong in the url: put them in ocpp.upstream.passwords_file")
        return None
    if not parts.hostname:
        error(path, f"has no host: {url!r}")
        return None
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number in 0..65535
    except ValueError:
        error(path, f"has a bad port (a number up to 65535): {url!r}")
        return None
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        error(path, f"must not have a query or fragment: each charger connects at {{url}}/{{charger id}}, got {url!r}")
        return None
    if url.endswith("/"):
        fix = url.rstrip("/")
        error(path, f"must not end with '/': each charger connects at {{url}}/{{charger id}} (write {fix!r})")
        return None
    return parts.scheme


def _check_passwords(sf: SiteFile, name: str, error: Report, warn: Report) -> None:
    path: Path = (*BASE, "passwords_file")
    try:
        passwords = read_password_file(name)
    except PasswordsError as exc:
        error(path, str(exc))
        return
    missing = [ch.id for ch in sf.chargers if ch.id not in passwords]
    if missing:
        n = len(missing)
        warn(
            path,
            f"no upstream password for {n} charger{'s' if n != 1 else ''} ({', '.join(missing)}) in {name}:"
            f" the CSMS will refuse {'it' if n == 1 else 'them'}",
        )


def _check_ca_file(name: str, error: Report) -> None:
    """The CA file must hold at least one certificate that OpenSSL can load (PEM)."""
    path: Path = (*BASE, "ca_file")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=name)
    except ssl.SSLError as exc:
        error(path, f"{name} holds no usable CA certificate (PEM): {exc.reason or exc}")
    except OSError as exc:
        error(path, f"cannot read {name}: {exc.strerror or exc}")


def ocpp_model(o: OcppSection) -> m.Ocpp:
    """Assumes :func:`check_upstream` found no errors."""
    fields = o.model_dump(exclude={"upstream"})
    upstream = None if o.upstream is None else m.Upstream(**o.upstream.model_dump())
    return m.Ocpp(**fields, upstream=upstream)


def upstream_dict(up: m.Upstream) -> dict[str, Any]:
    out: dict[str, Any] = {"url": up.url, "security_profile": up.security_profile}
    if up.passwords_file is not None:
        out["passwords_file"] = up.passwords_file
    if up.ca_file is not None:
        out["ca_file"] = up.ca_file
    out["offline_authorize"] = up.offline_authorize
    return out


def upstream_text(up: m.Upstream | None) -> str | None:
    """One line for ``check-config``: where the chargers are connected upstream, or ``None``."""
    if up is None:
        return None
    offline = {
        "cache": "as the CSMS answered before",
        "accept": "all accepted",
        "reject": "all rejected",
    }[up.offline_authorize]
    return (
        f"upstream CSMS: {up.url}/{{charger id}}, security profile {up.security_profile}"
        f" ({PROFILE_NAME[up.security_profile]}); id tags while it is unreachable: {offline}"
    )
