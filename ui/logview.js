// One step's log panel: a virtual list with a fixed row height, so a
// 100,000-line step costs the same DOM as a 50-line one.
//
// Unfiltered, row i is the line with seq i + 1: the panel knows how many lines
// the step has (its last_seq, raised by `step` and `logs` messages), keeps a
// bounded cache of lines by seq and fetches any window it lacks. A line is
// shown from its seq slot, so it can appear once only, and a line missed for
// any reason is fetched, never skipped. An expanded line (a traceback, any
// multi-line message) is as many rows tall as it has lines.
//
// "wrap" shows every line's whole message wrapped at the panel's width. A
// row is then as many ROW-high lines as its text needs: predicted from the
// text's length in characters over the message column's width in characters
// (measured once per width), and corrected by the height a drawn row really
// has. A line not loaded yet counts as one row. Row tops are prefix sums of
// the rows' heights (rebuilt only when a height, a fold, the filter or the
// line count changes), so a position turns into a row by binary search; when
// heights change, the selected line in view (else the top row) stays put.
//
// Search navigates by default: matches are highlighted in the full log, and
// "n of m", next and previous are answered by the server for the whole step
// (/api/steps/{id}/search), not only for the lines loaded. "only matching"
// and the minimum level filter instead (the server answers those too): the
// panel loads the matches in seq order and more as the step grows.
//
// Groups of lines fold (ui/folds.js): the rows of the full log are the seqs
// outside the folded groups, a group's opening line shows its toggle and line
// count, and any way of landing on a line (a link, a search hit, an error,
// "go to line") unfolds the groups hiding it. The panel draws nothing before
// it knows the groups, so a landing is never moved by folds arriving later.
//
// Keys (the panel is one Tab stop): ↑/↓ move the selected line, PageUp/
// PageDown/Home/End, Enter expands or folds it (on a group's opening line:
// folds or unfolds the group); → unfolds the selected group, ← folds it (on
// any other line in a group: selects its opening line); e / E next and
// previous error; in the search box Enter / Shift+Enter next and previous
// match, Escape leaves the search where the hit is.

import { appendAnsi, stripAnsi } from "./ansi.js";
import { getJSON, url } from "./api.js";
import { clock, h } from "./dom.js";
import { Folds } from "./folds.js";

const ROW = 20; // px; must match .ll height in style.css
const OVERSCAN = 12; // rows drawn above and below the viewport
const PAGE = 500; // lines per request when filling a window
const MATCH_PAGE = 1000; // lines per request of a filtered view
const KEEP = 20_000; // lines kept around the viewport
const MAX_FIELDS_TEXT = 300;
const CONTEXT_ROWS = 3; // rows shown above a line revealed at the top
const MAX_INDENT = 12; // group depths drawn indented (deeper ones as deep)
const MAX_UNWRAPPED = 2000; // characters of a cut line drawn (the row shows no more)
const WRAP_KEY = "steptrail.wrap";
const LENGTHS = new WeakMap(); // line -> characters of each of its text lines, ANSI removed

function fieldsText(fields) {
  const text = Object.entries(fields || {})
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join("  ");
  return text.length > MAX_FIELDS_TEXT ? `${text.slice(0, MAX_FIELDS_TEXT)}…` : text;
}

/** Wrap every case-insensitive occurrence of `q` in el's text in <mark>. */
function highlight(el, q) {
  const needle = q.toLowerCase();
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  const nodes = [];
  while (walker.nextNode()) nodes.push(walker.currentNode);
  for (const node of nodes) {
    const text = node.textContent;
    const lower = text.toLowerCase();
    let at = lower.indexOf(needle);
    if (at < 0) continue;
    const parts = [];
    let last = 0;
    while (at >= 0) {
      if (at > last) parts.push(document.createTextNode(text.slice(last, at)));
      parts.push(h("mark", {}, text.slice(at, at + needle.length)));
      last = at + needle.length;
      at = lower.indexOf(needle, last);
    }
    if (last < text.length) parts.push(document.createTextNode(text.slice(last)));
    node.replaceWith(...parts);
  }
}

const FINISHED = new Set(["succeeded", "failed", "cancelled", "abandoned", "skipped"]);

