// The History tab of a job: its event timeline (from the event store) and a
// replay control that shows the job's steps, progress, counts and log panels
// as the read model had them at a chosen store position.
//
// Route: #/jobs/<id>/history[/<position>]. The replay answers come from
// GET /api/jobs/<id>/replay?position=P, which folds the job's non-line events
// up to P through the same projector the live read model uses and takes the
// line counts at P from an index. A step's lines at P are its lines with
// seq <= its last_seq at P, so its panel is the live panel capped there.
//
// A job can have tens of thousands of events: the timeline is a virtual list
// (fixed row height, only the rows in view are in the DOM), so a move costs
// the same whatever the job's length.

import { getJSON } from "./api.js";
import { JOB_TABS, jobLink } from "./app.js";
import { clock, elapsed, fill, formatDuration, h, progressBar, statusBadge } from "./dom.js";
import { LogPanel } from "./logview.js";
import { JOB_FINAL, LEVELS } from "./vocabulary.js";

const EVENTS_PAGE = 1000;
const REFRESH_MS = 1000; // a running job's timeline grows at most this often
const SPEEDS = [
  ["1", "1× (real time)"],
  ["10", "10×"],
  ["100", "100×"],
  ["1000", "1000×"],
];
const TICK_MS = 100; // playback moves the replay at most this often
const ROW = 22; // px; must match `.events tbody tr` height in history.css
const OVERSCAN = 10; // timeline rows drawn above and below the viewport

/** A log panel frozen at the step's last_seq at the replayed position. */
class PanelAt extends LogPanel {
  // LogPanel raises `total` as it learns of newer lines; here the first value
  // (set by its constructor from the replayed step) is the cap.
  get total() {
    return this.cap;
  }

  set total(value) {
    this.cap ??= value;
  }

  async loadMatches() {
    await super.loadMatches();
    if (this.matches) this.matches = this.matches.filter((line) => line.seq <= this.cap);
  }
}

function who(event, names) {
  if (event.aggregate === "Manager") return "job";
  return names.get(event.originator_id) || `step ${event.originator_id.slice(0, 8)}`;
}

function summary(event) {
  const p = event.payload;
  if (event.type === "StepLogged") {
    const counts = Object.entries(p.counts).map(([level, n]) => `${n} ${level}`).join(", ");
    return `seq ${p.first_seq}–${p.last_seq} (${counts})`;
  }
  return Object.entries(p)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join("  ");
}

function countChips(counts) {
  return LEVELS.map((l) =>
    h("span", { class: `chip lv-${l.toUpperCase()}${counts[l] ? "" : " zero"}`, title: l, dataset: { level: l } }, `${l[0].toUpperCase()} ${counts[l]}`),
  );
}

class HistoryView {
  constructor(container, job) {
    this.jobId = job.id;
    this.events = [];
    this.names = new Map(); // step job id -> "name#attempt"
    this.nextAfter = 0;
    this.loading = false;
    this.loadedAt = 0;
    this.index = null; // the replayed event's index in this.events
    this.linked = Number(location.hash.split("/")[4]) || null; // #/jobs/<id>/history/<position>
    this.wantedPosition = null; // the position to show; a request may be on its way
    this.fetching = false;
    this.playing = null; // the playback timer
    this.playFrom = null;
    this.stepId = null; // the step whose panel is open
    this.panel = null;
    this.replayed = null;
    this.drawn = null; // the timeline rows in the DOM: {first, last, index}
    this.rows = new Map(); // event index -> its row, for the rows in the DOM
    this.frame = null; // the animation frame that draws next
    this.scrollTo = null; // where that frame scrolls the timeline (a seek's)
    this.viewHeight = 320; // the timeline's height, kept by a ResizeObserver (no layout reads)
    this.build(container);
    this.loadEvents();
  }

