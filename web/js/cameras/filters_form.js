// The events' filters: camera, from, to (datetime-local, the browser's time), clear; a
// line when they cannot match. The inputs follow the state (which the hash mirrors).

import { h } from "../dom.js";
import { fromLocalInput, toLocalInput } from "./format.js";

export function filtersForm(state, { onChange }) {
  const camSelect = h("select", { id: "filter-camera", name: "camera" }, h("option", { value: "" }, "All cameras"));
  const fromInput = h("input", { id: "filter-since", name: "since", type: "datetime-local", step: "1" });
  const toInput = h("input", { id: "filter-until", name: "until", type: "datetime-local", step: "1" });
  const clearBtn = h("button", { type: "button", class: "secondary", id: "filter-clear" }, "Clear filters");
  const error = h("p", { class: "bad", role: "alert", hidden: true });
  const el = h("form", { class: "filters", role: "search", "aria-label": "Filter events" },
    h("div", { class: "field" }, h("label", { for: "filter-camera" }, "Camera"), camSelect),
    h("div", { class: "field" }, h("label", { for: "filter-since" }, "From"), fromInput),
    h("div", { class: "field" }, h("label", { for: "filter-until" }, "To"), toInput),
    h("div", { class: "field actions" }, clearBtn));

  camSelect.addEventListener("change", () => onChange({ camera: camSelect.value }));
  fromInput.addEventListener("change", () => onChange({ since: fromLocalInput(fromInput.value) }));
  toInput.addEventListener("change", () => onChange({ until: fromLocalInput(toInput.value) }));
  clearBtn.addEventListener("click", () => onChange({ camera: "", since: null, until: null }));
  el.addEventListener("submit", (e) => e.preventDefault());

  // The configured cameras, and the filter's one if it names another.
  function renderCameras() {
    const f = state.filters, ids = state.cameraIds;
    const wanted = [...ids];
    if (f.camera && !wanted.includes(f.camera)) wanted.push(f.camera);
    const have = [...camSelect.options].slice(1).map((o) => o.value);
    if (have.join("\n") !== wanted.join("\n")) {
      camSelect.replaceChildren(h("option", { value: "" }, "All cameras"),
        ...wanted.map((id) => h("option", { value: id }, ids.includes(id) ? id : `${id} (not configured)`)));
    }
    camSelect.value = f.camera;
  }

  function renderInputs() {
    renderCameras();
    const f = state.filters;
    fromInput.value = f.since !== null ? toLocalInput(f.since) : "";
    toInput.value = f.until !== null ? toLocalInput(f.until) : "";
  }

  function renderError() {
    // Rewritten only when it changes: an alert re-announces whatever is written to it.
    if (error.textContent !== state.filterError) error.textContent = state.filterError;
    error.hidden = !state.filterError;
  }

  state.on("cameras", () => { if (!state.camerasError) renderCameras(); });
  state.on("filters", renderInputs);
  state.on("events", renderError);
  renderInputs();
  return { el, error, focus: () => camSelect.focus() };
}
