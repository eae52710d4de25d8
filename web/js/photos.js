// Photos: pick or drop many photos (or a folder), choose the options once, stream them
// into a batch a few uploads at a time, watch each result arrive with a before/after
// slider, download the ZIP. The batch id and the list of local files are kept in
// localStorage: after a reload the page takes the batch's state from the server, goes
// on following it, and names the files that never reached it so they can be added
// again (the server recognises a file it already has by name and content).
//
// Built for seed 000's 10,000 files: the list is virtual (only the cards near the
// viewport exist in the DOM, with their images), a file's state is a small record with
// no DOM and no server links, many small files share an upload request, and what
// localStorage keeps is one short array per file.

import { errorText, formatBytes, formatDuration, h } from "./dom.js";
import { VirtualGrid } from "./virtual_grid.js";

const STORE = "kadr.photos.batch";
const OPTIONS_STORE = "kadr.photos.options";
const CONCURRENCY = 3;
// With more files waiting than the uploads in flight can take one at a time, small files
// go several to a request: a request per file would spend more on round trips than on
// bytes, and meet nginx's per-address rate limit. The server's files-per-request limit
// (KADR_MAX_BATCH_FILES, 20 by default) may be lower: a 400 too_many_files halves it.
const GROUP_FILES = 16;
const GROUP_BYTES = 4 * 1024 * 1024;
const ITEMS_PAGE = 1000;
const MISSING_SHOWN = 50;   // names listed in the "not uploaded" box; the rest are counted
const SAVE_MS = 1000;
const SLICE_MS = 30;        // main-thread time per slice while reading picked files
const TYPES = { "image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WebP", "image/bmp": "BMP",
  "image/tiff": "TIFF", "image/heic": "HEIC", "image/heif": "HEIC", "image/avif": "AVIF" };
const EXT_TYPE = { jpg: "image/jpeg", jpeg: "image/jpeg", jpe: "image/jpeg", png: "image/png", webp: "image/webp",
  bmp: "image/bmp", tif: "image/tiff", tiff: "image/tiff", heic: "image/heic", heif: "image/heif", avif: "image/avif" };
// Chromium cannot show TIFF or HEIC; those are asked of the server as PNG for the slider.
const SHOWABLE = new Set(["image/jpeg", "image/png", "image/webp", "image/bmp", "image/avif"]);
// Files every OS scatters through photo folders: skipped quietly rather than listed as refused.
const JUNK = /^(\.|Thumbs\.db$|desktop\.ini$)/i;
const ACTIVE_ITEM = new Set(["pending", "queued", "running"]);
const BATCH_ENDED = new Set(["succeeded", "partial", "failed", "canceled"]);

const QUALITY = [
  ["", "Server default"],
  ["fast", "Fast: faces only, background resized"],
  ["medium", "Medium: faces + general background model"],
  ["high", "High: faces + RealESRGAN x2plus (slowest)"],
];
const TILES = [["0", "Automatic"], ["256", "256 px"], ["384", "384 px"], ["512", "512 px"]];
const DEFAULT_OPTIONS = { quality: "", upscale: "2", weight: "0.5", max_faces: "", tile: "0",
  only_center_face: false, has_aligned: false, prescale: false, name: "" };

const ITEM_LABEL = { pending: "uploaded, waiting", queued: "queued", running: "enhancing", succeeded: "done",
  failed: "failed", skipped: "duplicate", canceled: "canceled" };
const LOCAL_LABEL = { ready: "ready", waiting: "waiting to upload", uploading: "uploading",
  unsent: "upload failed", missing: "not uploaded", rejected: "refused" };
const BATCH_LABEL = { open: "receiving photos", queued: "queued", running: "running", paused: "paused",
  succeeded: "finished", partial: "finished with failures", failed: "failed", canceling: "canceling",
  canceled: "canceled" };

const readJson = (key) => { try { return JSON.parse(localStorage.getItem(key) || "null"); } catch (_) { return null; } };
const pct = (x) => { const v = Math.floor(x * 10) / 10; return `${Number.isInteger(v) ? v : v.toFixed(1)} %`; };
const relName = (file) => file.webkitRelativePath || file.name;
const select = (id, choices, value, attrs = {}) => h("select", { id, ...attrs },
  choices.map(([v, t]) => h("option", { value: v, selected: v === value }, t)));

const fileKey = (file) => `${relName(file)}|${file.size}|${file.lastModified}`;

// What a card looks like, for the list's height estimates of cards not yet measured.
function cardKind(e) {
  const st = e.item?.state;
  if (st === "succeeded" || st === "skipped") return "result";
  if (st === "failed" || ["rejected", "unsent", "missing"].includes(e.status)) return "message";
  return "plain";
}

// The fields of a server item the page uses: with 10,000 items, whole records (params,
// links, timestamps) would be most of the page's memory.
function slimItem(it) {
  const r = it.result, err = it.error;
  return { id: it.id, state: it.state, progress: it.progress || 0, variant: it.variant || "default",
    duplicate_of: it.duplicate_of || null,
    result: r ? { format: r.format, width: r.width, height: r.height } : null,
    error: err ? { code: err.code, message: err.message } : null };
}

// A duplicate was processed once, under the item it duplicates.
const resultLink = (item) => `/api/v1/jobs/${item.state === "skipped" && item.duplicate_of ? item.duplicate_of : item.id}/result`;

// Files waiting to upload, first in first out, without Array.shift's copying of 10,000 entries.
class FileQueue {
  constructor() { this.clear(); }
  clear() { this.items = []; this.head = 0; }
  get length() { return this.items.length - this.head; }
  push(e) { this.items.push(e); }
  peek() { return this.items[this.head]; }
  requeue(first) { this.items = first.concat(this.items.slice(this.head)); this.head = 0; }
  shift() {
    const e = this.items[this.head++];
    if (this.head > 1024 && this.head * 2 > this.items.length) { this.items = this.items.slice(this.head); this.head = 0; }
    return e;
  }
}

function fileType(file) {
  if (TYPES[file.type]) return file.type;
  const ext = (file.name.match(/\.([^.]+)$/) || [])[1]?.toLowerCase();
  // Some systems give no type (or a generic one) for perfectly good photos.
  if ((!file.type || file.type === "application/octet-stream") && EXT_TYPE[ext]) return EXT_TYPE[ext];
  return null;
}

// Why a file cannot be a photo for kadr, or null when it may be (the server checks the content).
function clientRefusal(file) {
  if (!fileType(file)) {
    const what = file.type ? `its type is ${file.type}` : "it has no image type or extension";
    return { code: "not_an_image", message: `not a photo kadr can read (${what}); use JPEG, PNG, WebP, BMP or TIFF` };
  }
  if (file.size === 0) return { code: "empty_file", message: "the file is empty" };
  return null;
}

export function mount(root, ctx) {
  const page = new PhotosPage(root, ctx);
  page.start();
  return () => page.destroy();
}