  build(container) {
    this.slider = h("input", {
      type: "range",
      min: 0,
      max: 0,
      value: 0,
      "aria-label": "replay position",
      oninput: () => this.seek(Number(this.slider.value)),
    });
    this.speedEl = h(
      "select",
      { "aria-label": "playback speed", onchange: () => this.playing && this.anchor() },
      SPEEDS.map(([value, label]) => h("option", { value }, label)),
    );
    this.speedEl.value = "10";
    this.playEl = h("button", { type: "button", class: "play", onclick: () => this.togglePlay() }, "▶ play");
    this.whereEl = h("span", { class: "replay-where", "data-testid": "replay-where" });
    this.rowsEl = h("tbody", {});
    [this.above, this.below] = [0, 1].map(() => h("tr", { class: "spacer" }, h("td", { colSpan: 6 })));
    this.timeline = h(
      "div",
      { class: "timeline", tabindex: 0, role: "region", "aria-label": "the job's events", onscroll: () => this.drawSoon() },
      h(
        "table",
        { class: "events" },
        h("colgroup", {}, ["position", "time", "aggregate", "version", "event", "summary"].map((c) => h("col", { class: `c-${c}` }))),
        h("thead", {}, h("tr", {}, ["position", "time", "aggregate", "version", "event", ""].map((t) => h("th", {}, t)))),
        this.rowsEl,
      ),
    );
    new ResizeObserver(([entry]) => {
      this.viewHeight = entry.contentRect.height;
      this.drawSoon();
    }).observe(this.timeline);
    this.stepsEl = h("tbody", {});
    this.replayEl = h(
      "section",
      { class: "replay", "data-testid": "replay" },
      h("div", { class: "replay-job" }),
      h(
        "table",
        { class: "steps replay-steps" },
        h("thead", {}, h("tr", {}, ["#", "step", "status", "progress", "lines by level", "duration"].map((t) => h("th", {}, t)))),
        this.stepsEl,
      ),
      h("div", { class: "replay-panel" }),
    );
    fill(
      container,
      h(
        "div",
        { class: "history", dataset: { jobId: this.jobId } },
        h(
          "div",
          { class: "replay-bar" },
          h("button", { type: "button", title: "first event", onclick: () => this.seek(0) }, "« first"),
          h("button", { type: "button", title: "previous event", onclick: () => this.seek(this.index - 1) }, "‹ prev"),
          this.playEl,
          h("button", { type: "button", title: "next event", onclick: () => this.seek(this.index + 1) }, "next ›"),
          h("button", { type: "button", title: "last event", onclick: () => this.seek(this.events.length - 1) }, "last »"),
          this.slider,
          this.speedEl,
          this.whereEl,
        ),
        this.replayEl,
        h("h3", {}, "Events"),
        this.timeline,
      ),
    );
  }

  /** Called on every render of the job page: a running job's timeline grows. */
  update(job) {
    const running = !JOB_FINAL.includes(job.status);
    if (running && Date.now() - this.loadedAt > REFRESH_MS) this.loadEvents();
  }

  async loadEvents() {
    if (this.loading) return;
    this.loading = true;
    try {
      for (;;) {
        const page = await getJSON(`/api/jobs/${this.jobId}/events`, { after: this.nextAfter, limit: EVENTS_PAGE, lines: "false" });
        this.addEvents(page.events);
        this.nextAfter = page.next_after;
        if (!page.has_more) break;
      }
    } finally {
      this.loading = false;
      this.loadedAt = Date.now();
    }
    if (this.index === null && this.events.length) {
      const deepLinked = this.linked === null ? -1 : this.events.findIndex((e) => e.position >= this.linked);
      this.seek(deepLinked >= 0 ? deepLinked : this.events.length - 1);
    }
  }

  addEvents(events) {
    for (const event of events) {
      if (event.aggregate === "StepJob" && event.type === "StepStarted") {
        this.names.set(event.originator_id, `${event.payload.step_name}#${event.payload.attempt}`);
      }
      this.events.push({ ...event, ms: Date.parse(event.timestamp) });
    }
    this.slider.max = String(Math.max(0, this.events.length - 1));
    this.drawn = null;
    this.drawSoon();
  }

