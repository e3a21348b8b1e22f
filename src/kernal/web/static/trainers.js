// Trainers launched from the browser: the form (#/trainers), the list, and the process panel on
// an AI's page (its logs and a Stop button). Writes carry the admin token as a Bearer header;
// the token is kept in sessionStorage (this tab only, gone when it closes), never in a cookie.

import { $, aiLink, fmtAgo, fmtClock, h, replaceRows } from "./dom.js";

const TOKEN_KEY = "kernal.adminToken";

export const adminToken = {
  get() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || "";
    } catch {
      return "";
    }
  },
  set(value) {
    try {
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      /* storage off: the token lasts for this page only */
    }
  },
};

/** POST/DELETE with the admin token; resolves to the JSON answer, rejects with the API's error. */
async function write(method, path, body) {
  const headers = { Accept: "application/json" };
  const token = adminToken.get();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body) });
  let answer = null;
  try {
    answer = await response.json();
  } catch {
    /* not JSON */
  }
  if (!response.ok) {
    const reason = (answer && answer.error) || `HTTP ${response.status}`;
    const hint = response.status === 401 ? " (check the admin token above)" : "";
    throw new Error(`${reason}${hint}`);
  }
  return answer;
}

/** ``KEY=VALUE`` lines (VALUE is JSON or text, as ``kernal trainer --option``) to an object. */
export function parseOptions(text) {
  const options = {};
  for (const [n, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const at = line.indexOf("=");
    if (at <= 0) throw new Error(`options line ${n + 1}: expected KEY=VALUE, got ${JSON.stringify(line)}`);
    const value = line.slice(at + 1).trim();
    let parsed;
    try {
      parsed = JSON.parse(value);
    } catch {
      parsed = value;
    }
    options[line.slice(0, at).trim()] = parsed;
  }
  return options;
}

const stateBadge = (t) =>
  h("span", { class: `status ${t.state === "running" ? (t.connected ? "completed" : "active") : "failed"}` }, t.state === "running" ? (t.connected ? "connected" : "starting") : `exited (${t.exit_code})`);

function stopButton(ai_id, onDone, label = "Stop") {
  return h(
    "button",
    {
      type: "button",
      class: "ghost danger",
      "data-stop": ai_id,
      onclick: async (event) => {
        const button = event.currentTarget;
        button.disabled = true;
        button.textContent = "Stopping…";
        try {
          await write("DELETE", `/api/trainers/${encodeURIComponent(ai_id)}`);
          showError("");
        } catch (error) {
          showError(error.message);
        }
        onDone();
      },
    },
    label,
  );
}

function showError(text) {
  for (const id of ["trainer_error", "ai_trainer_error"]) {
    const node = $(id);
    node.textContent = text;
    node.hidden = !text;
  }
}

/** The #/trainers view: whether launching is on, the engines, the launched trainers. */
export function renderTrainers(listing, onChange) {
  $("trainers_off").hidden = listing.enabled;
  $("trainers_off_text").textContent = listing.how_to_enable || "";
  $("launch_submit").disabled = !listing.enabled;
  const select = $("launch_engine");
  const engines = listing.engines.length ? listing.engines : ["learning"];
  if ([...select.options].map((o) => o.value).join("\u0000") !== engines.join("\u0000")) {
    const chosen = select.value || "learning";
    select.replaceChildren(...engines.map((name) => h("option", { value: name }, name)));
    select.value = engines.includes(chosen) ? chosen : engines[0];
  }
  const rows = listing.trainers.map((t) =>
    h(
      "tr",
      { "data-key": t.ai_id },
      h("td", {}, aiLink(t.ai_id)),
      h("td", {}, t.specialization),
      h("td", {}, t.engine),
      h("td", {}, stateBadge(t)),
      h("td", { class: "num" }, String(t.pid)),
      h("td", { class: "num", title: fmtClock(t.started_at) }, fmtAgo(t.started_at)),
      h("td", {}, stopButton(t.ai_id, onChange, t.state === "running" ? "Stop" : "Remove")),
    ),
  );
  replaceRows($("trainers_table").tBodies[0], rows);
  $("trainers_empty").hidden = rows.length > 0;
  $("trainers_summary").textContent = `${listing.trainers.length} of at most ${listing.limit} launched`;
}

/** The process panel on an AI's page; hidden unless the AI was launched from this hub. */
export function renderAiTrainer(id, listing, logs, onChange) {
  const launched = listing && listing.trainers.find((t) => t.ai_id === id);
  $("ai_trainer").hidden = !launched;
  if (!launched) return;
  $("ai_trainer_state").replaceChildren(stateBadge(launched), ` pid ${launched.pid} · started ${fmtAgo(launched.started_at)}`);
  const holder = $("ai_trainer_stop");
  if (holder.dataset.for !== `${id}\u0000${launched.state}`) {
    holder.dataset.for = `${id}\u0000${launched.state}`;
    holder.replaceChildren(stopButton(id, onChange, launched.state === "running" ? "Stop trainer" : "Remove"));
  }
  $("ai_trainer_command").textContent = launched.command.join(" ");
  if (logs) {
    const pre = $("ai_trainer_logs");
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.textContent = logs.lines.join("\n") || "(nothing printed yet)";
    if (atBottom) pre.scrollTop = pre.scrollHeight; // follow the tail unless scrolled up
    $("ai_trainer_lines").textContent = logs.total_lines > logs.lines.length ? `last ${logs.lines.length} of ${logs.total_lines} lines` : `${logs.lines.length} lines`;
  }
}

/** Wire the form; ``onChange`` refreshes the views after a launch or a stop. */
export function bindTrainers(onChange) {
  const tokenInput = $("admin_token");
  tokenInput.value = adminToken.get();
  tokenInput.addEventListener("change", () => adminToken.set(tokenInput.value.trim()));
  $("launch_form").addEventListener("submit", async (event) => {
    event.preventDefault();
    adminToken.set(tokenInput.value.trim());
    const submit = $("launch_submit");
    let body;
    try {
      body = {
        ai_id: $("launch_ai_id").value.trim(),
        specialization: $("launch_specialization").value.trim(),
        engine: $("launch_engine").value,
        options: parseOptions($("launch_options").value),
      };
      const caps = $("launch_capabilities").value.split(",").map((c) => c.trim()).filter(Boolean);
      if (caps.length) body.capabilities = caps;
    } catch (error) {
      showError(error.message);
      return;
    }
    submit.disabled = true;
    try {
      const trainer = await write("POST", "/api/trainers", body);
      showError("");
      $("launch_done").textContent = `Launched ${trainer.ai_id} (pid ${trainer.pid}).`;
      $("launch_ai_id").value = "";
    } catch (error) {
      $("launch_done").textContent = "";
      showError(error.message);
    } finally {
      submit.disabled = false;
      onChange();
    }
  });
}
