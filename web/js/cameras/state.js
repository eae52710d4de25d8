// The Cameras page's state: the filters (mirrored in the hash), the cameras with their
// buffer health, the page of events shown, and the event open in the detail. The methods
// change it and emit a topic; the components (buffers_card, filters_form, event_list,
// event_detail) render from it:
//   "cameras"  the cameras and the webhook backlog, or why they could not be refreshed
//   "filters"  the filters changed (a new page of events is on its way)
//   "events"   the page of events, its total, and what is wrong with the query if anything
//   "detail"   the event in the detail opened, loaded, changed, failed to load or closed

import { Store } from "../store.js";
import { plateKinds } from "./format.js";
import { readHash, writeHash } from "./hash.js";

export class CamerasState extends Store {
  constructor() {
    super();
    this.filters = readHash();
    this.cameras = null;        // GET /api/v1/cameras: {cameras, backlog, max_backlog}
    this.cameraIds = [];
    this.camerasError = null;
    this.camerasAt = 0;         // when the cameras were last refreshed
    this.listed = [];           // the events on screen
    this.total = 0;
    this.listError = "";
    this.filterError = "";      // the filters cannot match (From after To, an unknown camera)
    this.detail = null;         // {id, ev, opener, error}
  }

  setCameras(data) {
    this.cameras = data;
    this.cameraIds = data.cameras.map((c) => c.id);
    this.camerasError = null;
    this.camerasAt = Date.now();
    this.emit("cameras");
  }

  setCamerasError(err) { this.camerasError = err; this.emit("cameras"); }

  // ``resetOffset``: a new query starts at the newest (paging passes its own offset).
  setFilters(change, resetOffset = true) {
    this.filters = { ...this.filters, ...change };
    if (resetOffset && !("offset" in change)) this.filters.offset = 0;
    writeHash(this.filters);
    this.emit("filters");
  }

  // Why the filters cannot match anything, or "".
  invalidFilters() {
    const f = this.filters;
    if (f.since !== null && f.until !== null && f.since > f.until) return "“From” is after “To”: no event can match.";
    return f.camera && this.cameraIds.length && !this.cameraIds.includes(f.camera)
      ? `No camera “${f.camera}” is configured.` : "";
  }

  setEvents(fields) { Object.assign(this, fields); this.emit("events"); }

  openDetail(id, opener) {
    this.detail = { id, ev: null, opener, error: null };
    this.filters = { ...this.filters, event: id };
    writeHash(this.filters);
    this.emit("detail");
  }

  setDetail(ev) { this.detail.ev = ev; this.emit("detail"); }
  setDetailError(err) { this.detail.error = err; this.emit("detail"); }

  // ``keepHash`` false: the page is going away, the hash is the next page's.
  closeDetail(keepHash = true) {
    this.detail = null;
    if (keepHash) {
      this.filters = { ...this.filters, event: "" };
      writeHash(this.filters);
    }
    this.emit("detail");
  }

  // Image paths on screen: the cards' snow photo and first plate crop, the detail's all.
  imagePaths() {
    const paths = new Set();
    for (const ev of this.listed) {
      if (ev.images?.snow) paths.add(ev.images.snow);
      const p = plateKinds(ev)[0];
      if (p) paths.add(ev.images[p]);
    }
    const ev = this.detail?.ev;
    if (ev) for (const p of [...Object.values(ev.images || {}), ev.links?.clip]) if (p) paths.add(p);
    return paths;
  }
}
