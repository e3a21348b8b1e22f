// Node-link graphs as SVG (who rated whom, who works with whom), laid out by a small
// deterministic force simulation: nodes start on a circle in id order, so the same graph is
// always drawn the same way, and positions are kept between refreshes so nothing jumps.

import { svg } from "./dom.js";

const layouts = new Map(); // graph name -> Map(id -> {x, y})

/**
 * Positions in [0, 1] x [0, 1] for ``ids`` joined by ``links`` ([a, b] pairs). Nodes that were
 * laid out before keep their place as the starting point.
 */
export function layout(name, ids, links, iterations = 250) {
  const previous = layouts.get(name) || new Map();
  const n = ids.length;
  const pos = ids.map((id, i) => {
    const old = previous.get(id);
    if (old) return { x: old.x, y: old.y };
    const angle = (2 * Math.PI * i) / Math.max(n, 1);
    return { x: 0.5 + 0.4 * Math.cos(angle), y: 0.5 + 0.4 * Math.sin(angle) };
  });
  const index = new Map(ids.map((id, i) => [id, i]));
  const pairs = links.map(([a, b]) => [index.get(a), index.get(b)]).filter(([a, b]) => a !== undefined && b !== undefined && a !== b);
  const ideal = Math.min(0.45, 1 / Math.sqrt(Math.max(n, 1)));
  const steps = n > 150 ? 60 : iterations; // large graphs: fewer steps, still bounded work
  for (let step = 0; step < steps; step += 1) {
    const heat = 0.08 * (1 - step / steps) + 0.002;
    const force = pos.map(() => ({ x: 0, y: 0 }));
    for (let i = 0; i < n; i += 1) {
      for (let j = i + 1; j < n; j += 1) {
        let dx = pos[i].x - pos[j].x;
        let dy = pos[i].y - pos[j].y;
        let d2 = dx * dx + dy * dy;
        if (d2 < 1e-6) {
          dx = 0.001 * (i - j);
          dy = 0.001;
          d2 = dx * dx + dy * dy;
        }
        const push = (ideal * ideal) / d2;
        force[i].x += dx * push;
        force[i].y += dy * push;
        force[j].x -= dx * push;
        force[j].y -= dy * push;
      }
    }
    for (const [a, b] of pairs) {
      const dx = pos[a].x - pos[b].x;
      const dy = pos[a].y - pos[b].y;
      const d = Math.sqrt(dx * dx + dy * dy) || 1e-3;
      const pull = d / ideal;
      force[a].x -= dx * pull;
      force[a].y -= dy * pull;
      force[b].x += dx * pull;
      force[b].y += dy * pull;
    }
    for (let i = 0; i < n; i += 1) {
      // Gravity keeps unconnected nodes on the canvas.
      force[i].x += (0.5 - pos[i].x) * 1;
      force[i].y += (0.5 - pos[i].y) * 1;
      const len = Math.hypot(force[i].x, force[i].y) || 1;
      const move = Math.min(len, heat);
      pos[i].x = Math.min(0.97, Math.max(0.03, pos[i].x + (force[i].x / len) * move));
      pos[i].y = Math.min(0.95, Math.max(0.05, pos[i].y + (force[i].y / len) * move));
    }
  }
  const result = new Map(ids.map((id, i) => [id, pos[i]]));
  layouts.set(name, result);
  return result;
}

/**
 * Draw a graph into ``node`` (an <svg>).
 * nodes: [{id, label, cls, title, href}]; edges: [{from, to, cls, width, title, directed}].
 * Each node is a link (focusable, Enter opens it) when it has an ``href``.
 */
export function drawGraph(node, name, nodes, edges, { empty } = {}) {
  const width = Math.max(node.clientWidth, 240);
  const height = Math.max(node.clientHeight, 200);
  node.setAttribute("viewBox", `0 0 ${width} ${height}`);
  if (empty) empty.hidden = nodes.length > 0;
  if (!nodes.length) {
    node.replaceChildren();
    return;
  }
  const ids = nodes.map((n) => n.id);
  const pos = layout(name, ids, edges.map((e) => [e.from, e.to]));
  const px = (id) => ({ x: pos.get(id).x * width, y: pos.get(id).y * height });
  const radius = nodes.length > 40 ? 5 : 9;
  const defs = svg("defs");
  for (const cls of new Set(edges.filter((e) => e.directed).map((e) => e.cls))) {
    const marker = svg("marker", { id: `arrow-${name}-${cls}`, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
    marker.append(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: `arrow ${cls}` }));
    defs.append(marker);
  }
  const out = [defs];
  const both = new Set(edges.map((e) => `${e.from}\u0000${e.to}`));
  for (const e of edges) {
    if (!pos.has(e.from) || !pos.has(e.to)) continue;
    const a = px(e.from);
    const b = px(e.to);
    const dx = b.x - a.x;
    const dy = b.y - a.y;
    const d = Math.hypot(dx, dy) || 1;
    // Stop at the target's rim so the arrowhead shows; bend when the reverse edge exists too.
    const end = { x: b.x - (dx / d) * (radius + 3), y: b.y - (dy / d) * (radius + 3) };
    const bend = e.directed && both.has(`${e.to}\u0000${e.from}`) ? 0.15 : 0;
    const mx = (a.x + end.x) / 2 - dy * bend;
    const my = (a.y + end.y) / 2 + dx * bend;
    const path = svg("path", {
      class: `edge ${e.cls}`,
      d: `M ${a.x.toFixed(1)} ${a.y.toFixed(1)} Q ${mx.toFixed(1)} ${my.toFixed(1)} ${end.x.toFixed(1)} ${end.y.toFixed(1)}`,
      "stroke-width": e.width || 1.5,
      "marker-end": e.directed ? `url(#arrow-${name}-${e.cls})` : undefined,
    });
    if (e.title) path.append(svg("title", {}, e.title));
    out.push(path);
  }
  for (const n of nodes) {
    const { x, y } = px(n.id);
    const group = n.href ? svg("a", { href: n.href, class: `node ${n.cls || ""}`, "aria-label": n.title || n.label }) : svg("g", { class: `node ${n.cls || ""}` });
    group.append(svg("circle", { cx: x, cy: y, r: radius }));
    if (n.title) group.append(svg("title", {}, n.title));
    const label = n.label.length > 18 ? `${n.label.slice(0, 17)}…` : n.label;
    const anchor = x > width * 0.8 ? "end" : x < width * 0.2 ? "start" : "middle";
    group.append(svg("text", { x, y: y - radius - 4, "text-anchor": anchor, class: "node-label" }, label));
    out.push(group);
  }
  node.replaceChildren(...out);
  node.dataset.nodes = String(nodes.length);
  node.dataset.edges = String(edges.length);
}
