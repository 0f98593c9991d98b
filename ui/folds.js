// A step's groups of lines and which of them are folded, for the log panel.
//
// A group is a run of consecutive seqs: its opening line `seq`, then the
// lines `seq + 1 .. last_seq` it holds (groups inside included). Folding a
// group hides those lines, so the panel's rows are the seqs 1..total minus
// the folded ranges; the ranges come from the group tree
// (/api/steps/{id}/groups), so no hidden line is ever loaded. Turning a row
// index into a seq and back is a binary search over the merged ranges.
//
// A group starts folded unless it holds an error or is still open on a
// running step: the group being written stays in view, and folds when it
// closes (a line after it arrives), as a CI log reads live. Once the user
// folds or unfolds a group, later news (an error, its end) leaves it as set;
// a group holding a line asked for (`keep`) is never folded by news either.

const ERROR_LEVELS = new Set(["ERROR", "CRITICAL"]);

export class Folds {
  constructor() {
    this.groups = new Map(); // opening seq -> {seq, parent, depth, name, last_seq, errors, open}
    this.folded = new Set(); // opening seqs of the folded groups
    this.touched = new Set(); // groups the user folded or unfolded
    this.ranges = null; // merged hidden ranges, rebuilt when a fold changes
    this.opens = new Set(); // groups still open, as far as the lines seen say
  }

  /** Take an answer of /groups. `running`: the step runs now; `keep`: seqs
   * that must stay visible (a line asked for). Returns the highest seq the
   * groups hold. */
  merge(groups, running, keep) {
    let last = 0;
    for (const g of groups) {
      const old = this.groups.get(g.seq);
      if (!old) {
        this.groups.set(g.seq, { ...g });
        if (g.open) this.opens.add(g.seq);
        if (!(g.errors > 0 || (g.open && running) || this.holds(g, keep))) this.folded.add(g.seq);
      } else {
        if (!old.errors && g.errors && !this.touched.has(g.seq)) this.folded.delete(g.seq);
        const closes = old.open && !g.open;
        Object.assign(old, g, { last_seq: Math.max(old.last_seq, g.last_seq), errors: Math.max(old.errors, g.errors) });
        if (closes) this.close(old, keep);
      }
      last = Math.max(last, g.last_seq);
    }
    this.ranges = null;
    return last;
  }

  /** A line seen (streamed or fetched) extends the groups holding it; an
   * error in a group the user left alone unfolds it. False: the line's
   * group is not known yet (the tree must be asked again). */
  noteLine(line, keep) {
    const known = line.group === null || line.group === undefined || this.groups.has(line.group);
    if (!known) return false;
    const chain = new Set();
    for (let g = this.groups.get(line.group); g; g = this.groups.get(g.parent)) {
      chain.add(g.seq);
      if (line.seq <= g.last_seq) continue; // counted already
      g.last_seq = line.seq;
      if (this.folded.has(g.seq)) this.ranges = null; // only folded groups hide lines
      if (ERROR_LEVELS.has(line.level)) {
        g.errors += 1;
        if (!this.touched.has(g.seq)) this.folded.delete(g.seq);
      }
    }
    // a group is a run of seqs: a later line outside it means it closed
    for (const seq of this.opens) if (line.seq > seq && !chain.has(seq)) this.close(this.groups.get(seq), keep);
    return true;
  }

  close(g, keep) {
    g.open = false;
    this.opens.delete(g.seq);
    if (!g.errors && !this.touched.has(g.seq) && !this.holds(g, keep)) {
      this.folded.add(g.seq);
      this.ranges = null;
    }
  }

  holds(g, seqs) {
    return seqs.some((s) => s > g.seq && s <= g.last_seq);
  }

  /** The group a line opens, if it opens one. */
  opened(seq) {
    return this.groups.get(seq);
  }

  /** How deep a line sits: the depth of its group (0 at the top level). */
  depth(line) {
    return this.groups.get(line.group)?.depth ?? 0;
  }

  isFolded(seq) {
    return this.folded.has(seq);
  }

  /** Fold (true), unfold (false) or toggle (undefined) a group by the user. */
  fold(seq, on = !this.folded.has(seq)) {
    if (!this.groups.has(seq) || on === this.folded.has(seq)) return false;
    if (on) this.folded.add(seq);
    else this.folded.delete(seq);
    this.touched.add(seq);
    this.ranges = null;
    return true;
  }

  /** Unfold every group hiding `seq`. */
  reveal(seq) {
    let changed = false;
    for (const g of this.folded) {
      const group = this.groups.get(g);
      if (seq > group.seq && seq <= group.last_seq) changed = this.fold(g, false) || changed;
    }
    return changed;
  }

  // geometry: the rows are the seqs outside the folded ranges

  /** {starts, ends, before}: disjoint hidden ranges in seq order, before[k]
   * the number of seqs hidden by the ranges ahead of range k. */
  hidden() {
    if (this.ranges) return this.ranges;
    const starts = [];
    const ends = [];
    for (const seq of [...this.folded].sort((a, b) => a - b)) {
      const start = seq + 1;
      const end = this.groups.get(seq).last_seq;
      if (end < start) continue;
      if (ends.length && start <= ends.at(-1) + 1) ends[ends.length - 1] = Math.max(ends.at(-1), end);
      else {
        starts.push(start);
        ends.push(end);
      }
    }
    const before = [0];
    for (let k = 0; k < starts.length; k++) before.push(before[k] + ends[k] - starts[k] + 1);
    this.ranges = { starts, ends, before };
    return this.ranges;
  }

  /** How many ranges satisfy `ok`, a test true for a first run of them. */
  static count(n, ok) {
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ok(mid)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Seqs up to `seq` hidden. */
  hiddenUpTo(seq) {
    const { starts, ends, before } = this.hidden();
    const k = Folds.count(starts.length, (i) => starts[i] <= seq);
    return k ? before[k] - Math.max(0, ends[k - 1] - seq) : 0;
  }

  /** The seq on row `i` (0-based). */
  seqAt(i) {
    const { starts, before } = this.hidden();
    const k = Folds.count(starts.length, (j) => starts[j] - 1 - before[j] <= i);
    return i + 1 + before[k];
  }

  /** The row of `seq`; null when a folded group hides it. */
  rowOf(seq) {
    const { starts, ends, before } = this.hidden();
    const k = Folds.count(starts.length, (j) => starts[j] <= seq);
    if (k && seq <= ends[k - 1]) return null;
    return seq - 1 - before[k];
  }
}
