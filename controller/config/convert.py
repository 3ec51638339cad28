"""Validated :class:`SiteFile` ↔ frozen :class:`Site` (both directions, for round trips)."""

from __future__ import annotations

from typing import Any

from controller.config.electrical import charger_model, circuit_model
from controller.config.pv import pv_model
from controller.config.schema import SiteFile
from controller.config.tariff import tariff_dict, tariff_model
from controller.config.times import hhmm_time, parse_local_datetime
from controller.config.upstream import ocpp_model, upstream_dict
from controller.model import site as m


def to_site(sf: SiteFile) -> m.Site:
    """Assumes :func:`controller.config.checks.check` found no errors."""
    return m.Site(
        site=m.SiteInfo(sf.site.name, sf.site.timezone, sf.site.voltage_v, sf.site.service),
        grid=m.Grid(sf.grid.limit_a, sf.grid.margin_a, sf.grid.limit_kw, sf.grid.meter, sf.grid.limit_sum),
        meters=tuple(
            m.Meter(
                id=x.id,
                modbus=m.ModbusLink(**x.modbus.model_dump()),
                preset=x.preset,
                registers=tuple((k, m.RegisterSpec(**r.model_dump())) for k, r in (x.registers or {}).items()),
                poll_s=x.poll_s,
                stale_after_s=x.stale_after_s,
                invert=x.invert,
                signed_currents=x.signed_currents,
            )
            for x in sf.meters
        ),
        circuits=tuple(circuit_model(c) for c in sf.circuits),
        chargers=tuple(charger_model(c) for c in sf.chargers),
        failsafe=m.Failsafe(**sf.failsafe.model_dump()),
        ocpp=ocpp_model(sf.ocpp),
        control=m.Control(**sf.control.model_dump()),
        vehicles=tuple(
            m.Vehicle(v.id, tuple(v.id_tags), v.battery_kwh, v.max_kw, v.max_a, v.priority, v.tenant)
            for v in sf.vehicles
        ),
        schedules=tuple(_schedule(s) for s in sf.schedules),
        tariff=tariff_model(sf.tariff),
        pv=pv_model(sf),
        api=m.Api(**sf.api.model_dump()),
        metrics=m.Metrics(**sf.metrics.model_dump()),
        storage=m.Storage(**sf.storage.model_dump()),
    )


def _schedule(s: Any) -> m.Schedule:
    days = s.departs.days
    if days is not None:
        at = hhmm_time(s.departs.at)
        return m.Schedule(s.vehicle, at, tuple(days), None, s.energy_kwh, s.target_soc_pct, s.priority)
    on = parse_local_datetime(s.departs.at)
    assert on is not None
    return m.Schedule(s.vehicle, on.time(), (), on, s.energy_kwh, s.target_soc_pct, s.priority)


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def to_dict(site: m.Site) -> dict[str, Any]:
    """The site as a plain mapping that :func:`to_site` (via the YAML loader) reads back equal."""
    out: dict[str, Any] = {
        "version": 1,
        "site": {
            "name": site.site.name,
            "timezone": site.site.timezone,
            "service": site.site.service,
            "voltage_v": site.site.voltage_v,
        },
        "grid": _drop_none(
            {
                "limit_a": site.grid.limit_a,
                "margin_a": site.grid.margin_a,
                "limit_kw": site.grid.limit_kw,
                "meter": site.grid.meter,
                "limit_sum": site.grid.limit_sum,
            }
        ),
        "meters": [_meter(x) for x in site.meters],
        "circuits": [_circuit_dict(c) for c in site.circuits],
        "chargers": [_charger(c) for c in site.chargers],
        "failsafe": {"charger_a": site.failsafe.charger_a, "dc_kw": site.failsafe.dc_kw},
        "ocpp": _ocpp_dict(site.ocpp),
        "control": _fields(site.control),
        "vehicles": [
            _drop_none(
                {
                    "id": v.id,
                    "id_tags": list(v.id_tags),
                    "battery_kwh": v.battery_kwh,
                    "max_kw": v.max_kw,
                    "max_a": v.max_a,
                    "priority": v.priority,
                    "tenant": v.tenant,
                }
            )
            for v in site.vehicles
        ],
        "schedules": [_schedule_dict(s) for s in site.schedules],
        "tariff": tariff_dict(site.tariff),
        "api": _drop_none(_fields(site.api)),
        "metrics": _fields(site.metrics),
        "storage": _fields(site.storage),
    }
    if site.pv is not None:
        out["pv"] = {"meter": site.pv.meter}
    return out


def _ocpp_dict(o: m.Ocpp) -> dict[str, Any]:
    out = _drop_none(_fields(o))
    if o.upstream is not None:
        out["upstream"] = upstream_dict(o.upstream)
    return out


def _fields(obj: Any) -> dict[str, Any]:
    return {k: getattr(obj, k) for k in obj.__dataclass_fields__}


def _meter(x: m.Meter) -> dict[str, Any]:
    link = _fields(x.modbus)
    link = {k: v for k, v in link.items() if v is not None}
    out = _drop_none(
        {
            "id": x.id,
            "preset": x.preset,
            "modbus": link,
            "poll_s": x.poll_s,
            "stale_after_s": x.stale_after_s,
            "invert": x.invert,
            "signed_currents": x.signed_currents,
        }
    )
    if x.registers:
        out["registers"] = {k: _drop_none(_fields(r)) for k, r in x.registers}
    return out


def _circuit_dict(c: m.Circuit) -> dict[str, Any]:
    out = _drop_none(
        {
            "id": c.id,
            "parent": c.parent,
            "limit_a": c.limit_a,
            "margin_a": c.margin_a,
            "meter": c.meter,
            "limit_sum": c.limit_sum,
        }
    )
    tr = c.transformer
    if tr is not None:
        out["transformer"] = {"connection": tr.connection, "ratio": tr.ratio}
        if tr.connection == "split-phase":  # `primary` means nothing to a three-phase transformer
            out["transformer"]["primary"] = tr.primary
        if tr.connection == "delta-wye":  # nor `vector_group` to any other
            out["transformer"]["vector_group"] = tr.vector_group
        if tr.connection == "wye-wye" and not tr.primary_neutral:  # the default (tied) goes unsaid
            out["transformer"]["primary_neutral"] = False
    return out


def _charger(c: m.Charger) -> dict[str, Any]:
    out = _drop_none(_fields(c))
    out["ocpp_quirks"] = list(c.ocpp_quirks)
    return out


def _schedule_dict(s: m.Schedule) -> dict[str, Any]:
    if s.on is not None:
        departs: dict[str, Any] = {"at": s.on.isoformat(timespec="minutes")}
    else:
        departs = {"at": s.at.strftime("%H:%M"), "days": list(s.days)}
    return _drop_none(
        {
            "vehicle": s.vehicle,
            "departs": departs,
            "energy_kwh": s.energy_kwh,
            "target_soc_pct": s.target_soc_pct,
            "priority": s.priority,
        }
    )
