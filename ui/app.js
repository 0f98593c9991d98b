// The queue page: jobs (newest first), a job's steps, a step's log panel,
// all live over one EventSource.
//
// Every JSON answer says its position and every stream message carries the
// row's own position, so the page keeps, for each job and step, the newest
// state it has seen from either source: a snapshot and the stream can arrive
// in any order and the page still ends at the newest state.
//
// Routes: #/jobs/<id> (Steps tab; the panel follows the job: its running
// step, else the step it failed at), #/jobs/<id>/steps/<step id>[/line/<seq>]
// (a step the user picked), #/jobs/<id>/steps/<step id>/children/<child id>
// [/line/<seq>] (a child of a step that fanned out, its log in the panel),
// #/jobs/<id>/<tab id> for any other tab in JOB_TABS.

import { ApiError, Stream, getJSON, postJSON, setToken } from "./api.js";
import { ChildrenTable, rollupBadge } from "./children.js";
import { elapsed, fill, formatDuration, freezeClock, h, progressBar, statusBadge } from "./dom.js";
import { LogPanel } from "./logview.js";
import { renderTimeline } from "./timeline.js";
import { JOB_FINAL, LEVELS, STEP_FAILED } from "./vocabulary.js";

const LIST_SIZE = 50;

// Newest state of every job and step seen, from snapshots and the stream.
const store = { jobs: new Map(), stepsByJob: new Map() };
const view = {
  jobId: null,
  tab: "steps",
  stepId: null,
  childId: null,
  line: null,
  loadedJob: null,
  panel: null,
  children: null, // the ChildrenTable of the panel's step, when it fanned out
  childLoading: null,
  revealLine: false,
  level: "",
  revealDetail: false,
};
// The job list: filters, and how far down its pages have been loaded.
const list = { status: "", definition: "", q: "", floor: Infinity, nextBefore: null, total: 0, top: 0, loading: false, generation: 0 };
const $ = (id) => document.getElementById(id);

function isNewer(current, next) {
  return !current || next.position >= current.position;
}

function putJob(job) {
  if (job.status === "deleted") {
    // A deleted job leaves the list (see README, "Deleting jobs and retention").
    store.jobs.delete(job.id);
    store.stepsByJob.delete(job.id);
    return;
  }
  const { steps, ...row } = job;
  if (isNewer(store.jobs.get(row.id), row)) store.jobs.set(row.id, row);
  for (const step of steps || []) if (step.id) putStep(step);
}

/** Returns the state to show for the step (the newest). */
function putStep(step) {
  let steps = store.stepsByJob.get(step.job_id);
  if (!steps) store.stepsByJob.set(step.job_id, (steps = new Map()));
  if (isNewer(steps.get(step.id), step)) steps.set(step.id, step);
  return steps.get(step.id);
}

export function jobLink(jobId, ...rest) {
  return `#/jobs/${jobId}${rest.length ? `/${rest.join("/")}` : ""}`;
}

/** An error as shown beside its status badge: "abandoned" + "the server
 * stopped", never "abandoned: abandoned: the server stopped". */
function errorText(error, status) {
  let text = error.replace(/\b([\w-]+): \1: /g, "$1: ");
  if (status && text.startsWith(`${status}: `)) text = text.slice(status.length + 2);
  return text;
}

/** A child as its log panel names it: its step's name and its index. */
function childStep(child) {
  return { ...child, name: `${child.name} #${child.child_index}` };
}

/** A step's progress label, without saying the same count twice. */
function progressLabel(p) {
  const count = `${p.current}${p.total ? `/${p.total}` : ""}`;
  if (!p.message) return count;
  return p.message.includes(count) ? p.message : `${count} ${p.message}`;
}

// ---- the stream

const CONNECTION = {
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  offline: "offline, retrying…",
};

