// Audio on the search and item pages: one sound plays at a time, the waveform is a seek bar
// (click or drag to seek, a playhead shows where it is) and a keyboard control (a slider:
// arrows seek 5 %, Home/End, Space or Enter plays and pauses). Cards arrive by fetch, so
// everything is delegated from the document.
(() => {
  "use strict";

  const playerOf = (wave) => wave.closest(".card-media, .item-media")?.querySelector("audio");
  const waveOf = (audio) => audio.closest(".card-media, .item-media")?.querySelector(".wave[data-seek]");
  const clock = (s) => `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}`;

  function duration(wave, audio) {
    return Number.isFinite(audio.duration) && audio.duration > 0 ? audio.duration : Number(wave.dataset.duration) || 0;
  }

  function show(wave, audio) {
    const total = duration(wave, audio);
    const at = Math.min(audio.currentTime || 0, total);
    const head = wave.querySelector(".playhead");
    if (head) head.style.left = `${total ? (100 * at) / total : 0}%`;
    wave.setAttribute("aria-valuenow", at.toFixed(1));
    wave.setAttribute("aria-valuetext", `${clock(at)} of ${clock(total)}`);
  }

  function seek(wave, seconds) {
    const audio = playerOf(wave);
    if (!audio) return;
    const total = duration(wave, audio);
    const target = Math.max(0, Math.min(total, seconds));
    // With preload="none" nothing is loaded yet: load first, then seek, or the seek is lost.
    if (audio.readyState === 0) {
      audio.preload = "auto";
      audio.addEventListener("loadedmetadata", () => { audio.currentTime = target; show(wave, audio); }, { once: true });
      audio.load();
    } else {
      audio.currentTime = target;
    }
    wave.classList.add("is-started");
    show(wave, { currentTime: target, duration: total });
  }

  // One player at a time: starting one pauses every other. ("play" does not bubble: capture it.)
  document.addEventListener("play", (event) => {
    for (const other of document.querySelectorAll("audio")) {
      if (other !== event.target && !other.paused) other.pause();
    }
    const wave = waveOf(event.target);
    if (wave) wave.classList.add("is-started", "is-playing");
  }, true);
  for (const type of ["pause", "ended"]) {
    document.addEventListener(type, (event) => waveOf(event.target)?.classList.remove("is-playing"), true);
  }
  document.addEventListener("timeupdate", (event) => {
    const wave = waveOf(event.target);
    if (wave) show(wave, event.target);
  }, true);

  function seekToPointer(wave, event) {
    const box = wave.getBoundingClientRect();
    const audio = playerOf(wave);
    if (!audio || !box.width) return;
    seek(wave, ((event.clientX - box.left) / box.width) * duration(wave, audio));
  }

  let dragging = null;
  document.addEventListener("pointerdown", (event) => {
    const wave = event.target.closest?.(".wave[data-seek]");
    if (!wave || event.button > 0) return;
    event.preventDefault();
    dragging = wave;
    wave.setPointerCapture?.(event.pointerId);
    wave.focus({ preventScroll: true });
    seekToPointer(wave, event);
  });
  document.addEventListener("pointermove", (event) => dragging && seekToPointer(dragging, event));
  document.addEventListener("pointerup", () => { dragging = null; });

  document.addEventListener("keydown", (event) => {
    const wave = event.target.closest?.(".wave[data-seek]");
    if (!wave) return;
    const audio = playerOf(wave);
    const total = duration(wave, audio);
    const step = Math.max(1, total / 20);
    const now = audio.currentTime || 0;
    const moves = { ArrowRight: now + step, ArrowUp: now + step, ArrowLeft: now - step, ArrowDown: now - step,
                    PageUp: now + 3 * step, PageDown: now - 3 * step, Home: 0, End: total };
    if (event.key in moves) {
      event.preventDefault();
      seek(wave, moves[event.key]);
    } else if (event.key === " " || event.key === "Enter") {
      event.preventDefault();
      if (audio.paused) audio.play().catch(() => {}); else audio.pause();
    }
  });
})();
