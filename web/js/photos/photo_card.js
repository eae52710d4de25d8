// One photo's card: name, state badge, size and result, one bar (the upload while it
// goes, then the work on the photo, per tile and face), the reason when refused or
// failed, the before/after view once done, and its one action (remove, download, retry).
// Built only while the card is near the viewport (photo_list.js).

import { formatBytes, h } from "../dom.js";
import { ITEM_LABEL, LOCAL_LABEL, badgeClass } from "./records.js";

export function photoCard(e, state, { compare, onRemove, onDownload, onRetry }) {
  const name = h("span", { class: "ph-name" }, e.name);
  const li = h("li", { class: "ph-item", id: `ph-${e.uid}` });
  const badge = h("span", { class: "state" });
  const meta = h("span", { class: "muted ph-meta" });
  const bar = h("progress", { max: "1", value: "0", "aria-label": `Upload of ${e.name}`, hidden: true });
  const msg = h("p", { class: "ph-msg" });
  const slot = h("div", { class: "ph-slot" });
  const actions = h("div", { class: "row ph-item-actions" });
  li.append(h("div", { class: "ph-item-head" }, name, badge), meta, bar, msg, slot, actions);
  let fig = null, actionKind = null;

  function render() {
    const st = e.status === "uploaded" ? e.item?.state || "pending" : e.status;
    li.dataset.state = st;
    badge.className = `state ${badgeClass(st)}`;
    const working = st === "running" && e.item?.progress > 0;
    badge.textContent = e.status === "uploading" ? `uploading ${Math.round(e.upload * 100)} %`
      : working ? `enhancing ${Math.floor(e.item.progress * 100)} %`
      : e.status === "uploaded" ? ITEM_LABEL[st] || st : LOCAL_LABEL[e.status] || e.status;
    const res = e.item?.result;
    const dims = res?.width ? ` → ${res.width}×${res.height}` : "";
    meta.textContent = [e.size ? formatBytes(e.size) : "", dims ? `result${dims}` : "",
      e.item?.variant && e.item.variant !== "default" ? `variant ${e.item.variant}` : ""].filter(Boolean).join(" · ");
    bar.hidden = e.status !== "uploading" && !working;
    bar.value = e.status === "uploading" ? e.upload : e.item?.progress || 0;
    bar.setAttribute("aria-label", e.status === "uploading" ? `Upload of ${e.name}` : `Enhancing ${e.name}`);

    let text = "", cls = "ph-msg";
    if (e.status === "rejected" || e.status === "unsent") {
      text = `${e.status === "rejected" ? "Refused" : "Not uploaded"}: ${e.error?.message || "unknown reason"}`
        + (e.error?.code ? ` [${e.error.code}]` : "");
      cls += " bad";
    } else if (e.status === "missing") {
      text = "This file was not uploaded before the page was reloaded. Add it again to include it.";
      cls += " warn";
    } else if (st === "failed") {
      text = `Failed: ${e.item?.error?.message || "no reason given"}${e.item?.error?.code ? ` [${e.item.error.code}]` : ""}`;
      cls += " bad";
    } else if (st === "skipped") {
      const orig = state.byItem.get(e.item?.duplicate_of);
      text = `The same photo as ${orig ? orig.name : "another one in this batch"}: enhanced once, exported under both names.`;
      cls += " muted";
    }
    msg.className = cls;
    msg.textContent = text;
    msg.hidden = !text;

    const showResult = state.showsResult(e);
    if (showResult && !fig) slot.append(fig = compare.build(e));

    // Rebuilt only when they change, so a focused button keeps focus through updates.
    const kind = state.phase === "compose" ? "remove" : showResult ? "download" : e.status === "unsent" ? "retry" : "";
    if (kind === actionKind) return;
    actionKind = kind;
    actions.replaceChildren();
    if (kind === "remove") {
      actions.append(h("button", { type: "button", class: "secondary", "aria-label": `Remove ${e.name}`,
        onclick: () => onRemove(e) }, "Remove"));
    } else if (kind === "download") {
      actions.append(h("button", { type: "button", class: "secondary", "aria-label": `Download the result of ${e.name}`,
        onclick: () => onDownload(e) }, "Download"));
    } else if (kind === "retry") {
      actions.append(h("button", { type: "button", class: "secondary", "aria-label": `Retry the upload of ${e.name}`,
        onclick: () => onRetry([e]) }, "Retry upload"));
    }
  }

  return {
    li,
    render,
    button: () => actions.querySelector("button"),
    destroy() { if (fig) compare.drop(fig); },
  };
}
