// The queue page: jobs (newest first), a job's steps, a step's log panel,
// all live over one EventSource.
//
// Every JSON answer says its position and every stream message carries the
// row's own position, so the page keeps, for each job and step, the newest
// state it has seen from either source: a snapshot and the stream can arrive
// in any order and the page still ends at the newest state.
//
// Routes: #/jobs/<id> (Steps tab), #/jobs/<id>/steps/<step id>[/line/<seq>],
// #/jobs/<id>/<tab id> for any other tab in JOB_TABS.

import { ApiError, Stream, getJSON, postJSON, setToken } from "./api.js";
import { elapsed, fill, formatDuration, h, progressBar, statusBadge } from "./dom.js";
import { LogPanel } from "./logview.js";
import { JOB_FINAL, LEVELS } from "./vocabulary.js";

const LIST_SIZE = 50;

// Newest state of every job and step seen, from snapshots and the stream.
const store = { jobs: new Map(), stepsByJob: new Map() };
const view = { jobId: null, tab: "steps", stepId: null, line: null, loadedJob: null, panel: null };
const $ = (id) => document.getElementById(id);

function isNewer(current, next) {
  return !current || next.position >= current.position;
}

function putJob(job) {
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

// ---- the stream

const stream = new Stream({
  onMessage(type, data) {
    if (type === "job") putJob(data);
    else if (type === "step") {
      const newest = putStep(data);
      if (view.panel?.stepId === data.id) view.panel.updateStep(newest);
    } else if (type === "logs" && view.panel?.stepId === data.step_job_id) view.panel.addLines(data);
    schedule();
  },
  onState(state) {
    const el = $("conn");
    el.dataset.state = state;
    el.textContent = { connecting: "connecting…", live: "live", reconnecting: "reconnecting…", offline: "offline, retrying…" }[state];
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

function runningSteps(jobId) {
  return [...(store.stepsByJob.get(jobId)?.values() || [])].filter((s) => s.status === "running");
}

/** A job's progress, including its running steps' progress since the job row changed. */
function jobFraction(job) {
  const running = runningSteps(job.id);
  if (job.status !== "running" || !running.length) return job.progress.fraction;
  const partial = running.reduce((sum, s) => sum + (s.progress.fraction ?? 0), 0);
  return Math.min(1, (job.progress.steps_done + partial) / job.progress.steps_total);
}

function renderJobList() {
  const jobs = [...store.jobs.values()].sort((a, b) => b.number - a.number).slice(0, LIST_SIZE);
  $("jobs-empty").hidden = jobs.length > 0;
  sync(
    $("jobs"),
    jobs,
    (j) => j.id,
    () => h("a", { class: "job-row" }, ...["no", "def", "st", "pg", "dur"].map((c) => h("span", { class: `c-${c}` }))),
    (el, job) => {
      const [no, def, st, pg, dur] = el.children;
      el.href = jobLink(job.id);
      el.classList.toggle("open", job.id === view.jobId);
      setCell(no, String(job.number), `#${job.number}`);
      setCell(def, job.definition, job.definition);
      setCell(st, job.status, statusBadge(job.status));
      const fraction = jobFraction(job);
      const label = `${job.progress.steps_done}/${job.progress.steps_total} steps`;
      setCell(pg, `${fraction}|${label}`, progressBar(fraction, label));
      dur.textContent = formatDuration(elapsed(job.started_at, job.finished_at));
    },
  );
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
        { class: "tabs" },
        JOB_TABS.map((t) => h("a", { href: jobLink(job.id, t.id), class: t.id === view.tab ? "active" : "" }, t.label)),
      ),
      h("div", { id: "tab-body" }),
    );
  }
  renderJobHead(job);
  const tab = JOB_TABS.find((t) => t.id === view.tab) || JOB_TABS[0];
  tab.render($("tab-body"), job);
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
    job.error ? h("p", { class: "error" }, job.error) : null,
    h("p", { class: "command-error", hidden: true }),
  );
  const fraction = jobFraction(job);
  setCell(head.querySelector(".job-progress"), String(fraction), progressBar(fraction, `${Math.round((fraction ?? 0) * 100)}%`));
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
  const attempts = [...(store.stepsByJob.get(job.id)?.values() || [])];
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
      h(
        "table",
        { class: "steps" },
        h("thead", {}, h("tr", {}, ["#", "step", "status", "progress", "lines by level", "duration", ""].map((t) => h("th", {}, t)))),
        h("tbody", { id: "steps" }),
      ),
      h("div", { id: "panel-slot" }),
    );
  }
  sync(
    $("steps"),
    stepRows(job),
    (s) => s.id || `pending:${s.index}`,
    () => h("tr", {}, ...Array.from({ length: 7 }, () => h("td", {}))),
    (tr, s) => renderStepRow(tr, job, s),
  );
  renderPanel(job);
}

