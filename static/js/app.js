// Copy buttons: <button data-copy="#element-id">Copy</button>
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source) return;
  navigator.clipboard.writeText(source.textContent.trim()).then(() => {
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  });
});

// The theme toggle: system → dark → light → system. The button says what a click will do.
(function () {
  const button = document.querySelector("[data-theme-toggle]");
  if (!button) return;
  const next = { "": "dark", dark: "light", light: "" };
  // The labels come from the page (in its language): data-labels='{"": …, "dark": …, "light": …, "change": …}'.
  const labels = JSON.parse(button.dataset.labels || "{}");
  const show = () => {
    const now = document.documentElement.dataset.theme || "";
    button.textContent = labels[now];
    button.setAttribute("aria-label", `${labels[now]} (${labels.change})`);
  };
  button.addEventListener("click", () => {
    const now = document.documentElement.dataset.theme || "";
    const then = next[now];
    if (then) document.documentElement.dataset.theme = then;
    else delete document.documentElement.dataset.theme;
    try { if (then) localStorage.setItem("theme", then); else localStorage.removeItem("theme"); } catch (e) { /* ok */ }
    show();
  });
  show();
})();

// The phone menu: one button opens the navigation instead of ten wrapped links.
(function () {
  const toggle = document.querySelector("[data-menu-toggle]");
  const nav = document.getElementById("site-nav");
  if (!toggle || !nav) return;
  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", String(open));
    nav.classList.toggle("open", open);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && nav.classList.contains("open")) {
      toggle.setAttribute("aria-expanded", "false");
      nav.classList.remove("open");
      toggle.focus();
    }
  });
})();

// The language switch sends itself on change (its button is for browsers without JavaScript).
document.addEventListener("change", (event) => {
  if (event.target.matches("select[data-autosubmit]")) event.target.form.submit();
});

// A form that asks first: <form data-confirm="Revoke this key?"> (no inline handler: the CSP allows none).
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

// A table or code block wider than its box scrolls: keyboard users reach it with Tab (WCAG 2.1.1).
function focusableScrollers(root) {
  for (const box of root.querySelectorAll(".table-wrap, pre")) {
    if (box.scrollWidth > box.clientWidth) {
      box.tabIndex = 0;
      if (!box.hasAttribute("aria-label") && box.matches(".table-wrap")) box.setAttribute("role", "region");
      if (!box.hasAttribute("aria-label")) box.setAttribute("aria-label", box.querySelector("caption, th, code")?.textContent?.trim().slice(0, 60) || "scrollable");
    } else {
      box.removeAttribute("tabindex");
    }
  }
}
focusableScrollers(document);
document.addEventListener("htmx:afterSwap", (event) => focusableScrollers(event.target));
window.addEventListener("resize", () => focusableScrollers(document));
