// Time charts drawn as SVG: one series or a few per chart, lines broken where data is missing
// (the hub was down), earlier runs drawn muted, this run's start marked.

import { fmtClock, fmtInt, h, svg } from "./dom.js";

/** Round a step up to 1, 2 or 5 times a power of ten, for readable axis ticks. */
export function niceStep(raw) {
  if (!(raw > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(raw));
  const unit = raw / power;
  return (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 5 ? 5 : 10) * power;
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

/**
 * Split points ([t, v] sorted by t) into runs of consecutive points no more than ``gap`` seconds
 * apart. Returns {segments, gaps}: gaps are [from, to] spans with no data (the hub was down).
 */
export function segment(points, gap) {
  const segments = [];
  const gaps = [];
  let current = [];
  for (const point of points) {
    const last = current[current.length - 1];
    if (last && point[0] - last[0] > gap) {
      segments.push(current);
      gaps.push([last[0], point[0]]);
      current = [];
    }
    current.push(point);
  }
  if (current.length) segments.push(current);
  return { segments, gaps };
}

/**
 * Per-minute rate of a cumulative count: at each point, the growth over the last ``window``
 * seconds (or since the segment began) divided by that time, never across a gap, never negative.
 * A window of several snapshots keeps bursts of shares from drawing a comb.
 */
export function ratePerMinute(points, gap, window = 0) {
  const out = [];
  for (const part of segment(points, gap).segments) {
    let j = 0;
    for (let i = 1; i < part.length; i += 1) {
      while (j < i - 1 && part[i][0] - part[j + 1][0] >= window) j += 1;
      const [t0, v0] = part[j];
      const [t1, v1] = part[i];
      if (t1 > t0) out.push([t1, (Math.max(0, v1 - v0) / (t1 - t0)) * 60]);
    }
  }
  return out;
}

/**
 * Draw a time chart into ``node`` (an <svg>).
 * opts: {series: [{label, cls, points: [[t, v]]}], t0, t1, gap, runStart, yMin, yMax, integer,
 *        format(v), readout: element for the hover text, empty: element shown with no data}
 * Returns nothing; hovering shows the nearest point's values in ``opts.readout``.
 */
export function timeChart(node, opts) {
  const width = Math.max(node.clientWidth, 200);
  const height = Math.max(node.clientHeight, 100);
  node.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const all = opts.series.flatMap((s) => s.points);
  if (opts.empty) opts.empty.hidden = all.length > 0;
  if (!all.length) {
    node.replaceChildren();
    node.dataset.points = "0";
    return;
  }
  const format = opts.format || fmtInt;
  let { t0, t1 } = opts;
  if (t1 - t0 < 1) {
    t0 -= 30;
    t1 += 30;
  }
  const maxValue = opts.yMax ?? Math.max(opts.integer ? 1 : 0.01, ...all.map((p) => p[1]));
  let step = niceStep(maxValue / 4);
  if (opts.integer) step = Math.max(1, Math.round(step));
  const yMin = opts.yMin ?? 0;
  if (opts.yMin !== undefined) step = niceStep((maxValue - yMin) / 4);
  const yMax = opts.yMax ?? Math.ceil(maxValue / step) * step;
  // Room for the longest axis label at the page's font size (larger on a wall screen).
  const font = 0.78 * (parseFloat(getComputedStyle(document.documentElement).fontSize) || 14);
  let longest = 0;
  // Ticks on round multiples of the step, from the first above yMin up to yMax.
  const ticks = [];
  for (let v = Math.ceil(yMin / step - 1e-9) * step || 0; v <= yMax + step * 1e-6; v += step) ticks.push(v); // || 0: no "-0"
  for (const v of ticks) longest = Math.max(longest, format(v).length);
  const pad = { left: Math.ceil(12 + longest * font * 0.62), right: 10, top: Math.ceil(font), bottom: Math.ceil(font + 10) };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const x = (t) => pad.left + ((t - t0) / (t1 - t0)) * innerW;
  const y = (v) => pad.top + innerH - ((Math.min(Math.max(v, yMin), yMax) - yMin) / (yMax - yMin || 1)) * innerH;
  const nodes = [];
  // Gaps first, under everything: where the hub was down (no snapshot for more than 2 intervals).
  const gaps = new Map();
  for (const s of opts.series) {
    for (const [a, b] of segment(s.points, opts.gap).gaps) gaps.set(`${a}:${b}`, [a, b]);
  }
  for (const [a, b] of gaps.values()) {
    // Down until this run started; a wait after that for the first snapshot is not downtime.
    const end = opts.runStart && a < opts.runStart && opts.runStart < b ? opts.runStart : b;
    const xa = Math.max(pad.left, x(a));
    const xb = Math.min(width - pad.right, x(end));
    if (xb > xa) {
      const band = svg("rect", { class: "gap", x: xa, y: pad.top, width: xb - xa, height: innerH, "data-from": a, "data-to": b });
      band.append(svg("title", {}, `no snapshot from ${fmtClock(a)} to ${fmtClock(b)} (hub down)`));
      nodes.push(band);
    }
  }
  for (const v of ticks) {
    nodes.push(svg("line", { class: "grid-line", x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v) }));
    nodes.push(svg("text", { class: "axis-label", x: pad.left - 6, y: y(v) + font / 3, "text-anchor": "end" }, format(v)));
  }
  const tStep = timeStep(t1 - t0, Math.max(2, Math.floor(innerW / (font * 9))));
  for (let t = Math.ceil(t0 / tStep) * tStep; t <= t1; t += tStep) {
    const tx = x(t);
    const anchor = tx < pad.left + 40 ? "start" : tx > width - pad.right - 40 ? "end" : "middle";
    nodes.push(svg("line", { class: "grid-line tick", x1: tx, x2: tx, y1: pad.top + innerH, y2: pad.top + innerH + 4 }));
    nodes.push(svg("text", { class: "axis-label", x: tx, y: height - 5, "text-anchor": anchor }, fmtTick(t, tStep)));
  }
  if (opts.runStart && opts.runStart > t0 && opts.runStart <= t1) {
    const rx = x(opts.runStart);
    nodes.push(svg("line", { class: "run-start", x1: rx, x2: rx, y1: pad.top, y2: pad.top + innerH }));
    const right = rx > width - pad.right - 60;
    nodes.push(svg("text", { class: "axis-label run-label", x: right ? rx - 4 : rx + 4, y: pad.top + font, "text-anchor": right ? "end" : "start" }, "this run"));
  }
  for (const s of opts.series) {
    for (const part of segment(s.points, opts.gap).segments) {
      // Before this run's start: an earlier run of the hub, drawn muted.
      const earlier = part.filter((p) => opts.runStart && p[0] < opts.runStart);
      const current = part.filter((p) => !opts.runStart || p[0] >= opts.runStart);
      for (const [points, extra] of [[earlier, " earlier"], [current, ""]]) {
        if (!points.length) continue;
        const coords = points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`);
        if (coords.length === 1) {
          nodes.push(svg("circle", { class: `dot-point ${s.cls}${extra}`, cx: x(points[0][0]), cy: y(points[0][1]), r: 2.5 }));
        } else {
          nodes.push(svg("polyline", { class: `series ${s.cls}${extra}`, points: coords.join(" ") }));
        }
      }
    }
  }
  const cursor = svg("line", { class: "cursor", x1: 0, x2: 0, y1: pad.top, y2: pad.top + innerH, visibility: "hidden" });
  nodes.push(cursor);
  node.replaceChildren(...nodes);
  node.dataset.points = String(all.length);
  node.onmousemove = (event) => {
    const box = node.getBoundingClientRect();
    const t = t0 + ((((event.clientX - box.left) / box.width) * width - pad.left) / innerW) * (t1 - t0);
    let best = null;
    for (const p of all) if (!best || Math.abs(p[0] - t) < Math.abs(best[0] - t)) best = p;
    if (!best) return;
    cursor.setAttribute("x1", x(best[0]));
    cursor.setAttribute("x2", x(best[0]));
    cursor.setAttribute("visibility", "visible");
    if (opts.readout) {
      const values = opts.series
        .map((s) => [s, s.points.find((p) => p[0] === best[0])])
        .filter(([, p]) => p)
        .map(([s, p]) => `${s.label} ${format(p[1])}`);
      opts.readout.textContent = `${fmtClock(best[0])} · ${values.join(" · ")}`;
    }
  };
  node.onmouseleave = () => {
    cursor.setAttribute("visibility", "hidden");
    if (opts.readout) opts.readout.textContent = opts.idleText || "\u00a0";
  };
  if (opts.readout && !opts.readout.textContent.trim()) opts.readout.textContent = opts.idleText || "\u00a0";
}

/** A legend of series: coloured swatches with labels (not interactive). */
export function legend(series) {
  return series.map((s) => h("span", { class: `key ${s.cls}` }, s.label));
}
