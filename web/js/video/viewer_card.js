// "Frames": the original, raw mask, stabilized mask and overlay of one frame side by
// side (or one of them), a slider, ‹ Prev / Next ›, and keys on the focused viewer
// (←/→ one frame, Page Up/Down ten, Home/End the ends). Frames load through a rate-
// limited cache (frame_loader.js), the ones ahead in the direction of travel first.

import { errorText, h } from "../dom.js";
import { isAbort } from "./format.js";
import { frameLoader } from "./frame_loader.js";

const KINDS = [
  { kind: "original", label: "Original" },
  { kind: "raw", label: "Raw mask" },
  { kind: "stable", label: "Stabilized mask" },
  { kind: "overlay", label: "Overlay" },
];

export function viewerCard(state, { api, signal, onFrame }) {
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
  const el = h("section", { class: "card", "aria-labelledby": "vid-frames-h", hidden: true },
    h("h2", { id: "vid-frames-h" }, "Frames"),
    h("div", { class: "row" },
      h("div", { class: "vid-field" }, h("label", { for: "vid-view" }, "Show"), viewSel),
      h("div", { class: "row vid-step" }, prevBtn, frameOut, nextBtn)),
    h("div", { class: "vid-field" }, h("label", { for: "vid-frame" }, "Frame"), slider),
    viewer,
    h("p", { class: "muted" }, "Focus the frames and use the arrow keys to step through them."));
  let loader = null;

  slider.addEventListener("input", () => onFrame(slider.valueAsNumber));
  prevBtn.addEventListener("click", () => onFrame(state.frame - 1));
  nextBtn.addEventListener("click", () => onFrame(state.frame + 1));
  viewSel.addEventListener("change", () => showFrame(state.frame));
  viewer.addEventListener("keydown", (ev) => {
    if (ev.altKey || ev.ctrlKey || ev.metaKey) return;
    const f = state.frame;
    const to = { ArrowLeft: f - 1, ArrowRight: f + 1, PageUp: f - 10, PageDown: f + 10, Home: 0, End: state.lastFrame }[ev.key];
    if (to === undefined) return;
    ev.preventDefault();
    onFrame(to);
  });

  const frameKey = (kind, n) => (kind === "stable" || kind === "overlay" ? `${kind}@${state.shownRid}#${n}` : `${kind}#${n}`);
  function framePath(kind, n) {
    const q = new URLSearchParams({ kind });
    if (kind === "stable" || kind === "overlay") q.set("result", state.shownRid);
    return `/api/v1/videos/${state.video.id}/frames/${n}?${q}`;
  }
  const visibleKinds = () => (viewSel.value === "all" ? KINDS.map((k) => k.kind) : [viewSel.value]);

  function showFrame(n) {
    if (!loader || !state.video) return;
    // Before a result set is shown, only the original and the raw mask exist.
    const kinds = visibleKinds().filter((k) => state.shownRid || (k !== "stable" && k !== "overlay"));
    const last = state.lastFrame, step = state.lastStep;
    // Neighbours in the direction of travel first: the next key press is likely the same.
    const near = [n + step, n - step, n + 2 * step].filter((i) => i >= 0 && i <= last);
    const wanted = new Set();
    for (const i of [n, ...near]) for (const k of kinds) wanted.add(frameKey(k, i));
    loader.want(wanted);
    for (const k of KINDS) panels[k.kind].fig.hidden = !visibleKinds().includes(k.kind);
    viewer.classList.toggle("single", viewSel.value !== "all");
    const shown = loader;
    for (const k of kinds) {
      const key = frameKey(k, n);
      const p = panels[k];
      loader.get(key, framePath(k, n)).then((url) => {
        if (signal.aborted || loader !== shown || state.frame !== n || frameKey(k, state.frame) !== key) return;
        const old = p.img.dataset.url;
        p.img.src = url;
        p.img.dataset.url = url;
        p.img.dataset.frame = String(n);
        p.img.alt = `${p.cap.textContent}, frame ${n}`;
        p.note.textContent = "";
        loader.shown.add(url);
        if (old && old !== url) loader.shown.delete(old);
      }, (err) => {
        if (signal.aborted || isAbort(err) || state.frame !== n) return;
        p.note.textContent = `Could not load: ${errorText(err)}`;
      });
    }
    for (const i of near) for (const k of kinds) loader.get(frameKey(k, i), framePath(k, i)).catch(() => {});
  }

  // Another video: a fresh cache, empty panels.
  state.on("reset", () => {
    loader?.destroy();
    loader = frameLoader(api, signal);
    for (const p of Object.values(panels)) { p.img.removeAttribute("src"); delete p.img.dataset.frame; p.note.textContent = ""; }
  });
  state.on("viewer", () => {
    const v = state.video, n = v.result.frames;
    el.hidden = false;
    slider.max = String(n - 1);
    slider.disabled = n < 2;
    if (v.result.width && v.result.height) viewer.style.setProperty("--vid-aspect", `${v.result.width} / ${v.result.height}`);
  });
  state.on("frame", () => {
    const n = state.frame, last = state.lastFrame;
    slider.value = String(n);
    frameOut.textContent = `Frame ${n} / ${last}`;
    prevBtn.disabled = n <= 0;
    nextBtn.disabled = n >= last;
    showFrame(n);
  });
  state.on("shown", () => {
    const r = state.video?.results.find((x) => x.id === state.shownRid);
    panels.stable.cap.textContent = r && r.method !== "none" ? `Stabilized mask (${r.method})` : "Stabilized mask (= raw)";
    panels.overlay.cap.textContent = r ? `Overlay (${r.method === "none" ? "raw" : r.method})` : "Overlay";
    if (state.viewerReady) showFrame(state.frame);
  });
  return { el, destroy: () => loader?.destroy() };
}
