// "Stability": the shown result set's IoU between consecutive frames, raw (dashed) vs
// stabilized, as an SVG line chart with a marker at the viewer's frame (a click jumps
// there), the summary in words and as a table, and the per-frame values on demand.

import { h } from "../dom.js";
import { describeParams, fmt, pct, svg } from "./format.js";

export function chartCard(state, { onFrame }) {
  const chartBox = h("div", { class: "vid-chart", id: "vid-chart" });
  const headline = h("p", { id: "vid-headline", class: "vid-headline" });
  const summaryBody = h("tbody");
  const seriesDetails = h("details", {}, h("summary", {}, "Per-frame values as a table"));
  const el = h("section", { class: "card", "aria-labelledby": "vid-chart-h", hidden: true },
    h("h2", { id: "vid-chart-h" }, "Stability: IoU between consecutive frames"),
    headline,
    chartBox,
    h("p", { class: "vid-legend" },
      h("span", { class: "vid-swatch raw", "aria-hidden": "true" }), "raw masks (dashed)", " ",
      h("span", { class: "vid-swatch stable", "aria-hidden": "true" }), "stabilized masks", " ",
      h("span", { class: "muted" }, "Higher is steadier; click the chart to jump to a frame.")),
    h("div", { class: "table-wrap" },
      h("table", { id: "vid-summary" },
        h("caption", { class: "muted" }, "Summary: raw vs stabilized"),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Measure"), h("th", { scope: "col" }, "Raw"),
          h("th", { scope: "col" }, "Stabilized"), h("th", { scope: "col" }, "Change"))),
        summaryBody)),
    seriesDetails);
  let geom = null, lastWidth = 0;

  function renderSummary(m) {
    const raw = m.raw.summary, st = m.stable.summary, imp = m.improvement_pct || {};
    const rows = [
      ["Mean IoU between consecutive frames (higher = steadier)", raw.iou?.mean, st.iou?.mean, null],
      ["Mean instability, 1 − IoU (flicker)", raw.instability?.mean, st.instability?.mean, imp.instability],
      ["95th percentile instability", raw.instability?.p95, st.instability?.p95, null],
      ["Mean flow-warped IoU (motion compensated)", raw.warped_iou?.mean, st.warped_iou?.mean, imp.warped_instability],
    ];
    if (raw.iou_truth) rows.push(["Mean IoU vs ground truth", raw.iou_truth.mean, st.iou_truth?.mean, null]);
    const diff = (a, b) => (a !== undefined && b !== undefined && Number.isFinite(a) && Number.isFinite(b)
      ? `${b - a >= 0 ? "+" : "−"}${Math.abs(b - a).toFixed(3)}` : "–");
    summaryBody.replaceChildren(...rows.map(([name, a, b, change]) => h("tr", {},
      h("th", { scope: "row" }, name), h("td", {}, fmt(a)), h("td", {}, fmt(b)),
      h("td", {}, change === null || change === undefined ? diff(a, b) : `${pct(change)} flicker`))));
    if (raw.lag_frames !== undefined) {
      summaryBody.append(h("tr", {}, h("th", { scope: "row" }, "Lag behind ground truth (frames)"),
        h("td", {}, String(raw.lag_frames)), h("td", {}, String(st.lag_frames ?? "–")), h("td", {}, "")));
    }
    const label = m.method === "none" ? "Raw masks (no stabilization)" : `${m.method}${describeParams(m.params) ? ` (${describeParams(m.params)})` : ""}`;
    const flick = imp.instability;
    headline.textContent = m.frames < 2 ? `${label}: one frame, nothing to compare.`
      : `${label}: mean IoU ${fmt(raw.iou?.mean)} raw → ${fmt(st.iou?.mean)} stabilized; ` +
        (m.method === "none" ? "this is the baseline." : flick === null || flick === undefined
          ? "flicker change not defined (the raw masks do not flicker)."
          : flick >= 0 ? `flicker reduced by ${flick.toFixed(1)} %.` : `flicker increased by ${(-flick).toFixed(1)} %.`);
  }

  function renderSeriesTable() {
    // Built on demand: a long video has thousands of rows.
    const m = state.metrics;
    if (!seriesDetails.open || !m) return;
    const rawS = m.raw.series.iou, stS = m.stable.series.iou;
    const table = h("table", { class: "vid-series" },
      h("caption", { class: "muted" }, "IoU of each frame with the frame before it"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Frame"), h("th", { scope: "col" }, "Raw"), h("th", { scope: "col" }, "Stabilized"))),
      h("tbody", {}, rawS.map((v, i) => h("tr", {}, h("th", { scope: "row" }, String(i + 1)), h("td", {}, fmt(v)), h("td", {}, fmt(stS[i]))))));
    seriesDetails.replaceChildren(seriesDetails.firstElementChild, h("div", { class: "table-wrap vid-series-wrap" }, table));
  }
  seriesDetails.addEventListener("toggle", renderSeriesTable);

  function draw() {
    const m = state.metrics;
    if (!m) return;
    const rawS = m.raw.series.iou || [], stS = m.stable.series.iou || [];
    const W = Math.max(260, Math.floor(chartBox.clientWidth || 600)), H = 220;
    const pad = { l: 40, r: 12, t: 10, b: 30 };
    const n = m.frames;
    const all = [...rawS, ...stS].filter(Number.isFinite);
    if (n < 2 || !all.length) { chartBox.replaceChildren(h("p", { class: "muted" }, "Fewer than two frames: no series to draw.")); geom = null; return; }
    // Zoom to the data: IoU near 1 everywhere would otherwise be a flat line at the top.
    const lo = Math.min(0.8, Math.floor(Math.min(...all) * 5) / 5);
    const x = (i) => pad.l + ((W - pad.l - pad.r) * i) / Math.max(1, n - 1);
    const y = (v) => pad.t + ((H - pad.t - pad.b) * (1 - v)) / (1 - lo);
    const pts = (s) => s.map((v, i) => (Number.isFinite(v) ? `${x(i + 1).toFixed(1)},${y(v).toFixed(1)}` : null)).filter(Boolean).join(" ");
    const title = svg("title", { id: "vid-chart-title" }, `IoU between consecutive frames, raw vs stabilized (${m.method})`);
    const desc = svg("desc", { id: "vid-chart-desc" }, headline.textContent);
    const grid = svg("g", { class: "grid" });
    for (let k = 0; k <= 4; k++) {
      const v = lo + ((1 - lo) * k) / 4;
      grid.append(svg("line", { x1: pad.l, x2: W - pad.r, y1: y(v), y2: y(v) }),
        svg("text", { x: pad.l - 4, y: y(v) + 4, "text-anchor": "end" }, v.toFixed(2)));
    }
    const step = Math.max(1, Math.ceil((n - 1) / Math.max(2, Math.floor((W - pad.l - pad.r) / 60))));
    for (let i = 0; i <= n - 1; i += step) {
      grid.append(svg("text", { x: x(i), y: H - pad.b + 16, "text-anchor": "middle" }, String(i)));
    }
    grid.append(svg("text", { x: W - pad.r, y: H - 2, "text-anchor": "end" }, "frame"));
    const marker = svg("line", { class: "marker", y1: pad.t, y2: H - pad.b });
    const chart = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img",
      "aria-labelledby": "vid-chart-title vid-chart-desc" },
      title, desc, grid,
      svg("polyline", { class: "raw", points: pts(rawS) }),
      svg("polyline", { class: "stable", points: pts(stS) }),
      marker);
    chart.addEventListener("click", (ev) => {
      const r = chart.getBoundingClientRect();
      const i = Math.round(((ev.clientX - r.left - pad.l) / (W - pad.l - pad.r)) * (n - 1));
      if (state.viewerReady) onFrame(i);
    });
    chartBox.replaceChildren(chart);
    geom = { x, marker };
    mark();
  }

  function mark() {
    if (!geom) return;
    geom.marker.setAttribute("x1", geom.x(state.frame));
    geom.marker.setAttribute("x2", geom.x(state.frame));
  }

  const ro = new ResizeObserver(() => {
    const w = chartBox.clientWidth;
    if (w && Math.abs(w - lastWidth) > 4) { lastWidth = w; draw(); }
  });
  ro.observe(chartBox);

  state.on("reset", () => {
    geom = null;
    chartBox.replaceChildren();
    summaryBody.replaceChildren();
    headline.textContent = "";
  });
  state.on("metrics", () => {
    if (state.metricsError) { headline.textContent = state.metricsError; return; }
    el.hidden = false;
    renderSummary(state.metrics);
    draw();
    renderSeriesTable();
  });
  state.on("frame", mark);
  return { el, destroy: () => ro.disconnect() };
}
