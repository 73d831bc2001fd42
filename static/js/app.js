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
  const labels = { "": "Theme: system", dark: "Theme: dark", light: "Theme: light" };
  const show = () => {
    const now = document.documentElement.dataset.theme || "";
    button.textContent = labels[now];
    button.setAttribute("aria-label", `${labels[now]} (change)`);
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
