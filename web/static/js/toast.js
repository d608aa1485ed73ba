// Transient notices. Errors use role=alert (announced at once) and stay longer; others are
// polite status messages.
import { h } from "./dom.js";

let region = null;

function container() {
  if (!region || !region.isConnected) {
    region = h("div", { class: "toasts", role: "region", "aria-label": "Notifications" });
    document.body.appendChild(region);
  }
  return region;
}

/**
 * toast("Saved", { kind: "success" }) — kind: "info" | "error" | "success".
 * Returns { close() }.
 */
export function toast(message, { kind = "info", timeout } = {}) {
  const isError = kind === "error";
  const el = h(
    "div",
    { class: ["toast", `toast-${kind}`], role: isError ? "alert" : "status" },
    h("span", { class: "toast-text", text: message }),
    h("button", {
      type: "button",
      class: "icon-button toast-close",
      "aria-label": "Dismiss notification",
      text: "×",
      onclick: () => close(),
    }),
  );
  const box = container();
  box.appendChild(el);
  while (box.children.length > 4) box.firstElementChild.remove();

  let timer = 0;
  const ms = timeout ?? (isError ? 9000 : 4500);
  const start = () => {
    if (ms > 0) timer = setTimeout(close, ms);
  };
  // Hover or focus keeps it: someone reading or reaching for Dismiss should not lose it.
  el.addEventListener("mouseenter", () => clearTimeout(timer));
  el.addEventListener("mouseleave", start);
  el.addEventListener("focusin", () => clearTimeout(timer));
  start();

  function close() {
    clearTimeout(timer);
    el.remove();
  }
  return { close };
}
