// The overview: activity history (small multiples), learning curves, the trust graph, newest
// knowledge. Each function takes what the API returned and redraws its part of the page.

import { ratePerMinute, segment, timeChart } from "./charts.js";
import { drawGraph } from "./graph.js";
import { $, aiLink, fmtAgo, fmtClock, fmtDuration, fmtInt, fmtNum, fmtPct, h, hubNow, idText, linkRow, replaceRows, scoreClass, standingBadge } from "./dom.js";

const AI_COLOURS = 8; // classes ai-0 .. ai-7 in the stylesheet

const colours = new Map(); // AI id -> colour index, in order of first appearance on this page

/** A colour class per AI id: the same AI keeps its colour on every chart while the page is open,
 * and the first eight AIs seen get eight different colours. */
export function aiClass(id) {
  if (!colours.has(id)) colours.set(id, colours.size % AI_COLOURS);
  return `ai-${colours.get(id)}`;
}

/** The gap (seconds) beyond which two snapshots are not joined: the hub was down between. */
// 2.5 intervals and a second: a busy hub (or machine) takes a snapshot a little late, and a
// line broken for that would say the hub was down when it was not.
export function gapFor(history) {
  return 2.5 * Math.max(history.stats_interval || 1, history.bucket || 0) + 1;
}

// ------------------------------------------------------------------ history

/**
 * history: /api/views/history; live: the latest status (or null); range: {since, until}.
 * Cards' sub-lines get the current rates.
 */
export function renderHistory(history, live, range, run) {
  const points = history.points.map((p) => ({ ...p }));
  const now = hubNow();
  // The newest snapshot can be seconds old: end the lines at the live figures.
  if (live && (!points.length || now > points[points.length - 1].timestamp)) points.push({ timestamp: now, ...live });
  const gap = gapFor(history);
  const series = (key) => points.map((p) => [p.timestamp, Number(p[key]) || 0]);
  // The range is the most to show: a young hub's chart starts at its first snapshot.
  const t0 = points.length ? Math.max(range.since, points[0].timestamp) : range.since || now - 60;
  const common = { t0, t1: now, gap, runStart: run && run.started_at };
  const none = points.length === 0;
  $("chart_empty").hidden = !none;
  // Rates over 30 s (or six snapshots, if they are further apart than 5 s).
  const window = Math.max(30, 6 * Math.max(history.stats_interval || 1, history.bucket || 0));
  const patterns = ratePerMinute(series("shared_patterns"), gap, window);
  const components = ratePerMinute(series("shared_components"), gap, window);
  const draw = (id, readout, label, cls, data, extra) =>
    timeChart($(id), { ...common, series: [{ label, cls, points: data }], readout: $(readout), ...extra });
  draw("chart_connected", "readout_connected", "Connected", "s-connected_ais", series("connected_ais"), { integer: true });
  draw("chart_collabs", "readout_collabs", "Active", "s-active_collaborations", series("active_collaborations"), { integer: true });
  draw("chart_patterns", "readout_patterns", "Patterns", "s-shared_patterns", patterns, { format: fmtRate });
  draw("chart_components", "readout_components", "Components", "s-shared_components", components, { format: fmtRate });
  $("sub_shared_patterns").textContent = recentRate(series("shared_patterns"), gap, now);
  $("sub_shared_components").textContent = recentRate(series("shared_components"), gap, now);
  const gaps = segment(series("connected_ais"), gap).gaps.length;
  $("history_title").textContent = gaps ? `Activity · hub down ${gaps} time${gaps === 1 ? "" : "s"} in this range` : "Activity";
  if (run) $("run_started").textContent = `at ${fmtClock(run.started_at)}`;
}

const fmtRate = (v) => (v === 0 ? "0" : v >= 10 ? fmtInt(Math.round(v)) : fmtNum(v, v >= 1 ? 1 : 2));

