// Variants: several outputs per photo, each with its own scale and quality over the
// options above; the ZIP holds a folder per variant. The choices, the name's rule and
// how many a batch may have are the server's.

import { h } from "../dom.js";
import { qualityChoices, select } from "./options_form.js";

export function variantsBox(state, { saved, onChange }) {
  const rows = h("ol", { class: "ph-variants", id: "ph-variants" });
  const add = h("button", { type: "button", class: "secondary", id: "ph-add-variant", disabled: true, onclick: () => {
    addVariant({ name: `v${rows.children.length + 1}`, upscale: "", quality: "" }, true);
    onChange();
  } }, "Add variant");
  const el = h("fieldset", { class: "ph-options", id: "ph-variants-box" },
    h("legend", {}, "Variants (optional: several outputs per photo, a folder each in the ZIP)"), rows, add);

  const sync = () => { add.disabled = !state.options || rows.children.length >= state.options.variants.max_count; };

  function addVariant(v, focus) {
    const o = state.options;
    const n = rows.children.length + 1;
    const name = h("input", { type: "text", class: "ph-variant-name", required: true, pattern: o.variants.name_pattern,
      maxlength: String(o.variants.name_max_length), value: v.name || "", "aria-label": `Variant ${n} name (folder)`,
      autocomplete: "off", title: "letters, digits, - and _ (it names the folder)" });
    const upscale = select(`ph-variant-${n}-upscale`, [["", "Scale as above"],
      ...o.upscale.choices.map((k) => [String(k), `${k}×`])], v.upscale || "", { "aria-label": `Variant ${n} output scale` });
    const quality = select(`ph-variant-${n}-quality`, [["", "Quality as above"], ...qualityChoices(o)], v.quality || "",
      { "aria-label": `Variant ${n} quality` });
    const row = h("li", { class: "row ph-variant" }, name, upscale, quality,
      h("button", { type: "button", class: "secondary", "aria-label": `Remove variant ${n}`, onclick: () => {
        row.remove(); sync(); onChange();
      } }, "Remove"));
    for (const input of [name, upscale, quality]) input.addEventListener("change", onChange);
    rows.append(row);
    sync();
    if (focus) name.focus();
  }

  function values() {
    return [...rows.children].map((row) => {
      const [name, upscale, quality] = row.querySelectorAll("input, select");
      return { name: name.value.trim(), upscale: upscale.value, quality: quality.value, el: name };
    });
  }

  state.on("options", () => {
    rows.replaceChildren();
    for (const v of (saved || []).slice(0, state.options.variants.max_count)) addVariant(v, false);
    sync();
  });

  return {
    el,
    values: () => values().map(({ name, upscale, quality }) => ({ name, upscale, quality })),
    // [{name, params}] as the API takes them, or null (and the field shown) when one is wrong.
    read() {
      const out = [], seen = new Set();
      for (const v of values()) {
        if (!v.el.checkValidity() || seen.has(v.name.toLowerCase())) {
          v.el.setCustomValidity(seen.has(v.name.toLowerCase()) ? "two variants have this name" : "");
          v.el.reportValidity(); v.el.focus(); v.el.setCustomValidity("");
          return null;
        }
        seen.add(v.name.toLowerCase());
        const params = {};
        if (v.upscale) params.upscale = Number(v.upscale);
        if (v.quality) params.quality = v.quality;
        out.push({ name: v.name, params });
      }
      return out;
    },
  };
}
