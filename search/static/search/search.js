// The search page, enhanced: query chips (words, images, sounds, items) with weights, live
// results without page loads, drag-and-drop, paste, microphone recording and "show more".
// Without this script the page is a plain GET form, rendered by the server.
(() => {
  "use strict";

  const form = document.getElementById("search-form");
  if (!form || !window.fetch || !window.FormData) return;

  const resultsEl = document.getElementById("results");
  const landingEl = document.getElementById("landing");
  const statusEl = document.getElementById("search-status");
  const chipsEl = document.getElementById("chips");
  const queryEl = document.getElementById("dropzone");
  const textInput = document.getElementById("q");
  const addTextButton = document.getElementById("add-text");
  const recordButton = document.getElementById("record");
  const recordLabel = document.getElementById("record-label");
  const overlay = document.getElementById("drop-overlay");
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  const resultsUrl = form.dataset.resultsUrl;
  const maxParts = Number(form.dataset.maxParts) || 8;
  const maxBytes = Number(form.dataset.maxBytes) || Infinity;
  const MAX_RECORD_SECONDS = 15;

  let chips = []; // {kind: "text"|"file"|"item", label, weight, negative, text?, file?, item?, thumb?, media?}
  let inFlight = null; // the AbortController of the request being answered
  let page = 1;

  // ---------------------------------------------------------------- chips

  // "More like this" chips rendered by the server become script-managed chips.
  for (const li of chipsEl.querySelectorAll("li[data-kind='item']")) {
    chips.push({ kind: "item", item: Number(li.dataset.item), label: li.dataset.label, thumb: li.dataset.thumb,
                 weight: 1, negative: false });
  }

  function partsCount() {
    return chips.length + (textInput.value.trim() ? 1 : 0);
  }

  function el(tag, attrs = {}, children = []) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "text") node.textContent = value;
      else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function chipIcon(chip) {
    const icon = el("span", { class: "chip-icon", "aria-hidden": "true",
                              text: chip.kind === "text" ? "Aa" : chip.media === "audio" ? "♪" : "▣" });
    if (!chip.thumb) return icon;
    const image = el("img", { class: "chip-thumb", src: chip.thumb, alt: "" });
    image.addEventListener("error", () => image.replaceWith(icon));
    return image;
  }

  function renderChips() {
    chipsEl.replaceChildren();
    chips.forEach((chip, index) => {
      const li = el("li", { class: `chip chip-${chip.kind === "file" ? chip.media : chip.kind}${chip.negative ? " is-negative" : ""}` });
      // step="any": with a step, the browser refuses every value off the step's grid (1 with min 0.1 and
      // step 0.5) and blocks the whole form. The range is the service's (|weight| <= 100); "−" sets the sign.
      const weightId = `weight-${index}`;
      const weight = el("input", { type: "number", id: weightId, min: "0", max: "100", step: "any",
                                   value: String(chip.weight), inputmode: "decimal", class: "chip-weight-input" });
      weight.addEventListener("change", () => {
        const value = Number(weight.value);
        if (weight.value.trim() === "" || !Number.isFinite(value) || value < 0 || value > 100) {
          weight.setAttribute("aria-invalid", "true");
          announce(`A weight is a number from 0 to 100; “${weight.value}” is not.`, true);
          return;
        }
        weight.removeAttribute("aria-invalid");
        chip.weight = value;
        run();
      });
      const minus = el("button", { type: "button", class: "chip-minus", "aria-pressed": String(chip.negative),
                                   title: "Subtract this from the query", text: "−" });
      minus.append(el("span", { class: "visually-hidden", text: ` subtract “${chip.label}”` }));
      minus.addEventListener("click", () => {
        chip.negative = !chip.negative;
        renderChips();
        chipsEl.querySelectorAll(".chip-minus")[index].focus();
        run();
      });
      const remove = el("button", { type: "button", class: "chip-remove", "aria-label": `Remove “${chip.label}” from the query`,
                                    text: "×" });
      remove.addEventListener("click", () => {
        chips.splice(index, 1);
        if (chip.thumb && chip.kind === "file") URL.revokeObjectURL(chip.thumb);
        renderChips();
        textInput.focus();
        run();
      });
      li.append(
        chipIcon(chip),
        el("span", { class: "chip-label", title: chip.label, text: chip.label }),
        el("label", { class: "chip-weight", for: weightId }, [
          el("span", { class: "chip-weight-label", "aria-hidden": "true", text: "weight" }),
          el("span", { class: "visually-hidden", text: `Weight of “${chip.label}”` })]),
        weight,
        minus,
        remove,
      );
      chipsEl.append(li);
    });
    updateWeighting();
  }

  function updateWeighting() {
    chipsEl.classList.toggle("is-weighted", partsCount() > 1);
    addTextButton.hidden = !textInput.value.trim();
  }

  function addChip(chip) {
    if (partsCount() >= maxParts) {
      announce(`A query has at most ${maxParts} parts; remove one first.`, true);
      return false;
    }
    chips.push({ weight: 1, negative: false, ...chip });
    renderChips();
    return true;
  }

  function addFiles(files) {
    let added = 0;
    for (const file of files) {
      const media = file.type.startsWith("image/") ? "image"
        : file.type.startsWith("audio/") || /\.(wav|flac|ogg|mp3)$/i.test(file.name) ? "audio" : null;
      if (!media) {
        announce(`“${file.name || "That file"}” is not an image or a sound.`, true);
        continue;
      }
      if (file.size > maxBytes) {
        announce(`“${file.name}” is larger than ${Math.round(maxBytes / 1048576)} MB.`, true);
        continue;
      }
      const thumb = media === "image" ? URL.createObjectURL(file) : null;
      if (addChip({ kind: "file", media, file, thumb, label: file.name || `pasted ${media}` })) added += 1;
    }
    if (added) run();
  }

  addTextButton.addEventListener("click", () => {
    const text = textInput.value.trim();
    if (!text) return;
    if (addChip({ kind: "text", text, label: text })) {
      textInput.value = "";
      updateWeighting();
      textInput.focus();
      run();
    }
  });

  textInput.addEventListener("input", updateWeighting);
  textInput.addEventListener("keydown", (event) => {
    // Backspace in an empty box takes back the last chip, as in most chip inputs.
    if (event.key === "Backspace" && !textInput.value && chips.length) {
      chips.pop();
      renderChips();
      run();
    }
  });

  for (const id of ["pick-image", "pick-audio"]) {
    const input = document.getElementById(id);
    input.addEventListener("change", () => {
      addFiles([...input.files]);
      input.value = "";
    });
  }

  // ---------------------------------------------------------------- drag, drop and paste

  let dragDepth = 0;
  const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
  document.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    dragDepth += 1;
    overlay.hidden = false;
    queryEl.classList.add("is-dragging");
  });
  document.addEventListener("dragleave", () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) endDrag();
  });
  document.addEventListener("dragover", (event) => {
    if (hasFiles(event)) event.preventDefault();
  });
  document.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    endDrag();
    addFiles([...event.dataTransfer.files]);
  });
  function endDrag() {
    dragDepth = 0;
    overlay.hidden = true;
    queryEl.classList.remove("is-dragging");
  }

  document.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files || [])];
    if (!files.length) return; // ordinary text paste
    event.preventDefault();
    addFiles(files);
  });

  // ---------------------------------------------------------------- microphone

  let recorder = null;
  let recordTimer = null;
  if (navigator.mediaDevices?.getUserMedia && window.MediaRecorder && (window.AudioContext || window.webkitAudioContext)) {
    recordButton.hidden = false;
    recordButton.addEventListener("click", () => (recorder ? recorder.stop() : startRecording()));
  }

  async function startRecording() {
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (error) {
      announce("The microphone is not available: allow it in the browser, or pick a sound file instead.", true);
      return;
    }
    const pieces = [];
    recorder = new MediaRecorder(stream);
    recorder.addEventListener("dataavailable", (event) => event.data.size && pieces.push(event.data));
    recorder.addEventListener("stop", async () => {
      stream.getTracks().forEach((track) => track.stop());
      clearInterval(recordTimer);
      recorder = null;
      recordButton.classList.remove("is-recording");
      recordLabel.textContent = "Record";
      try {
        const wav = await toWav(new Blob(pieces, { type: pieces[0]?.type || "audio/webm" }));
        const seconds = (wav.size - 44) / 2 / 16000;
        addFiles([new File([wav], `recording ${seconds.toFixed(1)} s.wav`, { type: "audio/wav" })]);
      } catch (error) {
        announce("The recording could not be read; try again or pick a sound file.", true);
      }
    });
    recorder.start();
    const started = Date.now();
    recordButton.classList.add("is-recording");
    recordLabel.textContent = "Stop recording";
    announce("Recording… press Stop recording when done.");
    recordTimer = setInterval(() => {
      const seconds = Math.floor((Date.now() - started) / 1000);
      recordLabel.textContent = `Stop recording 0:${String(seconds).padStart(2, "0")}`;
      if (seconds >= MAX_RECORD_SECONDS && recorder) recorder.stop();
    }, 250);
  }

  // The server accepts WAV, FLAC, Ogg and MP3, not the browser's WebM: decode and re-encode as 16 kHz mono WAV.
  async function toWav(blob) {
    const Context = window.AudioContext || window.webkitAudioContext;
    const context = new Context();
    const decoded = await context.decodeAudioData(await blob.arrayBuffer());
    context.close();
    const rate = 16000;
    const offline = new OfflineAudioContext(1, Math.max(1, Math.ceil(decoded.duration * rate)), rate);
    const source = offline.createBufferSource();
    source.buffer = decoded;
    source.connect(offline.destination);
    source.start();
    const samples = (await offline.startRendering()).getChannelData(0);
    const view = new DataView(new ArrayBuffer(44 + samples.length * 2));
    const ascii = (offset, text) => [...text].forEach((c, i) => view.setUint8(offset + i, c.charCodeAt(0)));
    ascii(0, "RIFF"); view.setUint32(4, 36 + samples.length * 2, true); ascii(8, "WAVE");
    ascii(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
    view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true); view.setUint16(32, 2, true);
    view.setUint16(34, 16, true); ascii(36, "data"); view.setUint32(40, samples.length * 2, true);
    samples.forEach((s, i) => view.setInt16(44 + i * 2, Math.max(-1, Math.min(1, s)) * 0x7fff, true));
    return new Blob([view], { type: "audio/wav" });
  }

  // ---------------------------------------------------------------- searching

  function announce(message, isError = false) {
    statusEl.textContent = message;
    if (isError) {
      showResults(true);
      resultsEl.replaceChildren(el("div", { class: "notice notice-error", role: "alert" }, [el("p", { text: message })]));
    }
  }

  function showResults(visible) {
    resultsEl.hidden = !visible;
    landingEl.hidden = visible;
  }

  function filterParams(params) {
    for (const box of form.querySelectorAll("input[name='modality']:checked")) params.append("modality", box.value);
    const tag = form.elements.tag.value.trim();
    if (tag) params.append("tag", tag);
    if (form.elements.collection.value) params.append("collection", form.elements.collection.value);
    if (form.elements.mode.checked) params.append("mode", "hybrid");
    return params;
  }

  // The address of the current query, when an address can hold it (no uploaded files or weights).
  function shareableUrl() {
    if (chips.some((c) => c.kind !== "item" || c.weight !== 1 || c.negative)) return null;
    const params = new URLSearchParams();
    const text = textInput.value.trim();
    if (text) params.append("q", text);
    for (const chip of chips) params.append("like", chip.item);
    filterParams(params);
    return `${form.action.split("?")[0]}?${params}`;
  }

  function requestBody(pageNumber) {
    const data = filterParams(new FormData());
    const text = textInput.value.trim();
    if (text) data.append("q", text);
    const parts = chips.map((chip, index) => {
      const weight = (chip.negative ? -1 : 1) * chip.weight;
      if (chip.kind === "text") return { text: chip.text, weight };
      if (chip.kind === "item") return { item: chip.item, weight };
      data.append(`file${index}`, chip.file, chip.file.name || `file${index}`);
      return { file: `file${index}`, weight };
    });
    if (parts.length) data.append("parts", JSON.stringify(parts));
    data.append("page", String(pageNumber));
    return data;
  }

  async function run({ pageNumber = 1, append = false, pushHistory = true } = {}) {
    updateWeighting();
    if (!partsCount()) {
      inFlight?.abort();
      resultsEl.replaceChildren();
      showResults(false);
      announce("");
      if (pushHistory) history.pushState(null, "", form.action.split("?")[0]);
      return;
    }
    inFlight?.abort();
    const controller = new AbortController();
    inFlight = controller;
    showResults(true);
    resultsEl.setAttribute("aria-busy", "true");
    let html;
    try {
      const response = await fetch(resultsUrl, {
        method: "POST", body: requestBody(pageNumber), signal: controller.signal,
        headers: { "X-CSRFToken": csrfToken }, credentials: "same-origin",
      });
      if (response.status === 413) throw new Error("the files are too large together; use fewer or smaller ones");
      // A refused query (400) or an unavailable encoder (503) comes back as results HTML with its message.
      if (!response.ok && response.status !== 400 && response.status !== 503) {
        throw new Error(`the server answered ${response.status}`);
      }
      html = await response.text();
    } catch (error) {
      if (error.name === "AbortError") return;
      resultsEl.setAttribute("aria-busy", "false");
      announce(`The search could not be run (${error.message}). Check the connection and try again.`, true);
      return;
    }
    if (inFlight !== controller) return;
    inFlight = null;
    resultsEl.setAttribute("aria-busy", "false");
    const fragment = document.createElement("template");
    fragment.innerHTML = html;
    // An outage answers with the site's whole error page: keep only its message.
    const outage = fragment.content.querySelector(".site-header") && fragment.content.querySelector("#main .notice");
    if (outage) fragment.content.replaceChildren(outage);
    const newGrid = fragment.content.querySelector(".grid");
    const oldGrid = resultsEl.querySelector(".grid");
    let loaded = "";
    if (append && newGrid && oldGrid) {
      // Focus stays where the reader is (on "Show more", or nowhere): the new cards are announced instead.
      const hadFocus = document.activeElement?.closest?.(".pager");
      oldGrid.append(...newGrid.children);
      const newRange = fragment.content.querySelector("[data-range]");
      const range = resultsEl.querySelector("[data-range]");
      if (range && newRange) {
        range.dataset.last = newRange.dataset.last;
        range.dataset.more = newRange.dataset.more;
        range.textContent = `Results 1–${newRange.dataset.last}`;
        loaded = `Loaded results ${newRange.textContent.replace(/^\D*/, "")}.`;
      }
      resultsEl.querySelector(".pager")?.replaceWith(fragment.content.querySelector(".pager") || "");
      if (hadFocus) (resultsEl.querySelector(".pager button, .pager .end-note") || textInput).focus?.({ preventScroll: true });
    } else {
      resultsEl.replaceChildren(fragment.content);
    }
    page = pageNumber;
    const summary = resultsEl.querySelector("[data-summary], .notice");
    const end = resultsEl.querySelector(".end-note");
    statusEl.textContent = loaded ? `${loaded}${end ? ` ${end.textContent.trim()}` : ""}`
      : summary ? summary.textContent.replace(/\s+/g, " ").trim() : "";
    if (pushHistory && !append) {
      const url = shareableUrl();
      if (url && url !== location.href) history.pushState(null, "", url);
    }
    watchPager();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run();
  });

  // Filters apply at once.
  form.addEventListener("change", (event) => {
    const name = event.target.name;
    if (["modality", "collection", "mode", "tag"].includes(name) && partsCount()) run();
  });

  // "More like this" and "Show more" inside the results.
  resultsEl.addEventListener("click", (event) => {
    const like = event.target.closest("a.like");
    if (like && !event.metaKey && !event.ctrlKey && !event.shiftKey) {
      event.preventDefault();
      chips.forEach((chip) => chip.kind === "file" && chip.thumb && URL.revokeObjectURL(chip.thumb));
      chips = [{ kind: "item", item: Number(like.dataset.item), label: like.dataset.label,
                 thumb: like.dataset.thumb || null, weight: 1, negative: false }];
      textInput.value = "";
      renderChips();
      window.scrollTo({ top: 0, behavior: "smooth" });
      textInput.focus({ preventScroll: true });
      run();
      return;
    }
    const more = event.target.closest("button.more");
    if (more) {
      more.disabled = true;
      more.textContent = "Loading…";
      run({ pageNumber: Number(more.dataset.page), append: true });
    }
  });

  // Infinite scroll: "Show more" loads itself when it comes into view.
  const observer = "IntersectionObserver" in window ? new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting && !entry.target.disabled && !inFlight) entry.target.click();
    }
  }, { rootMargin: "400px" }) : null;
  function watchPager() {
    observer?.disconnect();
    const more = resultsEl.querySelector("button.more");
    if (more && observer) observer.observe(more);
  }

  // ---------------------------------------------------------------- filters on a phone, tag suggestions

  // On a phone the filters fold behind one button, so results start near the top of the screen.
  const filtersToggle = document.getElementById("filters-toggle");
  const filtersEl = document.getElementById("filters");
  filtersToggle?.addEventListener("click", () => {
    const open = filtersEl.classList.toggle("is-collapsed") === false;
    filtersToggle.setAttribute("aria-expanded", String(open));
    if (open) filtersEl.querySelector("input, select")?.focus();
  });

  // Tags are comma-separated: suggest completions of the tag being typed, keeping the ones before it.
  const tagInput = form.elements.tag;
  const tagList = document.getElementById("tag-options");
  const knownTags = (tagList?.dataset.tags || "").split(",").filter(Boolean);
  tagInput?.addEventListener("input", () => {
    const pieces = tagInput.value.split(",");
    const typed = pieces.pop().trim().toLowerCase();
    const before = pieces.map((p) => p.trim()).filter(Boolean);
    const prefix = before.length ? `${before.join(", ")}, ` : "";
    const options = knownTags.filter((t) => t.startsWith(typed) && !before.includes(t)).slice(0, 20);
    tagList.replaceChildren(...options.map((t) => el("option", { value: prefix + t })));
  });

  // The server-rendered first page gets the same treatment.
  window.addEventListener("popstate", () => location.reload());
  for (const input of chipsEl.querySelectorAll("input[name='like']")) input.remove();
  renderChips();
  watchPager();
})();
