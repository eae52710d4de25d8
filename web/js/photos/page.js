// Photos: pick or drop many photos (or a folder), choose the options once (the server's
// choices: GET /api/v1/enhance/options), stream them into a batch a few uploads at a
// time, watch each result arrive with a before/after slider, download the ZIP. The batch
// id and the list of local files are kept in localStorage: after a reload the page takes
// the batch's state from the server, goes on following it, and names the files that
// never reached it so they can be added again (the server recognises a file it already
// has by name and content).
//
// Built for 10,000 files: the list is virtual (only the cards near the viewport exist in
// the DOM, with their images), a file's state is a small record with no DOM and no
// server links, many small files share an upload request, and what localStorage keeps
// is one short array per file.
//
// The parts: state.js (the records and the batch, emitting topics), intake.js (files
// in), uploads.js (files up), sync.js and restore.js (the batch on the server), and the
// components add_card, compose_card (options_form, variants), batch_card, missing_box,
// photo_list (photo_card, compare), each rendering from the state.

import { h } from "../dom.js";
import { addCard } from "./add_card.js";
import { batchCard } from "./batch_card.js";
import { composeCard } from "./compose_card.js";
import { Intake } from "./intake.js";
import { missingBox } from "./missing_box.js";
import { photoList } from "./photo_list.js";
import { restore } from "./restore.js";
import { PhotosState } from "./state.js";
import { loadBatch } from "./storage.js";
import { BatchSync } from "./sync.js";
import { Uploader } from "./uploads.js";

export function mount(root, ctx) {
  const { api, notify, notifyError } = ctx;
  const state = new PhotosState();
  const uploader = new Uploader(state, { api, notifyError, settled: () => sync.maybeClose() });
  const sync = new BatchSync(state, ctx, uploader);
  const intake = new Intake(state, {
    notify, notifyError,
    // In a batch, what was read goes up at once and counts at once.
    progressed: () => { state.emit("missing"); state.scheduleSave(); uploader.pump(); state.emit("batch"); },
    done: () => sync.maybeClose(),
  });

  const add = addCard(state, { onFiles: (files) => intake.add(files), notifyError });
  const compose = composeCard(state, {
    onStart: (choice) => sync.start(choice),
    onClear: () => { state.clearEntries(); add.input.focus(); },
    onRetryOptions: loadOptions,
  });
  const batch = batchCard(state, {
    onZip: () => sync.downloadZip(),
    onManifest: () => sync.downloadManifest(),
    onControl: (action) => sync.control(action),
    onNewBatch: () => { if (sync.newBatch()) add.input.focus(); },
    onRetryLoad: () => restore(state, sync, state.saved),
  });
  const missing = missingBox(state, {
    onRetry: (entries) => uploader.retry(entries),
    onFinish: (gone) => {
      state.removeEntries(gone);
      state.emit("missing");
      state.scheduleSave();
      state.emit("batch");
      sync.maybeClose();
    },
  });
  const list = photoList(state, {
    api,
    onDownload: (e) => sync.downloadResult(e),
    onRetry: (entries) => uploader.retry(entries),
    fallbackFocus: () => add.input,
  });

  root.append(
    h("h1", {}, "Photos"),
    h("p", { class: "muted ph-intro" },
      "Restore faces and upscale many photos at once. Uploads stream in while the first results come back."),
    batch.el, missing.el, add.el, compose.el, list.el);

  const optionsCtrl = new AbortController();
  function loadOptions() {
    api.get("/api/v1/enhance/options", { signal: optionsCtrl.signal })
      .then((o) => state.setOptions(o), (err) => { if (!optionsCtrl.signal.aborted) compose.showOptionsError(err); });
  }

  const onPageHide = () => state.flushSave();
  // A drop that misses the zone would otherwise open the photo in place of the app.
  const onWindowDrag = (ev) => { if (ev.dataTransfer?.types?.includes("Files")) ev.preventDefault(); };
  window.addEventListener("pagehide", onPageHide);
  window.addEventListener("dragover", onWindowDrag);
  window.addEventListener("drop", onWindowDrag);

  loadOptions();
  const saved = loadBatch();
  if (saved?.id) restore(state, sync, saved); else state.setPhase("compose");

  return () => {
    state.destroy();
    optionsCtrl.abort();
    sync.destroy();
    list.destroy();
    window.removeEventListener("pagehide", onPageHide);
    window.removeEventListener("dragover", onWindowDrag);
    window.removeEventListener("drop", onWindowDrag);
  };
}
