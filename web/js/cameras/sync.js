// The Cameras page and the server: the cameras' buffer health and the page of events,
// refreshed every few seconds while the page is visible (faster while an event on screen
// is still being processed), and the open event polled until it is done.

import { errorText } from "../dom.js";
import { PENDING, eventSignature } from "./format.js";

const REFRESH_MS = 4000;
const PENDING_MS = 1500;      // an event is usually done within a second or two
export const PAGE_SIZE = 12;

export class CamerasSync {
  constructor(state, { api }, signal) {
    Object.assign(this, { state, api, signal });
    this.stopped = false;
    this.timer = null;
    this.detailTimer = null;
    this.seq = 0;
  }

  destroy() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.detailTimer);
  }

  async loadCameras() {
    try {
      const data = await this.api.get("/api/v1/cameras", { signal: this.signal });
      if (!this.stopped) this.state.setCameras(data);
    } catch (err) {
      if (!this.signal.aborted) this.state.setCamerasError(err);
    }
  }

  query() {
    const f = this.state.filters;
    return {
      camera: f.camera || undefined,
      since: f.since ?? undefined,
      // The To field names a whole second: include all of it.
      until: f.until !== null ? f.until + 0.999 : undefined,
      offset: f.offset,
      limit: PAGE_SIZE,
    };
  }

  async loadEvents() {
    const state = this.state, mine = ++this.seq;
    const invalid = state.invalidFilters();
    if (invalid) { state.setEvents({ filterError: invalid, listed: [], total: 0 }); return; }
    if (state.filterError) state.setEvents({ filterError: "" });
    try {
      const data = await this.api.get("/api/v1/camera/events", { query: this.query(), signal: this.signal });
      if (this.stopped || mine !== this.seq) return;  // the filters changed meanwhile
      state.setEvents({ listed: data.events, total: data.total, listError: "" });
      const d = state.detail;
      if (d) {
        const fresh = state.listed.find((e) => e.id === d.id);
        if (fresh && d.ev && eventSignature(fresh) !== eventSignature(d.ev)) this.showDetail(fresh);
      }
    } catch (err) {
      if (this.signal.aborted || mine !== this.seq) return;
      // The query itself is refused: what is on screen answers other filters.
      const cleared = err.status >= 400 && err.status < 500 ? { listed: [], total: 0 } : {};
      const camera = state.filters.camera;
      state.setEvents({ ...cleared, listError: err.status === 404 && camera ? `No camera “${camera}” is configured.`
        : `Could not load events: ${errorText(err)}` });
    }
  }

  // The filters changed: a new page of events.
  setFilters(change, resetOffset = true) {
    this.state.setFilters(change, resetOffset);
    this.loadEvents();
  }

  async tick() {
    this.timer = null;
    if (!document.hidden) await Promise.all([this.loadCameras(), this.loadEvents()]);
    if (this.stopped) return;
    this.timer = setTimeout(() => this.tick(), this.state.listed.some((e) => PENDING.has(e.state)) ? PENDING_MS : REFRESH_MS);
  }

  // Back to a visible tab: refresh now rather than at the next tick.
  visible() {
    if (!document.hidden && this.timer !== null && !this.stopped) { clearTimeout(this.timer); this.tick(); }
  }

  openDetail(id, opener = null) {
    clearTimeout(this.detailTimer);
    this.state.openDetail(id, opener);
    this.pollDetail();
  }

  closed() { clearTimeout(this.detailTimer); }

  showDetail(ev) {
    this.state.setDetail(ev);
    clearTimeout(this.detailTimer);
    if (PENDING.has(ev.state)) this.detailTimer = setTimeout(() => this.pollDetail(), PENDING_MS);
  }

  async pollDetail() {
    const state = this.state;
    if (!state.detail || this.stopped) return;
    const id = state.detail.id;
    try {
      const ev = await this.api.get(`/api/v1/camera/events/${encodeURIComponent(id)}`, { signal: this.signal });
      if (!state.detail || state.detail.id !== id || this.stopped) return;
      if (!state.detail.ev || eventSignature(ev) !== eventSignature(state.detail.ev)) this.showDetail(ev);
      else this.detailTimer = setTimeout(() => this.pollDetail(), PENDING_MS);
    } catch (err) {
      if (this.signal.aborted || !state.detail || state.detail.id !== id) return;
      state.setDetailError(err);
    }
  }
}
