// Files of the open batch that are not on the server: cut by a reload (add them again)
// or failed uploads (retry them); or finish the batch without them.

import { formatBytes, h } from "../dom.js";

const MISSING_SHOWN = 50;   // names listed; the rest are counted

export function missingBox(state, { onRetry, onFinish }) {
  const el = h("section", { class: "card ph-missing", id: "ph-missing", hidden: true,
    "aria-labelledby": "ph-missing-title" });

  function render() {
    const missing = state.missing();
    el.hidden = !missing.length || !state.batch?.open;
    if (el.hidden) { el.replaceChildren(); return; }
    const reloaded = missing.some((e) => e.status === "missing");
    el.replaceChildren(
      h("h2", { id: "ph-missing-title" }, `${missing.length} photo${missing.length > 1 ? "s" : ""} not uploaded`),
      h("p", {}, reloaded
        ? "These files were not uploaded before the page was reloaded. Add them again below (photos the server already has are recognised and not processed twice), or finish the batch without them."
        : "These uploads failed. Retry them, or finish the batch without them."),
      h("ul", { class: "ph-missing-list" }, missing.slice(0, MISSING_SHOWN).map((e) => h("li", {}, e.name,
        e.size ? h("span", { class: "muted" }, ` (${formatBytes(e.size)})`) : null)),
      missing.length > MISSING_SHOWN ? h("li", { class: "muted" }, `and ${missing.length - MISSING_SHOWN} more`) : null),
      h("div", { class: "row" },
        missing.some((e) => e.status === "unsent" && e.file)
          ? h("button", { type: "button", onclick: () => onRetry(state.entries) }, "Retry uploads") : null,
        h("button", { type: "button", class: "secondary", id: "ph-finish", onclick: () => onFinish(new Set(missing)) },
          "Finish without them")));
  }

  state.on("missing", render);
  return { el };
}