function renderStepRow(tr, job, s) {
  const [idx, name, st, pg, counts, dur, logs] = tr.children;
  tr.classList.toggle("open", s.id !== null && s.id === view.stepId);
  tr.dataset.stepId = s.id || "";
  setCell(idx, String(s.index), String(s.index + 1));
  setCell(name, `${s.name}|${s.attempt}`, s.name, s.attempt > 1 ? h("span", { class: "note" }, ` attempt ${s.attempt}`) : null);
  setCell(st, s.status, statusBadge(s.status), s.error ? h("div", { class: "error small" }, s.error) : null);
  if (s.progress) {
    const p = s.progress;
    const label = `${p.current}${p.total ? `/${p.total}` : ""}${p.message ? ` ${p.message}` : ""}`;
    setCell(pg, `${p.fraction}|${label}`, progressBar(p.fraction, label));
  } else setCell(pg, "", "");
  const c = s.counts;
  setCell(
    counts,
    JSON.stringify(c),
    c ? LEVELS.map((l) => h("span", { class: `chip lv-${l.toUpperCase()}${c[l] ? "" : " zero"}`, title: l }, `${l[0].toUpperCase()} ${c[l]}`)) : null,
  );
  dur.textContent = s.started_at ? formatDuration(elapsed(s.started_at, s.finished_at)) : "";
  const open = s.id !== null && s.id === view.stepId;
  setCell(
    logs,
    `${s.id}|${open}`,
    s.id ? h("a", { class: "logs-link", href: open ? jobLink(job.id) : jobLink(job.id, "steps", s.id) }, open ? "hide logs" : "logs") : null,
  );
}

function renderPanel(job) {
  const slot = $("panel-slot");
  const step = view.stepId && store.stepsByJob.get(job.id)?.get(view.stepId);
  if (!step) {
    if (view.panel) slot.replaceChildren();
    view.panel = null;
    return;
  }
  if (view.panel?.stepId === step.id) return;
  const link = (seq) => jobLink(job.id, "steps", step.id, "line", seq);
  view.panel = new LogPanel(step, {
    link,
    onSelect(seq) {
      view.line = seq;
      history.replaceState(null, "", link(seq));
    },
  });
  slot.replaceChildren(view.panel.el);
  if (view.line) view.panel.select(view.line, true);
}

// ---- routing

function parseHash() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] !== "jobs" || !parts[1]) return { jobId: null, tab: "steps", stepId: null, line: null };
  const steps = !parts[2] || parts[2] === "steps";
  return {
    jobId: parts[1],
    tab: steps ? "steps" : parts[2],
    stepId: steps && parts[3] ? parts[3] : null,
    line: steps && parts[4] === "line" ? Number(parts[5]) || null : null,
  };
}

async function route() {
  const next = parseHash();
  const sameStep = next.stepId === view.stepId && view.panel;
  Object.assign(view, { jobId: next.jobId, tab: next.tab, stepId: next.stepId, line: next.line });
  if (sameStep && next.line) view.panel.select(next.line, true);
  stream.follow(view.stepId);
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

async function loadDefinitions() {
  const { definitions } = await getJSON("/api/definitions");
  const select = $("definition");
  fill(select, definitions.map((d) => h("option", { value: d.name, title: d.description }, d.name)));
  if (definitions.some((d) => d.name === "demo")) select.value = "demo";
  const showParams = () => {
    const d = definitions.find((x) => x.name === select.value);
    fill(
      $("params"),
      (d?.params || []).map((p) =>
        h(
          "label",
          { title: p.help },
          h("span", {}, p.name),
          p.type === "boolean"
            ? h("input", { name: p.name, type: "checkbox", checked: Boolean(p.default), dataset: { type: p.type } })
            : h("input", {
                name: p.name,
                type: p.secret ? "password" : p.type === "string" ? "text" : "number",
                autocomplete: p.secret ? "off" : undefined,
                step: p.type === "integer" ? "1" : "any",
                value: p.secret ? "" : p.default ?? "",
                placeholder: p.help,
                dataset: { type: p.type },
              }),
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
  for (const input of $("params").querySelectorAll("input")) {
    const t = input.dataset.type;
    if (t === "boolean") params[input.name] = input.checked;
    else if (input.value === "") continue;
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

async function start() {
  $("submit-form").addEventListener("submit", submit);
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    setToken($("token").value);
    location.reload();
  });
  window.addEventListener("hashchange", route);
  route();
  try {
    const [page] = await Promise.all([getJSON("/api/jobs", { limit: LIST_SIZE }), loadDefinitions()]);
    page.jobs.forEach(putJob);
    stream.start(page.position);
  } catch (e) {
    fail(e);
  }
  schedule();
  showUnapplied();
  setInterval(showUnapplied, HEALTH_SECONDS * 1000);
  // Durations of running jobs and steps tick.
  setInterval(() => {
    if ([...store.jobs.values()].some((j) => j.status === "running")) schedule();
  }, 1000);
}

start();
