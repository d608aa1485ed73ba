// Modal dialogs on the native <dialog> element: showModal() makes the rest of the page inert
// and puts the dialog in the top layer (stacked dialogs work), the Tab handler below keeps
// focus from wandering into the browser chrome, and focus returns to whatever opened it.
import { errorMessage } from "./api.js";
import { h } from "./dom.js";

let counter = 0;

const FOCUSABLE =
  'a[href], button:not([disabled]), input:not([disabled]):not([type="hidden"]), select:not([disabled]), ' +
  'textarea:not([disabled]), summary, [tabindex]:not([tabindex="-1"]), [contenteditable="true"]';

export function focusableIn(root) {
  return [...root.querySelectorAll(FOCUSABLE)].filter(
    (el) => !el.closest("[hidden], [inert]") && el.getClientRects().length > 0,
  );
}

/**
 * openDialog({ title, body, actions, onClose, size }) → { close(), element, setError(msg), setBusy(b) }
 * actions: [{ label, primary?, danger?, onClick: async () => (false keeps it open) }]; an
 * action without onClick just closes. An error thrown by onClick is shown inside the dialog
 * (role=alert) and keeps it open. Enter in a text input runs the primary action.
 */
export function openDialog({ title, body, actions, onClose, size } = {}) {
  const id = `dialog-${++counter}`;
  const titleId = `${id}-title`;
  const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
  let closed = false;
  let busy = false;

  const errorSlot = h("div", { class: "dialog-error-slot" });
  const bodyWrap = h("div", { class: "dialog-body" }, body ?? null);
  const list = actions && actions.length ? actions : [{ label: "Close" }];
  const buttons = list.map((action) =>
    h("button", {
      type: "button",
      class: ["button", action.primary && "button-primary", action.danger && "button-danger"],
      text: action.label,
      disabled: Boolean(action.disabled),
      onclick: () => run(action),
    }),
  );

  const element = h(
    "dialog",
    {
      class: ["dialog", size && `dialog-${size}`],
      id,
      role: "dialog",
      "aria-modal": "true",
      "aria-labelledby": titleId,
    },
    h(
      "div",
      { class: "dialog-head" },
      h("h2", { class: "dialog-title", id: titleId, text: title ?? "" }),
      h("button", {
        type: "button",
        class: "icon-button",
        "aria-label": "Close dialog",
        text: "×",
        onclick: () => close("dismiss"),
      }),
    ),
    bodyWrap,
    errorSlot,
    h("div", { class: "dialog-actions" }, buttons),
  );

  element.addEventListener("cancel", (event) => {
    // Escape: close through our own path so onClose runs and focus goes back.
    event.preventDefault();
    close("dismiss");
  });
  element.addEventListener("keydown", (event) => {
    if (event.key === "Tab") trapTab(event);
    else if (event.key === "Enter" && !event.isComposing) submitOnEnter(event);
  });

  function trapTab(event) {
    const items = focusableIn(element);
    if (!items.length) {
      event.preventDefault();
      return;
    }
    const first = items[0];
    const last = items[items.length - 1];
    const active = document.activeElement;
    if (event.shiftKey && (active === first || !element.contains(active))) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && (active === last || !element.contains(active))) {
      event.preventDefault();
      first.focus();
    }
  }

  function submitOnEnter(event) {
    const target = event.target;
    if (!(target instanceof HTMLInputElement)) return;
    if (["checkbox", "radio", "button", "submit", "file"].includes(target.type)) return;
    if (target.dataset.noSubmit !== undefined) return;
    const index = list.findIndex((a) => a.primary);
    if (index < 0) return;
    event.preventDefault();
    if (!buttons[index].disabled) run(list[index]);
  }

  async function run(action) {
    if (busy || closed) return;
    if (!action.onClick) {
      close("action");
      return;
    }
    setError(null);
    setBusy(true);
    try {
      const result = await action.onClick();
      if (result !== false) close("action");
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      if (!closed) setBusy(false);
    }
  }

  function setBusy(value) {
    busy = Boolean(value);
    element.toggleAttribute("aria-busy", busy);
    buttons.forEach((button, i) => {
      button.disabled = busy || Boolean(list[i].disabled);
    });
  }

  function setError(message) {
    errorSlot.replaceChildren();
    if (message) {
      // A fresh role=alert node is announced on insertion.
      errorSlot.appendChild(h("p", { class: "form-error", role: "alert", text: message }));
    }
  }

  function close(reason = "close") {
    if (closed) return;
    closed = true;
    if (element.open) element.close();
    element.remove();
    try {
      onClose?.(reason);
    } finally {
      if (opener && opener.isConnected) opener.focus();
    }
  }

  document.body.appendChild(element);
  element.showModal();
  const initial =
    bodyWrap.querySelector("[autofocus]") ||
    focusableIn(bodyWrap).find((el) => el.matches("input, select, textarea")) ||
    buttons[list.findIndex((a) => a.primary)] ||
    focusableIn(element)[0];
  initial?.focus();

  return {
    element,
    close: () => close("close"),
    setError,
    setBusy,
    get closed() {
      return closed;
    },
  };
}

/** Resolves true when confirmed, false when cancelled or dismissed. */
export function confirmDialog({ title, message, confirmLabel = "Confirm", danger = false } = {}) {
  return new Promise((resolve) => {
    let answer = false;
    const dialog = openDialog({
      title,
      body: h("p", { class: "dialog-message", text: message ?? "" }),
      actions: [
        { label: "Cancel" },
        {
          label: confirmLabel,
          primary: !danger,
          danger,
          onClick: async () => {
            answer = true;
          },
        },
      ],
      onClose: () => resolve(answer),
    });
    // A destructive confirmation starts on Cancel, so a stray Enter does no harm.
    if (danger) dialog.element.querySelector(".dialog-actions .button")?.focus();
  });
}
