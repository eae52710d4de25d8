// Cameras: each camera's pre-event buffer health (GET /api/v1/cameras) and its events
// (GET /api/v1/camera/events), newest first, with the snow photo and plate crops; an
// event opens in a dialog with the chosen frame, every candidate's sharpness score and
// the plate crops. Both lists refresh while the page is open. The filters live in the
// hash query (#/cameras?camera=gate&since=…&until=…&offset=…&event=…) so a reload or a
// shared link shows the same thing.

import { errorText, formatBytes, formatDuration, formatShare, formatTime, h } from "./dom.js";

const REFRESH_MS = 4000;
const PENDING_MS = 1500;      // an event is usually done within a second or two
const PAGE_SIZE = 12;
// nginx allows 20 requests/s (burst 40) per client: thumbnails load a few at a time.
const IMAGE_CONCURRENCY = 3;
const PENDING = new Set(["queued", "running"]);

// ---------------------------------------------------------------- formatting

function seconds(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return "–";
  if (s < 10) return `${s.toFixed(1)} s`;
  return s < 60 ? `${Math.round(s)} s` : formatDuration(s);
}

function pad(n) { return String(n).padStart(2, "0"); }

// Candidate frames lie a second or so apart: the time of day to a tenth says enough.
function clock(epoch) {
  if (!epoch) return "–";
  return new Date(epoch * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit",
                                                         fractionalSecondDigits: 1 });
}

