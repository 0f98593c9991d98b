// The words the API answers with, named once for the page (the server's are in
// domain/vocabulary.py): the counted log levels, as the keys of a step's
// `counts`, the statuses a job ends in, and those of a step that failed.

export const LEVELS = ["debug", "info", "warning", "error", "critical"];
export const JOB_FINAL = ["succeeded", "failed", "cancelled"];
export const STEP_FAILED = ["failed", "abandoned"];
