// ANSI SGR colour codes (ESC [ ... m) rendered as spans made with
// createElement + textContent. Other escape sequences are dropped. The text
// between codes is never interpreted: it only ever becomes a text node.

const ESCAPES = /\x1b\[([0-9;?]*)([A-Za-z])/g;

function applyCodes(style, params) {
  const codes = params === "" ? [0] : params.split(";").map((p) => Number(p) || 0);
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i];
    if (c === 0) Object.assign(style, { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false });
    else if (c === 1) style.bold = true;
    else if (c === 2) style.dim = true;
    else if (c === 3) style.italic = true;
    else if (c === 4) style.underline = true;
    else if (c === 22) style.bold = style.dim = false;
    else if (c === 23) style.italic = false;
    else if (c === 24) style.underline = false;
    else if (c >= 30 && c <= 37) style.fg = c - 30;
    else if (c >= 90 && c <= 97) style.fg = c - 90 + 8;
    else if (c === 39) style.fg = null;
    else if (c >= 40 && c <= 47) style.bg = c - 40;
    else if (c >= 100 && c <= 107) style.bg = c - 100 + 8;
    else if (c === 49) style.bg = null;
    else if ((c === 38 || c === 48) && codes[i + 1] === 5) {
      // 256 colours: 38;5;n
      style[c === 38 ? "fg" : "bg"] = codes[i + 2] ?? null;
      i += 2;
    } else if ((c === 38 || c === 48) && codes[i + 1] === 2) {
      // true colour: 38;2;r;g;b
      const [r, g, b] = codes.slice(i + 2, i + 5);
      style[c === 38 ? "fg" : "bg"] = `rgb(${r | 0}, ${g | 0}, ${b | 0})`;
      i += 4;
    }
  }
}

function colour(value) {
  // 0-15 map to the theme's classes; 16-255 and rgb() are computed.
  if (typeof value === "string") return { css: value };
  if (value < 16) return { cls: value };
  if (value < 232) {
    const v = value - 16;
    const step = (n) => (n === 0 ? 0 : 55 + n * 40);
    return { css: `rgb(${step(Math.floor(v / 36))}, ${step(Math.floor(v / 6) % 6)}, ${step(v % 6)})` };
  }
  const grey = 8 + (value - 232) * 10;
  return { css: `rgb(${grey}, ${grey}, ${grey})` };
}

function span(text, style) {
  const plain = style.fg === null && style.bg === null && !style.bold && !style.dim && !style.italic && !style.underline;
  if (plain) return document.createTextNode(text);
  const el = document.createElement("span");
  el.textContent = text;
  const classes = [];
  for (const [key, prop] of [["fg", "color"], ["bg", "backgroundColor"]]) {
    if (style[key] === null) continue;
    const c = colour(style[key]);
    if (c.cls !== undefined) classes.push(`ansi-${key}-${c.cls}`);
    else el.style[prop] = c.css;
  }
  for (const flag of ["bold", "dim", "italic", "underline"]) if (style[flag]) classes.push(`ansi-${flag}`);
  el.className = classes.join(" ");
  return el;
}

/** Append `text` to `parent`, coloured by its ANSI codes. */
export function appendAnsi(parent, text) {
  const style = { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false };
  let last = 0;
  for (const match of text.matchAll(ESCAPES)) {
    if (match.index > last) parent.appendChild(span(text.slice(last, match.index), style));
    if (match[2] === "m") applyCodes(style, match[1]);
    last = match.index + match[0].length;
  }
  if (last < text.length) parent.appendChild(span(text.slice(last), style));
  return parent;
}

/** The text without escape sequences (for titles and copying). */
export function stripAnsi(text) {
  return text.replace(ESCAPES, "");
}