class PhotosPage {
  constructor(root, ctx) {
    this.root = root;
    this.api = ctx.api;
    this.ctx = ctx;
    this.abort = new AbortController();
    this.entries = [];          // one small record per local file or server item, in the order shown
    this.byItem = new Map();    // server item id -> entry
    this.early = new Map();     // item events that came before their upload's answer
    this.dupes = new Map();     // item id -> entries that are the same photo under another name
    this.queue = new FileQueue();
    this.groupFiles = GROUP_FILES;
    this.adding = Promise.resolve();
    this.reading = null;        // {done, total} while picked files are being read
    this.generation = 0;        // bumped when the list is cleared: a read in progress stops
    this.active = 0;
    this.batch = null;
    this.saved = null;          // what localStorage keeps about the current batch
    this.closing = false;
    this.streaming = false;
    this.urls = new Set();
    this.timers = new Set();
    this.seq = 0;
    this.observer = new IntersectionObserver((list) => {
      for (const en of list) if (en.isIntersecting) { this.observer.unobserve(en.target); en.target._load?.(); }
    }, { rootMargin: "200px" });
    this.onPageHide = () => this.flushSave();
    // A drop that misses the zone would otherwise open the photo in place of the app.
    this.onWindowDrag = (ev) => { if (ev.dataTransfer?.types?.includes("Files")) ev.preventDefault(); };
  }

  get signal() { return this.abort.signal; }

  start() {
    this.build();
    window.addEventListener("pagehide", this.onPageHide);
    window.addEventListener("dragover", this.onWindowDrag);
    window.addEventListener("drop", this.onWindowDrag);
    const saved = readJson(STORE);
    if (saved?.id) this.restore(saved); else this.setPhase("compose");
  }

  destroy() {
    this.flushSave();
    this.abort.abort();
    this.grid.destroy();
    this.observer.disconnect();
    for (const t of this.timers) clearTimeout(t);
    clearInterval(this.clock);
    window.removeEventListener("pagehide", this.onPageHide);
    window.removeEventListener("dragover", this.onWindowDrag);
    window.removeEventListener("drop", this.onWindowDrag);
    for (const u of this.urls) URL.revokeObjectURL(u);
  }

  later(fn, ms) {
    const t = setTimeout(() => { this.timers.delete(t); fn(); }, ms);
    this.timers.add(t);
    return t;
  }

  // ---------------------------------------------------------------- layout

  build() {
    const opts = { ...DEFAULT_OPTIONS, ...(readJson(OPTIONS_STORE) || {}) };
    const field = (id, text, control, hint) => h("div", { class: "ph-field" },
      h("label", { for: id }, text), control, hint ? h("small", { class: "muted", id: `${id}-hint` }, hint) : null);

    this.fileInput = h("input", { type: "file", id: "ph-files", class: "ph-file", multiple: true,
      accept: "image/jpeg,image/png,image/webp,image/bmp,image/tiff,image/heic,image/heif,image/avif,"
        + ".jpg,.jpeg,.png,.webp,.bmp,.tif,.tiff,.heic,.heif,.avif" });
    this.folderInput = h("input", { type: "file", id: "ph-folder", class: "ph-file", multiple: true });
    this.folderInput.webkitdirectory = true;
    for (const inp of [this.fileInput, this.folderInput]) {
      inp.addEventListener("change", () => { this.addFiles([...inp.files]); inp.value = ""; });
    }
    this.drop = h("div", { class: "dropzone ph-drop", id: "ph-drop" },
      h("p", {}, h("strong", {}, "Drop photos or a folder here")),
      h("div", { class: "row ph-pickers" },
        this.fileInput, h("label", { for: "ph-files", class: "button" }, "Choose photos"),
        this.folderInput, h("label", { for: "ph-folder", class: "button secondary" }, "Choose a folder")),
      h("p", { class: "muted" }, "JPEG, PNG, WebP, BMP or TIFF. Files that are not photos are listed with the reason."));
    this.setupDrop(this.drop);
    this.addTitle = h("h2", { id: "ph-add-title" }, "Add photos");
    this.addCard = h("section", { class: "card", "aria-labelledby": "ph-add-title" }, this.addTitle, this.drop);

    this.opt = {
      quality: select("ph-quality", QUALITY, opts.quality),
      upscale: select("ph-upscale", [["", "Automatic: 2× when the result fits the server's limit"],
        ...[1, 2, 3, 4].map((n) => [String(n), `${n}×${n === 1 ? " (same size)" : ""}`])], opts.upscale),
      weight: h("input", { type: "range", id: "ph-weight", min: "0", max: "1", step: "0.05", value: opts.weight,
        "aria-describedby": "ph-weight-hint" }),
      max_faces: h("input", { type: "number", id: "ph-max-faces", min: "0", max: "100", step: "1", inputmode: "numeric",
        value: opts.max_faces, placeholder: "server default", "aria-describedby": "ph-max-faces-hint" }),
      tile: select("ph-tile", TILES, opts.tile, { "aria-describedby": "ph-tile-hint" }),
      only_center_face: h("input", { type: "checkbox", id: "ph-center", checked: !!opts.only_center_face }),
      prescale: h("input", { type: "checkbox", id: "ph-prescale", checked: !!opts.prescale }),
      has_aligned: h("input", { type: "checkbox", id: "ph-aligned", checked: !!opts.has_aligned }),
      name: h("input", { type: "text", id: "ph-name", maxlength: "200", value: opts.name, autocomplete: "off" }),
    };
    this.weightOut = h("output", { for: "ph-weight", id: "ph-weight-value" }, Number(opts.weight).toFixed(2));
    this.opt.weight.addEventListener("input", () => { this.weightOut.value = Number(this.opt.weight.value).toFixed(2); });
    this.optionsBox = h("fieldset", { class: "ph-options", id: "ph-options" },
      h("legend", {}, "Options (apply to every photo of the batch)"),
      field("ph-quality", "Quality", this.opt.quality),
      field("ph-upscale", "Output scale", this.opt.upscale),
      h("div", { class: "ph-field" }, h("label", { for: "ph-weight" }, "Face restoration strength"),
        h("div", { class: "bar" }, this.opt.weight, this.weightOut),
        h("small", { class: "muted", id: "ph-weight-hint" }, "0 keeps more of the original face, 1 restores fully")),
      field("ph-max-faces", "Faces restored per photo", this.opt.max_faces, "0–100; 0: background only"),
      field("ph-tile", "Background tile size", this.opt.tile, "smaller tiles use less memory"),
      field("ph-name", "Batch name (optional)", this.opt.name),
      h("div", { class: "ph-checks" },
        h("label", {}, this.opt.only_center_face, " Only the face nearest the centre"),
        h("label", {}, this.opt.prescale, " Faster background: the model works on a shrunk copy (about 4× less work, less fine detail)"),
        h("label", {}, this.opt.has_aligned, " Photos are aligned 512×512 face crops")));
    for (const el of Object.values(this.opt)) el.addEventListener("change", () => this.saveOptions());
    // Variants: several outputs per photo (seed 000's pipeline), each with its own scale
    // and quality over the options above; the ZIP holds a folder per variant.
    this.variantRows = h("ol", { class: "ph-variants", id: "ph-variants" });
    this.variantsBox = h("fieldset", { class: "ph-options", id: "ph-variants-box" },
      h("legend", {}, "Variants (optional: several outputs per photo, a folder each in the ZIP)"),
      this.variantRows,
      h("button", { type: "button", class: "secondary", id: "ph-add-variant", onclick: () => {
        this.addVariant({ name: `v${this.variantRows.children.length + 1}`, upscale: "", quality: "" }, true);
        this.saveOptions();
      } }, "Add variant"));
    for (const v of opts.variants || []) this.addVariant(v, false);
    this.startBtn = h("button", { type: "button", id: "ph-start", onclick: () => this.startBatch() }, "Upload and enhance");
    this.clearBtn = h("button", { type: "button", class: "secondary", id: "ph-clear",
      onclick: () => this.clearList() }, "Clear list");
    this.readyLine = h("p", { class: "muted", id: "ph-ready", "aria-live": "polite" });
    this.composeCard = h("section", { class: "card", "aria-labelledby": "ph-opt-title" },
      h("h2", { id: "ph-opt-title" }, "Quality and options"), this.optionsBox, this.variantsBox,
      h("div", { class: "row ph-actions" }, this.startBtn, this.clearBtn, this.readyLine));

    this.batchCard = this.buildBatchCard();
    this.missingBox = h("section", { class: "card ph-missing", id: "ph-missing", hidden: true,
      "aria-labelledby": "ph-missing-title" });

    this.listTitle = h("h2", { id: "ph-list-title" }, "Photos");
    this.list = h("ul", { class: "ph-items", id: "ph-items", "aria-labelledby": "ph-list-title" });
    this.grid = new VirtualGrid(this.list, { mount: (e) => this.mountCard(e), unmount: (e) => this.unmountCard(e),
      kind: cardKind });
    this.grid.setItems(this.entries);
    this.listCard = h("section", { "aria-labelledby": "ph-list-title", hidden: true }, this.listTitle, this.list);

    this.root.append(
      h("h1", {}, "Photos"),
      h("p", { class: "muted ph-intro" },
        "Restore faces and upscale many photos at once. Uploads stream in while the first results come back."),
      this.batchCard, this.missingBox, this.addCard, this.composeCard, this.listCard);
  }

