// Picked and dropped files: which are photos kadr can read (by type, or by extension when
// the system gives none), a queue of files waiting to upload, and the files of a drop
// with the folders in it walked.

// What Chromium reports for each format the server reads (GET /api/v1/enhance/options
// lists those formats: formats.input).
const MIME_FORMAT = { "image/jpeg": "jpeg", "image/png": "png", "image/webp": "webp", "image/bmp": "bmp",
  "image/tiff": "tiff", "image/heic": "heic", "image/heif": "heic", "image/avif": "avif" };
const FORMAT_LABEL = { jpeg: "JPEG", png: "PNG", webp: "WebP", bmp: "BMP", tiff: "TIFF", heic: "HEIC", avif: "AVIF" };
const EXT_TYPE = { jpg: "image/jpeg", jpeg: "image/jpeg", jpe: "image/jpeg", png: "image/png", webp: "image/webp",
  bmp: "image/bmp", tif: "image/tiff", tiff: "image/tiff", heic: "image/heic", heif: "image/heif", avif: "image/avif" };
// Until the server's list arrives: every format the page knows.
export const KNOWN_FORMATS = Object.keys(FORMAT_LABEL);
// Chromium cannot show TIFF or HEIC; those are asked of the server as PNG for the slider.
export const SHOWABLE = new Set(["image/jpeg", "image/png", "image/webp", "image/bmp", "image/avif"]);
// Files every OS scatters through photo folders: skipped quietly rather than listed as refused.
export const JUNK = /^(\.|Thumbs\.db$|desktop\.ini$)/i;

export const relName = (file) => file.webkitRelativePath || file.name;
export const fileKey = (file) => `${relName(file)}|${file.size}|${file.lastModified}`;
const extension = (name) => (name.match(/\.([^.]+)$/) || [])[1]?.toLowerCase();
export const nameType = (name) => EXT_TYPE[extension(name)] || null;

// "JPEG, PNG or WebP"
export function formatList(formats) {
  const names = formats.map((f) => FORMAT_LABEL[f] || f.toUpperCase());
  return names.length > 1 ? `${names.slice(0, -1).join(", ")} or ${names[names.length - 1]}` : names.join("");
}

// The file inputs' accept attribute: the types, then the extensions, of ``formats``.
export function acceptList(formats) {
  const ok = (mime) => formats.includes(MIME_FORMAT[mime]);
  return [...Object.keys(MIME_FORMAT).filter(ok),
    ...Object.entries(EXT_TYPE).filter(([, mime]) => ok(mime)).map(([ext]) => `.${ext}`)].join(",");
}

export function fileType(file, formats = KNOWN_FORMATS) {
  const ok = (mime) => formats.includes(MIME_FORMAT[mime]);
  if (MIME_FORMAT[file.type]) return ok(file.type) ? file.type : null;
  const byName = EXT_TYPE[extension(file.name)];
  // Some systems give no type (or a generic one) for perfectly good photos.
  if ((!file.type || file.type === "application/octet-stream") && byName && ok(byName)) return byName;
  return null;
}

// Why a file cannot be a photo for kadr, or null when it may be (the server checks the content).
export function clientRefusal(file, formats = KNOWN_FORMATS) {
  if (!fileType(file, formats)) {
    const what = file.type ? `its type is ${file.type}` : "it has no image type or extension";
    return { code: "not_an_image", message: `not a photo kadr can read (${what}); use ${formatList(formats)}` };
  }
  if (file.size === 0) return { code: "empty_file", message: "the file is empty" };
  return null;
}

// Files waiting to upload, first in first out, without Array.shift's copying of 10,000 entries.
export class FileQueue {
  constructor() { this.clear(); }
  clear() { this.items = []; this.head = 0; }
  get length() { return this.items.length - this.head; }
  push(e) { this.items.push(e); }
  peek() { return this.items[this.head]; }
  requeue(first) { this.items = first.concat(this.items.slice(this.head)); this.head = 0; }
  shift() {
    const e = this.items[this.head++];
    if (this.head > 1024 && this.head * 2 > this.items.length) { this.items = this.items.slice(this.head); this.head = 0; }
    return e;
  }
}

// Files from a drop, walking into dropped folders (webkitGetAsEntry) so a whole folder works.
export async function droppedFiles(dt) {
  const entries = [...(dt.items || [])].map((it) => it.webkitGetAsEntry?.()).filter(Boolean);
  if (!entries.length) return [...(dt.files || [])];
  const out = [];
  const walk = async (entry, prefix) => {
    if (entry.isFile) {
      const file = await new Promise((res, rej) => entry.file(res, rej));
      // Keep the folder path for display, as a folder picked with the button would.
      if (prefix) Object.defineProperty(file, "webkitRelativePath", { value: `${prefix}${file.name}` });
      out.push(file);
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
      }
    }
  };
  for (const entry of entries) await walk(entry, "");
  return out;
}