/** Growth per minute over the last 5 minutes of the newest segment, as a card's sub-line. */
function recentRate(points, gap, now) {
  const parts = segment(points, gap).segments;
  const last = parts[parts.length - 1] || [];
  const recent = last.filter(([t]) => t >= now - 300);
  if (recent.length < 2) return "\u00a0";
  const [t0, v0] = recent[0];
  const [t1, v1] = recent[recent.length - 1];
  if (t1 - t0 < 1) return "\u00a0";
  const span = t1 - t0 >= 290 ? "5 min" : fmtDuration(t1 - t0);
  return `${fmtRate((Math.max(0, v1 - v0) / (t1 - t0)) * 60)} per min (last ${span})`;
}

// ------------------------------------------------------------------ learning

const SMOOTH = 5; // peers' scores: the mean of the last five, so one odd rating does not zigzag

/** Per AI, [t, value] points: what it reported itself (its TRAINER_REPORTs, else the accuracy
 * in what it shared), or what its peers' scores say. */
export function learningSeries(learning, mode) {
  const out = {};
  if (mode === "rated") {
    for (const [id, points] of Object.entries(learning.rated || {})) {
      out[id] = points.map((p, i) => {
        const window = points.slice(Math.max(0, i - SMOOTH + 1), i + 1);
        return [p.timestamp, window.reduce((sum, q) => sum + q.score, 0) / window.length];
      });
    }
  } else {
    for (const [id, points] of Object.entries(learning.series)) out[id] = points.map((p) => [p.timestamp, p.accuracy]);
    // What a trainer measured and reported to the hub beats what it wrote into its shares.
    for (const [id, points] of Object.entries(learning.reported || {})) if (points.length) out[id] = points.map((p) => [p.timestamp, p.accuracy]);
  }
  return out;
}

const mean = (values) => (values.length ? values.reduce((sum, v) => sum + v, 0) / values.length : null);

/** The mean local-only and centralized baselines the trainers reported, each null if none. */
export function baselineFigures(learning) {
  const all = Object.values(learning.baselines || {});
  const pick = (key) => mean(all.map((b) => b[key]).filter((v) => typeof v === "number"));
  return { local: pick("local_only_accuracy"), central: pick("centralized_baseline") };
}

/** Round a tenth below the lowest value: differences of a few points must show. */
export const floorTenth = (points) => (points.length ? Math.max(0, Math.floor(Math.min(...points.map((p) => p[1])) * 10 - 0.5) / 10) : 0);

/** Is anyone getting better? Each trainer's accuracy over time, and first -> latest. */
export function renderLearning(learning, range, run, mode) {
  const byAi = learningSeries(learning, mode);
  const ids = Object.keys(byAi).sort();
  for (const id of ids) aiClass(id);
  const series = ids.map((id) => ({ label: id, cls: aiClass(id), points: byAi[id] }));
  const now = hubNow();
  const all = series.flatMap((s) => s.points);
  const t0 = all.length ? Math.max(range.since, Math.min(...all.map((p) => p[0]))) : range.since || now - 60;
  // Baselines as flat dashed lines across the chart, when trainers reported them.
  const base = mode === "rated" ? { local: null, central: null } : baselineFigures(learning);
  if (all.length && base.local !== null) series.push({ label: "local-only (mean)", cls: "baseline local", points: [[t0, base.local], [now, base.local]] });
  if (all.length && base.central !== null) series.push({ label: "centralized", cls: "baseline central", points: [[t0, base.central], [now, base.central]] });
  // Reports come when a trainer shares, not on a clock: a pause is not a gap.
  timeChart($("learning_chart"), {
    series,
    t0,
    t1: now,
    gap: Infinity,
    runStart: run && run.started_at,
    yMin: floorTenth(all),
    yMax: 1,
    format: (v) => `${Math.round(v * 100)}%`,
    readout: $("learning_readout"),
    empty: $("learning_empty"),
  });
  const rows = ids
    .map((id) => {
      const points = byAi[id];
      const first = points[0][1];
      const last = points[points.length - 1][1];
      return { id, first, last, change: last - first, count: points.length };
    })
    .sort((a, b) => b.change - a.change || a.id.localeCompare(b.id));
  $("learning_count_head").textContent = mode === "rated" ? "Scores" : "Reports";
  replaceRows(
    $("learning_table").tBodies[0],
    rows.map((r) =>
      linkRow(
        `#/ai/${encodeURIComponent(r.id)}`,
        { "data-key": r.id },
        h("td", {}, h("span", { class: `key ${aiClass(r.id)}` }), aiLink(r.id)),
        h("td", { class: "num" }, fmtPct(r.first)),
        h("td", { class: "num" }, fmtPct(r.last)),
        h("td", { class: `num change ${r.change > 0.005 ? "up" : r.change < -0.005 ? "down" : ""}` }, `${r.change >= 0 ? "+" : "−"}${(Math.abs(r.change) * 100).toFixed(1)} pts`),
        h("td", { class: "num" }, fmtInt(r.count)),
      ),
    ),
  );
  const better = rows.filter((r) => r.change > 0.005 && r.count > 1).length;
  const what = mode === "rated" ? "as their peers rate them" : "by their own reports";
  const baselines = [base.local !== null ? `local-only ${fmtPct(base.local)}` : null, base.central !== null ? `centralized ${fmtPct(base.central)}` : null].filter(Boolean);
  $("learning_summary").textContent = rows.length ? `${better} of ${rows.length} trainer${rows.length === 1 ? "" : "s"} got better in this range, ${what}.${baselines.length ? ` Baselines: ${baselines.join(", ")}.` : ""}` : "";
}