const stream = new Stream({
  onMessage(type, data) {
    if (type === "job") putJob(data);
    else if (type === "step" && data.parent_step_job_id) {
      // a child: its row in the children table, its log panel if open (never a step row)
      if (view.children?.stepId === data.parent_step_job_id) view.children.put(data);
      if (view.panel?.stepId === data.id) view.panel.updateStep(childStep(data));
    } else if (type === "step") {
      const newest = putStep(data);
      if (view.panel?.stepId === data.id) view.panel.updateStep(newest);
      if (view.children?.stepId === data.id) view.children.updateStep(newest);
    } else if (type === "logs" && view.panel?.stepId === data.step_job_id) view.panel.addLines(data);
    schedule();
  },
  onState(state) {
    const el = $("conn");
    el.dataset.state = state;
    el.textContent = CONNECTION[state];
    // Lost: say so where it is seen, and stop durations counting on stale states.
    const lost = state === "reconnecting" || state === "offline";
    const banner = $("offline");
    if (lost && banner.hidden) {
      const since = new Date();
      freezeClock(since.getTime());
      banner.textContent = `The server cannot be reached since ${since.toLocaleTimeString()}: retrying. What you see is as it was then.`;
      banner.dataset.since = since.toISOString();
      banner.hidden = false;
    } else if (state === "live") {
      freezeClock(null);
      banner.hidden = true;
    }
    schedule();
  },
});

// ---- rendering, at most once per frame

let frame = null;
function schedule() {
  if (frame === null) frame = requestAnimationFrame(render);
}

function render() {
  frame = null;
  renderJobList();
  renderDetail();
  if (view.revealDetail && view.jobId && store.jobs.has(view.jobId)) {
    view.revealDetail = false;
    const top = $("detail").getBoundingClientRect().top;
    if (top < 0 || top > window.innerHeight * 0.6) $("detail").scrollIntoView({ block: "start" });
  }
}

/** Keep `parent`'s children in the order of `items`, reusing elements by key:
 * a row under the pointer is updated in place, never replaced. */
function sync(parent, items, keyOf, create, update) {
  const old = new Map([...parent.children].map((el) => [el.dataset.key, el]));
  const els = items.map((item) => {
    const key = keyOf(item);
    let el = old.get(key);
    if (!el) {
      el = create(item);
      el.dataset.key = key;
    }
    update(el, item);
    return el;
  });
  if (els.length !== parent.children.length || els.some((el, i) => parent.children[i] !== el)) parent.replaceChildren(...els);
}

/** Refill a cell only when what it shows changed. */
function setCell(cell, signature, ...children) {
  if (cell.dataset.sig !== signature) {
    cell.dataset.sig = signature;
    fill(cell, ...children);
  }
}

function attemptsOf(jobId) {
  return [...(store.stepsByJob.get(jobId)?.values() || [])];
}

/** A job's progress, including its running steps' progress since the job row changed. */
function jobFraction(job) {
  const running = attemptsOf(job.id).filter((s) => s.status === "running");
  if (job.status !== "running" || !running.length) return job.progress.fraction;
  const partial = running.reduce((sum, s) => sum + (s.progress.fraction ?? 0), 0);
  return Math.min(1, (job.progress.steps_done + partial) / job.progress.steps_total);
}

// ---- the job list: pages as it scrolls, filtered by the server

