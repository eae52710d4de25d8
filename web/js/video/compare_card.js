// The video page's comparison: every result set side by side, one bar chart per metric
// (GET /api/v1/videos/{id}/report: the metrics documents' own numbers), and the exports:
// the report and per-frame series as CSV, the masks as PNGs in a ZIP and as a matte.

import { h } from "../dom.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const BAR_H = 18;
const LABEL_W = 170;
const CHART_W = 460;
const PCT = new Set(["improvement_instability_pct", "improvement_warped_pct"]);

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  el.append(...children);
  return el;
}

function label(r) {
  if (r.method === "none") return "raw masks";
  const p = Object.entries(r.params || {}).map(([k, v]) => `${k}=${v}`).join(", ");
  return p ? `${r.method} (${p})` : r.method;
}

const show = (name, v) => (v === null || v === undefined ? "–"
  : PCT.has(name) ? `${v.toFixed(1)} %` : Number.isInteger(v) ? String(v) : v.toFixed(3));

// One horizontal bar per result set; values can be negative (an improvement % that is
// a loss), so bars start at zero and the scale spans both signs.
function chart(name, meaning, rows) {
  const vals = rows.map((r) => r[name]).filter((v) => typeof v === "number");
  const lo = Math.min(0, ...vals), hi = Math.max(0, ...vals, 1e-9);
  const x = (v) => LABEL_W + ((v - lo) / (hi - lo)) * (CHART_W - LABEL_W - 60);
  const height = rows.length * (BAR_H + 6) + 6;
  const plot = svg("svg", { viewBox: `0 0 ${CHART_W} ${height}`, width: "100%", role: "img",
    "aria-label": `${meaning}, per result set` });
  rows.forEach((r, i) => {
    const y = 6 + i * (BAR_H + 6);
    const v = r[name];
    const g = svg("g", { "data-result-id": r.result_id });
    g.append(svg("text", { x: LABEL_W - 6, y: y + BAR_H - 5, "text-anchor": "end", class: "vid-cmp-label" },
      label(r)));
    if (typeof v === "number") {
      const x0 = x(0), x1 = x(v);
      g.append(svg("rect", { x: Math.min(x0, x1), y, width: Math.max(1, Math.abs(x1 - x0)), height: BAR_H,
        class: r.method === "none" ? "vid-cmp-bar base" : "vid-cmp-bar", "data-value": v }));
    }
    g.append(svg("text", { x: Math.max(x(0), typeof v === "number" ? x(v) : x(0)) + 4, y: y + BAR_H - 5,
      class: "vid-cmp-value" }, show(name, v)));
    plot.append(g);
  });
  return h("figure", { class: "vid-cmp-chart", dataset: { metric: name } },
    h("figcaption", {}, meaning), plot);
}

export function compareCard(state, { api, signal, notifyError }) {
  const charts = h("div", { class: "vid-cmp-charts", id: "vid-compare-charts" });
  const note = h("p", { class: "muted", id: "vid-compare-note" });
  const buttons = {
    report: h("button", { type: "button", class: "secondary", id: "vid-dl-report" }, "Report CSV"),
    frames: h("button", { type: "button", class: "secondary", id: "vid-dl-frames" }, "Per-frame CSV"),
    masks: h("button", { type: "button", class: "secondary", id: "vid-dl-masks" }, "Masks (PNG ZIP)"),
    matte: h("button", { type: "button", class: "secondary", id: "vid-dl-matte" }, "Matte (.mov)"),
  };
  const el = h("section", { class: "card", id: "vid-compare", "aria-labelledby": "vid-compare-h", hidden: true },
    h("h2", { id: "vid-compare-h" }, "Compare methods"), note, charts,
    h("div", { class: "row" }, ...Object.values(buttons)));
  let video = null, shown = null, loadedFor = "";

  async function save(path, filename, btn) {
    btn.disabled = true;
    try {
      await api.download(path, filename, { signal });
    } catch (err) {
      if (!signal.aborted && err.name !== "AbortError") notifyError(err, "Could not download: ");
    } finally {
      btn.disabled = false;
    }
  }
  const base = () => (video?.input?.name || "video").replace(/\.[^.]+$/, "");
  const q = () => `?result=${encodeURIComponent(shown || "")}`;
  const shownMethod = () => video?.results.find((r) => r.id === shown)?.method || "raw";
  buttons.report.addEventListener("click", () =>
    save(`/api/v1/videos/${video.id}/report?format=csv`, `${base()}-report.csv`, buttons.report));
  buttons.frames.addEventListener("click", () =>
    save(`/api/v1/videos/${video.id}/frames.csv${q()}`, `${base()}-${shownMethod()}-frames.csv`, buttons.frames));
  buttons.masks.addEventListener("click", () =>
    save(`/api/v1/videos/${video.id}/masks.zip${q()}`, `${base()}-${shownMethod()}-masks.zip`, buttons.masks));
  buttons.matte.addEventListener("click", () =>
    save(`/api/v1/videos/${video.id}/matte.mov${q()}`, `${base()}-${shownMethod()}-matte.mov`, buttons.matte));

  async function load() {
    const rep = await api.get(`/api/v1/videos/${video.id}/report`, { signal });
    const rows = rep.result_sets.filter((r) => r.state === "succeeded");
    // A metric no result set has (IoU vs truth without a truth video) is left out.
    const shownMetrics = Object.entries(rep.metrics).filter(([name]) =>
      rows.some((r) => typeof r[name] === "number"));
    charts.replaceChildren(...shownMetrics.map(([name, meaning]) => chart(name, meaning, rows)));
    note.textContent = rep.has_truth ? "With the ground-truth video: IoU vs truth and lag are shown too."
      : "No ground-truth video was uploaded: only the steadiness metrics are shown.";
  }

  function update() {
    const v = state.video, rid = state.shownRid;
    if (!v) return;
    video = v;
    shown = rid;
    const done = v.results.filter((r) => r.state === "succeeded");
    el.hidden = done.length === 0;
    for (const b of [buttons.frames, buttons.masks, buttons.matte]) b.disabled = !rid;
    const key = `${v.id}:${done.map((r) => r.id).join(",")}`;
    if (done.length && key !== loadedFor) {
      loadedFor = key;
      load().catch((err) => {
        loadedFor = "";
        if (!signal.aborted && err.name !== "AbortError") notifyError(err, "Could not load the comparison: ");
      });
    }
  }
  state.on("video", update);
  state.on("shown", update);
  return { el };
}
