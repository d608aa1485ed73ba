// Git operations on a branch: the "Git actions" menu, its confirmation dialogs, and the
// "Create pull request" dialog. Every operation goes through a dialog that names exactly what
// will happen; failures stay in that dialog so the user can correct the input and retry.

import { api, ApiError } from "../api.js";
import { openDialog } from "../dialog.js";
import { toast } from "../toast.js";
import { h } from "../dom.js";

let idCounter = 0;
/** A document-unique id, for label/aria wiring between elements built here. */
export function uid(prefix) {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/** A message for the user from anything `api()` may throw. */
export function errorText(err) {
  if (err instanceof ApiError) return err.message || `Request failed (${err.status}).`;
  return err?.message || String(err);
}

function branchPath(branch, suffix) {
  return `/api/branches/${encodeURIComponent(branch.id)}${suffix}`;
}

/** A labelled form field; returns { row, input }. */
function field(label, control, hint) {
  const id = uid("ga-field");
  control.id = id;
  control.classList.add(control.tagName === "SELECT" ? "select" : "input");
  const row = h("div", { class: "view-field" }, h("label", { for: id, text: label }));
  row.append(control);
  if (hint) {
    const hintId = uid("ga-hint");
    row.append(h("p", { class: "view-hint", id: hintId, text: hint }));
    control.setAttribute("aria-describedby", hintId);
  }
  return { row, input: control };
}

function checkboxField(label, checked) {
  const id = uid("ga-check");
  const input = h("input", { type: "checkbox", id });
  input.checked = checked;
  const row = h("div", { class: "view-field view-field-check" }, input, h("label", { for: id, text: label }));
  return { row, input };
}

/**
 * Where a failed operation explains itself. Conflicts get their file list; a rejected push
 * points at the force-with-lease push.
 */
function errorBox() {
  // A fresh role=alert node per message: screen readers announce an inserted alert reliably,
  // a reused one whose text changes less so.
  const box = h("div", { class: "ga-error-slot" });
  return {
    element: box,
    clear() {
      box.replaceChildren();
    },
    show(err, { onForcePush } = {}) {
      const alert = h("div", { class: "view-error", role: "alert" });
      const body = err instanceof ApiError ? err.body ?? {} : {};
      const conflicts = Array.isArray(body.conflicts) ? body.conflicts : [];
      if (body.error_kind === "conflict" && conflicts.length) {
        const n = conflicts.length;
        alert.append(
          h("p", { text: `Conflicts in ${n} ${n === 1 ? "file" : "files"} — nothing was changed:` }),
          h("ul", { class: "view-error-files" }, ...conflicts.map((path) => h("li", {}, h("code", { text: String(path) })))),
        );
        const detail = errorText(err);
        if (detail) alert.append(h("p", { class: "view-hint", text: detail }));
      } else {
        alert.append(h("p", { text: errorText(err) }));
        if (body.error_kind === "rejected") {
          alert.append(
            h("p", {
              text:
                "The remote branch has commits this branch does not have. " +
                "To replace it with this branch, use “Push (force with lease)”.",
            }),
          );
          if (onForcePush) {
            alert.append(h("button", { type: "button", class: "button button-danger", text: "Push (force with lease)…", onclick: onForcePush }));
          }
        }
      }
      box.replaceChildren(alert);
    },
  };
}

/** Disables every control of `root` while `work` runs; returns its result. */
async function busy(root, work) {
  const controls = [...root.querySelectorAll("input, select, textarea, button")];
  const was = controls.map((c) => c.disabled);
  controls.forEach((c) => {
    c.disabled = true;
  });
  root.setAttribute("aria-busy", "true");
  try {
    return await work();
  } finally {
    controls.forEach((c, i) => {
      c.disabled = was[i];
    });
    root.removeAttribute("aria-busy");
  }
}

/**
 * A confirmation dialog for one git operation.
 *  - `describe()` returns the sentence naming what will happen (re-run as inputs change);
 *  - `run()` performs the request and returns the API result (throws to keep the dialog open);
 *  - `validate()` returns an error message or null.
 */
function operationDialog({ title, describe, fields = [], confirmLabel, danger = false, validate, run, onDone, onRejected }) {
  const summary = h("p", { class: "ga-summary" });
  const refresh = () => {
    summary.textContent = describe();
  };
  refresh();
  const errors = errorBox();
  const progress = h("p", { class: "view-hint", role: "status" });
  const form = h("div", { class: "view-form ga-form" }, summary, ...fields.map((f) => f.row), errors.element, progress);
  form.addEventListener("input", refresh);
  form.addEventListener("change", refresh);
  let running = false;

  async function submit() {
    if (running) return false;
    errors.clear();
    const problem = validate ? validate() : null;
    if (problem) {
      errors.show(new Error(problem));
      return false;
    }
    running = true;
    progress.textContent = "Working… this can take a while if the sandbox has to start.";
    try {
      const result = await busy(form, run);
      progress.textContent = "";
      toast(result?.message || `${title}: done`, { kind: "success" });
      if (onDone) onDone(result);
      return true;
    } catch (err) {
      progress.textContent = "";
      const onForcePush = onRejected
        ? () => {
            dialog.close();
            onRejected();
          }
        : undefined;
      errors.show(err, { onForcePush });
      return false;
    } finally {
      running = false;
    }
  }

  // Enter in a text field runs the primary action (dialog.js); destructive dialogs have none,
  // so there a stray Enter does nothing.
  const dialog = openDialog({
    title,
    body: form,
    actions: [{ label: "Cancel" }, { label: confirmLabel, primary: !danger, danger, onClick: submit }],
  });
  return dialog;
}

function shortSha(sha) {
  return typeof sha === "string" && /^[0-9a-f]{40}$/i.test(sha) ? sha.slice(0, 7) : sha;
}

const RESET_MODES = {
  hard: "discards later commits and all uncommitted changes",
  mixed: "keeps the changes of later commits in the working tree, unstaged",
  soft: "keeps the changes of later commits staged",
};

/** The reset dialog; `commit` pre-fills the Commit field (history's "Reset to this commit"). */
export function openResetDialog(branch, onDone, { commit = "", subject = "" } = {}) {
  const commitInput = field("Commit", h("input", { type: "text", autocomplete: "off", spellcheck: "false", required: "" }), "A commit sha, branch or tag.");
  commitInput.input.value = commit;
  const mode = field(
    "Mode",
    h(
      "select",
      {},
      h("option", { value: "hard", text: "hard" }),
      h("option", { value: "soft", text: "soft" }),
      h("option", { value: "mixed", text: "mixed" }),
    ),
  );
  mode.input.value = "hard";
  return operationDialog({
    title: "Reset branch",
    fields: [commitInput, mode],
    confirmLabel: "Reset",
    danger: true,
    describe: () => {
      const target = commitInput.input.value.trim();
      const label = target ? shortSha(target) + (subject && target === commit ? ` (“${subject}”)` : "") : "the commit below";
      const m = mode.input.value;
      return `Reset ${branch.name} to ${label}? A ${m} reset ${RESET_MODES[m]}.`;
    },
    validate: () => (commitInput.input.value.trim() ? null : "Enter the commit to reset to."),
    run: () => api("POST", branchPath(branch, "/git/reset"), { commit: commitInput.input.value.trim(), mode: mode.input.value }),
    onDone,
  });
}

function openTagDialog(branch, onDone) {
  const name = field("Tag name", h("input", { type: "text", autocomplete: "off", spellcheck: "false", required: "" }));
  const message = field("Message", h("textarea", { rows: "3" }), "Optional; makes an annotated tag.");
  const push = checkboxField("Push tag", true);
  return operationDialog({
    title: "Tag",
    fields: [name, message, push],
    confirmLabel: "Create tag",
    describe: () => {
      const tag = name.input.value.trim() || "the name below";
      const where = push.input.checked ? " and push it to the remote" : "";
      return `Tag the latest commit of ${branch.name} as ${tag}${where}?`;
    },
    validate: () => (name.input.value.trim() ? null : "Enter a tag name."),
    run: () =>
      api("POST", branchPath(branch, "/git/tag"), {
        name: name.input.value.trim(),
        message: message.input.value.trim() ? message.input.value : null,
        push: push.input.checked,
      }),
    onDone,
  });
}

function openRenameDialog(branch, onDone) {
  const name = field("New branch name", h("input", { type: "text", autocomplete: "off", spellcheck: "false", required: "" }));
  name.input.value = branch.name;
  return operationDialog({
    title: "Rename branch",
    fields: [name],
    confirmLabel: "Rename",
    describe: () => {
      const next = name.input.value.trim() || "the name below";
      return `Rename ${branch.name} to ${next}, here and on the remote?`;
    },
    validate: () => {
      const next = name.input.value.trim();
      if (!next) return "Enter the new branch name.";
      if (next === branch.name) return "That is already the branch's name.";
      return null;
    },
    run: () => api("POST", branchPath(branch, "/git/rename"), { name: name.input.value.trim() }),
    onDone,
  });
}

/** The items of the Git actions menu, in order: label, whether it is destructive, and what
 * choosing it does. */
function menuItems(branch, onDone) {
  const base = branch.base_branch;
  const name = branch.name;
  const forcePush = () =>
    operationDialog({
      onDone,
      title: "Push (force with lease)",
      confirmLabel: "Force push",
      danger: true,
      describe: () =>
        `Force push ${name}? The remote ${name} is replaced with this branch, ` +
        "but only if it still holds what was last pushed from here.",
      run: () => api("POST", branchPath(branch, "/push"), { force_with_lease: true }),
    });
  return [
    {
      label: "Push",
      run: () =>
        operationDialog({
          onDone,
          title: "Push",
          confirmLabel: "Push",
          describe: () => `Push ${name} to the remote?`,
          run: () => api("POST", branchPath(branch, "/push"), { force_with_lease: false }),
          onRejected: () => forcePush(),
        }),
    },
    { label: "Push (force with lease)", danger: true, run: () => forcePush() },
    {
      label: "Merge base into branch",
      run: () =>
        operationDialog({
          onDone,
          title: "Merge base into branch",
          confirmLabel: "Merge",
          describe: () => `Merge ${base} into ${name}?`,
          run: () => api("POST", branchPath(branch, "/git/merge"), { direction: "base-into-branch" }),
        }),
    },
    {
      label: "Merge branch into base",
      danger: true,
      run: () =>
        operationDialog({
          onDone,
          title: "Merge branch into base",
          confirmLabel: "Merge",
          danger: true,
          describe: () => `Merge ${name} into ${base}? This updates ${base} on the remote.`,
          run: () => api("POST", branchPath(branch, "/git/merge"), { direction: "branch-into-base" }),
        }),
    },
    {
      label: "Rebase onto base",
      run: () =>
        operationDialog({
          onDone,
          title: "Rebase onto base",
          confirmLabel: "Rebase",
          describe: () => `Rebase ${name} onto ${base}?`,
          run: () => api("POST", branchPath(branch, "/git/rebase")),
        }),
    },
    { label: "Reset…", danger: true, run: () => openResetDialog(branch, onDone) },
    { label: "Tag…", run: () => openTagDialog(branch, onDone) },
    { label: "Rename…", run: () => openRenameDialog(branch, onDone) },
    {
      label: "Delete remote branch",
      danger: true,
      run: () =>
        operationDialog({
          onDone,
          title: "Delete remote branch",
          confirmLabel: "Delete remote branch",
          danger: true,
          describe: () => `Delete ${name} on the remote? The branch and its sandbox stay here.`,
          run: () => api("POST", branchPath(branch, "/git/delete-remote")),
        }),
    },
  ];
}

/** A menu button (WAI-ARIA menu button pattern) listing the git operations. */
export function gitActionsMenu(branch, onDone) {
  const menuId = uid("ga-menu");
  const button = h(
    "button",
    { type: "button", class: "button gitmenu-button", "aria-haspopup": "menu", "aria-expanded": "false", "aria-controls": menuId },
    "Git actions",
    h("span", { class: "gitmenu-caret", "aria-hidden": "true", text: "▾" }),
  );
  const items = menuItems(branch, onDone);
  const menu = h("ul", { class: "gitmenu-list", role: "menu", id: menuId, "aria-label": "Git actions" });
  menu.hidden = true;
  const nodes = items.map((item) => {
    const node = h("li", {
      role: "menuitem",
      tabindex: "-1",
      class: ["gitmenu-item", item.danger && "gitmenu-item-danger"],
      text: item.label,
    });
    node.addEventListener("click", () => choose(item));
    menu.append(node);
    return node;
  });
  const root = h("div", { class: "gitmenu" }, button, menu);

  function isOpen() {
    return !menu.hidden;
  }
  function focusItem(index) {
    const i = (index + nodes.length) % nodes.length;
    nodes[i].focus();
  }
  function open(focusIndex = 0) {
    menu.hidden = false;
    button.setAttribute("aria-expanded", "true");
    // Keep the menu on screen on narrow viewports: open it leftwards when it would overflow.
    root.classList.remove("gitmenu-end");
    const rect = menu.getBoundingClientRect();
    if (rect.right > document.documentElement.clientWidth) root.classList.add("gitmenu-end");
    focusItem(focusIndex);
    document.addEventListener("pointerdown", onOutside, true);
  }
  function close(returnFocus = true) {
    if (!isOpen()) return;
    menu.hidden = true;
    button.setAttribute("aria-expanded", "false");
    document.removeEventListener("pointerdown", onOutside, true);
    if (returnFocus) button.focus();
  }
  function onOutside(event) {
    if (!root.contains(event.target)) close(false);
  }
  function choose(item) {
    close(true);
    item.run();
  }

  button.addEventListener("click", () => (isOpen() ? close() : open(0)));
  button.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" || event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      open(0);
    } else if (event.key === "ArrowUp") {
      event.preventDefault();
      open(nodes.length - 1);
    } else if (event.key === "Escape" && isOpen()) {
      event.preventDefault();
      close();
    }
  });
  menu.addEventListener("keydown", (event) => {
    const current = nodes.indexOf(document.activeElement);
    switch (event.key) {
      case "ArrowDown":
        event.preventDefault();
        focusItem(current + 1);
        break;
      case "ArrowUp":
        event.preventDefault();
        focusItem(current - 1);
        break;
      case "Home":
        event.preventDefault();
        focusItem(0);
        break;
      case "End":
        event.preventDefault();
        focusItem(nodes.length - 1);
        break;
      case "Escape":
        event.preventDefault();
        event.stopPropagation();
        close();
        break;
      case "Tab":
        close(false);
        break;
      case "Enter":
      case " ":
        event.preventDefault();
        if (current >= 0) choose(items[current]);
        break;
      default:
        // Type-ahead: jump to the next item starting with the typed letter.
        if (event.key.length === 1 && /\S/.test(event.key)) {
          const letter = event.key.toLowerCase();
          for (let step = 1; step <= nodes.length; step += 1) {
            const i = (current + step) % nodes.length;
            if (items[i].label.toLowerCase().startsWith(letter)) {
              nodes[i].focus();
              break;
            }
          }
        }
    }
  });
  menu.addEventListener("focusout", (event) => {
    if (isOpen() && !root.contains(event.relatedTarget)) close(false);
  });
  return root;
}