function listed(job) {
  if (list.status && job.status !== list.status) return false;
  if (list.definition && job.definition !== list.definition) return false;
  if (list.q) {
    const q = list.q.trim().replace(/^#/, "");
    if (!(/^\d+$/.test(q) ? job.number === Number(q) : job.id.startsWith(list.q.trim().toLowerCase()))) return false;
  }
  return job.number >= list.floor || (list.nextBefore === null && list.floor !== Infinity);
}

async function loadJobs(reset) {
  if (reset) {
    list.generation += 1;
    Object.assign(list, { floor: Infinity, nextBefore: null, total: 0, top: 0, loading: false });
  }
  if (list.loading || (!reset && list.nextBefore === null)) return;
  list.loading = true;
  const generation = list.generation;
  try {
    const page = await getJSON("/api/jobs", {
      limit: LIST_SIZE,
      before: reset ? null : list.nextBefore,
      status: list.status,
      definition: list.definition,
      q: list.q.trim(),
    });
    if (generation !== list.generation) return;
    page.jobs.forEach(putJob);
    if (reset) Object.assign(list, { total: page.total, top: page.jobs[0]?.number ?? 0 });
    list.floor = Math.min(list.floor, page.jobs.at(-1)?.number ?? list.floor);
    if (!page.jobs.length && list.floor === Infinity) list.floor = 0;
    list.nextBefore = page.next_before;
    if (reset && stream.position === null) stream.start(page.position);
  } catch (e) {
    fail(e);
  } finally {
    if (generation === list.generation) list.loading = false;
    schedule();
  }
}

/** More of the list when its end is (nearly) in view. */
function loadMoreIfNeeded() {
  const box = $("jobs-scroll");
  if (list.nextBefore !== null && box.scrollTop + box.clientHeight >= box.scrollHeight - 200) loadJobs(false);
}

function renderJobList() {
  const jobs = [...store.jobs.values()].filter(listed).sort((a, b) => b.number - a.number);
  const newer = jobs.filter((j) => j.number > list.top).length; // arrived since the list loaded
  const total = list.total + newer;
  $("jobs-empty").hidden = jobs.length > 0 || list.loading;
  $("jobs-total").textContent = total ? `${jobs.length.toLocaleString("en")} of ${total.toLocaleString("en")}` : "";
  const more = $("jobs-more");
  more.hidden = list.nextBefore === null;
  more.disabled = list.loading;
  sync(
    $("jobs"),
    jobs,
    (j) => j.id,
    () => h("a", { class: "job-row" }, ...["no", "def", "st", "pg", "dur"].map((c) => h("span", { class: `c-${c}` }))),
    (el, job) => {
      const [no, def, st, pg, dur] = el.children;
      el.href = jobLink(job.id);
      el.classList.toggle("open", job.id === view.jobId);
      if (job.id === view.jobId) el.setAttribute("aria-current", "page");
      else el.removeAttribute("aria-current");
      setCell(no, String(job.number), `#${job.number}`);
      setCell(def, job.definition, job.definition);
      setCell(st, job.status, statusBadge(job.status));
      const fraction = jobFraction(job);
      const label = `${job.progress.steps_done}/${job.progress.steps_total} steps`;
      setCell(pg, `${fraction}|${label}|${job.status}`, progressBar(fraction, label, job.status));
      dur.textContent = formatDuration(elapsed(job.started_at, job.finished_at));
    },
  );
  if (!list.loading) loadMoreIfNeeded();
}

function setupJobList() {
  const apply = () => {
    list.status = $("jobs-status").value;
    list.definition = $("jobs-definition").value;
    list.q = $("jobs-find").value;
    loadJobs(true);
    schedule();
  };
  let debounce = null;
  $("jobs-status").onchange = apply;
  $("jobs-definition").onchange = apply;
  $("jobs-find").oninput = () => {
    clearTimeout(debounce);
    debounce = setTimeout(apply, 250);
  };
  $("jobs-filter").onsubmit = (e) => {
    e.preventDefault();
    clearTimeout(debounce);
    apply();
  };
  $("jobs-scroll").addEventListener("scroll", loadMoreIfNeeded, { passive: true });
  $("jobs-more").onclick = () => loadJobs(false);
}

// ---- a job

// Tabs of a job's page: {id, label, render(container, job)}. Routes are
// #/jobs/<id>/<tab id>; "steps" is the default. A tab is added by pushing here.
export const JOB_TABS = [{ id: "steps", label: "Steps", render: renderStepsTab }];

function renderDetail() {
  const container = $("detail");
  const job = view.jobId && store.jobs.get(view.jobId);
  if (!view.jobId) {
    setCell(container, "empty", h("p", { class: "hint" }, "Pick a job on the left, or submit one."));
    view.panel = null;
    stream.follow(null);
    return;
  }
  if (!job) {
    setCell(container, `loading:${view.jobId}`, h("p", { class: "hint" }, "loading…"));
    return;
  }
  if (container.dataset.sig !== `job:${job.id}:${view.tab}`) {
    container.dataset.sig = `job:${job.id}:${view.tab}`;
    view.panel = null;
    fill(
      container,
      h("div", { id: "job-head" }),
      h(
        "nav",
        { class: "tabs", role: "tablist", "aria-label": "job views" },
        JOB_TABS.map((t) =>
          h(
            "a",
            {
              href: jobLink(job.id, t.id),
              class: t.id === view.tab ? "active" : "",
              role: "tab",
              id: `tab-${t.id}`,
              "aria-selected": String(t.id === view.tab),
              "aria-controls": "tab-body",
            },
            t.label,
          ),
        ),
      ),
      h("div", { id: "tab-body", role: "tabpanel", "aria-labelledby": `tab-${view.tab}` }),
    );
  }
  renderJobHead(job);
  const tab = JOB_TABS.find((t) => t.id === view.tab) || JOB_TABS[0];
  tab.render($("tab-body"), job);
  if (tab.id !== "steps") stream.follow(null);
}

function renderJobHead(job) {
  const head = $("job-head");
  const finished = JOB_FINAL.includes(job.status);
  const signature = JSON.stringify([job.status, job.error, job.cancel_requested, job.progress, job.params]);
  setCell(
    head,
    signature,
    h(
      "div",
      { class: "title" },
      h("h2", {}, `${job.definition} #${job.number}`),
      statusBadge(job.status),
      job.cancel_requested && !finished ? h("span", { class: "note" }, "cancel requested") : null,
      h("span", { class: "spacer" }),
      h("button", { type: "button", disabled: finished, onclick: () => command(job, "cancel") }, "Cancel"),
      h("button", { type: "button", disabled: !["failed", "cancelled"].includes(job.status), onclick: () => command(job, "retry") }, "Retry"),
    ),
    h("div", { class: "job-progress" }),
    h(
      "div",
      { class: "meta" },
      h("span", { class: "job-duration" }),
      h("span", {}, `created ${new Date(job.created_at).toLocaleString()}`),
      h("code", { class: "params" }, JSON.stringify(job.params)),
    ),
    job.error ? h("p", { class: "error" }, errorText(job.error, job.status)) : null,
    h("p", { class: "command-error", hidden: true }),
  );
  const fraction = jobFraction(job);
  const percent = `${Math.round((fraction ?? 0) * 100)}%`;
  setCell(head.querySelector(".job-progress"), `${fraction}|${job.status}`, progressBar(fraction, `${job.status}, ${percent}`, job.status));
  head.querySelector(".job-duration").textContent = `duration ${formatDuration(elapsed(job.started_at, job.finished_at)) || "–"}`;
}

async function command(job, name) {
  const error = $("job-head").querySelector(".command-error");
  try {
    putJob(await postJSON(`/api/jobs/${job.id}/${name}`));
    error.hidden = true;
  } catch (e) {
    error.hidden = false;
    error.textContent = e.message;
  }
  schedule();
}

/** One row per step attempt; a step that has not started shows its name and status. */
function stepRows(job) {
  const attempts = attemptsOf(job.id);
  const rows = [];
  job.step_names.forEach((name, index) => {
    const mine = attempts.filter((s) => s.index === index).sort((a, b) => a.attempt - b.attempt);
    if (mine.length) rows.push(...mine);
    else rows.push({ id: null, name, index, attempt: 0, status: job.step_status[index], counts: null, progress: null });
  });
  return rows;
}

function renderStepsTab(container, job) {
  if (!container.firstChild) {
    container.append(
      h("div", { id: "timeline", class: "gantt" }),
      h(
        "div",
        { class: "steps-wrap" },
        h(
          "table",
          { class: "steps" },
          h("thead", {}, h("tr", {}, ["#", "step", "status", "progress", "lines by level", "duration", ""].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", { id: "steps" }),
        ),
      ),
      h("div", { id: "panel-slot" }),
    );
  }
  renderTimeline($("timeline"), job, attemptsOf(job.id), (s) => openStep(job, s));
  sync(
    $("steps"),
    stepRows(job),
    (s) => s.id || `pending:${s.index}`,
    () => h("tr", {}, ...Array.from({ length: 7 }, () => h("td", {}))),
    (tr, s) => renderStepRow(tr, job, s),
  );
  renderPanel(job);
}

/** Pick a step: its panel opens (a level chip opens it filtered to that level). */
function openStep(job, step, level = "") {
  if (!step.id) return;
  if (view.panel?.stepId === step.id && view.stepId === step.id) {
    if (level) {
      view.panel.levelEl.value = level;
      view.panel.filterChanged();
    }
    return;
  }
  view.level = level;
  location.hash = jobLink(job.id, "steps", step.id);
}

function renderStepRow(tr, job, s) {
  const [idx, name, st, pg, counts, dur, logs] = tr.children;
  const open = s.id !== null && s.id === view.panel?.stepId;
  tr.classList.toggle("open", open);
  tr.classList.toggle("openable", s.id !== null);
  tr.dataset.stepId = s.id || "";
  if (!tr.onclick) {
    tr.onclick = (e) => {
      if (e.target.closest("a, button")) return;
      const step = store.stepsByJob.get(job.id)?.get(tr.dataset.stepId);
      if (step) openStep(job, step);
    };
  }
  setCell(idx, String(s.index), String(s.index + 1));
  setCell(
    name,
    `${s.name}|${s.attempt}|${JSON.stringify(s.children)}`,
    s.name,
    s.attempt > 1 ? h("span", { class: "note" }, ` attempt ${s.attempt}`) : null,
    s.children ? h("div", {}, rollupBadge(s.children, s.name)) : null,
  );
  setCell(st, `${s.status}|${s.error}`, statusBadge(s.status), s.error ? h("div", { class: "error small" }, errorText(s.error, s.status)) : null);
  if (s.progress) {
    const label = progressLabel(s.progress);
    setCell(pg, `${s.progress.fraction}|${label}|${s.status}`, progressBar(s.progress.fraction, label, s.status));
  } else setCell(pg, "", "");
  const c = s.counts;
  setCell(
    counts,
    JSON.stringify(c),
    c
      ? LEVELS.map((l) =>
          h(
            "button",
            {
              type: "button",
              class: `chip lv-${l.toUpperCase()}${c[l] ? "" : " zero"}`,
              title: `${c[l]} ${l} lines${c[l] ? `: show ${l} and above` : ""}`,
              "aria-label": `${c[l]} ${l} lines of ${s.name}${c[l] ? `: show ${l} and above` : ""}`,
              disabled: !c[l],
              dataset: { level: l },
              onclick: () => openStep(job, s, l === "debug" ? "" : l),
            },
            `${l[0].toUpperCase()} ${c[l]}`,
          ),
        )
      : null,
  );
  dur.textContent = s.started_at ? formatDuration(elapsed(s.started_at, s.finished_at)) : "";
  const pinned = s.id !== null && s.id === view.stepId;
  setCell(
    logs,
    `${s.id}|${pinned}|${open}`,
    s.id
      ? h(
          "a",
          {
            class: "logs-link",
            href: pinned ? jobLink(job.id) : jobLink(job.id, "steps", s.id),
            "aria-label": `${pinned ? "hide the log of" : "show the log of"} ${s.name}${s.attempt > 1 ? ` attempt ${s.attempt}` : ""}`,
          },
          pinned ? "hide logs" : "logs",
        )
      : null,
  );
}

/** The step the panel shows. A picked step (in the address) stays; else
 * the panel follows the job: its running step, else the step it failed or
 * was cancelled at, else the step it showed last. */
function panelStep(job) {
  const attempts = attemptsOf(job.id);
  if (view.stepId) return attempts.find((s) => s.id === view.stepId) || null;
  const latest = (statuses) =>
    attempts.filter((s) => statuses.includes(s.status)).sort((a, b) => b.index - a.index || b.attempt - a.attempt)[0];
  if (job.status === "running") {
    const running = latest(["running"]);
    if (running) return running;
  }
  if (job.status === "failed") return latest(STEP_FAILED) || null;
  if (job.status === "cancelled") return latest(["cancelled", ...STEP_FAILED]) || null;
  return attempts.find((s) => s.id === view.panel?.stepId) || null;
}

function renderPanel(job) {
  const slot = $("panel-slot");
  const step = panelStep(job);
  if (!step) {
    if (slot.firstChild) slot.replaceChildren();
    Object.assign(view, { panel: null, children: null });
    stream.follow(null);
    return;
  }
  const children = childrenTable(job, step);
  const shown = (children && view.childId) || step.id;
  stream.follow(shown);
  if (view.panel?.stepId !== shown) {
    view.panel = null;
    if (shown === step.id) view.panel = logPanel(job, step, step, null);
    else openChild(job, step, shown);
  }
  const els = [children?.el, view.panel?.el].filter(Boolean);
  if (els.length !== slot.children.length || els.some((el, i) => slot.children[i] !== el)) slot.replaceChildren(...els);
  if (view.panel && view.revealLine) {
    view.revealLine = false; // a new panel opens at the line in the address
    if (view.line) view.panel.select(view.line, "center");
  }
}

/** The children table of a step that fanned out (null: it did not). */
function childrenTable(job, step) {
  if (!step.children) return (view.children = null);
  if (view.children?.stepId !== step.id) {
    view.children = new ChildrenTable(step, { link: (c) => jobLink(job.id, "steps", step.id, "children", c.id) });
  }
  view.children.select(view.childId);
  return view.children;
}

/** A log panel for `shown` (the step, or one of its children: `childId`). */
function logPanel(job, step, shown, childId) {
  const where = childId ? ["steps", step.id, "children", childId] : ["steps", step.id];
  const link = (seq) => jobLink(job.id, ...where, "line", seq);
  const landing = STEP_FAILED.includes(shown.status) && !view.line && !view.level ? "failure" : null;
  const panel = new LogPanel(shown, {
    link,
    landing,
    level: view.level,
    onSelect(seq) {
      // a line picked is the step picked: the panel stops following the job
      Object.assign(view, { stepId: step.id, childId, line: seq });
      history.replaceState(null, "", link(seq));
      schedule();
    },
  });
  view.level = "";
  view.revealLine = true;
  return panel;
}

/** A child's log opens once its state is read (a child row lacks last_seq). */
async function openChild(job, step, childId) {
  if (view.childLoading === childId) return;
  view.childLoading = childId;
  try {
    const child = await getJSON(`/api/steps/${childId}`);
    if (view.childId === childId && !view.panel) view.panel = logPanel(job, step, childStep(child), childId);
  } catch (e) {
    fail(e);
  } finally {
    view.childLoading = null;
    schedule();
  }
}

// ---- routing

function parseHash() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] !== "jobs" || !parts[1]) return { jobId: null, tab: "steps", stepId: null, childId: null, line: null };
  const steps = !parts[2] || parts[2] === "steps";
  const childId = steps && parts[4] === "children" && parts[5] ? parts[5] : null;
  const at = childId ? 6 : 4; // where /line/<seq> starts
  return {
    jobId: parts[1],
    tab: steps ? "steps" : parts[2],
    stepId: steps && parts[3] ? parts[3] : null,
    childId,
    line: steps && parts[at] === "line" ? Number(parts[at + 1]) || null : null,
  };
}

