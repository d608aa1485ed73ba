// A small, safe Markdown renderer for model output. It builds DOM nodes only (text goes in
// through text nodes, never parsed as HTML), so raw HTML in a reply shows as text. Links are
// limited to http(s) and mailto. Images are rendered as links and never loaded: a reply
// (possibly steered by a prompt injection in the repository) could otherwise leak data to
// any server through an image URL.
import { h, safeUrl } from "./dom.js";

/** Markdown text → DocumentFragment. Unclosed constructs (mid-stream) render sensibly. */
export function renderMarkdown(source) {
  const fragment = document.createDocumentFragment();
  const text = String(source ?? "").replace(/\r\n?/g, "\n").replace(/\t/g, "    ");
  renderBlocks(text.split("\n"), fragment, 0);
  return fragment;
}

const MAX_DEPTH = 12; // nesting of quotes/lists; deeper input renders as plain paragraphs

const RE_FENCE = /^( {0,3})(`{3,}|~{3,})[ \t]*([^`\s]*)[^`]*$/;
const RE_HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const RE_HR = /^ {0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,})$/;
const RE_QUOTE = /^ {0,3}> ?(.*)$/;
const RE_LIST = /^( *)([-*+]|\d{1,9}[.)])(?:[ \t]+(.*)|[ \t]*)$/;
const RE_TABLE_SEP = /^ {0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$/;

function isBlank(line) {
  return /^\s*$/.test(line);
}

function renderBlocks(lines, parent, depth) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (isBlank(line)) {
      i++;
      continue;
    }
    let m;
    if ((m = RE_FENCE.exec(line))) {
      const indent = m[1].length;
      const marker = m[2];
      const lang = m[3] || "";
      const body = [];
      i++;
      while (i < lines.length) {
        const l = lines[i];
        const close = l.match(/^ {0,3}(`{3,}|~{3,})[ \t]*$/);
        if (close && close[1][0] === marker[0] && close[1].length >= marker.length) {
          i++;
          break;
        }
        body.push(indent ? l.replace(new RegExp(`^ {0,${indent}}`), "") : l);
        i++;
      }
      parent.appendChild(codeBlock(body.join("\n"), lang));
      continue;
    }
    if ((m = RE_HEADING.exec(line))) {
      // Replies sit under the page's own headings: shift levels down by two.
      const level = Math.min(6, m[1].length + 2);
      const el = h(`h${level}`, { class: `md-h md-h${m[1].length}` });
      renderInline(m[2] || "", el);
      parent.appendChild(el);
      i++;
      continue;
    }
    if (RE_HR.test(line)) {
      parent.appendChild(h("hr"));
      i++;
      continue;
    }
    if (depth < MAX_DEPTH && RE_QUOTE.test(line)) {
      const inner = [];
      while (i < lines.length && !isBlank(lines[i])) {
        const q = RE_QUOTE.exec(lines[i]);
        if (q) inner.push(q[1]);
        else if (inner.length && startsBlock(lines[i])) break;
        else inner.push(lines[i]); // lazy continuation
        i++;
      }
      const quote = h("blockquote");
      renderBlocks(inner, quote, depth + 1);
      parent.appendChild(quote);
      continue;
    }
    if (depth < MAX_DEPTH && (m = RE_LIST.exec(line)) && m[1].length <= 3) {
      i = renderList(lines, i, parent, depth);
      continue;
    }
    if (line.includes("|") && i + 1 < lines.length && RE_TABLE_SEP.test(lines[i + 1])) {
      const header = splitRow(line);
      const aligns = splitRow(lines[i + 1]).map((cell) => {
        const c = cell.trim();
        if (c.startsWith(":") && c.endsWith(":")) return "center";
        if (c.endsWith(":")) return "right";
        if (c.startsWith(":")) return "left";
        return null;
      });
      if (header.length === aligns.length) {
        i += 2;
        const rows = [];
        while (i < lines.length && !isBlank(lines[i]) && lines[i].includes("|")) {
          rows.push(splitRow(lines[i]));
          i++;
        }
        parent.appendChild(table(header, aligns, rows));
        continue;
      }
    }
    // Paragraph: until a blank line or the start of another block.
    const para = [line];
    i++;
    while (i < lines.length && !isBlank(lines[i]) && !startsBlock(lines[i], true)) {
      para.push(lines[i]);
      i++;
    }
    const p = h("p");
    renderInline(para.map((l) => l.replace(/^ +/, "")).join("\n"), p);
    parent.appendChild(p);
  }
}