// ------------------------------------------------------------------ trust

/** Edges of the reputation trainers hold of their peers (TRAINER_REPORT): coloured by it,
 * dashed when the truster distrusts the peer. */
export function heldEdges(held) {
  return held.map((e) => ({
    from: e.truster,
    to: e.peer,
    directed: true,
    cls: `${scoreClass(e.reputation)}${e.distrusted ? " distrusted" : ""}`,
    width: e.distrusted ? 2.5 : 1.5,
    title: `${e.truster} holds ${e.peer} at ${e.reputation === null ? "no reputation" : fmtNum(e.reputation)}${e.distrusted ? " (distrusted)" : ""}${e.rejected ? `; refused ${e.rejected} request${e.rejected === 1 ? "" : "s"} (${e.reason})` : ""}${e.merges_refused ? `; refused ${e.merges_refused} model${e.merges_refused === 1 ? "" : "s"} (${e.merge_reason})` : ""}; reported ${fmtAgo(e.reported_at)}`,
  }));
}

/** Who trusts whom (the trainers' own reputation of each peer when they report it, else
 * FEEDBACK: rater -> contributor) and who is being shut out. */
export function renderTrust(trust, ais) {
  const line = trust.shut_out_below;
  $("shut_out_line").textContent = String(line);
  const profile = new Map(ais.map((ai) => [ai.ai_id, ai]));
  const held = trust.held || [];
  const ids = [...new Set([...trust.edges.flatMap((e) => [e.rater, e.contributor]), ...held.flatMap((e) => [e.truster, e.peer]), ...ais.filter((ai) => ai.online).map((ai) => ai.ai_id)])].sort();
  const isLow = (id) => {
    const ai = profile.get(id);
    const standing = ai ? ai.standing : trust.standings[id];
    return typeof standing === "number" && standing < line && (!ai || ai.ratings > 0);
  };
  const nodes = ids.map((id) => {
    const ai = profile.get(id);
    const standing = ai ? ai.standing : trust.standings[id];
    return {
      id,
      label: id,
      cls: `${isLow(id) ? "low" : ""} ${ai && ai.online ? "online" : "offline"}`,
      title: `${id}: standing ${fmtNum(standing)}${ai ? ` from ${ai.ratings} ratings` : ""}${isLow(id) ? " (shut out)" : ""}`,
      href: `#/ai/${encodeURIComponent(id)}`,
    };
  });
  const maxCount = Math.max(1, ...trust.edges.map((e) => e.count));
  const rated = trust.edges.map((e) => ({
    from: e.rater,
    to: e.contributor,
    directed: true,
    cls: scoreClass(e.mean_score),
    width: 1 + 3 * Math.sqrt(e.count / maxCount),
    title: `${e.rater} rated ${e.contributor}'s work ${e.count} time${e.count === 1 ? "" : "s"}${e.mean_score === null ? " (no score)" : `, mean score ${fmtNum(e.mean_score)}`}; last ${fmtAgo(e.last_at)}`,
  }));
  const edges = held.length ? heldEdges(held) : rated;
  $("trust_source").textContent = held.length ? "Arrow: trainer → peer, coloured by the reputation the trainer holds (its own report); dashed: distrusted." : "Arrow: rater → contributor, coloured by mean score of its FEEDBACK.";
  drawGraph($("trust_graph"), "trust", nodes, edges, { empty: $("trust_empty") });
  const refused = held.filter((e) => e.rejected > 0).sort((a, b) => b.rejected - a.rejected || a.truster.localeCompare(b.truster) || a.peer.localeCompare(b.peer));
  $("refused").replaceChildren(
    ...(refused.length
      ? refused.map((e) => h("li", {}, aiLink(e.truster), " refused ", aiLink(e.peer), h("span", { class: "muted" }, ` ${fmtInt(e.rejected)} time${e.rejected === 1 ? "" : "s"} · ${e.reason}`)))
      : [h("li", { class: "muted" }, "No trainer reported refusing a request.")]),
  );
  const merges = held.filter((e) => e.merges_refused > 0).sort((a, b) => b.merges_refused - a.merges_refused || a.truster.localeCompare(b.truster) || a.peer.localeCompare(b.peer));
  $("refused_merges").replaceChildren(
    ...(merges.length
      ? merges.map((e) => h("li", {}, aiLink(e.truster), " refused ", aiLink(e.peer), "'s model", h("span", { class: "muted" }, ` ${fmtInt(e.merges_refused)} time${e.merges_refused === 1 ? "" : "s"} · ${e.merge_reason}`)))
      : [h("li", { class: "muted" }, "No trainer reported refusing a model.")]),
  );
  const low = ais.filter((ai) => ai.ratings > 0 && ai.standing < line).sort((a, b) => a.standing - b.standing);
  $("shut_out").replaceChildren(
    ...(low.length
      ? low.map((ai) => h("li", {}, aiLink(ai.ai_id), " ", standingBadge(ai.standing, line, ai.ratings), h("span", { class: "muted" }, ` · ${ai.ratings} ratings${ai.online ? " · online" : ""}`)))
      : [h("li", { class: "muted" }, `Nobody: no rated AI stands below ${line}.`)]),
  );
  const pairs = held.length ? `${fmtInt(held.length)} trust pair${held.length === 1 ? "" : "s"} reported` : `${fmtInt(trust.edges.length)} rating pair${trust.edges.length === 1 ? "" : "s"}`;
  $("trust_summary").textContent = `${pairs} · ${fmtInt(low.length)} shut out`;
}

// ------------------------------------------------------------------ newest knowledge

export function knowledgeRow(item, withContributor = true) {
  const href = `#/knowledge/${item.kind}/${encodeURIComponent(item.item_id)}`;
  return linkRow(
    href,
    { "data-key": `${item.kind}:${item.item_id}` },
    h("td", {}, h("span", { class: `kind ${item.kind}` }, item.kind)),
    h("td", {}, idText(item.item_id)),
    withContributor ? h("td", {}, aiLink(item.contributor)) : null,
    h("td", { class: "num", title: fmtAgo(item.timestamp) }, fmtClock(item.timestamp)),
    h("td", { class: "num" }, fmtPct(item.accuracy)),
    withContributor ? h("td", { class: "num" }, fmtNum(item.quality_score)) : null,
    h("td", { class: "num" }, fmtInt(item.usage_count)),
  );
}

export function renderFeed(page) {
  replaceRows($("feed_table").tBodies[0], page.items.map((item) => knowledgeRow(item)));
  $("feed_empty").hidden = page.items.length > 0;
}
