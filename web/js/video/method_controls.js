// Inputs for one stabilization method's parameters, built from the ranges the API
// reports (GET /api/v1/segment/classes: methods): a method picker and, for the chosen
// method, a number input or a select per parameter with its range in the label.

import { h } from "../dom.js";
import { humanize } from "./format.js";

function numberInput(id, name, spec) {
  const integer = spec.type === "integer";
  const min = spec.minimum ?? (spec.exclusiveMinimum !== undefined ? spec.exclusiveMinimum + (integer ? 1 : 0.01) : undefined);
  const max = spec.maximum ?? (spec.exclusiveMaximum !== undefined ? spec.exclusiveMaximum - (integer ? 1 : 0.01) : undefined);
  // The schema cannot say "odd"; a step of 2 from an odd minimum lets the browser enforce it.
  const step = integer ? (/\bodd\b/.test(spec.description || "") && min % 2 === 1 ? 2 : 1) : 0.05;
  return h("input", { id, name, type: "number", inputmode: integer ? "numeric" : "decimal", required: true,
    min: min !== undefined ? String(min) : null, max: max !== undefined ? String(max) : null,
    step: String(step), value: String(spec.default ?? min ?? "") });
}

function rangeText(spec) {
  if (spec.enum) return "";
  const lo = spec.minimum ?? spec.exclusiveMinimum, hi = spec.maximum ?? spec.exclusiveMaximum;
  if (lo === undefined || hi === undefined) return "";
  const open = spec.exclusiveMinimum !== undefined || spec.exclusiveMaximum !== undefined;
  return open ? ` (between ${lo} and ${hi})` : ` (${lo}–${hi})`;
}

export function methodControls(methods, idPrefix, { allowNone = false, initial } = {}) {
  const names = Object.keys(methods);
  const select = h("select", { id: `${idPrefix}-method`, name: "method" },
    allowNone ? h("option", { value: "" }, "nothing (raw masks only)") : null,
    names.map((m) => h("option", { value: m }, m)));
  select.value = initial && (names.includes(initial) || (allowNone && initial === "")) ? initial
    : names.includes("flow_ema") ? "flow_ema" : names[0];
  const paramsBox = h("div", { class: "vid-params" });
  let inputs = {};

  function render() {
    inputs = {};
    paramsBox.replaceChildren();
    const spec = methods[select.value] || {};
    for (const [name, p] of Object.entries(spec)) {
      const id = `${idPrefix}-p-${name}`;
      const help = p.description ? h("small", { id: `${id}-help`, class: "muted" }, p.description) : null;
      const input = p.enum
        ? h("select", { id, name }, p.enum.map((v) => h("option", { value: v }, v)))
        : numberInput(id, name, p);
      if (p.enum && p.default !== undefined) input.value = p.default;
      if (help) input.setAttribute("aria-describedby", help.id);
      inputs[name] = { input, spec: p };
      paramsBox.append(h("div", { class: "vid-field" },
        h("label", { for: id }, `${humanize(name)}${rangeText(p)}`), input, help));
    }
  }
  select.addEventListener("change", render);
  render();

  return {
    el: h("div", { class: "vid-opts" },
      h("div", { class: "vid-field" }, h("label", { for: select.id }, allowNone ? "Then stabilize with" : "Method"), select),
      paramsBox),
    // {method, params}, or throws an Error naming the first bad field and its range.
    value() {
      const method = select.value;
      if (!method) return null;
      const params = {};
      for (const [name, { input, spec }] of Object.entries(inputs)) {
        if (!input.checkValidity()) {
          input.focus();
          throw new Error(`${humanize(name)}: ${input.validationMessage || "out of range"}${rangeText(spec)}`);
        }
        params[name] = spec.enum ? input.value : input.valueAsNumber;
      }
      return { method, params };
    },
    setDisabled(disabled) {
      select.disabled = disabled;
      for (const { input } of Object.values(inputs)) input.disabled = disabled;
    },
  };
}
