// Ops: queues, worker processes, memory and model readiness, from GET /api/v1/ops
// (readiness included, as /readyz reports it), refreshed while the page is open.

import { errorText, formatBytes, formatDuration, formatShare, h } from "./dom.js";

const REFRESH_MS = 3000;
const MODEL_OK = new Set(["ready", "not_loaded"]);

function readinessCard(ready) {
  if (!ready) return h("p", { class: "muted" }, "Readiness unknown.");
  const ok = ready.status === "ready";
  return h("p", { id: "ops-readiness", class: ok ? "ok" : "bad" },
    ok ? "Ready: Redis answers and every required queue has a live worker with its models usable."
       : `Not ready: ${Object.entries(ready.checks?.queues || {}).filter(([, q]) => !q.workers)
           .map(([name]) => `no worker on ${name}`).concat(ready.checks?.redis?.ok ? [] : ["Redis not answering"])
           .join(", ") || "a model is not usable (see below)"}.`);
}

function queuesTable(queues) {
  const rows = Object.entries(queues).map(([name, q]) => h("tr", { dataset: { queue: name } },
    h("th", { scope: "row" }, name, q.required ? "" : h("span", { class: "muted" }, " (optional)")),
    h("td", {}, String(q.waiting)), h("td", {}, String(q.reserved)),
    h("td", { class: q.processes ? "" : q.required ? "bad" : "muted" }, String(q.processes)),
    h("td", {}, String(q.busy)), h("td", {}, formatBytes(q.rss_bytes))));
  return h("div", { class: "table-wrap" }, h("table", { id: "ops-queues" },
    h("caption", { class: "muted" }, "Waiting: in the queue; reserved: taken by a worker, not finished."),
    h("thead", {}, h("tr", {}, ...["Queue", "Waiting", "Reserved", "Processes", "Busy", "Memory (RSS)"]
      .map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows)));
}

function modelsList(models) {
  const entries = Object.entries(models || {});
  if (!entries.length) return h("span", { class: "muted" }, "no models");
  return h("ul", { class: "models" }, entries.map(([name, m]) => h("li", {},
    `${name}: `, h("span", { class: `state ${MODEL_OK.has(m.state) ? "succeeded" : m.state === "loading" ? "running" : "failed"}` }, m.state),
    m.load_seconds ? h("span", { class: "muted" }, ` loaded in ${m.load_seconds.toFixed(1)} s`) : "",
    m.message && !MODEL_OK.has(m.state) ? h("div", { class: "bad" }, m.message) : "")));
}

function workersTable(workers) {
  if (!workers.length) return h("p", { id: "ops-workers", class: "bad" }, "No live worker processes.");
  return h("div", { class: "table-wrap" }, h("table", { id: "ops-workers" },
    h("thead", {}, h("tr", {}, ...["Process", "Queues", "State", "Memory (RSS)", "Heartbeat", "Models"]
      .map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, workers.map((w) => h("tr", {},
      h("th", { scope: "row" }, w.id), h("td", {}, w.queues.join(", ")),
      h("td", {}, h("span", { class: `state ${w.busy ? "running" : "succeeded"}` }, w.busy ? "busy" : "idle")),
      h("td", {}, formatBytes(w.rss_bytes),
        w.cuda_reserved_bytes != null ? h("div", { class: "muted" }, `GPU ${formatBytes(w.cuda_reserved_bytes)}`) : ""),
      h("td", {}, `${formatDuration(w.heartbeat_age_seconds)} ago`),
      h("td", {}, modelsList(w.models)))))));
}

function memoryCard(s) {
  const used = s.host.memory_total_bytes - s.host.memory_available_bytes;
  const redisMax = s.redis.maxmemory_bytes;
  return h("dl", { id: "ops-memory", class: "facts" },
    h("dt", {}, "Host memory used"),
    h("dd", {}, `${formatBytes(used)} of ${formatBytes(s.host.memory_total_bytes)} (${formatShare(used, s.host.memory_total_bytes)})`,
      h("progress", { max: s.host.memory_total_bytes, value: used, "aria-label": "Host memory used" })),
    h("dt", {}, "Redis memory"),
    h("dd", {}, redisMax ? `${formatBytes(s.redis.used_memory_bytes)} of ${formatBytes(redisMax)} (${formatShare(s.redis.used_memory_bytes, redisMax)})`
                         : `${formatBytes(s.redis.used_memory_bytes)} (no maxmemory)`),
    h("dt", {}, "CPU cores"), h("dd", {}, String(s.host.cpu_count)),
    ...storageFacts(s.storage));
}

// The blob store as the janitor last surveyed it (null until its first round).
function storageFacts(st) {
  if (!st) return [h("dt", {}, "Stored files"), h("dd", { class: "muted" }, "not surveyed yet (is the janitor running?)")];
  const kinds = Object.entries(st.kinds || {}).map(([k, v]) => `${k} ${v.count} (${formatBytes(v.bytes)})`).join(" · ");
  const below = st.free_floor_bytes && st.free_bytes != null && st.free_bytes < st.free_floor_bytes;
  return [
    h("dt", {}, "Stored files"), h("dd", { id: "ops-storage" }, kinds || "nothing"),
    h("dt", {}, "Disk free for files"),
    h("dd", { class: below ? "error" : "" }, st.free_bytes == null ? "unknown"
      : `${formatBytes(st.free_bytes)} (new work stops below ${formatBytes(st.free_floor_bytes)})`),
  ];
}

export function mount(root, { api }) {
  const updated = h("span", { class: "muted", id: "ops-updated" }, "loading…");
  const refresh = h("button", { type: "button", class: "secondary" }, "Refresh now");
  const body = h("div", { "aria-live": "polite", "aria-busy": "true" });
  root.append(h("h1", {}, "Ops"), h("div", { class: "row" }, refresh, updated), body);

  const ctrl = new AbortController();
  let timer = null;
  let stopped = false;

  async function load() {
    clearTimeout(timer);
    try {
      const status = await api.get("/api/v1/ops", { signal: ctrl.signal });
      const ready = status.readiness;
      body.replaceChildren(
        h("section", { class: "card" }, h("h2", {}, "Readiness"), readinessCard(ready)),
        h("section", { class: "card" }, h("h2", {}, "Queues"), queuesTable(status.queues)),
        h("section", { class: "card" }, h("h2", {}, "Worker processes"), workersTable(status.workers)),
        h("section", { class: "card" }, h("h2", {}, "Memory"), memoryCard(status)));
      body.setAttribute("aria-busy", "false");
      updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
      updated.className = "muted";
    } catch (err) {
      if (ctrl.signal.aborted) return;
      updated.textContent = `could not load: ${errorText(err)}`;
      updated.className = "bad";
    }
    if (!stopped) timer = setTimeout(load, REFRESH_MS);
  }
  refresh.addEventListener("click", load);
  load();
  return () => { stopped = true; clearTimeout(timer); ctrl.abort(); };
}
