// Audit record page: a citation chip in the answer scrolls to the source it points at.
(function () {
  "use strict";
  const answer = document.getElementById("answer");
  if (!answer) return;
  answer.addEventListener("click", (event) => {
    const chip = event.target.closest("button.cite");
    if (!chip) return;
    const source = document.getElementById("source-" + chip.dataset.marker);
    if (!source) return;
    source.scrollIntoView({ behavior: "smooth", block: "start" });
    source.classList.remove("flash");
    void source.offsetWidth; // restart the animation on a second click
    source.classList.add("flash");
  });
})();
