// What localStorage keeps: the batch being followed (its id, times and one short array
// per file, so a reload can rebuild the page) and the options chosen last.

const STORE = "kadr.photos.batch";
const OPTIONS_STORE = "kadr.photos.options";

const readJson = (key) => { try { return JSON.parse(localStorage.getItem(key) || "null"); } catch (_) { return null; } };

export const loadBatch = () => readJson(STORE);
export const forgetBatch = () => localStorage.removeItem(STORE);

// ``saved``: {id, startedAt, endedAt}; ``entries``: the page's records, packed one array each.
export function saveBatch(saved, entries) {
  const files = [];
  for (const e of entries) if (!e.extra) files.push(packFile(e));
  saved.files = files;
  try { localStorage.setItem(STORE, JSON.stringify(saved)); } catch (err) {
    console.warn("could not keep the batch in localStorage", err);
  }
}

export const loadOptions = () => readJson(OPTIONS_STORE) || {};
export const saveOptions = (o) => localStorage.setItem(OPTIONS_STORE, JSON.stringify(o));

// One file as localStorage keeps it: [name, size, "u"ploaded | "r"efused | "p"ending,
// item id, refusal code, refusal message]; 10,000 files are about 1 MB of JSON.
function packFile(e) {
  if (e.status === "uploaded") return [e.name, e.size, "u", e.itemId];
  if (e.status === "rejected") return [e.name, e.size, "r", null, e.error?.code || "", e.error?.message || ""];
  return [e.name, e.size, "p"];
}

export function unpackFile(rec) {
  if (!Array.isArray(rec)) return rec;  // kept by an earlier version of the page: {name, size, status, ...}
  const [name, size, s, itemId, code, message] = rec;
  return { name, size, itemId: itemId || null, status: s === "u" ? "uploaded" : s === "r" ? "rejected" : "pending",
    error: s === "r" ? { code, message } : null };
}
