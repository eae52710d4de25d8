// The batch: its name and state, the options it runs with, a bar that reaches 100 % only
// when the batch has ended, done / failed / refused counts, elapsed time and ETA, and the
// buttons (ZIP, CSV manifest, pause / resume, cancel, retry failed, a new batch). While
// the batch of a reload loads, it says so (and why, if it cannot).

import { errorText, formatDuration, h } from "../dom.js";
import { BATCH_LABEL, badgeClass, batchEnded, describeParams, pct } from "./records.js";

export function batchCard(state, { onZip, onManifest, onControl, onNewBatch, onRetryLoad }) {
  const btn = (id, text, fn, cls = "secondary") => h("button", { type: "button", id, class: cls, onclick: fn }, text);
  const e = {
    title: h("h2", { id: "ph-batch-title" }, "Batch"),
    state: h("span", { class: "state", id: "ph-batch-state" }),
    params: h("p", { class: "muted", id: "ph-batch-params" }),
    progress: h("progress", { id: "ph-progress", max: "100", value: "0", "aria-label": "Batch progress" }),
    percent: h("span", { id: "ph-percent" }, "0 %"),
    totals: h("p", { class: "ph-totals", id: "ph-totals", role: "status" }),
    note: h("p", { class: "muted", id: "ph-batch-note" }),
    zip: btn("ph-zip", "Download ZIP", zip, ""),
    csv: btn("ph-csv", "Manifest (CSV)", onManifest),
    pause: btn("ph-pause", "Pause", () => onControl(state.batch?.paused ? "resume" : "pause")),
    cancel: btn("ph-cancel", "Cancel batch", askCancel),
    retry: btn("ph-retry", "Retry failed", () => onControl("retry")),
    fresh: btn("ph-new", "Start a new batch", onNewBatch),
  };
  const el = h("section", { class: "card ph-batch", id: "ph-batch", hidden: true, "aria-labelledby": "ph-batch-title" },
    h("div", { class: "row ph-batch-head" }, e.title, e.state), e.params,
    h("div", { class: "bar" }, e.progress, e.percent), e.totals, e.note,
    h("div", { class: "row ph-actions" }, e.zip, e.csv, e.pause, e.cancel, e.retry, e.fresh));

  async function zip() {
    e.zip.disabled = true;
    await onZip();
    render();
  }

  function askCancel() {
    const b = e.cancel;
    if (b.dataset.confirm) { delete b.dataset.confirm; b.textContent = "Cancel batch"; onControl("cancel"); return; }
    b.dataset.confirm = "1";
    b.textContent = "Really cancel? Click again";
    state.later(() => { if (b.dataset.confirm) { delete b.dataset.confirm; b.textContent = "Cancel batch"; } }, 5000);
  }

  function renderLoading() {
    e.title.textContent = `Batch ${state.saved.id.slice(0, 8)}`;
    const err = state.loadError;
    e.totals.textContent = err ? "" : "Loading the batch from the server…";
    if (err) {
      e.note.replaceChildren(`Could not load the batch: ${errorText(err)} `,
        h("button", { type: "button", class: "secondary", onclick: () => { e.note.replaceChildren(); onRetryLoad(); } },
          "Try again"));
    }
  }

  function render() {
    el.hidden = !state.phase || state.phase === "compose";
    if (state.phase === "loading") { renderLoading(); return; }
    const b = state.batch;
    if (!b || state.phase !== "batch") return;
    const c = b.counts || {};
    const ended = batchEnded(b);
    const t = state.tally();
    const uploading = t.waiting + t.uploading;
    const notSent = uploading + t.missing + t.unsent;
    const refused = t.rejected;
    const done = (c.succeeded || 0) + (c.skipped || 0);
    const ends = done + (c.failed || 0) + (c.canceled || 0)
      + (b.running || []).reduce((sum, r) => sum + r.progress, 0);
    // Photos still on their way count in the total, so the bar cannot touch 100 % early.
    const total = b.total + notSent;
    const percent = ended ? b.percent : total ? Math.min(99.9, Math.floor((ends / total) * 1000) / 10) : 0;
    e.title.textContent = b.name ? `Batch “${b.name}”` : `Batch ${b.id.slice(0, 8)}`;
    e.state.className = `state ${badgeClass(b.state)}`;
    e.state.textContent = state.closing ? "closing" : uploading ? "uploading" : BATCH_LABEL[b.state] || b.state;
    e.params.textContent = describeParams(b.params, b.variants);
    e.progress.value = percent;
    e.percent.textContent = pct(percent);
    const start = state.saved?.startedAt || b.created_at * 1000;
    const elapsed = ((ended && state.saved?.endedAt) || Date.now()) - start;
    const parts = [`Done ${done} of ${total}`, `failed ${c.failed || 0}`];
    if (refused) parts.push(`refused ${refused}`);
    if (c.canceled) parts.push(`canceled ${c.canceled}`);
    if (uploading) parts.push(`uploading ${uploading}`);
    parts.push(`elapsed ${formatDuration(elapsed / 1000)}`);
    if (!ended && b.eta_seconds && !uploading) parts.push(`about ${formatDuration(b.eta_seconds)} left`);
    if (!ended && b.throughput_per_s) parts.push(`${(b.throughput_per_s * 60).toFixed(1)} photos/min`);
    e.totals.textContent = parts.join(" · ");
    e.totals.dataset.done = String(done);
    e.totals.dataset.failed = String(c.failed || 0);
    e.note.textContent = ended
      ? (b.state === "canceled" ? "This batch was canceled." : "This batch is finished. The ZIP holds every result.")
      : b.paused ? "Paused: photos being enhanced finish, no new one starts." : "";
    e.zip.disabled = !done;
    e.csv.disabled = !b.total;
    e.pause.hidden = e.cancel.hidden = ended || b.state === "canceling";
    e.pause.textContent = b.paused ? "Resume" : "Pause";
    e.retry.hidden = !c.failed || b.state === "canceled" || b.state === "canceling";
  }

  state.on("phase", render);
  state.on("batch", render);
  return { el };
}