// datetime-local values are the browser's local time, to the second.
function toLocalInput(epoch) {
  const d = new Date(epoch * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function fromLocalInput(value) {
  if (!value) return null;
  const t = new Date(value).getTime();  // no offset in the string: parsed as local time
  return Number.isFinite(t) ? Math.floor(t / 1000) : null;
}

function intParam(params, name) {
  const v = params.get(name);
  if (v === null || v === "") return null;
  const n = Number(v);
  return Number.isFinite(n) ? Math.floor(n) : null;
}

// ---------------------------------------------------------------- filters in the hash

function readHash() {
  const q = new URLSearchParams(location.hash.split("?")[1] || "");
  return {
    camera: q.get("camera") || "",
    since: intParam(q, "since"),
    until: intParam(q, "until"),
    offset: Math.max(0, intParam(q, "offset") || 0),
    event: q.get("event") || "",
  };
}

function writeHash(f) {
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

// ---------------------------------------------------------------- buffer health

function health(cam) {
  const b = cam.buffer;
  if (cam.source === "none") {
    return { key: "none", label: "No stream",
             detail: "Sends its own images with each event; nothing is buffered." };
  }
  if (!b) {
    return { key: "down", label: "Down",
             detail: "No buffer report: the camera worker is not running or cannot reach Redis." };
  }
  if (!b.up) {
    if (!b.last_error) return { key: "stale", label: "Connecting", detail: "Connecting to the source…" };
    return { key: "down", label: "Down", detail: `Source unreachable: ${b.last_error}` };
  }
  const age = b.last_frame_age_seconds;
  if (!b.frames || age === null || age === undefined) {
    return { key: "stale", label: "Starting", detail: "Connected; no frame buffered yet." };
  }
  // A few frame intervals of silence, and never less than the 1 s publish period allows.
  if (age > Math.max(3, 3 / (cam.fps || 1))) {
    return { key: "stale", label: "Stale", detail: `No new frame for ${seconds(age)}.` };
  }
  if (b.dropped_budget_total > 0 && b.seconds_held < 0.9 * cam.buffer_seconds) {
    return { key: "degraded", label: "Window cut short",
             detail: `The memory budget holds only ${seconds(b.seconds_held)} of ${seconds(cam.buffer_seconds)}: raise buffer_max_bytes.` };
  }
  return { key: "healthy", label: "Healthy", detail: "" };
}

// One card per camera, built once and updated in place, so a focused button in it
// keeps its focus across refreshes.
function cameraCard(cam, onShowEvents) {
  const headingId = `cam-${cam.id}-title`;
  const badge = h("span", { class: "health" });
  const sourceLine = h("span", { class: "muted" });
  const detail = h("p", { class: "health-detail" });
  const field = (name, label) => {
    const dd = h("dd", { dataset: { field: name } });
    return [h("dt", {}, label), dd];
  };
  const rows = {
    buffered: field("buffered", "Buffered"),
    memory: field("memory", "Memory"),
    age: field("age", "Last frame"),
    fps: field("fps", "Frame rate"),
    drops: field("drops", "Drops"),
    reconnects: field("reconnects", "Reconnects"),
  };
  const heldBar = h("progress", { "aria-label": `${cam.id}: seconds buffered` });
  const memBar = h("progress", { "aria-label": `${cam.id}: memory used of budget` });
  const el = h("article", { class: "camera card", dataset: { camera: cam.id }, "aria-labelledby": headingId },
    h("div", { class: "camera-head" }, h("h3", { id: headingId }, cam.id), badge),
    sourceLine, detail,
    h("dl", { class: "facts" }, Object.values(rows).flat()),
    h("button", { type: "button", class: "secondary", onclick: () => onShowEvents(cam.id) },
      `Show ${cam.id}'s events`));

  function update(c) {
    const st = health(c);
    el.dataset.health = st.key;
    badge.className = `health ${st.key}`;
    badge.textContent = st.label;
    detail.textContent = st.detail;
    detail.hidden = !st.detail;
    sourceLine.textContent = `${{ mjpeg: "MJPEG", rtsp: "RTSP", file: "Video file", none: "No stream" }[c.source] || c.source}`
      + (c.source !== "none" ? ` · keeps ${c.fps} fps · ${c.buffer_seconds} s window` : "")
      + ` · auth ${c.auth}` + (c.webhook ? " · forwards events" : "");
    const b = c.buffer;
    const dl = el.querySelector("dl");
    dl.hidden = !b;
    if (!b) return;
    const [, held] = rows.buffered;
    heldBar.max = c.buffer_seconds;
    heldBar.value = Math.min(b.seconds_held || 0, c.buffer_seconds);
    held.replaceChildren(`${seconds(b.seconds_held)} of ${seconds(c.buffer_seconds)} · ${b.frames} frames`, heldBar);
    const [, mem] = rows.memory;
    memBar.max = b.max_bytes;
    memBar.value = Math.min(b.bytes || 0, b.max_bytes);
    mem.replaceChildren(`${formatBytes(b.bytes)} of ${formatBytes(b.max_bytes)} (${formatShare(b.bytes, b.max_bytes)})`, memBar);
    const age = b.last_frame_age_seconds;
    rows.age[1].textContent = age === null || age === undefined ? "none yet" : `${seconds(age)} ago`;
    rows.fps[1].textContent = b.fps ? `${b.fps.toFixed(1)} fps buffered` : "–";
    rows.drops[1].replaceChildren(
      h("span", { class: b.dropped_budget_total ? "warn" : "" }, `${b.dropped_budget_total} over budget`),
      ` · `,
      h("span", { class: b.dropped_undecodable_total ? "warn" : "" }, `${b.dropped_undecodable_total} undecodable`),
      h("span", { class: "muted" }, ` · ${b.dropped_age_total} aged out (normal)`));
    rows.reconnects[1].textContent = String(b.reconnects ?? 0);
  }
  return { el, update };
}

// ---------------------------------------------------------------- images behind the key

// Object URLs of event images, fetched a few at a time and kept while shown.
class Images {
  constructor(api, signal) {
    this.api = api;
    this.signal = signal;
    this.cache = new Map();   // path -> Promise<object URL>
    this.waiting = [];
    this.active = 0;
  }

  url(path) {
    let p = this.cache.get(path);
    if (!p) {
      const job = { path };
      p = new Promise((resolve, reject) => Object.assign(job, { resolve, reject }));
      job.promise = p;
      p.catch(() => {});  // failures are shown where the image is used
      this.cache.set(path, p);
      this.waiting.push(job);
      this.pump();
    }
    return p;
  }

  // Still wanted: the path may have been dropped, or dropped and asked for again.
  wanted(job) { return this.cache.get(job.path) === job.promise; }

  pump() {
    while (this.active < IMAGE_CONCURRENCY && this.waiting.length) {
      const job = this.waiting.shift();
      if (!this.wanted(job)) { job.reject(new DOMException("dropped", "AbortError")); continue; }
      this.active++;
      this.api.objectUrl(job.path, { signal: this.signal })
        .then((u) => {
          // Dropped while loading: nobody else will revoke it.
          if (!this.wanted(job)) { URL.revokeObjectURL(u); job.reject(new DOMException("dropped", "AbortError")); }
          else job.resolve(u);
        }, job.reject)
        .finally(() => { this.active--; this.pump(); });
    }
  }

  keepOnly(paths) {
    for (const [path, p] of this.cache) {
      if (paths.has(path)) continue;
      this.cache.delete(path);
      p.then((u) => URL.revokeObjectURL(u), () => {});
    }
  }
}

function isAbort(err) {
  return err && (err.name === "AbortError" || err.code === "AbortError");
}

function image(images, path, alt, cls) {
  const img = h("img", { alt, class: cls, decoding: "async" });
  images.url(path).then((u) => { img.src = u; }, (err) => {
    if (isAbort(err)) return;
    img.replaceWith(h("span", { class: `${cls} missing bad` }, `image unavailable: ${errorText(err)}`));
  });
  return img;
}

// ---------------------------------------------------------------- events

function eventSignature(ev) {
  return [ev.state, ev.ts, Object.keys(ev.images || {}).join(","), ev.error?.code || ""].join("|");
}

function plateKinds(ev) {
  return Object.keys(ev.images || {}).filter((k) => /^plate_\d+$/.test(k))
    .sort((a, b) => Number(a.slice(6)) - Number(b.slice(6)));
}

function cardLabel(ev) {
  const plates = plateKinds(ev).length;
  return [`Event on ${ev.camera} at ${formatTime(ev.ts)}`, ev.state,
    ev.plate ? `plate ${ev.plate}` : "",
    ev.state === "succeeded" ? `${plates} plate crop${plates === 1 ? "" : "s"}` : ""]
    .filter(Boolean).join(", ");
}

function fillCard(button, ev, images) {
  const snow = ev.images?.snow;
  const plate = plateKinds(ev)[0];
  let shot;
  if (snow) shot = image(images, snow, "", "snow");
  else if (PENDING.has(ev.state)) shot = h("div", { class: "snow placeholder" }, "processing…");
  else shot = h("div", { class: "snow placeholder" }, ev.state === "failed" ? "no snow photo" : "no image");
  button.setAttribute("aria-label", cardLabel(ev));
  button.replaceChildren(
    h("div", { class: "shots" }, shot, plate ? image(images, ev.images[plate], "", "plate") : ""),
    h("div", { class: "meta" },
      h("strong", {}, ev.camera), " ",
      h("span", { class: `state ${ev.state}` }, ev.state),
      h("div", { class: "muted" }, formatTime(ev.ts)),
      ev.plate ? h("div", {}, "Plate ", h("span", { class: "plate-text" }, ev.plate)) : "",
      ev.state === "failed" && ev.error ? h("div", { class: "bad" }, ev.error.message || ev.error.code) : ""));
}

function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(([, v]) => v !== null && v !== undefined && v !== "")
    .flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function detailContent(ev, images, api, notifyError) {
  const res = ev.result || {};
  const snowInfo = res.snow;
  const title = `Event on ${ev.camera} at ${formatTime(ev.ts)}`;
  const took = ev.finished_at && ev.received_at ? ev.finished_at - ev.received_at : null;
  const extra = Object.entries(ev.extra || {}).map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`).join(", ");
  const parts = [
    h("h2", { id: "event-detail-title" }, title),
    facts([
      ["State", h("span", { class: `state ${ev.state}` }, ev.state)],
      ["Event time", formatTime(ev.ts)],
      ["Received", formatTime(ev.received_at)],
      ["Processed in", took !== null && !PENDING.has(ev.state) ? seconds(took) : null],
      ["Plate (from camera)", ev.plate],
      ["Vehicle box", ev.vehicle_box ? ev.vehicle_box.join(", ") : null],
      ["Plate box", ev.plate_box ? ev.plate_box.join(", ") : null],
      ["Other fields", extra],
      ["Event id", h("code", {}, ev.id)],
    ]),
  ];
  if (PENDING.has(ev.state)) parts.push(h("p", { class: "muted", role: "status" }, "Processing… this updates when it finishes."));
  if (ev.error) parts.push(h("p", { class: "bad", role: "alert" }, `Failed: ${ev.error.message || ""} [${ev.error.code}]`));

  if (ev.images?.snow) {
    const caption = snowInfo?.upload
      ? `No buffered frame: the sharpest uploaded image (${snowInfo.upload}), sharpness ${snowInfo.score}.`
      : snowInfo ? `Sharpest of ${(res.candidates || []).filter((c) => !c.missing).length} buffered frames: `
                   + `${snowInfo.offset} s before the event (${clock(snowInfo.ts)}), sharpness ${snowInfo.score}.` : "";
    parts.push(h("section", {},
      h("h3", {}, "Snow photo (chosen frame)"),
      h("figure", { class: "chosen" }, image(images, ev.images.snow, `Snow photo: ${title}`, "snow-large"),
        h("figcaption", { class: "muted" }, caption)),
      h("button", { type: "button", class: "secondary",
        onclick: () => api.download(ev.images.snow, `${ev.id}-snow.jpg`).catch((e) => notifyError(e, "Download failed: ")) },
        "Download snow photo")));
  }

  if (res.candidates?.length) {
    const best = snowInfo?.candidate;
    parts.push(h("section", {}, h("h3", {}, "Candidate frames"),
      h("p", { class: "muted" }, `Sharpness is the variance of the Laplacian over ${res.roi ? "the plate or vehicle box" : "the whole frame"}; the highest wins.`),
      h("div", { class: "table-wrap" }, h("table", { class: "candidates" },
        h("thead", {}, h("tr", {}, ["Before event", "Frame time", "Sharpness", "Frame"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, res.candidates.map((c) => h("tr", { class: c.image && c.image === best ? "chosen" : "", dataset: { offset: String(c.offset) } },
          h("th", { scope: "row" }, `${c.offset} s`, c.image && c.image === best ? h("span", { class: "ok" }, " ✓ chosen") : ""),
          h("td", {}, c.missing ? h("span", { class: "warn" }, "no frame buffered") : clock(c.ts)),
          h("td", { class: "score" }, c.missing ? "–" : String(c.score)),
          h("td", {}, c.image && ev.images?.[c.image]
            ? image(images, ev.images[c.image], `Candidate ${c.offset} s before the event`, "candidate") : "–"))))))));
  }

  const clipSection = clipContent(ev, images, api, notifyError);
  if (clipSection) parts.push(clipSection);

  const plates = plateKinds(ev);
  if (ev.state === "succeeded" || plates.length) {
    const info = Object.fromEntries((res.plates || []).map((p) => [p.image, p]));
    parts.push(h("section", {}, h("h3", {}, "Plate crops"),
      plates.length ? h("div", { class: "plates" }, plates.map((k, i) => h("figure", {},
        image(images, ev.images[k], `Plate crop ${i + 1}`, "plate-large"),
        h("figcaption", { class: "muted" }, info[k] ? `from ${info[k].source === "snow" ? "the snow photo" : info[k].source}, box ${info[k].box.join(", ")}` : k))))
        : h("p", { class: "muted" }, "No plate found.")));
  }

  const uploads = Object.entries(ev.uploads || {});
  if (uploads.length) {
    parts.push(h("section", {}, h("h3", {}, "Images sent by the camera"),
      h("div", { class: "plates" }, uploads.map(([k, u]) => h("figure", {},
        ev.images?.[k] ? image(images, ev.images[k], `Uploaded image ${k}`, "upload") : "",
        h("figcaption", { class: "muted" }, `${k}${u.width ? ` · ${u.width}×${u.height}` : ""}`))))));
  }
  return parts;
}

// The buffered seconds around the event as a video (fetched with the key like the
// images: a few MB at most, then played from memory).
function clipContent(ev, images, api, notifyError) {
  const clip = ev.result?.clip;
  if (!clip) return null;
  if (!ev.links?.clip) {
    return h("section", {}, h("h3", {}, "Clip"), h("p", { class: "muted" }, `No clip: ${clip.reason || clip.state}.`));
  }
  const video = h("video", { class: "clip", controls: true, muted: true, playsinline: true, preload: "auto",
    "aria-label": `Clip of the event on ${ev.camera}` });
  video.muted = true;
  images.url(ev.links.clip).then((u) => { video.src = u; }, (err) => {
    if (isAbort(err)) return;
    video.replaceWith(h("p", { class: "bad" }, `clip unavailable: ${errorText(err)}`));
  });
  const from = ev.ts - clip.start_ts, to = clip.end_ts - ev.ts;
  const how = clip.mode === "copy" ? "the camera's own stream, not re-encoded" : "buffered frames encoded as H.264";
  return h("section", {},
    h("h3", {}, "Clip"),
    h("figure", { class: "clip" }, video,
      h("figcaption", { class: "muted" },
        `${seconds(clip.seconds)} from ${from.toFixed(1)} s before the event to ${to.toFixed(1)} s after; `
        + `${clip.frames} frames, ${clip.width}×${clip.height}, from ${how}.`)),
    h("button", { type: "button", class: "secondary",
      onclick: () => api.download(ev.links.clip, `${ev.camera}-${ev.id}.mp4`).catch((e) => notifyError(e, "Download failed: ")) },
      "Download clip"));
}

// ---------------------------------------------------------------- the page

export function mount(root, { api, notifyError }) {
  const ctrl = new AbortController();
  const signal = ctrl.signal;
  const images = new Images(api, signal);
  let filters = readHash();
  let stopped = false;
  let timer = null;
  let detailTimer = null;
  let seq = 0;
  let cameraIds = [];
  let listed = [];               // events on screen
  let total = 0;
  let detail = null;             // { id, ev, opener }
  const cameraCards = new Map(); // id -> { el, update }
  const eventItems = new Map();  // id -> { li, button, sig }

  // -- cameras section
  const camStatus = h("p", { class: "muted", id: "cameras-status" }, "loading…");
  const backlog = h("p", { class: "muted", id: "cameras-backlog" });
  const camGrid = h("div", { class: "camera-grid", id: "camera-list" });
  const noCameras = h("p", { class: "muted", hidden: true }, "No cameras configured. An operator lists them in KADR_CAMERAS.");
  const camSection = h("section", { "aria-labelledby": "cameras-h" },
    h("div", { class: "section-head" }, h("h2", { id: "cameras-h" }, "Buffers"), camStatus), backlog, noCameras, camGrid);

  // -- filters
  const camSelect = h("select", { id: "filter-camera", name: "camera" }, h("option", { value: "" }, "All cameras"));
  const fromInput = h("input", { id: "filter-since", name: "since", type: "datetime-local", step: "1" });
  const toInput = h("input", { id: "filter-until", name: "until", type: "datetime-local", step: "1" });
  const clearBtn = h("button", { type: "button", class: "secondary", id: "filter-clear" }, "Clear filters");
  const filterError = h("p", { class: "bad", role: "alert", hidden: true });
  const filterForm = h("form", { class: "filters", role: "search", "aria-label": "Filter events" },
    h("div", { class: "field" }, h("label", { for: "filter-camera" }, "Camera"), camSelect),
    h("div", { class: "field" }, h("label", { for: "filter-since" }, "From"), fromInput),
    h("div", { class: "field" }, h("label", { for: "filter-until" }, "To"), toInput),
    h("div", { class: "field actions" }, clearBtn));

  // -- events
  const summary = h("p", { class: "muted", id: "events-summary", "aria-live": "polite" }, "loading…");
  const listError = h("p", { class: "bad", id: "events-error", hidden: true });
  const eventList = h("ul", { class: "event-grid", id: "event-list", "aria-label": "Events, newest first" });
  const empty = h("div", { class: "empty card", id: "events-empty", hidden: true });
  const newer = h("button", { type: "button", class: "secondary", id: "events-newer" }, "← Newer");
  const older = h("button", { type: "button", class: "secondary", id: "events-older" }, "Older →");
  const pager = h("nav", { class: "pager row", "aria-label": "Event pages" }, newer, older);
  const eventsSection = h("section", { "aria-labelledby": "events-h" },
    h("div", { class: "section-head" }, h("h2", { id: "events-h" }, "Events"), summary),
    filterForm, filterError, listError, empty, eventList, pager);

  // -- detail dialog
  const dialogBody = h("div", { class: "detail-body" });
  const closeBtn = h("button", { type: "button", class: "secondary close", "aria-label": "Close event" }, "Close");
  const dialog = h("dialog", { class: "event-detail", id: "event-detail", "aria-labelledby": "event-detail-title" },
    h("div", { class: "detail-bar" }, closeBtn), dialogBody);

  const page = h("div", { class: "cameras-page" }, h("h1", {}, "Cameras"), camSection, eventsSection, dialog);
  root.append(page);

  // ------------------------------------------------------------ cameras

  function showCameraEvents(id) {
    setFilters({ camera: id });
    camSelect.focus();
  }

  function syncCameraOptions() {
    const wanted = [...cameraIds];
    if (filters.camera && !wanted.includes(filters.camera)) wanted.push(filters.camera);
    const have = [...camSelect.options].slice(1).map((o) => o.value);
    if (have.join("\n") !== wanted.join("\n")) {
      camSelect.replaceChildren(h("option", { value: "" }, "All cameras"),
        ...wanted.map((id) => h("option", { value: id }, cameraIds.includes(id) ? id : `${id} (not configured)`)));
    }
    camSelect.value = filters.camera;
  }

  async function loadCameras() {
    try {
      const data = await api.get("/api/v1/cameras", { signal });
      if (stopped) return;
      cameraIds = data.cameras.map((c) => c.id);
      for (const id of [...cameraCards.keys()]) {
        if (!cameraIds.includes(id)) { cameraCards.get(id).el.remove(); cameraCards.delete(id); }
      }
      data.cameras.forEach((c, i) => {
        let card = cameraCards.get(c.id);
        if (!card) { card = cameraCard(c, showCameraEvents); cameraCards.set(c.id, card); }
        card.update(c);
        if (camGrid.children[i] !== card.el) camGrid.insertBefore(card.el, camGrid.children[i] || null);
      });
      noCameras.hidden = data.cameras.length > 0;
      const full = data.backlog / (data.max_backlog || 1);
      backlog.textContent = `Events waiting for the camera worker: ${data.backlog} (the webhook answers 503 past ${data.max_backlog}).`;
      backlog.className = full >= 1 ? "bad" : full >= 0.8 ? "warn" : "muted";
      camStatus.textContent = `updated ${new Date().toLocaleTimeString()}`;
      camStatus.className = "muted";
      syncCameraOptions();
    } catch (err) {
      if (signal.aborted) return;
      camStatus.textContent = `could not refresh: ${errorText(err)}`;
      camStatus.className = "bad";
    }
  }

  // ------------------------------------------------------------ events list

  function query() {
    return {
      camera: filters.camera || undefined,
      since: filters.since ?? undefined,
      // The To field names a whole second: include all of it.
      until: filters.until !== null ? filters.until + 0.999 : undefined,
      offset: filters.offset,
      limit: PAGE_SIZE,
    };
  }

  function filtersInvalid() {
    return filters.since !== null && filters.until !== null && filters.since > filters.until
      ? "“From” is after “To”: no event can match." : "";
  }

  function inUse() {
    const paths = new Set();
    for (const ev of listed) {
      if (ev.images?.snow) paths.add(ev.images.snow);
      const p = plateKinds(ev)[0];
      if (p) paths.add(ev.images[p]);
    }
    if (detail?.ev) for (const p of [...Object.values(detail.ev.images || {}), detail.ev.links?.clip]) if (p) paths.add(p);
    return paths;
  }

  function renderEvents() {
    const hasFilter = !!(filters.camera || filters.since !== null || filters.until !== null);
    const keep = new Set(listed.map((e) => e.id));
    for (const [id, item] of eventItems) if (!keep.has(id)) { item.li.remove(); eventItems.delete(id); }
    listed.forEach((ev, i) => {
      let item = eventItems.get(ev.id);
      if (!item) {
        const button = h("button", { type: "button", class: "event-card", "aria-haspopup": "dialog" });
        button.addEventListener("click", () => openDetail(ev.id, button));
        item = { li: h("li", { dataset: { event: ev.id } }, button), button, sig: "" };
        eventItems.set(ev.id, item);
      }
      item.li.dataset.state = ev.state;
      item.li.dataset.camera = ev.camera;
      const sig = eventSignature(ev);
      if (sig !== item.sig) { fillCard(item.button, ev, images); item.sig = sig; }
      // Move only what is out of place: moving a focused card would drop its focus.
      if (eventList.children[i] !== item.li) eventList.insertBefore(item.li, eventList.children[i] || null);
    });
    const text = listed.length
      ? `${filters.offset + 1}–${filters.offset + listed.length} of ${total}${hasFilter ? " matching" : ""}, newest first`
      : total ? `nothing on this page (${total} in all)` : "none";
    if (summary.textContent !== text) summary.textContent = text;  // a live region: only real changes
    empty.hidden = listed.length > 0;
    // Rebuilt only when its message changes, so a focused button in it keeps focus.
    const emptyKey = listed.length ? "" : `${hasFilter}|${total}|${filters.offset}`;
    if (emptyKey && emptyKey !== empty.dataset.key) {
      empty.replaceChildren(
        h("p", {}, total ? "Nothing on this page." : hasFilter ? "No events match these filters." : "No events yet."),
        hasFilter ? h("button", { type: "button", class: "secondary", onclick: () => setFilters({ camera: "", since: null, until: null }) }, "Show all events")
                  : h("p", { class: "muted" }, "Cameras post events to /api/v1/camera/{camera}/events; they appear here within seconds."));
      if (total && filters.offset) {
        empty.append(h("button", { type: "button", class: "secondary", onclick: () => setFilters({ offset: 0 }, false) }, "Back to the newest"));
      }
    }
    empty.dataset.key = emptyKey;
    newer.disabled = filters.offset <= 0;
    older.disabled = filters.offset + listed.length >= total;
    pager.hidden = total <= PAGE_SIZE && filters.offset === 0;
    images.keepOnly(inUse());
  }

  async function loadEvents() {
    const mine = ++seq;
    const unknown = filters.camera && cameraIds.length && !cameraIds.includes(filters.camera)
      ? `No camera “${filters.camera}” is configured.` : "";
    const invalid = filtersInvalid() || unknown;
    // Rewritten only when it changes: an alert re-announces whatever is written to it.
    if (filterError.textContent !== invalid) filterError.textContent = invalid;
    filterError.hidden = !invalid;
    if (invalid) {
      listed = []; total = 0;
      renderEvents();
      return;
    }
    try {
      const data = await api.get("/api/v1/camera/events", { query: query(), signal });
      if (stopped || mine !== seq) return;  // the filters changed meanwhile
      listed = data.events;
      total = data.total;
      listError.hidden = true;
      renderEvents();
      if (detail) {
        const fresh = listed.find((e) => e.id === detail.id);
        if (fresh && detail.ev && eventSignature(fresh) !== eventSignature(detail.ev)) showDetail(fresh);
      }
    } catch (err) {
      if (signal.aborted || mine !== seq) return;
      if (err.status >= 400 && err.status < 500) {
        // The query itself is refused: what is on screen answers other filters.
        listed = []; total = 0;
        renderEvents();
      }
      listError.textContent = `Could not load events: ${errorText(err)}`;
      listError.hidden = false;
      if (err.status === 404 && filters.camera) {
        listError.textContent = `No camera “${filters.camera}” is configured.`;
      }
    }
  }

  function setFilters(change, resetOffset = true) {
    filters = { ...filters, ...change };
    if (resetOffset && !("offset" in change)) filters.offset = 0;
    writeHash(filters);
    syncInputs();
    summary.textContent = "loading…";
    loadEvents();
  }

  function syncInputs() {
    syncCameraOptions();
    fromInput.value = filters.since !== null ? toLocalInput(filters.since) : "";
    toInput.value = filters.until !== null ? toLocalInput(filters.until) : "";
  }

  camSelect.addEventListener("change", () => setFilters({ camera: camSelect.value }));
  fromInput.addEventListener("change", () => setFilters({ since: fromLocalInput(fromInput.value) }));
  toInput.addEventListener("change", () => setFilters({ until: fromLocalInput(toInput.value) }));
  clearBtn.addEventListener("click", () => setFilters({ camera: "", since: null, until: null }));
  filterForm.addEventListener("submit", (e) => e.preventDefault());
  newer.addEventListener("click", () => setFilters({ offset: Math.max(0, filters.offset - PAGE_SIZE) }));
  older.addEventListener("click", () => setFilters({ offset: filters.offset + PAGE_SIZE }));

  // ------------------------------------------------------------ detail

  function showDetail(ev) {
    detail.ev = ev;
    const scroll = dialog.scrollTop;
    dialogBody.replaceChildren(...detailContent(ev, images, api, notifyError));
    dialog.scrollTop = scroll;
    dialog.dataset.state = ev.state;
    clearTimeout(detailTimer);
    if (PENDING.has(ev.state)) detailTimer = setTimeout(pollDetail, PENDING_MS);
  }

  async function pollDetail() {
    if (!detail || stopped) return;
    const id = detail.id;
    try {
      const ev = await api.get(`/api/v1/camera/events/${encodeURIComponent(id)}`, { signal });
      if (!detail || detail.id !== id || stopped) return;
      if (!detail.ev || eventSignature(ev) !== eventSignature(detail.ev)) showDetail(ev);
      else detailTimer = setTimeout(pollDetail, PENDING_MS);
    } catch (err) {
      if (signal.aborted || !detail || detail.id !== id) return;
      dialogBody.replaceChildren(h("h2", { id: "event-detail-title" }, "Event"),
        h("p", { class: "bad", role: "alert" }, `Could not load the event: ${errorText(err)}`));
    }
  }

  function openDetail(id, opener = null) {
    clearTimeout(detailTimer);
    detail = { id, ev: null, opener };
    filters = { ...filters, event: id };
    writeHash(filters);
    dialogBody.replaceChildren(h("h2", { id: "event-detail-title" }, "Event"), h("p", { class: "muted" }, "loading…"));
    delete dialog.dataset.state;
    if (!dialog.open) dialog.showModal();
    pollDetail();
  }

  dialog.addEventListener("close", () => {
    const opener = detail?.opener;
    clearTimeout(detailTimer);
    detail = null;
    dialogBody.replaceChildren();
    if (stopped) return;
    filters = { ...filters, event: "" };
    writeHash(filters);
    images.keepOnly(inUse());
    // The card may have been rebuilt meanwhile: find it again by id.
    const target = opener?.isConnected ? opener : null;
    target?.focus();
  });
  closeBtn.addEventListener("click", () => dialog.close());
  // A click on the backdrop (outside the dialog's box) closes it, as Escape does.
  dialog.addEventListener("click", (e) => {
    if (e.target !== dialog) return;
    const r = dialog.getBoundingClientRect();
    if (e.clientX < r.left || e.clientX > r.right || e.clientY < r.top || e.clientY > r.bottom) dialog.close();
  });

  // ------------------------------------------------------------ refresh loop

  async function tick() {
    timer = null;
    if (!document.hidden) await Promise.all([loadCameras(), loadEvents()]);
    if (stopped) return;
    timer = setTimeout(tick, listed.some((e) => PENDING.has(e.state)) ? PENDING_MS : REFRESH_MS);
  }

  function onVisible() {
    if (!document.hidden && timer !== null && !stopped) { clearTimeout(timer); tick(); }
  }
  document.addEventListener("visibilitychange", onVisible);

  syncInputs();
  tick();
  if (filters.event) openDetail(filters.event);

  return () => {
    stopped = true;
    clearTimeout(timer);
    clearTimeout(detailTimer);
    document.removeEventListener("visibilitychange", onVisible);
    ctrl.abort();
    if (dialog.open) dialog.close();
    // Out of the DOM first: an <img> must not outlive its revoked object URL.
    page.remove();
    images.keepOnly(new Set());
  };
}