  buildBatchCard() {
    const btn = (id, text, fn, cls = "secondary") => h("button", { type: "button", id, class: cls, onclick: fn }, text);
    this.el = {
      title: h("h2", { id: "ph-batch-title" }, "Batch"),
      state: h("span", { class: "state", id: "ph-batch-state" }),
      params: h("p", { class: "muted", id: "ph-batch-params" }),
      progress: h("progress", { id: "ph-progress", max: "100", value: "0", "aria-label": "Batch progress" }),
      percent: h("span", { id: "ph-percent" }, "0 %"),
      totals: h("p", { class: "ph-totals", id: "ph-totals", role: "status" }),
      note: h("p", { class: "muted", id: "ph-batch-note" }),
      zip: btn("ph-zip", "Download ZIP", () => this.downloadZip(), ""),
      csv: btn("ph-csv", "Manifest (CSV)", () => this.downloadManifest()),
      pause: btn("ph-pause", "Pause", () => this.control(this.batch?.paused ? "resume" : "pause")),
      cancel: btn("ph-cancel", "Cancel batch", () => this.askCancel()),
      retry: btn("ph-retry", "Retry failed", () => this.control("retry")),
      fresh: btn("ph-new", "Start a new batch", () => this.newBatch()),
    };
    const e = this.el;
    return h("section", { class: "card ph-batch", id: "ph-batch", hidden: true, "aria-labelledby": "ph-batch-title" },
      h("div", { class: "row ph-batch-head" }, e.title, e.state), e.params,
      h("div", { class: "bar" }, e.progress, e.percent), e.totals, e.note,
      h("div", { class: "row ph-actions" }, e.zip, e.csv, e.pause, e.cancel, e.retry, e.fresh));
  }

  setupDrop(zone) {
    let depth = 0;
    zone.addEventListener("dragenter", (ev) => { ev.preventDefault(); depth++; zone.classList.add("over"); });
    zone.addEventListener("dragover", (ev) => { ev.preventDefault(); ev.dataTransfer.dropEffect = "copy"; });
    zone.addEventListener("dragleave", () => { if (--depth <= 0) { depth = 0; zone.classList.remove("over"); } });
    zone.addEventListener("drop", async (ev) => {
      ev.preventDefault();
      depth = 0;
      zone.classList.remove("over");
      if (!this.canAdd()) return;
      try { this.addFiles(await droppedFiles(ev.dataTransfer)); } catch (err) { this.ctx.notifyError(err, "Could not read the dropped files: "); }
    });
  }

  setPhase(phase) {
    this.phase = phase;
    const compose = phase === "compose";
    this.composeCard.hidden = !compose;
    this.batchCard.hidden = compose;
    this.listTitle.textContent = compose ? "Photos to upload" : "Photos in this batch";
    this.refreshAdd();
    this.refreshCompose();
    this.grid.each((e) => this.renderEntry(e));
  }

  canAdd() { return this.phase === "compose" || (this.phase === "batch" && !!this.batch?.open && !this.closing); }

  refreshAdd() {
    const can = this.canAdd();
    this.addCard.hidden = this.phase === "loading" || (this.phase === "batch" && !can);
    this.addTitle.textContent = this.phase === "batch" ? "Add photos to this batch" : "Add photos";
    this.fileInput.disabled = this.folderInput.disabled = !can;
  }

  refreshCompose() {
    let ready = 0, bytes = 0, refused = 0;
    for (const e of this.entries) {
      if (e.status === "ready") { ready++; bytes += e.size; } else if (e.status === "rejected") refused++;
    }
    this.startBtn.disabled = !ready || !!this.reading;
    this.startBtn.textContent = ready ? `Upload and enhance ${ready} photo${ready > 1 ? "s" : ""}` : "Upload and enhance";
    this.clearBtn.hidden = !this.entries.length;
    this.readyLine.textContent = this.reading
      ? `Reading the files: ${this.reading.done} of ${this.reading.total}…`
      : this.entries.length
        ? `${ready} ready (${formatBytes(bytes)})${refused ? `, ${refused} refused` : ""}` : "No photos added yet.";
    this.listCard.hidden = !this.entries.length;
  }

  // How many entries are in each local status, in one pass.
  tally() {
    const t = { waiting: 0, uploading: 0, missing: 0, unsent: 0, rejected: 0, ended: 0 };
    for (const e of this.entries) {
      if (e.status in t) t[e.status]++;
      if (e.item && !ACTIVE_ITEM.has(e.item.state)) t.ended++;
    }
    return t;
  }

  // ---------------------------------------------------------------- files in

  addFiles(files) {
    if (!files.length || !this.canAdd()) return;
    // One pick at a time, in the order made.
    this.adding = this.adding.then(() => this.readFiles(files))
      .catch((err) => { if (!this.signal.aborted) this.ctx.notifyError(err, "Could not add the files: "); });
  }

