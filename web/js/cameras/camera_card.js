// One camera's pre-event buffer: its health in a word and why (healthy, connecting,
// stale, down, window cut short, no stream), seconds and memory held against the budget,
// the last frame's age, drops and reconnects. Built once and updated in place, so a
// focused button in it keeps its focus across refreshes.

import { formatBytes, formatShare, h } from "../dom.js";
import { seconds } from "./format.js";

export function health(cam) {
  const b = cam.buffer;
  if (cam.source === "none") {
    return { key: "none", label: "No stream",
             detail: "Sends its own images with each event; nothing is buffered." };
  }
  if (!b) {
    return { key: "down", label: "Down",
             detail: "No buffer report: the camera worker is not running or cannot reach Redis." };
  }
  if (!b.up) {
    if (!b.last_error) return { key: "stale", label: "Connecting", detail: "Connecting to the source…" };
    return { key: "down", label: "Down", detail: `Source unreachable: ${b.last_error}` };
  }
  const age = b.last_frame_age_seconds;
  if (!b.frames || age === null || age === undefined) {
    return { key: "stale", label: "Starting", detail: "Connected; no frame buffered yet." };
  }
  // A few frame intervals of silence, and never less than the 1 s publish period allows.
  if (age > Math.max(3, 3 / (cam.fps || 1))) {
    return { key: "stale", label: "Stale", detail: `No new frame for ${seconds(age)}.` };
  }
  if (b.dropped_budget_total > 0 && b.seconds_held < 0.9 * cam.buffer_seconds) {
    return { key: "degraded", label: "Window cut short",
             detail: `The memory budget holds only ${seconds(b.seconds_held)} of ${seconds(cam.buffer_seconds)}: raise buffer_max_bytes.` };
  }
  return { key: "healthy", label: "Healthy", detail: "" };
}

export function cameraCard(cam, onShowEvents) {
  const headingId = `cam-${cam.id}-title`;
  const badge = h("span", { class: "health" });
  const sourceLine = h("span", { class: "muted" });
  const detail = h("p", { class: "health-detail" });
  const field = (name, label) => [h("dt", {}, label), h("dd", { dataset: { field: name } })];
  const rows = {
    buffered: field("buffered", "Buffered"),
    memory: field("memory", "Memory"),
    age: field("age", "Last frame"),
    fps: field("fps", "Frame rate"),
    drops: field("drops", "Drops"),
    reconnects: field("reconnects", "Reconnects"),
  };
  const heldBar = h("progress", { "aria-label": `${cam.id}: seconds buffered` });
  const memBar = h("progress", { "aria-label": `${cam.id}: memory used of budget` });
  const facts = h("dl", { class: "facts" }, Object.values(rows).flat());
  const el = h("article", { class: "camera card", dataset: { camera: cam.id }, "aria-labelledby": headingId },
    h("div", { class: "camera-head" }, h("h3", { id: headingId }, cam.id), badge),
    sourceLine, detail, facts,
    h("button", { type: "button", class: "secondary", onclick: () => onShowEvents(cam.id) },
      `Show ${cam.id}'s events`));

  function update(c) {
    const st = health(c);
    el.dataset.health = st.key;
    badge.className = `health ${st.key}`;
    badge.textContent = st.label;
    detail.textContent = st.detail;
    detail.hidden = !st.detail;
    sourceLine.textContent = `${{ mjpeg: "MJPEG", rtsp: "RTSP", file: "Video file", none: "No stream" }[c.source] || c.source}`
      + (c.source !== "none" ? ` · keeps ${c.fps} fps · ${c.buffer_seconds} s window` : "")
      + ` · auth ${c.auth}` + (c.webhook ? " · forwards events" : "");
    const b = c.buffer;
    facts.hidden = !b;
    if (!b) return;
    heldBar.max = c.buffer_seconds;
    heldBar.value = Math.min(b.seconds_held || 0, c.buffer_seconds);
    rows.buffered[1].replaceChildren(`${seconds(b.seconds_held)} of ${seconds(c.buffer_seconds)} · ${b.frames} frames`, heldBar);
    memBar.max = b.max_bytes;
    memBar.value = Math.min(b.bytes || 0, b.max_bytes);
    rows.memory[1].replaceChildren(`${formatBytes(b.bytes)} of ${formatBytes(b.max_bytes)} (${formatShare(b.bytes, b.max_bytes)})`, memBar);
    const age = b.last_frame_age_seconds;
    rows.age[1].textContent = age === null || age === undefined ? "none yet" : `${seconds(age)} ago`;
    rows.fps[1].textContent = b.fps ? `${b.fps.toFixed(1)} fps buffered` : "–";
    rows.drops[1].replaceChildren(
      h("span", { class: b.dropped_budget_total ? "warn" : "" }, `${b.dropped_budget_total} over budget`),
      ` · `,
      h("span", { class: b.dropped_undecodable_total ? "warn" : "" }, `${b.dropped_undecodable_total} undecodable`),
      h("span", { class: "muted" }, ` · ${b.dropped_age_total} aged out (normal)`));
    rows.reconnects[1].textContent = String(b.reconnects ?? 0);
  }
  return { el, update };
}