function startsBlock(line, inParagraph = false) {
  if (RE_FENCE.test(line) || RE_HEADING.test(line) || RE_HR.test(line) || RE_QUOTE.test(line)) {
    return true;
  }
  const m = RE_LIST.exec(line);
  if (m && m[1].length <= 3 && m[3]) {
    // As in CommonMark, only "1." starts an ordered list inside a paragraph ("2019. was" doesn't).
    if (!inParagraph || /^[-*+]$/.test(m[2]) || /^1[.)]$/.test(m[2])) return true;
  }
  return false;
}

function renderList(lines, start, parent, depth) {
  const first = RE_LIST.exec(lines[start]);
  const ordered = /\d/.test(first[2]);
  const bullet = first[2].slice(-1);
  const baseIndent = first[1].length;
  const list = h(ordered ? "ol" : "ul");
  if (ordered) {
    const n = parseInt(first[2], 10);
    if (n !== 1) list.setAttribute("start", String(n));
  }
  const items = [];
  let i = start;
  let loose = false;
  const sameList = (line) => {
    const m = RE_LIST.exec(line);
    return Boolean(m) && m[1].length === baseIndent && /\d/.test(m[2]) === ordered && m[2].slice(-1) === bullet;
  };
  while (i < lines.length) {
    const m = RE_LIST.exec(lines[i]);
    if (!m || !sameList(lines[i])) break;
    const contentIndent = baseIndent + m[2].length + 1;
    const body = [m[3] || ""];
    i++;
    let sawBlank = false;
    while (i < lines.length) {
      const l = lines[i];
      if (isBlank(l)) {
        sawBlank = true;
        body.push("");
        i++;
        continue;
      }
      const indent = l.match(/^ */)[0].length;
      if (indent >= contentIndent || (indent > baseIndent && RE_LIST.test(l))) {
        body.push(l.slice(Math.min(indent, contentIndent)));
        sawBlank = false;
        i++;
        continue;
      }
      if (sawBlank) break;
      if (RE_LIST.test(l) || startsBlock(l)) break;
      body.push(l); // lazy continuation of the item's paragraph
      i++;
    }
    while (body.length && isBlank(body[body.length - 1])) body.pop();
    if (sawBlank && i < lines.length && sameList(lines[i])) loose = true;
    if (body.some((l, idx) => isBlank(l) && idx > 0 && idx < body.length - 1 && !RE_LIST.test(body[idx + 1] || ""))) {
      loose = true;
    }
    items.push(body);
    // A blank line followed by something that is not the next item ends the list.
    if (i < lines.length && isBlank(lines[i - 1] || "") && !RE_LIST.test(lines[i])) break;
  }
  for (const body of items) {
    const li = h("li");
    const task = /^\[([ xX])\][ \t]+/.exec(body[0]);
    if (task) {
      body[0] = body[0].slice(task[0].length);
      li.className = "md-task";
      li.appendChild(
        h("span", {
          class: ["md-checkbox", task[1] !== " " && "is-checked"],
          role: "img",
          "aria-label": task[1] === " " ? "not done" : "done",
          text: task[1] === " " ? "☐" : "☑",
        }),
      );
    }
    renderBlocks(body, li, depth + 1);
    if (!loose) {
      // Tight list: paragraphs render inline, as in CommonMark.
      for (const p of [...li.children]) {
        if (p.tagName === "P") p.replaceWith(...p.childNodes);
      }
    }
    list.appendChild(li);
  }
  parent.appendChild(list);
  return i;
}

function splitRow(line) {
  let s = line.trim();
  if (s.startsWith("|")) s = s.slice(1);
  if (s.endsWith("|") && !s.endsWith("\\|")) s = s.slice(0, -1);
  const cells = [];
  let cur = "";
  let inCode = false;
  for (let k = 0; k < s.length; k++) {
    const c = s[k];
    if (c === "\\" && s[k + 1] === "|") {
      cur += "|";
      k++;
    } else if (c === "`") {
      inCode = !inCode;
      cur += c;
    } else if (c === "|" && !inCode) {
      cells.push(cur);
      cur = "";
    } else {
      cur += c;
    }
  }
  cells.push(cur);
  return cells.map((c) => c.trim());
}

