// kernal hub dashboard: polls the hub's JSON API every 3 s and updates the page in place.
//
// Everything shown here (ids, specializations, data) comes from AI clients and is untrusted. It is
// only ever put into the page as text (textContent, text nodes, setAttribute): never as markup.
// The page's Content-Security-Policy forbids inline scripts as a second line of defence.
"use strict";

(() => {
  const REFRESH_MS = 3000;
  const TIMEOUT_MS = 2500; // a slow hub must not stack requests: abort before the next tick
  const HISTORY_POINTS = 360;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const SERIES = [
    { key: "connected_ais", label: "Connected AIs" },
    { key: "shared_patterns", label: "Shared Patterns" },
    { key: "shared_components", label: "Shared Components" },
    { key: "active_collaborations", label: "Active Collaborations" },
  ];

  const state = {
    refreshes: 0,
    skewMs: 0, // hub clock minus browser clock, from the HTTP Date header
    history: [], // stats snapshots, oldest first, plus the live figures as the last point
    hidden: loadHiddenSeries(),
    hoverIndex: null,
    geometry: null, // how the chart maps time to x, for the hover readout
    inflight: false,
    timer: null,
  };

  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------ DOM helpers (text only)

  /** Element with attributes and children; string children become text nodes, never markup. */
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== undefined && value !== null && value !== false) node.setAttribute(name, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  // ------------------------------------------------------------------ formatting

  const numberFormat = new Intl.NumberFormat();
  const fmtInt = (n) => (typeof n === "number" && Number.isFinite(n) ? numberFormat.format(n) : "–");
  const hubNow = () => (Date.now() + state.skewMs) / 1000;

  function fmtClock(unix) {
    const date = new Date(unix * 1000);
    const sameDay = new Date().toDateString() === date.toDateString();
    return sameDay
      ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })
      : date.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  }

  function fmtDuration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
    return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  }

  const fmtAgo = (unix) => `${fmtDuration(hubNow() - unix)} ago`;

  function preview(data) {
    try {
      const text = JSON.stringify(data);
      return text.length > 300 ? `${text.slice(0, 300)}…` : text;
    } catch {
      return "";
    }
  }

  // ------------------------------------------------------------------ fetching

  async function getJSON(path, signal) {
    const response = await fetch(path, { signal, cache: "no-store", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`HTTP ${response.status} from ${path}`);
    const date = Date.parse(response.headers.get("Date") || "");
    if (path === "/status" && Number.isFinite(date)) {
      // The Date header has whole seconds: below 2 s of difference, trust the browser's clock.
      const skew = date - Date.now();
      state.skewMs = Math.abs(skew) < 2000 ? 0 : skew;
    }
    return response.json();
  }

  async function refresh() {
    if (state.inflight) return; // a visibility change raced the timer: one request set at a time
    clearTimeout(state.timer);
    if (document.hidden) return schedule(); // nobody is looking: skip, catch up when visible
    state.inflight = true;
    try {
      await refreshOnce();
    } finally {
      state.inflight = false;
      schedule();
    }
  }

  async function refreshOnce() {
    const controller = new AbortController();
    const timeout = setTimeout(() => controller.abort(), TIMEOUT_MS);
    const get = (path) => getJSON(path, controller.signal);
    const [status, ais, active, recent, patterns, components, history] = await Promise.allSettled([
      get("/status"),
      get("/api/ais"),
      get("/api/collaborations?status=active&limit=100"),
      get("/api/collaborations?limit=20"),
      get("/api/patterns?limit=20"),
      get("/api/components?limit=20"),
      get(`/api/stats/history?limit=${HISTORY_POINTS}`),
    ]);
    clearTimeout(timeout);
    const failures = [status, ais, active, recent, patterns, components, history].filter(
      (result) => result.status === "rejected",
    );
    // Each section keeps its last good content if its own request failed.
    const guard = (fn) => {
      try {
        fn();
      } catch (err) {
        console.error("dashboard render failed", err);
      }
    };
    if (status.status === "fulfilled") guard(() => renderStatus(status.value));
    if (ais.status === "fulfilled") guard(() => renderAis(ais.value));
    if (active.status === "fulfilled" && recent.status === "fulfilled") {
      guard(() => renderCollaborations(active.value, recent.value));
    }
    if (patterns.status === "fulfilled" && components.status === "fulfilled") {
      guard(() => renderFeed(patterns.value, components.value));
    }
    if (history.status === "fulfilled") {
      const live = status.status === "fulfilled" ? status.value : null;
      guard(() => renderHistory(history.value, live));
    }
    setConnection(status.status === "fulfilled", failures);
    state.refreshes += 1;
    document.body.dataset.refreshes = String(state.refreshes);
  }

  function schedule() {
    clearTimeout(state.timer);
    state.timer = setTimeout(refresh, REFRESH_MS);
  }

  function setConnection(reachable, failures) {
    const pill = $("connection");
    document.body.classList.toggle("stale", !reachable);
    $("unreachable").hidden = reachable;
    if (!reachable) {
      $("unreachable_detail").textContent = `${describe(failures[0] && failures[0].reason)} The figures below are from the last successful update.`;
      pill.className = "pill down";
      pill.textContent = "Hub unreachable";
      return;
    }
    const now = new Date();
    const stamp = $("last_updated");
    stamp.textContent = now.toLocaleTimeString();
    stamp.setAttribute("datetime", now.toISOString());
    pill.className = failures.length ? "pill partial" : "pill live";
    pill.textContent = failures.length ? "Live (some data unavailable)" : "Live";
    pill.title = failures.map((f) => describe(f.reason)).join("\n");
  }

  function describe(error) {
    if (error && error.name === "AbortError") return `No answer within ${TIMEOUT_MS / 1000} s.`;
    if (error instanceof TypeError) return "No connection to the hub."; // what fetch throws offline
    const text = String((error && error.message) || error || "Unknown error");
    return text.endsWith(".") ? text : `${text}.`;
  }

  // ------------------------------------------------------------------ sections

  function renderStatus(status) {
    for (const { key } of SERIES) {
      const node = $(key);
      const text = fmtInt(status[key]);
      if (node.textContent !== text) {
        const first = node.textContent === "–";
        node.textContent = text;
        if (!first) {
          node.classList.remove("bump");
          void node.offsetWidth; // restart the animation
          node.classList.add("bump");
        }
      }
    }
    $("uptime").textContent = typeof status.uptime === "number" ? fmtDuration(status.uptime) : "–";
    $("demo_badge").hidden = !status.demo_tokens;
  }

  /** An id as monospace text, cut with an ellipsis when long; the title holds all of it. */
  const idText = (id, title = id) => h("span", { class: "id", title }, id);

  function chips(values, max = 6) {
    const shown = values.slice(0, max).map((value) => h("span", { class: "chip" }, value));
    if (values.length > max) {
      shown.push(h("span", { class: "chip", title: values.slice(max).join(", ") }, `+${values.length - max}`));
    }
    return h("div", { class: "chips" }, shown);
  }

  function renderAis(data) {
    const connected = new Map(data.connected.map((ai) => [ai.ai_id, ai]));
    const offline = data.known
      .filter((ai) => !connected.has(ai.ai_id))
      .sort((a, b) => b.last_seen - a.last_seen)
      .slice(0, 20);
    const rows = [
      ...data.connected.map((ai) =>
        h(
          "tr",
          {},
          h("td", {}, h("span", { class: "dot on", title: "online" }), idText(ai.ai_id)),
          h("td", {}, ai.specialization),
          h("td", {}, chips(ai.capabilities)),
          h("td", { class: "num", title: `connected at ${fmtClock(ai.connected_at)}` }, `for ${fmtDuration(hubNow() - ai.connected_at)}`),
        ),
      ),
      ...offline.map((ai) =>
        h(
          "tr",
          { class: "offline" },
          h("td", {}, h("span", { class: "dot", title: "offline" }), idText(ai.ai_id)),
          h("td", {}, ai.specialization),
          h("td", {}, chips(ai.capabilities)),
          h("td", { class: "num", title: `first seen ${fmtClock(ai.first_seen)}` }, `seen ${fmtAgo(ai.last_seen)}`),
        ),
      ),
    ];
    $("ais_table").tBodies[0].replaceChildren(...rows);
    $("ais_empty").hidden = rows.length > 0;
    $("ais_summary").textContent = `${fmtInt(data.connected.length)} online · ${fmtInt(data.known.length)} known`;
  }

  function renderCollaborations(active, recent) {
    const seen = new Set();
    const all = [...active, ...recent].filter((c) => !seen.has(c.collaboration_id) && seen.add(c.collaboration_id));
    const rows = all.map((c) => {
      const pct = Math.max(0, Math.min(100, Number(c.progress) || 0));
      const fill = h("span");
      fill.style.width = `${pct}%`; // CSSOM, allowed by the CSP (unlike a style attribute)
      const statusTitle = c.reason ? `${c.status}: ${c.reason}` : c.ended_at ? `${c.status} at ${fmtClock(c.ended_at)}` : c.status;
      return h(
        "tr",
        { title: c.collaboration_id },
        h("td", {}, idText(c.requester), h("span", { class: "muted" }, " ↔ "), idText(c.acceptor)),
        h(
          "td",
          {},
          h(
            "div",
            { class: "progress" },
            h("div", { class: `bar ${c.status}`, role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": pct }, fill),
            h("span", { class: "pct" }, `${Math.round(pct)}%`),
          ),
        ),
        h("td", {}, h("span", { class: `status ${c.status}`, title: statusTitle }, c.status)),
        h("td", { class: "num", title: fmtClock(c.started_at) }, fmtAgo(c.started_at)),
      );
    });
    $("collabs_table").tBodies[0].replaceChildren(...rows);
    $("collabs_empty").hidden = rows.length > 0;
    $("collabs_summary").textContent = `${fmtInt(active.length)} active · ${fmtInt(all.length - active.length)} ended shown`;
  }

  function renderFeed(patterns, components) {
    const items = [
      ...patterns.map((p) => ({ kind: "pattern", id: p.pattern_id, quality: null, data: p.pattern_data, ...p })),
      ...components.map((c) => ({ kind: "component", id: c.component_id, quality: c.quality_score, data: c.component_data, ...c })),
    ]
      .sort((a, b) => b.timestamp - a.timestamp)
      .slice(0, 25);
    const rows = items.map((item) =>
      h(
        "tr",
        {},
        h("td", {}, h("span", { class: `kind ${item.kind}` }, item.kind)),
        h("td", {}, idText(item.id, `${item.id}\n${preview(item.data)}`)),
        h("td", {}, idText(item.contributor)),
        h("td", { class: "num", title: fmtAgo(item.timestamp) }, fmtClock(item.timestamp)),
        h("td", { class: "num" }, typeof item.quality === "number" ? item.quality.toFixed(2) : "—"),
        h("td", { class: "num" }, fmtInt(item.usage_count)),
      ),
    );
    $("feed_table").tBodies[0].replaceChildren(...rows);
    $("feed_empty").hidden = rows.length > 0;
  }

  // ------------------------------------------------------------------ chart

  function loadHiddenSeries() {
    try {
      return new Set(JSON.parse(localStorage.getItem("kernal.hiddenSeries") || "[]"));
    } catch {
      return new Set();
    }
  }

  function buildLegend() {
    const legend = $("legend");
    legend.replaceChildren(
      ...SERIES.map(({ key, label }) => {
        const button = h("button", { type: "button", class: `s-${key}`, "aria-pressed": !state.hidden.has(key) ? "true" : "false" }, label);
        button.addEventListener("click", () => {
          if (state.hidden.has(key)) state.hidden.delete(key);
          else state.hidden.add(key);
          button.setAttribute("aria-pressed", state.hidden.has(key) ? "false" : "true");
          try {
            localStorage.setItem("kernal.hiddenSeries", JSON.stringify([...state.hidden]));
          } catch {
            /* private mode: the choice lasts for this page only */
          }
          drawChart();
        });
        return button;
      }),
    );
  }

  function renderHistory(history, live) {
    const points = history.slice();
    // The newest snapshot can be several seconds old: end the lines at the live figures.
    if (live) {
      const last = points[points.length - 1];
      const now = hubNow();
      if (!last || now > last.timestamp) points.push({ timestamp: now, ...pick(live) });
    }
    state.history = points;
    drawChart();
  }

  function pick(status) {
    const out = {};
    for (const { key } of SERIES) out[key] = Number(status[key]) || 0;
    return out;
  }

  /** Round a step up to 1, 2 or 5 times a power of ten, for readable axis ticks. */
  function niceStep(raw) {
    if (!(raw > 0)) return 1;
    const power = 10 ** Math.floor(Math.log10(raw));
    const unit = raw / power;
    return (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 5 ? 5 : 10) * power;
  }

  function drawChart() {
    const chart = $("chart");
    const points = state.history;
    const visible = SERIES.filter(({ key }) => !state.hidden.has(key));
    $("chart_empty").hidden = points.length > 0;
    const width = Math.max(chart.clientWidth, 200);
    const height = Math.max(chart.clientHeight, 120);
    chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
    if (!points.length) {
      chart.replaceChildren();
      state.geometry = null;
      return;
    }
    const pad = { left: 44, right: 12, top: 10, bottom: 22 };
    const innerW = width - pad.left - pad.right;
    const innerH = height - pad.top - pad.bottom;
    let t0 = points[0].timestamp;
    let t1 = points[points.length - 1].timestamp;
    if (t1 - t0 < 1) {
      t0 -= 30;
      t1 += 30;
    }
    const maxValue = Math.max(1, ...points.flatMap((p) => visible.map(({ key }) => p[key] || 0)));
    const step = integerStep(niceStep(maxValue / 4));
    const yMax = Math.ceil(maxValue / step) * step;
    const x = (t) => pad.left + ((t - t0) / (t1 - t0)) * innerW;
    const y = (v) => pad.top + innerH - (v / yMax) * innerH;
    const nodes = [];
    for (let v = 0; v <= yMax + step / 2; v += step) {
      nodes.push(svg("line", { class: "grid-line", x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v) }));
      nodes.push(svg("text", { class: "axis-label", x: pad.left - 6, y: y(v) + 4, "text-anchor": "end" }, fmtInt(v)));
    }
    const tStep = timeStep(t1 - t0, Math.max(2, Math.floor(innerW / 120)));
    for (let t = Math.ceil(t0 / tStep) * tStep; t <= t1; t += tStep) {
      const tx = x(t);
      const anchor = tx < pad.left + 40 ? "start" : tx > width - pad.right - 40 ? "end" : "middle";
      nodes.push(svg("line", { class: "grid-line tick", x1: tx, x2: tx, y1: pad.top + innerH, y2: pad.top + innerH + 4 }));
      nodes.push(svg("text", { class: "axis-label", x: tx, y: height - 6, "text-anchor": anchor }, fmtTick(t, tStep)));
    }
    for (const { key } of visible) {
      const coords = points.map((p) => `${x(p.timestamp).toFixed(1)},${y(p[key] || 0).toFixed(1)}`);
      if (coords.length === 1) coords.push(coords[0]);
      nodes.push(svg("polyline", { class: `series s-${key}`, points: coords.join(" ") }));
    }
    const hover = state.hoverIndex;
    if (hover !== null && points[hover]) {
      const hx = x(points[hover].timestamp);
      nodes.push(svg("line", { class: "cursor", x1: hx, x2: hx, y1: pad.top, y2: pad.top + innerH }));
    }
    chart.replaceChildren(...nodes);
    chart.dataset.points = String(points.length);
    state.geometry = { left: pad.left, innerW, t0, t1, width };
    updateReadout();
  }

  // Round time steps (seconds), so ticks land on whole seconds, minutes or hours.
  const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

  function timeStep(span, maxTicks) {
    return TIME_STEPS.find((step) => span / step <= maxTicks) || Math.ceil(span / maxTicks / 86400) * 86400;
  }

  function fmtTick(unix, step) {
    const date = new Date(unix * 1000);
    if (step >= 86400) return date.toLocaleDateString([], { month: "short", day: "numeric" });
    const options = step < 60 ? { hour: "2-digit", minute: "2-digit", second: "2-digit" } : { hour: "2-digit", minute: "2-digit" };
    return date.toLocaleTimeString([], options);
  }

  // Counts are integers: never draw a 0.5 gridline.
  const integerStep = (step) => Math.max(1, Math.round(step));

  function updateReadout() {
    const points = state.history;
    const point = points[state.hoverIndex ?? points.length - 1];
    if (!point) return;
    const parts = SERIES.map(({ key, label }) => `${label} ${fmtInt(point[key])}`);
    $("chart_readout").textContent = `${fmtClock(point.timestamp)} · ${parts.join(" · ")}`;
  }

  function onChartMove(event) {
    const chart = $("chart");
    const points = state.history;
    if (!points.length || !state.geometry) return;
    const { left, innerW, t0, t1, width } = state.geometry;
    const box = chart.getBoundingClientRect();
    const px = ((event.clientX - box.left) / box.width) * width;
    const t = t0 + ((px - left) / innerW) * (t1 - t0);
    let best = 0;
    for (let i = 1; i < points.length; i += 1) {
      if (Math.abs(points[i].timestamp - t) < Math.abs(points[best].timestamp - t)) best = i;
    }
    if (best !== state.hoverIndex) {
      state.hoverIndex = best;
      drawChart();
    }
  }

  // ------------------------------------------------------------------ start

  function start() {
    buildLegend();
    const chart = $("chart");
    chart.addEventListener("mousemove", onChartMove);
    chart.addEventListener("mouseleave", () => {
      state.hoverIndex = null;
      drawChart();
    });
    new ResizeObserver(() => drawChart()).observe(chart);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) refresh();
    });
    refresh();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
