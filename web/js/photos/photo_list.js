// The list of photos: a virtual grid (../virtual_grid.js) of cards, only those near the
// viewport in the DOM with their images; a record's change re-renders its card if it is
// there, and tells the grid when the card's shape (so its height) changed if it is not.

import { h } from "../dom.js";
import { VirtualGrid } from "../virtual_grid.js";
import { Compare } from "./compare.js";
import { photoCard } from "./photo_card.js";
import { cardKind } from "./records.js";

export function photoList(state, { api, onRemove, onDownload, onRetry, fallbackFocus }) {
  const title = h("h2", { id: "ph-list-title" }, "Photos");
  const list = h("ul", { class: "ph-items", id: "ph-items", "aria-labelledby": "ph-list-title" });
  const el = h("section", { "aria-labelledby": "ph-list-title", hidden: true }, title, list);
  const compare = new Compare(state, api);
  const cards = new Map();  // entry -> its card, while in the DOM
  const actions = { compare, onDownload, onRetry, onRemove: remove };
  const grid = new VirtualGrid(list, {
    mount: (e) => { const c = photoCard(e, state, actions); cards.set(e, c); c.render(); return c.li; },
    unmount: (e) => { cards.get(e)?.destroy(); cards.delete(e); },
    kind: cardKind,
  });
  grid.setItems(state.entries);

  // Removed by its own button: focus moves to the next card's button (or the picker).
  function remove(e) {
    const i = state.entries.indexOf(e);
    const other = state.entries[i + 1] || state.entries[i - 1];
    const next = cards.get(other)?.button() || null;
    state.removeEntries(new Set([e]));
    (next || fallbackFocus())?.focus();
  }

  function renderEntry(e) {
    const shape = cardKind(e);
    const card = cards.get(e);
    if (shape !== e.kind) { e.kind = shape; if (!card) grid.forget(e); }
    card?.render();
  }

  function layout() {
    el.hidden = !state.entries.length;
    grid.setItems(state.entries);
  }

  state.on("entries", layout);
  state.on("entry", renderEntry);
  state.on("phase", () => {
    title.textContent = state.phase === "compose" ? "Photos to upload" : "Photos in this batch";
    layout();
    grid.each(renderEntry);
  });
  return { el, destroy() { grid.destroy(); compare.destroy(); } };
}
