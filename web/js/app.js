// The shell: hash routes to pages, the API key form, notices. Each page exports
// mount(root, ctx) and returns a function that stops its timers and streams; the
// photos, video and cameras pages are folders (page.js, state.js, sync.js and one
// module per component), ops is one small module.

import * as api from "./api.js";
import { errorText, h } from "./dom.js";
import * as photos from "./photos/page.js";
import * as video from "./video/page.js";
import * as cameras from "./cameras/page.js";
import * as ops from "./ops.js";

const PAGES = { photos, video, cameras, ops };
const DEFAULT = "photos";
let unmount = null;

function notify(message, kind = "info", { timeout } = {}) {
  const box = document.getElementById("notices");
  const close = h("button", { type: "button", class: "secondary", "aria-label": "Dismiss" }, "×");
  const el = h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : null },
    h("span", {}, message), close);
  close.addEventListener("click", () => el.remove());
  box.append(el);
  const ms = timeout ?? (kind === "error" ? 0 : 6000);
  if (ms) setTimeout(() => el.remove(), ms);
  return el;
}

function notifyError(err, prefix = "") {
  return notify(`${prefix}${errorText(err)}`, "error");
}

function route() {
  const name = (location.hash.match(/^#\/(\w+)/) || [])[1];
  return PAGES[name] ? name : DEFAULT;
}

function render() {
  if (unmount) { try { unmount(); } catch (e) { console.warn(e); } unmount = null; }
  const name = route();
  for (const a of document.querySelectorAll("nav a[data-route]")) {
    if (a.dataset.route === name) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const root = document.getElementById("view");
  root.replaceChildren();
  root.dataset.page = name;
  if (!api.getKey()) {
    root.append(h("section", { class: "card", id: "need-key" },
      h("h1", {}, "Welcome to kadr"),
      h("p", {}, "Enter your API key above to start. It stays in this browser's storage."),
      h("p", { class: "muted" }, "An operator creates keys on the server with: kadr keys create NAME")));
    document.getElementById("api-key").focus();
    return;
  }
  document.title = `kadr · ${name}`;
  unmount = PAGES[name].mount(root, { api, notify, notifyError }) || null;
}

function setupKeyForm() {
  const form = document.getElementById("key-form");
  const input = document.getElementById("api-key");
  const forget = document.getElementById("key-forget");
  const sync = () => {
    const has = !!api.getKey();
    forget.hidden = !has;
    input.placeholder = has ? "key saved (enter to replace)" : "paste your key";
  };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const key = input.value.trim();
    if (!key) { input.focus(); return; }
    input.value = "";
    api.setKey(key);
    // Check it at once, so a typo shows now rather than on the first upload.
    api.get("/api/v1/ops").then(() => notify("API key saved in this browser.", "info"),
      (err) => { if (err.status !== 401) notifyError(err, "Could not check the key: "); });
  });
  forget.addEventListener("click", () => { api.setKey(""); notify("API key removed from this browser.", "info"); });
  window.addEventListener("kadr:key", () => { sync(); render(); });
  let shown = 0;
  window.addEventListener("kadr:unauthorized", (ev) => {
    // One notice per burst of 401s (a page may have several requests in flight).
    if (Date.now() - shown < 5000) return;
    shown = Date.now();
    notify(`The server refused the API key: ${ev.detail.message}. Enter a valid key above.`, "error");
  });
  sync();
}

setupKeyForm();
window.addEventListener("hashchange", render);
render();
