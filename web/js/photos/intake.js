// Picked or dropped files into the list: one pick at a time, in the order made, read in
// slices of main-thread time. Chromium answers the first read of a picked file's size
// with a synchronous look at the disk (~0.35 ms here), 3.5 s for 10,000 files in one go;
// between slices the page paints, answers clicks and, in a batch, already uploads what
// was read. In a batch, a file the batch already has is recognised, and one the list
// kept from before a reload takes its place.

import { JUNK, clientRefusal, fileKey, fileType, relName } from "./files.js";

const SLICE_MS = 30;

export class Intake {
  // ``progressed()``: a slice was read (the batch's side: save, upload, counts);
  // ``done()``: the whole pick is in.
  constructor(state, { notify, notifyError, progressed, done }) {
    Object.assign(this, { state, notify, notifyError, progressed, done });
    this.adding = Promise.resolve();
  }

  add(files) {
    const state = this.state;
    if (!files.length || !state.canAdd()) return;
    this.adding = this.adding.then(() => this.read(files))
      .catch((err) => { if (!state.signal.aborted) this.notifyError(err, "Could not add the files: "); });
  }

  async read(files) {
    const state = this.state;
    if (!state.canAdd()) return;
    const signal = state.signal, generation = state.generation, inBatchPhase = state.phase === "batch";
    let junk = 0, again = 0;
    const known = new Set();
    for (const e of state.entries) if (e.file) known.add(fileKey(e.file));
    // Indexed once: a folder of 10,000 photos added again must not compare each with each.
    const inBatch = new Set(), waitingFor = new Map();
    if (inBatchPhase) {
      for (const e of state.entries) {
        if (e.status === "uploaded") inBatch.add(`${e.name}|${e.size}`);
        else if (e.status === "missing" || e.status === "unsent") {
          const slots = waitingFor.get(e.name);
          if (slots) slots.push(e); else waitingFor.set(e.name, [e]);
        }
      }
    }
    state.reading = { done: 0, total: files.length };
    const progressed = () => {
      state.emit("entries");
      if (state.phase === "batch") this.progressed();
    };
    try {
      let sliceStart = performance.now();
      for (let i = 0; i < files.length; i++) {
        if (performance.now() - sliceStart > SLICE_MS) {
          state.reading.done = i;
          progressed();
          await new Promise((resolve) => setTimeout(resolve, 0));
          // Cleared, a new batch, or the page left while this waited: the rest is not wanted.
          if (signal.aborted || generation !== state.generation) return;
          sliceStart = performance.now();
        }
        const file = files[i];
        if (JUNK.test(file.name)) { junk++; continue; }
        const key = fileKey(file);
        // The same file again, or (after a reload) one the batch already has: the server
        // would answer with the same item, so the list keeps one card for it.
        if (known.has(key) || inBatch.has(`${relName(file)}|${file.size}`)) { again++; continue; }
        known.add(key);
        const refusal = clientRefusal(file, state.formats);
        // After a reload, a file added again takes the place the list kept for it.
        const slots = waitingFor.get(relName(file)) || [];
        const missing = !refusal && slots.find((e) => !e.size || e.size === file.size);
        if (missing) slots.splice(slots.indexOf(missing), 1);
        const e = missing || state.newEntry({ name: relName(file), size: file.size });
        e.file = file;
        e.type = fileType(file, state.formats);
        if (refusal) { e.status = "rejected"; e.error = refusal; } else {
          e.status = state.phase === "batch" ? "waiting" : "ready";
          e.error = null;
          if (state.phase === "batch") state.queue.push(e);
        }
        if (!missing) state.appendEntry(e, false); else state.changed(e);
      }
    } finally {
      if (generation === state.generation) state.reading = null;
    }
    const skipped = [junk && `${junk} system file${junk > 1 ? "s" : ""} (hidden files, Thumbs.db) skipped`,
      again && `${again} already in the list or the batch`].filter(Boolean);
    if (skipped.length) this.notify(skipped.join("; ") + ".", "info");
    progressed();
    if (state.phase === "batch") this.done();
  }
}
