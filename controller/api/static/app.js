// depotctl status page: polls GET api/v1/status every 2 s and renders it. Plain JS, no framework,
// no external resources. Everything shown is built with DOM calls (textContent, never innerHTML),
// so ids and messages from the site file or devices cannot inject markup.
"use strict";

(function () {
  const STATUS_URL = "api/v1/status"; // relative: works behind a reverse proxy under a prefix
  const POLL_MS = 2000;
  const FETCH_TIMEOUT_MS = 5000;
  const TOKEN_KEY = "depotctl.token";
  const LOCALE = "en-GB";

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- DOM helpers

  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = value;
      else if (key === "style") Object.assign(el.style, value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  function fill(id, ...children) {
    const el = $(id);
    el.replaceChildren();
    append(el, children);
  }

  function setText(el, text) {
    if (el.textContent !== text) el.textContent = text; // unchanged text is not re-announced
  }

  function table(caption, headers, bodies, cls) {
    const thead = h("thead", null, h("tr", null, headers.map((t) => h("th", { scope: "col", text: t }))));
    const labelled = bodies.map((tbody) => {
      for (const row of tbody.rows) {
        // cells spanned down from an earlier row (rowspan) are the leading ones: skip their headers
        let col = headers.length - Array.from(row.cells).reduce((n, cell) => n + cell.colSpan, 0);
        for (const cell of row.cells) {
          if (!cell.hasAttribute("data-label") && headers[col]) cell.setAttribute("data-label", headers[col]);
          col += cell.colSpan;
        }
      }
      return tbody;
    });
    return h("div", { class: "table-wrap" },
      h("table", { class: "grid " + (cls || "") }, h("caption", { class: "sr-only", text: caption }), thead, labelled));
  }

  // ---------------------------------------------------------------- formatting

  const number = (x, digits = 1) =>
    x === null || x === undefined ? "—" : x.toLocaleString(LOCALE, { minimumFractionDigits: digits, maximumFractionDigits: digits });
  const count = (x) => (x === null || x === undefined ? "—" : x.toLocaleString(LOCALE));
  const phases = (triple, unit = "A") => (triple ? triple.map((x) => number(x)).join(" · ") + " " + unit : null);

  function duration(seconds) {
    const s = Math.abs(Math.round(seconds));
    if (s < 60) return `${s} s`;
    const m = Math.round(s / 60);
    if (m < 60) return `${m} min`;
    const hrs = Math.floor(m / 60);
    if (hrs < 48) return m % 60 ? `${hrs} h ${m % 60} min` : `${hrs} h`;
    const d = Math.floor(hrs / 24);
    return hrs % 24 ? `${d} d ${hrs % 24} h` : `${d} d`;
  }

  // Times in the site's time zone; a zone the browser does not know falls back to the browser's.
  function makeClock(timezone, nowIso) {
    let zone = timezone;
    let note = null;
    try {
      new Intl.DateTimeFormat(LOCALE, { timeZone: zone });
    } catch (e) {
      zone = undefined;
      note = `unknown time zone "${timezone}": times are in this browser's time zone`;
    }
    const opts = (o) => Object.assign({ timeZone: zone, hourCycle: "h23" }, o);
    const hms = new Intl.DateTimeFormat(LOCALE, opts({ hour: "2-digit", minute: "2-digit", second: "2-digit" }));
    const hm = new Intl.DateTimeFormat(LOCALE, opts({ hour: "2-digit", minute: "2-digit" }));
    const day = new Intl.DateTimeFormat(LOCALE, opts({ weekday: "short", day: "numeric", month: "short" }));
    const ymd = new Intl.DateTimeFormat("en-CA", opts({ year: "numeric", month: "2-digit", day: "2-digit" }));
    const full = new Intl.DateTimeFormat(LOCALE, opts({ dateStyle: "full", timeStyle: "long" }));
    const now = new Date(nowIso);
    const today = ymd.format(now);
    const zoneName = zone || new Intl.DateTimeFormat().resolvedOptions().timeZone;
    return {
      now,
      zone: zoneName,
      note,
      // a <time> element: the time of day if on the site's current date, else with the day
      time(iso, seconds = true) {
        if (!iso) return "—";
        const d = new Date(iso);
        const clock = (seconds ? hms : hm).format(d);
        const text = ymd.format(d) === today ? clock : `${day.format(d)} ${clock}`;
        return h("time", { datetime: iso, title: full.format(d), text });
      },
      ago(iso) {
        if (!iso) return "";
        const s = (now - new Date(iso)) / 1000;
        return s >= 0 ? `${duration(s)} ago` : `in ${duration(s)}`;
      },
      secondsUntil: (iso) => (new Date(iso) - now) / 1000,
    };
  }

  // ---------------------------------------------------------------- sections

  function renderFailsafe(st, clock) {
    const fs = st.failsafe;
    const box = $("failsafe");
    box.classList.toggle("banner-failsafe", fs.active);
    box.classList.toggle("banner-normal", !fs.active);
    setText($("failsafe-title"), fs.active ? `FAIL-SAFE: ${fs.reason}` : "Normal control");
    if (fs.active) {
      fill("failsafe-detail",
        "Every charger is held at its fail-safe limit. Since ", clock.time(fs.since), ` (${clock.ago(fs.since)}); `,
        `recovery after ${fs.recover_cycles} good cycles: ${fs.good_cycles} so far.`);
    } else {
      fill("failsafe-detail",
        "Chargers follow the plan. Since ", clock.time(fs.since), ` (${clock.ago(fs.since)})`,
        fs.reason ? `; last fail-safe: ${fs.reason}.` : ".");
    }
  }

  function loadLevel(load, usable) {
    if (usable <= 0) return load > 0 ? "over" : "ok";
    if (load > usable) return "over";
    return load >= 0.9 * usable ? "high" : "ok";
  }

  function phaseRows(node) {
    const usable = node.limit_a - node.margin_a;
    const load = node.measured_a || node.planned_a;
    const kind = node.measured_a ? "measured" : node.planned_a ? "planned" : null;
    return ["L1", "L2", "L3"].map((phase, i) => {
      if (!load) {
        return h("div", { class: "phase nodata" }, h("span", { class: "ph", text: phase }),
          h("span", { class: "bar", "aria-hidden": "true" }), h("span", { class: "val", text: "no data" }));
      }
      const a = load[i];
      const level = loadLevel(a, usable);
      const pct = usable > 0 ? (100 * a) / usable : null;
      const width = pct === null ? (a > 0 ? 100 : 0) : Math.max(0, Math.min(100, pct));
      const flag = level === "over" ? `OVER by ${number(a - usable)} A` : level === "high" ? "above 90 %" : null;
      return h("div", { class: `phase ${level} ${kind}` },
        h("span", { class: "ph", text: phase }),
        h("span", { class: "bar", "aria-hidden": "true" }, h("span", { class: "fill", style: { width: `${width}%` } })),
        h("span", { class: "val" },
          `${number(a)} / ${number(usable)} A`, pct === null ? "" : ` · ${Math.round(pct)} %`,
          kind === "planned" ? h("span", { class: "sr-only", text: " planned" }) : null,
          flag ? h("strong", { class: "flag", text: flag }) : null));
    });
  }

  function renderNode(node, children, grid) {
    const kind = node.measured_a
      ? h("span", { class: "tag measured", text: "measured" })
      : node.planned_a
        ? h("span", { class: "tag planned", text: "planned", title: "no fresh meter on this circuit: the plan's figure" })
        : h("span", { class: "tag", text: "no meter, no plan" });
    const extras = [];
    if (node.parent === null && grid) {
      if (grid.power_w !== null) extras.push(`${number(grid.power_w / 1000)} kW`);
      if (grid.limit_kw !== null) extras.push(`contract ${number(grid.limit_kw)} kW`);
      if (grid.meter) extras.push(`meter ${grid.meter}`);
    }
    const headroom = node.headroom_a ? `headroom ${phases(node.headroom_a)}` : "headroom unknown";
    const item = h("li", null,
      h("article", { class: "node", "aria-label": `circuit ${node.id}` },
        h("h3", null, h("span", { class: "node-id", text: node.id }), " ", kind),
        h("p", { class: "limits" },
          `limit ${number(node.limit_a)} A − margin ${number(node.margin_a)} A = ${number(node.limit_a - node.margin_a)} A`,
          ` · ${headroom}`, extras.length ? ` · ${extras.join(" · ")}` : ""),
        h("div", { class: "phases" }, phaseRows(node))));
    if (children.length) item.append(h("ul", { class: "tree" }, children));
    return item;
  }

  function renderCircuits(st) {
    if (!st.nodes.length) return fill("circuits", h("p", { class: "empty", text: "No circuits configured." }));
    const ids = new Set(st.nodes.map((n) => n.id));
    const kids = new Map();
    const roots = [];
    for (const n of st.nodes) {
      if (n.parent === null || !ids.has(n.parent)) roots.push(n);
      else kids.set(n.parent, [...(kids.get(n.parent) || []), n]);
    }
    const seen = new Set();
    const build = (n) => {
      if (seen.has(n.id)) return null;
      seen.add(n.id);
      return renderNode(n, (kids.get(n.id) || []).map(build).filter(Boolean), n.parent === null ? st.grid : null);
    };
    fill("circuits", h("ul", { class: "tree root" }, roots.map(build)));
  }

  function readiness(s) {
    if (s.will_meet_departure === true) return h("span", { class: "state ok" }, "✓ Ready");
    if (s.will_meet_departure === false) {
      const short = s.energy_need_kwh !== null && s.expected_kwh !== null
        ? ` (short ${number(s.energy_need_kwh - s.expected_kwh)} kWh)` : "";
      return h("span", { class: "state bad" }, h("strong", { text: "⚠ At risk" }), short);
    }
    return h("span", { class: "state muted", text: "unknown" });
  }

  function vehicleName(s) {
    return s.vehicle_id
      ? h("span", { class: "vehicle", text: s.vehicle_id })
      : h("span", { class: "muted" }, "unknown vehicle ", h("small", { text: `(session ${s.session_id})` }));
  }

  function renderDepartures(st, clock) {
    const rows = [];
    for (const ch of st.chargers) for (const s of ch.sessions) if (s.departure_at) rows.push([ch, s]);
    if (!rows.length) return fill("departures", h("p", { class: "empty", text: "No departures set for the vehicles plugged in." }));
    rows.sort((a, b) => new Date(a[1].departure_at) - new Date(b[1].departure_at));
    const body = h("tbody", null, rows.map(([ch, s]) => {
      const left = clock.secondsUntil(s.departure_at);
      return h("tr", { class: s.will_meet_departure === false ? "at-risk" : null },
        h("th", { scope: "row" }, vehicleName(s)),
        h("td", null, `${ch.id} #${s.connector}`),
        h("td", null, clock.time(s.departure_at, false), h("small", { class: "block", text: left >= 0 ? `in ${duration(left)}` : `${duration(left)} ago` })),
        h("td", { class: "num" }, `${number(s.delivered_kwh)} / ${s.energy_need_kwh === null ? "—" : number(s.energy_need_kwh)} kWh`,
          h("small", { class: "block", text: s.expected_kwh === null ? "no expectation" : `expected ${number(s.expected_kwh)} kWh` })),
        h("td", null, s.eta ? clock.time(s.eta, false) : "—"),
        h("td", null, readiness(s)));
    }));
    const risky = rows.filter(([, s]) => s.will_meet_departure === false).length;
    fill("departures",
      h("p", { class: risky ? "summary bad" : "summary" },
        risky ? `${risky} of ${rows.length} departures at risk.` : `All ${rows.length} departures on track.`),
      table("Departures", ["Vehicle", "Charger", "Departure", "Delivered / need", "ETA", "Readiness"],
        [body], "departures"));
  }

  const CLOCK_WARN_S = 60; // the alert DepotChargerClockOffset's threshold

  // a clock offset: "0.4 s", "120 s" up to ten minutes, then "2 h 5 min"
  function offsetSize(seconds) {
    const s = Math.abs(seconds);
    if (s < 10) return `${number(s)} s`;
    return s < 600 ? `${number(s, 0)} s` : duration(s);
  }

  // Is the charger under our control: uncontrolled (and why), fail-safe profile confirmed, clock offset.
  // A fail-safe state or offset the daemon does not report (null) shows as unknown, never as fine.
  function controlCell(ch, clock) {
    const u = ch.uncontrolled;
    const lines = [];
    if (u) {
      lines.push(h("strong", { class: "state bad block", text: "⚠ UNCONTROLLED" }),
        h("small", { class: "block", text: u.reason }),
        h("small", { class: "block why" }, "since ", clock.time(u.since), ` (${clock.ago(u.since)}); budgeted at its draw, up to its maximum`));
    } else if (ch.connected) {
      lines.push(h("span", { class: "state ok block", text: "✓ Controlled" }));
    }
    if (ch.failsafe_installed === true) {
      lines.push(h("span", { class: "state ok block", text: "✓ Fail-safe profile confirmed" }));
    } else if (ch.failsafe_installed === false) {
      lines.push(h("strong", { class: "state bad block", text: "⚠ No confirmed fail-safe profile" }),
        h("small", { class: "block why", text: "budgeted at its maximum; unlimited should depotctl stop" }));
    }
    const off = ch.clock_offset_s;
    if (off === null || off === undefined) {
      lines.push(h("small", { class: "block muted", text: "clock not measured" }));
    } else {
      const far = Math.abs(off) > CLOCK_WARN_S;
      const text = `clock ${offsetSize(off)} ${off >= 0 ? "ahead" : "behind"}`;
      lines.push(far
        ? h("strong", { class: "state warn block", title: "set the charger's time source (NTP); its profiles cover the offset", text: `⚠ ${text}` })
        : h("small", { class: "block", title: "charger clock minus the daemon's", text }));
    }
    return lines;
  }

  // Its last commissioning (`depotctl commission`): passed, failed (or aborted), running now, never.
  // A daemon that does not report it (null) shows nothing rather than "never".
  const COMMISSIONED = {
    passed: ["state ok", "✓ Passed", "every check of its last commissioning passed"],
    failed: ["state bad", "⚠ Failed", "a check of its last commissioning failed, or the run was aborted: see depotctl commission"],
    running: ["state warn", "⟳ Running", "being commissioned now: out of the plan, budgeted at its maximum"],
    never: ["muted", "Never", "not commissioned yet: run depotctl commission"],
  };

  function commissionedCell(ch) {
    const known = Object.prototype.hasOwnProperty.call(COMMISSIONED, ch.commissioned) ? COMMISSIONED[ch.commissioned] : null;
    if (!known) return h("span", { class: "muted", text: "—" });
    const [cls, text, title] = known;
    return h("span", { class: cls, title, text });
  }

  function renderChargers(st, clock) {
    if (!st.chargers.length) return fill("chargers", h("p", { class: "empty", text: "No chargers configured." }));
    const bodies = st.chargers.map((ch) => {
      const span = Math.max(1, ch.sessions.length);
      const conn = ch.connected
        ? h("span", { class: "state ok" }, "● Connected", ch.ocpp_version ? h("small", { text: ` OCPP ${ch.ocpp_version}` }) : null)
        : h("span", { class: "state bad" }, h("strong", { text: "○ Offline" }));
      const limit = ch.limit === null
        ? h("span", { class: "muted", text: "none sent" })
        : [h("span", { class: "num", text: `${number(ch.limit)} ${ch.unit}` }),
          ch.limit_source ? h("small", { class: "why", text: ` ${ch.limit_source}` }) : null];
      const head = [
        h("th", { scope: "rowgroup", rowspan: span }, h("span", { class: "charger-id", text: ch.id }), h("small", { text: ` ${ch.kind.toUpperCase()}` })),
        h("td", { rowspan: span, text: ch.circuit }),
        h("td", { rowspan: span }, conn, ch.status ? h("small", { class: "block", text: ch.status }) : null),
        h("td", { rowspan: span, class: "control" }, controlCell(ch, clock)),
        h("td", { rowspan: span, class: "commissioned" }, commissionedCell(ch)),
        h("td", { rowspan: span }, limit),
        h("td", { rowspan: span, class: "num" }, phases(ch.current_a) || h("span", { class: "muted", text: "not reported" })),
      ];
      if (!ch.sessions.length) {
        return h("tbody", null, h("tr", { class: ch.uncontrolled ? "bad-row" : null }, head,
          h("td", { colspan: 6, class: "muted", "data-label": "Session", text: "no vehicle plugged in" })));
      }
      return h("tbody", null, ch.sessions.map((s, i) => h("tr", { class: ch.uncontrolled ? "bad-row" : null },
        i === 0 ? head : null,
        h("td", null, vehicleName(s), h("small", { text: ` #${s.connector}` })),
        h("td", { class: "num", text: s.energy_need_kwh === null ? `${number(s.delivered_kwh)} kWh` : `${number(s.delivered_kwh)} / ${number(s.energy_need_kwh)} kWh` }),
        h("td", { class: "num", text: s.soc_pct === null ? "—" : `${number(s.soc_pct, 0)} %` }),
        h("td", null, s.departure_at ? clock.time(s.departure_at, false) : "—"),
        h("td", null, s.eta ? clock.time(s.eta, false) : "—"),
        h("td", null, s.departure_at ? readiness(s) : h("span", { class: "muted", text: "no departure" })))));
    });
    const offline = st.chargers.filter((c) => !c.connected).length;
    const uncontrolled = st.chargers.filter((c) => c.uncontrolled).length;
    const noFailsafe = st.chargers.filter((c) => c.failsafe_installed === false).length;
    fill("chargers",
      h("p", { class: offline || uncontrolled || noFailsafe ? "summary bad" : "summary" },
        `${st.chargers.length - offline} of ${st.chargers.length} chargers connected`, offline ? `, ${offline} offline.` : ".",
        uncontrolled ? ` ${uncontrolled} UNCONTROLLED.` : "",
        noFailsafe ? ` ${noFailsafe} without a confirmed fail-safe profile.` : ""),
      table("Chargers and their sessions",
        ["Charger", "Circuit", "Connection", "Control", "Commissioned", "Limit (why)", "Draw L1 · L2 · L3", "Vehicle", "Delivered / need", "SoC", "Departure", "ETA", "Readiness"],
        bodies, "chargers"));
  }

  function renderMeters(st) {
    if (!st.meters.length) return fill("meters", h("p", { class: "empty", text: "No meters configured." }));
    const body = h("tbody", null, st.meters.map((m) => h("tr", { class: m.stale || m.problem ? "bad-row" : null },
      h("th", { scope: "row", text: m.id }),
      h("td", { class: "num", text: m.age_s === null ? "no reading yet" : `${number(m.age_s)} s` }),
      h("td", null, m.stale ? h("strong", { class: "state bad", text: "⚠ Stale" }) : h("span", { class: "state ok", text: "Fresh" })),
      h("td", null, m.problem || h("span", { class: "muted", text: "none" })),
      h("td", { class: "num", text: `${count(m.accepted)} / ${count(m.rejected)} / ${count(m.failed)}` }))));
    fill("meters", table("Meters", ["Meter", "Age of last good reading", "State", "Problem", "Accepted / rejected / failed"], [body], "meters"));
  }

  function dl(pairs) {
    return h("dl", { class: "facts" }, pairs.filter(Boolean).map(([k, v]) => [h("dt", { text: k }), h("dd", null, v)]));
  }

  function renderSystem(st, clock) {
    const p = st.plan;
    const l = st.loop;
    const s = st.store;
    const plan = p
      ? [clock.time(p.at), ` (${clock.ago(p.at)}) by ${p.solver} in ${number(p.total_ms)} ms for ${count(p.sessions)} sessions`]
      : h("span", { class: "muted", text: "no plan yet" });
    const items = [
      ["Last plan", plan],
      p && p.status != null ? ["Solver", `${p.status}, ${count(p.iterations || 0)} iterations, ${p.warm ? "warm" : "cold"}`
        + (p.planned_in ? (p.planned_in === "heuristic" ? "; heuristic" : `; in the ${p.planned_in}`) : "")
        + (p.plans_last_hour ? `; last hour ${count(p.plans_last_hour)} plans, ${number(p.total_ms_p50)} ms median, ${number(p.total_ms_p99)} ms p99` : "")] : null,
      p && (p.fallback_reason || p.fallbacks_last_hour) ? ["Planner fallbacks",
        h("ul", { class: "warnings" }, [
          p.fallback_reason ? h("li", { text: `last plan: ${p.fallback_reason}` }) : null,
          ...Object.entries(p.fallback_reasons_last_hour || {}).map(([why, n]) => h("li", { text: `${count(n)}× in the last hour: ${why}` })),
        ].filter(Boolean))] : null,
      p && p.warnings.length ? ["Planner warnings", h("ul", { class: "warnings" }, p.warnings.map((w) => h("li", { text: w })))] : null,
      ["Control loop", `${count(l.cycles)} cycles; cycle ${number(l.cycle_ms_p50)} ms median, ${number(l.cycle_ms_p99)} ms p99`],
      ["Overload sheds", l.sheds
        ? [`${count(l.sheds)}, last `, clock.time(l.last_shed_at), ` (${clock.ago(l.last_shed_at)}); shed time ${number(l.shed_ms_p50, 0)} ms median, ${number(l.shed_ms_p99, 0)} ms p99`]
        : "none"],
      ["History store", s
        ? [s.broken ? h("strong", { class: "state bad", text: "⚠ BROKEN: not writing. " }) : null,
          `${s.path}: ${count(s.written)} rows written, ${count(s.dropped)} dropped, ${count(s.queue_depth)} queued`]
        : h("span", { class: "muted", text: "off" })],
      st.upstream ? ["Back office (CSMS)", [
        `${st.upstream.url}: ${count(st.upstream.connected)} of ${count(st.upstream.chargers)} links up, `,
        st.upstream.queue_messages ? h("strong", { class: "warn-text", text: `${count(st.upstream.queue_messages)} messages queued` }) : "nothing queued",
        ...st.upstream.links.filter((k) => !k.connected || k.queue_messages).map((k) => h("div", { class: "muted" },
          `${k.charger_id}: ${k.state}`, k.since ? [" since ", clock.time(k.since)] : null, `, ${count(k.queue_messages)} queued`)),
      ]] : null,
      ["Daemon", [`depotctl ${st.version}, started `, clock.time(st.started_at), ` (${clock.ago(st.started_at)})`]],
      ["Site file", [`${st.config_file}, loaded `, clock.time(st.config_loaded_at)]],
    ];
    fill("system", dl(items));
  }

  function windowText(w, clock) {
    if (!w) return null;
    return [`${number(w.average_kw)} kW over `, clock.time(w.start, false), "–", clock.time(w.end, false),
      w.partial ? h("span", { class: "warn-text", text: ` (readings cover ${number(w.coverage * 100, 0)} %)` }) : null];
  }

  function renderBill(st, clock) {
    const e = st.energy;
    $("bill-section").hidden = !e;
    if (!e) return;
    const cur = e.currency;
    const pf = e.prices_file;
    const items = [
      ["Price now", e.price_per_kwh === null ? h("span", { class: "muted", text: "no price" })
        : [`${number(e.price_per_kwh, 4)} ${cur}/kWh`, h("span", { class: "muted", text: ` (${e.price_source})` })]],
      ["Today", `${number(e.today_import_kwh)} kWh imported, `
        + (e.today_cost === null ? "cost unknown (no price)" : `${number(e.today_cost, 2)} ${cur}`)],
      ["Peak this month", [`${number(e.peak_kw)} kW (${count(e.window_min)}-min average since `,
        clock.time(e.period_start, false), ")",
        e.demand_charge !== null ? `; demand charge ${number(e.demand_charge, 2)} ${cur} at ${number(e.demand_price_per_kw, 2)} ${cur}/kW` : ""]],
      e.peak_window ? ["Highest window", windowText(e.peak_window, clock)] : null,
      e.window ? ["Window now", windowText(e.window, clock)] : null,
      pf ? ["Prices file", [`${pf.path}: ${count(pf.prices)} prices until `, clock.time(pf.covers_until, false),
        pf.error ? h("div", { class: "notice error prices-error", role: "alert" },
          h("strong", { text: "Refused, the prices read before stay in force: " }), pf.error) : null]] : null,
      e.pv_meter ? ["PV", `${number(e.pv_kw)} kW (meter ${e.pv_meter})`] : null,
    ];
    fill("bill", dl(items));
  }

  function render(st) {
    const clock = makeClock(st.timezone, st.now);
    setText($("site"), st.site);
    document.title = `${st.failsafe.active ? "FAIL-SAFE · " : ""}${st.site} · depotctl`;
    fill("meta", "Updated ", clock.time(st.now), ` · site time ${clock.zone}`,
      clock.note ? h("strong", { class: "warn-text", text: ` (${clock.note})` }) : null, " · refreshes every 2 s");
    renderFailsafe(st, clock);
    renderCircuits(st);
    renderBill(st, clock);
    renderDepartures(st, clock);
    renderChargers(st, clock);
    renderMeters(st);
    renderSystem(st, clock);
    fill("footer", `depotctl ${st.version} · ${st.site} · status of `, clock.time(st.now), ` (${clock.zone})`);
  }

  // ---------------------------------------------------------------- state, errors, polling

  let lastStatus = null;
  let lastOkAt = null; // browser clock
  let problemSince = null;
  let timer = null;

  function showPageError(message) {
    const el = $("page-error");
    el.hidden = false;
    setText(el, `Page error: ${message}. Reload the page; if this persists, report it with the daemon version.`);
  }

  window.addEventListener("error", (ev) => showPageError(ev.message || "script error"));
  window.addEventListener("unhandledrejection", (ev) => showPageError(String(ev.reason)));

  function localTime(d) {
    return d.toLocaleTimeString(LOCALE, { hourCycle: "h23" });
  }

  function setConnection(kind, message) {
    const el = $("connection");
    const main = $("content");
    if (!kind) {
      el.hidden = true;
      el.className = "notice";
      setText(el, "");
      problemSince = null;
      main.classList.remove("stale");
      return;
    }
    problemSince = problemSince || new Date();
    el.hidden = false;
    el.className = `notice ${kind}`;
    const shown = lastStatus
      ? ` Showing the last status received at ${localTime(lastOkAt)} (this browser's clock); it may be out of date.`
      : "";
    setText(el, `${message}${shown}`);
    if (!lastStatus) setText($("meta"), "No status received yet.");
    main.classList.toggle("stale", Boolean(lastStatus));
  }

  function readToken() {
    try {
      return localStorage.getItem(TOKEN_KEY) || "";
    } catch (e) {
      return "";
    }
  }

  function writeToken(token) {
    try {
      if (token) localStorage.setItem(TOKEN_KEY, token);
      else localStorage.removeItem(TOKEN_KEY);
    } catch (e) {
      showPageError("this browser does not allow storing the token (private mode?)");
    }
    showTokenState();
  }

  function showTokenState() {
    setText($("token-state"), readToken() ? "A token is saved in this browser." : "No token saved.");
  }

  async function errorDetail(response) {
    try {
      const body = await response.json();
      if (body && typeof body.detail === "string") return body.detail;
    } catch (e) {
      /* not JSON */
    }
    return response.statusText || "";
  }

  async function poll() {
    clearTimeout(timer);
    const token = readToken();
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    const abort = new AbortController();
    const deadline = setTimeout(() => abort.abort(), FETCH_TIMEOUT_MS);
    try {
      let response;
      let body;
      try {
        response = await fetch(STATUS_URL, { headers, cache: "no-store", signal: abort.signal });
        body = response.ok ? await response.text() : null;
      } catch (e) {
        const why = e && e.name === "AbortError" ? `no answer within ${FETCH_TIMEOUT_MS / 1000} s` : "connection failed";
        setConnection("error", `Daemon not reachable (${why}) since ${localTime(problemSince || new Date())}; retrying every 2 s.`);
        return;
      }
      if (response.status === 401 || response.status === 403) {
        const detail = await errorDetail(response);
        $("token-box").open = true;
        const why = `Access denied (${response.status}${detail ? `: ${detail}` : ""})`;
        let advice;
        if (response.status === 403) advice = "the saved token may not read the site status. Enter another token";
        else if (token) advice = "the saved token is not known to this daemon. Enter a valid token";
        else advice = "this daemon needs an API token. Enter it";
        setConnection("error", `${why}: ${advice} under “API token” above.`);
        return;
      }
      if (response.status === 503) {
        const detail = await errorDetail(response);
        setConnection("warn", `The daemon is up but cannot report yet: ${detail || "starting"}. Retrying every 2 s.`);
        return;
      }
      if (!response.ok) {
        const detail = await errorDetail(response);
        setConnection("error", `Unexpected answer from the daemon: HTTP ${response.status}${detail ? ` (${detail})` : ""}.`);
        return;
      }
      let st;
      try {
        st = JSON.parse(body);
      } catch (e) {
        setConnection("error", "Unexpected answer from the daemon: not JSON (is something else answering on this address?).");
        return;
      }
      if (!st || typeof st !== "object" || !st.failsafe || !Array.isArray(st.nodes) || !Array.isArray(st.chargers)) {
        setConnection("error", "Unexpected answer from the daemon: not a depotctl status (a different version?).");
        return;
      }
      lastStatus = st;
      lastOkAt = new Date();
      setConnection(null);
      try {
        render(st);
        $("content").hidden = false;
      } catch (e) {
        console.error(e);
        showPageError(e && e.message ? e.message : String(e));
      }
    } finally {
      clearTimeout(deadline);
      timer = setTimeout(poll, POLL_MS);
    }
  }

  function start() {
    // A kiosk screen can be started with …/#token=SECRET: the token is stored, then removed from the URL.
    const fragment = new URLSearchParams(location.hash.slice(1));
    if (fragment.has("token")) {
      writeToken(fragment.get("token"));
      history.replaceState(null, "", location.pathname + location.search);
    }
    showTokenState();
    $("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const input = $("token");
      writeToken(input.value.trim());
      input.value = "";
      $("token-box").open = false;
      poll();
    });
    $("token-clear").addEventListener("click", () => {
      writeToken("");
      poll();
    });
    poll();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