export class LogPanel {
  /** step: as /api/steps shows it; link(seq): the deep link of a line;
   * landing "failure": open at the step's last error line, expanded (where a
   * failed step says why); level: start filtered to this minimum level;
   * live false: a step as it was (History), never followed. */
  constructor(step, { link, onSelect, landing = null, level = "", live = true }) {
    this.stepId = step.id;
    this.stepName = step.name;
    this.link = link;
    this.onSelect = onSelect;
    this.live = live;
    this.total = step.last_seq;
    this.cache = new Map(); // seq -> line (unfiltered)
    this.fetched = new Map(); // window start -> total when fetched (no refetch loops)
    this.inflight = new Set();
    this.matches = null; // filtered: matching lines in seq order
    this.scanned = 0; // filtered: every match with seq <= scanned is in `matches`
    this.generation = 0; // bumps on a filter change; stale answers are dropped
    this.loadingMatches = false;
    this.running = live && step.status === "running";
    this.follow = this.running && !landing;
    this.selected = null;
    this.expanded = new Set(); // seqs of multi-line messages shown whole
    this.extra = new Uint32Array(1024); // seq -> rows below its first (expanded, wrapped)
    this.measured = new Set(); // seqs whose height was read from their drawn row
    this.heights = 0; // bumps when a row's height changes
    this.geo = null; // prefix sums of the rows' heights (geometry())
    this.wrap = localStorage.getItem(WRAP_KEY) === "1";
    this.cols = null; // wrap: characters the message column holds (null: to measure)
    this.wantExpanded = new Set(); // seqs to expand once their line is loaded
    this.reveal = null; // {seq, at: "center"|"top", page}: bring a line into view once drawn
    this.hit = null; // navigating search: {seq, index, count}
    this.errors = null; // error navigation: {seq, index, count}
    this.autoTop = 0; // where our own last scroll put the view
    this.frame = null;
    this.folds = new Folds();
    this.groupsReady = false; // rows are drawn once the groups are known
    this.build(step);
    this.loadGroups();
    if (level) {
      this.levelEl.value = level;
      this.filterChanged();
    }
    if (landing === "failure") this.toError("prev", Number.MAX_SAFE_INTEGER, true);
  }

  build(step) {
    this.countEl = h("span", { class: "count", "data-testid": "line-count" });
    this.levelEl = h(
      "select",
      { title: "minimum level", "aria-label": "minimum level", onchange: () => this.filterChanged() },
      ["", "info", "warning", "error", "critical"].map((v) => h("option", { value: v }, v ? `${v}+` : "all levels")),
    );
    let debounce = null;
    this.searchEl = h("input", {
      type: "search",
      placeholder: "search…  (/)",
      "aria-label": "search the step's log",
      oninput: () => {
        clearTimeout(debounce);
        debounce = setTimeout(() => this.searchChanged(), 250);
      },
      onkeydown: (e) => {
        if (e.key === "Enter") {
          e.preventDefault();
          clearTimeout(debounce);
          if (this.query() !== this.searched) this.searchChanged();
          else this.toHit(e.shiftKey ? "prev" : "next");
        } else if (e.key === "Escape") {
          e.preventDefault();
          this.leaveSearch();
        }
      },
    });
    this.hitEl = h("span", { class: "hits", "data-testid": "hits", "aria-live": "polite" });
    this.onlyEl = h("input", { type: "checkbox", onchange: () => this.filterChanged() });
    const showTs = localStorage.getItem("steptrail.ts") !== "0";
    this.tsEl = h("input", {
      type: "checkbox",
      checked: showTs,
      onchange: () => {
        localStorage.setItem("steptrail.ts", this.tsEl.checked ? "1" : "0");
        this.el.classList.toggle("hide-ts", !this.tsEl.checked);
        this.widthChanged();
      },
    });
    this.followEl = h("button", { type: "button", class: "follow", "aria-pressed": "false", onclick: () => this.setFollow(!this.follow) });
    this.gotoEl = h("input", { type: "number", min: 1, placeholder: "line", "aria-label": "go to line" });
    const gotoForm = h(
      "form",
      {
        class: "goto",
        onsubmit: (e) => {
          e.preventDefault();
          const seq = Number(this.gotoEl.value);
          if (seq >= 1) this.select(seq, "center");
        },
      },
      this.gotoEl,
      h("button", { type: "submit" }, "go"),
    );
    this.statusEl = h("span", { class: "panel-status" });
    this.errorsEl = h("span", { class: "errors-where", "data-testid": "errors-where" });
    const button = (label, title, onclick, cls = "") => h("button", { type: "button", title, "aria-label": title, class: cls, onclick }, label);
    this.errorNav = h(
      "span",
      { class: "error-nav", role: "group", "aria-label": "errors" },
      button("first error", "first error", () => this.toError("next", 0), "first-error"),
      button("‹", "previous error (Shift+E)", () => this.toError("prev"), "prev-error"),
      button("›", "next error (E)", () => this.toError("next"), "next-error"),
      this.errorsEl,
    );
    this.fullEl = button("⤢", "full screen", () => this.setFullScreen(!this.el.classList.contains("fullscreen")), "full");
    this.wrapEl = h("input", { type: "checkbox", checked: this.wrap, onchange: () => this.setWrap(this.wrapEl.checked) });
    const rowOne = h(
      "div",
      { class: "log-toolbar" },
      h("strong", {}, `${step.name}`, step.attempt > 1 ? ` (attempt ${step.attempt})` : ""),
      this.statusEl,
      this.countEl,
      h("span", { class: "spacer" }),
      this.errorNav,
      this.followEl,
      this.fullEl,
      h("a", { href: url(`/api/steps/${this.stepId}/logs/raw`), target: "_blank", rel: "noopener", title: "the whole log as plain text" }, "raw"),
      h("a", { href: url(`/api/steps/${this.stepId}/logs/download`, { format: "text" }), download: "", title: "download as text" }, "⇩ text"),
      h("a", { href: url(`/api/steps/${this.stepId}/logs/download`, { format: "ndjson" }), download: "", title: "download as NDJSON" }, "⇩ ndjson"),
    );
    const rowTwo = h(
      "div",
      { class: "log-toolbar second" },
      this.searchEl,
      this.hitEl,
      button("‹", "previous match (Shift+Enter)", () => this.toHit("prev"), "prev-hit"),
      button("›", "next match (Enter)", () => this.toHit("next"), "next-hit"),
      h("label", { class: "toggle" }, this.onlyEl, "only matching"),
      this.levelEl,
      h("span", { class: "spacer" }),
      gotoForm,
      h("label", { class: "toggle" }, this.tsEl, "timestamps"),
      h("label", { class: "toggle", title: "show long lines whole, wrapped at the panel's width" }, this.wrapEl, "wrap"),
    );
    this.rowsEl = h("div", { class: "log-rows" });
    this.spacer = h("div", { class: "log-spacer" }, this.rowsEl);
    this.viewport = h(
      "div",
      {
        class: "log-viewport",
        tabindex: 0,
        role: "region",
        "aria-label": `log of ${step.name}: arrow keys move the selected line, Enter expands it, ← and → fold and unfold its group, E next error`,
        onscroll: () => this.scrolled(),
        onkeydown: (e) => this.key(e),
      },
      this.spacer,
    );
    this.detailEl = h("div", { class: "log-detail", hidden: true });
    this.el = h(
      "section",
      {
        class: `log-panel${showTs ? "" : " hide-ts"}${this.wrap ? " wrap" : ""}`,
        dataset: { stepId: this.stepId },
        "aria-label": `log panel: ${step.name}`,
        onkeydown: (e) => {
          if (e.key === "Escape" && this.el.classList.contains("fullscreen")) this.setFullScreen(false);
          else if (e.key === "/" && e.target === this.viewport) {
            e.preventDefault();
            this.searchEl.focus();
          }
        },
      },
      rowOne,
      rowTwo,
      this.viewport,
      this.detailEl,
    );
    let width = null;
    new ResizeObserver(() => {
      if (this.viewport.clientWidth === width) return;
      width = this.viewport.clientWidth;
      this.widthChanged();
    }).observe(this.viewport);
    this.updateStep(step);
  }

