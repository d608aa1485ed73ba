// The branch's diff against its base branch (or another ref): a file list, then one
// collapsible section per file with its hunks. File names and lines are untrusted (written by
// the agent), so everything goes in through textContent.

import { api } from "../api.js";
import { h } from "../dom.js";
import { errorText, uid } from "./git_actions.js";

const STATUS_LABEL = {
  added: "added",
  modified: "modified",
  deleted: "deleted",
  renamed: "renamed",
  copied: "copied",
  "type-changed": "type changed",
};

const MARKER = { add: "+", delete: "-", context: " " };

export async function renderDiff(container, branch) {
  const inputId = uid("diff-against");
  const against = h("input", {
    id: inputId,
    type: "text",
    class: "input diff-against",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: branch.base_branch,
  });
  against.value = branch.base_branch;
  const refresh = h("button", { type: "submit", class: "button", text: "Refresh" });
  const form = h(
    "form",
    { class: "view-toolbar diff-toolbar", "aria-label": "Diff options" },
    h("label", { for: inputId, text: "Compare against" }),
    against,
    refresh,
  );
  const status = h("p", { class: "view-status", role: "status" });
  const body = h("div", { class: "diff-body" });
  container.replaceChildren(h("div", { class: "view diff-view" }, form, status, body));

  let generation = 0;
  async function load() {
    const mine = ++generation;
    const ref = against.value.trim();
    const query = ref && ref !== branch.base_branch ? `?against=${encodeURIComponent(ref)}` : "";
    status.textContent = "Loading diff…";
    body.setAttribute("aria-busy", "true");
    refresh.disabled = true;
    try {
      const diff = await api("GET", `/api/branches/${encodeURIComponent(branch.id)}/diff${query}`);
      if (mine !== generation) return;
      status.textContent = "";
      body.replaceChildren(...renderDiffBody(diff));
    } catch (err) {
      if (mine !== generation) return;
      status.textContent = "";
      body.replaceChildren(h("div", { class: "view-error", role: "alert" }, h("p", { text: errorText(err) })));
    } finally {
      if (mine === generation) {
        body.removeAttribute("aria-busy");
        refresh.disabled = false;
      }
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  await load();
}

function renderDiffBody(diff) {
  const files = diff.files ?? [];
  const nodes = [];
  if (diff.truncated) {
    nodes.push(
      h("p", {
        class: "view-notice",
        role: "note",
        text: "This diff is too large to show in full: some files were left out.",
      }),
    );
  }
  if (!files.length) {
    nodes.push(h("p", { class: "view-empty", text: "No changes yet" }));
    return nodes;
  }
  const adds = files.reduce((n, f) => n + (f.additions || 0), 0);
  const dels = files.reduce((n, f) => n + (f.deletions || 0), 0);
  nodes.push(
    h(
      "p",
      { class: "diff-summary" },
      `${files.length} ${files.length === 1 ? "file" : "files"} changed against `,
      h("code", { text: diff.against }),
      " ",
      h("span", { class: "diff-adds", text: `+${adds}` }),
      " ",
      h("span", { class: "diff-dels", text: `−${dels}` }),
    ),
  );

  const sections = files.map((file) => renderFile(file));
  const list = h("ul", { class: "diff-files", "aria-label": "Changed files" });
  files.forEach((file, i) => {
    const section = sections[i];
    // In-page link that scrolls without touching the URL: the app routes on the location.
    const link = h("a", { href: `#${section.id}`, class: "diff-file-link", text: file.path });
    link.addEventListener("click", (event) => {
      event.preventDefault();
      section.expand();
      section.element.scrollIntoView({ block: "start" });
      section.heading.focus({ preventScroll: true });
    });
    list.append(h("li", { class: "diff-files-item" }, link, h("span", { class: "diff-files-meta" }, ...fileMeta(file))));
  });
  nodes.push(list, ...sections.map((s) => s.element));
  return nodes;
}

function fileMeta(file) {
  const status = file.status || "modified";
  const meta = [h("span", { class: `diff-status diff-status-${status}`, text: STATUS_LABEL[status] ?? status })];
  if (file.old_path && file.old_path !== file.path) {
    meta.push(h("span", { class: "diff-oldpath", text: `from ${file.old_path}` }));
  }
  if (file.binary) {
    meta.push(h("span", { class: "diff-binary", text: "binary" }));
  } else {
    meta.push(
      h("span", { class: "diff-counts" }, h("span", { class: "diff-adds", text: `+${file.additions}` }), " ", h("span", { class: "diff-dels", text: `−${file.deletions}` })),
    );
  }
  return meta;
}

function renderFile(file) {
  const id = uid("diff-file");
  const contentId = `${id}-content`;
  const toggle = h(
    "button",
    { type: "button", class: "diff-file-toggle", "aria-expanded": "true", "aria-controls": contentId },
    h("span", { class: "view-chevron", "aria-hidden": "true" }),
    h("span", { class: "diff-file-path", text: file.path }),
  );
  const heading = h("h3", { class: "diff-file-heading", tabindex: "-1" }, toggle);
  const content = h("div", { class: "diff-file-content", id: contentId });
  const header = h("div", { class: "diff-file-header" }, heading, h("div", { class: "diff-file-meta" }, ...fileMeta(file)));
  const element = h("section", { class: "diff-file", id }, header, content);

  if (file.binary) {
    content.append(h("p", { class: "view-hint", text: "Binary file not shown." }));
  } else if (!file.hunks?.length) {
    const reason = file.status === "renamed" ? "File renamed without changes." : "No content changes.";
    content.append(h("p", { class: "view-hint", text: reason }));
  } else {
    for (const hunk of file.hunks) content.append(renderHunk(hunk));
  }

  function setExpanded(on) {
    toggle.setAttribute("aria-expanded", on ? "true" : "false");
    content.hidden = !on;
    element.classList.toggle("diff-file-collapsed", !on);
  }
  toggle.addEventListener("click", () => setExpanded(toggle.getAttribute("aria-expanded") !== "true"));
  return { id, element, heading, expand: () => setExpanded(true) };
}

function renderHunk(hunk) {
  const rows = hunk.lines.map((line) => {
    const kind = MARKER[line.kind] !== undefined ? line.kind : "context";
    return h(
      "tr",
      { class: `diff-line diff-line-${kind}` },
      h("td", { class: "diff-num", text: line.old_line ?? "" }),
      h("td", { class: "diff-num", text: line.new_line ?? "" }),
      h("td", { class: "diff-marker", text: MARKER[kind] }),
      h("td", { class: "diff-code", text: line.content }),
    );
  });
  const table = h(
    "table",
    { class: "diff-hunk" },
    h(
      "thead",
      {},
      h("tr", { class: "diff-hunk-header" }, h("th", { colspan: "4", scope: "colgroup", class: "diff-hunk-title", text: hunk.header })),
    ),
    h("tbody", {}, ...rows),
  );
  // Long lines scroll inside this box instead of widening the page.
  return h("div", { class: "diff-hunk-scroll", tabindex: "0", role: "group", "aria-label": `Hunk ${hunk.header}` }, table);
}
