// kernal hub dashboard: headline figures pushed by the hub (server-sent events on /api/events,
// polling /status when the stream is unavailable), views refreshed every 3 s, hash routes:
//   #/  overview     #/ais  every AI     #/ai/ID  one AI
//   #/knowledge  browser (#/knowledge/KIND/ID opens one item)     #/collaborations
//   #/trainers  start and stop trainers the hub runs (trainers.js)
//
// Everything shown comes from AI clients and is untrusted: it only ever enters the page as text
// (see dom.js): never parsed as markup, never evaluated; the CSP forbids inline script and style.

import { $, HttpError, clock, describe, fmtDuration, fmtInt, getJSON, hubNow } from "./dom.js";
import { renderFeed, renderHistory, renderLearning, renderTrust } from "./overview.js";
import { renderAi, renderAis, renderCollaborations, renderItem, renderKnowledge } from "./pages.js";
import { bindTrainers, renderAiTrainer, renderTrainers } from "./trainers.js";

const REFRESH_MS = 3000;
const TIMEOUT_MS = 2500; // a slow hub must not stack requests: abort before the next tick
const SSE_RETRY_MS = 30_000; // after the hub refused a stream (503), poll this long before retrying
const FIGURES = ["connected_ais", "shared_patterns", "shared_components", "active_collaborations"];
const RANGES = [
  ["900", "15 min"],
  ["3600", "1 h"],
  ["86400", "24 h"],
  ["run", "this run"],
  ["all", "all"],
];
const KNOWLEDGE_PAGE = 100;

const stored = (key, fallback) => {
  try {
    return localStorage.getItem(`kernal.${key}`) ?? fallback;
  } catch {
    return fallback;
  }
};
const store = (key, value) => {
  try {
    localStorage.setItem(`kernal.${key}`, value);
  } catch {
    /* private mode: the choice lasts for this page only */
  }
};

const state = {
  run: null, // {started_at, stats_interval, shut_out_below}
  live: null, // the latest headline figures
  events: null, // the EventSource, while open
  eventsOpen: false,
  pushes: 0,
  refreshes: 0,
  inflight: false,
  again: false,
  timer: null,
  soon: null,
  range: stored("range", "3600"),
  learningMode: stored("learningMode", "reported"),
  theme: stored("theme", "auto"),
  aisFilter: "",
  knowledge: { q: "", kind: "", contributor: "", time: "all", offset: 0 },
  collabs: { earlier: false, status: "" },
  launched: new Set(), // AI ids the hub launched (their pages show the process and its logs)
  lastFailures: [],
  reveal: false, // scroll the item panel into view once it is filled
  uptimeBase: null, // {uptime, at}: the hub's uptime and when (browser ms) it was read
};

// ------------------------------------------------------------------ routes

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  const decode = (s) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  if (parts[0] === "ais") return { name: "ais" };
  if (parts[0] === "ai" && parts[1]) return { name: "ai", id: decode(parts.slice(1).join("/")) };
  if (parts[0] === "knowledge") {
    return parts[1] && parts[2] ? { name: "knowledge", kind: parts[1], id: decode(parts.slice(2).join("/")) } : { name: "knowledge" };
  }
  if (parts[0] === "collaborations") return { name: "collaborations" };
  if (parts[0] === "trainers") return { name: "trainers" };
  return { name: "overview" };
}

