// Renders /openapi.json as a list of operations. Everything from the schema is set as text
// (textContent), never as markup: descriptions come from docstrings and names from routes.
"use strict";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function resolve(schema, spec) {
  if (schema && schema.$ref) {
    const name = schema.$ref.split("/").pop();
    return [name, spec.components.schemas[name]];
  }
  return [null, schema];
}

function typeOf(schema, spec) {
  if (!schema) return "";
  const [name, body] = resolve(schema, spec);
  if (name) return name;
  if (body.anyOf) return body.anyOf.map((s) => typeOf(s, spec)).join(" | ");
  if (body.type === "array") return typeOf(body.items, spec) + "[]";
  if (body.enum) return body.enum.map((v) => JSON.stringify(v)).join(" | ");
  return body.type || "any";
}

function schemaTable(schema, spec) {
  const [, body] = resolve(schema, spec);
  const target = body && body.type === "array" ? resolve(body.items, spec)[1] : body;
  if (!target || !target.properties) return el("p", { class: "muted" }, typeOf(schema, spec));
  const rows = Object.entries(target.properties).map(([field, prop]) =>
    el("tr", {}, el("td", {}, el("code", {}, field)), el("td", {}, typeOf(prop, spec)),
      el("td", { class: "desc" }, prop.description || "")));
  return el("table", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "type"), el("th", {}, "")), ...rows);
}

function operation(path, method, op, spec) {
  const params = (op.parameters || []).map((p) =>
    el("tr", {}, el("td", {}, el("code", {}, p.name)), el("td", {}, p.in),
      el("td", {}, typeOf(p.schema, spec) + (p.required ? " (required)" : "")),
      el("td", { class: "desc" }, (p.description || p.schema?.description || "") +
        (p.schema && p.schema.default !== undefined ? ` Default: ${JSON.stringify(p.schema.default)}.` : ""))));
  const responses = Object.entries(op.responses || {}).map(([status, response]) => {
    const content = response.content || {};
    const json = content["application/json"];
    return el("div", {}, el("h4", {}, `${status} ${response.description || ""}`,
      Object.keys(content).length > 1 ? ` (${Object.keys(content).join(", ")})` : ""),
      json && json.schema ? schemaTable(json.schema, spec) : null);
  });
  const tryIt = method === "get" && !path.includes("{") ? el("a", { href: path }, "open") : null;
  return el("details", { class: "op", id: op.operationId || `${method}-${path}` },
    el("summary", {}, el("span", { class: `method ${method}` }, method.toUpperCase()),
      el("span", { class: "path" }, path), " ", el("span", { class: "muted" }, op.summary || "")),
    el("p", { class: "desc" }, op.description || ""),
    tryIt ? el("p", {}, tryIt) : null,
    params.length ? el("table", {}, el("tr", {}, el("th", {}, "parameter"), el("th", {}, "in"),
      el("th", {}, "type"), el("th", {}, "")), ...params) : null,
    ...responses);
}

async function main() {
  const main = document.getElementById("operations");
  let spec;
  try {
    const response = await fetch("/openapi.json", { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    spec = await response.json();
  } catch (error) {
    main.replaceChildren(el("p", {}, `Could not load /openapi.json: ${error.message}`));
    return;
  }
  document.getElementById("title").textContent = `${spec.info.title} ${spec.info.version} · HTTP API`;
  document.getElementById("summary").textContent = spec.info.summary || "";
  const byTag = new Map();
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const tag = (op.tags && op.tags[0]) || "other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operation(path, method, op, spec));
    }
  }
  main.replaceChildren(...[...byTag].flatMap(([tag, ops]) => [el("h2", {}, tag), ...ops]));
}

main();
