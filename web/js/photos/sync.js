// The batch on the server: start it, follow its live events (reconciling from its item
// list when the stream was away), close it once every file is in, pause / resume /
// cancel / retry, and the downloads. Answers go into the state; the components render.

import { batchEnded, resultLink } from "./records.js";

const ITEMS_PAGE = 1000;

export class BatchSync {
  constructor(state, { api, notify, notifyError }, uploader) {
    Object.assign(this, { state, api, notify, notifyError, uploader });
    this.streaming = false;
    this.streamToken = null;
    this.clock = 0;
    this.reconcileTimer = null;
  }

  get signal() { return this.state.signal; }

  destroy() { clearInterval(this.clock); }

  // A new batch with these options; the ready files start uploading into it.
  async start({ params, variants, name }) {
    const state = this.state;
    const ready = state.entries.filter((e) => e.status === "ready");
    let b;
    try {
      const body = { params, name };
      if (variants.length) body.variants = variants;
      b = await this.api.post("/api/v1/batches", body, { signal: this.signal });
    } catch (err) {
      if (this.signal.aborted) return false;
      this.notifyError(err, "Could not start the batch: ");
      return false;
    }
    state.saved = { id: b.id, startedAt: Date.now(), endedAt: null };
    state.batch = b;
    for (const e of ready) { e.status = "waiting"; state.queue.push(e); }
    state.flushSave();
    state.setPhase("batch");
    this.applyBatch(b);
    this.follow();
    this.uploader.pump();
    return true;
  }

  follow() {
    const state = this.state;
    if (this.streaming || !state.batch) return;
    this.streaming = true;
    const id = state.batch.id, signal = this.signal;
    const token = this.streamToken = {};
    this.api.events(`/api/v1/batches/${id}/events`, {
      progress: (b) => { this.applyBatch(b); },
      item: (it) => { state.applyItem(it); },
      end: (b) => { this.applyBatch(b); return "stop"; },
    }, { signal }).catch((err) => {
      if (!signal.aborted) this.notifyError(err, "Lost the batch's live updates: ");
    }).finally(() => {
      if (this.streamToken !== token) return;  // a newer stream (another batch) owns the flag
      this.streaming = false;
      if (!signal.aborted && state.batch?.id === id) this.reconcile();
    });
    clearInterval(this.clock);
    this.clock = setInterval(() => state.emit("batch"), 1000);
  }

  // Items that ended while the stream was away (a reconnect) get no event: take them from the list.
  async reconcile() {
    const state = this.state;
    if (!state.batch) return;
    const id = state.batch.id;
    try {
      const [b, items] = await Promise.all([
        this.api.get(`/api/v1/batches/${id}`, { query: { limit: 0 }, signal: this.signal }),
        this.fetchItems(id)]);
      if (state.batch?.id !== id) return;
      for (const it of items) state.applyItem(it);
      this.applyBatch(b);
    } catch (err) {
      if (!this.signal.aborted) this.notifyError(err, "Could not refresh the batch: ");
    }
  }

  async fetchItems(id) {
    const all = [];
    for (let offset = 0; offset !== null && offset !== undefined;) {
      const page = await this.api.get(`/api/v1/batches/${id}/items`, { query: { offset, limit: ITEMS_PAGE }, signal: this.signal });
      all.push(...page.items);
      offset = page.next_offset;
    }
    return all;
  }

  applyBatch(b) {
    const state = this.state;
    const wasEnded = batchEnded(state.batch);
    state.setBatch(b);
    const ended = batchEnded(b);
    if (ended && !wasEnded) { clearInterval(this.clock); this.reconcileIfBehind(true); }
    if (!ended && !this.streaming && state.phase === "batch") this.follow();
    state.emit("batch");
    this.reconcileIfBehind(false);
  }

  reconcileIfBehind(now) {
    const state = this.state;
    const c = state.batch.counts || {};
    const done = (c.succeeded || 0) + (c.failed || 0) + (c.skipped || 0) + (c.canceled || 0);
    if (this.reconcileTimer || done <= state.tally().ended) return;
    this.reconcileTimer = state.later(() => { this.reconcileTimer = null; this.reconcile(); }, now ? 0 : 3000);
  }

  // Every file is in (or given up): the batch is closed, so it can end.
  maybeClose() {
    const state = this.state, b = state.batch;
    if (state.phase !== "batch" || !b?.open || state.closing || state.active || state.queue.length || state.reading) return;
    if (this.signal.aborted) return;
    const t = state.tally();
    if (t.missing || t.unsent || t.waiting || t.uploading) return;
    state.setClosing(true);
    this.api.post(`/api/v1/batches/${b.id}/close`, undefined, { signal: this.signal })
      .then((nb) => { state.closing = false; this.applyBatch(nb); this.follow(); })
      .catch((err) => {
        if (this.signal.aborted) { state.closing = false; return; }
        this.notifyError(err, "Could not close the batch: ");
        state.setClosing(false);
      });
  }

  async control(action) {
    const state = this.state;
    if (!state.batch) return;
    try {
      const b = await this.api.post(`/api/v1/batches/${state.batch.id}/${action}`, undefined, { signal: this.signal });
      this.applyBatch(b);
      if (action === "retry") { await this.reconcile(); this.follow(); }
      this.notify({ pause: "Batch paused.", resume: "Batch resumed.", cancel: "Batch canceled.",
        retry: "Failed photos are being retried." }[action], "info");
    } catch (err) {
      if (!this.signal.aborted) this.notifyError(err, `Could not ${action} the batch: `);
    }
  }

  // "Start a new batch": false (and a notice) while uploads still run.
  newBatch() {
    const state = this.state;
    if (state.queue.length || state.active) {
      this.notify("Uploads are still running; wait for them or cancel the batch first.", "info");
      return false;
    }
    state.reset();
    clearInterval(this.clock);
    this.streaming = false;
    state.clearEntries();
    state.emit("missing");
    state.setPhase("compose");
    return true;
  }

  // ---------------------------------------------------------------- downloads

  async save(path, filename, what) {
    try {
      await this.api.download(path, filename, { signal: this.signal });
    } catch (err) {
      if (!this.signal.aborted) this.notifyError(err, `Could not download ${what}: `);
    }
  }

  downloadZip() {
    const b = this.state.batch;
    return this.save(b.links.archive, `kadr-batch-${b.id.slice(0, 8)}.zip`, "the ZIP");
  }

  downloadManifest() {
    const b = this.state.batch;
    return this.save(b.links.manifest_csv, `kadr-batch-${b.id.slice(0, 8)}.csv`, "the manifest");
  }

  downloadResult(e) {
    const ext = e.item.result?.format === "jpeg" ? "jpg" : e.item.result?.format;
    // A variant's output carries its name, as its folder in the ZIP does.
    const variant = e.item.variant && e.item.variant !== "default" ? `${e.item.variant}-` : "";
    const stem = variant + e.name.split("/").pop().replace(/\.[^.]+$/, "");
    return this.save(resultLink(e.item), ext ? `${stem}.${ext}` : stem, e.name);
  }
}
