// Building DOM without HTML strings: every piece of text becomes a text node,
// so nothing a job logs or a user submits is ever parsed as markup.

/** h("div", {class: "x", onclick: fn}, "text", child, [more children]) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name === "style") Object.assign(el.style, value);
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}

// While the server cannot be reached the page shows the state it last had:
// running things stop counting at the moment the connection was lost.
let frozenAt = null;

/** Stop (a time in ms) or restart (null) the clock running durations use. */
export function freezeClock(at) {
  frozenAt = at;
}

/** Seconds from `start` to `end` (ISO strings); a running thing counts to now. */
export function elapsed(start, end) {
  if (!start) return null;
  const to = end ? Date.parse(end) : (frozenAt ?? Date.now());
  return (to - Date.parse(start)) / 1000;
}

export function clock(iso) {
  const d = new Date(iso);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function statusBadge(status) {
  return h("span", { class: `badge st-${status}`, dataset: { status } }, status);
}

/** A progress bar: fraction 0..1 (null: unknown) with a label beside it,
 * coloured by `status` (a failed job's bar is red, not the running blue). */
export function progressBar(fraction, label, status = "running") {
  const known = typeof fraction === "number";
  const percent = known ? Math.round(fraction * 100) : 0;
  return h(
    "div",
    {
      class: `progress${known ? "" : " unknown"} pg-${status}`,
      role: "progressbar",
      "aria-valuemin": "0",
      "aria-valuemax": "100",
      "aria-valuenow": known ? String(percent) : null,
      "aria-valuetext": label || (known ? `${percent}%` : "unknown"),
      "aria-label": label || "progress",
      title: label || "",
    },
    h("div", { class: "track" }, h("div", { class: "bar", style: { width: `${percent}%` } })),
    h("span", { class: "label" }, label || ""),
  );
}