  // inputs

  /** A newer state of the step (from a snapshot or a `step` message). */
  updateStep(step) {
    this.total = Math.max(this.total, step.last_seq);
    const wasRunning = this.running;
    this.running = this.live && step.status === "running";
    if (wasRunning && !this.running && this.groupsReady) this.loadGroups(); // the groups as they ended
    if (this.follow && !this.running) {
      // ended while followed: its last lines stay in view; nothing more to follow
      this.follow = false;
      this.toEnd = true;
    }
    this.errorCount = (step.counts?.error ?? 0) + (step.counts?.critical ?? 0);
    this.statusEl.replaceChildren(h("span", { class: `badge st-${step.status}` }, step.status));
    this.schedule();
  }

  /** A `logs` message for this step. */
  addLines(logs) {
    this.total = Math.max(this.total, logs.last_seq);
    if (!this.matches) for (const line of logs.lines) this.cache.set(line.seq, line);
    this.noteHeights(logs.lines);
    this.noteLines(logs.lines);
    this.schedule();
  }

  /** The step's groups (again when a line names a group not known yet).
   * Without them (an older server) the log shows flat. */
  async loadGroups() {
    if (this.groupsLoading) {
      this.groupsAgain = true;
      return;
    }
    this.groupsLoading = true;
    try {
      const answer = await getJSON(`/api/steps/${this.stepId}/groups`);
      this.total = Math.max(this.total, this.folds.merge(answer.groups, this.running, this.kept()));
    } catch {
      // drawn without folds
    } finally {
      this.groupsReady = true;
      this.groupsLoading = false;
      if (this.groupsAgain) {
        this.groupsAgain = false;
        this.loadGroups();
      }
      this.schedule();
    }
  }

  /** Lines asked for: groups holding them stay unfolded. */
  kept() {
    return [this.selected, this.reveal?.seq].filter((seq) => seq !== null && seq !== undefined);
  }

  noteLines(lines) {
    this.askedGroups ??= new Set();
    const keep = this.kept();
    let unknown = false;
    for (const line of lines) {
      if (this.folds.noteLine(line, keep) || this.askedGroups.has(line.group)) continue;
      this.askedGroups.add(line.group);
      unknown = true;
    }
    if (unknown) this.loadGroups();
  }

  /** Fold (true), unfold (false) or toggle (undefined) the group `seq` opens;
   * a selected line it hides gives its selection to the opening line. */
  setFolded(seq, on) {
    if (!this.folds.fold(seq, on)) return;
    if (this.selected !== null && this.indexOf(this.selected) === null) this.moveTo(seq);
    this.schedule();
  }

  /** Select `seq` and, with `at` ("center" or "top"), bring it into view,
   * the page scrolled too. A line is shown in the full log: a filter is left. */
  select(seq, at) {
    if (this.matches && at) this.clearFilter();
    this.selected = seq;
    if (at) {
      this.folds.reveal(seq);
      this.setFollow(false);
      this.reveal = { seq, at, page: true };
    }
    this.onSelect(seq);
    this.schedule();
  }

  setFollow(on) {
    this.follow = on && this.running;
    this.schedule();
  }

  setFullScreen(on) {
    this.el.classList.toggle("fullscreen", on);
    this.fullEl.setAttribute("aria-pressed", String(on));
    this.fullEl.title = on ? "leave full screen (Esc)" : "full screen";
    this.schedule();
  }

