// A list laid out as a CSS grid of cards that keeps only the cards near the viewport in
// the DOM. Seed 000's people picked 10,000 photos at once: a card each is 10,000 DOM
// subtrees (and, once results arrive, 10,000 decoded images), which no browser keeps
// responsive. Cards may differ in height (a result adds a before/after picture, an error
// adds lines): each mounted card is measured (a ResizeObserver catches images that load
// later), a card never seen is estimated from the last measured card of its kind, and
// padding above and below the mounted cards stands in for the others. The page scrolls
// as a whole (window), so positions are read against the viewport.

const OVERSCAN_PX = 600;
// Up to this many cards all stay in the DOM: cheap at that count, and the browser's
// find-in-page and a screen reader's list navigation then see every one.
const EAGER = 200;

export class VirtualGrid {
  // ``mount(item)`` builds and returns the card's element, ``unmount(item)`` lets go of
  // it (object URLs, observers); ``kind(item)`` names the card's shape for estimates.
  constructor(list, { mount, unmount, kind, estimate = 120 }) {
    this.list = list;
    this.mount = mount;
    this.unmount = unmount;
    this.kind = kind;
    this.estimate = estimate;
    this.items = [];
    this.mounted = new Map();     // item -> element, in no particular order
    this.heights = new WeakMap(); // item -> measured height of its card at the current width
    this.kindHeights = new Map(); // kind -> last measured height, the estimate for unseen cards
    this.width = 0;
    this.frame = 0;
    this.schedule = () => { if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.update(); }); };
    this.resizes = new ResizeObserver(this.schedule);
    this.resizes.observe(list);
    window.addEventListener("scroll", this.schedule, { passive: true });
    window.addEventListener("resize", this.schedule);
  }

  destroy() {
    cancelAnimationFrame(this.frame);
    this.resizes.disconnect();
    window.removeEventListener("scroll", this.schedule);
    window.removeEventListener("resize", this.schedule);
    for (const item of this.mounted.keys()) this.unmount(item);
    this.mounted.clear();
  }

  // The page's own array (not copied): call ``changed()`` after adding or removing items.
  setItems(items) { this.items = items; this.changed(); }
  changed() { this.schedule(); }

  isMounted(item) { return this.mounted.has(item); }

  // An item's content changed while its card is not in the DOM: its height may differ now.
  forget(item) { this.heights.delete(item); this.schedule(); }

  // Every mounted card again (a change of phase); the others are built when they scroll in.
  each(fn) { for (const item of this.mounted.keys()) fn(item); }

  heightOf(item) {
    return this.heights.get(item) ?? this.kindHeights.get(this.kind(item)) ?? this.estimate;
  }

  // Grid tracks and gap as laid out now (the columns follow the width: auto-fill).
  geometry() {
    const style = getComputedStyle(this.list);
    const cols = Math.max(1, style.gridTemplateColumns.split(" ").filter((t) => t && t !== "none").length);
    return { cols, gap: parseFloat(style.rowGap) || 0 };
  }

  // tops[r]: where grid row r starts, from the list's top; tops[rows]: the end (plus a gap).
  layout(cols, gap) {
    const n = this.items.length;
    const rows = Math.ceil(n / cols);
    const tops = new Float64Array(rows + 1);
    for (let r = 0, y = 0; r < rows; r++) {
      let h = 0;
      for (let i = r * cols, end = Math.min(n, i + cols); i < end; i++) h = Math.max(h, this.heightOf(this.items[i]));
      tops[r] = y;
      y += h + gap;
      tops[r + 1] = y;
    }
    return tops;
  }

  update() {
    if (!this.list.isConnected) return;
    const width = this.list.clientWidth;
    if (width !== this.width) { this.width = width; this.heights = new WeakMap(); }
    if (this.items.length <= EAGER) {
      this.sync(0, this.items.length);
      this.list.style.paddingTop = this.list.style.paddingBottom = "0px";
      return;
    }
    const { cols, gap } = this.geometry();
    // Measuring can change the layout, which can change what is in view: settle in a few passes.
    for (let pass = 0; pass < 3; pass++) {
      const tops = this.layout(cols, gap);
      const rows = tops.length - 1;
      const top = -this.list.getBoundingClientRect().top;
      const first = rowAt(tops, Math.max(0, top - OVERSCAN_PX));
      const last = Math.min(rows, rowAt(tops, top + window.innerHeight + OVERSCAN_PX) + 1);
      this.sync(first * cols, Math.min(this.items.length, last * cols));
      this.list.style.paddingTop = `${rows ? tops[first] : 0}px`;
      this.list.style.paddingBottom = `${rows ? tops[rows] - tops[last] : 0}px`;
      if (!this.measure()) return;
      // Cards above the one in view changed height: keep the one in view where it was.
      const anchor = rowAt(tops, top);
      if (top > 0 && anchor > first) {
        const moved = this.layout(cols, gap)[anchor] - tops[anchor];
        if (moved) window.scrollBy(0, moved);
      }
    }
  }

  // The DOM holds exactly items[from, to), in order; focus stays on a card that stays.
  sync(from, to) {
    const want = new Set();
    for (let i = from; i < to; i++) want.add(this.items[i]);
    for (const [item, el] of this.mounted) {
      if (want.has(item)) continue;
      this.mounted.delete(item);
      this.resizes.unobserve(el);
      el.remove();
      this.unmount(item);
    }
    let cursor = this.list.firstElementChild;
    for (let i = from; i < to; i++) {
      const item = this.items[i];
      let el = this.mounted.get(item);
      if (!el) {
        el = this.mount(item);
        this.mounted.set(item, el);
        this.resizes.observe(el);
      }
      if (el === cursor) cursor = cursor.nextElementSibling;
      else this.list.insertBefore(el, cursor);
    }
  }

  // Reads the mounted cards' heights; true when one differs from what layout assumed.
  measure() {
    let changed = false;
    for (const [item, el] of this.mounted) {
      const h = el.offsetHeight;
      if (!h) continue;  // hidden list: nothing to learn
      this.kindHeights.set(this.kind(item), h);
      if (this.heights.get(item) !== h) { this.heights.set(item, h); changed = true; }
    }
    return changed;
  }
}

// The grid row at ``y`` (the last one whose top is at or above it).
function rowAt(tops, y) {
  let lo = 0, hi = tops.length - 2;
  if (hi < 0) return 0;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (tops[mid] <= y) lo = mid; else hi = mid - 1;
  }
  return lo;
}
