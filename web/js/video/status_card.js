// The open video: its name and state, segmentation progress, what it is (frames, size,
// fps, model, class, how long segmenting took), its error, and "Delete video".

import { h } from "../dom.js";

export function statusCard(state, { onDelete }) {
  const name = h("h2", { id: "vid-status-h" }, "Video");
  const badge = h("span", { class: "state", id: "vid-state" });
  const progress = h("progress", { id: "vid-progress", max: "1", value: "0", "aria-label": "Segmentation progress" });
  const progressText = h("span", { class: "muted", id: "vid-progress-text" });
  const info = h("p", { class: "muted", id: "vid-info" });
  const error = h("div", { class: "vid-error", role: "alert", id: "vid-error" });
  const del = h("button", { type: "button", class: "secondary", id: "vid-delete" }, "Delete video");
  const el = h("section", { class: "card", "aria-labelledby": "vid-status-h", hidden: true },
    h("div", { class: "row vid-head" }, name, badge, del),
    h("div", { class: "bar", "aria-live": "polite" }, progress, progressText), info, error);

  del.addEventListener("click", () => {
    const v = state.video;
    if (v && confirm(`Delete ${v.input?.name || "this video"}, its result sets and every file?`)) onDelete(v);
  });

  function render() {
    const v = state.video;
    el.hidden = !v;
    if (!v) return;
    name.textContent = v.input?.name || "Video";
    badge.className = `state ${v.state}`;
    badge.textContent = v.state;
    progress.value = v.state === "succeeded" ? 1 : v.progress || 0;
    progressText.textContent = v.state === "queued" ? "Waiting for a segment worker…"
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
    info.textContent = bits.join(" · ");
    renderError();
  }

  function renderError() { error.textContent = state.statusError; }

  state.on("video", render);
  state.on("status", renderError);
  return { el };
}