function table(header, aligns, rows) {
  const cell = (tag, text, k) => {
    const el = h(tag, { class: aligns[k] ? `align-${aligns[k]}` : null });
    if (tag === "th") el.setAttribute("scope", "col");
    renderInline(text ?? "", el);
    return el;
  };
  return h(
    "div",
    // Focusable: a wide table scrolls sideways, and keyboard users must be able to scroll it.
    { class: "md-table-wrap", tabindex: "0" },
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, header.map((t, k) => cell("th", t, k)))),
      h(
        "tbody",
        {},
        rows.map((row) => h("tr", {}, header.map((_, k) => cell("td", row[k], k)))),
      ),
    ),
  );
}

function codeBlock(code, lang) {
  const language = normaliseLang(lang);
  const codeEl = h("code", { class: language ? `language-${language}` : null });
  codeEl.appendChild(highlight(code, language));
  const copy = h("button", {
    type: "button",
    class: "code-copy",
    "aria-label": "Copy code",
    text: "Copy",
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(code);
        copy.textContent = "Copied";
      } catch {
        copy.textContent = "Copy failed";
      }
      setTimeout(() => {
        copy.textContent = "Copy";
      }, 1500);
    },
  });
  return h(
    "div",
    { class: "md-code" },
    h(
      "div",
      { class: "md-code-head" },
      h("span", { class: "md-code-lang", text: lang || "text" }),
      copy,
    ),
    // tabindex: a wide block scrolls sideways, and keyboard users must be able to scroll it.
    h("pre", { tabindex: "0" }, codeEl),
  );
}

// ---------------------------------------------------------------------------------------------
// Inline

const PUNCT = /[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/;

/** Inline Markdown of `text` appended to `parent`. */
export function renderInline(text, parent, depth = 0) {
  let buf = "";
  const flush = () => {
    if (buf) parent.appendChild(document.createTextNode(buf));
    buf = "";
  };
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i];

    if (c === "\\" && i + 1 < n) {
      if (text[i + 1] === "\n") {
        flush();
        parent.appendChild(h("br"));
        i += 2;
        continue;
      }
      if (PUNCT.test(text[i + 1])) {
        buf += text[i + 1];
        i += 2;
        continue;
      }
    }

    if (c === "\n") {
      // Two trailing spaces make a hard break; otherwise a soft break (rendered as a space).
      if (buf.endsWith("  ")) {
        buf = buf.replace(/ +$/, "");
        flush();
        parent.appendChild(h("br"));
      } else {
        buf = buf.replace(/ +$/, "") + "\n";
      }
      i++;
      continue;
    }

    if (c === "`") {
      const run = /^`+/.exec(text.slice(i))[0];
      const close = findRun(text, run, i + run.length);
      if (close >= 0) {
        flush();
        let code = text.slice(i + run.length, close).replace(/\n/g, " ");
        if (/^ .* $/.test(code) && code.trim()) code = code.slice(1, -1);
        parent.appendChild(h("code", { class: "md-inline-code", text: code }));
        i = close + run.length;
        continue;
      }
      buf += run;
      i += run.length;
      continue;
    }

    if (c === "<") {
      const auto = /^<((?:https?:\/\/|mailto:)[^\s<>]+)>/i.exec(text.slice(i));
      if (auto) {
        flush();
        parent.appendChild(link(auto[1], auto[1]));
        i += auto[0].length;
        continue;
      }
    }

    if (c === "!" && text[i + 1] === "[") {
      const parsed = parseLink(text, i + 1);
      if (parsed) {
        flush();
        const label = parsed.label || "image";
        const href = safeUrl(parsed.url);
        parent.appendChild(
          href
            ? h("a", { href, rel: "noopener noreferrer nofollow", target: "_blank", class: "md-image-link" },
                `Image: ${label}`)
            : document.createTextNode(`[image: ${label}]`),
        );
        i = parsed.end;
        continue;
      }
    }

    if (c === "[") {
      const parsed = parseLink(text, i);
      if (parsed) {
        flush();
        const href = safeUrl(parsed.url);
        if (href && depth < 4) {
          const a = h("a", { href, rel: "noopener noreferrer nofollow", target: "_blank" });
          if (parsed.title) a.title = parsed.title;
          renderInline(parsed.label, a, depth + 1);
          parent.appendChild(a);
        } else {
          renderInline(parsed.label, parent, depth + 1);
        }
        i = parsed.end;
        continue;
      }
    }

    if ((c === "h" || c === "H" || c === "w") && /[\s(*_~]$|^$/.test(text.slice(Math.max(0, i - 1), i))) {
      const bare = /^(?:https?:\/\/|www\.)[^\s<]+/i.exec(text.slice(i));
      if (bare) {
        let url = bare[0];
        // Trailing punctuation belongs to the sentence; a closing paren only if unbalanced.
        while (/[.,:;!?'"*_~]$/.test(url) || (url.endsWith(")") && count(url, "(") < count(url, ")"))) {
          url = url.slice(0, -1);
        }
        const href = safeUrl(url.startsWith("www.") ? `https://${url}` : url);
        if (href) {
          flush();
          parent.appendChild(link(href, url));
          i += url.length;
          continue;
        }
      }
    }

    if ((c === "*" || c === "_" || c === "~") && depth < 8) {
      const done = emphasis(text, i, parent, depth, flush);
      if (done > i) {
        i = done;
        continue;
      }
    }

    buf += c;
    i++;
  }
  flush();
}

