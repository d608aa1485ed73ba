// The sidebar: repositories (reorderable by drag and drop or Alt+Arrow keys) with their
// branches and live status badges, the "Add repository" and "New branch" dialogs, and the
// footer (account, Settings, Theme, Sign out). Status is polled every few seconds; the open
// branch also gets pushed updates from its event stream through setBranchStatus.
import { api, apiCached, ApiError, errorMessage, seg } from "./api.js";
import { announce, debounce, h, safeUrl, storage } from "./dom.js";
import { openDialog } from "./dialog.js";
import { themeButton } from "./theme.js";
import { toast } from "./toast.js";
import { fillAgentSelect, fillModelSelect, agentCredentialHint } from "./chat.js";

const POLL_MS = 5000;
const CONNECT_GITHUB = "connect GitHub first: sign in with GitHub or store a github credential";
const COLLAPSED_KEY = "upstream.collapsedRepos";

export const STATUSES = ["idle", "creating", "running", "stopped", "error"];

export function statusBadge(status, { className } = {}) {
  const known = STATUSES.includes(status) ? status : "idle";
  return h("span", { class: ["status-badge", className], "data-status": known, text: known });
}

export function createSidebar(root, { onBranchCreated, onRequestClose, onReposChanged, isDrawer } = {}) {
  const repos = new Map(); // id → { data, el, list, toggle, branches: Map(id → { data, li, link, badge }) }
  let order = []; // repo ids in the caller's order
  let activeBranch = null;
  let polling = 0;
  let account = null;
  let dragId = null;
  let collapsed = new Set(readCollapsed());

  const repoList = h("ul", { class: "repo-list", role: "list" });
  const emptyNote = h("p", { class: "sidebar-empty", text: "No repositories yet." });
  const addButton = h("button", {
    type: "button",
    class: "icon-button add-repo",
    "aria-label": "Add repository",
    title: "Add repository",
    text: "+",
    onclick: () => openAddRepository(),
  });
  const hint = h("p", {
    class: "sr-only",
    id: "reorder-hint",
    text: "Press Alt+Up or Alt+Down to move this repository, or drag it.",
  });
  const nav = h(
    "nav",
    { class: "sidebar-nav", "aria-label": "Repositories" },
    h(
      "div",
      { class: "section-head" },
      h("h2", { class: "section-title", text: "Repositories" }),
      addButton,
    ),
    emptyNote,
    repoList,
    hint,
  );

  const settingsLink = h(
    "a",
    { class: "foot-link", href: "#/settings" },
    h("span", { class: "foot-icon", "aria-hidden": "true", text: "⚙" }),
    h("span", { text: "Settings" }),
  );
  const accountEl = h("div", { class: "account" });
  const footer = h(
    "div",
    { class: "sidebar-foot" },
    accountEl,
    h("div", { class: "foot-row" }, settingsLink, themeButton()),
  );

  const closeButton = h("button", {
    type: "button",
    class: "icon-button drawer-close",
    "aria-label": "Close menu",
    text: "×",
    onclick: () => onRequestClose?.(),
  });
  const head = h(
    "div",
    { class: "sidebar-head" },
    h("a", { class: "brand", href: "#/" }, h("span", { class: "brand-mark", "aria-hidden": "true", text: "⌥" }), "Upstream"),
    closeButton,
  );

  root.replaceChildren(h("div", { class: "sidebar-inner" }, head, nav, footer));
  renderEmpty();

  // -- account -----------------------------------------------------------------------------

  function setAccount({ config, me, onSignOut }) {
    account = { config, me };
    accountEl.replaceChildren();
    nav.hidden = !me;
    settingsLink.hidden = !me;
    if (!me) {
      accountEl.append(h("span", { class: "account-name muted", text: "Not signed in" }));
      stopPolling();
      return;
    }
    const letter = () =>
      h("span", { class: "avatar avatar-letter", "aria-hidden": "true", text: (me.name || me.login || "?").slice(0, 1).toUpperCase() });
    let avatar = letter();
    if (me.avatar_url && safeUrl(me.avatar_url)?.startsWith("https:")) {
      avatar = h("img", { class: "avatar", src: me.avatar_url, alt: "", width: "26", height: "26", referrerpolicy: "no-referrer" });
      avatar.addEventListener("error", () => avatar.replaceWith(letter()), { once: true });
    }
    const label = me.name || me.login;
    accountEl.append(
      avatar,
      h(
        "span",
        { class: "account-text" },
        h("span", { class: "account-name", text: label }),
        config.mode === "local"
          ? h("span", { class: "account-mode", text: "Local mode" })
          : h("span", { class: "account-mode", text: `@${me.login}` }),
      ),
    );
    if (config.mode !== "local" && me.auth_method === "session") {
      accountEl.append(
        h("button", { type: "button", class: "button button-ghost button-small", text: "Sign out", onclick: onSignOut }),
      );
    }
  }

  // -- loading and polling --------------------------------------------------------------

  async function load() {
    try {
      await refresh();
    } catch (err) {
      toast(`Repositories could not be loaded: ${errorMessage(err)}`, { kind: "error" });
    }
    startPolling();
  }

  async function refresh() {
    const list = await api("GET", "/api/repos");
    const branchLists = await Promise.all(
      list.map((repo) =>
        api("GET", `/api/repos/${seg(repo.id)}/branches`).catch((err) => {
          if (err instanceof ApiError && err.status === 404) return [];
          return null; // keep what we show
        }),
      ),
    );
    if (dragId) return; // never reshuffle under a drag
    reconcile(list, branchLists);
  }

  function startPolling() {
    stopPolling();
    polling = setInterval(() => {
      if (document.visibilityState !== "visible" || !account?.me) return;
      refresh().catch(() => {
        /* transient; next poll tries again */
      });
    }, POLL_MS);
  }

  function stopPolling() {
    clearInterval(polling);
    polling = 0;
  }

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && account?.me) refresh().catch(() => {});
  });

  function reconcile(list, branchLists) {
    const before = order.join(",");
    const seen = new Set();
    list.forEach((data, index) => {
      seen.add(data.id);
      let entry = repos.get(data.id);
      if (!entry) {
        entry = createRepo(data);
        repos.set(data.id, entry);
      } else {
        entry.data = data;
        entry.nameEl.textContent = data.name;
        entry.newBranch.setAttribute("aria-label", `New branch in ${data.name}`);
        entry.newBranch.title = `New branch in ${data.name}`;
      }
      if (branchLists[index]) reconcileBranches(entry, branchLists[index]);
    });
    for (const [id, entry] of repos) {
      if (!seen.has(id)) {
        entry.el.remove();
        repos.delete(id);
      }
    }
    order = list.map((r) => r.id);
    placeRepos();
    renderEmpty();
    if (before !== order.join(",")) onReposChanged?.();
  }

  function placeRepos() {
    // Move only what is out of place: moving a node that holds focus would blur it.
    let cursor = repoList.firstElementChild;
    for (const id of order) {
      const el = repos.get(id).el;
      if (el === cursor) {
        cursor = cursor.nextElementSibling;
      } else {
        const focused = el.contains(document.activeElement) ? document.activeElement : null;
        repoList.insertBefore(el, cursor);
        focused?.focus();
      }
    }
  }

  function renderEmpty() {
    emptyNote.hidden = order.length > 0;
  }

  // -- repositories -------------------------------------------------------------------------

  function createRepo(data) {
    const isCollapsed = collapsed.has(data.id);
    const nameEl = h("span", { class: "repo-name", text: data.name });
    const branchList = h("ul", { class: "branch-list", role: "list", hidden: isCollapsed });
    const emptyBranches = h("li", { class: "branch-empty", text: "No branches yet" });
    branchList.appendChild(emptyBranches);
    const toggle = h(
      "button",
      {
        type: "button",
        class: "repo-toggle",
        "aria-expanded": isCollapsed ? "false" : "true",
        "aria-describedby": "reorder-hint",
        "aria-keyshortcuts": "Alt+ArrowUp Alt+ArrowDown",
        "data-repo-id": data.id,
      },
      h("span", { class: "chevron", "aria-hidden": "true" }),
      nameEl,
    );
    const newBranch = h("button", {
      type: "button",
      class: "icon-button repo-new-branch",
      "aria-label": `New branch in ${data.name}`,
      title: `New branch in ${data.name}`,
      text: "+",
      onclick: () => openNewBranch(data.id),
    });
    const row = h("div", { class: "repo-row", draggable: "true" }, toggle, newBranch);
    const el = h("li", { class: "repo", "data-repo-id": data.id }, row, branchList);
    const entry = { data, el, row, toggle, newBranch, nameEl, list: branchList, emptyBranches, branches: new Map() };

    toggle.addEventListener("click", () => {
      const open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      branchList.hidden = !open;
      if (open) collapsed.delete(data.id);
      else collapsed.add(data.id);
      storage.set(COLLAPSED_KEY, JSON.stringify([...collapsed]));
    });
    toggle.addEventListener("keydown", (event) => {
      if (!event.altKey || (event.key !== "ArrowUp" && event.key !== "ArrowDown")) return;
      event.preventDefault();
      moveByKeyboard(data.id, event.key === "ArrowUp" ? -1 : 1);
    });

    row.addEventListener("dragstart", (event) => {
      dragId = data.id;
      el.classList.add("is-dragging");
      event.dataTransfer.effectAllowed = "move";
      // Some browsers start no drag without data.
      event.dataTransfer.setData("text/plain", data.name);
    });
    row.addEventListener("dragend", () => {
      el.classList.remove("is-dragging");
      clearDropMarks();
      dragId = null;
    });
    el.addEventListener("dragover", (event) => {
      if (!dragId || dragId === data.id) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "move";
      const after = dropAfter(event, el);
      clearDropMarks();
      el.classList.add(after ? "drop-after" : "drop-before");
    });
    el.addEventListener("dragleave", (event) => {
      if (!el.contains(event.relatedTarget)) el.classList.remove("drop-before", "drop-after");
    });
    el.addEventListener("drop", (event) => {
      if (!dragId || dragId === data.id) return;
      event.preventDefault();
      const moving = dragId;
      const after = dropAfter(event, el);
      clearDropMarks();
      const rest = order.filter((id) => id !== moving);
      let index = rest.indexOf(data.id) + (after ? 1 : 0);
      moveTo(moving, index);
    });
    return entry;
  }

  function dropAfter(event, el) {
    const rect = el.querySelector(".repo-row").getBoundingClientRect();
    return event.clientY > rect.top + rect.height / 2;
  }

  function clearDropMarks() {
    for (const node of repoList.querySelectorAll(".drop-before, .drop-after")) {
      node.classList.remove("drop-before", "drop-after");
    }
  }

  function moveByKeyboard(id, delta) {
    const index = order.indexOf(id);
    const target = index + delta;
    if (index < 0 || target < 0 || target >= order.length) return;
    moveTo(id, target);
  }

  async function moveTo(id, index) {
    const from = order.indexOf(id);
    const rest = order.filter((x) => x !== id);
    index = Math.max(0, Math.min(index, rest.length));
    rest.splice(index, 0, id);
    if (rest.join(",") === order.join(",")) return;
    order = rest;
    placeRepos();
    const entry = repos.get(id);
    announce(`Moved ${entry.data.name} to position ${index + 1} of ${order.length}.`);
    try {
      await api("PATCH", `/api/repos/${seg(id)}`, { position: index });
    } catch (err) {
      toast(`The new order was not saved: ${errorMessage(err)}`, { kind: "error" });
      // Put back what the server holds.
      if (from >= 0) refresh().catch(() => {});
    }
  }

  // -- branches ----------------------------------------------------------------------------

  function reconcileBranches(entry, list) {
    const seen = new Set();
    for (const data of list) {
      seen.add(data.id);
      upsertInto(entry, data);
    }
    for (const [id, b] of entry.branches) {
      if (!seen.has(id)) {
        b.li.remove();
        entry.branches.delete(id);
      }
    }
    // Server order (creation time).
    let cursor = entry.list.firstElementChild;
    for (const data of list) {
      const li = entry.branches.get(data.id).li;
      if (li === cursor) cursor = cursor.nextElementSibling;
      else {
        const focused = li.contains(document.activeElement) ? document.activeElement : null;
        entry.list.insertBefore(li, cursor);
        focused?.focus();
      }
    }
    entry.emptyBranches.hidden = entry.branches.size > 0;
    if (entry.emptyBranches !== entry.list.lastElementChild) entry.list.appendChild(entry.emptyBranches);
  }

  function upsertInto(entry, data) {
    let b = entry.branches.get(data.id);
    if (!b) {
      const label = h("span", { class: "branch-label", text: data.name });
      const badge = statusBadge(data.status);
      const link = h(
        "a",
        { class: "branch-link", href: `#/branches/${encodeURIComponent(data.id)}`, title: data.name },
        h("span", { class: "branch-icon", "aria-hidden": "true", text: "⎇" }),
        label,
        " ",
        badge,
      );
      const li = h("li", { class: "branch", "data-branch-id": data.id }, link);
      b = { data, li, link, label, badge };
      entry.branches.set(data.id, b);
      entry.list.insertBefore(li, entry.emptyBranches);
    }
    b.data = { ...b.data, ...data };
    b.label.textContent = b.data.name;
    b.link.title = b.data.status_detail ? `${b.data.name} — ${b.data.status_detail}` : b.data.name;
    setBadge(b.badge, b.data.status);
    if (activeBranch === data.id) b.link.setAttribute("aria-current", "page");
    else b.link.removeAttribute("aria-current");
    entry.emptyBranches.hidden = entry.branches.size > 0;
    return b;
  }

  function setBadge(badge, status) {
    const known = STATUSES.includes(status) ? status : "idle";
    badge.dataset.status = known;
    badge.textContent = known;
  }

  function findBranch(id) {
    for (const entry of repos.values()) {
      const b = entry.branches.get(id);
      if (b) return { entry, b };
    }
    return null;
  }

  function upsertBranch(branch) {
    const entry = repos.get(branch.repo_id);
    if (!entry) return;
    upsertInto(entry, branch);
  }

  function removeBranch(id) {
    const found = findBranch(id);
    if (!found) return;
    found.b.li.remove();
    found.entry.branches.delete(id);
    found.entry.emptyBranches.hidden = found.entry.branches.size > 0;
  }

  function setBranchStatus(id, status, detail) {
    const found = findBranch(id);
    if (!found) return;
    found.b.data.status = status;
    found.b.data.status_detail = detail ?? null;
    setBadge(found.b.badge, status);
  }

  function setActive(branchId) {
    activeBranch = branchId;
    for (const entry of repos.values()) {
      for (const [id, b] of entry.branches) {
        if (id === branchId) {
          b.link.setAttribute("aria-current", "page");
          // The open branch's repository is always expanded.
          if (entry.list.hidden) entry.toggle.click();
        } else b.link.removeAttribute("aria-current");
      }
    }
    const onSettings = window.location.hash.startsWith("#/settings");
    if (onSettings) settingsLink.setAttribute("aria-current", "page");
    else settingsLink.removeAttribute("aria-current");
  }

  // -- dialogs --------------------------------------------------------------------------------

  async function openAddRepository() {
    let hasGitHub = false;
    try {
      const creds = await api("GET", "/api/me/credentials");
      hasGitHub = Array.isArray(creds) && creds.some((c) => c.provider === "github");
    } catch {
      hasGitHub = false;
    }
    const dialogRef = { current: null };
    const added = (repo) => {
      dialogRef.current?.close();
      toast(`Added ${repo.name}.`, { kind: "success" });
      if (isDrawer?.()) return refresh();
      return refresh().then(() => repos.get(repo.id)?.toggle.focus());
    };

    // URL or path
    const urlInput = h("input", {
      type: "text",
      id: "add-repo-url",
      class: "input",
      autocomplete: "off",
      spellcheck: "false",
      placeholder: "owner/name, https://…/repo.git or /path/to/repo",
      "aria-describedby": "add-repo-url-hint",
      "data-no-submit": "",
    });
    const addUrlButton = h("button", { type: "submit", class: "button button-primary", text: "Add" });
    const urlForm = h(
      "form",
      { class: "stack", novalidate: true },
      h("label", { class: "label", for: "add-repo-url", text: "Repository URL or path" }),
      h("div", { class: "input-row" }, urlInput, addUrlButton),
      h("p", {
        class: "hint",
        id: "add-repo-url-hint",
        text: "A GitHub repository as owner/name, any git URL, or an absolute path on the server (administrators only).",
      }),
    );
    urlForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const url = urlInput.value.trim();
      if (!url) {
        dialogRef.current.setError("Enter a repository URL or path.");
        urlInput.focus();
        return;
      }
      dialogRef.current.setError(null);
      addUrlButton.disabled = true;
      addUrlButton.textContent = "Adding…";
      try {
        const repo = await api("POST", "/api/repos", { url });
        await added(repo);
      } catch (err) {
        dialogRef.current?.setError(errorMessage(err));
        urlInput.focus();
      } finally {
        addUrlButton.disabled = false;
        addUrlButton.textContent = "Add";
      }
    });

    // GitHub
    const search = h("input", {
      type: "search",
      id: "add-repo-search",
      class: "input",
      autocomplete: "off",
      spellcheck: "false",
      placeholder: "Filter by name or description",
      "data-no-submit": "",
    });
    const results = h("ul", { class: "gh-results", role: "list" });
    const ghStatus = h("div", { class: "gh-status", role: "status" });
    const more = h("button", { type: "button", class: "button button-ghost gh-more", text: "More", hidden: true });
    const ghPanelBody = h(
      "div",
      { class: "stack" },
      h("label", { class: "label", for: "add-repo-search", text: "Search your GitHub repositories" }),
      search,
      ghStatus,
      results,
      more,
    );
    const known = () => new Set([...repos.values()].map((e) => (e.data.github_full_name || "").toLowerCase()).filter(Boolean));
    let query = "";
    let page = 1;
    let requestNo = 0;

    function notConnected(message) {
      ghStatus.replaceChildren(
        h(
          "div",
          { class: "notice" },
          h("p", { text: `${capitalise(message.replace(/\.$/, ""))}.` }),
          h("p", {}, h("a", {
            href: "#/settings",
            text: "Connect GitHub",
            onclick: () => dialogRef.current?.close(),
          })),
        ),
      );
    }

    async function loadGitHub(reset) {
      const mine = ++requestNo;
      if (!hasGitHub) {
        // Known without asking (no github credential): the API would answer 409 with this.
        notConnected(CONNECT_GITHUB);
        return;
      }
      if (reset) {
        page = 1;
        results.replaceChildren();
      }
      more.hidden = true;
      ghStatus.replaceChildren(h("span", { class: "muted", text: "Loading…" }));
      try {
        const params = new URLSearchParams({ page: String(page), per_page: "30" });
        if (query) params.set("q", query);
        const data = await api("GET", `/api/github/repos?${params}`);
        if (mine !== requestNo) return;
        ghStatus.replaceChildren();
        const already = known();
        for (const item of data.items || []) results.appendChild(githubRow(item, already));
        if (!results.children.length) {
          ghStatus.replaceChildren(h("span", { class: "muted", text: query ? `No repositories match “${query}”.` : "No repositories found." }));
        }
        more.hidden = !data.has_next;
      } catch (err) {
        if (mine !== requestNo) return;
        if (err instanceof ApiError && err.status === 409) {
          notConnected(errorMessage(err));
        } else {
          ghStatus.replaceChildren(h("p", { class: "form-error", role: "alert", text: errorMessage(err) }));
        }
      }
    }

    function githubRow(item, already) {
      const nameId = `gh-${Math.random().toString(36).slice(2, 10)}`;
      const isAdded = already.has(String(item.full_name).toLowerCase());
      const button = h("button", {
        type: "button",
        class: ["button", "button-small", !isAdded && "button-primary"],
        text: isAdded ? "Added" : "Add",
        disabled: isAdded,
        "aria-describedby": nameId,
      });
      button.addEventListener("click", async () => {
        dialogRef.current.setError(null);
        button.disabled = true;
        button.textContent = "Adding…";
        try {
          const repo = await api("POST", "/api/repos", { url: item.full_name });
          await added(repo);
        } catch (err) {
          dialogRef.current?.setError(errorMessage(err));
          button.disabled = false;
          button.textContent = "Add";
          button.focus();
        }
      });
      return h(
        "li",
        { class: "gh-row" },
        h(
          "div",
          { class: "gh-main" },
          h(
            "div",
            { class: "gh-name-row" },
            h("span", { class: "gh-name", id: nameId, text: item.full_name }),
            item.private ? h("span", { class: "pill", text: "private" }) : null,
          ),
          item.description ? h("p", { class: "gh-desc", text: item.description }) : null,
        ),
        button,
      );
    }

    const onSearch = debounce(() => {
      query = search.value.trim();
      loadGitHub(true);
    }, 300);
    search.addEventListener("input", onSearch);
    search.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        onSearch.cancel();
        query = search.value.trim();
        loadGitHub(true);
      }
    });
    more.addEventListener("click", () => {
      page += 1;
      loadGitHub(false);
    });

    const sourceTabs = tabSet("add-repo", [
      { id: "github", label: "GitHub", body: ghPanelBody },
      { id: "url", label: "URL or path", body: urlForm },
    ], {
      initial: hasGitHub ? "github" : "url",
      label: "Repository source",
      onSelect: (id) => {
        if (id === "github" && !results.children.length && !ghStatus.children.length) loadGitHub(true);
        (id === "github" ? search : urlInput).focus();
      },
    });

    dialogRef.current = openDialog({
      title: "Add repository",
      body: sourceTabs.element,
      actions: [{ label: "Close" }],
      size: "wide",
      onClose: () => onSearch.cancel(),
    });
    if (hasGitHub) loadGitHub(true);
    (hasGitHub ? search : urlInput).focus();
  }

  async function openNewBranch(repoId) {
    const entry = repos.get(repoId);
    if (!entry) return;
    const repo = entry.data;

    const nameInput = h("input", {
      type: "text",
      id: "new-branch-name",
      class: "input",
      autocomplete: "off",
      spellcheck: "false",
      placeholder: "Leave empty to generate a name",
      "aria-describedby": "new-branch-name-hint",
    });
    const baseSelect = h("select", { id: "new-branch-base", class: "select", disabled: true },
      h("option", { value: repo.default_branch, text: repo.default_branch }));
    const baseHint = h("p", { class: "hint", id: "new-branch-base-hint", text: "Loading branches…" });
    baseSelect.setAttribute("aria-describedby", "new-branch-base-hint");
    const agentSelect = h("select", { id: "new-branch-agent", class: "select", disabled: true },
      h("option", { value: "", text: "Loading…" }));
    const modelSelect = h("select", { id: "new-branch-model", class: "select", disabled: true },
      h("option", { value: "", text: "Loading…" }));
    const credHint = h("div", { class: "cred-hint", id: "new-branch-cred-hint" });
    agentSelect.setAttribute("aria-describedby", "new-branch-cred-hint");

    const body = h(
      "div",
      { class: "form-grid" },
      h(
        "div",
        { class: "field field-wide" },
        h("label", { class: "label", for: "new-branch-name", text: "Branch name" }),
        nameInput,
        h("p", { class: "hint", id: "new-branch-name-hint", text: `In ${repo.name}. Empty: a name is generated.` }),
      ),
      h(
        "div",
        { class: "field field-wide" },
        h("label", { class: "label", for: "new-branch-base", text: "Base branch" }),
        baseSelect,
        baseHint,
      ),
      h("div", { class: "field" }, h("label", { class: "label", for: "new-branch-agent", text: "Agent" }), agentSelect),
      h("div", { class: "field" }, h("label", { class: "label", for: "new-branch-model", text: "Model" }), modelSelect),
      h("div", { class: "field field-wide" }, credHint),
    );

    let agents = [];
    let ready = false;
    const dialog = openDialog({
      title: `New branch in ${repo.name}`,
      body,
      actions: [
        { label: "Cancel" },
        {
          label: "Create branch",
          primary: true,
          onClick: async () => {
            if (!ready) throw new Error("Still loading; try again in a moment.");
            const branch = await api("POST", `/api/repos/${seg(repo.id)}/branches`, {
              name: nameInput.value.trim() || null,
              base_branch: baseSelect.value || null,
              agent: agentSelect.value || null,
              model: modelSelect.value || null,
            });
            upsertBranch(branch);
            toast(`Created ${branch.name}.`, { kind: "success" });
            onBranchCreated?.(branch);
            return true;
          },
        },
      ],
    });
    nameInput.focus();

    const [branchesResult, agentsResult, settingsResult] = await Promise.allSettled([
      api("GET", `/api/repos/${seg(repo.id)}/remote-branches?per_page=100`),
      apiCached("/api/agents", 30_000),
      apiCached("/api/me/settings", 30_000),
    ]);
    if (dialog.closed) return;

    if (branchesResult.status === "fulfilled") {
      const names = (branchesResult.value.items || []).map((b) => b.name);
      if (!names.includes(repo.default_branch)) names.unshift(repo.default_branch);
      baseSelect.replaceChildren(...names.map((n) => h("option", { value: n, text: n, selected: n === repo.default_branch })));
      baseSelect.value = repo.default_branch;
      baseHint.textContent = branchesResult.value.has_next
        ? "Showing the first 100 branches."
        : `${names.length} branch${names.length === 1 ? "" : "es"} on the remote.`;
    } else {
      baseHint.textContent = `Could not list the remote's branches (${errorMessage(branchesResult.reason)}); using ${repo.default_branch}.`;
      baseHint.classList.add("hint-warn");
    }
    baseSelect.disabled = false;

    if (agentsResult.status === "fulfilled") {
      agents = agentsResult.value;
      const prefs = settingsResult.status === "fulfilled" ? settingsResult.value : null;
      const agentId = prefs?.default_agent && agents.some((a) => a.id === prefs.default_agent)
        ? prefs.default_agent
        : (agents.find((a) => a.available) || agents[0])?.id;
      fillAgentSelect(agentSelect, agents, agentId);
      const agent = agents.find((a) => a.id === agentSelect.value);
      fillModelSelect(modelSelect, agent, agent && prefs?.default_agent === agent.id && prefs?.default_model ? prefs.default_model : agent?.default_model);
      agentSelect.disabled = false;
      modelSelect.disabled = false;
      const sync = () => credHint.replaceChildren(agentCredentialHint(agents.find((a) => a.id === agentSelect.value), modelSelect.value, () => dialog.close()) || "");
      agentSelect.addEventListener("change", () => {
        const a = agents.find((x) => x.id === agentSelect.value);
        fillModelSelect(modelSelect, a, a?.default_model);
        sync();
      });
      modelSelect.addEventListener("change", sync);
      sync();
    } else {
      agentSelect.replaceChildren(h("option", { value: "", text: "Default agent" }));
      modelSelect.replaceChildren(h("option", { value: "", text: "Default model" }));
      credHint.replaceChildren(h("p", { class: "hint hint-warn", text: `Agents could not be listed: ${errorMessage(agentsResult.reason)}` }));
    }
    ready = true;
  }

  return {
    load,
    refresh,
    setAccount,
    setActive,
    setBranchStatus,
    upsertBranch,
    removeBranch,
    openAddRepository,
    repo: (id) => repos.get(id)?.data || null,
    repoCount: () => order.length,
    hasBranch: (id) => Boolean(findBranch(id)),
  };
}

