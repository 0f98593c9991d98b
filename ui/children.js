// The children of a step that fanned out (ctx.map): its roll-up badge, and a
// table of its children that stays smooth at 10,000 rows and more.
//
// The table is a virtual list with a fixed row height over a client-side
// store of children (id -> newest state), filled from two sources: pages of
// GET /api/steps/{id}/children (in map, index, attempt order, optionally
// filtered by status) and the stream's `step` messages of children. A child
// is shown once a page read covers its place (a cursor went past it, or a
// read reached the end), so a live update never makes a row jump ahead of
// the rows loaded before it; the rest of the view's rows, counted by the
// step's roll-up, are drawn as pending until their page arrives. Pages are
// read one at a time, only as far as the view is scrolled.
//
// "failed first" lists the failed children (read by their own status-
// filtered pages, so 20 failures among 10,000 show at once) above the rest.

import { getJSON } from "./api.js";
import { formatDuration, h, statusBadge } from "./dom.js";
import { STEP_FAILED } from "./vocabulary.js";

const ROW = 28; // px; must match .child-row height in style.css
const OVERSCAN = 8;
const PAGE = 500; // children per request (the route's maximum)
const FAILED_FIRST = "failed"; // the status whose own pages lead a failed-first view

const number = (n) => n.toLocaleString("en");

function key(c) {
  return [c.map ?? 0, c.index, c.attempt];
}

