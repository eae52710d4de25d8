// The Video page's state: the server's options, the key's recent videos, the chosen file
// and its upload, the open video with its result sets, which set is shown, the frame in
// the viewer and the shown set's metrics. The methods change it and emit a topic; the
// components (upload_form, status_card, results_card, compare_card, viewer_card,
// chart_card) render from it:
//   "options"  the upload form's choices arrived
//   "recent"   the key's recent videos          "upload"  the chosen file, the upload, its error
//   "reset"    another video opened: the viewer and the chart start empty
//   "video"    the video or its result sets      "status"  the video's own error line
//   "shown"    the result set shown              "tried"   the "try another method" form
//   "viewer"   the frames are ready to view      "frame"   the frame shown
//   "metrics"  the shown set's metrics (or why they could not be had)

import { Store } from "../store.js";

export const TERMINAL = new Set(["succeeded", "failed", "canceled"]);

export class VideoState extends Store {
  constructor() {
    super();
    this.options = null;        // GET /api/v1/segment/classes
    this.recent = [];           // [{id, name, at}]
    this.chosen = null;         // the File to upload
    this.upload = null;         // {name, size, fraction (null before the first progress), done}
    this.uploading = false;
    this.uploadError = "";
    this.video = null;          // GET /api/v1/videos/{id}
    this.statusError = "";
    this.shownRid = null;       // the result set in the viewer and the chart
    this.awaiting = new Set();  // sets asked for from this page: each is shown once it succeeds
    this.requesting = false;    // a "try another method" request is on its way
    this.tryError = "";
    this.pendingMethod = null;  // chosen at upload, run once segmentation ends
    this.viewerReady = false;
    this.frame = 0;
    this.lastStep = 1;          // the direction of the last move (frames ahead are fetched that way)
    this.metrics = null;        // the shown set's metrics document
    this.metricsError = null;
  }

  get lastFrame() { return (this.video?.result?.frames || 1) - 1; }
  settled(v = this.video) { return TERMINAL.has(v.state) && v.results.every((r) => TERMINAL.has(r.state)); }

  setOptions(o) { this.options = o; this.emit("options"); }
  setRecent(list) { this.recent = list; this.emit("recent"); }

  choose(file) { this.chosen = file; this.uploadError = ""; this.emit("upload"); }
  setUpload(fields) { Object.assign(this, fields); this.emit("upload"); }

  // Another video: nothing of the last one stays.
  open(v) {
    this.shownRid = null;
    this.awaiting.clear();
    this.viewerReady = false;
    this.frame = 0;
    this.metrics = null;
    this.statusError = "";
    this.video = v;
    this.emit("reset");
  }

  // A poll's answer. A set asked for a moment ago may be missing from an answer already in flight.
  setVideo(v) {
    const known = new Map((this.video?.results || []).map((r) => [r.id, r]));
    for (const r of v.results) known.delete(r.id);
    v.results = [...v.results, ...[...known.values()].filter((r) => this.awaiting.has(r.id))];
    this.video = v;
    this.emit("video");
  }

  setStatusError(text) { this.statusError = text; this.emit("status"); }

  // A result set just asked for.
  addResult(r) {
    this.awaiting.add(r.id);
    if (!this.video.results.some((x) => x.id === r.id)) this.video.results.push(r);
    this.emit("video");
  }

  setTry(fields) { Object.assign(this, fields); this.emit("tried"); }

  show(rid) { this.shownRid = rid; this.emit("shown"); }

  setupViewer() { this.viewerReady = true; this.frame = 0; this.emit("viewer"); this.setFrame(0); }

  setFrame(n) {
    n = Math.max(0, Math.min(this.lastFrame, n));
    if (n !== this.frame) this.lastStep = n > this.frame ? 1 : -1;
    this.frame = n;
    this.emit("frame");
  }

  setMetrics(m, error = null) { this.metrics = m; this.metricsError = error; this.emit("metrics"); }
}
