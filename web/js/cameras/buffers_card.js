// "Buffers": one card per camera (camera_card.js), in the server's order, updated in
// place on every refresh; when it was last refreshed (or why not); the webhook backlog.

import { errorText, h } from "../dom.js";
import { cameraCard } from "./camera_card.js";

export function buffersCard(state, { onShowEvents }) {
  const status = h("p", { class: "muted", id: "cameras-status" }, "loading…");
  const backlog = h("p", { class: "muted", id: "cameras-backlog" });
  const grid = h("div", { class: "camera-grid", id: "camera-list" });
  const none = h("p", { class: "muted", hidden: true }, "No cameras configured. An operator lists them in KADR_CAMERAS.");
  const el = h("section", { "aria-labelledby": "cameras-h" },
    h("div", { class: "section-head" }, h("h2", { id: "cameras-h" }, "Buffers"), status), backlog, none, grid);
  const cards = new Map();  // id -> { el, update }

  function render() {
    if (state.camerasError) {
      status.textContent = `could not refresh: ${errorText(state.camerasError)}`;
      status.className = "bad";
      return;
    }
    const data = state.cameras;
    for (const id of [...cards.keys()]) {
      if (!state.cameraIds.includes(id)) { cards.get(id).el.remove(); cards.delete(id); }
    }
    data.cameras.forEach((c, i) => {
      let card = cards.get(c.id);
      if (!card) { card = cameraCard(c, onShowEvents); cards.set(c.id, card); }
      card.update(c);
      if (grid.children[i] !== card.el) grid.insertBefore(card.el, grid.children[i] || null);
    });
    none.hidden = data.cameras.length > 0;
    const full = data.backlog / (data.max_backlog || 1);
    backlog.textContent = `Events waiting for the camera worker: ${data.backlog} (the webhook answers 503 past ${data.max_backlog}).`;
    backlog.className = full >= 1 ? "bad" : full >= 0.8 ? "warn" : "muted";
    status.textContent = `updated ${new Date(state.camerasAt).toLocaleTimeString()}`;
    status.className = "muted";
  }

  state.on("cameras", render);
  return { el };
}
