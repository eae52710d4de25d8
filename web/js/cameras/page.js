// Cameras: each camera's pre-event buffer health (GET /api/v1/cameras) and its events
// (GET /api/v1/camera/events), newest first, with the snow photo and plate crops; an
// event opens in a dialog with the chosen frame, every candidate's sharpness score, the
// clip and the plate crops. Both lists refresh while the page is open. The filters live
// in the hash query (#/cameras?camera=gate&since=…&until=…&offset=…&event=…) so a reload
// or a shared link shows the same thing.
//
// The parts: state.js (filters, cameras, events, the open event; emitting topics),
// sync.js (the server and the refresh loop), and the components buffers_card
// (camera_card), filters_form, event_list and event_detail (detail_content), each
// rendering from the state.

import { h } from "../dom.js";
import { buffersCard } from "./buffers_card.js";
import { eventDetail } from "./event_detail.js";
import { eventList } from "./event_list.js";
import { filtersForm } from "./filters_form.js";
import { Images } from "./images.js";
import { CamerasState } from "./state.js";
import { CamerasSync } from "./sync.js";

export function mount(root, ctx) {
  const { api, notifyError } = ctx;
  const ctrl = new AbortController();
  const state = new CamerasState();
  const sync = new CamerasSync(state, ctx, ctrl.signal);
  const images = new Images(api, ctrl.signal);
  const setFilters = (change, resetOffset) => sync.setFilters(change, resetOffset);

  const filters = filtersForm(state, { onChange: setFilters });
  const buffers = buffersCard(state, {
    onShowEvents: (id) => { setFilters({ camera: id }); filters.focus(); },
  });
  const events = eventList(state, { filters, images, onOpen: (id, opener) => sync.openDetail(id, opener), onFilters: setFilters });
  const detail = eventDetail(state, {
    images,
    onDownload: (path, filename) => api.download(path, filename).catch((e) => notifyError(e, "Download failed: ")),
    // The dialog closed: false when the page is going away (the hash is the next page's).
    onClosed: () => {
      sync.closed();
      if (sync.stopped) return false;
      state.closeDetail();
      images.keepOnly(state.imagePaths());
      return true;
    },
  });

  const page = h("div", { class: "cameras-page" }, h("h1", {}, "Cameras"), buffers.el, events.el, detail.el);
  root.append(page);

  const onVisible = () => sync.visible();
  document.addEventListener("visibilitychange", onVisible);
  sync.tick();
  if (state.filters.event) sync.openDetail(state.filters.event);

  return () => {
    sync.destroy();
    document.removeEventListener("visibilitychange", onVisible);
    ctrl.abort();
    detail.close();
    // Out of the DOM first: an <img> must not outlive its revoked object URL.
    page.remove();
    images.keepOnly(new Set());
    state.clearSubscribers();
  };
}
