// "Events": newest first, a page at a time, each a card with its snow photo and first
// plate crop (a button that opens the detail), a summary line, the filters, what to do
// when nothing matches, and the pager. Cards are built once per event and redrawn only
// when the event changes, so a focused card keeps its focus across refreshes.

import { formatTime, h } from "../dom.js";
import { PENDING, cardLabel, eventSignature, plateKinds } from "./format.js";
import { PAGE_SIZE } from "./sync.js";

function fillCard(button, ev, images) {
  const snow = ev.images?.snow;
  const plate = plateKinds(ev)[0];
  let shot;
  if (snow) shot = images.image(snow, "", "snow");
  else if (PENDING.has(ev.state)) shot = h("div", { class: "snow placeholder" }, "processing…");
  else shot = h("div", { class: "snow placeholder" }, ev.state === "failed" ? "no snow photo" : "no image");
  button.setAttribute("aria-label", cardLabel(ev));
  button.replaceChildren(
    h("div", { class: "shots" }, shot, plate ? images.image(ev.images[plate], "", "plate") : ""),
    h("div", { class: "meta" },
      h("strong", {}, ev.camera), " ",
      h("span", { class: `state ${ev.state}` }, ev.state),
      h("div", { class: "muted" }, formatTime(ev.ts)),
      ev.plate ? h("div", {}, "Plate ", h("span", { class: "plate-text" }, ev.plate)) : "",
      ev.state === "failed" && ev.error ? h("div", { class: "bad" }, ev.error.message || ev.error.code) : ""));
}

export function eventList(state, { filters, images, onOpen, onFilters }) {
  const summary = h("p", { class: "muted", id: "events-summary", "aria-live": "polite" }, "loading…");
  const listError = h("p", { class: "bad", id: "events-error", hidden: true });
  const list = h("ul", { class: "event-grid", id: "event-list", "aria-label": "Events, newest first" });
  const empty = h("div", { class: "empty card", id: "events-empty", hidden: true });
  const newer = h("button", { type: "button", class: "secondary", id: "events-newer" }, "← Newer");
  const older = h("button", { type: "button", class: "secondary", id: "events-older" }, "Older →");
  const pager = h("nav", { class: "pager row", "aria-label": "Event pages" }, newer, older);
  const el = h("section", { "aria-labelledby": "events-h" },
    h("div", { class: "section-head" }, h("h2", { id: "events-h" }, "Events"), summary),
    filters.el, filters.error, listError, empty, list, pager);
  const items = new Map();  // event id -> { li, button, sig }

  newer.addEventListener("click", () => onFilters({ offset: Math.max(0, state.filters.offset - PAGE_SIZE) }));
  older.addEventListener("click", () => onFilters({ offset: state.filters.offset + PAGE_SIZE }));

  function render() {
    const { listed, total, filters: f } = state;
    const hasFilter = !!(f.camera || f.since !== null || f.until !== null);
    const keep = new Set(listed.map((e) => e.id));
    for (const [id, item] of items) if (!keep.has(id)) { item.li.remove(); items.delete(id); }
    listed.forEach((ev, i) => {
      let item = items.get(ev.id);
      if (!item) {
        const button = h("button", { type: "button", class: "event-card", "aria-haspopup": "dialog" });
        button.addEventListener("click", () => onOpen(ev.id, button));
        item = { li: h("li", { dataset: { event: ev.id } }, button), button, sig: "" };
        items.set(ev.id, item);
      }
      item.li.dataset.state = ev.state;
      item.li.dataset.camera = ev.camera;
      const sig = eventSignature(ev);
      if (sig !== item.sig) { fillCard(item.button, ev, images); item.sig = sig; }
      // Move only what is out of place: moving a focused card would drop its focus.
      if (list.children[i] !== item.li) list.insertBefore(item.li, list.children[i] || null);
    });
    const text = listed.length
      ? `${f.offset + 1}–${f.offset + listed.length} of ${total}${hasFilter ? " matching" : ""}, newest first`
      : total ? `nothing on this page (${total} in all)` : "none";
    if (summary.textContent !== text) summary.textContent = text;  // a live region: only real changes
    empty.hidden = listed.length > 0;
    // Rebuilt only when its message changes, so a focused button in it keeps focus.
    const emptyKey = listed.length ? "" : `${hasFilter}|${total}|${f.offset}`;
    if (emptyKey && emptyKey !== empty.dataset.key) {
      empty.replaceChildren(
        h("p", {}, total ? "Nothing on this page." : hasFilter ? "No events match these filters." : "No events yet."),
        hasFilter ? h("button", { type: "button", class: "secondary", onclick: () => onFilters({ camera: "", since: null, until: null }) }, "Show all events")
                  : h("p", { class: "muted" }, "Cameras post events to /api/v1/camera/{camera}/events; they appear here within seconds."));
      if (total && f.offset) {
        empty.append(h("button", { type: "button", class: "secondary", onclick: () => onFilters({ offset: 0 }, false) }, "Back to the newest"));
      }
    }
    empty.dataset.key = emptyKey;
    newer.disabled = f.offset <= 0;
    older.disabled = f.offset + listed.length >= total;
    pager.hidden = total <= PAGE_SIZE && f.offset === 0;
    listError.textContent = state.listError;
    listError.hidden = !state.listError;
    images.keepOnly(state.imagePaths());
  }

  state.on("events", render);
  state.on("filters", () => { summary.textContent = "loading…"; });
  return { el };
}
