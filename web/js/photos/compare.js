// The before/after view of a finished photo: two stacked images, the "after" one cut at
// a range input (arrow keys work). Images load when the card nears the viewport, through
// the key as object URLs, and are let go when the card scrolls away.

import { errorText, h } from "../dom.js";
import { SHOWABLE } from "./files.js";
import { resultLink } from "./records.js";

export class Compare {
  constructor(state, api) {
    this.state = state;
    this.api = api;
    this.urls = new Set();
    this.observer = new IntersectionObserver((list) => {
      for (const en of list) if (en.isIntersecting) { this.observer.unobserve(en.target); en.target._load?.(); }
    }, { rootMargin: "200px" });
  }

  destroy() {
    this.observer.disconnect();
    for (const u of this.urls) URL.revokeObjectURL(u);
  }

  // The figure for entry ``e``, loading once it nears the viewport.
  build(e) {
    const before = h("img", { class: "ph-before", alt: `${e.name}, before`, decoding: "async" });
    const after = h("img", { class: "ph-after", alt: `${e.name}, after`, decoding: "async" });
    const range = h("input", { type: "range", class: "ph-range", min: "0", max: "100", step: "1", value: "50",
      "aria-label": `Before and after: ${e.name}`, "aria-valuetext": "50 % before, 50 % after" });
    const stage = h("div", { class: "ph-stage" }, before, after, h("span", { class: "ph-divider", "aria-hidden": "true" }), range);
    const fig = h("figure", { class: "ph-compare" }, stage,
      h("figcaption", { class: "muted" }, h("span", {}, "◀ before"), h("span", {}, "after ▶")));
    // Through CSSOM, not a style attribute: the page's CSP allows no inline styles.
    fig.style.setProperty("--pos", "50%");
    range.addEventListener("input", () => {
      const v = Number(range.value);
      fig.style.setProperty("--pos", `${v}%`);
      range.setAttribute("aria-valuetext", `${v} % before, ${100 - v} % after`);
    });
    fig._urls = [];
    fig._load = () => this.load(e, before, after, fig);
    this.observer.observe(fig);
    return fig;
  }

  // The card scrolled away: its images and their object URLs go with it.
  drop(fig) {
    this.observer.unobserve(fig);
    fig._dropped = true;
    for (const u of fig._urls) { URL.revokeObjectURL(u); this.urls.delete(u); }
    fig._urls = [];
  }

  async load(e, before, after, fig) {
    const signal = this.state.signal;
    const png = (type) => (type && !SHOWABLE.has(type) ? { format: "png" } : undefined);
    // The card may scroll away (and its URLs be let go) while an image is on its way.
    const keep = (url) => {
      if (fig._dropped) { URL.revokeObjectURL(url); return false; }
      fig._urls.push(url);
      this.urls.add(url);
      return true;
    };
    try {
      const resultType = e.item.result?.format ? `image/${e.item.result.format}` : e.type;
      const afterUrl = await this.api.objectUrl(resultLink(e.item), { signal, query: png(resultType) });
      if (!keep(afterUrl)) return;
      let beforeUrl;
      if (e.file && SHOWABLE.has(e.type)) beforeUrl = URL.createObjectURL(e.file);
      else beforeUrl = await this.api.objectUrl(`/api/v1/jobs/${e.item.id}/input`, { signal, query: png(e.type || "image/tiff") });
      if (!keep(beforeUrl)) return;
      after.src = afterUrl;
      if (beforeUrl) before.src = beforeUrl; else fig.classList.add("ph-no-before");
      fig.classList.add("ph-loaded");
    } catch (err) {
      if (signal.aborted) return;
      fig.replaceChildren(h("p", { class: "bad" }, `Could not show the result: ${errorText(err)}`));
    }
  }
}
