// The filters live in the hash query (#/cameras?camera=gate&since=…&until=…&offset=…&event=…)
// so a reload or a shared link shows the same thing.

function intParam(params, name) {
  const v = params.get(name);
  if (v === null || v === "") return null;
  const n = Number(v);
  return Number.isFinite(n) ? Math.floor(n) : null;
}

export function readHash() {
  const q = new URLSearchParams(location.hash.split("?")[1] || "");
  return {
    camera: q.get("camera") || "",
    since: intParam(q, "since"),
    until: intParam(q, "until"),
    offset: Math.max(0, intParam(q, "offset") || 0),
    event: q.get("event") || "",
  };
}

export function writeHash(f) {
  const q = new URLSearchParams();
  if (f.camera) q.set("camera", f.camera);
  if (f.since !== null) q.set("since", String(f.since));
  if (f.until !== null) q.set("until", String(f.until));
  if (f.offset) q.set("offset", String(f.offset));
  if (f.event) q.set("event", f.event);
  const s = q.toString();
  // replaceState fires no hashchange, so the router does not remount the page.
  history.replaceState(history.state, "", `#/cameras${s ? `?${s}` : ""}`);
}
