// The pages behind the tabs: every AI, one AI, the knowledge browser, collaborations.

import { timeChart } from "./charts.js";
import { drawGraph } from "./graph.js";
import { $, aiLink, chips, fmtAgo, fmtClock, fmtDuration, fmtInt, fmtNum, fmtPct, h, hubNow, idText, linkRow, replaceRows, scoreClass, standingBadge } from "./dom.js";
import { aiClass, floorTenth, knowledgeRow, learningSeries } from "./overview.js";

const MAX_DATA_CHARS = 50_000; // a model can be large: show the start, say how much is left

function seen(ai) {
  // On a cluster (--bus), which replica the AI is connected to; null on one hub.
  const where = ai.replica ? ` on ${ai.replica}` : "";
  return ai.online
    ? h("span", { title: `connected at ${fmtClock(ai.connected_at)}${where}` }, `online for ${fmtDuration(hubNow() - ai.connected_at)}${where}`)
    : h("span", { title: `first seen ${fmtClock(ai.first_seen)}` }, `seen ${fmtAgo(ai.last_seen)}`);
}

// ------------------------------------------------------------------ every AI

export function renderAis(ais, filter, line) {
  const needle = filter.trim().toLowerCase();
  const shown = ais
    .filter((ai) => !needle || ai.ai_id.toLowerCase().includes(needle) || ai.specialization.toLowerCase().includes(needle))
    .sort((a, b) => Number(b.online) - Number(a.online) || b.last_seen - a.last_seen || a.ai_id.localeCompare(b.ai_id));
  const rows = shown.map((ai) =>
    linkRow(
      `#/ai/${encodeURIComponent(ai.ai_id)}`,
      { "data-key": ai.ai_id, class: ai.online ? "" : "offline" },
      h("td", {}, h("span", { class: `dot ${ai.online ? "on" : ""}`, title: ai.online ? "online" : "offline" }), aiLink(ai.ai_id)),
      h("td", {}, ai.specialization),
      h("td", {}, chips(ai.capabilities)),
      h("td", { class: "num" }, seen(ai)),
      h("td", { class: "num" }, fmtInt(ai.patterns)),
      h("td", { class: "num" }, fmtInt(ai.components)),
      h("td", { class: "num" }, standingBadge(ai.standing, line, ai.ratings)),
    ),
  );
  replaceRows($("ais_table").tBodies[0], rows);
  $("ais_empty").hidden = rows.length > 0;
  $("ais_empty").textContent = ais.length ? "No AI matches the filter." : "No AI has connected yet.";
  const online = ais.filter((ai) => ai.online).length;
  $("ais_summary").textContent = `${fmtInt(online)} online · ${fmtInt(ais.length)} known${needle ? ` · ${fmtInt(shown.length)} shown` : ""}`;
}

// ------------------------------------------------------------------ one AI

