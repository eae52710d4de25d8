// The Video page and the server: the options and the key's recent videos, the upload,
// opening a video (its id goes into the hash, so a reload or a shared link comes back to
// it), polling it until it and its result sets settle (backing off while nothing moves),
// another stabilization method, the shown set's metrics, delete and the overlay download.

import { errorText } from "../dom.js";
import { isAbort, setLabel } from "./format.js";

const RECENT_MAX = 10;
const POLL_MIN_MS = 500;
const POLL_MAX_MS = 5000;

// nginx answers an oversized body with its own HTML page, not the API's JSON.
const rejectionText = (err, name) => (err.code === "http_413" ? `${name} is larger than the server accepts.` : errorText(err));
const progressKey = (v) => JSON.stringify([v.state, v.progress, v.results.map((r) => [r.id, r.state, r.progress])]);

export class VideoSync {
  constructor(state, { api, notify, notifyError }, signal) {
    Object.assign(this, { state, api, notify, notifyError, signal });
    this.pollTimer = null;
    this.pollDelay = POLL_MIN_MS;
    this.pollSeq = 0;
    this.uploadCtrl = null;
    this.metricsCache = new Map();  // result set id -> metrics document
  }

  alive() { return !this.signal.aborted; }
  destroy() { clearTimeout(this.pollTimer); }

  loadOptions() {
    this.api.get("/api/v1/segment/classes", { signal: this.signal }).then((o) => this.alive() && this.state.setOptions(o),
      (err) => {
        if (this.alive()) this.state.setUpload({ uploadError: `Could not load the segmentation options: ${errorText(err)}` });
      });
  }

  async loadRecent() {
    let list = [];
    try {
      list = (await this.api.get("/api/v1/videos", { query: { limit: RECENT_MAX }, signal: this.signal })).videos
        .map((v) => ({ id: v.id, name: v.input?.name, at: v.created_at * 1000 }));
    } catch (err) {
      if (!this.alive() || isAbort(err)) return;
    }
    if (this.alive()) this.state.setRecent(list);
  }

  // ``form``: the request's fields; ``method``: run once segmentation ends (or null).
  async upload(file, form, method) {
    const state = this.state;
    const ctrl = this.uploadCtrl = new AbortController();
    const stop = () => ctrl.abort();
    this.signal.addEventListener("abort", stop, { once: true });
    const upload = { name: file.name, size: file.size, fraction: null, done: false };
    state.setUpload({ uploading: true, uploadError: "", upload });
    try {
      const v = await this.api.upload("/api/v1/videos", form, {
        signal: ctrl.signal,
        onProgress: (f) => state.setUpload({ upload: { ...upload, fraction: f } }),
      });
      if (!this.alive()) return;
      state.setUpload({ upload: { ...upload, fraction: 1, done: true } });
      state.pendingMethod = method;
      history.replaceState(null, "", `#/video/${v.id}`);
      this.showVideo(v);
    } catch (err) {
      if (!this.alive()) return;
      state.setUpload({ upload: null, uploadError: isAbort(err) ? "Upload canceled."
        : `The server refused ${file.name}: ${rejectionText(err, file.name)}` });
    } finally {
      this.signal.removeEventListener("abort", stop);
      this.uploadCtrl = null;
      if (this.alive()) state.setUpload({ uploading: false });
    }
  }

  cancelUpload() { this.uploadCtrl?.abort(); }

  async openById(id) {
    try {
      const v = await this.api.get(`/api/v1/videos/${encodeURIComponent(id)}`, { signal: this.signal });
      if (!this.alive()) return;
      history.replaceState(null, "", `#/video/${v.id}`);
      this.state.pendingMethod = null;
      this.showVideo(v);
    } catch (err) {
      if (!this.alive() || isAbort(err)) return;
      if (err.status === 404) {
        this.loadRecent();
        this.notify("That video no longer exists (deleted, or it belongs to another key).", "error");
      } else {
        this.notifyError(err, "Could not open the video: ");
      }
    }
  }

  showVideo(v) {
    clearTimeout(this.pollTimer);
    this.pollSeq++;
    this.metricsCache.clear();
    this.state.open(v);
    this.loadRecent();
    this.applyVideo(v);
    this.pollDelay = POLL_MIN_MS;
    if (!this.state.settled(v)) this.schedulePoll(POLL_MIN_MS);
  }

  schedulePoll(ms) {
    clearTimeout(this.pollTimer);
    this.pollTimer = setTimeout(() => this.poll(), ms);
  }

