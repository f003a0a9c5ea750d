// The site navigation below 700 px: folded behind the menu button, opened and closed by it or
// Escape. Above that width the CSS shows the links and the button is hidden.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", () => {
    const toggle = document.querySelector(".nav-toggle");
    const nav = document.getElementById("site-nav");
    if (!toggle || !nav) return;
    function setOpen(open) {
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      nav.classList.toggle("open", open);
    }
    toggle.addEventListener("click", () => {
      const open = toggle.getAttribute("aria-expanded") !== "true";
      setOpen(open);
      if (open) { const first = nav.querySelector("a, button"); if (first) first.focus(); }
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && nav.classList.contains("open")) { setOpen(false); toggle.focus(); }
    });
  });
})();
