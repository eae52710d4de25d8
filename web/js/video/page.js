// The Video page: upload a clip, follow its segmentation, step through its frames
// (original, raw mask, stabilized mask, overlay), compare the per-frame IoU of raw and
// stabilized masks, and try other stabilization methods on the stored probabilities
// without segmenting again. The open video lives in the hash (#/video/<id>) so a reload
// or a shared link comes back to it; the key's recent videos come from GET /api/v1/videos,
// so they follow the key to any browser.
//
// The parts: state.js (the video, the shown result set, the frame; emitting topics),
// sync.js (the server), and the components upload_form, status_card, results_card,
// compare_card, viewer_card and chart_card, each rendering from the state.

import { h } from "../dom.js";
import { chartCard } from "./chart_card.js";
import { compareCard } from "./compare_card.js";
import { hashVideoId } from "./format.js";
import { resultsCard } from "./results_card.js";
import { VideoState } from "./state.js";
import { statusCard } from "./status_card.js";
import { VideoSync } from "./sync.js";
import { uploadForm } from "./upload_form.js";
import { viewerCard } from "./viewer_card.js";

export function mount(root, ctx) {
  const { api, notify, notifyError } = ctx;
  const ctrl = new AbortController();
  const signal = ctrl.signal;
  const state = new VideoState();
  const sync = new VideoSync(state, ctx, signal);
  const onFrame = (n) => state.setFrame(n);

  const upload = uploadForm(state, {
    onUpload: (file, form, method) => sync.upload(file, form, method),
    onCancel: () => sync.cancelUpload(),
    onOpen: (id) => sync.openById(id),
    notify,
  });
  const status = statusCard(state, { onDelete: (v) => sync.deleteVideo(v) });
  const results = resultsCard(state, {
    onShow: (rid) => sync.showResult(rid),
    onRun: (m) => sync.runMethod(m),
    onDownload: (r) => sync.downloadOverlay(r),
  });
  const compare = compareCard(state, { api, signal, notifyError });
  const viewer = viewerCard(state, { api, signal, onFrame });
  const chart = chartCard(state, { onFrame });

  root.append(h("div", { class: "vid" },
    h("h1", {}, "Video"),
    h("p", { class: "muted" }, "Segment a video frame by frame, then compare stabilization methods on its masks."),
    upload.el, status.el, results.el, compare.el, viewer.el, chart.el));

  sync.loadOptions();
  sync.loadRecent();
  const initial = hashVideoId();
  if (initial) sync.openById(initial);

  return () => {
    ctrl.abort();
    sync.destroy();
    viewer.destroy();
    chart.destroy();
    state.clearSubscribers();
  };
}
