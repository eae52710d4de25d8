// The Photos page's state: one record per local file or server item, the batch as the
// server last told it, what localStorage keeps, and the options the server offers. The
// methods change it and emit a topic; the components (add_card, compose_card,
// batch_card, missing_box, photo_list) render from it:
//   "options"  the server's options arrived       "phase"   compose / loading / batch
//   "entries"  records added, removed or read     "entry"   one record changed (arg: it)
//   "batch"    the batch or the counts changed    "missing" files not uploaded changed

import { Store } from "../store.js";
import { FileQueue, KNOWN_FORMATS } from "./files.js";
import { ACTIVE_ITEM, batchEnded, cardKind, slimItem } from "./records.js";
import { forgetBatch, saveBatch } from "./storage.js";

const SAVE_MS = 1000;

export class PhotosState extends Store {
  constructor() {
    super();
    this.options = null;        // GET /api/v1/enhance/options: choices, defaults, limits
    this.phase = null;          // "loading" (the batch of a reload), "compose", "batch"
    this.entries = [];          // one small record per local file or server item, in the order shown
    this.byItem = new Map();    // server item id -> entry
    this.early = new Map();     // item events that came before their upload's answer
    this.dupes = new Map();     // item id -> entries that are the same photo under another name
    this.queue = new FileQueue();  // entries waiting to upload
    this.reading = null;        // {done, total} while picked files are being read
    this.generation = 0;        // bumped when the list is cleared: a read in progress stops
    this.active = 0;            // upload requests in flight
    this.batch = null;          // the batch as the server last told it
    this.saved = null;          // what localStorage keeps about the current batch
    this.loadError = null;      // why the batch of a reload could not be loaded
    this.closing = false;       // the batch's close request is on its way
    this.seq = 0;
    this.abort = new AbortController();  // the current batch's requests
    this.timers = new Set();
  }

  get signal() { return this.abort.signal; }
  // Formats the server reads (all the page knows until its options arrive).
  get formats() { return this.options?.formats?.input || KNOWN_FORMATS; }

  later(fn, ms) {
    const t = setTimeout(() => { this.timers.delete(t); fn(); }, ms);
    this.timers.add(t);
    return t;
  }

  destroy() {
    this.flushSave();
    this.abort.abort();
    for (const t of this.timers) clearTimeout(t);
    this.clearSubscribers();
  }

  setOptions(o) { this.options = o; this.emit("options"); }
  setPhase(phase) { this.phase = phase; this.emit("phase"); }
  setClosing(closing) { this.closing = closing; this.emit("batch"); }
  canAdd() { return this.phase === "compose" || (this.phase === "batch" && !!this.batch?.open && !this.closing); }

  // ---------------------------------------------------------------- records

  // A file's state: what the card shows and what localStorage keeps, nothing more (no DOM).
  newEntry(fields) {
    return { uid: ++this.seq, name: "", size: 0, file: null, type: null, status: "ready",
      upload: 0, error: null, itemId: null, item: null, kind: "", ...fields };
  }

  // ``layout`` false: many are being added, one "entries" follows them.
  appendEntry(e, layout = true) {
    this.entries.push(e);
    e.kind = cardKind(e);
    if (layout) this.emit("entries");
  }

  // One pass whatever the count: "Finish without them" may drop thousands.
  removeEntries(gone) {
    this.entries = this.entries.filter((e) => !gone.has(e));
    this.emit("entries");
  }

  clearEntries() {
    this.generation++;
    this.reading = null;
    this.entries = [];
    this.emit("entries");
  }

  changed(e) { this.emit("entry", e); }

  reject(e, error) { e.status = "rejected"; e.error = error; }

  // Back in the upload queue (a failed upload retried).
  requeue(e) { e.status = "waiting"; this.queue.push(e); this.changed(e); }

  // How many entries are in each local status, in one pass.
  tally() {
    const t = { waiting: 0, uploading: 0, missing: 0, unsent: 0, rejected: 0, ended: 0 };
    for (const e of this.entries) {
      if (e.status in t) t[e.status]++;
      if (e.item && !ACTIVE_ITEM.has(e.item.state)) t.ended++;
    }
    return t;
  }

  missing() { return this.entries.filter((e) => e.status === "missing" || e.status === "unsent"); }

  showsResult(e) {
    const st = e.item?.state;
    if (st === "succeeded") return true;
    if (st !== "skipped" || !e.item.duplicate_of) return false;
    const orig = this.byItem.get(e.item.duplicate_of);
    return !orig || orig.item?.state === "succeeded";
  }

  // ---------------------------------------------------------------- server items

  linkItem(e, item) {
    e.status = "uploaded";
    e.itemId = item.id;
    this.byItem.set(item.id, e);
    const early = this.early.get(item.id);
    this.early.delete(item.id);
    e.item = early || item;
    if (e.item.duplicate_of) {
      const list = this.dupes.get(e.item.duplicate_of);
      if (list) list.push(e); else this.dupes.set(e.item.duplicate_of, [e]);
    }
    this.changed(e);
  }

  applyItem(it) {
    const e = this.byItem.get(it.id);
    if (!e) { this.early.set(it.id, slimItem(it)); return; }
    e.item = slimItem({ ...e.item, ...it });
    e.status = "uploaded";
    this.changed(e);
    // Duplicates of this photo can show its result now.
    if (it.state === "succeeded") for (const other of this.dupes.get(it.id) || []) this.changed(other);
  }

  // The batch as the server tells it; the photos being worked on, with how far each is
  // (a large one takes minutes). Emits nothing: the caller says "batch" when done.
  setBatch(b) {
    this.batch = b;
    for (const r of b.running || []) {
      const e = this.byItem.get(r.id);
      if (!e?.item || !ACTIVE_ITEM.has(e.item.state)) continue;
      e.item.state = "running";
      e.item.progress = r.progress;
      this.changed(e);
    }
    const ended = batchEnded(b);
    if (ended && this.saved && !this.saved.endedAt) { this.saved.endedAt = Date.now(); this.flushSave(); }
    if (!ended && this.saved?.endedAt) { this.saved.endedAt = null; this.flushSave(); }  // retried
  }

  // "Start a new batch": the old one's requests stop and its records go.
  reset() {
    forgetBatch();
    this.saved = null;
    this.batch = null;
    this.abort.abort();
    this.abort = new AbortController();
    this.closing = false;
    this.byItem.clear();
    this.early.clear();
    this.dupes.clear();
    this.queue.clear();
  }

  // ---------------------------------------------------------------- localStorage

  scheduleSave() {
    if (this.saveTimer || !this.saved) return;
    this.saveTimer = this.later(() => { this.saveTimer = null; this.flushSave(); }, SAVE_MS);
  }

  flushSave() { if (this.saved) saveBatch(this.saved, this.entries); }
}