  toggleExpanded(seq) {
    const line = this.cache.get(seq) ?? this.matches?.find((l) => l.seq === seq);
    if (this.expanded.has(seq)) this.expanded.delete(seq);
    else if (line) this.expanded.add(seq);
    this.measured.delete(seq);
    if (line) this.noteHeights([line]);
    this.schedule();
  }

  setWrap(on) {
    localStorage.setItem(WRAP_KEY, on ? "1" : "0");
    this.wrap = on;
    this.el.classList.toggle("wrap", on);
    this.cols = null;
    this.relayout();
  }

  /** The message column's width may have changed: wrapped heights are
   * predicted again once a drawn row says how many characters it holds. */
  widthChanged() {
    this.cols = null;
    if (this.wrap) this.relayout();
  }

  key(e) {
    if (e.target !== this.viewport) return;
    const pageRows = Math.max(1, Math.floor(this.viewport.clientHeight / ROW) - 1);
    const moves = { ArrowDown: 1, ArrowUp: -1, PageDown: pageRows, PageUp: -pageRows };
    let index = null;
    const current = this.selected === null ? null : this.indexOf(this.selected);
    if (e.key in moves) index = (current ?? this.rowAt(this.viewport.scrollTop) - 1) + moves[e.key];
    else if (e.key === "Home") index = 0;
    else if (e.key === "End") index = this.rowCount() - 1;
    else if (e.key === "Enter" && this.selected !== null) {
      e.preventDefault();
      if (!this.matches && this.folds.opened(this.selected)) this.setFolded(this.selected);
      else this.toggleExpanded(this.selected);
      return;
    } else if ((e.key === "ArrowLeft" || e.key === "ArrowRight") && this.selected !== null && !this.matches) {
      e.preventDefault();
      this.foldKey(e.key === "ArrowLeft");
      return;
    } else if (e.key === "e" || e.key === "E") {
      e.preventDefault();
      this.toError(e.shiftKey ? "prev" : "next");
      return;
    } else return;
    e.preventDefault();
    const count = this.rowCount();
    if (!count) return;
    index = Math.max(0, Math.min(count - 1, index));
    const seq = this.seqAt(index);
    if (seq !== undefined) this.moveTo(seq);
  }

  /** Select `seq` (a row in the list) and keep it in view, as keys do. */
  moveTo(seq) {
    this.selected = seq;
    this.setFollow(false);
    this.reveal = { seq, at: "nearest", page: false };
    this.onSelect(seq);
    this.schedule();
  }

  /** ← folds the selected group (on any other line: goes to its group's
   * opening line); → unfolds it (unfolded: goes to its first line). */
  foldKey(fold) {
    const seq = this.selected;
    const group = this.folds.opened(seq);
    if (group && fold !== this.folds.isFolded(seq)) this.setFolded(seq, fold);
    else if (fold) {
      const holder = this.cache.get(seq)?.group;
      if (holder !== null && holder !== undefined) this.moveTo(holder);
    } else if (group && seq < this.total) this.moveTo(seq + 1);
  }

  // search and errors: answered by the server for the whole step

  query() {
    return this.searchEl.value.trim();
  }

  searchChanged() {
    if (this.onlyEl.checked || this.levelEl.value) {
      this.filterChanged();
      return;
    }
    this.searched = this.query();
    this.hit = null;
    if (this.searched) this.toHit("next", 0);
    this.schedule();
  }

  /** Moves run one after the other: a key held down or pressed quickly
   * moves one match per press, each from where the last one landed. */
  queue(move) {
    this.moves = (this.moves || Promise.resolve()).then(move, move);
    return this.moves;
  }

  toHit(direction, from = null) {
    return this.queue(() => this.moveToHit(direction, from));
  }

  toError(direction, from = null, expand = false) {
    return this.queue(() => this.moveToError(direction, from, expand));
  }

  /** The next or previous match of the search from the current one (or
   * from `from`), selected and in view. */
  async moveToHit(direction, from) {
    const q = this.query();
    if (!q || this.onlyEl.checked) return;
    const seq = from ?? this.hit?.seq ?? this.selected ?? (direction === "next" ? 0 : Number.MAX_SAFE_INTEGER);
    let answer = await this.search({ q, seq, direction });
    if (!answer.seqs.length && answer.count) {
      // past the last (or before the first) match: wrap around
      answer = await this.search({ q, seq: direction === "next" ? 0 : Number.MAX_SAFE_INTEGER, direction });
    }
    if (q !== this.query()) return;
    if (answer.seqs.length) {
      this.hit = { seq: answer.seqs[0], index: answer.index, count: answer.count };
      this.select(this.hit.seq, "center");
    } else this.hit = { ...(this.hit || { seq: null, index: null }), count: answer.count, end: direction };
    this.schedule();
  }

  /** Searching ends where it got to: the hit stays selected, in its context. */
  leaveSearch() {
    this.searchEl.value = "";
    this.searched = "";
    this.hit = null;
    if (this.onlyEl.checked) this.filterChanged();
    this.viewport.focus({ preventScroll: true });
    this.schedule();
  }

