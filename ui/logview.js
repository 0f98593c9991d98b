// One step's log panel: a virtual list with a fixed row height, so a
// 100,000-line step costs the same DOM as a 50-line one.
//
// Unfiltered, row i is the line with seq i + 1: the panel knows how many lines
// the step has (its last_seq, raised by `step` and `logs` messages), keeps a
// bounded cache of lines by seq and fetches any window it lacks. A line is
// shown from its seq slot, so it can appear once only, and a line missed for
// any reason is fetched, never skipped.
//
// Filtered (minimum level, text), the server answers: the panel loads the
// matches in seq order and loads more as the step grows.

import { appendAnsi, stripAnsi } from "./ansi.js";
import { getJSON, url } from "./api.js";
import { clock, h } from "./dom.js";

const ROW = 20; // px; must match .ll height in style.css
const OVERSCAN = 12; // rows drawn above and below the viewport
const PAGE = 500; // lines per request when filling a window
const MATCH_PAGE = 1000; // lines per request of a filtered view
const KEEP = 20_000; // lines kept around the viewport
const MAX_FIELDS_TEXT = 300;

function fieldsText(fields) {
  const text = Object.entries(fields || {})
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join("  ");
  return text.length > MAX_FIELDS_TEXT ? `${text.slice(0, MAX_FIELDS_TEXT)}…` : text;
}

export class LogPanel {
  /** step: as /api/steps shows it; link(seq): the deep link of a line. */
  constructor(step, { link, onSelect }) {
    this.stepId = step.id;
    this.link = link;
    this.onSelect = onSelect;
    this.total = step.last_seq;
    this.cache = new Map(); // seq -> line (unfiltered)
    this.fetched = new Map(); // window start -> total when fetched (no refetch loops)
    this.inflight = new Set();
    this.matches = null; // filtered: matching lines in seq order
    this.scanned = 0; // filtered: every match with seq <= scanned is in `matches`
    this.generation = 0; // bumps on a filter change; stale answers are dropped
    this.loadingMatches = false;
    this.follow = step.status === "running";
    this.selected = null;
    this.autoTop = 0; // where our own last scroll put the view
    this.frame = null;
    this.build(step);
  }

  build(step) {
    this.countEl = h("span", { class: "count", "data-testid": "line-count" });
    this.levelEl = h(
      "select",
      { title: "minimum level", "aria-label": "minimum level", onchange: () => this.filterChanged() },
      ["", "info", "warning", "error", "critical"].map((v) =>
        h("option", { value: v }, v ? `${v}+` : "all levels"),
      ),
    );
    let debounce = null;
    this.searchEl = h("input", {
      type: "search",
      placeholder: "search…",
      "aria-label": "search",
      oninput: () => {
        clearTimeout(debounce);
        debounce = setTimeout(() => this.filterChanged(), 250);
      },
    });
    const showTs = localStorage.getItem("steptrail.ts") !== "0";
    this.tsEl = h("input", {
      type: "checkbox",
      checked: showTs,
      onchange: () => {
        localStorage.setItem("steptrail.ts", this.tsEl.checked ? "1" : "0");
        this.el.classList.toggle("hide-ts", !this.tsEl.checked);
      },
    });
    this.followEl = h("button", { type: "button", class: "follow", onclick: () => this.setFollow(!this.follow) });
    this.gotoEl = h("input", { type: "number", min: 1, placeholder: "line", "aria-label": "go to line" });
    const gotoForm = h(
      "form",
      {
        class: "goto",
        onsubmit: (e) => {
          e.preventDefault();
          const seq = Number(this.gotoEl.value);
          if (seq >= 1) this.select(seq, true);
        },
      },
      this.gotoEl,
      h("button", { type: "submit" }, "go"),
    );
    this.statusEl = h("span", { class: "panel-status" });
    const toolbar = h(
      "div",
      { class: "log-toolbar" },
      h("strong", {}, `${step.name}`, step.attempt > 1 ? ` (attempt ${step.attempt})` : ""),
      this.statusEl,
      this.countEl,
      h("span", { class: "spacer" }),
      this.levelEl,
      this.searchEl,
      h("label", { class: "toggle" }, this.tsEl, "timestamps"),
      this.followEl,
      gotoForm,
      h("a", { href: url(`/api/steps/${this.stepId}/logs/download`, { format: "text" }), download: "" }, "⇩ text"),
      h("a", { href: url(`/api/steps/${this.stepId}/logs/download`, { format: "ndjson" }), download: "" }, "⇩ ndjson"),
    );
    this.rowsEl = h("div", { class: "log-rows" });
    this.spacer = h("div", { class: "log-spacer" }, this.rowsEl);
    this.viewport = h("div", { class: "log-viewport", tabindex: 0, onscroll: () => this.scrolled() }, this.spacer);
    this.detailEl = h("div", { class: "log-detail", hidden: true });
    this.el = h(
      "section",
      { class: `log-panel${showTs ? "" : " hide-ts"}`, dataset: { stepId: this.stepId } },
      toolbar,
      this.viewport,
      this.detailEl,
    );
    this.updateStep(step);
  }

  // inputs

  /** A newer state of the step (from a snapshot or a `step` message). */
  updateStep(step) {
    this.total = Math.max(this.total, step.last_seq);
    this.statusEl.replaceChildren(h("span", { class: `badge st-${step.status}` }, step.status));
    this.schedule();
  }

  /** A `logs` message for this step. */
  addLines(logs) {
    this.total = Math.max(this.total, logs.last_seq);
    if (!this.matches) for (const line of logs.lines) this.cache.set(line.seq, line);
    this.schedule();
  }