function count(s, ch) {
  return s.split(ch).length - 1;
}

function findRun(text, run, from) {
  let k = from;
  while (k < text.length) {
    const idx = text.indexOf(run, k);
    if (idx < 0) return -1;
    // The closing run must be exactly as long as the opening one.
    if (text[idx + run.length] !== "`" && text[idx - 1] !== "`") return idx;
    k = idx + 1;
    while (text[k] === "`") k++;
  }
  return -1;
}

function parseLink(text, start) {
  // [label](url "title") with nested brackets in the label.
  let depth = 0;
  let k = start;
  for (; k < text.length; k++) {
    const ch = text[k];
    if (ch === "\\") {
      k++;
      continue;
    }
    if (ch === "`") {
      const run = /^`+/.exec(text.slice(k))[0];
      const close = findRun(text, run, k + run.length);
      if (close >= 0) k = close + run.length - 1;
      continue;
    }
    if (ch === "[") depth++;
    else if (ch === "]") {
      depth--;
      if (depth === 0) break;
    }
  }
  if (depth !== 0 || text[k + 1] !== "(") return null;
  const rest = text.slice(k + 2);
  const m = /^[ \t]*(<[^<>\n]*>|(?:[^\s()\\]|\\.|\((?:[^\s()\\]|\\.)*\))*)(?:[ \t]+("[^"\n]*"|'[^'\n]*'))?[ \t]*\)/.exec(rest);
  if (!m) return null;
  let url = m[1];
  if (url.startsWith("<")) url = url.slice(1, -1);
  url = url.replace(/\\([!-/:-@[-`{-~])/g, "$1");
  return {
    label: text.slice(start + 1, k),
    url,
    title: m[2] ? m[2].slice(1, -1) : null,
    end: k + 2 + m[0].length,
  };
}

function link(href, label) {
  const safe = safeUrl(href);
  if (!safe) return document.createTextNode(label);
  return h("a", { href: safe, rel: "noopener noreferrer nofollow", target: "_blank", text: label });
}

function emphasis(text, i, parent, depth, flush) {
  const c = text[i];
  const isWord = (ch) => ch !== undefined && /[\p{L}\p{N}]/u.test(ch);
  const runAt = (k) => {
    let n = 0;
    while (text[k + n] === c) n++;
    return n;
  };
  const len = runAt(i);
  if (c === "~") {
    if (len !== 2) return i;
  } else if (len > 3) {
    return i;
  }
  const before = text[i - 1];
  // Underscores inside words (snake_case) are not emphasis.
  if (c === "_" && isWord(before)) return i;
  const sizes = c === "~" ? [2] : len === 3 ? [3, 2, 1] : len === 2 ? [2, 1] : [1];
  for (const size of sizes) {
    const after = text[i + size];
    if (after === undefined || /\s/.test(after)) continue;
    let k = i + size;
    while (k < text.length) {
      const idx = text.indexOf(c, k);
      if (idx < 0) break;
      const run = runAt(idx);
      // A closing run of three can end an inner and an outer span at once ("**a *b***").
      const close = run === size ? idx : run === 3 && size < 3 ? idx + (3 - size) : -1;
      const prev = text[idx - 1];
      const next = text[idx + run];
      if (
        close > i + size &&
        !/\s/.test(prev) &&
        !(c === "_" && isWord(next)) &&
        !insideCode(text, i + size, idx)
      ) {
        flush();
        let el;
        if (c === "~") el = h("del");
        else if (size === 3) el = h("strong", {}, h("em"));
        else el = h(size === 2 ? "strong" : "em");
        renderInline(text.slice(i + size, close), el.firstElementChild || el, depth + 1);
        parent.appendChild(el);
        return close + size;
      }
      k = idx + run;
    }
  }
  return i;
}

