// A job's step timeline: a compact Gantt chart, one bar per step attempt,
// placed by when it started and as long as it ran, coloured by its outcome;
// a running attempt grows with the clock. The scale is the job's run, from
// its first start to its end (or now).

import { elapsed, formatDuration, h } from "./dom.js";

const MIN_WIDTH = 0.4; // % of the scale: a step of a few ms is still a visible mark

function ms(iso) {
  return iso ? Date.parse(iso) : null;
}

/** Fill `el` with the job's timeline; onPick(step) when a bar is clicked. */
export function renderTimeline(el, job, attempts, onPick) {
  const started = attempts.filter((s) => s.started_at).sort((a, b) => a.index - b.index || a.attempt - b.attempt);
  el.hidden = started.length === 0;
  if (!started.length) return;
  const t0 = Math.min(...started.map((s) => ms(s.started_at)));
  const span = Math.max(1, ...started.map((s) => ms(s.started_at) + elapsed(s.started_at, s.finished_at) * 1000 - t0));
  const total = job.finished_at ? Math.max(span, ms(job.finished_at) - t0) : span;
  const signature = JSON.stringify([Math.round(total / 100), started.map((s) => [s.id, s.status, s.finished_at])]);
  if (el.dataset.sig === signature) return;
  el.dataset.sig = signature;
  const rows = started.map((s) => {
    const from = ((ms(s.started_at) - t0) / total) * 100;
    const seconds = elapsed(s.started_at, s.finished_at);
    const width = Math.max(MIN_WIDTH, ((seconds * 1000) / total) * 100);
    const name = `${s.name}${s.attempt > 1 ? ` #${s.attempt}` : ""}`;
    const what = `${name}: ${s.status}, ${formatDuration(seconds)}, from +${formatDuration((ms(s.started_at) - t0) / 1000)}`;
    return h(
      "div",
      { class: "gantt-row" },
      h("span", { class: "gantt-name", title: name }, name),
      h(
        "span",
        { class: "gantt-lane" },
        h(
          "button",
          {
            type: "button",
            class: `gantt-bar pg-${s.status}`,
            title: what,
            "aria-label": what,
            dataset: { stepId: s.id },
            style: { left: `${Math.min(from, 100 - MIN_WIDTH)}%`, width: `${Math.min(width, 100 - from)}%` },
            onclick: () => onPick(s),
          },
        ),
      ),
    );
  });
  el.replaceChildren(
    h(
      "div",
      { class: "gantt-head" },
      h("span", {}, "timeline"),
      h("span", { class: "gantt-scale" }, h("span", {}, "0s"), h("span", {}, formatDuration(total / 1000))),
    ),
    ...rows,
  );
}
