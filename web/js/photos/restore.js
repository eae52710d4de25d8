// After a reload: the batch localStorage names is taken from the server (its items and
// state), matched to the files the page had (by item id, else by name: an upload cut by
// the reload may have landed), and followed again; files that never reached it are
// listed as missing while the batch is open, so they can be added again.

import { BATCH_ENDED, slimItem } from "./records.js";
import { forgetBatch, unpackFile } from "./storage.js";
import { nameType } from "./files.js";

export async function restore(state, sync, saved) {
  const { api, notify } = sync;
  state.saved = saved;
  state.loadError = null;
  state.setPhase("loading");
  let b, items;
  try {
    b = await api.get(`/api/v1/batches/${saved.id}`, { query: { limit: 0 }, signal: state.signal });
    items = await sync.fetchItems(saved.id);
  } catch (err) {
    if (state.signal.aborted) return;
    if (err.status === 404) {
      forgetBatch();
      state.saved = null;
      notify("The batch this page was following no longer exists (deleted or expired).", "info");
      state.setPhase("compose");
      return;
    }
    state.loadError = err;
    state.emit("phase");
    return;
  }
  state.batch = b;
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
    const e = state.newEntry({ name, size: rec?.size || it.bytes || 0, type: nameType(name) });
    state.appendEntry(e, false);
    state.linkItem(e, slimItem(it));
  };
  for (const rec of records) {
    if (rec.status === "rejected") {
      state.appendEntry(state.newEntry({ name: rec.name, size: rec.size, status: "rejected", error: rec.error }), false);
      continue;
    }
    let it = rec.itemId && byId.get(rec.itemId);
    // An upload cut by the reload may have reached the server after all.
    if (!it) it = (byName.get(rec.name.split("/").pop()) || []).find((x) => !used.has(x.id));
    if (it && !used.has(it.id)) take(it, rec);
    else if (!it) {
      state.appendEntry(state.newEntry({ name: rec.name, size: rec.size, type: nameType(rec.name),
        status: b.open ? "missing" : "rejected",
        error: b.open ? null : { code: "not_uploaded", message: "not uploaded before the batch was closed" } }), false);
    }
  }
  for (const it of items) if (!used.has(it.id)) take(it, null);
  state.setPhase("batch");  // the list lays its records out on the phase
  sync.applyBatch(b);
  state.emit("missing");
  state.scheduleSave();
  if (!BATCH_ENDED.has(b.state) || b.open) sync.follow();
  sync.maybeClose();
}