function insideCode(text, from, to) {
  // An odd number of backticks between the delimiters means the closer is inside a code span.
  return count(text.slice(from, to), "`") % 2 === 1;
}

// ---------------------------------------------------------------------------------------------
// Syntax highlighting: a small tokenizer per language family. Output is spans with classes
// tok-keyword, tok-string, tok-comment, tok-number, tok-literal, tok-function, tok-property,
// tok-tag, tok-attr, tok-variable, tok-meta, tok-add, tok-del; everything else plain text.

const ALIASES = {
  js: "js", javascript: "js", jsx: "js", mjs: "js", cjs: "js", node: "js",
  ts: "ts", typescript: "ts", tsx: "ts",
  py: "python", python: "python", python3: "python",
  sh: "bash", bash: "bash", shell: "bash", zsh: "bash", console: "bash", shellsession: "bash",
  json: "json", jsonc: "json", json5: "json",
  go: "go", golang: "go",
  rs: "rust", rust: "rust",
  html: "html", xml: "html", svg: "html", htm: "html", vue: "html",
  css: "css", scss: "css", less: "css",
  diff: "diff", patch: "diff",
  yaml: "yaml", yml: "yaml", toml: "yaml", ini: "yaml",
  sql: "sql",
};

function normaliseLang(lang) {
  const l = String(lang || "").toLowerCase().replace(/^\{?\.?/, "").replace(/\}$/, "");
  return ALIASES[l] || (/^[a-z0-9+#-]{1,20}$/.test(l) ? l : "");
}

const words = (s) => new Set(s.split(/\s+/).filter(Boolean));

const JS_KEYWORDS = words(`break case catch class const continue debugger default delete do else export
  extends finally for from function if import in instanceof let new of return static super switch
  throw try typeof var void while with yield async await get set as`);
const TS_KEYWORDS = words(`${[...JS_KEYWORDS].join(" ")} interface type enum implements namespace
  declare abstract private protected public readonly keyof infer is satisfies unique module`);
const JS_LITERALS = words("true false null undefined NaN Infinity this");
const PY_KEYWORDS = words(`and as assert async await break class continue def del elif else except
  finally for from global if import in is lambda nonlocal not or pass raise return try while with
  yield match case`);
const PY_LITERALS = words("True False None self cls");
const SH_KEYWORDS = words(`if then else elif fi for while until do done case esac in function
  select return exit export local readonly declare unset shift source alias set trap break continue`);
const GO_KEYWORDS = words(`break case chan const continue default defer else fallthrough for func go
  goto if import interface map package range return select struct switch type var`);
const GO_LITERALS = words("true false nil iota");
const RUST_KEYWORDS = words(`as async await break const continue crate dyn else enum extern fn for if
  impl in let loop match mod move mut pub ref return static struct super trait type unsafe use where
  while Self self`);
const RUST_LITERALS = words("true false None Some Ok Err");
const SQL_KEYWORDS = words(`select from where insert into values update set delete create table alter
  drop index on join left right inner outer full cross group by order having limit offset as and or
  not null is in exists between like union all distinct case when then else end primary key foreign
  references default unique returning with begin commit rollback view if`);

const R = (cls, source, flags = "") => ({ cls, re: new RegExp(source, `y${flags}`) });

const STR_DQ = String.raw`"(?:[^"\\\n]|\\.)*"?`;
const STR_SQ = String.raw`'(?:[^'\\\n]|\\.)*'?`;
const NUM = String.raw`(?:0[xX][\da-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?)[a-zA-Z]*`;

const LANGS = {
  js: {
    rules: [
      R("tok-comment", String.raw`\/\/[^\n]*|\/\*[\s\S]*?(?:\*\/|$)`),
      R("tok-string", `${STR_DQ}|${STR_SQ}|` + "`(?:[^`\\\\]|\\\\[\\s\\S])*`?"),
      R("tok-number", `\\b${NUM}`),
    ],
    keywords: JS_KEYWORDS,
    literals: JS_LITERALS,
    ident: /[A-Za-z_$][\w$]*/y,
    calls: true,
  },
  python: {
    rules: [
      R("tok-comment", "#[^\\n]*"),
      R("tok-string", `(?:[rRbBuUfF]{0,2})(?:"""[\\s\\S]*?(?:"""|$)|'''[\\s\\S]*?(?:'''|$)|${STR_DQ}|${STR_SQ})`),
      R("tok-meta", "@[A-Za-z_][\\w.]*"),
      R("tok-number", `\\b${NUM}`),
    ],
    keywords: PY_KEYWORDS,
    literals: PY_LITERALS,
    ident: /[A-Za-z_]\w*/y,
    calls: true,
  },
  bash: {
    rules: [
      R("tok-comment", "(?:^|(?<=\\s))#[^\\n]*", "m"),
      R("tok-string", `${STR_DQ}|'[^']*'?`),
      R("tok-variable", "\\$(?:\\{[^}\\n]*\\}?|[A-Za-z_]\\w*|[0-9@#?$!*-])"),
      R("tok-meta", "^\\s*[$#](?= )", "m"),
      R("tok-number", "\\b\\d+\\b"),
    ],
    keywords: SH_KEYWORDS,
    literals: words("true false"),
    ident: /[A-Za-z_][\w-]*/y,
  },
  json: {
    rules: [
      R("tok-comment", String.raw`\/\/[^\n]*|\/\*[\s\S]*?(?:\*\/|$)`),
      R("tok-property", `${STR_DQ}(?=\\s*:)`),
      R("tok-string", STR_DQ),
      R("tok-number", "-?\\b\\d+(?:\\.\\d+)?(?:[eE][+-]?\\d+)?"),
    ],
    keywords: new Set(),
    literals: words("true false null"),
    ident: /[A-Za-z_]\w*/y,
  },
  go: {
    rules: [
      R("tok-comment", String.raw`\/\/[^\n]*|\/\*[\s\S]*?(?:\*\/|$)`),
      R("tok-string", `${STR_DQ}|` + "`[^`]*`?" + `|'(?:[^'\\\\\\n]|\\\\.)*'`),
      R("tok-number", `\\b${NUM}`),
    ],
    keywords: GO_KEYWORDS,
    literals: GO_LITERALS,
    ident: /[A-Za-z_]\w*/y,
    calls: true,
  },
  rust: {
    rules: [
      R("tok-comment", String.raw`\/\/[^\n]*|\/\*[\s\S]*?(?:\*\/|$)`),
      R("tok-string", `b?r#*"[\\s\\S]*?(?:"#*|$)|b?${STR_DQ}|b?'(?:[^'\\\\\\n]|\\\\[^\\n]{1,8})'`),
      R("tok-meta", "#!?\\[[^\\]\\n]*\\]?|'[A-Za-z_]\\w*\\b(?!')"),
      R("tok-function", "[A-Za-z_]\\w*!"),
      R("tok-number", `\\b${NUM}`),
    ],
    keywords: RUST_KEYWORDS,
    literals: RUST_LITERALS,
    ident: /[A-Za-z_]\w*/y,
    calls: true,
  },
  html: {
    rules: [
      R("tok-comment", "<!--[\\s\\S]*?(?:-->|$)"),
      R("tok-meta", "<![^>]*>?"),
      R("tok-tag", "</?[A-Za-z][\\w:.-]*|/?>"),
      R("tok-attr", "(?<=\\s)[A-Za-z_:@][\\w:.@-]*(?=\\s*=)"),
      R("tok-string", `"[^"]*"?|'[^']*'?`),
      R("tok-literal", "&[#\\w]+;"),
    ],
    keywords: new Set(),
    literals: new Set(),
    ident: /[A-Za-z_][\w-]*/y,
  },
  css: {
    rules: [
      R("tok-comment", String.raw`\/\*[\s\S]*?(?:\*\/|$)|\/\/[^\n]*`),
      R("tok-string", `${STR_DQ}|${STR_SQ}`),
      R("tok-keyword", "@[\\w-]+|!important"),
      R("tok-property", "(?:--)?[A-Za-z-][\\w-]*(?=\\s*:[^:{]*[;}\\n])"),
      R("tok-number", "#[\\da-fA-F]{3,8}\\b|-?(?:\\d+\\.?\\d*|\\.\\d+)(?:%|[a-zA-Z]+)?"),
      R("tok-tag", "[.#][A-Za-z_-][\\w-]*"),
    ],
    keywords: new Set(),
    literals: words("inherit initial unset none auto"),
    ident: /[A-Za-z_-][\w-]*/y,
  },
  yaml: {
    rules: [
      R("tok-comment", "(?:^|(?<=\\s))[#;][^\\n]*", "m"),
      R("tok-meta", "^\\s*\\[[^\\]\\n]+\\]", "m"),
      R("tok-property", "^[ \\t-]*[\\w.\"'-]+(?=\\s*[:=])", "m"),
      R("tok-string", `${STR_DQ}|${STR_SQ}`),
      R("tok-number", "-?\\b\\d+(?:\\.\\d+)?\\b"),
    ],
    keywords: new Set(),
    literals: words("true false null yes no on off ~"),
    ident: /[A-Za-z_][\w-]*/y,
  },
  sql: {
    rules: [
      R("tok-comment", String.raw`--[^\n]*|\/\*[\s\S]*?(?:\*\/|$)`),
      R("tok-string", `'(?:[^']|'')*'?|"[^"]*"?`),
      R("tok-number", "\\b\\d+(?:\\.\\d+)?\\b"),
    ],
    keywords: SQL_KEYWORDS,
    caseless: true,
    literals: words("true false null"),
    ident: /[A-Za-z_]\w*/y,
    calls: true,
  },
};
LANGS.ts = { ...LANGS.js, keywords: TS_KEYWORDS };

/** Code → DocumentFragment of text nodes and token spans. Unknown languages stay plain. */
export function highlight(code, lang) {
  const fragment = document.createDocumentFragment();
  const language = ALIASES[String(lang || "").toLowerCase()] || lang;
  if (language === "diff") return highlightDiff(code, fragment);
  const spec = LANGS[language];
  // Very large blocks stay plain: highlighting them would stall the page mid-stream.
  if (!spec || code.length > 200_000) {
    fragment.appendChild(document.createTextNode(code));
    return fragment;
  }
  let buf = "";
  const flush = () => {
    if (buf) fragment.appendChild(document.createTextNode(buf));
    buf = "";
  };
  const emit = (cls, text) => {
    flush();
    fragment.appendChild(h("span", { class: cls, text }));
  };
  let i = 0;
  outer: while (i < code.length) {
    for (const rule of spec.rules) {
      rule.re.lastIndex = i;
      const m = rule.re.exec(code);
      if (m && m[0].length > 0) {
        emit(rule.cls, m[0]);
        i += m[0].length;
        continue outer;
      }
    }
    spec.ident.lastIndex = i;
    const prev = code[i - 1];
    const id = prev && /[\w$]/.test(prev) ? null : spec.ident.exec(code);
    if (id) {
      const word = id[0];
      const key = spec.caseless ? word.toLowerCase() : word;
      if (spec.keywords.has(key)) emit("tok-keyword", word);
      else if (spec.literals.has(key)) emit("tok-literal", word);
      else if (spec.calls && /^\s*\(/.test(code.slice(i + word.length, i + word.length + 40))) {
        emit("tok-function", word);
      } else buf += word;
      i += word.length;
      continue;
    }
    buf += code[i];
    i++;
  }
  flush();
  return fragment;
}

function highlightDiff(code, fragment) {
  const lines = code.split("\n");
  lines.forEach((line, k) => {
    const cls = line.startsWith("+++") || line.startsWith("---")
      ? "tok-meta"
      : line.startsWith("+")
        ? "tok-add"
        : line.startsWith("-")
          ? "tok-del"
          : line.startsWith("@@")
            ? "tok-meta"
            : null;
    const text = k < lines.length - 1 ? `${line}\n` : line;
    fragment.appendChild(cls ? h("span", { class: cls, text }) : document.createTextNode(text));
  });
  return fragment;
}
