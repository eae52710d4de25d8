// The event detail: a modal dialog (Escape, "Close" or a click on the backdrop closes
// it, and focus goes back to the card that opened it) showing detail_content.js for the
// event, loading, or why it could not be loaded. Redrawn when the event changes (a
// pending one is polled), keeping its scroll position.

import { errorText, h } from "../dom.js";
import { detailContent } from "./detail_content.js";

export function eventDetail(state, { images, onDownload, onClosed }) {
  const body = h("div", { class: "detail-body" });
  const closeBtn = h("button", { type: "button", class: "secondary close", "aria-label": "Close event" }, "Close");
  const el = h("dialog", { class: "event-detail", id: "event-detail", "aria-labelledby": "event-detail-title" },
    h("div", { class: "detail-bar" }, closeBtn), body);
  let shown = null;  // the detail drawn last (its event), to redraw only on a change

  el.addEventListener("close", () => {
    const opener = state.detail?.opener;
    body.replaceChildren();
    shown = null;
    if (!onClosed()) return;  // the page is going away
    // The card may have been rebuilt meanwhile: focus it only if it is still there.
    if (opener?.isConnected) opener.focus();
  });
  closeBtn.addEventListener("click", () => el.close());
  // A click on the backdrop (outside the dialog's box) closes it, as Escape does.
  el.addEventListener("click", (e) => {
    if (e.target !== el) return;
    const r = el.getBoundingClientRect();
    if (e.clientX < r.left || e.clientX > r.right || e.clientY < r.top || e.clientY > r.bottom) el.close();
  });

  function render() {
    const d = state.detail;
    if (!d) { if (el.open) el.close(); return; }
    if (d.error) {
      body.replaceChildren(h("h2", { id: "event-detail-title" }, "Event"),
        h("p", { class: "bad", role: "alert" }, `Could not load the event: ${errorText(d.error)}`));
    } else if (!d.ev) {
      body.replaceChildren(h("h2", { id: "event-detail-title" }, "Event"), h("p", { class: "muted" }, "loading…"));
      delete el.dataset.state;
    } else if (d.ev !== shown) {
      const scroll = el.scrollTop;
      body.replaceChildren(...detailContent(d.ev, images, onDownload));
      el.scrollTop = scroll;
      el.dataset.state = d.ev.state;
    }
    shown = d.ev;
    if (!el.open) el.showModal();
  }

  state.on("detail", render);
  return { el, close: () => { if (el.open) el.close(); } };
}