  drawSoon() {
    if (this.frame !== null) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = null;
      const top = this.scrollTo ?? this.timeline.scrollTop;
      this.scrollTo = null;
      this.draw(top); // first, so the list is tall enough to scroll to `top`
      this.timeline.scrollTop = top;
    });
  }

  /** Put the timeline rows in view at `top` (and a few around) in the DOM, nothing more. */
  draw(top) {
    const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    const last = Math.min(this.events.length, Math.ceil((top + this.viewHeight) / ROW) + OVERSCAN);
    const d = this.drawn;
    if (d && d.first === first && d.last === last && d.index === this.index) return;
    this.drawn = { first, last, index: this.index };
    const rows = new Map(); // rows still in view are kept, not built again
    for (let i = first; i < last; i += 1) {
      const tr = this.rows.get(i) ?? this.row(i);
      tr.className = i === this.index ? "current" : i > this.index ? "future" : "";
      rows.set(i, tr);
    }
    this.rows = rows;
    this.rowsEl.replaceChildren(this.spacer(this.above, first), ...rows.values(), this.spacer(this.below, this.events.length - last));
  }

  /** A row standing for `n` undrawn rows (hidden when there are none). */
  spacer(tr, n) {
    tr.hidden = n === 0;
    tr.firstChild.style.height = `${n * ROW}px`;
    return tr;
  }

  row(i) {
    const event = this.events[i];
    return h(
      "tr",
      { dataset: { position: event.position }, onclick: () => this.seek(i) },
      h("td", { class: "num" }, String(event.position)),
      h("td", { class: "mono" }, clock(event.timestamp)),
      h("td", {}, who(event, this.names)),
      h("td", { class: "num" }, `v${event.version}`),
      h("td", {}, event.type),
      h("td", { class: "summary", title: summary(event) }, summary(event)),
    );
  }

  /** Move the replay to the event at index i (clamped) and load its state. */
  seek(i) {
    if (!this.events.length) return;
    const index = Math.max(0, Math.min(this.events.length - 1, i));
    const changed = index !== this.index;
    this.index = index;
    this.slider.value = String(index);
    const event = this.events[index];
    this.whereEl.textContent = `position ${event.position} · event ${index + 1} of ${this.events.length} · ${clock(event.timestamp)}`;
    // keep the current event in view (the header row is ROW high too), at
    // the next frame: a scrub's many input events cost one layout per frame
    this.scrollTo = Math.max(0, (index + 1) * ROW - this.viewHeight / 2);
    this.drawSoon();
    if (changed) this.loadReplay(event.position);
  }

  /** Show the replay at `position`. One request at a time: while it runs,
   * newer positions (scrubbing, playback) only replace the one to ask next. */
  async loadReplay(position) {
    this.wantedPosition = position;
    if (this.fetching) return;
    this.fetching = true;
    try {
      while (this.replayed?.position !== this.wantedPosition) {
        const job = await getJSON(`/api/jobs/${this.jobId}/replay`, { position: this.wantedPosition });
        this.replayed = job;
        this.renderReplay(job);
      }
    } catch (e) {
      fill(this.replayEl.querySelector(".replay-job"), h("span", { class: "error" }, e.message));
    } finally {
      this.fetching = false;
    }
  }

  renderReplay(job) {
    this.replayEl.dataset.position = String(job.position);
    history.replaceState(null, "", jobLink(this.jobId, "history", job.position)); // a link to this view
    fill(
      this.replayEl.querySelector(".replay-job"),
      h("span", {}, `at position ${job.position}: job `),
      statusBadge(job.status),
      progressBar(job.progress.fraction, `${job.progress.steps_done}/${job.progress.steps_total} steps`),
    );
    fill(
      this.stepsEl,
      job.steps.map((s) =>
        h(
          "tr",
          {
            dataset: { stepId: s.id || "", testid: "replay-step" },
            onclick: () => this.openPanel(s.id === this.stepId ? null : s.id),
          },
          h("td", {}, String(s.index + 1)),
          h("td", {}, s.name, s.attempt > 1 ? h("span", { class: "note" }, ` attempt ${s.attempt}`) : null),
          h("td", {}, statusBadge(s.status)),
          h(
            "td",
            {},
            progressBar(
              s.progress.fraction,
              `${s.progress.current}${s.progress.total ? `/${s.progress.total}` : ""}${s.progress.message ? ` ${s.progress.message}` : ""}`,
            ),
          ),
          h("td", { class: "counts" }, countChips(s.counts)),
          h("td", {}, s.started_at ? formatDuration(elapsed(s.started_at, s.finished_at ?? s.heartbeat_at)) : ""),
        ),
      ),
    );
    this.openPanel(this.stepId);
  }

  /** The log panel of a step as it was at the replayed position. */
  openPanel(stepId) {
    const step = stepId && this.replayed?.steps.find((s) => s.id === stepId);
    const slot = this.replayEl.querySelector(".replay-panel");
    this.stepId = step ? stepId : null;
    for (const tr of this.stepsEl.children) tr.classList.toggle("open", tr.dataset.stepId === this.stepId && !!step);
    if (!step) {
      slot.replaceChildren();
      this.panel = null;
      return;
    }
    if (this.panel?.stepId === step.id && this.panel.cap === step.last_seq) return;
    const link = (seq) => jobLink(this.jobId, "steps", step.id, "line", seq);
    this.panel = new PanelAt(step, { link, onSelect() {}, live: false });
    slot.replaceChildren(this.panel.el);
  }

  togglePlay() {
    if (this.playing) {
      this.stop();
      return;
    }
    if (this.index >= this.events.length - 1) this.seek(0);
    this.playEl.textContent = "⏸ pause";
    this.anchor();
    this.tick();
  }

  /** Playback follows a clock that runs `speed` times faster than the events
   * did, from the event shown when playing started (or the speed changed). */
  anchor() {
    this.playFrom = { wall: performance.now(), at: this.events[this.index].ms };
  }

  tick() {
    if (!this.slider.isConnected) return this.stop(); // the tab was left
    const now = this.playFrom.at + (performance.now() - this.playFrom.wall) * Number(this.speedEl.value);
    let i = this.index;
    while (i + 1 < this.events.length && this.events[i + 1].ms <= now) i += 1;
    this.seek(i);
    if (i >= this.events.length - 1) return this.stop();
    this.playing = setTimeout(() => this.tick(), TICK_MS);
  }

  stop() {
    clearTimeout(this.playing);
    this.playing = null;
    this.playEl.textContent = "▶ play";
  }
}

const views = new WeakMap(); // tab body element -> its HistoryView

function renderHistoryTab(container, job) {
  let view = views.get(container);
  if (!view || view.jobId !== job.id) {
    view = new HistoryView(container, job);
    views.set(container, view);
  }
  view.update(job);
}

JOB_TABS.push({ id: "history", label: "History", render: renderHistoryTab });
