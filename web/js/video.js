// The Video page: upload a clip, follow its segmentation, step through its frames
// (original, raw mask, stabilized mask, overlay), compare the per-frame IoU of raw and
// stabilized masks, and try other stabilization methods on the stored probabilities
// without segmenting again. The open video lives in the hash (#/video/<id>) so a reload
// or a shared link comes back to it; the key's recent videos come from GET /api/v1/videos,
// so they follow the key to any browser.

import { errorText, formatBytes, formatDuration, h } from "./dom.js";
import { compareCard } from "./video_compare.js";

const RECENT_MAX = 10;
const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
const KINDS = [
  { kind: "original", label: "Original" },
  { kind: "raw", label: "Raw mask" },
  { kind: "stable", label: "Stabilized mask" },
  { kind: "overlay", label: "Overlay" },
];
const POLL_MIN_MS = 500;
const POLL_MAX_MS = 5000;
// nginx allows 20 requests/s (burst 40) per client; a 429 would be retried, but frames
// are cheap to wait for, so the viewer stays under the limit by itself.
const IMG_RATE = 12;
const IMG_BURST = 16;
const IMG_PARALLEL = 4;
const IMG_CACHE = 96;
const SVG_NS = "http://www.w3.org/2000/svg";

// ------------------------------------------------------------------------ small helpers

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const fmt = (v, digits = 3) => (v === null || v === undefined || !Number.isFinite(v) ? "–" : v.toFixed(digits));
const pct = (v) => (v === null || v === undefined || !Number.isFinite(v) ? "–" : `${v > 0 ? "−" : v < 0 ? "+" : ""}${Math.abs(v).toFixed(1)} %`);
const humanize = (name) => name.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
const isAbort = (e) => e && (e.name === "AbortError" || e.code === "dropped");

function describeParams(params) {
  const parts = Object.entries(params || {}).map(([k, v]) => `${k}=${v}`);
  return parts.length ? parts.join(", ") : "";
}

function setLabel(r) {
  if (r.method === "none") return "raw masks (no stabilization)";
  const p = describeParams(r.params);
  return p ? `${r.method} (${p})` : r.method;
}