function dl(node, pairs) {
  node.replaceChildren(...pairs.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
}

function ratingRows(edges, who) {
  return edges.map((e) =>
    linkRow(
      `#/ai/${encodeURIComponent(e[who])}`,
      { "data-key": e[who] },
      h("td", {}, aiLink(e[who])),
      h("td", { class: "num" }, fmtInt(e.count)),
      h("td", { class: "num" }, h("span", { class: `score ${scoreClass(e.mean_score)}` }, fmtNum(e.mean_score))),
      h("td", { class: "num", title: fmtClock(e.last_at) }, fmtAgo(e.last_at)),
    ),
  );
}

/** data: {ai, trust, learning, items, collaborations}; ``ai`` is undefined for an unknown id. */
export function renderAi(id, data, ctx) {
  const { ai, trust, learning, items, collaborations } = data;
  $("ai_title").replaceChildren(h("span", { class: `dot ${ai && ai.online ? "on" : ""}` }), idText(id));
  $("ai_missing").hidden = Boolean(ai);
  if (ai) {
    dl($("ai_profile"), [
      ["Status", seen(ai)],
      ["Specialization", ai.specialization],
      ["Capabilities", chips(ai.capabilities, 20)],
      ["Standing", h("span", {}, standingBadge(ai.standing, ctx.line, ai.ratings), h("span", { class: "muted" }, ` from ${fmtInt(ai.ratings)} scored rating${ai.ratings === 1 ? "" : "s"}`))],
      ["Shared", `${fmtInt(ai.patterns)} patterns · ${fmtInt(ai.components)} components${ai.last_shared ? ` · last ${fmtAgo(ai.last_shared)}` : ""}`],
      ["First seen", fmtClock(ai.first_seen)],
    ]);
  } else {
    $("ai_profile").replaceChildren();
  }
  const points = learningSeries(learning, "reported")[id] || [];
  const rated = learningSeries(learning, "rated")[id] || [];
  const now = hubNow();
  const both = [...points, ...rated];
  timeChart($("ai_learning_chart"), {
    series: [
      { label: "reported", cls: aiClass(id), points },
      { label: "rated by peers", cls: "rated", points: rated },
    ],
    t0: both.length ? Math.min(...both.map((p) => p[0])) : now - 60,
    t1: now,
    gap: Infinity,
    runStart: ctx.run && ctx.run.started_at,
    yMin: floorTenth(both),
    yMax: 1,
    format: (v) => `${Math.round(v * 100)}%`,
    readout: $("ai_learning_readout"),
    empty: $("ai_learning_empty"),
  });
  const trend = (p) => (p.length > 1 ? `${fmtPct(p[0][1])} → ${fmtPct(p[p.length - 1][1])}` : p.length ? fmtPct(p[0][1]) : "—");
  $("ai_learning_summary").textContent = `reported ${trend(points)} · rated by peers ${trend(rated)}`;
  replaceRows($("ai_rated_by").tBodies[0], ratingRows(trust.edges.filter((e) => e.contributor === id), "rater"));
  replaceRows($("ai_rates").tBodies[0], ratingRows(trust.edges.filter((e) => e.rater === id), "contributor"));
  replaceRows($("ai_items").tBodies[0], items.items.map((item) => knowledgeRow(item, false)));
  $("ai_items_summary").textContent = `${fmtInt(items.total)} in the index`;
  const mine = collaborations.filter((c) => c.requester === id || c.acceptor === id);
  replaceRows(
    $("ai_collabs").tBodies[0],
    mine.map((c) => {
      const partner = c.requester === id ? c.acceptor : c.requester;
      return linkRow(
        `#/ai/${encodeURIComponent(partner)}`,
        { "data-key": c.collaboration_id, class: ctx.run && c.started_at < ctx.run.started_at ? "earlier" : "" },
        h("td", {}, aiLink(partner)),
        h("td", {}, statusText(c)),
        h("td", { class: "num", title: fmtClock(c.started_at) }, fmtAgo(c.started_at)),
      );
    }),
  );
  const failed = mine.filter((c) => c.status === "failed").length;
  $("ai_collabs_summary").textContent = `${fmtInt(mine.length)} · ${fmtInt(failed)} failed`;
}

function statusText(c) {
  const title = c.reason ? `${c.status}: ${c.reason}` : c.ended_at ? `${c.status} at ${fmtClock(c.ended_at)}` : c.status;
  return h("span", { class: `status ${c.status}`, title }, c.status);
}

// ------------------------------------------------------------------ knowledge browser

export function renderKnowledge(page, filters) {
  replaceRows($("knowledge_table").tBodies[0], page.items.map((item) => knowledgeRow(item)));
  $("knowledge_empty").hidden = page.items.length > 0;
  const select = $("kcontributor");
  const wanted = ["", ...page.contributors];
  if ([...select.options].map((o) => o.value).join("\u0000") !== wanted.join("\u0000")) {
    select.replaceChildren(...wanted.map((value) => h("option", { value }, value || "anyone")));
    select.value = filters.contributor;
  }
  const first = page.total ? filters.offset + 1 : 0;
  const last = filters.offset + page.items.length;
  $("kpage").textContent = `${fmtInt(first)}–${fmtInt(last)} of ${fmtInt(page.total)}`;
  $("kprev").disabled = filters.offset === 0;
  $("knext").disabled = last >= page.total;
  $("knowledge_summary").textContent = `${fmtInt(page.total)} match${page.total === 1 ? "" : "es"}`;
}

/** Who rated an item: each rater's current vote (``/api/ratings/KIND/ID``), latest first. */
function itemRatingRows(ratings) {
  return ratings.map((r) =>
    linkRow(
      `#/ai/${encodeURIComponent(r.rater)}`,
      { "data-key": r.rater },
      h("td", {}, aiLink(r.rater)),
      h("td", { class: "num" }, r.score === null ? "—" : h("span", { class: `score ${scoreClass(r.score)}` }, fmtNum(r.score))),
      h("td", { class: "num" }, r.usefulness === null ? "—" : h("span", { class: `score ${scoreClass(r.usefulness)}` }, fmtNum(r.usefulness))),
      h("td", { class: "num", title: fmtClock(r.timestamp) }, fmtAgo(r.timestamp)),
    ),
  );
}

/** One item with its data, usage, quality and who rated it. ``item`` is the API record or
 * null (unknown); ``ratings`` the raters' votes. */
export function renderItem(kind, id, item, ratings) {
  $("item_panel").hidden = false;
  $("item_title").replaceChildren(h("span", { class: `kind ${kind}` }, kind), " ", idText(id));
  replaceRows($("item_ratings").tBodies[0], item ? itemRatingRows(ratings) : []);
  $("item_ratings_empty").hidden = !item || ratings.length > 0;
  if (!item) {
    dl($("item_meta"), [["Not found", `The hub has no ${kind} with this id.`]]);
    $("item_data").textContent = "";
    return;
  }
  const data = kind === "pattern" ? item.pattern_data : item.component_data;
  const accuracy = data && (data.val_accuracy ?? data.accuracy);
  dl($("item_meta"), [
    ["Contributor", aiLink(item.contributor)],
    ["Shared", `${fmtClock(item.timestamp)} (${fmtAgo(item.timestamp)})`],
    ["Used", `${fmtInt(item.usage_count)} time${item.usage_count === 1 ? "" : "s"} (FEEDBACK received)`],
    kind === "component" ? ["Quality", h("span", { class: `score ${scoreClass(item.quality_score)}` }, fmtNum(item.quality_score))] : null,
    ["Reported accuracy", typeof accuracy === "number" ? fmtPct(accuracy) : "—"],
  ].filter(Boolean));
  // Arrays of numbers (model weights) on one line each, not one number per line.
  let text = JSON.stringify(data, null, 2).replace(/\[\s+(-?[\d.eE+-]+(?:,\s+-?[\d.eE+-]+)*)\s+\]/g, (_, items) => `[${items.split(/,\s+/).join(", ")}]`);
  if (text.length > MAX_DATA_CHARS) text = `${text.slice(0, MAX_DATA_CHARS)}\n… ${fmtInt(text.length - MAX_DATA_CHARS)} more characters (full data: the JSON API)`;
  $("item_data").textContent = text;
}

// ------------------------------------------------------------------ collaborations

export function renderCollaborations(all, ctx) {
  const runStart = ctx.run ? ctx.run.started_at : 0;
  const shown = all.filter((c) => (ctx.earlier || c.started_at >= runStart) && (!ctx.status || c.status === ctx.status));
  const rows = shown.map((c) => {
    const pct = Math.max(0, Math.min(100, Number(c.progress) || 0));
    const fill = h("span");
    fill.style.width = `${pct}%`; // CSSOM, allowed by the CSP (unlike a style attribute)
    const earlier = c.started_at < runStart;
    return h(
      "tr",
      { title: c.collaboration_id, tabindex: 0, "data-key": c.collaboration_id, class: earlier ? "earlier" : "" },
      h("td", {}, aiLink(c.requester), h("span", { class: "muted" }, " ↔ "), aiLink(c.acceptor), earlier ? h("span", { class: "tag" }, "earlier run") : null),
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
      h("td", {}, statusText(c)),
      h("td", { class: "num", title: fmtClock(c.started_at) }, fmtAgo(c.started_at)),
      h("td", { class: "num" }, fmtDuration((c.ended_at || hubNow()) - c.started_at)),
    );
  });
  replaceRows($("collabs_table").tBodies[0], rows);
  $("collabs_empty").hidden = rows.length > 0;
  const count = (status) => shown.filter((c) => c.status === status).length;
  $("collabs_summary").textContent = `${fmtInt(count("active"))} active · ${fmtInt(count("completed"))} completed · ${fmtInt(count("failed"))} failed${ctx.earlier ? "" : " (this run)"}`;
  renderPairs(shown);
}

/** Who works with whom: one line per pair, width by count, colour by how it went. */
function renderPairs(collaborations) {
  const pairs = new Map();
  for (const c of collaborations) {
    const [a, b] = [c.requester, c.acceptor].sort();
    const key = `${a}\u0000${b}`;
    const pair = pairs.get(key) || { a, b, active: 0, completed: 0, failed: 0 };
    pair[c.status] += 1;
    pairs.set(key, pair);
  }
  const list = [...pairs.values()];
  const ids = [...new Set(list.flatMap((p) => [p.a, p.b]))].sort();
  const maxCount = Math.max(1, ...list.map((p) => p.active + p.completed + p.failed));
  const edges = list.map((p) => {
    const total = p.active + p.completed + p.failed;
    const cls = p.active ? "pair-active" : p.failed > p.completed ? "pair-bad" : "pair-ok";
    return { from: p.a, to: p.b, cls, width: 1.5 + 4 * Math.sqrt(total / maxCount), title: `${p.a} ↔ ${p.b}: ${p.completed} completed, ${p.failed} failed, ${p.active} active` };
  });
  const nodes = ids.map((id) => ({ id, label: id, title: id, href: `#/ai/${encodeURIComponent(id)}` }));
  drawGraph($("collab_graph"), "pairs", nodes, edges, { empty: $("collab_graph_empty") });
  $("pairs_summary").textContent = `${fmtInt(list.length)} pair${list.length === 1 ? "" : "s"}`;
}