  // Takes the picked files into the list in slices of main-thread time: Chromium answers
  // the first read of a picked file's size with a synchronous look at the disk (~0.35 ms
  // here), 3.5 s for 10,000 files in one go. Between slices the page paints, answers
  // clicks and, in a batch, already uploads what was read.
  async readFiles(files) {
    if (!this.canAdd()) return;
    const signal = this.signal, generation = this.generation;
    let junk = 0, again = 0, added = 0;
    const known = new Set();
    for (const e of this.entries) if (e.file) known.add(fileKey(e.file));
    // Indexed once: a folder of 10,000 photos added again must not compare each with each.
    const inBatch = new Set(), waitingFor = new Map();
    if (this.phase === "batch") {
      for (const e of this.entries) {
        if (e.status === "uploaded") inBatch.add(`${e.name}|${e.size}`);
        else if (e.status === "missing" || e.status === "unsent") {
          const slots = waitingFor.get(e.name);
          if (slots) slots.push(e); else waitingFor.set(e.name, [e]);
        }
      }
    }
    this.reading = { done: 0, total: files.length };
    const progressed = () => {
      this.grid.changed();
      this.refreshCompose();
      if (this.phase === "batch") { this.renderMissing(); this.scheduleSave(); this.pump(); this.renderBatch(); }
    };
    try {
      let sliceStart = performance.now();
      for (let i = 0; i < files.length; i++) {
        if (performance.now() - sliceStart > SLICE_MS) {
          this.reading.done = i;
          progressed();
          await new Promise((resolve) => setTimeout(resolve, 0));
          // Cleared, a new batch, or the page left while this waited: the rest is not wanted.
          if (signal.aborted || generation !== this.generation) return;
          sliceStart = performance.now();
        }
        const file = files[i];
        if (JUNK.test(file.name)) { junk++; continue; }
        const key = fileKey(file);
        // The same file again, or (after a reload) one the batch already has: the server
        // would answer with the same item, so the list keeps one card for it.
        if (known.has(key) || inBatch.has(`${relName(file)}|${file.size}`)) { again++; continue; }
        known.add(key);
        const refusal = clientRefusal(file);
        // After a reload, a file added again takes the place the list kept for it.
        const slots = waitingFor.get(relName(file)) || [];
        const missing = !refusal && slots.find((e) => !e.size || e.size === file.size);
        if (missing) slots.splice(slots.indexOf(missing), 1);
        const e = missing || this.newEntry({ name: relName(file), size: file.size });
        e.file = file;
        e.type = fileType(file);
        if (refusal) { e.status = "rejected"; e.error = refusal; } else {
          e.status = this.phase === "batch" ? "waiting" : "ready";
          e.error = null;
          if (this.phase === "batch") this.queue.push(e);
        }
        if (!missing) this.appendEntry(e, false); else this.renderEntry(e);
        added++;
      }
    } finally {
      if (generation === this.generation) this.reading = null;
    }
    const skipped = [junk && `${junk} system file${junk > 1 ? "s" : ""} (hidden files, Thumbs.db) skipped`,
      again && `${again} already in the list or the batch`].filter(Boolean);
    if (skipped.length) this.ctx.notify(skipped.join("; ") + ".", "info");
    progressed();
    if (this.phase === "batch") this.maybeClose();
  }

  // A file's state: what the card shows and what localStorage keeps, nothing more. The
  // card's DOM (``el``) exists only while the card is near the viewport.
  newEntry(fields) {
    return { uid: ++this.seq, name: "", size: 0, file: null, type: null, status: "ready",
      upload: 0, error: null, itemId: null, item: null, el: null, compare: null, kind: "", ...fields };
  }

  appendEntry(e, layout = true) {
    this.entries.push(e);
    e.kind = cardKind(e);
    if (layout) this.grid.changed();
    this.listCard.hidden = false;
  }

  removeEntry(e) { this.removeEntries(new Set([e])); }

  // One pass whatever the count: "Finish without them" may drop thousands.
  removeEntries(gone) {
    this.entries = this.entries.filter((e) => !gone.has(e));
    this.grid.setItems(this.entries);
    this.refreshCompose();
  }

  clearList() {
    this.generation++;
    this.reading = null;
    this.entries = [];
    this.grid.setItems(this.entries);
    this.refreshCompose();
    this.fileInput.focus();
  }

  // ---------------------------------------------------------------- one card per photo

  mountCard(e) {
    const name = h("span", { class: "ph-name" }, e.name);
    e.el = { li: h("li", { class: "ph-item", id: `ph-${e.uid}` }), name, badge: h("span", { class: "state" }),
      meta: h("span", { class: "muted ph-meta" }),
      bar: h("progress", { max: "1", value: "0", "aria-label": `Upload of ${e.name}`, hidden: true }),
      msg: h("p", { class: "ph-msg" }), slot: h("div", { class: "ph-slot" }), actions: h("div", { class: "row ph-item-actions" }) };
    e.el.li.append(h("div", { class: "ph-item-head" }, name, e.el.badge), e.el.meta, e.el.bar, e.el.msg,
      e.el.slot, e.el.actions);
    this.renderEntry(e);
    return e.el.li;
  }

  // The card scrolled away: its images and their object URLs go with it.
  unmountCard(e) {
    if (e.compare) this.observer.unobserve(e.compare);
    this.dropUrls(e);
    e.el = e.compare = e.actionKind = null;
  }

  renderEntry(e) {
    const shape = cardKind(e);
    if (shape !== e.kind) { e.kind = shape; if (!e.el) this.grid.forget(e); }
    if (!e.el) return;
    const { badge, meta, bar, msg, actions, li } = e.el;
    const st = e.status === "uploaded" ? e.item?.state || "pending" : e.status;
    li.dataset.state = st;
    badge.className = `state ${badgeClass(st)}`;
    const working = st === "running" && e.item?.progress > 0;
    badge.textContent = e.status === "uploading" ? `uploading ${Math.round(e.upload * 100)} %`
      : working ? `enhancing ${Math.floor(e.item.progress * 100)} %`
      : e.status === "uploaded" ? ITEM_LABEL[st] || st : LOCAL_LABEL[e.status] || e.status;
    const res = e.item?.result;
    const dims = res?.width ? ` → ${res.width}×${res.height}` : "";
    meta.textContent = [e.size ? formatBytes(e.size) : "", dims ? `result${dims}` : "",
      e.item?.variant && e.item.variant !== "default" ? `variant ${e.item.variant}` : ""].filter(Boolean).join(" · ");
    // One bar: the upload while it goes, then the work on the photo (per tile and face).
    bar.hidden = e.status !== "uploading" && !working;
    bar.value = e.status === "uploading" ? e.upload : e.item?.progress || 0;
    bar.setAttribute("aria-label", e.status === "uploading" ? `Upload of ${e.name}` : `Enhancing ${e.name}`);

    let text = "", cls = "ph-msg";
    if (e.status === "rejected" || e.status === "unsent") {
      text = `${e.status === "rejected" ? "Refused" : "Not uploaded"}: ${e.error?.message || "unknown reason"}`
        + (e.error?.code ? ` [${e.error.code}]` : "");
      cls += " bad";
    } else if (e.status === "missing") {
      text = "This file was not uploaded before the page was reloaded. Add it again to include it.";
      cls += " warn";
    } else if (st === "failed") {
      text = `Failed: ${e.item?.error?.message || "no reason given"}${e.item?.error?.code ? ` [${e.item.error.code}]` : ""}`;
      cls += " bad";
    } else if (st === "skipped") {
      const orig = this.byItem.get(e.item?.duplicate_of);
      text = `The same photo as ${orig ? orig.name : "another one in this batch"}: enhanced once, exported under both names.`;
      cls += " muted";
    }
    msg.className = cls;
    msg.textContent = text;
    msg.hidden = !text;

    const showResult = this.showsResult(e);
    if (showResult && !e.compare) this.buildCompare(e);

    // Rebuilt only when they change, so a focused button keeps focus through updates.
    const kind = this.phase === "compose" ? "remove" : showResult ? "download" : e.status === "unsent" ? "retry" : "";
    if (kind === e.actionKind) return;
    e.actionKind = kind;
    actions.replaceChildren();
    if (kind === "remove") {
      actions.append(h("button", { type: "button", class: "secondary", "aria-label": `Remove ${e.name}`,
        onclick: () => { const next = this.neighbour(e); this.removeEntry(e); next?.focus(); } }, "Remove"));
    } else if (kind === "download") {
      actions.append(h("button", { type: "button", class: "secondary", "aria-label": `Download the result of ${e.name}`,
        onclick: () => this.downloadResult(e) }, "Download"));
    } else if (kind === "retry") {
      actions.append(h("button", { type: "button", class: "secondary", "aria-label": `Retry the upload of ${e.name}`,
        onclick: () => { e.status = "waiting"; this.queue.push(e); this.renderEntry(e); this.renderMissing(); this.pump(); } },
      "Retry upload"));
    }
  }