async function route() {
  const next = parseHash();
  const shown = next.childId || next.stepId;
  const sameStep = shown && shown === view.panel?.stepId;
  if (next.jobId !== view.jobId) view.revealDetail = true;
  Object.assign(view, { jobId: next.jobId, tab: next.tab, stepId: next.stepId, childId: next.childId, line: next.line });
  if (sameStep && next.line) view.panel.select(next.line, "center");
  schedule();
  if (view.jobId && view.loadedJob !== view.jobId) {
    view.loadedJob = view.jobId;
    try {
      putJob(await getJSON(`/api/jobs/${view.jobId}`));
    } catch (e) {
      fail(e);
    }
    schedule();
  }
}

// ---- submitting

/** An input for a param, with its declared constraints for the browser to check. */
function paramInput(p) {
  const id = `param-${p.name}`;
  const common = { id, name: p.name, dataset: { type: p.type }, "aria-describedby": `${id}-help` };
  if (p.type === "boolean") return h("input", { ...common, type: "checkbox", checked: Boolean(p.default) });
  if (p.choices) {
    return h(
      "select",
      common,
      p.choices.map((c) => h("option", { value: String(c), selected: c === p.default }, c === "" ? "(none)" : String(c))),
    );
  }
  const number = p.type === "integer" || p.type === "number";
  return h("input", {
    ...common,
    type: p.secret ? "password" : number ? "number" : "text",
    autocomplete: p.secret ? "off" : undefined,
    step: p.type === "integer" ? "1" : number ? "any" : undefined,
    min: p.min ?? undefined,
    max: p.max ?? undefined,
    pattern: p.pattern ?? undefined,
    value: p.secret ? "" : (p.default ?? ""),
    placeholder: p.help,
  });
}

