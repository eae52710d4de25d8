// "Add photos": the drop zone and the two pickers (photos, a folder). Shown while files
// can go into the list or the open batch; the accepted types and limits are the server's.

import { formatBytes, h } from "../dom.js";
import { acceptList, droppedFiles, formatList } from "./files.js";

export function addCard(state, { onFiles, notifyError }) {
  const picker = (id, attrs = {}) => {
    const input = h("input", { type: "file", id, class: "ph-file", multiple: true, ...attrs });
    input.addEventListener("change", () => { onFiles([...input.files]); input.value = ""; });
    return input;
  };
  const fileInput = picker("ph-files", { accept: acceptList(state.formats) });
  const folderInput = picker("ph-folder");
  folderInput.webkitdirectory = true;
  const hint = h("p", { class: "muted", id: "ph-drop-hint" });
  const drop = h("div", { class: "dropzone ph-drop", id: "ph-drop" },
    h("p", {}, h("strong", {}, "Drop photos or a folder here")),
    h("div", { class: "row ph-pickers" },
      fileInput, h("label", { for: "ph-files", class: "button" }, "Choose photos"),
      folderInput, h("label", { for: "ph-folder", class: "button secondary" }, "Choose a folder")),
    hint);
  const title = h("h2", { id: "ph-add-title" }, "Add photos");
  const el = h("section", { class: "card", "aria-labelledby": "ph-add-title" }, title, drop);

  let depth = 0;
  drop.addEventListener("dragenter", (ev) => { ev.preventDefault(); depth++; drop.classList.add("over"); });
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); ev.dataTransfer.dropEffect = "copy"; });
  drop.addEventListener("dragleave", () => { if (--depth <= 0) { depth = 0; drop.classList.remove("over"); } });
  drop.addEventListener("drop", async (ev) => {
    ev.preventDefault();
    depth = 0;
    drop.classList.remove("over");
    if (!state.canAdd()) return;
    try { onFiles(await droppedFiles(ev.dataTransfer)); } catch (err) { notifyError(err, "Could not read the dropped files: "); }
  });

  function renderOptions() {
    const lim = state.options?.limits;
    fileInput.accept = acceptList(state.formats);
    hint.textContent = `${formatList(state.formats)}`
      + (lim ? `, up to ${formatBytes(lim.max_upload_bytes)} and ${lim.max_image_pixels / 1e6} MP each` : "")
      + ". Files that are not photos are listed with the reason.";
  }

  function render() {
    const can = state.canAdd();
    el.hidden = state.phase === "loading" || (state.phase === "batch" && !can);
    title.textContent = state.phase === "batch" ? "Add photos to this batch" : "Add photos";
    fileInput.disabled = folderInput.disabled = !can;
  }

  state.on("options", renderOptions);
  state.on("phase", render);
  state.on("batch", render);
  renderOptions();
  return { el, input: fileInput };
}
