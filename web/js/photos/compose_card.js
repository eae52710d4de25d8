// "Quality and options": the options form, the variants, and the buttons that start the
// batch with the ready files or clear the list. Shown while composing a batch.

import { formatBytes, h } from "../dom.js";
import { optionsForm } from "./options_form.js";
import { loadOptions, saveOptions } from "./storage.js";
import { variantsBox } from "./variants.js";

export function composeCard(state, { onStart, onClear, onRetryOptions }) {
  const saved = loadOptions();
  const form = optionsForm(state, { saved, onChange: save, onRetry: onRetryOptions });
  const variants = variantsBox(state, { saved: saved.variants, onChange: save });
  const startBtn = h("button", { type: "button", id: "ph-start", onclick: start }, "Upload and enhance");
  const clearBtn = h("button", { type: "button", class: "secondary", id: "ph-clear", onclick: onClear }, "Clear list");
  const readyLine = h("p", { class: "muted", id: "ph-ready", "aria-live": "polite" });
  const el = h("section", { class: "card", "aria-labelledby": "ph-opt-title" },
    h("h2", { id: "ph-opt-title" }, "Quality and options"), form.el, variants.el,
    h("div", { class: "row ph-actions" }, startBtn, clearBtn, readyLine));

  // The choices, kept for the next batch (not before the form exists: that would forget them).
  function save() {
    const values = form.values();
    if (values) saveOptions({ ...values, variants: variants.values() });
  }

  async function start() {
    if (!state.entries.some((e) => e.status === "ready")) return;
    const params = form.read();
    if (!params) return;
    const vs = variants.read();
    if (!vs) return;
    save();
    startBtn.disabled = true;
    if (!await onStart({ params, variants: vs, name: form.name() }) && !state.signal.aborted) startBtn.disabled = false;
  }

  function render() {
    el.hidden = state.phase !== "compose";
    if (el.hidden) return;  // counted again when it shows
    let ready = 0, bytes = 0, refused = 0;
    for (const e of state.entries) {
      if (e.status === "ready") { ready++; bytes += e.size; } else if (e.status === "rejected") refused++;
    }
    startBtn.disabled = !ready || !!state.reading || !state.options;
    startBtn.textContent = ready ? `Upload and enhance ${ready} photo${ready > 1 ? "s" : ""}` : "Upload and enhance";
    clearBtn.hidden = !state.entries.length;
    readyLine.textContent = state.reading
      ? `Reading the files: ${state.reading.done} of ${state.reading.total}…`
      : state.entries.length
        ? `${ready} ready (${formatBytes(bytes)})${refused ? `, ${refused} refused` : ""}` : "No photos added yet.";
  }

  state.on("options", render);
  state.on("phase", render);
  state.on("entries", render);
  return { el, showOptionsError: form.showError };
}