  async poll() {
    const state = this.state;
    if (!state.video || !this.alive()) return;
    const seq = ++this.pollSeq;
    const before = progressKey(state.video);
    try {
      const v = await this.api.get(`/api/v1/videos/${state.video.id}`, { signal: this.signal });
      if (!this.alive() || seq !== this.pollSeq || v.id !== state.video?.id) return;
      if (state.video.state !== "failed") state.statusError = "";
      const after = progressKey(v);
      this.applyVideo(v);
      // Back off while nothing moves; answer quickly again once it does.
      this.pollDelay = after !== before ? POLL_MIN_MS : Math.min(POLL_MAX_MS, this.pollDelay * 1.6);
      if (!state.settled(v) || state.awaiting.size) this.schedulePoll(this.pollDelay);
    } catch (err) {
      if (!this.alive() || isAbort(err) || seq !== this.pollSeq) return;
      if (err.status === 404) { state.setStatusError("This video was deleted."); return; }
      state.setStatusError(`Lost contact with the server (${errorText(err)}); retrying…`);
      this.pollDelay = Math.min(15000, this.pollDelay * 2);
      this.schedulePoll(this.pollDelay);
    }
  }

  applyVideo(v) {
    const state = this.state;
    if (v.state === "failed") state.statusError = `Segmentation failed: ${errorText(v.error)}`;
    state.setVideo(v);
    if (v.state === "succeeded") {
      if (!state.viewerReady && v.result?.frames) state.setupViewer();
      if (state.pendingMethod) {
        const m = state.pendingMethod;
        state.pendingMethod = null;
        this.runMethod(m);
      }
    }
    for (const r of state.video.results) {
      if (!state.awaiting.has(r.id) || !["succeeded", "failed", "canceled"].includes(r.state)) continue;
      state.awaiting.delete(r.id);
      if (r.state === "succeeded") {
        this.showResult(r.id);
        this.notify(`${setLabel(r)}: ready.`, "info");
      } else {
        state.setTry({ tryError: `${setLabel(r)} ${r.state}: ${errorText(r.error)}` });
      }
    }
    const done = state.video.results.filter((r) => r.state === "succeeded");
    // Until the method chosen at upload is ready, the raw masks are worth a look.
    if (!state.shownRid && done.length && v.state === "succeeded") this.showResult(done[done.length - 1].id);
  }

  // Another method on the stored probabilities: a new result set, shown once it succeeds.
  async runMethod(m) {
    const state = this.state;
    state.setTry({ tryError: "" });
    if (!state.video) return;
    const vid = state.video.id;
    state.setTry({ requesting: true });
    try {
      const r = await this.api.post(`/api/v1/videos/${vid}/stabilize`, m, { signal: this.signal });
      if (!this.alive() || state.video?.id !== vid) return;
      state.addResult(r);
      this.pollDelay = POLL_MIN_MS;
      this.schedulePoll(POLL_MIN_MS);
    } catch (err) {
      if (!this.alive() || isAbort(err)) return;
      state.setTry({ tryError: `Could not run ${m.method}: ${errorText(err)}` });
    } finally {
      if (this.alive()) state.setTry({ requesting: false });
    }
  }

  showResult(rid) {
    if (!this.state.video) return;
    this.state.show(rid);
    this.loadMetrics(rid);
  }

  async loadMetrics(rid) {
    const state = this.state;
    let m = this.metricsCache.get(rid);
    if (!m) {
      try {
        m = await this.api.get(`/api/v1/videos/${state.video.id}/metrics`, { query: { result: rid }, signal: this.signal });
      } catch (err) {
        if (!this.alive() || isAbort(err)) return;
        if (rid === state.shownRid) state.setMetrics(state.metrics, `Could not load the metrics: ${errorText(err)}`);
        return;
      }
      if (!this.alive()) return;
      this.metricsCache.set(rid, m);
    }
    if (rid === state.shownRid) state.setMetrics(m);
  }

  async deleteVideo(v) {
    try {
      await this.api.del(`/api/v1/videos/${v.id}`, { signal: this.signal });
      this.notify(`Deleted ${v.input?.name || v.id}.`, "info");
      // The bare route mounts a fresh page.
      location.hash = "#/video";
    } catch (err) {
      if (this.alive() && !isAbort(err)) this.notifyError(err, "Could not delete the video: ");
    }
  }

  async downloadOverlay(r) {
    const v = this.state.video;
    try {
      const base = (v.input?.name || "video").replace(/\.[^.]+$/, "");
      await this.api.download(`/api/v1/videos/${v.id}/overlay.mp4?result=${encodeURIComponent(r.id)}`,
        `${base}-overlay-${r.method}.mp4`, { signal: this.signal });
    } catch (err) {
      if (this.alive() && !isAbort(err)) this.notifyError(err, "Could not download the overlay: ");
    }
  }
}
