// Small pure helpers of the Cameras page: durations and times in words, datetime-local
// values, an event's card label and its plate crops.

import { formatDuration, formatTime } from "../dom.js";

export const PENDING = new Set(["queued", "running"]);

export function seconds(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return "–";
  if (s < 10) return `${s.toFixed(1)} s`;
  return s < 60 ? `${Math.round(s)} s` : formatDuration(s);
}

const pad = (n) => String(n).padStart(2, "0");

// Candidate frames lie a second or so apart: the time of day to a tenth says enough.
export function clock(epoch) {
  if (!epoch) return "–";
  return new Date(epoch * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit",
                                                         fractionalSecondDigits: 1 });
}

// datetime-local values are the browser's local time, to the second.
export function toLocalInput(epoch) {
  const d = new Date(epoch * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fromLocalInput(value) {
  if (!value) return null;
  const t = new Date(value).getTime();  // no offset in the string: parsed as local time
  return Number.isFinite(t) ? Math.floor(t / 1000) : null;
}

export const isAbort = (err) => err && (err.name === "AbortError" || err.code === "AbortError");

// What decides whether an event's card (or open detail) must be drawn again.
export function eventSignature(ev) {
  return [ev.state, ev.ts, Object.keys(ev.images || {}).join(","), ev.error?.code || ""].join("|");
}

export function plateKinds(ev) {
  return Object.keys(ev.images || {}).filter((k) => /^plate_\d+$/.test(k))
    .sort((a, b) => Number(a.slice(6)) - Number(b.slice(6)));
}

export function cardLabel(ev) {
  const plates = plateKinds(ev).length;
  return [`Event on ${ev.camera} at ${formatTime(ev.ts)}`, ev.state,
    ev.plate ? `plate ${ev.plate}` : "",
    ev.state === "succeeded" ? `${plates} plate crop${plates === 1 ? "" : "s"}` : ""]
    .filter(Boolean).join(", ");
}