  async moveToError(direction, from, expand) {
    const top = () => (this.seqAt(this.rowAt(this.viewport.scrollTop)) ?? 1) - 1;
    const seq = from ?? this.selected ?? (direction === "next" ? top() : Number.MAX_SAFE_INTEGER);
    const answer = await this.search({ level: "error", seq, direction });
    if (!answer.seqs.length) {
      this.errors = { ...(this.errors || { seq: null, index: null }), count: answer.count, end: direction };
      this.schedule();
      return;
    }
    const found = answer.seqs[0];
    this.errors = { seq: found, index: answer.index, count: answer.count };
    if (expand) this.wantExpanded.add(found);
    this.select(found, expand ? "top" : "center");
  }

  async search(params) {
    const seq = Math.min(Math.max(0, params.seq), Number.MAX_SAFE_INTEGER);
    const answer = await getJSON(`/api/steps/${this.stepId}/search`, { ...params, seq, limit: 1 });
    this.total = Math.max(this.total, answer.last_seq);
    return answer;
  }

  // filters (answered by the server)

  clearFilter() {
    this.levelEl.value = "";
    this.onlyEl.checked = false;
    if (this.matches) this.searchEl.value = "";
    this.matches = null;
    this.generation += 1;
  }

  filterChanged() {
    this.generation += 1;
    const filtered = this.levelEl.value || (this.onlyEl.checked && this.query());
    this.matches = filtered ? [] : null;
    this.hit = null;
    this.searched = this.query();
    this.scanned = 0;
    this.loadingMatches = false;
    this.scrollTo(this.follow ? Number.MAX_SAFE_INTEGER : 0);
    if (!filtered && this.query()) this.toHit("next", 0);
    this.schedule();
  }

  async loadMatches() {
    if (this.loadingMatches || this.scanned >= this.total) return;
    this.loadingMatches = true;
    const generation = this.generation;
    try {
      const page = await getJSON(`/api/steps/${this.stepId}/logs`, {
        after_seq: this.scanned,
        limit: MATCH_PAGE,
        level: this.levelEl.value,
        q: this.onlyEl.checked ? this.query() : "",
      });
      if (generation !== this.generation) return;
      this.matches.push(...page.lines);
      this.noteHeights(page.lines);
      // A short page means everything up to the step's last line was scanned.
      this.scanned = page.lines.length < MATCH_PAGE ? page.step.last_seq : page.next_after_seq;
      this.total = Math.max(this.total, page.step.last_seq);
    } finally {
      if (generation === this.generation) this.loadingMatches = false;
      this.schedule();
    }
  }

  // unfiltered windows

  async fetchWindow(seq) {
    const start = Math.floor((seq - 1) / PAGE) * PAGE;
    if (this.inflight.has(start) || this.fetched.get(start) === this.total) return;
    this.inflight.add(start);
    try {
      const page = await getJSON(`/api/steps/${this.stepId}/logs`, { after_seq: start, limit: PAGE });
      for (const line of page.lines) this.cache.set(line.seq, line);
      this.noteHeights(page.lines);
      this.noteLines(page.lines);
      this.total = Math.max(this.total, page.step.last_seq);
      this.fetched.set(start, this.total);
      this.evict();
    } finally {
      this.inflight.delete(start);
      this.schedule();
    }
  }

  evict() {
    if (this.cache.size <= KEEP) return;
    const centre = this.seqAt(this.rowAt(this.viewport.scrollTop)) ?? 0;
    for (const seq of this.cache.keys()) if (Math.abs(seq - centre) > KEEP / 2 && seq !== this.selected) this.cache.delete(seq);
    this.fetched.clear();
  }

  // geometry: rows are ROW high, an expanded row taller by its extra lines;
  // unfiltered, the rows are the seqs outside folded groups

  rowCount() {
    return this.matches ? this.matches.length : this.total - this.folds.hiddenUpTo(this.total);
  }

  /** The seq on row i. */
  seqAt(i) {
    return this.matches ? this.matches[i]?.seq : this.folds.seqAt(i);
  }

  lineAt(i) {
    return this.matches ? this.matches[i] : this.cache.get(this.folds.seqAt(i));
  }