/** The "Create pull request" dialog; on success shows the pull request's link. */
export function openCreatePullRequest(branch, onDone) {
  const title = field("Title", h("input", { type: "text", autocomplete: "off", placeholder: "Written from the conversation", maxlength: "256" }));
  const description = field("Description", h("textarea", { rows: "6", placeholder: "Written from the conversation" }));
  const draft = checkboxField("Draft", false);
  const errors = errorBox();
  const progress = h("p", { class: "view-hint", role: "status" });
  const intro = h("p", { class: "ga-summary", text: `Push ${branch.name} and open a pull request into ${branch.base_branch}.` });
  const existing = branch.pull_request;
  const form = h("div", { class: "view-form ga-form" }, intro);
  if (existing?.url) {
    form.append(h("p", { class: "view-hint" }, "This branch already has ", prLink(existing), "; asking again returns it."));
  }
  form.append(title.row, description.row, draft.row, errors.element, progress);
  let running = false;
  let opened = null;

  async function submit() {
    if (running) return false;
    errors.clear();
    running = true;
    progress.textContent = "Pushing and opening the pull request… writing a title can take a minute.";
    try {
      const pull = await busy(form, () =>
        api("POST", branchPath(branch, "/pull-request"), {
          title: title.input.value.trim() || null,
          body: description.input.value.trim() ? description.input.value : null,
          draft: draft.input.checked,
        }),
      );
      progress.textContent = "";
      opened = pull;
      if (onDone) onDone(pull);
      return true;
    } catch (err) {
      progress.textContent = "";
      errors.show(err);
      return false;
    } finally {
      running = false;
    }
  }

  return openDialog({
    title: "Create pull request",
    body: form,
    actions: [{ label: "Cancel" }, { label: "Create pull request", primary: true, onClick: submit }],
    // The result opens once this dialog is gone, so focus returns to where the user started.
    onClose: () => {
      if (opened) showResult(opened);
    },
  });
}

function prLink(pull) {
  // The URL comes from the git host; only ever link to http(s).
  if (!/^https?:\/\//i.test(String(pull.url))) return h("span", { text: `Pull request #${pull.number}` });
  return h("a", { href: pull.url, target: "_blank", rel: "noopener noreferrer", text: `Pull request #${pull.number}` });
}

function showResult(pull) {
  const created = pull.created !== false;
  const message = created ? "Pull request opened: " : "This branch already had a pull request: ";
  const link = prLink(pull);
  const body = h("div", { class: "view-form" }, h("p", { role: "status" }, message, link));
  toast(created ? `Pull request #${pull.number} opened` : `Pull request #${pull.number} already exists`, { kind: "success" });
  openDialog({
    title: created ? "Pull request opened" : "Pull request already exists",
    body,
    actions: [{ label: "Close", primary: true }],
  });
  queueMicrotask(() => link.focus());
}