  neighbour(e) {
    const i = this.entries.indexOf(e);
    const other = this.entries[i + 1] || this.entries[i - 1];
    return other?.el?.actions.querySelector("button") || this.fileInput;
  }

  showsResult(e) {
    const st = e.item?.state;
    if (st === "succeeded") return true;
    if (st !== "skipped" || !e.item.duplicate_of) return false;
    const orig = this.byItem.get(e.item.duplicate_of);
    return !orig || orig.item?.state === "succeeded";
  }

  // The before/after view: two stacked images, the "after" one clipped at the slider.
  buildCompare(e) {
    const before = h("img", { class: "ph-before", alt: `${e.name}, before`, decoding: "async" });
    const after = h("img", { class: "ph-after", alt: `${e.name}, after`, decoding: "async" });
    const range = h("input", { type: "range", class: "ph-range", min: "0", max: "100", step: "1", value: "50",
      "aria-label": `Before and after: ${e.name}`, "aria-valuetext": "50 % before, 50 % after" });
    const stage = h("div", { class: "ph-stage" }, before, after, h("span", { class: "ph-divider", "aria-hidden": "true" }), range);
    const fig = h("figure", { class: "ph-compare" }, stage,
      h("figcaption", { class: "muted" }, h("span", {}, "◀ before"), h("span", {}, "after ▶")));
    // Through CSSOM, not a style attribute: the page's CSP allows no inline styles.
    fig.style.setProperty("--pos", "50%");
    range.addEventListener("input", () => {
      const v = Number(range.value);
      fig.style.setProperty("--pos", `${v}%`);
      range.setAttribute("aria-valuetext", `${v} % before, ${100 - v} % after`);
    });
    fig._load = () => this.loadCompare(e, before, after, fig);
    e.compare = fig;
    e.el.slot.append(fig);
    this.observer.observe(fig);
  }

  async loadCompare(e, before, after, fig) {
    const png = (type) => (type && !SHOWABLE.has(type) ? { format: "png" } : undefined);
    // The card may scroll away (and its URLs be let go) while an image is on its way.
    const keep = (url) => { if (e.compare === fig) this.keepUrl(e, url); else URL.revokeObjectURL(url); return e.compare === fig; };
    try {
      const resultType = e.item.result?.format ? `image/${e.item.result.format}` : e.type;
      const afterUrl = await this.api.objectUrl(resultLink(e.item), { signal: this.signal, query: png(resultType) });
      if (!keep(afterUrl)) return;
      let beforeUrl;
      if (e.file && SHOWABLE.has(e.type)) beforeUrl = URL.createObjectURL(e.file);
      else beforeUrl = await this.api.objectUrl(`/api/v1/jobs/${e.item.id}/input`, { signal: this.signal, query: png(e.type || "image/tiff") });
      if (!keep(beforeUrl)) return;
      after.src = afterUrl;
      if (beforeUrl) before.src = beforeUrl; else fig.classList.add("ph-no-before");
      fig.classList.add("ph-loaded");
    } catch (err) {
      if (this.signal.aborted) return;
      fig.replaceChildren(h("p", { class: "bad" }, `Could not show the result: ${errorText(err)}`));
    }
  }

  keepUrl(e, url) { (e.urls ||= []).push(url); this.urls.add(url); }
  dropUrls(e) { for (const u of e.urls || []) { URL.revokeObjectURL(u); this.urls.delete(u); } e.urls = []; }

  // ---------------------------------------------------------------- the batch

  addVariant(v, focus) {
    const n = this.variantRows.children.length + 1;
    const name = h("input", { type: "text", class: "ph-variant-name", required: true, pattern: "[A-Za-z0-9_\\-]{1,32}",
      maxlength: "32", value: v.name || "", "aria-label": `Variant ${n} name (folder)`, autocomplete: "off",
      title: "letters, digits, - and _ (it names the folder)" });
    const upscale = select(`ph-variant-${n}-upscale`, [["", "Scale as above"],
      ...[1, 2, 3, 4].map((k) => [String(k), `${k}×`])], v.upscale || "", { "aria-label": `Variant ${n} output scale` });
    const quality = select(`ph-variant-${n}-quality`, [["", "Quality as above"], ...QUALITY.slice(1)], v.quality || "",
      { "aria-label": `Variant ${n} quality` });
    const row = h("li", { class: "row ph-variant" }, name, upscale, quality,
      h("button", { type: "button", class: "secondary", "aria-label": `Remove variant ${n}`, onclick: () => {
        row.remove(); this.saveOptions();
      } }, "Remove"));
    for (const el of [name, upscale, quality]) el.addEventListener("change", () => this.saveOptions());
    this.variantRows.append(row);
    if (focus) name.focus();
  }

  variantValues() {
    return [...this.variantRows.children].map((row) => {
      const [name, upscale, quality] = row.querySelectorAll("input, select");
      return { name: name.value.trim(), upscale: upscale.value, quality: quality.value, el: name };
    });
  }

