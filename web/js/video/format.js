// Small pure helpers of the Video page: numbers and changes in words, a result set's
// label, SVG elements, the video id in the hash.

const SVG_NS = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

export const fmt = (v, digits = 3) => (v === null || v === undefined || !Number.isFinite(v) ? "–" : v.toFixed(digits));
export const pct = (v) => (v === null || v === undefined || !Number.isFinite(v) ? "–" : `${v > 0 ? "−" : v < 0 ? "+" : ""}${Math.abs(v).toFixed(1)} %`);
export const humanize = (name) => name.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
export const isAbort = (e) => e && (e.name === "AbortError" || e.code === "dropped");

export function describeParams(params) {
  const parts = Object.entries(params || {}).map(([k, v]) => `${k}=${v}`);
  return parts.length ? parts.join(", ") : "";
}

export function setLabel(r) {
  if (r.method === "none") return "raw masks (no stabilization)";
  const p = describeParams(r.params);
  return p ? `${r.method} (${p})` : r.method;
}

export function hashVideoId() {
  return (location.hash.match(/^#\/video\/([\w-]{1,64})/) || [])[1] || null;
}