  /** Show `seq` (a deep link, or the go-to box) in the unfiltered view. */
  select(seq, scroll) {
    if (this.matches) this.clearFilter();
    this.selected = seq;
    if (scroll) {
      this.setFollow(false);
      this.scrollTo((seq - 1) * ROW - this.viewport.clientHeight / 2 + ROW / 2);
    }
    this.onSelect(seq);
    this.schedule();
  }

  setFollow(on) {
    this.follow = on;
    this.schedule();
  }

  // filters (answered by the server)

  clearFilter() {
    this.levelEl.value = "";
    this.searchEl.value = "";
    this.matches = null;
    this.generation += 1;
  }

  filterChanged() {
    this.generation += 1;
    const filtered = this.levelEl.value || this.searchEl.value.trim();
    this.matches = filtered ? [] : null;
    this.scanned = 0;
    this.loadingMatches = false;
    this.scrollTo(this.follow ? Number.MAX_SAFE_INTEGER : 0);
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
        q: this.searchEl.value.trim(),
      });
      if (generation !== this.generation) return;
      this.matches.push(...page.lines);
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
    const centre = Math.floor(this.viewport.scrollTop / ROW) + 1;
    for (const seq of this.cache.keys()) if (Math.abs(seq - centre) > KEEP / 2) this.cache.delete(seq);
    this.fetched.clear();
  }

  // drawing

  schedule() {
    if (this.frame === null) this.frame = requestAnimationFrame(() => this.render());
  }

  scrollTo(top) {
    const max = Math.max(0, this.rowCount() * ROW - this.viewport.clientHeight);
    const clamped = Math.max(0, Math.min(max, top));
    this.spacer.style.height = `${this.rowCount() * ROW}px`;
    if (Math.abs(this.viewport.scrollTop - clamped) >= 1) this.viewport.scrollTop = clamped;
    this.autoTop = this.viewport.scrollTop;
  }

  // Following stops only when the view moves up from where we last put it:
  // lines arriving between our scroll and its event (every few ms on a busy
  // step) must not switch it off, and a user's scroll up always does.
  scrolled() {
    const v = this.viewport;
    if (v.scrollTop + v.clientHeight >= v.scrollHeight - ROW / 2) this.follow = true;
    else if (v.scrollTop < this.autoTop - 1) this.follow = false;
    this.schedule();
  }

  rowCount() {
    return this.matches ? this.matches.length : this.total;
  }

  lineAt(i) {
    return this.matches ? this.matches[i] : this.cache.get(i + 1);
  }

  render() {
    this.frame = null;
    const count = this.rowCount();
    this.spacer.style.height = `${count * ROW}px`;
    if (this.follow) this.scrollTo(Number.MAX_SAFE_INTEGER);
    const v = this.viewport;
    const first = Math.max(0, Math.floor(v.scrollTop / ROW) - OVERSCAN);
    const last = Math.min(count, Math.ceil((v.scrollTop + v.clientHeight) / ROW) + OVERSCAN);
    const rows = [];
    let missing = null;
    for (let i = first; i < last; i++) {
      const line = this.lineAt(i);
      if (line) rows.push(this.renderLine(line));
      else {
        rows.push(h("div", { class: "ll pending" }, h("span", { class: "ln" }, i + 1), "…"));
        missing ??= i + 1;
      }
    }
    this.rowsEl.style.transform = `translateY(${first * ROW}px)`;
    this.rowsEl.replaceChildren(...rows);
    if (missing !== null && !this.matches) this.fetchWindow(missing);
    if (this.matches && (this.follow || last >= this.matches.length - OVERSCAN)) this.loadMatches();
    this.renderCount();
    this.renderDetail();
    this.followEl.textContent = this.follow ? "following ⤓" : "follow ⤓";
    this.followEl.classList.toggle("on", this.follow);
  }

  renderCount() {
    const total = this.total.toLocaleString("en");
    this.countEl.dataset.count = String(this.total);
    if (!this.matches) this.countEl.textContent = `${total} lines`;
    else {
      const more = this.scanned < this.total ? "…" : "";
      this.countEl.textContent = `${this.matches.length.toLocaleString("en")}${more} matching of ${total} lines`;
    }
  }

  renderLine(line) {
    const [first, ...rest] = line.message.split("\n");
    const message = h("span", { class: "msg", title: stripAnsi(line.message).slice(0, 2000) });
    appendAnsi(message, first.length > 2000 ? `${first.slice(0, 2000)}…` : first);
    const fields = fieldsText(line.fields);
    return h(
      "div",
      {
        class: `ll lv-${line.level}${line.seq === this.selected ? " selected" : ""}`,
        dataset: { seq: line.seq },
        onclick: (e) => {
          e.preventDefault(); // the line number is a link to copy; here it selects
          this.select(line.seq, false);
        },
      },
      h("a", { class: "ln", href: this.link(line.seq) }, line.seq),
      h("span", { class: "ts", title: line.timestamp }, clock(line.timestamp)),
      h("span", { class: "lv" }, line.level),
      h("span", { class: "lg" }, line.logger),
      message,
      rest.length ? h("span", { class: "more" }, `⏎ +${rest.length} lines`) : null,
      fields ? h("span", { class: "fd" }, fields) : null,
    );
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
        ` · ${line.timestamp} · `,
        h("span", { class: `lv lv-${line.level}` }, line.level),
        ` · ${line.logger}`,
        h("button", { type: "button", class: "close", onclick: () => this.deselect() }, "×"),
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
