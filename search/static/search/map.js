// The map page: a preview card follows the pointer (or keyboard focus) over the points,
// the legend hides and shows modalities, and the space picker applies at once.
// Without this script every point is still a link with a native tooltip.
(() => {
  "use strict";

  const picker = document.querySelector(".space-picker select");
  picker?.addEventListener("change", () => picker.form.submit());

  const map = document.getElementById("map");
  if (!map) return;
  const svg = map.querySelector("svg");
  const tip = document.getElementById("map-tip");
  const tipImage = tip.querySelector("img");
  const tipText = tip.querySelector("p");
  let active = null;

  function show(point) {
    if (active === point) return;
    active?.classList.remove("is-active");
    active = point;
    point.classList.add("is-active");
    tipImage.src = point.dataset.preview || "";
    tipImage.hidden = !point.dataset.preview;
    tipText.textContent = point.dataset.title;
    tip.hidden = false;
    place(point);
  }

  function place(point) {
    const box = point.getBoundingClientRect();
    const frame = map.getBoundingClientRect();
    const x = box.left + box.width / 2 - frame.left;
    const y = box.top - frame.top;
    const width = tip.offsetWidth;
    const left = Math.min(Math.max(x - width / 2, 0), frame.width - width);
    const above = y - tip.offsetHeight - 10;
    tip.style.left = `${left}px`;
    tip.style.top = `${above >= 0 ? above : y + box.height + 10}px`;
  }

  function hide() {
    active?.classList.remove("is-active");
    active = null;
    tip.hidden = true;
  }

  svg.addEventListener("pointerover", (event) => {
    const point = event.target.closest(".pt");
    if (point) show(point);
  });
  svg.addEventListener("pointerleave", hide);
  svg.addEventListener("focusin", (event) => {
    const point = event.target.closest(".pt");
    if (point) show(point);
  });
  svg.addEventListener("focusout", hide);
  tipImage.addEventListener("load", () => active && place(active));
  document.addEventListener("keydown", (event) => event.key === "Escape" && hide());

  for (const box of document.querySelectorAll("#map-legend input")) {
    box.addEventListener("change", () => map.classList.toggle(`hide-${box.value}`, !box.checked));
  }
})();