function constraintText(p) {
  const parts = [];
  if (p.min !== null && p.min !== undefined && p.max !== null && p.max !== undefined) parts.push(`${p.min}–${p.max}`);
  else if (p.min !== null && p.min !== undefined) parts.push(`≥ ${p.min}`);
  else if (p.max !== null && p.max !== undefined) parts.push(`≤ ${p.max}`);
  return [p.help, ...parts].filter(Boolean).join(" · ");
}

async function loadDefinitions() {
  const { definitions } = await getJSON("/api/definitions");
  const select = $("definition");
  fill(select, definitions.map((d) => h("option", { value: d.name, title: d.description }, d.name)));
  fill($("jobs-definition"), h("option", { value: "" }, "all definitions"), definitions.map((d) => h("option", { value: d.name }, d.name)));
  if (definitions.some((d) => d.name === "demo")) select.value = "demo";
  const showParams = () => {
    const d = definitions.find((x) => x.name === select.value);
    fill(
      $("params"),
      (d?.params || []).map((p) =>
        h(
          "div",
          { class: "param" },
          h("label", { for: `param-${p.name}` }, p.name),
          paramInput(p),
          h("small", { id: `param-${p.name}-help`, class: "param-help" }, constraintText(p)),
        ),
      ),
    );
  };
  select.onchange = showParams;
  showParams();
}

