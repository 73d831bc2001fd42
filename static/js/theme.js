// Dark mode: the system's setting, unless the visitor chose light or dark (kept in this browser).
// Loaded in <head> without defer, so the page is drawn in the right colours from the start.
(function () {
  var chosen = null;
  try { chosen = localStorage.getItem("theme"); } catch (e) { /* storage off: follow the system */ }
  if (chosen === "dark" || chosen === "light") document.documentElement.dataset.theme = chosen;
  document.documentElement.classList.add("js");
})();
