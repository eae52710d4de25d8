// "Result sets": every stabilization of the video (state, mean IoU, flicker change), the
// one shown, its overlay MP4, and "Try another method" on the stored probabilities.

import { errorText, h } from "../dom.js";
import { fmt, pct, setLabel } from "./format.js";
import { methodControls } from "./method_controls.js";

export function resultsCard(state, { onShow, onRun, onDownload }) {
  const resultSel = h("select", { id: "vid-result" });
  const downloadBtn = h("button", { type: "button", id: "vid-download", disabled: true }, "Download overlay MP4");
  const body = h("tbody");
  const tryBox = h("div", { class: "vid-method" });
  const tryBtn = h("button", { type: "submit", id: "vid-try", disabled: true }, "Run this method");
  const tryError = h("div", { class: "vid-error", role: "alert", id: "vid-try-error" });
  let method = null;
  const tryForm = h("form", { id: "vid-try-form", novalidate: true, "aria-labelledby": "vid-try-h" },
    h("h3", { id: "vid-try-h" }, "Try another method"),
    h("p", { class: "muted" }, "Runs on the stored mask probabilities: the video is not segmented again."),
    tryBox, h("div", { class: "row" }, tryBtn), tryError);
  const el = h("section", { class: "card", "aria-labelledby": "vid-results-h", hidden: true },
    h("h2", { id: "vid-results-h" }, "Result sets"),
    h("div", { class: "row" },
      h("div", { class: "vid-field vid-grow" }, h("label", { for: "vid-result" }, "Result set shown"), resultSel),
      downloadBtn),
    h("div", { class: "table-wrap" },
      h("table", { class: "vid-results" },
        h("caption", { class: "muted" }, "Every stabilization of this video"),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "#"), h("th", { scope: "col" }, "Method"),
          h("th", { scope: "col" }, "State"), h("th", { scope: "col" }, "Mean IoU"),
          h("th", { scope: "col" }, "Flicker"))),
        body)),
    tryForm);

  tryForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.setTry({ tryError: "" });
    if (!method || !state.video || state.video.state !== "succeeded") return;
    let m;
    try { m = method.value(); } catch (e) { state.setTry({ tryError: e.message }); return; }
    onRun(m);
  });
  resultSel.addEventListener("change", () => resultSel.value && onShow(resultSel.value));
  downloadBtn.addEventListener("click", async () => {
    const r = shown();
    if (!r) return;
    downloadBtn.disabled = true;
    await onDownload(r);
    downloadBtn.disabled = !shown();
  });

  const shown = () => state.video?.results.find((x) => x.id === state.shownRid);

  function render() {
    const v = state.video;
    if (!v) return;
    const rid = state.shownRid;
    el.hidden = v.state !== "succeeded" && !v.results.some((r) => r.state === "succeeded");
    const prev = resultSel.value;
    resultSel.replaceChildren(...v.results.map((r, i) => h("option",
      { value: r.id, disabled: r.state !== "succeeded" },
      `#${i + 1} ${setLabel(r)}${r.state === "succeeded" ? "" : ` — ${r.state}`}`)));
    resultSel.value = rid || prev;
    body.replaceChildren(...v.results.map((r, i) => {
      const flicker = r.improvement_pct?.instability;
      const st = r.state === "running" ? `running ${Math.round((r.progress || 0) * 100)} %` : r.state;
      return h("tr", { dataset: { resultId: r.id }, "aria-current": r.id === rid ? "true" : null },
        h("td", {}, String(i + 1)),
        h("td", {}, setLabel(r), r.id === rid ? h("span", { class: "muted" }, " (shown)") : null),
        h("td", {}, h("span", { class: `state ${r.state}` }, st),
          r.error ? h("div", { class: "bad" }, errorText(r.error)) : null),
        h("td", {}, fmt(r.summary?.iou?.mean)),
        h("td", {}, r.method === "none" ? "baseline" : flicker === null || flicker === undefined ? "–"
          : `${pct(flicker)}`));
    }));
    renderTry();
  }

  function renderShown() {
    const r = shown();
    downloadBtn.disabled = !r;
    downloadBtn.textContent = r ? `Download overlay MP4 (${r.method === "none" ? "raw" : r.method})` : "Download overlay MP4";
    render();
  }

  function renderTry() {
    const ready = !!(state.video && state.video.state === "succeeded" && method) && !state.requesting;
    tryBtn.disabled = !ready;
    method?.setDisabled(!ready);
    tryError.textContent = state.tryError;
  }

  state.on("options", () => {
    const o = state.options;
    method = methodControls(o.methods, "vid-try", { initial: Object.keys(o.methods)[0] });
    tryBox.replaceChildren(method.el);
    renderTry();
  });
  state.on("video", render);
  state.on("shown", renderShown);
  state.on("tried", renderTry);
  return { el };
}