async function submit(e) {
  e.preventDefault();
  const params = {};
  for (const input of $("params").querySelectorAll("input, select")) {
    const t = input.dataset.type;
    if (t === "boolean") params[input.name] = input.checked;
    else if (input.value === "" && input.tagName === "INPUT") continue;
    else params[input.name] = t === "integer" ? parseInt(input.value, 10) : t === "number" ? Number(input.value) : input.value;
  }
  const error = $("submit-error");
  try {
    const job = await postJSON("/api/jobs", { definition: $("definition").value, params });
    error.hidden = true;
    putJob(job);
    location.hash = jobLink(job.id);
  } catch (err) {
    error.hidden = false;
    error.textContent = err.message;
    const field = err.field?.startsWith("params.") && $(`param-${err.field.slice(7)}`);
    if (field) field.setAttribute("aria-invalid", "true");
  }
}

// ---- start

function fail(e) {
  if (e instanceof ApiError && e.status === 401) {
    $("token-form").hidden = false;
    return;
  }
  const box = $("page-error");
  box.hidden = false;
  box.textContent = e.message;
}

// A stored event the projection could not apply leaves its job shown without
// it: say which (from /healthz), as text only.
const HEALTH_SECONDS = 10;

async function showUnapplied() {
  let health;
  try {
    health = await getJSON("/healthz");
  } catch {
    return; // the server is unreachable or degraded: the connection badge says so
  }
  const box = $("unapplied");
  const unapplied = health.unapplied_events;
  box.hidden = !unapplied || unapplied.count === 0;
  if (box.hidden) return;
  const e = unapplied.latest[0];
  const what = unapplied.count === 1 ? "1 stored event" : `${unapplied.count} stored events (latest shown)`;
  box.textContent =
    `${what} could not be applied to the read model: position ${e.position}, ` +
    `${e.event_type} of ${e.originator_id} v${e.originator_version}: ${e.error}. ` +
    "Everything else is shown; see /healthz.";
}