  // [{name, params}] as the API takes them, or null (and the field shown) when one is wrong.
  readVariants() {
    const out = [], seen = new Set();
    for (const v of this.variantValues()) {
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
  }

  readOptions() {
    const o = this.opt;
    for (const el of Object.values(o)) {
      if (!el.checkValidity()) { el.reportValidity(); el.focus(); return null; }
    }
    const params = { weight: Number(o.weight.value), tile: Number(o.tile.value),
      only_center_face: o.only_center_face.checked, has_aligned: o.has_aligned.checked };
    if (o.prescale.checked) params.prescale = true;
    if (o.upscale.value) params.upscale = Number(o.upscale.value);  // left out: the largest up to 2 that fits
    if (o.quality.value) params.quality = o.quality.value;
    if (o.max_faces.value !== "") params.max_faces = Number(o.max_faces.value);
    return params;
  }

  saveOptions() {
    const o = this.opt;
    localStorage.setItem(OPTIONS_STORE, JSON.stringify({ quality: o.quality.value, upscale: o.upscale.value,
      weight: o.weight.value, max_faces: o.max_faces.value, tile: o.tile.value,
      only_center_face: o.only_center_face.checked, has_aligned: o.has_aligned.checked,
      prescale: o.prescale.checked, name: o.name.value,
      variants: this.variantValues().map(({ name, upscale, quality }) => ({ name, upscale, quality })) }));
  }

  async startBatch() {
    const ready = this.entries.filter((e) => e.status === "ready");
    if (!ready.length) return;
    const params = this.readOptions();
    if (!params) return;
    const variants = this.readVariants();
    if (!variants) return;
    this.saveOptions();
    this.startBtn.disabled = true;
    let b;
    try {
      const body = { params, name: this.opt.name.value.trim() };
      if (variants.length) body.variants = variants;
      b = await this.api.post("/api/v1/batches", body, { signal: this.signal });
    } catch (err) {
      if (this.signal.aborted) return;
      this.ctx.notifyError(err, "Could not start the batch: ");
      this.startBtn.disabled = false;
      return;
    }
    this.saved = { id: b.id, startedAt: Date.now(), endedAt: null };
    this.batch = b;
    for (const e of ready) { e.status = "waiting"; this.queue.push(e); }
    this.flushSave();
    this.setPhase("batch");
    this.applyBatch(b);
    this.follow();
    this.pump();
  }

  pump() {
    while (this.active < CONCURRENCY && this.queue.length && !this.signal.aborted) {
      const group = this.nextGroup();
      if (!group.length) continue;
      this.active++;
      this.uploadGroup(group).finally(() => {
        this.active--;
        this.scheduleSave();
        this.renderBatch();
        this.pump();
        this.maybeClose();
      });
    }
  }

  // What the next request carries: one file, or, while many wait, up to GROUP_FILES small ones.
  nextGroup() {
    const many = this.queue.length > CONCURRENCY * this.groupFiles;
    const group = [];
    let bytes = 0;
    while (this.queue.length) {
      const e = this.queue.peek();
      if (e.status !== "waiting") { this.queue.shift(); continue; }
      if (group.length && (!many || group.length >= this.groupFiles || bytes + e.size > GROUP_BYTES)) break;
      group.push(this.queue.shift());
      bytes += e.size;
    }
    return group;
  }

  async uploadGroup(group) {
    const form = new FormData();
    for (const e of group) {
      e.status = "uploading";
      e.upload = 0;
      this.renderEntry(e);
      form.append("files", e.file, e.file.name);
    }
    let lastPaint = 0;
    try {
      const out = await this.api.upload(`/api/v1/batches/${this.batch.id}/items`, form, {
        signal: this.signal,
        onProgress: (f) => {
          for (const e of group) e.upload = f;
          if (Date.now() - lastPaint > 100 || f === 1) { lastPaint = Date.now(); for (const e of group) this.renderEntry(e); }
        },
      });
      this.takeAnswers(group, out?.accepted || [], out?.rejected || [], out?.stopped);
    } catch (err) {
      if (this.signal.aborted) return;
      if (err.code === "too_many_files" && group.length > 1) {
        this.groupFiles = Math.max(1, group.length >> 1);
        for (const e of group) e.status = "waiting";
        this.queue.requeue(group);
      // Every file refused: the error's details give each one's reason.
      } else if (err.code === "no_photo_accepted" && Array.isArray(err.details)) this.takeAnswers(group, [], err.details, null);
      else for (const e of group) this.uploadFailed(e, err);
    }
    for (const e of group) this.renderEntry(e);
  }

  // The server's answers, matched to the request's files by their index (``file``).
  takeAnswers(group, accepted, rejected, stopped) {
    const acc = group.map(() => []);
    const rej = group.map(() => null);
    for (const a of accepted) acc[a.file ?? 0]?.push(a);
    for (const r of rejected) { const i = r.file ?? 0; if (i < rej.length && !rej[i]) rej[i] = r; }
    group.forEach((e, i) => {
      const [first, ...more] = acc[i];
      if (first) {
        this.linkItem(e, slimItem({ ...first, progress: 0 }));
        // Variants give one item per variant: each gets a card of its own.
        for (const m of more) {
          const extra = this.newEntry({ name: e.name, size: e.size, file: e.file, type: e.type, status: "uploaded", extra: true });
          this.appendEntry(extra);
          this.linkItem(extra, slimItem({ ...m, progress: 0 }));
        }
      } else if (rej[i]) {
        const name = e.file?.name;
        const m = rej[i].message || "";
        this.reject(e, { code: rej[i].code, message: name && m.startsWith(`${name}: `) ? m.slice(name.length + 2) : m });
      } else if (stopped) {
        // A quota stopped the request before this file: it was not read; send it again later.
        e.status = "unsent";
        e.error = { code: stopped.code, message: stopped.message };
      } else {
        this.reject(e, { code: "not_accepted", message: "the server took nothing from this file" });
      }
    });
    if (stopped) this.renderMissing();
  }

  uploadFailed(e, err) {
    if (err.status === 404) {
      this.ctx.notifyError(err, "The batch is gone: ");
      this.reject(e, { code: err.code, message: err.message });
    } else if (err.status >= 400 && err.status < 500 && ![401, 403, 408, 429].includes(err.status)) {
      // The server judged this file: its message says why (too large, not a photo, corrupt...).
      this.reject(e, { code: err.details?.[0]?.code || err.code, message: serverReason(err, e.file?.name) });
    } else {
      e.status = "unsent";
      e.error = { code: err.code, message: err.message || String(err) };
      this.renderMissing();
    }
  }

  reject(e, error) {
    e.status = "rejected";
    e.error = error;
  }

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
    this.renderEntry(e);
  }

  applyItem(it) {
    const e = this.byItem.get(it.id);
    if (!e) { this.early.set(it.id, slimItem(it)); return; }
    e.item = slimItem({ ...e.item, ...it });
    e.status = "uploaded";
    this.renderEntry(e);
    if (it.state === "succeeded") {
      // Duplicates of this photo can show its result now.
      for (const other of this.dupes.get(it.id) || []) this.renderEntry(other);
    }
  }

  follow() {
    if (this.streaming || !this.batch) return;
    this.streaming = true;
    const id = this.batch.id;
    const token = this.streamToken = {};
    this.api.events(`/api/v1/batches/${id}/events`, {
      progress: (b) => { this.applyBatch(b); },
      item: (it) => { this.applyItem(it); },
      end: (b) => { this.applyBatch(b); return "stop"; },
    }, { signal: this.signal }).catch((err) => {
      if (!this.signal.aborted) this.ctx.notifyError(err, "Lost the batch's live updates: ");
    }).finally(() => {
      if (this.streamToken !== token) return;  // a newer stream (another batch) owns the flag
      this.streaming = false;
      if (!this.signal.aborted && this.batch?.id === id) this.reconcile();
    });
    clearInterval(this.clock);
    this.clock = setInterval(() => this.renderBatch(), 1000);
  }