function compareKeys(a, b) {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

function parseCursor(after) {
  return after.split(":").map(Number);
}

/** A child as the table keeps it, from a page row or from a stream `step`
 * message (which names its index `child_index` and carries no map or label). */
function normalize(c) {
  if (c.parent_step_job_id === undefined) return c;
  const { child_index: index, ...rest } = c;
  return { ...rest, index, map: undefined, label: undefined };
}

/** The roll-up badge: children by status, their lines by level. */
export function rollupBadge(rollup, name = "") {
  const parts = Object.entries(rollup.by_status)
    .filter(([, n]) => n)
    .map(([status, n]) => h("span", { class: `rollup-status st-${status}`, dataset: { status } }, `${number(n)} ${status}`));
  const levels = ["error", "warning"].filter((l) => rollup.counts[l]).map((l) => `${l[0].toUpperCase()} ${number(rollup.counts[l])}`);
  const lines = `${number(rollup.counts.total)} lines${levels.length ? ` (${levels.join(", ")})` : ""}`;
  const summary = [
    `${number(rollup.ended)} of ${number(rollup.total)} children ended`,
    ...Object.entries(rollup.by_status)
      .filter(([, n]) => n)
      .map(([status, n]) => `${n} ${status}`),
    lines,
  ].join(", ");
  return h(
    "span",
    { class: "rollup", role: "group", "aria-label": `${name ? `${name}: ` : ""}${summary}`, "data-testid": "rollup", title: summary },
    h("span", { class: "rollup-total" }, `${number(rollup.ended)}/${number(rollup.total)} children`),
    parts,
    h("span", { class: "rollup-lines" }, lines),
  );
}

export class ChildrenTable {
  /** step: the parent as /api/steps shows it (with `children`); link(child):
   * the address that opens a child's log; selected: the child shown. */
  constructor(step, { link, selected = null }) {
    this.stepId = step.id;
    this.stepName = step.name;
    this.link = link;
    this.selected = selected;
    this.rollup = step.children;
    this.children = new Map(); // id -> newest state
    this.byIndex = new Map(); // item index -> its latest attempt seen
    this.cursors = new Map(); // status ("" = all) -> {last: key | null, done}
    this.status = "";
    this.failedFirst = true;
    this.loading = false;
    this.rows = null; // the view's children, sorted; null: recompute
    this.frame = null;
    this.build();
    this.updateStep(step);
  }

  build() {
    this.badgeEl = h("div", { class: "rollup-wrap" });
    this.filterEl = h("select", { "aria-label": "show children with status", onchange: () => this.viewChanged() });
    this.orderEl = h("input", { type: "checkbox", checked: true, onchange: () => this.viewChanged() });
    this.shownEl = h("span", { class: "hint children-shown", "data-testid": "children-shown", "aria-live": "polite" });
    this.bodyEl = h("div", { class: "child-rows" });
    this.spacer = h("div", { class: "child-spacer" }, this.bodyEl);
    const columns = ["#", "item", "status", "attempt", "lines", "duration", "error"];
    this.viewport = h(
      "div",
      { class: "child-viewport", role: "rowgroup", onscroll: () => this.schedule() },
      this.spacer,
    );
    this.tableEl = h(
      "div",
      { class: "child-table", role: "table", "aria-label": `children of ${this.stepName}`, "aria-rowcount": "1" },
      h(
        "div",
        { role: "rowgroup", class: "child-head" },
        h("div", { role: "row", class: "child-row", "aria-rowindex": "1" }, columns.map((c) => h("div", { role: "columnheader", class: `cc cc-${c === "#" ? "no" : c}` }, c))),
      ),
      this.viewport,
    );
    this.el = h(
      "section",
      { class: "children", "aria-label": `children of ${this.stepName}`, dataset: { stepId: this.stepId } },
      h(
        "div",
        { class: "children-toolbar" },
        h("strong", {}, "children"),
        this.badgeEl,
        h("span", { class: "spacer" }),
        this.filterEl,
        h("label", { class: "toggle" }, this.orderEl, "failed first"),
        this.shownEl,
      ),
      this.tableEl,
    );
  }

  // inputs

  /** A newer state of the parent step: its roll-up. */
  updateStep(step) {
    if (!step.children) return;
    this.rollup = step.children;
    this.badgeEl.replaceChildren(rollupBadge(this.rollup, this.stepName));
    const options = [["", `all (${number(this.rollup.total)})`], ...Object.entries(this.rollup.by_status).map(([s, n]) => [s, `${s} (${number(n)})`])];
    if (this.filterEl.dataset.sig !== JSON.stringify(options)) {
      this.filterEl.dataset.sig = JSON.stringify(options);
      this.filterEl.replaceChildren(...options.map(([value, label]) => h("option", { value, selected: value === this.status }, label)));
    }
    this.schedule();
  }

  /** A child's state, from a page or a stream `step` message. */
  put(child) {
    const next = normalize(child);
    const old = this.children.get(next.id);
    if (old && old.position > next.position) return;
    // a stream message knows no map or label: keep what a page said, or what
    // another attempt of the same item said
    const sibling = old ?? this.byIndex.get(next.index);
    const kept = { ...next, map: next.map ?? sibling?.map, label: next.label ?? sibling?.label };
    this.children.set(kept.id, kept);
    this.byIndex.set(kept.index, kept);
    this.rows = null;
    this.schedule();
  }

  select(childId) {
    this.selected = childId;
    this.schedule();
  }

  viewChanged() {
    this.status = this.filterEl.value;
    this.failedFirst = this.orderEl.checked;
    this.rows = null;
    this.viewport.scrollTop = 0;
    this.schedule();
  }

  // what is shown

  /** Has a page read covering this child's status gone past it? */
  covered(child) {
    for (const status of ["", child.status]) {
      const cursor = this.cursors.get(status);
      if (cursor && (cursor.done || (child.map !== undefined && cursor.last && compareKeys(key(child), cursor.last) <= 0))) return true;
    }
    return false;
  }

  /** The cursors the current view reads from, in the order they are read. */
  sources() {
    if (this.status) return [this.status];
    return this.failedFirst ? [FAILED_FIRST, ""] : [""];
  }

  complete() {
    return this.sources().every((s) => this.cursors.get(s)?.done) || this.cursors.get("")?.done;
  }

  /** How many rows the view has, by the roll-up (some may not be loaded yet). */
  expected() {
    return this.status ? this.rollup.by_status[this.status] ?? 0 : this.rollup.total;
  }

  view() {
    if (this.rows) return this.rows;
    const failed = (c) => this.failedFirst && STEP_FAILED.includes(c.status);
    this.rows = [...this.children.values()]
      .filter((c) => (!this.status || c.status === this.status) && this.covered(c))
      .sort((a, b) => failed(b) - failed(a) || compareKeys(key(a), key(b)));
    return this.rows;
  }

  rowCount() {
    const rows = this.view();
    return this.complete() ? rows.length : Math.max(rows.length, this.expected());
  }

  // reading pages

  async loadMore() {
    if (this.loading) return;
    const status = this.sources().find((s) => !this.cursors.get(s)?.done);
    if (status === undefined || this.cursors.get("")?.done) return;
    this.loading = true;
    const cursor = this.cursors.get(status) ?? { last: null, after: null, done: false };
    try {
      const page = await getJSON(`/api/steps/${this.stepId}/children`, { status, after: cursor.after, limit: PAGE });
      page.children.forEach((c) => this.put(c));
      const after = page.next_after;
      this.cursors.set(status, { after, last: after ? parseCursor(after) : cursor.last, done: after === null });
      this.updateStep(page.step);
      this.rows = null;
    } finally {
      this.loading = false;
      this.schedule();
    }
  }

  // drawing

  schedule() {
    if (this.frame === null) this.frame = requestAnimationFrame(() => this.render());
  }

  render() {
    this.frame = null;
    const rows = this.view();
    const count = this.rowCount();
    this.spacer.style.height = `${count * ROW}px`;
    this.tableEl.setAttribute("aria-rowcount", String(count + 1));
    const v = this.viewport;
    const first = Math.max(0, Math.floor(v.scrollTop / ROW) - OVERSCAN);
    const last = Math.min(count, Math.ceil((v.scrollTop + v.clientHeight) / ROW) + OVERSCAN);
    const drawn = [];
    for (let i = first; i < last; i++) drawn.push(rows[i] ? this.renderRow(rows[i], i) : this.pendingRow(i));
    this.bodyEl.style.transform = `translateY(${first * ROW}px)`;
    this.bodyEl.replaceChildren(...drawn);
    if (!this.complete() && last + PAGE / 2 >= rows.length) this.loadMore();
    const what = this.status ? `${this.status} children` : "children";
    this.shownEl.textContent = `${number(rows.length)}${this.complete() ? "" : "…"} of ${number(count)} ${what} loaded`;
  }

  pendingRow(i) {
    return h("div", { role: "row", class: "child-row pending", "aria-rowindex": String(i + 2) }, h("div", { role: "cell", class: "cc cc-no" }, "…"));
  }

  renderRow(c, i) {
    const chosen = c.id === this.selected;
    const errors = (c.counts.error ?? 0) + (c.counts.critical ?? 0);
    return h(
      "div",
      {
        role: "row",
        class: `child-row${chosen ? " selected" : ""}${STEP_FAILED.includes(c.status) ? " failed" : ""}`,
        "aria-rowindex": String(i + 2),
        "aria-selected": String(chosen),
        dataset: { childId: c.id, index: c.index, status: c.status },
        onclick: (e) => {
          if (!e.target.closest("a")) location.hash = this.link(c);
        },
      },
      h(
        "div",
        { role: "cell", class: "cc cc-no" },
        h("a", { href: this.link(c), "aria-label": `show the log of child ${c.index}${c.attempt > 1 ? ` attempt ${c.attempt}` : ""}` }, `#${c.index}`),
      ),
      h("div", { role: "cell", class: "cc cc-item", title: c.label ?? "" }, c.label ?? ""),
      h("div", { role: "cell", class: "cc cc-status" }, statusBadge(c.status)),
      h("div", { role: "cell", class: "cc cc-attempt" }, String(c.attempt)),
      h("div", { role: "cell", class: "cc cc-lines" }, `${number(c.counts.total)}${errors ? ` · E ${number(errors)}` : ""}`),
      h("div", { role: "cell", class: "cc cc-duration" }, c.duration_seconds === null || c.duration_seconds === undefined ? "" : formatDuration(c.duration_seconds)),
      h("div", { role: "cell", class: "cc cc-error", title: c.error ?? "" }, c.error ?? ""),
    );
  }
}
