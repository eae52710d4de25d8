// The upload card: the key's recent videos, the drop zone and picker, class, model,
// processing size and the method to run once segmented (all from the API's options and
// ranges), the upload's progress and the server's answer when it refuses the file.

import { formatBytes, formatDuration, h } from "../dom.js";
import { methodControls } from "./method_controls.js";

export function uploadForm(state, { onUpload, onCancel, onOpen, notify }) {
  const fileInput = h("input", { id: "vid-file", type: "file", name: "file",
    accept: "video/*,.mp4,.mov,.avi,.mkv,.webm", "aria-describedby": "vid-limits" });
  const fileInfo = h("p", { class: "muted", id: "vid-file-info" }, "No file chosen yet.");
  const limitsText = h("p", { class: "muted", id: "vid-limits" }, "mp4, mov, avi, mkv or webm.");
  const drop = h("div", { class: "dropzone vid-drop" },
    h("p", {}, "Drop a video here, or"),
    h("label", { for: "vid-file" }, "Choose a video file"), " ", fileInput, limitsText, fileInfo);
  const classSel = h("select", { id: "vid-class", name: "target_class" });
  const modelSel = h("select", { id: "vid-model", name: "model" });
  const sizeInput = h("input", { id: "vid-size", name: "processing_size", type: "number", inputmode: "numeric",
    min: "128", max: "1024", step: "1", "aria-describedby": "vid-size-help" });
  const sizeHelp = h("small", { id: "vid-size-help", class: "muted" }, "Longer side of the frames the network sees; smaller is faster.");
  const methodBox = h("div", { class: "vid-method" });
  const uploadBtn = h("button", { type: "submit", id: "vid-upload", disabled: true }, "Upload and segment");
  const cancelBtn = h("button", { type: "button", class: "secondary", hidden: true, onclick: onCancel }, "Cancel upload");
  const progress = h("progress", { id: "vid-upload-progress", max: "1", value: "0", "aria-label": "Upload progress" });
  const progressText = h("span", { class: "muted" });
  const bar = h("div", { class: "bar", hidden: true }, progress, progressText);
  const error = h("div", { class: "vid-error", role: "alert", id: "vid-upload-error" });
  const recentSel = h("select", { id: "vid-recent" });
  const recentBox = h("div", { class: "row vid-recent", hidden: true },
    h("label", { for: "vid-recent" }, "Recent videos"), recentSel,
    h("button", { type: "button", class: "secondary", onclick: () => recentSel.value && onOpen(recentSel.value) }, "Open"));
  let method = null;

  const el = h("form", { class: "card", id: "vid-upload-form", "aria-labelledby": "vid-upload-h", novalidate: true },
    h("h2", { id: "vid-upload-h" }, "Upload"),
    recentBox, drop,
    h("div", { class: "vid-opts" },
      h("div", { class: "vid-field" }, h("label", { for: "vid-class" }, "Target class"), classSel),
      h("div", { class: "vid-field" }, h("label", { for: "vid-model" }, "Model"), modelSel),
      h("div", { class: "vid-field" }, h("label", { for: "vid-size" }, "Processing size (px)"), sizeInput, sizeHelp)),
    methodBox,
    h("div", { class: "row" }, uploadBtn, cancelBtn), bar, error);

  fileInput.addEventListener("change", () => state.choose(fileInput.files[0] || null));
  drop.addEventListener("dragover", (ev) => {
    ev.preventDefault();
    if (ev.dataTransfer) ev.dataTransfer.dropEffect = "copy";
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", (ev) => {
    // Moving over the zone's own children fires dragleave too.
    if (!drop.contains(ev.relatedTarget)) drop.classList.remove("over");
  });
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    const files = [...(ev.dataTransfer?.files || [])];
    if (!files.length) return;
    if (files.length > 1) notify("One video at a time: using the first file dropped.", "info");
    fileInput.value = "";
    state.choose(files[0]);
  });

  const refuse = (text) => state.setUpload({ uploadError: text });
  el.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const o = state.options, file = state.chosen;
    refuse("");
    if (!o) return;
    if (!file) { refuse("Choose a video file first."); fileInput.focus(); return; }
    if (file.size === 0) { refuse(`${file.name} is empty.`); return; }
    if (o.limits && file.size > o.limits.max_bytes) {
      refuse(`${file.name} is ${formatBytes(file.size)}; the server accepts at most ${formatBytes(o.limits.max_bytes)}.`);
      return;
    }
    if (!sizeInput.checkValidity()) {
      refuse(`Processing size: ${sizeInput.validationMessage} (${sizeInput.min}–${sizeInput.max})`);
      sizeInput.focus();
      return;
    }
    let m;
    try { m = method.value(); } catch (e) { refuse(e.message); return; }
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("target_class", classSel.value);
    form.append("model", modelSel.value);
    if (sizeInput.value) form.append("processing_size", sizeInput.value);
    onUpload(file, form, m);
  });

  function renderOptions() {
    const o = state.options;
    classSel.replaceChildren(...o.classes.map((c) => h("option", { value: c }, c)));
    classSel.value = o.classes.includes("person") ? "person" : o.classes[0];
    modelSel.replaceChildren(...Object.entries(o.models).map(([m, desc]) =>
      h("option", { value: m, title: desc }, m === o.default_model ? `${m} (default)` : m)));
    modelSel.value = o.default_model;
    const size = o.upload?.processing_size;
    if (size) {
      sizeInput.min = String(size.minimum);
      sizeInput.max = String(size.maximum);
      sizeInput.value = String(size.default);
      sizeHelp.textContent = `${size.minimum}–${size.maximum}. Longer side of the frames the network sees; smaller is faster.`;
    }
    const lim = o.limits;
    if (lim) {
      limitsText.textContent = `mp4, mov, avi, mkv or webm; at most ${formatBytes(lim.max_bytes)}, ` +
        `${lim.max_frames} frames, ${formatDuration(lim.max_seconds)}, ${lim.max_width}×${lim.max_height}.`;
    }
    method = methodControls(o.methods, "vid-up", { allowNone: true });
    methodBox.replaceChildren(method.el);
    renderUpload();
  }

  function renderUpload() {
    const f = state.chosen, u = state.upload;
    fileInfo.textContent = f ? `${f.name} · ${formatBytes(f.size)}${f.type ? ` · ${f.type}` : ""}` : "No file chosen yet.";
    uploadBtn.disabled = !state.options || state.uploading;
    cancelBtn.hidden = !state.uploading;
    bar.hidden = !u;
    if (u) {
      progress.value = u.fraction || 0;
      progressText.textContent = u.done ? `Uploaded ${u.name}.` : u.fraction === null ? `Uploading ${u.name}…`
        : `Uploading ${u.name}: ${Math.round(u.fraction * 100)} % of ${formatBytes(u.size)}`;
    }
    error.textContent = state.uploadError;
  }

  function renderRecent() {
    recentBox.hidden = state.recent.length === 0;
    recentSel.replaceChildren(...state.recent.map((v) => h("option", { value: v.id },
      `${v.name || v.id} · ${new Date(v.at).toLocaleString()}`)));
    if (state.video) recentSel.value = state.video.id;
  }

  state.on("options", renderOptions);
  state.on("upload", renderUpload);
  state.on("recent", renderRecent);
  return { el };
}