  // Items that ended while the stream was away (a reconnect) get no event: take them from the list.
  async reconcile() {
    if (!this.batch) return;
    const id = this.batch.id;
    try {
      const [b, items] = await Promise.all([
        this.api.get(`/api/v1/batches/${id}`, { query: { limit: 0 }, signal: this.signal }),
        this.fetchItems(id)]);
      if (this.batch?.id !== id) return;
      for (const it of items) this.applyItem(it);
      this.applyBatch(b);
    } catch (err) {
      if (!this.signal.aborted) this.ctx.notifyError(err, "Could not refresh the batch: ");
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
    const wasEnded = this.batch && BATCH_ENDED.has(this.batch.state) && !this.batch.open;
    this.batch = b;
    // Photos being worked on, with how far each is (a large one takes minutes).
    for (const r of b.running || []) {
      const e = this.byItem.get(r.id);
      if (!e?.item || !ACTIVE_ITEM.has(e.item.state)) continue;
      e.item.state = "running";
      e.item.progress = r.progress;
      this.renderEntry(e);
    }
    const ended = BATCH_ENDED.has(b.state) && !b.open;
    if (ended && this.saved && !this.saved.endedAt) { this.saved.endedAt = Date.now(); this.flushSave(); }
    if (!ended && this.saved?.endedAt) { this.saved.endedAt = null; this.flushSave(); }  // retried
    if (ended && !wasEnded) { clearInterval(this.clock); this.reconcileIfBehind(true); }
    if (!ended && !this.streaming && this.phase === "batch") this.follow();
    this.renderBatch();
    this.refreshAdd();
    this.reconcileIfBehind(false);
  }

  reconcileIfBehind(now) {
    const b = this.batch;
    const c = b.counts || {};
    const done = (c.succeeded || 0) + (c.failed || 0) + (c.skipped || 0) + (c.canceled || 0);
    if (this.reconcileTimer || done <= this.tally().ended) return;
    this.reconcileTimer = this.later(() => { this.reconcileTimer = null; this.reconcile(); }, now ? 0 : 3000);
  }

  renderBatch() {
    const b = this.batch;
    if (!b || this.phase !== "batch") return;
    const e = this.el;
    const c = b.counts || {};
    const ended = BATCH_ENDED.has(b.state) && !b.open;
    const t = this.tally();
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
    e.state.textContent = this.closing ? "closing" : uploading ? "uploading" : BATCH_LABEL[b.state] || b.state;
    e.params.textContent = describeParams(b.params, b.variants);
    e.progress.value = percent;
    e.percent.textContent = pct(percent);
    const start = this.saved?.startedAt || b.created_at * 1000;
    const elapsed = ((ended && this.saved?.endedAt) || Date.now()) - start;
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

  maybeClose() {
    const b = this.batch;
    if (this.phase !== "batch" || !b?.open || this.closing || this.active || this.queue.length || this.reading) return;
    if (this.signal.aborted) return;
    const t = this.tally();
    if (t.missing || t.unsent || t.waiting || t.uploading) return;
    this.closing = true;
    this.refreshAdd();
    this.api.post(`/api/v1/batches/${b.id}/close`, undefined, { signal: this.signal })
      .then((nb) => { this.closing = false; this.applyBatch(nb); this.follow(); })
      .catch((err) => {
        this.closing = false;
        if (this.signal.aborted) return;
        this.ctx.notifyError(err, "Could not close the batch: ");
        this.refreshAdd();
      });
  }

  renderMissing() {
    const missing = this.entries.filter((e) => e.status === "missing" || e.status === "unsent");
    const box = this.missingBox;
    box.hidden = !missing.length || !this.batch?.open;
    if (box.hidden) { box.replaceChildren(); return; }
    const reloaded = missing.some((e) => e.status === "missing");
    box.replaceChildren(
      h("h2", { id: "ph-missing-title" }, `${missing.length} photo${missing.length > 1 ? "s" : ""} not uploaded`),
      h("p", {}, reloaded
        ? "These files were not uploaded before the page was reloaded. Add them again below (photos the server already has are recognised and not processed twice), or finish the batch without them."
        : "These uploads failed. Retry them, or finish the batch without them."),
      h("ul", { class: "ph-missing-list" }, missing.slice(0, MISSING_SHOWN).map((e) => h("li", {}, e.name,
        e.size ? h("span", { class: "muted" }, ` (${formatBytes(e.size)})`) : null)),
      missing.length > MISSING_SHOWN ? h("li", { class: "muted" }, `and ${missing.length - MISSING_SHOWN} more`) : null),
      h("div", { class: "row" },
        missing.some((e) => e.status === "unsent" && e.file) ? h("button", { type: "button", onclick: () => {
          for (const e of this.entries) if (e.status === "unsent" && e.file) { e.status = "waiting"; this.queue.push(e); this.renderEntry(e); }
          this.renderMissing(); this.pump();
        } }, "Retry uploads") : null,
        h("button", { type: "button", class: "secondary", id: "ph-finish", onclick: () => {
          this.removeEntries(new Set(missing));
          this.renderMissing(); this.scheduleSave(); this.renderBatch(); this.maybeClose();
        } }, "Finish without them")));
  }

  async control(action) {
    if (!this.batch) return;
    try {
      const b = await this.api.post(`/api/v1/batches/${this.batch.id}/${action}`, undefined, { signal: this.signal });
      this.applyBatch(b);
      if (action === "retry") { await this.reconcile(); this.follow(); }
      this.ctx.notify({ pause: "Batch paused.", resume: "Batch resumed.", cancel: "Batch canceled.",
        retry: "Failed photos are being retried." }[action], "info");
    } catch (err) {
      if (!this.signal.aborted) this.ctx.notifyError(err, `Could not ${action} the batch: `);
    }
  }

  askCancel() {
    const btn = this.el.cancel;
    if (btn.dataset.confirm) { delete btn.dataset.confirm; btn.textContent = "Cancel batch"; this.control("cancel"); return; }
    btn.dataset.confirm = "1";
    btn.textContent = "Really cancel? Click again";
    this.later(() => { if (btn.dataset.confirm) { delete btn.dataset.confirm; btn.textContent = "Cancel batch"; } }, 5000);
  }

  async downloadZip() {
    const b = this.batch;
    this.el.zip.disabled = true;
    try {
      await this.api.download(b.links.archive, `kadr-batch-${b.id.slice(0, 8)}.zip`, { signal: this.signal });
    } catch (err) {
      if (!this.signal.aborted) this.ctx.notifyError(err, "Could not download the ZIP: ");
    } finally {
      this.renderBatch();
    }
  }

  async downloadManifest() {
    const b = this.batch;
    try {
      await this.api.download(b.links.manifest_csv, `kadr-batch-${b.id.slice(0, 8)}.csv`, { signal: this.signal });
    } catch (err) {
      if (!this.signal.aborted) this.ctx.notifyError(err, "Could not download the manifest: ");
    }
  }

  async downloadResult(e) {
    const ext = e.item.result?.format === "jpeg" ? "jpg" : e.item.result?.format;
    // A variant's output carries its name, as its folder in the ZIP does.
    const variant = e.item.variant && e.item.variant !== "default" ? `${e.item.variant}-` : "";
    const stem = variant + e.name.split("/").pop().replace(/\.[^.]+$/, "");
    try {
      await this.api.download(resultLink(e.item), ext ? `${stem}.${ext}` : stem, { signal: this.signal });
    } catch (err) {
      if (!this.signal.aborted) this.ctx.notifyError(err, `Could not download ${e.name}: `);
    }
  }

  newBatch() {
    if (this.queue.length || this.active) {
      this.ctx.notify("Uploads are still running; wait for them or cancel the batch first.", "info");
      return;
    }
    localStorage.removeItem(STORE);
    this.saved = null;
    this.batch = null;
    this.abort.abort();
    this.abort = new AbortController();
    clearInterval(this.clock);
    this.streaming = false;
    this.closing = false;
    this.byItem.clear();
    this.early.clear();
    this.dupes.clear();
    this.queue.clear();
    this.clearList();
    this.renderMissing();
    this.setPhase("compose");
    this.fileInput.focus();
  }

  // ---------------------------------------------------------------- after a reload

  async restore(saved) {
    this.saved = saved;
    this.setPhase("loading");
    this.listCard.hidden = true;
    this.batchCard.hidden = false;
    this.el.title.textContent = `Batch ${saved.id.slice(0, 8)}`;
    this.el.totals.textContent = "Loading the batch from the server…";
    let b, items;
    try {
      b = await this.api.get(`/api/v1/batches/${saved.id}`, { query: { limit: 0 }, signal: this.signal });
      items = await this.fetchItems(saved.id);
    } catch (err) {
      if (this.signal.aborted) return;
      if (err.status === 404) {
        localStorage.removeItem(STORE);
        this.saved = null;
        this.ctx.notify("The batch this page was following no longer exists (deleted or expired).", "info");
        this.setPhase("compose");
        return;
      }
      this.el.totals.textContent = "";
      this.el.note.replaceChildren(`Could not load the batch: ${errorText(err)} `,
        h("button", { type: "button", class: "secondary", onclick: () => { this.el.note.replaceChildren(); this.restore(saved); } }, "Try again"));
      return;
    }
    this.batch = b;
    const records = (saved.files || []).map(unpackFile);
    const byId = new Map(items.map((it) => [it.id, it]));
    const used = new Set();
    const byName = new Map();
    for (const it of items) {
      const same = byName.get(it.name);
      if (same) same.push(it); else byName.set(it.name, [it]);
    }
    const take = (it, rec) => {
      used.add(it.id);
      const name = rec?.name || it.name;
      const e = this.newEntry({ name, size: rec?.size || it.bytes || 0, type: nameType(name) });
      this.appendEntry(e);
      this.linkItem(e, slimItem(it));
    };
    for (const rec of records) {
      if (rec.status === "rejected") {
        this.appendEntry(this.newEntry({ name: rec.name, size: rec.size, status: "rejected", error: rec.error }));
        continue;
      }
      let it = rec.itemId && byId.get(rec.itemId);
      // An upload cut by the reload may have reached the server after all.
      if (!it) it = (byName.get(rec.name.split("/").pop()) || []).find((x) => !used.has(x.id));
      if (it && !used.has(it.id)) take(it, rec);
      else if (!it) this.appendEntry(this.newEntry({ name: rec.name, size: rec.size, type: nameType(rec.name), status: b.open ? "missing" : "rejected",
        error: b.open ? null : { code: "not_uploaded", message: "not uploaded before the batch was closed" } }));
    }
    for (const it of items) if (!used.has(it.id)) take(it, null);
    this.setPhase("batch");
    this.applyBatch(b);
    this.renderMissing();
    this.scheduleSave();
    if (!BATCH_ENDED.has(b.state) || b.open) this.follow();
    this.maybeClose();
  }

  // ---------------------------------------------------------------- localStorage

  scheduleSave() {
    if (this.saveTimer || !this.saved) return;
    this.saveTimer = this.later(() => { this.saveTimer = null; this.flushSave(); }, SAVE_MS);
  }

  flushSave() {
    if (!this.saved) return;
    const files = [];
    for (const e of this.entries) if (!e.extra) files.push(packFile(e));
    this.saved.files = files;
    try { localStorage.setItem(STORE, JSON.stringify(this.saved)); } catch (err) {
      console.warn("could not keep the batch in localStorage", err);
    }
  }
}

// One file as localStorage keeps it: [name, size, "u"ploaded | "r"efused | "p"ending,
// item id, refusal code, refusal message]; 10,000 files are about 1 MB of JSON.
function packFile(e) {
  if (e.status === "uploaded") return [e.name, e.size, "u", e.itemId];
  if (e.status === "rejected") return [e.name, e.size, "r", null, e.error?.code || "", e.error?.message || ""];
  return [e.name, e.size, "p"];
}

function unpackFile(rec) {
  if (!Array.isArray(rec)) return rec;  // kept by an earlier version of the page: {name, size, status, ...}
  const [name, size, s, itemId, code, message] = rec;
  return { name, size, itemId: itemId || null, status: s === "u" ? "uploaded" : s === "r" ? "rejected" : "pending",
    error: s === "r" ? { code, message } : null };
}

const nameType = (name) => EXT_TYPE[(name.match(/\.([^.]+)$/) || [])[1]?.toLowerCase()] || null;

function badgeClass(state) {
  if (state === "succeeded") return "succeeded";
  if (state === "partial") return "partial";
  if (["failed", "rejected", "canceled", "canceling", "unsent"].includes(state)) return state === "unsent" ? "failed" : state;
  if (["running", "uploading", "open"].includes(state)) return state === "open" ? "running" : state;
  return state;
}

// The server's reason for one refused file, without the "1 file(s) refused: NAME:" wrapper.
function serverReason(err, name) {
  let m = (err.message || "").replace(/^\d+ file\(s\) refused: /, "");
  if (name && m.startsWith(`${name}: `)) m = m.slice(name.length + 2);
  if (err.status === 413 && err.code === "payload_too_large") return `too large for the server: ${m}`;
  return m || `the server answered ${err.status}`;
}

function describeParams(p = {}, variants = []) {
  const parts = [];
  if (p.quality) parts.push(`quality ${p.quality}`);
  parts.push(p.upscale ? `${p.upscale}× scale` : "automatic scale");
  if (p.weight !== undefined) parts.push(`face strength ${Number(p.weight).toFixed(2)}`);
  if (p.max_faces !== undefined) parts.push(`up to ${p.max_faces} face${p.max_faces === 1 ? "" : "s"}`);
  if (p.tile) parts.push(`tiles ${p.tile} px`);
  if (p.only_center_face) parts.push("centre face only");
  if (p.prescale) parts.push("faster background");
  if (p.has_aligned) parts.push("aligned faces");
  const named = (variants || []).filter((v) => v.name !== "default");
  // The server stores each variant's params merged over the batch's: name what differs.
  const vs = named.map((v) => `${v.name} (${[
    v.params?.upscale && v.params.upscale !== p.upscale ? `${v.params.upscale}×` : "",
    v.params?.quality && v.params.quality !== p.quality ? v.params.quality : ""].filter(Boolean).join(", ")
    || "as above"})`);
  return (parts.length ? `Options: ${parts.join(" · ")}` : "") + (vs.length ? `. Variants: ${vs.join(", ")}` : "");
}

// Files from a drop, walking into dropped folders (webkitGetAsEntry) so a whole folder works.
async function droppedFiles(dt) {
  const entries = [...(dt.items || [])].map((it) => it.webkitGetAsEntry?.()).filter(Boolean);
  if (!entries.length) return [...(dt.files || [])];
  const out = [];
  const walk = async (entry, prefix) => {
    if (entry.isFile) {
      const file = await new Promise((res, rej) => entry.file(res, rej));
      // Keep the folder path for display, as a folder picked with the button would.
      if (prefix) Object.defineProperty(file, "webkitRelativePath", { value: `${prefix}${file.name}` });
      out.push(file);
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
      }
    }
  };
  for (const entry of entries) await walk(entry, "");
  return out;
}
