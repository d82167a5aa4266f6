// The map page: every item of a space drawn on a canvas (one path per kind, so 50,000 points
// redraw in a few milliseconds), with zoom and pan (wheel, drag, pinch, buttons, keys), a
// tooltip with the preview, the results of a query marked, click-through to items, and a
// keyboard cursor that steps from dot to dot in the direction of the arrow pressed.
(() => {
  "use strict";

  const figure = document.getElementById("map");
  const canvas = document.getElementById("map-canvas");
  if (!figure || !canvas || !window.fetch) return;
  const ctx = canvas.getContext("2d");
  const tip = document.getElementById("map-tip");
  const live = document.getElementById("map-live");
  const statusEl = document.getElementById("map-status");
  const queryForm = document.getElementById("map-query");
  const queryInput = document.getElementById("map-q");
  const itemUrl = (id) => figure.dataset.itemUrl.replace(/0\/$/, `${id}/`);
  const PAD = 16;
  const MAX_SCALE = 200;

  let n = 0;
  let xs = new Float32Array(0), ys = new Float32Array(0), ms = new Uint8Array(0);
  let ids = [], titles = [], previews = [], modalities = [];
  let marked = []; // point indices of the query's results, best first
  let markedRank = new Int32Array(0); // 0 = not marked, else rank
  let grid = null; // spatial index: world cell -> point indices
  const GRID = 64;
  const hidden = new Set();
  let view = { scale: 1, tx: 0, ty: 0 };
  let width = 0, height = 0, dpr = 1;
  let selected = -1, hovered = -1, nextMarked = 0;
  let frame = 0;
  const stats = { draws: 0, lastDrawMs: 0 };

  const css = getComputedStyle(document.documentElement);
  const colour = (name) => css.getPropertyValue(name).trim() || "#888";
  const COLOURS = { image: colour("--image"), audio: colour("--audio"), text: colour("--text") };
  const FG = colour("--fg"), SURFACE = colour("--surface"), LINE = colour("--line");

  // ------------------------------------------------------------------ geometry

  const sx = (i) => PAD + xs[i] * (width - 2 * PAD) * view.scale + view.tx;
  const sy = (i) => PAD + (1 - ys[i]) * (height - 2 * PAD) * view.scale + view.ty;
  const visible = (i) => !hidden.has(ms[i]);

  function resize() {
    const phone = window.innerWidth < 600;
    width = figure.clientWidth;
    height = Math.round(Math.max(320, Math.min(phone ? width * 1.15 : width * 0.62, window.innerHeight * 0.75)));
    dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
    schedule();
  }

  function buildGrid() {
    grid = Array.from({ length: GRID * GRID }, () => []);
    for (let i = 0; i < n; i += 1) {
      const cx = Math.min(GRID - 1, Math.floor(xs[i] * GRID)), cy = Math.min(GRID - 1, Math.floor(ys[i] * GRID));
      grid[cy * GRID + cx].push(i);
    }
  }

  // The visible point nearest to a screen position, within `reach` pixels; -1 if none.
  function nearest(px, py, reach) {
    if (!grid) return -1;
    const wx = (px - PAD - view.tx) / ((width - 2 * PAD) * view.scale);
    const wy = 1 - (py - PAD - view.ty) / ((height - 2 * PAD) * view.scale);
    const rx = reach / ((width - 2 * PAD) * view.scale), ry = reach / ((height - 2 * PAD) * view.scale);
    const x0 = Math.max(0, Math.floor((wx - rx) * GRID)), x1 = Math.min(GRID - 1, Math.floor((wx + rx) * GRID));
    const y0 = Math.max(0, Math.floor((wy - ry) * GRID)), y1 = Math.min(GRID - 1, Math.floor((wy + ry) * GRID));
    let best = -1, bestD = reach * reach;
    for (let cy = y0; cy <= y1; cy += 1) {
      for (let cx = x0; cx <= x1; cx += 1) {
        for (const i of grid[cy * GRID + cx]) {
          if (!visible(i)) continue;
          const d = (sx(i) - px) ** 2 + (sy(i) - py) ** 2;
          if (d <= bestD) { bestD = d; best = i; }
        }
      }
    }
    return best;
  }

  // ------------------------------------------------------------------ drawing

  function radius() {
    const base = n > 20000 ? 1.6 : n > 3000 ? 2.6 : 4.5;
    const phone = width < 600 ? 1.35 : 1;
    return Math.min(12, base * phone * Math.sqrt(view.scale));
  }

  function shape(m, x, y, r) {
    if (m === 0) { ctx.moveTo(x + r, y); ctx.arc(x, y, r, 0, 6.2832); }
    else if (m === 1) ctx.rect(x - r * 0.9, y - r * 0.9, r * 1.8, r * 1.8);
    else { ctx.moveTo(x, y - r * 1.15); ctx.lineTo(x + r * 1.15, y); ctx.lineTo(x, y + r * 1.15); ctx.lineTo(x - r * 1.15, y); ctx.closePath(); }
  }

  function draw() {
    frame = 0;
    const started = performance.now();
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.fillStyle = SURFACE;
    ctx.strokeStyle = LINE;
    ctx.beginPath();
    ctx.roundRect ? ctx.roundRect(0.5, 0.5, width - 1, height - 1, 12) : ctx.rect(0.5, 0.5, width - 1, height - 1);
    ctx.fill();
    ctx.stroke();
    const r = radius();
    const simple = r < 2.2; // tiny dots: squares read the same and draw faster than arcs
    const dim = marked.length > 0;
    for (let m = 0; m < modalities.length; m += 1) {
      if (hidden.has(m)) continue;
      ctx.fillStyle = COLOURS[modalities[m]];
      ctx.globalAlpha = dim ? 0.28 : 0.85;
      ctx.beginPath();
      for (let i = 0; i < n; i += 1) {
        if (ms[i] !== m || (dim && markedRank[i])) continue;
        const x = sx(i), y = sy(i);
        if (x < -r || y < -r || x > width + r || y > height + r) continue;
        if (simple) ctx.rect(x - r, y - r, 2 * r, 2 * r); else shape(m, x, y, r);
      }
      ctx.fill();
    }
    ctx.globalAlpha = 1;
    // The query's results on top, larger and outlined, the best one largest.
    for (const i of marked) {
      if (!visible(i)) continue;
      const rr = Math.max(5, r * 1.6) * (markedRank[i] === 1 ? 1.4 : 1);
      ctx.beginPath();
      shape(ms[i], sx(i), sy(i), rr);
      ctx.fillStyle = COLOURS[modalities[ms[i]]];
      ctx.fill();
      ctx.lineWidth = 2;
      ctx.strokeStyle = FG;
      ctx.stroke();
    }
    for (const [i, width_] of [[hovered, 2], [selected, 3]]) {
      if (i < 0 || !visible(i)) continue;
      ctx.beginPath();
      ctx.arc(sx(i), sy(i), Math.max(8, r * 2), 0, 6.2832);
      ctx.lineWidth = width_;
      ctx.strokeStyle = FG;
      ctx.stroke();
    }
    stats.draws += 1;
    stats.lastDrawMs = performance.now() - started;
  }

  function schedule() {
    if (!frame) frame = requestAnimationFrame(draw);
  }

  // ------------------------------------------------------------------ zoom and pan

  function zoomAt(px, py, factor) {
    const scale = Math.min(MAX_SCALE, Math.max(1, view.scale * factor));
    const k = scale / view.scale;
    view = { scale, tx: px - PAD - (px - PAD - view.tx) * k, ty: py - PAD - (py - PAD - view.ty) * k };
    clamp();
    schedule();
  }

  function panBy(dx, dy) {
    view.tx += dx;
    view.ty += dy;
    clamp();
    schedule();
  }

  // Keep some of the map on screen: it cannot be dragged away entirely.
  function clamp() {
    const w = (width - 2 * PAD) * view.scale, h = (height - 2 * PAD) * view.scale;
    view.tx = Math.min(width / 2, Math.max(width / 2 - w - 2 * PAD, view.tx));
    view.ty = Math.min(height / 2, Math.max(height / 2 - h - 2 * PAD, view.ty));
    if (view.scale === 1) { view.tx = 0; view.ty = 0; }
  }

  function reset() {
    view = { scale: 1, tx: 0, ty: 0 };
    schedule();
  }

  canvas.addEventListener("wheel", (event) => {
    event.preventDefault();
    const box = canvas.getBoundingClientRect();
    zoomAt(event.clientX - box.left, event.clientY - box.top, Math.exp(-event.deltaY * 0.0015));
  }, { passive: false });

  const pointers = new Map();
  let dragged = false, pinch = null;
  canvas.addEventListener("pointerdown", (event) => {
    try { canvas.setPointerCapture(event.pointerId); } catch { /* a pointer the browser no longer tracks */ }
    pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
    dragged = false;
    if (pointers.size === 2) {
      const [a, b] = [...pointers.values()];
      pinch = { d: Math.hypot(a.x - b.x, a.y - b.y) };
    }
  });
  canvas.addEventListener("pointermove", (event) => {
    const box = canvas.getBoundingClientRect();
    const previous = pointers.get(event.pointerId);
    if (!previous) {
      if (event.pointerType === "mouse") hover(nearest(event.clientX - box.left, event.clientY - box.top, 14));
      return;
    }
    pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
    if (pointers.size === 2 && pinch) {
      const [a, b] = [...pointers.values()];
      const d = Math.hypot(a.x - b.x, a.y - b.y);
      if (pinch.d > 0) zoomAt((a.x + b.x) / 2 - box.left, (a.y + b.y) / 2 - box.top, d / pinch.d);
      pinch.d = d;
      dragged = true;
      return;
    }
    const dx = event.clientX - previous.x, dy = event.clientY - previous.y;
    if (dragged || Math.abs(dx) + Math.abs(dy) > 3) {
      dragged = true;
      hover(-1);
      panBy(dx, dy);
    }
  });
  const release = (event) => {
    pointers.delete(event.pointerId);
    if (pointers.size < 2) pinch = null;
  };
  canvas.addEventListener("pointerup", (event) => {
    const wasDrag = dragged || pointers.size > 1;
    release(event);
    if (wasDrag) return;
    const box = canvas.getBoundingClientRect();
    const i = nearest(event.clientX - box.left, event.clientY - box.top, event.pointerType === "mouse" ? 14 : 24);
    if (i >= 0) window.location.assign(itemUrl(ids[i]));
  });
  canvas.addEventListener("pointercancel", release);
  canvas.addEventListener("pointerleave", (event) => event.pointerType === "mouse" && hover(-1));

  for (const button of figure.querySelectorAll("[data-zoom]")) {
    button.addEventListener("click", () => {
      if (button.dataset.zoom === "reset") reset();
      else zoomAt(width / 2, height / 2, button.dataset.zoom === "in" ? 1.6 : 1 / 1.6);
      announce(`Zoom ${Math.round(view.scale * 100)}%`);
    });
  }

  // ------------------------------------------------------------------ tooltip, selection, keyboard

  function showTip(i) {
    if (i < 0) { tip.hidden = true; return; }
    const img = tip.querySelector("img");
    if (previews[i]) img.src = previews[i]; else img.removeAttribute("src");
    img.hidden = !previews[i];
    tip.querySelector("p").textContent = titles[i] + (markedRank[i] ? ` · result ${markedRank[i]}` : "");
    tip.hidden = false;
    const left = Math.min(sx(i) + 14, width - tip.offsetWidth - 4);
    const top = sy(i) + 14 + tip.offsetHeight > height ? sy(i) - tip.offsetHeight - 14 : sy(i) + 14;
    tip.style.left = `${Math.max(4, left)}px`;
    tip.style.top = `${Math.max(4, top)}px`;
  }

  function hover(i) {
    if (i === hovered) return;
    hovered = i;
    canvas.style.cursor = i >= 0 ? "pointer" : "grab";
    showTip(i >= 0 ? i : selected);
    schedule();
  }

  function announce(text) {
    live.textContent = text;
  }

  function select(i) {
    selected = i;
    if (i < 0) { showTip(-1); schedule(); return; }
    // Bring it into view.
    const margin = 40;
    const dx = sx(i) < margin ? margin - sx(i) : sx(i) > width - margin ? width - margin - sx(i) : 0;
    const dy = sy(i) < margin ? margin - sy(i) : sy(i) > height - margin ? height - margin - sy(i) : 0;
    if (dx || dy) { view.tx += dx; view.ty += dy; }
    schedule();
    showTip(i);
    const kind = modalities[ms[i]];
    announce(`${titles[i]}, ${kind}${markedRank[i] ? `, result ${markedRank[i]}` : ""}. Enter opens it.`);
  }

  // The nearest visible point in the direction of an arrow, within a 60° cone.
  function step(dirX, dirY) {
    if (selected < 0) {
      const i = nearest(width / 2, height / 2, Math.max(width, height));
      if (i >= 0) select(i);
      return;
    }
    const ox = sx(selected), oy = sy(selected);
    let best = -1, bestScore = Infinity;
    for (let i = 0; i < n; i += 1) {
      if (i === selected || !visible(i)) continue;
      const dx = sx(i) - ox, dy = sy(i) - oy;
      const along = dx * dirX + dy * dirY;
      if (along <= 0) continue;
      const across = Math.abs(dx * dirY - dy * dirX);
      if (across > along * 1.2) continue;
      const score = along + 2 * across;
      if (score < bestScore) { bestScore = score; best = i; }
    }
    if (best >= 0) select(best); else announce("No more dots that way.");
  }

  canvas.addEventListener("keydown", (event) => {
    const arrows = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (event.key in arrows) {
      event.preventDefault();
      const [dx, dy] = arrows[event.key];
      if (event.shiftKey) panBy(-dx * width * 0.15, -dy * height * 0.15); else step(dx, dy);
    } else if (event.key === "+" || event.key === "=") {
      event.preventDefault();
      zoomAt(selected >= 0 ? sx(selected) : width / 2, selected >= 0 ? sy(selected) : height / 2, 1.5);
    } else if (event.key === "-" || event.key === "_") {
      event.preventDefault();
      zoomAt(width / 2, height / 2, 1 / 1.5);
    } else if (event.key === "0") {
      reset();
    } else if (event.key === "Enter" && selected >= 0) {
      window.location.assign(itemUrl(ids[selected]));
    } else if (event.key === "Escape") {
      select(-1);
    } else if ((event.key === "n" || event.key === "N") && marked.length) {
      select(marked[nextMarked % marked.length]);
      nextMarked += 1;
    }
  });
  canvas.addEventListener("focus", () => {
    if (selected < 0) announce("Arrow keys step from dot to dot; Shift and arrows move the map; + and − zoom.");
  });
  canvas.addEventListener("blur", () => showTip(-1));

  for (const box of document.querySelectorAll("#map-legend input")) {
    box.addEventListener("change", () => {
      const m = modalities.indexOf(box.value);
      if (box.checked) hidden.delete(m); else hidden.add(m);
      if (selected >= 0 && !visible(selected)) select(-1);
      schedule();
    });
  }

  // ------------------------------------------------------------------ data

  function setMarks(highlight) {
    const index = new Map(ids.map((id, i) => [id, i]));
    marked = highlight.map((id) => index.get(id)).filter((i) => i !== undefined);
    markedRank = new Int32Array(n);
    marked.forEach((i, rank) => { markedRank[i] = rank + 1; });
    nextMarked = 0;
  }

  function load(data) {
    n = data.id.length;
    ids = data.id; titles = data.title; previews = data.preview; modalities = data.modalities;
    xs = Float32Array.from(data.x); ys = Float32Array.from(data.y); ms = Uint8Array.from(data.m);
    setMarks(data.highlight || []);
    buildGrid();
    selected = -1;
    schedule();
  }

  async function fetchData(query) {
    const url = `${figure.dataset.url}${query ? `&q=${encodeURIComponent(query)}` : ""}`;
    const response = await fetch(url, { credentials: "same-origin" });
    const data = await response.json();
    if (!response.ok && !data.id) throw new Error(data.detail || data.query_error || `the server answered ${response.status}`);
    return data;
  }

  let polls = 0;
  async function refresh(query, { announceMarks = false } = {}) {
    let data;
    try {
      data = await fetchData(query);
    } catch (error) {
      statusEl.textContent = `The map could not be loaded (${error.message}).`;
      return;
    }
    const wasPending = figure.dataset.method === "pca" && data.method === "umap";
    figure.dataset.method = data.method;
    figure.dataset.pending = String(data.pending);
    load(data);
    if (data.query_error) statusEl.textContent = `${data.query_error[0].toUpperCase()}${data.query_error.slice(1)}.`;
    else if (announceMarks) {
      statusEl.textContent = marked.length
        ? `${marked.length} ${marked.length === 1 ? "result" : "results"} of “${query}” ${marked.length === 1 ? "is" : "are"} marked; the best is “${titles[marked[0]]}”. Press N on the map to visit them.`
        : `Nothing on the map matches “${query}”.`;
    } else if (data.pending) {
      statusEl.textContent = "A layout that keeps neighbourhoods together is being computed; it replaces this one when ready.";
    } else if (wasPending) {
      statusEl.textContent = "The map is now laid out by UMAP: neighbours in the space are neighbours here.";
      document.getElementById("map-about").textContent =
        "Every dot is an item; dots close together mean similar things to the model. Laid out by UMAP, which keeps each item's nearest neighbours near it.";
    } else if (data.note) statusEl.textContent = `${data.note[0].toUpperCase()}${data.note.slice(1)}.`;
    if (data.pending && polls < 200) {
      polls += 1;
      setTimeout(() => refresh(queryInput.value.trim()), 3000);
    }
  }

  queryForm?.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = queryInput.value.trim();
    const url = new URL(window.location.href);
    if (query) url.searchParams.set("q", query); else url.searchParams.delete("q");
    history.replaceState(null, "", url);
    refresh(query, { announceMarks: Boolean(query) });
  });

  window.addEventListener("resize", resize);
  resize();
  refresh(queryInput?.value.trim() || "", { announceMarks: Boolean(queryInput?.value.trim()) });

  // For the browser tests and for curious people: how the map is doing.
  window.searchMap = { stats, get count() { return n; }, get view() { return { ...view }; }, draw, zoomAt, load,
                       point: (id) => { const i = ids.indexOf(id); return i < 0 ? null : { x: sx(i), y: sy(i) }; } };
})();