function hashVideoId() {
  return (location.hash.match(/^#\/video\/([\w-]{1,64})/) || [])[1] || null;
}

// ------------------------------------------------------------------------ parameter controls

// Inputs for one stabilization method's parameters, built from the ranges the API reports.
function methodControls(methods, idPrefix, { allowNone = false, initial } = {}) {
  const names = Object.keys(methods);
  const select = h("select", { id: `${idPrefix}-method`, name: "method" },
    allowNone ? h("option", { value: "" }, "nothing (raw masks only)") : null,
    names.map((m) => h("option", { value: m }, m)));
  select.value = initial && (names.includes(initial) || (allowNone && initial === "")) ? initial
    : names.includes("flow_ema") ? "flow_ema" : names[0];
  const paramsBox = h("div", { class: "vid-params" });
  let inputs = {};

  function numberInput(id, name, spec) {
    const integer = spec.type === "integer";
    const min = spec.minimum ?? (spec.exclusiveMinimum !== undefined ? spec.exclusiveMinimum + (integer ? 1 : 0.01) : undefined);
    const max = spec.maximum ?? (spec.exclusiveMaximum !== undefined ? spec.exclusiveMaximum - (integer ? 1 : 0.01) : undefined);
    // The schema cannot say "odd"; a step of 2 from an odd minimum lets the browser enforce it.
    const step = integer ? (/\bodd\b/.test(spec.description || "") && min % 2 === 1 ? 2 : 1) : 0.05;
    return h("input", { id, name, type: "number", inputmode: integer ? "numeric" : "decimal", required: true,
      min: min !== undefined ? String(min) : null, max: max !== undefined ? String(max) : null,
      step: String(step), value: String(spec.default ?? min ?? "") });
  }

  function rangeText(spec) {
    if (spec.enum) return "";
    const lo = spec.minimum ?? spec.exclusiveMinimum, hi = spec.maximum ?? spec.exclusiveMaximum;
    if (lo === undefined || hi === undefined) return "";
    const open = spec.exclusiveMinimum !== undefined || spec.exclusiveMaximum !== undefined;
    return open ? ` (between ${lo} and ${hi})` : ` (${lo}–${hi})`;
  }

  function render() {
    inputs = {};
    paramsBox.replaceChildren();
    const spec = methods[select.value] || {};
    for (const [name, p] of Object.entries(spec)) {
      const id = `${idPrefix}-p-${name}`;
      const help = p.description ? h("small", { id: `${id}-help`, class: "muted" }, p.description) : null;
      const input = p.enum
        ? h("select", { id, name }, p.enum.map((v) => h("option", { value: v }, v)))
        : numberInput(id, name, p);
      if (p.enum && p.default !== undefined) input.value = p.default;
      if (help) input.setAttribute("aria-describedby", help.id);
      inputs[name] = { input, spec: p };
      paramsBox.append(h("div", { class: "vid-field" },
        h("label", { for: id }, `${humanize(name)}${rangeText(p)}`), input, help));
    }
  }
  select.addEventListener("change", render);
  render();

  return {
    select,
    fields: h("div", { class: "vid-field" }, h("label", { for: select.id }, allowNone ? "Then stabilize with" : "Method"), select),
    params: paramsBox,
    // {method, params}, or throws an Error naming the first bad field and its range.
    value() {
      const method = select.value;
      if (!method) return null;
      const params = {};
      for (const [name, { input, spec }] of Object.entries(inputs)) {
        if (!input.checkValidity()) {
          input.focus();
          throw new Error(`${humanize(name)}: ${input.validationMessage || "out of range"}${rangeText(spec)}`);
        }
        params[name] = spec.enum ? input.value : input.valueAsNumber;
      }
      return { method, params };
    },
    setDisabled(disabled) {
      select.disabled = disabled;
      for (const { input } of Object.values(inputs)) input.disabled = disabled;
    },
  };
}

// ------------------------------------------------------------------------ frame images

// Object URLs of frame images behind the key: a small LRU cache, a queue that drops
// loads the viewer no longer wants (scrubbing past them), a client-side rate limit.
function frameLoader(api, signal) {
  const cache = new Map(); // key -> {url, promise}; Map order = least recently used first
  const queue = [];
  const shown = new Set(); // URLs in an <img> now: never revoked while shown
  let wanted = new Set();
  let inflight = 0, tokens = IMG_BURST, last = performance.now(), timer = null;

  function pump() {
    if (signal.aborted) return;
    const now = performance.now();
    tokens = Math.min(IMG_BURST, tokens + ((now - last) * IMG_RATE) / 1000);
    last = now;
    while (inflight < IMG_PARALLEL && queue.length && tokens >= 1) {
      const job = queue.shift();
      tokens -= 1;
      inflight++;
      api.objectUrl(job.path, { signal }).then((url) => {
        const entry = cache.get(job.key);
        if (signal.aborted || !entry) { URL.revokeObjectURL(url); job.reject(Object.assign(new Error("dropped"), { code: "dropped" })); return; }
        entry.url = url;
        job.resolve(url);
      }, (err) => {
        cache.delete(job.key);
        job.reject(err);
      }).finally(() => { inflight--; pump(); });
    }
    if (queue.length && tokens < 1 && !timer) {
      timer = setTimeout(() => { timer = null; pump(); }, Math.ceil(((1 - tokens) * 1000) / IMG_RATE));
    }
  }

  function evict() {
    for (const [key, e] of cache) {
      if (cache.size <= IMG_CACHE) break;
      if (e.url && !shown.has(e.url) && !wanted.has(key)) {
        URL.revokeObjectURL(e.url);
        cache.delete(key);
      }
    }
  }

  return {
    shown,
    get(key, path) {
      let e = cache.get(key);
      if (e) {
        cache.delete(key);
        cache.set(key, e);
        return e.promise;
      }
      e = { url: null };
      e.promise = new Promise((resolve, reject) => queue.push({ key, path, resolve, reject }));
      cache.set(key, e);
      pump();
      evict();
      return e.promise;
    },
    // Only these keys matter now: queued loads of any other are dropped.
    want(keys) {
      wanted = keys;
      for (let i = queue.length - 1; i >= 0; i--) {
        if (wanted.has(queue[i].key)) continue;
        const [job] = queue.splice(i, 1);
        cache.delete(job.key);
        job.reject(Object.assign(new Error("dropped"), { code: "dropped" }));
      }
    },
    destroy() {
      clearTimeout(timer);
      for (const job of queue.splice(0)) job.reject(Object.assign(new Error("dropped"), { code: "dropped" }));
      for (const e of cache.values()) if (e.url) URL.revokeObjectURL(e.url);
      cache.clear();
      shown.clear();
    },
  };
}

// ------------------------------------------------------------------------ the page

export function mount(root, { api, notify, notifyError }) {
  const ctrl = new AbortController();
  const { signal } = ctrl;
  const cleanups = [];
  let options = null; // GET /segment/classes
  let video = null; // GET /videos/{id}
  let loader = null;
  let pollTimer = null, pollDelay = POLL_MIN_MS, pollSeq = 0;
  let shownRid = null; // result set in the viewer and chart
  const awaiting = new Set(); // sets asked for from this page: each is shown once it succeeds
  let pendingMethod = null; // chosen at upload, run once segmentation ends
  let frame = 0, lastStep = 1;
  let viewerReady = false;
  const metricsCache = new Map(); // rid -> metrics JSON
  let metricsShown = null;
  let uploadCtrl = null;
  const alive = () => !signal.aborted;

  // ---------------------------------------------------------------- upload card
  const fileInput = h("input", { id: "vid-file", type: "file", name: "file",
    accept: "video/*,.mp4,.mov,.avi,.mkv,.webm", "aria-describedby": "vid-limits" });
  const fileInfo = h("p", { class: "muted", id: "vid-file-info" }, "No file chosen yet.");
  const limitsText = h("p", { class: "muted", id: "vid-limits" }, "mp4, mov, avi, mkv or webm.");
  const drop = h("div", { class: "dropzone vid-drop" },
    h("p", {}, "Drop a video here, or"),
    h("label", { for: "vid-file" }, "Choose a video file"), " ", fileInput, limitsText, fileInfo);
  const classSel = h("select", { id: "vid-class", name: "target_class" });
  const modelSel = h("select", { id: "vid-model", name: "model" });
  const sizeInput = h("input", { id: "vid-size", name: "processing_size", type: "number", inputmode: "numeric",
    min: "128", max: "1024", step: "1", "aria-describedby": "vid-size-help" });
  const sizeHelp = h("small", { id: "vid-size-help", class: "muted" }, "Longer side of the frames the network sees; smaller is faster.");
  const uploadMethodBox = h("div", { class: "vid-method" });
  const uploadBtn = h("button", { type: "submit", id: "vid-upload", disabled: true }, "Upload and segment");
  const cancelUploadBtn = h("button", { type: "button", class: "secondary", hidden: true }, "Cancel upload");
  const uploadProgress = h("progress", { id: "vid-upload-progress", max: "1", value: "0", "aria-label": "Upload progress" });
  const uploadText = h("span", { class: "muted" });
  const uploadBar = h("div", { class: "bar", hidden: true }, uploadProgress, uploadText);
  const uploadError = h("div", { class: "vid-error", role: "alert", id: "vid-upload-error" });
  const recentSel = h("select", { id: "vid-recent" });
  const recentBox = h("div", { class: "row vid-recent", hidden: true },
    h("label", { for: "vid-recent" }, "Recent videos"), recentSel,
    h("button", { type: "button", class: "secondary", onclick: () => recentSel.value && openById(recentSel.value) }, "Open"));
  let uploadMethod = null;

  const uploadForm = h("form", { class: "card", id: "vid-upload-form", "aria-labelledby": "vid-upload-h", novalidate: true },
    h("h2", { id: "vid-upload-h" }, "Upload"),
    recentBox, drop,
    h("div", { class: "vid-opts" },
      h("div", { class: "vid-field" }, h("label", { for: "vid-class" }, "Target class"), classSel),
      h("div", { class: "vid-field" }, h("label", { for: "vid-model" }, "Model"), modelSel),
      h("div", { class: "vid-field" }, h("label", { for: "vid-size" }, "Processing size (px)"), sizeInput, sizeHelp)),
    uploadMethodBox,
    h("div", { class: "row" }, uploadBtn, cancelUploadBtn), uploadBar, uploadError);

  // ---------------------------------------------------------------- status card
  const statusName = h("h2", { id: "vid-status-h" }, "Video");
  const statusState = h("span", { class: "state", id: "vid-state" });
  const statusProgress = h("progress", { id: "vid-progress", max: "1", value: "0", "aria-label": "Segmentation progress" });
  const statusText = h("span", { class: "muted", id: "vid-progress-text" });
  const statusInfo = h("p", { class: "muted", id: "vid-info" });
  const statusError = h("div", { class: "vid-error", role: "alert", id: "vid-error" });
  const deleteBtn = h("button", { type: "button", class: "secondary", id: "vid-delete" }, "Delete video");
  const statusCard = h("section", { class: "card", "aria-labelledby": "vid-status-h", hidden: true },
    h("div", { class: "row vid-head" }, statusName, statusState, deleteBtn),
    h("div", { class: "bar", "aria-live": "polite" }, statusProgress, statusText), statusInfo, statusError);

  // ---------------------------------------------------------------- result sets card
  const resultSel = h("select", { id: "vid-result" });
  const downloadBtn = h("button", { type: "button", id: "vid-download", disabled: true }, "Download overlay MP4");
  const resultsBody = h("tbody");
  const tryBox = h("div", { class: "vid-method" });
  const tryBtn = h("button", { type: "submit", id: "vid-try", disabled: true }, "Run this method");
  const tryError = h("div", { class: "vid-error", role: "alert", id: "vid-try-error" });
  let tryMethod = null;
  const tryForm = h("form", { id: "vid-try-form", novalidate: true, "aria-labelledby": "vid-try-h" },
    h("h3", { id: "vid-try-h" }, "Try another method"),
    h("p", { class: "muted" }, "Runs on the stored mask probabilities: the video is not segmented again."),
    tryBox, h("div", { class: "row" }, tryBtn), tryError);
  const resultsCard = h("section", { class: "card", "aria-labelledby": "vid-results-h", hidden: true },
    h("h2", { id: "vid-results-h" }, "Result sets"),
    h("div", { class: "row" },
      h("div", { class: "vid-field vid-grow" }, h("label", { for: "vid-result" }, "Result set shown"), resultSel),
      downloadBtn),
    h("div", { class: "table-wrap" },
      h("table", { class: "vid-results" },
        h("caption", { class: "muted" }, "Every stabilization of this video"),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "#"), h("th", { scope: "col" }, "Method"),
          h("th", { scope: "col" }, "State"), h("th", { scope: "col" }, "Mean IoU"),
          h("th", { scope: "col" }, "Flicker"))),
        resultsBody)),
    tryForm);
  const compare = compareCard({ api, signal, notifyError });

  // ---------------------------------------------------------------- frame viewer card
  const viewSel = h("select", { id: "vid-view" },
    h("option", { value: "all" }, "All four"), KINDS.map((k) => h("option", { value: k.kind }, k.label)));
  const slider = h("input", { id: "vid-frame", type: "range", min: "0", max: "0", step: "1", value: "0" });
  const frameOut = h("output", { id: "vid-frame-out", for: "vid-frame", "aria-live": "polite" }, "Frame 0");
  const prevBtn = h("button", { type: "button", class: "secondary", "aria-label": "Previous frame" }, "‹ Prev");
  const nextBtn = h("button", { type: "button", class: "secondary", "aria-label": "Next frame" }, "Next ›");
  const panels = {};
  for (const k of KINDS) {
    const img = h("img", { alt: "", class: "vid-img", dataset: { kind: k.kind } });
    const cap = h("figcaption", {}, k.label);
    const note = h("span", { class: "vid-img-note muted" });
    panels[k.kind] = { fig: h("figure", { dataset: { kind: k.kind } }, h("div", { class: "vid-imgbox" }, img, note), cap), img, cap, note };
  }
  const viewer = h("div", { class: "vid-panels", id: "vid-viewer", tabindex: "0", role: "group",
    "aria-label": "Frame viewer: left and right arrow keys step one frame, Page Up and Page Down ten, Home and End jump to the ends",
  }, KINDS.map((k) => panels[k.kind].fig));
  const viewerCard = h("section", { class: "card", "aria-labelledby": "vid-frames-h", hidden: true },
    h("h2", { id: "vid-frames-h" }, "Frames"),
    h("div", { class: "row" },
      h("div", { class: "vid-field" }, h("label", { for: "vid-view" }, "Show"), viewSel),
      h("div", { class: "row vid-step" }, prevBtn, frameOut, nextBtn)),
    h("div", { class: "vid-field" }, h("label", { for: "vid-frame" }, "Frame"), slider),
    viewer,
    h("p", { class: "muted" }, "Focus the frames and use the arrow keys to step through them."));

  // ---------------------------------------------------------------- chart card
  const chartBox = h("div", { class: "vid-chart", id: "vid-chart" });
  const chartHeadline = h("p", { id: "vid-headline", class: "vid-headline" });
  const summaryBody = h("tbody");
  const seriesDetails = h("details", {}, h("summary", {}, "Per-frame values as a table"));
  const chartCard = h("section", { class: "card", "aria-labelledby": "vid-chart-h", hidden: true },
    h("h2", { id: "vid-chart-h" }, "Stability: IoU between consecutive frames"),
    chartHeadline,
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

  root.append(h("div", { class: "vid" },
    h("h1", {}, "Video"),
    h("p", { class: "muted" }, "Segment a video frame by frame, then compare stabilization methods on its masks."),
    uploadForm, statusCard, resultsCard, compare.el, viewerCard, chartCard));

  // ---------------------------------------------------------------- options

  function fillOptions(o) {
    options = o;
    classSel.replaceChildren(...o.classes.map((c) => h("option", { value: c }, c)));
    classSel.value = o.classes.includes("person") ? "person" : o.classes[0];
    modelSel.replaceChildren(...Object.entries(o.models).map(([m, desc]) =>
      h("option", { value: m, title: desc }, m === o.default_model ? `${m} (default)` : m)));
    modelSel.value = o.default_model;
    const size = o.upload?.processing_size;
    if (size) {
      sizeInput.min = String(size.minimum);
      sizeInput.max = String(size.maximum);
      sizeInput.value = String(size.default);
      sizeHelp.textContent = `${size.minimum}–${size.maximum}. Longer side of the frames the network sees; smaller is faster.`;
    }
    const lim = o.limits;
    if (lim) {
      limitsText.textContent = `mp4, mov, avi, mkv or webm; at most ${formatBytes(lim.max_bytes)}, ` +
        `${lim.max_frames} frames, ${formatDuration(lim.max_seconds)}, ${lim.max_width}×${lim.max_height}.`;
    }
    uploadMethod = methodControls(o.methods, "vid-up", { allowNone: true });
    uploadMethodBox.replaceChildren(h("div", { class: "vid-opts" }, uploadMethod.fields, uploadMethod.params));
    tryMethod = methodControls(o.methods, "vid-try", { initial: Object.keys(o.methods)[0] });
    tryBox.replaceChildren(h("div", { class: "vid-opts" }, tryMethod.fields, tryMethod.params));
    uploadBtn.disabled = false;
    syncTry();
  }

  api.get("/api/v1/segment/classes", { signal }).then((o) => alive() && fillOptions(o), (err) => {
    if (!alive()) return;
    uploadError.textContent = `Could not load the segmentation options: ${errorText(err)}`;
  });

  // ---------------------------------------------------------------- recent videos

  async function renderRecent() {
    let list = [];
    try {
      list = (await api.get("/api/v1/videos", { query: { limit: RECENT_MAX }, signal })).videos
        .map((v) => ({ id: v.id, name: v.input?.name, at: v.created_at * 1000 }));
    } catch (err) {
      if (!alive() || isAbort(err)) return;
    }
    if (!alive()) return;
    recentBox.hidden = list.length === 0;
    recentSel.replaceChildren(...list.map((v) => h("option", { value: v.id },
      `${v.name || v.id} · ${new Date(v.at).toLocaleString()}`)));
    if (video) recentSel.value = video.id;
  }
  renderRecent();

  // ---------------------------------------------------------------- file choice and upload

  function chooseFile(file) {
    uploadError.textContent = "";
    if (!file) { fileInfo.textContent = "No file chosen yet."; return; }
    fileInfo.textContent = `${file.name} · ${formatBytes(file.size)}${file.type ? ` · ${file.type}` : ""}`;
  }
  let chosen = null;
  fileInput.addEventListener("change", () => { chosen = fileInput.files[0] || null; chooseFile(chosen); });
  drop.addEventListener("dragover", (ev) => {
    ev.preventDefault();
    if (ev.dataTransfer) ev.dataTransfer.dropEffect = "copy";
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", (ev) => {
    // Moving over the zone's own children fires dragleave too.
    if (!drop.contains(ev.relatedTarget)) drop.classList.remove("over");
  });
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    const files = [...(ev.dataTransfer?.files || [])];
    if (!files.length) return;
    if (files.length > 1) notify("One video at a time: using the first file dropped.", "info");
    chosen = files[0];
    fileInput.value = "";
    chooseFile(chosen);
  });

  function rejectionText(err, name) {
    // nginx answers an oversized body with its own HTML page, not the API's JSON.
    if (err.code === "http_413") return `${name} is larger than the server accepts.`;
    return errorText(err);
  }

  uploadForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    uploadError.textContent = "";
    if (!options) return;
    const file = chosen;
    if (!file) { uploadError.textContent = "Choose a video file first."; fileInput.focus(); return; }
    if (file.size === 0) { uploadError.textContent = `${file.name} is empty.`; return; }
    if (options.limits && file.size > options.limits.max_bytes) {
      uploadError.textContent = `${file.name} is ${formatBytes(file.size)}; the server accepts at most ${formatBytes(options.limits.max_bytes)}.`;
      return;
    }
    if (!sizeInput.checkValidity()) {
      uploadError.textContent = `Processing size: ${sizeInput.validationMessage} (${sizeInput.min}–${sizeInput.max})`;
      sizeInput.focus();
      return;
    }
    let method;
    try { method = uploadMethod.value(); } catch (e) { uploadError.textContent = e.message; return; }
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("target_class", classSel.value);
    form.append("model", modelSel.value);
    if (sizeInput.value) form.append("processing_size", sizeInput.value);

    uploadCtrl = new AbortController();
    const stop = () => uploadCtrl?.abort();
    signal.addEventListener("abort", stop, { once: true });
    uploadBtn.disabled = true;
    cancelUploadBtn.hidden = false;
    uploadBar.hidden = false;
    uploadProgress.value = 0;
    uploadText.textContent = `Uploading ${file.name}…`;
    try {
      const v = await api.upload("/api/v1/videos", form, {
        signal: uploadCtrl.signal,
        onProgress: (f) => {
          uploadProgress.value = f;
          uploadText.textContent = `Uploading ${file.name}: ${Math.round(f * 100)} % of ${formatBytes(file.size)}`;
        },
      });
      if (!alive()) return;
      uploadProgress.value = 1;
      uploadText.textContent = `Uploaded ${file.name}.`;
      pendingMethod = method;
      history.replaceState(null, "", `#/video/${v.id}`);
      showVideo(v);
    } catch (err) {
      if (!alive()) return;
      uploadBar.hidden = true;
      uploadError.textContent = isAbort(err) ? "Upload canceled."
        : `The server refused ${file.name}: ${rejectionText(err, file.name)}`;
    } finally {
      signal.removeEventListener("abort", stop);
      uploadCtrl = null;
      if (alive()) { uploadBtn.disabled = false; cancelUploadBtn.hidden = true; }
    }
  });
  cancelUploadBtn.addEventListener("click", () => uploadCtrl?.abort());

  // ---------------------------------------------------------------- opening a video

  async function openById(id) {
    try {
      const v = await api.get(`/api/v1/videos/${encodeURIComponent(id)}`, { signal });
      if (!alive()) return;
      history.replaceState(null, "", `#/video/${v.id}`);
      pendingMethod = null;
      showVideo(v);
    } catch (err) {
      if (!alive() || isAbort(err)) return;
      if (err.status === 404) {
        renderRecent();
        notify("That video no longer exists (deleted, or it belongs to another key).", "error");
      } else {
        notifyError(err, "Could not open the video: ");
      }
    }
  }

  function resetVideo() {
    clearTimeout(pollTimer);
    pollSeq++;
    loader?.destroy();
    loader = null;
    metricsCache.clear();
    metricsShown = null;
    shownRid = null;
    awaiting.clear();
    viewerReady = false;
    frame = 0;
    for (const p of Object.values(panels)) { p.img.removeAttribute("src"); delete p.img.dataset.frame; p.note.textContent = ""; }
    chartBox.replaceChildren();
    summaryBody.replaceChildren();
    chartHeadline.textContent = "";
  }

  function showVideo(v) {
    resetVideo();
    video = v;
    loader = frameLoader(api, signal);
    statusCard.hidden = false;
    renderRecent();
    applyVideo(v);
    pollDelay = POLL_MIN_MS;
    if (!settled(v)) schedulePoll(POLL_MIN_MS);
  }

  const settled = (v) => TERMINAL.has(v.state) && v.results.every((r) => TERMINAL.has(r.state));

  function schedulePoll(ms) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, ms);
  }

  async function poll() {
    if (!video || !alive()) return;
    const seq = ++pollSeq;
    const before = JSON.stringify([video.state, video.progress, video.results.map((r) => [r.id, r.state, r.progress])]);
    try {
      const v = await api.get(`/api/v1/videos/${video.id}`, { signal });
      if (!alive() || seq !== pollSeq || v.id !== video?.id) return;
      statusError.textContent = video.state === "failed" ? statusError.textContent : "";
      const after = JSON.stringify([v.state, v.progress, v.results.map((r) => [r.id, r.state, r.progress])]);
      applyVideo(v);
      // Back off while nothing moves; answer quickly again once it does.
      pollDelay = after !== before ? POLL_MIN_MS : Math.min(POLL_MAX_MS, pollDelay * 1.6);
      if (!settled(v) || awaiting.size) schedulePoll(pollDelay);
    } catch (err) {
      if (!alive() || isAbort(err) || seq !== pollSeq) return;
      if (err.status === 404) {
        statusError.textContent = "This video was deleted.";
        return;
      }
      statusError.textContent = `Lost contact with the server (${errorText(err)}); retrying…`;
      pollDelay = Math.min(15000, pollDelay * 2);
      schedulePoll(pollDelay);
    }
  }

  // ---------------------------------------------------------------- applying a video's state

  function applyVideo(v) {
    const known = new Map((video?.results || []).map((r) => [r.id, r]));
    // A set asked for a moment ago may be missing from a poll answer already in flight.
    for (const r of v.results) known.delete(r.id);
    v.results = [...v.results, ...[...known.values()].filter((r) => awaiting.has(r.id))];
    video = v;

    statusName.textContent = v.input?.name || "Video";
    statusState.className = `state ${v.state}`;
    statusState.textContent = v.state;
    statusProgress.value = v.state === "succeeded" ? 1 : v.progress || 0;
    statusText.textContent = v.state === "queued" ? "Waiting for a segment worker…"
      : v.state === "running" ? `Segmenting: ${Math.round((v.progress || 0) * 100)} %`
        : v.state === "succeeded" ? "Segmented." : v.state === "failed" ? "Segmentation failed." : "Canceled.";
    const inp = v.input || {}, res = v.result || {}, p = v.params || {};
    const bits = [];
    if (res.frames || inp.frames) bits.push(`${res.frames || inp.frames} frames`);
    if (res.width) bits.push(`${res.width}×${res.height} processed`);
    else if (inp.width) bits.push(`${inp.width}×${inp.height}`);
    if (inp.fps) bits.push(`${Number(inp.fps).toFixed(inp.fps % 1 ? 2 : 0)} fps`);
    if (p.model) bits.push(p.model);
    if (p.target_class) bits.push(`class ${p.target_class}`);
    if (res.timings?.segment_seconds !== undefined) {
      bits.push(`segmented in ${res.timings.segment_seconds.toFixed(1)} s (${res.timings.frames_per_second} frames/s)`);
    }
    statusInfo.textContent = bits.join(" · ");
    if (v.state === "failed") statusError.textContent = `Segmentation failed: ${errorText(v.error)}`;

    renderResults(v);

    if (v.state === "succeeded") {
      if (!viewerReady) setupViewer(v);
      if (pendingMethod) {
        const m = pendingMethod;
        pendingMethod = null;
        runMethod(m);
      }
    }

    for (const r of v.results) {
      if (!awaiting.has(r.id) || !TERMINAL.has(r.state)) continue;
      awaiting.delete(r.id);
      if (r.state === "succeeded") {
        showResult(r.id);
        notify(`${setLabel(r)}: ready.`, "info");
      } else {
        tryError.textContent = `${setLabel(r)} ${r.state}: ${errorText(r.error)}`;
      }
    }
    const done = v.results.filter((r) => r.state === "succeeded");
    // Until the method chosen at upload is ready, the raw masks are worth a look.
    if (!shownRid && done.length && v.state === "succeeded") showResult(done[done.length - 1].id);
    syncTry();
  }

  function renderResults(v) {
    resultsCard.hidden = v.state !== "succeeded" && !v.results.some((r) => r.state === "succeeded");
    compare.update(v, shownRid);
    const prev = resultSel.value;
    resultSel.replaceChildren(...v.results.map((r, i) => h("option",
      { value: r.id, disabled: r.state !== "succeeded" },
      `#${i + 1} ${setLabel(r)}${r.state === "succeeded" ? "" : ` — ${r.state}`}`)));
    resultSel.value = shownRid || prev;
    resultsBody.replaceChildren(...v.results.map((r, i) => {
      const flicker = r.improvement_pct?.instability;
      const state = r.state === "running" ? `running ${Math.round((r.progress || 0) * 100)} %` : r.state;
      return h("tr", { dataset: { resultId: r.id }, "aria-current": r.id === shownRid ? "true" : null },
        h("td", {}, String(i + 1)),
        h("td", {}, setLabel(r), r.id === shownRid ? h("span", { class: "muted" }, " (shown)") : null),
        h("td", {}, h("span", { class: `state ${r.state}` }, state),
          r.error ? h("div", { class: "bad" }, errorText(r.error)) : null),
        h("td", {}, fmt(r.summary?.iou?.mean)),
        h("td", {}, r.method === "none" ? "baseline" : flicker === null || flicker === undefined ? "–"
          : `${pct(flicker)}`));
    }));
  }

  function syncTry() {
    const ready = !!(video && video.state === "succeeded" && tryMethod);
    tryBtn.disabled = !ready;
    tryMethod?.setDisabled(!ready);
  }

  // ---------------------------------------------------------------- try another method

  async function runMethod(m) {
    tryError.textContent = "";
    if (!video) return;
    const vid = video.id;
    tryBtn.disabled = true;
    try {
      const r = await api.post(`/api/v1/videos/${vid}/stabilize`, m, { signal });
      if (!alive() || video?.id !== vid) return;
      awaiting.add(r.id);
      if (!video.results.some((x) => x.id === r.id)) video.results.push(r);
      renderResults(video);
      pollDelay = POLL_MIN_MS;
      schedulePoll(POLL_MIN_MS);
    } catch (err) {
      if (!alive() || isAbort(err)) return;
      tryError.textContent = `Could not run ${m.method}: ${errorText(err)}`;
    } finally {
      if (alive()) syncTry();
    }
  }

  tryForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    tryError.textContent = "";
    if (!tryMethod || !video || video.state !== "succeeded") return;
    let m;
    try { m = tryMethod.value(); } catch (e) { tryError.textContent = e.message; return; }
    runMethod(m);
  });

  resultSel.addEventListener("change", () => resultSel.value && showResult(resultSel.value));

  function showResult(rid) {
    if (!video) return;
    shownRid = rid;
    resultSel.value = rid;
    renderResults(video);
    const r = video.results.find((x) => x.id === rid);
    downloadBtn.disabled = !r;
    downloadBtn.textContent = r ? `Download overlay MP4 (${r.method === "none" ? "raw" : r.method})` : "Download overlay MP4";
    panels.stable.cap.textContent = r && r.method !== "none" ? `Stabilized mask (${r.method})` : "Stabilized mask (= raw)";
    panels.overlay.cap.textContent = r ? `Overlay (${r.method === "none" ? "raw" : r.method})` : "Overlay";
    if (viewerReady) showFrame(frame);
    loadMetrics(rid);
  }

  downloadBtn.addEventListener("click", async () => {
    const r = video?.results.find((x) => x.id === shownRid);
    if (!r) return;
    downloadBtn.disabled = true;
    try {
      const base = (video.input?.name || "video").replace(/\.[^.]+$/, "");
      await api.download(`/api/v1/videos/${video.id}/overlay.mp4?result=${encodeURIComponent(r.id)}`,
        `${base}-overlay-${r.method}.mp4`, { signal });
    } catch (err) {
      if (alive() && !isAbort(err)) notifyError(err, "Could not download the overlay: ");
    } finally {
      if (alive()) downloadBtn.disabled = false;
    }
  });

  deleteBtn.addEventListener("click", async () => {
    if (!video) return;
    const v = video;
    if (!confirm(`Delete ${v.input?.name || "this video"}, its result sets and every file?`)) return;
    try {
      await api.del(`/api/v1/videos/${v.id}`, { signal });
      notify(`Deleted ${v.input?.name || v.id}.`, "info");
      // The bare route mounts a fresh page.
      location.hash = "#/video";
    } catch (err) {
      if (alive() && !isAbort(err)) notifyError(err, "Could not delete the video: ");
    }
  });

  // ---------------------------------------------------------------- frame viewer

  function setupViewer(v) {
    const n = v.result?.frames || 0;
    if (!n) return;
    viewerReady = true;
    viewerCard.hidden = false;
    slider.max = String(n - 1);
    slider.disabled = n < 2;
    if (v.result.width && v.result.height) viewer.style.setProperty("--vid-aspect", `${v.result.width} / ${v.result.height}`);
    setFrame(0);
  }

  function frameKey(kind, n) {
    return kind === "stable" || kind === "overlay" ? `${kind}@${shownRid}#${n}` : `${kind}#${n}`;
  }

  function framePath(kind, n) {
    const q = new URLSearchParams({ kind });
    if (kind === "stable" || kind === "overlay") q.set("result", shownRid);
    return `/api/v1/videos/${video.id}/frames/${n}?${q}`;
  }

  const visibleKinds = () => (viewSel.value === "all" ? KINDS.map((k) => k.kind) : [viewSel.value]);

  function setFrame(n) {
    const last = (video?.result?.frames || 1) - 1;
    n = Math.max(0, Math.min(last, n));
    if (n !== frame) lastStep = n > frame ? 1 : -1;
    frame = n;
    slider.value = String(n);
    frameOut.textContent = `Frame ${n} / ${last}`;
    prevBtn.disabled = n <= 0;
    nextBtn.disabled = n >= last;
    showFrame(n);
    markChart();
  }

  function showFrame(n) {
    if (!loader || !video) return;
    // Before a result set is shown, only the original and the raw mask exist.
    const kinds = visibleKinds().filter((k) => shownRid || (k !== "stable" && k !== "overlay"));
    const last = (video.result?.frames || 1) - 1;
    // Neighbours in the direction of travel first: the next key press is likely the same.
    const near = [n + lastStep, n - lastStep, n + 2 * lastStep].filter((i) => i >= 0 && i <= last);
    const wanted = new Set();
    for (const i of [n, ...near]) for (const k of kinds) wanted.add(frameKey(k, i));
    loader.want(wanted);
    for (const k of KINDS) panels[k.kind].fig.hidden = !visibleKinds().includes(k.kind);
    viewer.classList.toggle("single", viewSel.value !== "all");
    for (const k of kinds) {
      const key = frameKey(k, n);
      const p = panels[k];
      loader.get(key, framePath(k, n)).then((url) => {
        if (!alive() || frame !== n || frameKey(k, frame) !== key) return;
        const old = p.img.dataset.url;
        p.img.src = url;
        p.img.dataset.url = url;
        p.img.dataset.frame = String(n);
        p.img.alt = `${p.cap.textContent}, frame ${n}`;
        p.note.textContent = "";
        loader.shown.add(url);
        if (old && old !== url) loader.shown.delete(old);
      }, (err) => {
        if (!alive() || isAbort(err) || frame !== n) return;
        p.note.textContent = `Could not load: ${errorText(err)}`;
      });
    }
    for (const i of near) for (const k of kinds) loader.get(frameKey(k, i), framePath(k, i)).catch(() => {});
  }

  slider.addEventListener("input", () => setFrame(slider.valueAsNumber));
  prevBtn.addEventListener("click", () => setFrame(frame - 1));
  nextBtn.addEventListener("click", () => setFrame(frame + 1));
  viewSel.addEventListener("change", () => showFrame(frame));
  viewer.addEventListener("keydown", (ev) => {
    if (ev.altKey || ev.ctrlKey || ev.metaKey) return;
    const last = (video?.result?.frames || 1) - 1;
    const to = { ArrowLeft: frame - 1, ArrowRight: frame + 1, PageUp: frame - 10, PageDown: frame + 10, Home: 0, End: last }[ev.key];
    if (to === undefined) return;
    ev.preventDefault();
    setFrame(to);
  });

  // ---------------------------------------------------------------- metrics and chart

  async function loadMetrics(rid) {
    let m = metricsCache.get(rid);
    if (!m) {
      try {
        m = await api.get(`/api/v1/videos/${video.id}/metrics`, { query: { result: rid }, signal });
      } catch (err) {
        if (!alive() || isAbort(err)) return;
        if (rid === shownRid) chartHeadline.textContent = `Could not load the metrics: ${errorText(err)}`;
        return;
      }
      if (!alive()) return;
      metricsCache.set(rid, m);
    }
    if (rid !== shownRid) return;
    metricsShown = m;
    chartCard.hidden = false;
    renderSummary(m);
    drawChart();
    renderSeriesTable();
  }

  function renderSummary(m) {
    const raw = m.raw.summary, st = m.stable.summary, imp = m.improvement_pct || {};
    const rows = [
      ["Mean IoU between consecutive frames (higher = steadier)", raw.iou?.mean, st.iou?.mean, null],
      ["Mean instability, 1 − IoU (flicker)", raw.instability?.mean, st.instability?.mean, imp.instability],
      ["95th percentile instability", raw.instability?.p95, st.instability?.p95, null],
      ["Mean flow-warped IoU (motion compensated)", raw.warped_iou?.mean, st.warped_iou?.mean, imp.warped_instability],
    ];
    if (raw.iou_truth) rows.push(["Mean IoU vs ground truth", raw.iou_truth.mean, st.iou_truth?.mean, null]);
    summaryBody.replaceChildren(...rows.map(([name, a, b, change]) => h("tr", {},
      h("th", { scope: "row" }, name), h("td", {}, fmt(a)), h("td", {}, fmt(b)),
      h("td", {}, change === null || change === undefined ? (a !== undefined && b !== undefined && Number.isFinite(a) && Number.isFinite(b) ? `${b - a >= 0 ? "+" : "−"}${Math.abs(b - a).toFixed(3)}` : "–")
        : `${pct(change)} flicker`))));
    if (raw.lag_frames !== undefined) {
      summaryBody.append(h("tr", {}, h("th", { scope: "row" }, "Lag behind ground truth (frames)"),
        h("td", {}, String(raw.lag_frames)), h("td", {}, String(st.lag_frames ?? "–")), h("td", {}, "")));
    }
    const label = m.method === "none" ? "Raw masks (no stabilization)" : `${m.method}${describeParams(m.params) ? ` (${describeParams(m.params)})` : ""}`;
    const flick = imp.instability;
    chartHeadline.textContent = m.frames < 2 ? `${label}: one frame, nothing to compare.`
      : `${label}: mean IoU ${fmt(raw.iou?.mean)} raw → ${fmt(st.iou?.mean)} stabilized; ` +
        (m.method === "none" ? "this is the baseline." : flick === null || flick === undefined
          ? "flicker change not defined (the raw masks do not flicker)."
          : flick >= 0 ? `flicker reduced by ${flick.toFixed(1)} %.` : `flicker increased by ${(-flick).toFixed(1)} %.`);
  }

  function renderSeriesTable() {
    // Built on demand: a long video has thousands of rows.
    if (!seriesDetails.open || !metricsShown) return;
    const m = metricsShown;
    const rawS = m.raw.series.iou, stS = m.stable.series.iou;
    const table = h("table", { class: "vid-series" },
      h("caption", { class: "muted" }, "IoU of each frame with the frame before it"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Frame"), h("th", { scope: "col" }, "Raw"), h("th", { scope: "col" }, "Stabilized"))),
      h("tbody", {}, rawS.map((v, i) => h("tr", {}, h("th", { scope: "row" }, String(i + 1)), h("td", {}, fmt(v)), h("td", {}, fmt(stS[i]))))));
    seriesDetails.replaceChildren(seriesDetails.firstElementChild, h("div", { class: "table-wrap vid-series-wrap" }, table));
  }
  seriesDetails.addEventListener("toggle", renderSeriesTable);

  let chartGeom = null;

  function drawChart() {
    const m = metricsShown;
    if (!m) return;
    const rawS = m.raw.series.iou || [], stS = m.stable.series.iou || [];
    const W = Math.max(260, Math.floor(chartBox.clientWidth || 600)), H = 220;
    const pad = { l: 40, r: 12, t: 10, b: 30 };
    const n = m.frames;
    const all = [...rawS, ...stS].filter(Number.isFinite);
    if (n < 2 || !all.length) { chartBox.replaceChildren(h("p", { class: "muted" }, "Fewer than two frames: no series to draw.")); chartGeom = null; return; }
    // Zoom to the data: IoU near 1 everywhere would otherwise be a flat line at the top.
    const lo = Math.min(0.8, Math.floor(Math.min(...all) * 5) / 5);
    const x = (i) => pad.l + ((W - pad.l - pad.r) * i) / Math.max(1, n - 1);
    const y = (v) => pad.t + ((H - pad.t - pad.b) * (1 - v)) / (1 - lo);
    const pts = (s) => s.map((v, i) => (Number.isFinite(v) ? `${x(i + 1).toFixed(1)},${y(v).toFixed(1)}` : null)).filter(Boolean).join(" ");
    const title = svg("title", { id: "vid-chart-title" }, `IoU between consecutive frames, raw vs stabilized (${m.method})`);
    const desc = svg("desc", { id: "vid-chart-desc" }, chartHeadline.textContent);
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
    const el = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img",
      "aria-labelledby": "vid-chart-title vid-chart-desc" },
      title, desc, grid,
      svg("polyline", { class: "raw", points: pts(rawS) }),
      svg("polyline", { class: "stable", points: pts(stS) }),
      marker);
    el.addEventListener("click", (ev) => {
      const r = el.getBoundingClientRect();
      const i = Math.round(((ev.clientX - r.left - pad.l) / (W - pad.l - pad.r)) * (n - 1));
      if (viewerReady) setFrame(i);
    });
    chartBox.replaceChildren(el);
    chartGeom = { x, marker };
    markChart();
  }

  function markChart() {
    if (!chartGeom) return;
    chartGeom.marker.setAttribute("x1", chartGeom.x(frame));
    chartGeom.marker.setAttribute("x2", chartGeom.x(frame));
  }

  let lastWidth = 0;
  const ro = new ResizeObserver(() => {
    const w = chartBox.clientWidth;
    if (w && Math.abs(w - lastWidth) > 4) { lastWidth = w; drawChart(); }
  });
  ro.observe(chartBox);
  cleanups.push(() => ro.disconnect());

  // ---------------------------------------------------------------- start

  const initial = hashVideoId();
  if (initial) openById(initial);

  return () => {
    ctrl.abort();
    clearTimeout(pollTimer);
    loader?.destroy();
    for (const c of cleanups) c();
  };
}
