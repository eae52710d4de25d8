// Uploads into the open batch: a few requests at a time, each file's progress on its
// record, the server's answer per file (accepted: linked to its item, one per variant;
// refused: its reason; not read: sent again later).

import { serverReason, slimItem } from "./records.js";

const CONCURRENCY = 3;
// With more files waiting than the uploads in flight can take one at a time, small files
// go several to a request: a request per file would spend more on round trips than on
// bytes, and meet nginx's per-address rate limit. The server's files-per-request limit
// (KADR_MAX_BATCH_FILES, 20 by default) may be lower: a 400 too_many_files halves it.
const GROUP_FILES = 16;
const GROUP_BYTES = 4 * 1024 * 1024;

export class Uploader {
  // ``settled()``: a request ended (the batch may be ready to close).
  constructor(state, { api, notifyError, settled }) {
    Object.assign(this, { state, api, notifyError, settled });
    this.groupFiles = GROUP_FILES;
  }

  pump() {
    const state = this.state;
    while (state.active < CONCURRENCY && state.queue.length && !state.signal.aborted) {
      const group = this.nextGroup();
      if (!group.length) continue;
      state.active++;
      this.uploadGroup(group).finally(() => {
        state.active--;
        state.scheduleSave();
        state.emit("batch");
        this.pump();
        this.settled();
      });
    }
  }

  // What the next request carries: one file, or, while many wait, up to groupFiles small ones.
  nextGroup() {
    const queue = this.state.queue;
    const many = queue.length > CONCURRENCY * this.groupFiles;
    const group = [];
    let bytes = 0;
    while (queue.length) {
      const e = queue.peek();
      if (e.status !== "waiting") { queue.shift(); continue; }
      if (group.length && (!many || group.length >= this.groupFiles || bytes + e.size > GROUP_BYTES)) break;
      group.push(queue.shift());
      bytes += e.size;
    }
    return group;
  }

  async uploadGroup(group) {
    const state = this.state, signal = state.signal;
    const form = new FormData();
    for (const e of group) {
      e.status = "uploading";
      e.upload = 0;
      state.changed(e);
      form.append("files", e.file, e.file.name);
    }
    let lastPaint = 0;
    try {
      const out = await this.api.upload(`/api/v1/batches/${state.batch.id}/items`, form, {
        signal,
        onProgress: (f) => {
          for (const e of group) e.upload = f;
          if (Date.now() - lastPaint > 100 || f === 1) { lastPaint = Date.now(); for (const e of group) state.changed(e); }
        },
      });
      this.takeAnswers(group, out?.accepted || [], out?.rejected || [], out?.stopped);
    } catch (err) {
      if (signal.aborted) return;
      if (err.code === "too_many_files" && group.length > 1) {
        this.groupFiles = Math.max(1, group.length >> 1);
        for (const e of group) e.status = "waiting";
        state.queue.requeue(group);
      // Every file refused: the error's details give each one's reason.
      } else if (err.code === "no_photo_accepted" && Array.isArray(err.details)) this.takeAnswers(group, [], err.details, null);
      else for (const e of group) this.uploadFailed(e, err);
    }
    for (const e of group) state.changed(e);
  }

  // The server's answers, matched to the request's files by their index (``file``).
  takeAnswers(group, accepted, rejected, stopped) {
    const state = this.state;
    const acc = group.map(() => []);
    const rej = group.map(() => null);
    for (const a of accepted) acc[a.file ?? 0]?.push(a);
    for (const r of rejected) { const i = r.file ?? 0; if (i < rej.length && !rej[i]) rej[i] = r; }
    group.forEach((e, i) => {
      const [first, ...more] = acc[i];
      if (first) {
        state.linkItem(e, slimItem({ ...first, progress: 0 }));
        // Variants give one item per variant: each gets a card of its own.
        for (const m of more) {
          const extra = state.newEntry({ name: e.name, size: e.size, file: e.file, type: e.type, status: "uploaded", extra: true });
          state.appendEntry(extra);
          state.linkItem(extra, slimItem({ ...m, progress: 0 }));
        }
      } else if (rej[i]) {
        const name = e.file?.name;
        const m = rej[i].message || "";
        state.reject(e, { code: rej[i].code, message: name && m.startsWith(`${name}: `) ? m.slice(name.length + 2) : m });
      } else if (stopped) {
        // A quota stopped the request before this file: it was not read; send it again later.
        e.status = "unsent";
        e.error = { code: stopped.code, message: stopped.message };
      } else {
        state.reject(e, { code: "not_accepted", message: "the server took nothing from this file" });
      }
    });
    if (stopped) state.emit("missing");
  }

  uploadFailed(e, err) {
    const state = this.state;
    if (err.status === 404) {
      this.notifyError(err, "The batch is gone: ");
      state.reject(e, { code: err.code, message: err.message });
    } else if (err.status >= 400 && err.status < 500 && ![401, 403, 408, 429].includes(err.status)) {
      // The server judged this file: its message says why (too large, not a photo, corrupt...).
      state.reject(e, { code: err.details?.[0]?.code || err.code, message: serverReason(err, e.file?.name) });
    } else {
      e.status = "unsent";
      e.error = { code: err.code, message: err.message || String(err) };
      state.emit("missing");
    }
  }

  // "Retry upload" on one card, or "Retry uploads" for every failed one.
  retry(entries) {
    for (const e of entries) if (e.status === "unsent" && e.file) this.state.requeue(e);
    this.state.emit("missing");
    this.pump();
  }
}
