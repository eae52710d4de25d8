// What the page knows of a photo and a batch, and how it says it: the small record kept
// per server item, what a card looks like, state labels, the batch's options in words.

export const ACTIVE_ITEM = new Set(["pending", "queued", "running"]);
export const BATCH_ENDED = new Set(["succeeded", "partial", "failed", "canceled"]);

export const ITEM_LABEL = { pending: "uploaded, waiting", queued: "queued", running: "enhancing", succeeded: "done",
  failed: "failed", skipped: "duplicate", canceled: "canceled" };
export const LOCAL_LABEL = { ready: "ready", waiting: "waiting to upload", uploading: "uploading",
  unsent: "upload failed", missing: "not uploaded", rejected: "refused" };
export const BATCH_LABEL = { open: "receiving photos", queued: "queued", running: "running", paused: "paused",
  succeeded: "finished", partial: "finished with failures", failed: "failed", canceling: "canceling",
  canceled: "canceled" };

export const pct = (x) => { const v = Math.floor(x * 10) / 10; return `${Number.isInteger(v) ? v : v.toFixed(1)} %`; };

// The batch has ended and takes no more photos.
export const batchEnded = (b) => !!b && BATCH_ENDED.has(b.state) && !b.open;

// What a card looks like, for the list's height estimates of cards not yet measured.
export function cardKind(e) {
  const st = e.item?.state;
  if (st === "succeeded" || st === "skipped") return "result";
  if (st === "failed" || ["rejected", "unsent", "missing"].includes(e.status)) return "message";
  return "plain";
}

// The fields of a server item the page uses: with 10,000 items, whole records (params,
// links, timestamps) would be most of the page's memory.
export function slimItem(it) {
  const r = it.result, err = it.error;
  return { id: it.id, state: it.state, progress: it.progress || 0, variant: it.variant || "default",
    duplicate_of: it.duplicate_of || null,
    result: r ? { format: r.format, width: r.width, height: r.height } : null,
    error: err ? { code: err.code, message: err.message } : null };
}

// A duplicate was processed once, under the item it duplicates.
export const resultLink = (item) =>
  `/api/v1/jobs/${item.state === "skipped" && item.duplicate_of ? item.duplicate_of : item.id}/result`;

export function badgeClass(state) {
  if (state === "succeeded") return "succeeded";
  if (state === "partial") return "partial";
  if (["failed", "rejected", "canceled", "canceling", "unsent"].includes(state)) return state === "unsent" ? "failed" : state;
  if (["running", "uploading", "open"].includes(state)) return state === "open" ? "running" : state;
  return state;
}

// The server's reason for one refused file, without the "1 file(s) refused: NAME:" wrapper.
export function serverReason(err, name) {
  let m = (err.message || "").replace(/^\d+ file\(s\) refused: /, "");
  if (name && m.startsWith(`${name}: `)) m = m.slice(name.length + 2);
  if (err.status === 413 && err.code === "payload_too_large") return `too large for the server: ${m}`;
  return m || `the server answered ${err.status}`;
}

export function describeParams(p = {}, variants = []) {
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