function capitalise(text) {
  return text ? text[0].toUpperCase() + text.slice(1) : text;
}

function readCollapsed() {
  try {
    const value = JSON.parse(storage.get(COLLAPSED_KEY, "[]"));
    return Array.isArray(value) ? value.map(String) : [];
  } catch {
    return [];
  }
}

/** Tabs inside a dialog: role=tablist/tab/tabpanel, arrow keys move between tabs. */
export function tabSet(prefix, items, { initial, label, onSelect } = {}) {
  const tablist = h("div", { class: "tabs tabs-inline", role: "tablist", "aria-label": label || "Tabs" });
  const tabs = new Map();
  const panels = new Map();
  for (const item of items) {
    const tab = h("button", {
      type: "button",
      role: "tab",
      class: "tab",
      id: `${prefix}-tab-${item.id}`,
      "aria-controls": `${prefix}-panel-${item.id}`,
      text: item.label,
      onclick: () => select(item.id, true),
    });
    const panel = h("div", {
      role: "tabpanel",
      class: "tabpanel-inline",
      id: `${prefix}-panel-${item.id}`,
      "aria-labelledby": tab.id,
    }, item.body);
    tabs.set(item.id, tab);
    panels.set(item.id, panel);
    tablist.appendChild(tab);
  }
  tablist.addEventListener("keydown", (event) => {
    const ids = items.map((i) => i.id);
    const current = ids.findIndex((id) => tabs.get(id).getAttribute("aria-selected") === "true");
    let next = -1;
    if (event.key === "ArrowRight") next = (current + 1) % ids.length;
    else if (event.key === "ArrowLeft") next = (current - 1 + ids.length) % ids.length;
    else if (event.key === "Home") next = 0;
    else if (event.key === "End") next = ids.length - 1;
    if (next < 0) return;
    event.preventDefault();
    select(ids[next], false);
    tabs.get(ids[next]).focus();
  });
  function select(id, fromClick) {
    for (const [key, tab] of tabs) {
      const on = key === id;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      tab.tabIndex = on ? 0 : -1;
      panels.get(key).hidden = !on;
    }
    if (fromClick !== null) onSelect?.(id, fromClick);
  }
  select(initial || items[0].id, null);
  return { element: h("div", { class: "tabset" }, tablist, [...panels.values()]), select };
}