// Light, dark, or as the system says (prefers-color-scheme); kept per browser.
// The page always carries the theme in effect (html[data-theme]), so the
// stylesheet names the dark colours once.
const THEMES = ["auto", "dark", "light"];
const THEME_KEY = "steptrail.theme";
const SYSTEM_DARK = matchMedia("(prefers-color-scheme: dark)");

function setTheme(theme) {
  const dark = theme === "dark" || (theme === "auto" && SYSTEM_DARK.matches);
  document.documentElement.dataset.theme = dark ? "dark" : "light";
  localStorage.setItem(THEME_KEY, theme);
  const button = $("theme");
  button.textContent = { auto: "◐ auto", dark: "☾ dark", light: "☀ light" }[theme];
  button.setAttribute("aria-label", `colour theme: ${theme}; change`);
}

async function start() {
  setTheme(localStorage.getItem(THEME_KEY) || "auto");
  SYSTEM_DARK.addEventListener("change", () => setTheme(localStorage.getItem(THEME_KEY) || "auto"));
  $("theme").onclick = () => {
    const now = localStorage.getItem(THEME_KEY) || "auto";
    setTheme(THEMES[(THEMES.indexOf(now) + 1) % THEMES.length]);
  };
  $("submit-form").addEventListener("submit", submit);
  // The browser checks each param against its constraints before sending: say which failed.
  $("submit-form").addEventListener(
    "invalid",
    (e) => {
      const error = $("submit-error");
      error.hidden = false;
      error.textContent = `${e.target.name}: ${e.target.validationMessage}`;
    },
    true,
  );
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    setToken($("token").value);
    location.reload();
  });
  setupJobList();
  window.addEventListener("hashchange", route);
  route();
  try {
    await Promise.all([loadJobs(true), loadDefinitions()]);
  } catch (e) {
    fail(e);
  }
  schedule();
  showUnapplied();
  setInterval(showUnapplied, HEALTH_SECONDS * 1000);
  // Durations of running jobs and steps tick (not while the server is away).
  setInterval(() => {
    if ($("offline").hidden && [...store.jobs.values()].some((j) => j.status === "running")) schedule();
  }, 1000);
}

start();
