// What the event detail shows: the event's facts, the chosen snow photo with why it won,
// every candidate frame with its sharpness score, the clip of the buffered seconds, the
// plate crops and the images the camera sent.

import { errorText, formatTime, h } from "../dom.js";
import { PENDING, clock, isAbort, plateKinds, seconds } from "./format.js";

function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(([, v]) => v !== null && v !== undefined && v !== "")
    .flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

// ``onDownload(path, filename)`` saves a file behind the key.
export function detailContent(ev, images, onDownload) {
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
      h("figure", { class: "chosen" }, images.image(ev.images.snow, `Snow photo: ${title}`, "snow-large"),
        h("figcaption", { class: "muted" }, caption)),
      h("button", { type: "button", class: "secondary", onclick: () => onDownload(ev.images.snow, `${ev.id}-snow.jpg`) },
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
            ? images.image(ev.images[c.image], `Candidate ${c.offset} s before the event`, "candidate") : "–"))))))));
  }

  const clipSection = clipContent(ev, images, onDownload);
  if (clipSection) parts.push(clipSection);

  const plates = plateKinds(ev);
  if (ev.state === "succeeded" || plates.length) {
    const info = Object.fromEntries((res.plates || []).map((p) => [p.image, p]));
    parts.push(h("section", {}, h("h3", {}, "Plate crops"),
      plates.length ? h("div", { class: "plates" }, plates.map((k, i) => h("figure", {},
        images.image(ev.images[k], `Plate crop ${i + 1}`, "plate-large"),
        h("figcaption", { class: "muted" }, info[k] ? `from ${info[k].source === "snow" ? "the snow photo" : info[k].source}, box ${info[k].box.join(", ")}` : k))))
        : h("p", { class: "muted" }, "No plate found.")));
  }

  const uploads = Object.entries(ev.uploads || {});
  if (uploads.length) {
    parts.push(h("section", {}, h("h3", {}, "Images sent by the camera"),
      h("div", { class: "plates" }, uploads.map(([k, u]) => h("figure", {},
        ev.images?.[k] ? images.image(ev.images[k], `Uploaded image ${k}`, "upload") : "",
        h("figcaption", { class: "muted" }, `${k}${u.width ? ` · ${u.width}×${u.height}` : ""}`))))));
  }
  return parts;
}

// The buffered seconds around the event as a video (fetched with the key like the
// images: a few MB at most, then played from memory).
function clipContent(ev, images, onDownload) {
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
    h("button", { type: "button", class: "secondary", onclick: () => onDownload(ev.links.clip, `${ev.camera}-${ev.id}.mp4`) },
      "Download clip"));
}
