// DOM and formatting helpers shared by every part of the dashboard.
//
// Everything shown comes from AI clients and is untrusted: it only ever enters the page as text
// (text nodes, textContent, setAttribute), never as markup. The page's Content-Security-Policy
// forbids inline scripts and styles as a second line of defence.

export const SVG_NS = "http://www.w3.org/2000/svg";

export const $ = (id) => document.getElementById(id);

/** Element with attributes and children; string children become text nodes, never markup. */
export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** SVG element; ``text`` becomes its text content. */
export function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function setAttrs(node, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, String(value));
  }
}

// ------------------------------------------------------------------ time

export const clock = { skewMs: 0 }; // hub clock minus browser clock
export const hubNow = () => (Date.now() + clock.skewMs) / 1000;

const numberFormat = new Intl.NumberFormat();
export const fmtInt = (n) => (typeof n === "number" && Number.isFinite(n) ? numberFormat.format(n) : "–");
export const fmtNum = (n, digits = 2) => (typeof n === "number" && Number.isFinite(n) ? n.toFixed(digits) : "—");
export const fmtPct = (n) => (typeof n === "number" && Number.isFinite(n) ? `${(n * 100).toFixed(1)}%` : "—");

export function fmtClock(unix) {
  const date = new Date(unix * 1000);
  const sameDay = new Date().toDateString() === date.toDateString();
  return sameDay
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : date.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

export function fmtDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

export const fmtAgo = (unix) => `${fmtDuration(hubNow() - unix)} ago`;

export function preview(data, max = 300) {
  try {
    const text = JSON.stringify(data);
    return text.length > max ? `${text.slice(0, max)}…` : text;
  } catch {
    return "";
  }
}

// ------------------------------------------------------------------ small pieces

/** An id as monospace text, cut with an ellipsis when long; the title holds all of it. */
export const idText = (id, title = id) => h("span", { class: "id", title }, id);

/** A link to an AI's page. */
export const aiLink = (id) => h("a", { class: "id", href: `#/ai/${encodeURIComponent(id)}`, title: id }, id);

export function chips(values, max = 6) {
  const shown = values.slice(0, max).map((value) => h("span", { class: "chip" }, value));
  if (values.length > max) {
    shown.push(h("span", { class: "chip", title: values.slice(max).join(", ") }, `+${values.length - max}`));
  }
  return h("div", { class: "chips" }, shown);
}

/** Standing as a coloured figure; below ``line`` it is marked as shut out. */
export function standingBadge(value, line, ratings) {
  const low = typeof value === "number" && value < line && ratings !== 0;
  const title = low
    ? `standing ${fmtNum(value)} is below ${line}: reference trainers refuse to work with this AI`
    : `standing ${fmtNum(value)}${ratings === undefined ? "" : ` from ${ratings} rating${ratings === 1 ? "" : "s"}`}`;
  return h("span", { class: `standing ${low ? "low" : ""} ${scoreClass(value)}`, title }, fmtNum(value), low ? " shut out" : null);
}

/** One of five classes for a score in [0, 1] (colours are in the stylesheet, per theme). */
export function scoreClass(score) {
  if (typeof score !== "number" || !Number.isFinite(score)) return "sc-none";
  if (score < 0.2) return "sc-0";
  if (score < 0.4) return "sc-1";
  if (score < 0.6) return "sc-2";
  if (score < 0.8) return "sc-3";
  return "sc-4";
}

/** A row that opens ``href`` on click and on Enter: tables are usable by keyboard. */
export function linkRow(href, attrs, ...cells) {
  const row = h("tr", { ...attrs, tabindex: 0, class: `link ${attrs?.class || ""}`, "data-href": href }, ...cells);
  return row;
}

/** Table body rows, keeping focus on the same row (by data-key) across refreshes. */
export function replaceRows(tbody, rows) {
  const focused = document.activeElement;
  const key = focused && tbody.contains(focused) ? focused.dataset.key : null;
  tbody.replaceChildren(...rows);
  if (key) {
    const again = [...tbody.children].find((row) => row.dataset.key === key);
    if (again) again.focus({ preventScroll: true });
  }
}

// ------------------------------------------------------------------ fetching

export class HttpError extends Error {}

export async function getJSON(path, signal) {
  const response = await fetch(path, { signal, cache: "no-store", headers: { Accept: "application/json" } });
  if (!response.ok) {
    let detail = "";
    try {
      detail = (await response.json()).error || "";
    } catch {
      /* not JSON */
    }
    throw new HttpError(`HTTP ${response.status} from ${path}${detail ? `: ${detail}` : ""}`);
  }
  return response.json();
}

export function describe(error, timeoutMs) {
  if (error && error.name === "AbortError") return `No answer within ${timeoutMs / 1000} s.`;
  if (error instanceof TypeError) return "No connection to the hub."; // what fetch throws offline
  const text = String((error && error.message) || error || "Unknown error");
  return text.endsWith(".") ? text : `${text}.`;
}