  /** The row index of `seq` in the current list (null: not in it). */
  indexOf(seq) {
    if (!this.matches) return seq >= 1 && seq <= this.total ? this.folds.rowOf(seq) : null;
    let lo = 0;
    let hi = this.matches.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = this.matches[mid].seq;
      if (s === seq) return mid;
      if (s < seq) lo = mid + 1;
      else hi = mid - 1;
    }
    return null;
  }

  // heights: rows below a line's first, by seq

  /** Rows `line` takes: one, or one per text line when expanded; wrapped,
   * each text line as many as its characters fill message columns. */
  rowsOf(line) {
    const expanded = this.expanded.has(line.seq);
    if (!this.wrap || !this.cols) return expanded ? line.message.split("\n").length : 1;
    let lengths = LENGTHS.get(line);
    if (!lengths) {
      lengths = stripAnsi(line.message).split("\n").map((text) => text.length);
      LENGTHS.set(line, lengths);
    }
    const shown = expanded ? [...lengths] : lengths.slice(0, 1);
    const fields = fieldsText(line.fields);
    if (fields) shown[shown.length - 1] += 2 + fields.length; // drawn after the message when wrapped
    return shown.reduce((rows, n) => rows + Math.max(1, Math.ceil(n / this.cols)), 0);
  }

  setRows(seq, rows) {
    if (seq >= this.extra.length) {
      const grown = new Uint32Array(Math.max(seq + 1, this.extra.length * 2));
      grown.set(this.extra);
      this.extra = grown;
    }
    if (this.extra[seq] === rows - 1) return;
    this.extra[seq] = rows - 1;
    this.heights += 1;
  }

  /** Predict the heights of lines loaded (a drawn row's own height wins). */
  noteHeights(lines) {
    for (const line of lines) if (!this.measured.has(line.seq)) this.setRows(line.seq, this.rowsOf(line));
  }

  /** Every height predicted again (wrap or the width changed). */
  relayout() {
    const expanded = [...this.expanded].map((seq) => [seq, (this.extra[seq] || 0) + 1]); // lines maybe no longer loaded
    this.measured.clear();
    this.extra.fill(0);
    this.heights += 1;
    for (const [seq, rows] of expanded) this.setRows(seq, rows);
    this.noteHeights(this.cache.values());
    if (this.matches) this.noteHeights(this.matches);
    this.schedule();
  }

  /** After drawing, wrapped: the message column's width in characters (once
   * per width), then each drawn row's real height where it differs from
   * the prediction. True: a height changed. */
  measure() {
    const drawn = [...this.rowsEl.querySelectorAll(".ll[data-seq]:not(.pending)")];
    if (!this.cols) {
      const plain = drawn.find((row) => row.lastElementChild?.classList.contains("wrapped"));
      if (!plain) return false;
      this.chWidth ??= this.charWidth();
      const right = plain.getBoundingClientRect().right - parseFloat(getComputedStyle(plain).paddingRight);
      this.cols = Math.max(1, Math.floor((right - plain.lastElementChild.getBoundingClientRect().left) / this.chWidth));
      const before = this.heights;
      this.relayout();
      return this.heights !== before;
    }
    const before = this.heights;
    for (const row of drawn) {
      const seq = Number(row.dataset.seq);
      const rows = Math.max(1, Math.round(row.offsetHeight / ROW));
      if (rows === (this.extra[seq] || 0) + 1) continue;
      this.measured.add(seq);
      this.setRows(seq, rows);
    }
    return this.heights !== before;
  }

  /** The width of one character of the panel's monospace font. */
  charWidth() {
    const probe = h("span", { class: "ch-probe", "aria-hidden": "true" }, "0".repeat(100));
    this.viewport.append(probe);
    const width = probe.getBoundingClientRect().width / 100;
    probe.remove();
    return width || 7;
  }

  // geometry: row i is ROW high plus its seq's extra rows; unfiltered, the
  // rows are the seqs outside folded groups

  /** {prefix, n}: prefix[i] the rows above row i. Rebuilt when a height, a
   * fold, the filter or the number of rows changed; when only heights did,
   * the anchor line keeps its place in the viewport. */
  geometry() {
    const hidden = this.matches ? null : this.folds.hidden();
    const n = this.rowCount();
    const old = this.geo;
    if (old && old.hidden === hidden && old.matches === this.matches && old.n === n && old.heights === this.heights) return old;
    const same = old && old.hidden === hidden && old.matches === this.matches;
    const anchor = same && old.heights !== this.heights ? this.anchor(old) : null;
    // only rows added (a growing step): the sums above them stand
    const grow = same && old.heights === this.heights && n > old.n;
    const from = grow ? old.n : 0;
    const prefix = grow && old.prefix.length > n ? old.prefix : new Float64Array(Math.max(1024, 2 * n + 1));
    if (grow && prefix !== old.prefix) prefix.set(old.prefix.subarray(0, old.n + 1));
    const extra = this.extra;
    if (this.matches) {
      for (let i = from; i < n; i++) prefix[i + 1] = prefix[i] + 1 + (extra[this.matches[i].seq] || 0);
    } else {
      const { starts, ends } = hidden;
      let seq = this.folds.seqAt(from);
      let k = Folds.count(starts.length, (j) => starts[j] <= seq);
      for (let i = from; i < n; i++, seq++) {
        while (k < starts.length && seq >= starts[k]) seq = Math.max(seq, ends[k++] + 1);
        prefix[i + 1] = prefix[i] + 1 + (extra[seq] || 0);
      }
    }
    this.geo = { prefix, n, hidden, matches: this.matches, heights: this.heights };
    if (anchor) this.keepAnchor(anchor);
    return this.geo;
  }

  /** The row to keep in place: the selected one if in view, else the top one. */
  anchor(geo) {
    const top = this.viewport.scrollTop;
    const selected = this.selected === null ? null : this.indexOf(this.selected);
    const inView = selected !== null && selected < geo.n && geo.prefix[selected] * ROW >= top && geo.prefix[selected] * ROW < top + this.viewport.clientHeight;
    const row = inView ? selected : Math.min(geo.n, this.rowAtIn(geo, top));
    return { row, offset: geo.prefix[row] * ROW - top };
  }

  keepAnchor({ row, offset }) {
    const top = this.geo.prefix[Math.min(row, this.geo.n)] * ROW - offset;
    this.spacer.style.height = `${this.geo.prefix[this.geo.n] * ROW}px`;
    if (Math.abs(this.viewport.scrollTop - top) >= 1) this.viewport.scrollTop = Math.max(0, top);
    this.autoTop = this.viewport.scrollTop;
  }

  rowTop(i) {
    const geo = this.geometry();
    return geo.prefix[Math.max(0, Math.min(geo.n, i))] * ROW;
  }

  rowHeight(i) {
    return this.rowTop(i + 1) - this.rowTop(i);
  }

  /** The row at vertical offset y. */
  rowAt(y) {
    return this.rowAtIn(this.geometry(), y);
  }

  rowAtIn(geo, y) {
    let lo = 0;
    let hi = Math.max(0, geo.n - 1);
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (geo.prefix[mid] * ROW <= y) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  height() {
    const geo = this.geometry();
    return geo.prefix[geo.n] * ROW;
  }

  // drawing

  schedule() {
    if (this.frame === null) this.frame = requestAnimationFrame(() => this.render());
  }

  scrollTo(top) {
    const max = Math.max(0, this.height() - this.viewport.clientHeight);
    const clamped = Math.max(0, Math.min(max, top));
    this.spacer.style.height = `${this.height()}px`;
    if (Math.abs(this.viewport.scrollTop - clamped) >= 1) this.viewport.scrollTop = clamped;
    this.autoTop = this.viewport.scrollTop;
  }

  // Following stops only when the view moves up from where we last put it:
  // lines arriving between our scroll and its event (every few ms on a busy
  // step) must not switch it off, and a user's scroll up always does.
  scrolled() {
    const v = this.viewport;
    if (v.scrollTop + v.clientHeight >= v.scrollHeight - ROW / 2) this.follow = this.running;
    else if (v.scrollTop < this.autoTop - 1) this.follow = false;
    this.schedule();
  }

  /** Put the line to reveal where it was asked, once its height is known. */
  revealLine() {
    const r = this.reveal;
    const i = this.indexOf(r.seq);
    if (i === null) return;
    const line = this.lineAt(i);
    if (line && this.wantExpanded.delete(line.seq) && line.message.includes("\n")) {
      this.expanded.add(line.seq);
      this.noteHeights([line]);
    }
    const top = this.rowTop(i);
    const height = this.rowHeight(i);
    const v = this.viewport;
    if (r.at === "center") this.scrollTo(top - v.clientHeight / 2 + height / 2);
    else if (r.at === "top") this.scrollTo(top - CONTEXT_ROWS * ROW);
    else if (top < v.scrollTop) this.scrollTo(top);
    else if (top + height > v.scrollTop + v.clientHeight) this.scrollTo(top + height - v.clientHeight);
    if (line) {
      this.reveal = null;
      this.pageReveal = r.page;
    }
  }

  render() {
    this.frame = null;
    if (!this.groupsReady) {
      this.renderCount();
      return;
    }
    this.spacer.style.height = `${this.height()}px`;
    if (this.reveal) this.revealLine();
    else if (this.follow || this.toEnd) this.scrollTo(Number.MAX_SAFE_INTEGER);
    this.toEnd = false;
    const count = this.rowCount();
    const v = this.viewport;
    const first = Math.max(0, this.rowAt(v.scrollTop) - OVERSCAN);
    const last = Math.min(count, this.rowAt(v.scrollTop + v.clientHeight) + 1 + OVERSCAN);
    const rows = [];
    let missing = null;
    const q = this.matches || !this.searched ? "" : this.searched;
    for (let i = first; i < last; i++) {
      const line = this.lineAt(i);
      if (line) rows.push(this.renderLine(line, q));
      else {
        const seq = this.folds.seqAt(i);
        rows.push(h("div", { class: "ll pending" }, h("span", { class: "ln" }, seq), "…"));
        missing ??= seq;
      }
    }
    this.rowsEl.style.transform = `translateY(${this.rowTop(first)}px)`;
    this.rowsEl.replaceChildren(...rows);
    if (this.wrap && this.measure()) this.schedule();
    if (missing !== null && !this.matches) this.fetchWindow(missing);
    if (this.matches && (this.follow || last >= this.matches.length - OVERSCAN)) this.loadMatches();
    if (this.pageReveal) {
      this.pageReveal = false;
      this.rowsEl.querySelector(".ll.selected")?.scrollIntoView({ block: "nearest" });
    }
    this.renderCount();
    this.renderDetail();
    this.followEl.textContent = this.follow ? "following ⤓" : "follow ⤓";
    this.followEl.classList.toggle("on", this.follow);
    this.followEl.disabled = !this.running;
    this.followEl.setAttribute("aria-pressed", String(this.follow));
    this.followEl.title = this.running ? "keep the newest line in view" : "the step is not running";
  }

  renderCount() {
    const total = this.total.toLocaleString("en");
    this.countEl.dataset.count = String(this.total);
    if (!this.matches) this.countEl.textContent = `${total} lines`;
    else {
      const more = this.scanned < this.total ? "…" : "";
      this.countEl.textContent = `${this.matches.length.toLocaleString("en")}${more} matching of ${total} lines`;
    }
    const where = (nav, none) => {
      if (!nav) return "";
      if (!nav.count) return none;
      const at = nav.index === null ? "–" : (nav.index + 1).toLocaleString("en");
      return `${at} of ${nav.count.toLocaleString("en")}`;
    };
    this.hitEl.textContent = this.matches || !this.searched ? "" : where(this.hit, "no match");
    this.errorsEl.textContent = this.errors ? where(this.errors, "no errors") : this.errorCount ? `${this.errorCount.toLocaleString("en")} errors` : "";
    this.errorNav.classList.toggle("none", !this.errorCount);
  }

  renderLine(line, q) {
    const [first, ...rest] = line.message.split("\n");
    const expanded = this.expanded.has(line.seq);
    const message = h("span", { class: "msg", title: expanded || (this.wrap && !rest.length) ? null : stripAnsi(line.message).slice(0, MAX_UNWRAPPED) });
    if (expanded) appendAnsi(message, line.message);
    else appendAnsi(message, first.length > MAX_UNWRAPPED && !this.wrap ? `${first.slice(0, MAX_UNWRAPPED)}…` : first);
    if (q) highlight(message, q);
    const fields = fieldsText(line.fields);
    // wrapped, the fields follow the message in the text that wraps
    const body = this.wrap ? h("span", { class: "wrapped" }, message, fields ? h("span", { class: "fd" }, `  ${fields}`) : null) : message;
    const classes = ["ll", `lv-${line.level}`];
    if (line.seq === this.selected) classes.push("selected");
    if (expanded) classes.push("expanded");
    if (!this.matches && this.folds.opened(line.seq)) classes.push("group");
    if (q && this.hit?.seq === line.seq) classes.push("hit");
    return h(
      "div",
      {
        class: classes.join(" "),
        dataset: { seq: line.seq },
        style: expanded && !this.wrap ? { height: `${(rest.length + 1) * ROW}px` } : null,
        onclick: (e) => {
          e.preventDefault(); // the line number is a link to copy; here it selects
          this.select(line.seq, this.matches ? "center" : null);
        },
      },
      h("a", { class: "ln", href: this.link(line.seq), tabindex: -1 }, line.seq),
      h("span", { class: "ts", title: line.timestamp }, clock(line.timestamp)),
      h("span", { class: "lv" }, line.level),
      h("span", { class: "lg" }, line.logger ?? ""),
      ...this.groupParts(line, body),
      rest.length
        ? h(
            "button",
            {
              type: "button",
              class: "more",
              tabindex: -1,
              "aria-expanded": String(expanded),
              onclick: () => this.toggleExpanded(line.seq), // and the row's click selects it
            },
            expanded ? "fold ▲" : `⏎ +${rest.length} lines`,
          )
        : null,
      fields && !this.wrap ? h("span", { class: "fd" }, fields) : null,
    );
  }

  /** The message (wrapped: with its fields), indented by its depth; on a
   * group's opening line (in the full log) behind the group's toggle, its
   * line and error counts after. */
  groupParts(line, message) {
    if (this.matches) return [message];
    const depth = Math.min(this.folds.depth(line), MAX_INDENT);
    const indent = depth ? h("span", { class: `gi gi-${depth}`, "aria-hidden": "true" }) : null;
    const group = this.folds.opened(line.seq);
    if (!group) return [indent, message];
    const folded = this.folds.isFolded(line.seq);
    const n = Math.max(0, Math.min(group.last_seq, this.total) - group.seq);
    const lines = `${n.toLocaleString("en")} ${n === 1 ? "line" : "lines"}`;
    const errors = group.errors ? `${group.errors.toLocaleString("en")} ${group.errors === 1 ? "error" : "errors"}` : "";
    const name = group.name ?? stripAnsi(line.message.split("\n")[0]);
    return [
      indent,
      h(
        "button",
        {
          type: "button",
          class: "fold",
          tabindex: -1,
          "aria-expanded": String(!folded),
          "aria-label": `${name} — ${lines}${errors ? `, ${errors}` : ""}`,
          dataset: { lines: String(n) },
          onclick: () => this.setFolded(line.seq), // and the row's click selects it
        },
        folded ? "▸" : "▾",
      ),
      message,
      h("span", { class: "gcount" }, lines),
      errors ? h("span", { class: "gerrors" }, errors) : null,
    ];
  }

  renderDetail() {
    const line = this.selected === null ? null : (this.cache.get(this.selected) ?? this.matches?.find((l) => l.seq === this.selected));
    this.detailEl.hidden = !line;
    if (!line || this.detailEl.dataset.seq === String(line.seq)) return;
    this.detailEl.dataset.seq = String(line.seq);
    const fields = Object.entries(line.fields || {});
    this.detailEl.replaceChildren(
      h(
        "div",
        { class: "detail-head" },
        h("a", { href: this.link(line.seq) }, `line ${line.seq}`),
        ` · ${line.timestamp ?? ""} · `,
        h("span", { class: `lv lv-${line.level}` }, line.level),
        line.logger ? ` · ${line.logger}` : "",
        h("button", { type: "button", class: "close", "aria-label": "close the line's details", onclick: () => this.deselect() }, "×"),
      ),
      appendAnsi(h("pre", { class: "detail-msg" }), line.message),
      fields.length
        ? h(
            "table",
            { class: "fields" },
            fields.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, typeof v === "string" ? v : JSON.stringify(v)))),
          )
        : null,
    );
  }

  deselect() {
    this.selected = null;
    delete this.detailEl.dataset.seq;
    this.schedule();
  }
}
