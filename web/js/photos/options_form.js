// The batch's options, built from the server's (GET /api/v1/enhance/options: qualities,
// scales, ranges, defaults): what was chosen last (localStorage) where the server still
// offers it, the server's default otherwise. Until they arrive the form says so; if they
// cannot be had, it says why and offers to try again.

import { errorText, h } from "../dom.js";

// The on/off options the page words itself, in the order shown; any other the server
// offers is shown with its description.
const FLAGS = [
  ["only_center_face", "ph-center", "Only the face nearest the centre"],
  ["prescale", "ph-prescale", "Faster background: the model works on a shrunk copy (about 4× less work, less fine detail)"],
  ["has_aligned", "ph-aligned", "Photos are aligned 512×512 face crops"],
];

const cap = (s) => s.charAt(0).toUpperCase() + s.slice(1);

export const select = (id, choices, value, attrs = {}) => h("select", { id, ...attrs },
  choices.map(([v, t]) => h("option", { value: v, selected: v === value }, t)));

export function qualityChoices(o) { return o.qualities.map((q) => [q.value, `${cap(q.value)}: ${q.description}`]); }

export function optionsForm(state, { saved, onChange, onRetry }) {
  const el = h("fieldset", { class: "ph-options", id: "ph-options" },
    h("legend", {}, "Options (apply to every photo of the batch)"),
    h("p", { class: "muted", id: "ph-options-status" }, "Loading the options from the server…"));
  let controls = null;  // name -> input or select, once built

  const field = (id, text, control, hint) => h("div", { class: "ph-field" },
    h("label", { for: id }, text), control, hint ? h("small", { class: "muted", id: `${id}-hint` }, hint) : null);

  function build(o) {
    const s = { quality: "", upscale: o.upscale.default == null ? "" : String(o.upscale.default),
      weight: String(o.weight.default), max_faces: "", tile: String(o.tile.default), name: "", ...saved };
    const c = controls = {
      quality: select("ph-quality", [["", `Server default (${o.default_quality})`], ...qualityChoices(o)], s.quality),
      upscale: select("ph-upscale", [["", `Automatic: ${o.upscale.automatic_max}× when the result fits the server's limit`],
        ...o.upscale.choices.map((n) => [String(n), `${n}×${n === 1 ? " (same size)" : ""}`])], s.upscale),
      weight: h("input", { type: "range", id: "ph-weight", min: String(o.weight.minimum), max: String(o.weight.maximum),
        step: "0.05", value: s.weight, "aria-describedby": "ph-weight-hint" }),
      max_faces: h("input", { type: "number", id: "ph-max-faces", min: String(o.max_faces.minimum),
        max: String(o.max_faces.maximum), step: "1", inputmode: "numeric", value: s.max_faces,
        placeholder: `server default (${o.max_faces.default})`, "aria-describedby": "ph-max-faces-hint" }),
      tile: select("ph-tile", o.tile.choices.map((t) => [String(t), t ? `${t} px` : "Automatic"]), s.tile,
        { "aria-describedby": "ph-tile-hint" }),
      name: h("input", { type: "text", id: "ph-name", maxlength: "200", value: s.name, autocomplete: "off" }),
    };
    const flags = [...FLAGS.filter(([f]) => f in o.flags),
      ...Object.keys(o.flags).filter((f) => !FLAGS.some(([k]) => k === f)).map((f) => [f, `ph-${f}`, o.flags[f].description || f])];
    for (const [f, id] of flags) {
      c[f] = h("input", { type: "checkbox", id, checked: f in s ? !!s[f] : o.flags[f].default });
    }
    const weightOut = h("output", { for: "ph-weight", id: "ph-weight-value" }, Number(c.weight.value).toFixed(2));
    c.weight.addEventListener("input", () => { weightOut.value = Number(c.weight.value).toFixed(2); });
    el.replaceChildren(el.firstElementChild,
      field("ph-quality", "Quality", c.quality),
      field("ph-upscale", "Output scale", c.upscale),
      h("div", { class: "ph-field" }, h("label", { for: "ph-weight" }, "Face restoration strength"),
        h("div", { class: "bar" }, c.weight, weightOut),
        h("small", { class: "muted", id: "ph-weight-hint" },
          `${o.weight.minimum} keeps more of the original face, ${o.weight.maximum} restores fully`)),
      field("ph-max-faces", "Faces restored per photo", c.max_faces,
        `${o.max_faces.minimum}–${o.max_faces.maximum}; 0: background only`),
      field("ph-tile", "Background tile size", c.tile, "smaller tiles use less memory"),
      field("ph-name", "Batch name (optional)", c.name),
      h("div", { class: "ph-checks" }, flags.map(([f, , text]) => h("label", {}, c[f], ` ${text}`))));
    for (const input of Object.values(c)) input.addEventListener("change", onChange);
  }

  function showError(err) {
    el.replaceChildren(el.firstElementChild,
      h("p", { class: "bad", id: "ph-options-status" }, `Could not load the options: ${errorText(err)} `,
        h("button", { type: "button", class: "secondary", onclick: onRetry }, "Try again")));
  }

  state.on("options", () => build(state.options));

  return {
    el,
    showError,
    // What localStorage keeps (null before the form exists).
    values() {
      if (!controls) return null;
      const out = {};
      for (const [k, c] of Object.entries(controls)) out[k] = c.type === "checkbox" ? c.checked : c.value;
      return out;
    },
    name: () => controls?.name.value.trim() || "",
    // The params as the API takes them, or null (and the field shown) when one is wrong.
    read() {
      if (!controls) return null;
      const c = controls;
      for (const input of Object.values(c)) {
        if (!input.checkValidity()) { input.reportValidity(); input.focus(); return null; }
      }
      const params = { weight: Number(c.weight.value), tile: Number(c.tile.value) };
      for (const [k, input] of Object.entries(c)) if (input.type === "checkbox" && input.checked) params[k] = true;
      if (c.upscale.value) params.upscale = Number(c.upscale.value);  // left out: the largest up to 2 that fits
      if (c.quality.value) params.quality = c.quality.value;
      if (c.max_faces.value !== "") params.max_faces = Number(c.max_faces.value);
      return params;
    },
  };
}