function showRoute() {
  const current = route();
  const view = current.name === "ai" ? "ai" : current.name;
  for (const name of ["overview", "ais", "ai", "knowledge", "collaborations", "trainers"]) $(`view_${name}`).hidden = name !== view;
  for (const tab of document.querySelectorAll(".tabs a")) {
    const active = tab.dataset.route === (view === "ai" ? "ais" : view);
    if (active) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  if (current.name !== "knowledge" || !current.id) $("item_panel").hidden = true;
  state.reveal = current.name === "knowledge" && Boolean(current.id);
  document.body.dataset.route = view;
  refresh();
}

const sinceOf = (range) => {
  if (range === "all") return 0;
  if (range === "run") return state.run ? state.run.started_at : 0;
  // Whole tens of seconds: pages polling the same range ask the same question, which the hub
  // answers once for all of them (it keeps answers for 2.5 s).
  return Math.max(0, Math.floor((hubNow() - Number(range)) / 10) * 10);
};

// ------------------------------------------------------------------ fetching

/** What the current view needs, as {name: path}. */
function wanted(current) {
  const since = sinceOf(state.range);
  const out = {};
  if (!state.eventsOpen) out.status = "/status";
  if (!state.run) out.run = "/api/views/run";
  if (current.name === "overview") {
    const points = Math.min(2000, Math.max(100, Math.round($("chart_connected").clientWidth || 600)));
    out.history = `/api/views/history?since=${since}&points=${points}`;
    out.learning = `/api/views/learning?since=${since}`;
    out.trust = `/api/views/trust?since=${since}`;
    out.ais = "/api/views/ais";
    out.feed = "/api/views/knowledge?limit=12";
  } else if (current.name === "ais") {
    out.ais = "/api/views/ais";
  } else if (current.name === "ai") {
    const id = encodeURIComponent(current.id);
    out.ais = "/api/views/ais";
    out.trust = "/api/views/trust";
    out.learning = "/api/views/learning";
    out.items = `/api/views/knowledge?contributor=${id}&limit=50`;
    out.collaborations = "/api/collaborations?limit=500";
    out.trainers = "/api/trainers";
    if (state.launched.has(current.id)) out.trainerLogs = `/api/trainers/${id}/logs?lines=500`;
  } else if (current.name === "knowledge") {
    const k = state.knowledge;
    const params = new URLSearchParams({ limit: String(KNOWLEDGE_PAGE), offset: String(k.offset) });
    if (k.q) params.set("q", k.q);
    if (k.kind) params.set("kind", k.kind);
    if (k.contributor) params.set("contributor", k.contributor);
    if (k.time !== "all") params.set("since", String(sinceOf(k.time)));
    out.knowledge = `/api/views/knowledge?${params}`;
    if (current.id) {
      const kind = current.kind === "component" ? "component" : "pattern";
      out.item = `/api/${kind}s/${encodeURIComponent(current.id)}`;
      out.itemRatings = `/api/ratings/${kind}/${encodeURIComponent(current.id)}?limit=200`;
    }
  } else if (current.name === "collaborations") {
    out.collaborations = `/api/collaborations?limit=500${state.collabs.status ? `&status=${state.collabs.status}` : ""}`;
  } else if (current.name === "trainers") {
    out.trainers = "/api/trainers";
  }
  return out;
}

async function refresh() {
  if (state.inflight) {
    state.again = true; // a change arrived mid-refresh: one more right after
    return;
  }
  clearTimeout(state.timer);
  if (document.hidden) return schedule(); // nobody is looking: skip, catch up when visible
  state.inflight = true;
  try {
    await refreshOnce();
  } finally {
    state.inflight = false;
    if (state.again) {
      state.again = false;
      setTimeout(refresh, 0);
    } else {
      schedule();
    }
  }
}

async function refreshOnce() {
  const current = route();
  const paths = wanted(current);
  const controller = new AbortController();
  const timeout = setTimeout(() => controller.abort(), TIMEOUT_MS);
  const names = Object.keys(paths);
  const results = await Promise.allSettled(names.map((name) => getJSON(paths[name], controller.signal)));
  clearTimeout(timeout);
  const got = {};
  const failures = [];
  names.forEach((name, i) => {
    const result = results[i];
    if (result.status === "fulfilled") got[name] = result.value;
    else if (!((name === "item" || name === "itemRatings" || name === "trainerLogs") && result.reason instanceof HttpError && /HTTP 404/.test(result.reason.message))) failures.push(result.reason);
  });
  if (got.run) state.run = got.run;
  if (got.trainers) state.launched = new Set(got.trainers.trainers.map((t) => t.ai_id));
  if (got.status) showStatus(got.status);
  const guard = (fn) => {
    try {
      fn();
    } catch (err) {
      console.error("dashboard render failed", err);
    }
  };
  const ctx = { run: state.run, line: state.run ? state.run.shut_out_below : 0.5 };
  if (current.name === "overview") {
    const range = { since: sinceOf(state.range) };
    if (got.history) guard(() => renderHistory(got.history, state.live, range, state.run));
    if (got.learning) guard(() => renderLearning(got.learning, range, state.run, state.learningMode));
    if (got.trust && got.ais) guard(() => renderTrust(got.trust, got.ais));
    if (got.feed) guard(() => renderFeed(got.feed));
  } else if (current.name === "ais" && got.ais) {
    guard(() => renderAis(got.ais, state.aisFilter, ctx.line));
  } else if (current.name === "ai" && got.ais && got.trust && got.learning && got.items && got.collaborations) {
    const ai = got.ais.find((a) => a.ai_id === current.id);
    guard(() => renderAi(current.id, { ai, trust: got.trust, learning: got.learning, items: got.items, collaborations: got.collaborations }, ctx));
    guard(() => renderAiTrainer(current.id, got.trainers, got.trainerLogs, refreshSoon));
    // Launched since the last look: fetch its logs on the next refresh, right away.
    if (got.trainers && state.launched.has(current.id) && !got.trainerLogs) refreshSoon();
  } else if (current.name === "knowledge") {
    if (got.knowledge) {
      guard(() => renderKnowledge(got.knowledge, state.knowledge));
      $("knowledge_table").dataset.query = paths.knowledge; // which filters the rows answer
    }
    if (current.id && (got.item || !failures.length)) {
      guard(() => renderItem(current.kind, current.id, got.item || null, got.itemRatings || []));
      if (state.reveal) $("item_panel").scrollIntoView({ block: "nearest" }); // just opened
      state.reveal = false;
    }
  } else if (current.name === "collaborations" && got.collaborations) {
    guard(() => renderCollaborations(got.collaborations, { ...ctx, ...state.collabs }));
  } else if (current.name === "trainers" && got.trainers) {
    guard(() => renderTrainers(got.trainers, refreshSoon));
  }
  // Reachable: the stream is open, or any request got an answer.
  const reachable = state.eventsOpen || names.length === 0 || Object.keys(got).length > 0;
  setConnection(reachable, failures);
  state.refreshes += 1;
  document.body.dataset.refreshes = String(state.refreshes);
}

function schedule() {
  clearTimeout(state.timer);
  state.timer = setTimeout(refresh, REFRESH_MS);
}

/** Refresh shortly (coalescing bursts), e.g. when pushed figures say something changed. */
function refreshSoon() {
  clearTimeout(state.soon);
  state.soon = setTimeout(refresh, 250);
}

// ------------------------------------------------------------------ live figures

function showStatus(reply) {
  // On a cluster (--bus) the cards count the whole cluster, as the history does.
  const cluster = reply.cluster;
  const status = cluster ? { ...reply, connected_ais: cluster.connected_ais, active_collaborations: cluster.active_collaborations } : reply;
  const badge = $("cluster_badge");
  badge.hidden = !cluster;
  if (cluster) {
    const n = cluster.replicas.length;
    badge.textContent = `${fmtInt(n)} replica${n === 1 ? "" : "s"} · this is ${reply.replica}`;
    badge.title = cluster.replicas.map((r) => `${r.replica}${r.address ? ` (${r.address})` : ""}: ${r.connected_ais} AIs`).join("\n");
  }
  const changed = !state.live || FIGURES.some((key) => state.live[key] !== status[key]);
  state.live = Object.fromEntries(FIGURES.map((key) => [key, Number(status[key]) || 0]));
  for (const key of FIGURES) {
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
  if (typeof status.uptime === "number") {
    // Uptime went back: the hub restarted (seen by polling too), so this is a new run.
    if (state.uptimeBase && status.uptime + 1 < state.uptimeBase.uptime) state.run = null;
    state.uptimeBase = { uptime: status.uptime, at: Date.now() };
  }
  showUptime();
  $("demo_badge").hidden = !status.demo_tokens;
  if (typeof status.server_time === "number") setSkew(status.server_time * 1000);
  return changed;
}

// Pushed figures come only when they change: the uptime counts on here between them.
function showUptime() {
  const base = state.uptimeBase;
  $("uptime").textContent = base ? fmtDuration(base.uptime + (Date.now() - base.at) / 1000) : "–";
}

function setSkew(serverMs) {
  // Below 2 s of difference, trust the browser's clock (network delay blurs the reading).
  const skew = serverMs - Date.now();
  clock.skewMs = Math.abs(skew) < 2000 ? 0 : skew;
}

function connectEvents() {
  if (typeof EventSource === "undefined" || state.events) return;
  const events = new EventSource("/api/events");
  state.events = events;
  events.addEventListener("open", () => {
    state.eventsOpen = true;
    document.body.dataset.stream = "open";
  });
  events.addEventListener("run", (event) => {
    const run = JSON.parse(event.data);
    // The hub restarted while the page stayed open: a new run, read its details again.
    if (state.run && state.run.started_at !== run.started_at) {
      state.run = null;
      refreshSoon();
    }
    setSkew(run.server_time * 1000);
  });
  events.addEventListener("status", (event) => {
    state.eventsOpen = true;
    state.pushes += 1;
    document.body.dataset.pushes = String(state.pushes);
    if (showStatus(JSON.parse(event.data))) refreshSoon();
    setConnection(true, state.lastFailures);
  });
  events.addEventListener("closing", () => dropEvents(REFRESH_MS));
  events.addEventListener("error", () => {
    // EventSource retries by itself while CONNECTING; CLOSED means the hub refused (503).
    state.eventsOpen = false;
    document.body.dataset.stream = "down";
    if (events.readyState === EventSource.CLOSED) dropEvents(SSE_RETRY_MS);
    refreshSoon(); // poll /status meanwhile
  });
}

function dropEvents(retryMs) {
  if (state.events) state.events.close();
  state.events = null;
  state.eventsOpen = false;
  document.body.dataset.stream = "down";
  setTimeout(connectEvents, retryMs);
  refreshSoon();
}

function setConnection(reachable, failures) {
  state.lastFailures = failures;
  const pill = $("connection");
  document.body.classList.toggle("stale", !reachable);
  $("unreachable").hidden = reachable;
  if (!reachable) {
    $("unreachable_detail").textContent = `${describe(failures[0], TIMEOUT_MS)} The figures below are from the last successful update.`;
    pill.className = "pill down";
    pill.textContent = "Hub unreachable";
    return;
  }
  const now = new Date();
  const stamp = $("last_updated");
  stamp.textContent = now.toLocaleTimeString();
  stamp.setAttribute("datetime", now.toISOString());
  pill.className = failures.length ? "pill partial" : state.eventsOpen ? "pill live" : "pill polling";
  pill.textContent = failures.length ? "Live (some data unavailable)" : state.eventsOpen ? "Live" : "Live (polling)";
  pill.title = failures.length ? failures.map((f) => describe(f, TIMEOUT_MS)).join("\n") : state.eventsOpen ? "Figures pushed by the hub as they change" : "Figures polled every 3 s (no event stream)";
}

// ------------------------------------------------------------------ controls

const THEMES = ["auto", "light", "dark"];

function applyTheme() {
  const root = document.documentElement;
  if (state.theme === "auto") delete root.dataset.theme;
  else root.dataset.theme = state.theme;
  const button = $("theme_toggle");
  button.textContent = `Theme: ${state.theme}`;
  button.setAttribute("aria-label", `Colour theme: ${state.theme === "auto" ? "follow the system" : state.theme}; press to change`);
}

function buildRange() {
  const group = $("range");
  const buttons = RANGES.map(([value, label]) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "ghost";
    button.textContent = label;
    button.dataset.range = value;
    button.addEventListener("click", () => {
      state.range = value;
      store("range", value);
      for (const other of buttons) other.setAttribute("aria-pressed", String(other.dataset.range === value));
      refresh();
    });
    button.setAttribute("aria-pressed", String(value === state.range));
    return button;
  });
  group.replaceChildren(...buttons);
}

function bindLearningMode() {
  const buttons = [...document.querySelectorAll("#learning_mode button")];
  const press = () => {
    for (const b of buttons) b.setAttribute("aria-pressed", String(b.dataset.mode === state.learningMode));
  };
  for (const button of buttons) {
    button.addEventListener("click", () => {
      state.learningMode = button.dataset.mode;
      store("learningMode", state.learningMode);
      press();
      refresh();
    });
  }
  press();
}

function bindControls() {
  bindLearningMode();
  bindTrainers(refreshSoon);
  $("theme_toggle").addEventListener("click", () => {
    state.theme = THEMES[(THEMES.indexOf(state.theme) + 1) % THEMES.length];
    store("theme", state.theme);
    applyTheme();
  });
  $("ais_filter").addEventListener("input", (event) => {
    state.aisFilter = event.target.value;
    refreshSoon();
  });
  const k = state.knowledge;
  const onFilter = () => {
    k.q = $("kq").value.trim();
    k.kind = $("kkind").value;
    k.contributor = $("kcontributor").value;
    k.time = $("ktime").value;
    k.offset = 0;
    refreshSoon();
  };
  for (const id of ["kq", "kkind", "kcontributor", "ktime"]) $(id).addEventListener(id === "kq" ? "input" : "change", onFilter);
  $("knowledge_filters").addEventListener("submit", (event) => event.preventDefault());
  $("kprev").addEventListener("click", () => {
    k.offset = Math.max(0, k.offset - KNOWLEDGE_PAGE);
    refresh();
  });
  $("knext").addEventListener("click", () => {
    k.offset += KNOWLEDGE_PAGE;
    refresh();
  });
  $("collabs_earlier").addEventListener("change", (event) => {
    state.collabs.earlier = event.target.checked;
    refresh();
  });
  $("collabs_status").addEventListener("change", (event) => {
    state.collabs.status = event.target.value;
    refresh();
  });
  // Rows that lead somewhere: click anywhere on them, or focus them and press Enter.
  document.addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-href]");
    if (row && !event.target.closest("a, button, input, select")) location.hash = row.dataset.href;
  });
  document.addEventListener("keydown", (event) => {
    const row = event.target.closest && event.target.closest("tr[data-href]");
    if (row && event.key === "Enter" && event.target === row) location.hash = row.dataset.href;
    if (event.target.closest && event.target.closest("tbody tr") && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
      const next = event.key === "ArrowDown" ? event.target.nextElementSibling : event.target.previousElementSibling;
      if (next && next.tabIndex >= 0) {
        next.focus();
        event.preventDefault();
      }
    }
  });
}

// ------------------------------------------------------------------ start

function start() {
  applyTheme();
  buildRange();
  bindControls();
  window.addEventListener("hashchange", showRoute);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refresh();
  });
  let resizeTimer = null;
  new ResizeObserver(() => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(refresh, 200);
  }).observe(document.body);
  setInterval(showUptime, 1000);
  connectEvents();
  showRoute();
}

start();
