// The branch's own commits, newest first, each expandable to its full message and with a
// "Reset to this commit" action. Subjects and bodies are untrusted: textContent only.

import { api } from "../api.js";
import { h } from "../dom.js";
import { errorText, openResetDialog, uid } from "./git_actions.js";

const UNITS = [
  ["year", 365 * 24 * 3600],
  ["month", 30 * 24 * 3600],
  ["week", 7 * 24 * 3600],
  ["day", 24 * 3600],
  ["hour", 3600],
  ["minute", 60],
  ["second", 1],
];

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/** "3 minutes ago" for an ISO 8601 time; "" when it does not parse. */
export function relativeTime(iso, now = Date.now()) {
  const when = Date.parse(iso);
  if (Number.isNaN(when)) return "";
  const seconds = Math.round((when - now) / 1000);
  if (Math.abs(seconds) < 45) return "just now";
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size || unit === "second") {
      return relative.format(Math.round(seconds / size), unit);
    }
  }
  return "";
}

function timeElement(iso) {
  const when = Date.parse(iso);
  const node = h("time", { datetime: iso, class: "history-time", text: relativeTime(iso) || iso });
  if (!Number.isNaN(when)) node.title = absolute.format(new Date(when));
  return node;
}

export async function renderHistory(container, branch) {
  const refresh = h("button", { type: "button", class: "button", text: "Refresh" });
  const toolbar = h(
    "div",
    { class: "view-toolbar history-toolbar" },
    h("p", { class: "view-hint" }, "Commits on ", h("code", { text: branch.name }), " that are not on ", h("code", { text: branch.base_branch }), "."),
    refresh,
  );
  const status = h("p", { class: "view-status", role: "status" });
  const body = h("div", { class: "history-body" });
  container.replaceChildren(h("div", { class: "view history-view" }, toolbar, status, body));

  let generation = 0;
  async function load() {
    const mine = ++generation;
    status.textContent = "Loading history…";
    body.setAttribute("aria-busy", "true");
    refresh.disabled = true;
    try {
      const commits = await api("GET", `/api/branches/${encodeURIComponent(branch.id)}/commits`);
      if (mine !== generation) return;
      status.textContent = "";
      body.replaceChildren(renderCommits(commits ?? [], branch, load));
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
  refresh.addEventListener("click", load);
  await load();
}

function renderCommits(commits, branch, reload) {
  if (!commits.length) {
    return h("p", { class: "view-empty", text: "No commits on this branch yet" });
  }
  const list = h("ol", { class: "history-list", "aria-label": "Commits" });
  for (const commit of commits) list.append(renderCommit(commit, branch, reload));
  return list;
}

function renderCommit(commit, branch, reload) {
  const short = commit.sha.slice(0, 7);
  const subjectText = commit.subject || "(no subject)";
  const detailsId = uid("history-details");
  const subjectId = uid("history-subject");
  const toggle = h(
    "button",
    { type: "button", class: "history-subject", "aria-expanded": "false", "aria-controls": detailsId },
    h("span", { class: "view-chevron", "aria-hidden": "true" }),
    h("span", { id: subjectId, text: subjectText }),
  );
  const meta = h(
    "p",
    { class: "history-meta" },
    h("code", { class: "history-sha", title: commit.sha, text: short }),
    " ",
    h("span", { class: "history-author", text: commit.author_name }),
    " ",
    timeElement(commit.authored_at),
  );
  if (commit.turn_id) {
    meta.append(" ", h("span", { class: "view-badge history-turn", title: `Turn ${commit.turn_id}`, text: "agent turn" }));
  }

  const details = h("div", { class: "history-details", id: detailsId });
  details.hidden = true;
  if (commit.body) details.append(h("pre", { class: "history-body-text", text: commit.body }));
  const facts = h("dl", { class: "history-facts" });
  const fact = (term, value) => facts.append(h("dt", { text: term }), h("dd", {}, value));
  fact("Commit", h("code", { text: commit.sha }));
  fact("Author", h("span", { text: commit.author_email ? `${commit.author_name} <${commit.author_email}>` : commit.author_name }));
  const when = Date.parse(commit.authored_at);
  fact("Date", h("span", { text: Number.isNaN(when) ? commit.authored_at : absolute.format(new Date(when)) }));
  if (commit.parents?.length) fact(commit.parents.length > 1 ? "Parents" : "Parent", h("code", { text: commit.parents.map((p) => p.slice(0, 7)).join(" ") }));
  if (commit.turn_id) fact("Turn", h("code", { text: commit.turn_id }));
  details.append(facts);

  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    details.hidden = !open;
  });

  const reset = h("button", { type: "button", class: "button button-small history-reset", "aria-describedby": subjectId, text: "Reset to this commit" });
  reset.addEventListener("click", () => openResetDialog(branch, () => reload(), { commit: commit.sha, subject: subjectText }));

  return h(
    "li",
    { class: "history-item" },
    h("div", { class: "history-main" }, h("div", { class: "history-head" }, toggle, meta), reset),
    details,
  );
}
