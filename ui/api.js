// Talking to the server: JSON requests (with the token when the server wants
// one) and the page's single EventSource.

const TOKEN_KEY = "steptrail.token";

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.field = body?.error?.field;
  }
}

function token() {
  const query = new URLSearchParams(location.search);
  const fromUrl = query.get("token");
  if (fromUrl) {
    // Keep it for this tab only, and out of the address bar and history.
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    query.delete("token");
    const rest = query.toString();
    history.replaceState(history.state, "", location.pathname + (rest ? `?${rest}` : "") + location.hash);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

/** A URL the browser fetches by itself (EventSource, downloads): token in the query. */
export function url(path, params = {}) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") u.searchParams.set(k, v);
  const t = token();
  if (t) u.searchParams.set("token", t);
  return u.pathname + u.search;
}

async function request(method, path, params, body) {
  const headers = { Accept: "application/json" };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  // The server takes a state-changing request only as JSON, even without a body.
  if (method !== "GET") headers["Content-Type"] = "application/json";
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) if (v !== null && v !== undefined && v !== "") u.searchParams.set(k, v);
  const r = await fetch(u, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

export const getJSON = (path, params) => request("GET", path, params);
export const postJSON = (path, body) => request("POST", path, undefined, body);

/**
 * The page's one EventSource (browsers allow 6 per host across tabs).
 *
 * `position` is the id of the last message received: everything up to it has
 * been handled. Changing the followed step reopens the stream after that
 * position; a browser reconnect resends it as Last-Event-ID, which the server
 * prefers over the URL's `after`. A stream the browser gives up on (it does
 * after an HTTP error) is reopened here, after the same position.
 */
export class Stream {
  constructor({ onMessage, onState }) {
    this.onMessage = onMessage;
    this.onState = onState;
    this.position = null;
    this.stepId = null;
    this.source = null;
    this.retryTimer = null;
    this.failures = 0;
  }

  start(position) {
    this.position = position;
    this.open();
  }

  /** Follow one step's lines (or none); keeps the position. */
  follow(stepId) {
    if (stepId === this.stepId) return;
    this.stepId = stepId;
    if (this.position !== null) this.open();
  }

  open() {
    this.close();
    this.onState("connecting");
    const source = new EventSource(url("/api/stream", { after: this.position, step_job_id: this.stepId }));
    this.source = source;
    for (const type of ["ready", "job", "step", "logs"]) {
      source.addEventListener(type, (e) => {
        if (source !== this.source) return; // a message of a stream we replaced
        this.position = Number(e.lastEventId);
        if (type === "ready") {
          this.failures = 0;
          this.onState("live");
        }
        this.onMessage(type, JSON.parse(e.data));
      });
    }
    source.onerror = () => {
      if (source !== this.source) return;
      if (source.readyState === EventSource.CLOSED) {
        this.failures += 1;
        const delay = Math.min(10_000, 1000 * 2 ** Math.min(this.failures - 1, 4));
        this.onState("offline");
        this.retryTimer = setTimeout(() => this.open(), delay);
      } else {
        this.onState("reconnecting"); // the browser retries after `retry:` ms
      }
    };
  }

  close() {
    clearTimeout(this.retryTimer);
    if (this.source) this.source.close();
    this.source = null;
  }
}
