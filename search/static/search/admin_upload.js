// The admin's bulk upload: files dropped or picked are sent one by one, each result shown as it
// arrives (stored, already stored, or refused with the reason). Without this script the form
// posts them all at once and the page lists the outcomes.
(() => {
  "use strict";
  const form = document.getElementById("bulk-upload");
  if (!form || !window.fetch) return;
  const zone = document.getElementById("dropzone");
  const input = document.getElementById("upload-files");
  const tbody = document.getElementById("upload-results");

  function row(name, outcome, status, url, title) {
    tbody.querySelector(".upload-none")?.remove();
    const tr = document.createElement("tr");
    tr.className = `upload-${status}`;
    const cells = [name, outcome].map((text) => { const td = document.createElement("td"); td.textContent = text; return td; });
    const link = document.createElement("td");
    if (url) { const a = document.createElement("a"); a.href = url; a.textContent = title; link.append(a); }
    tr.append(...cells, link);
    tbody.append(tr);
    return tr;
  }

  async function send(files) {
    for (const file of files) {
      const tr = row(file.name, "Uploading…", "pending", "", "");
      const data = new FormData();
      data.append("files", file, file.name);
      data.append("tags", form.elements.tags.value);
      data.append("collection", form.elements.collection.value);
      data.append("csrfmiddlewaretoken", form.elements.csrfmiddlewaretoken.value);
      let result;
      try {
        const response = await fetch(form.action || location.href, { method: "POST", body: data,
          headers: { Accept: "application/json" }, credentials: "same-origin" });
        result = response.ok ? (await response.json()).results[0]
          : { status: "refused", message: response.status === 413 ? "too large for the server" : `the server answered ${response.status}` };
      } catch (error) {
        result = { status: "refused", message: `not sent (${error.message})` };
      }
      const message = result.message.charAt(0).toUpperCase() + result.message.slice(1);
      tr.replaceWith(row(file.name, message, result.status, result.url, result.title));
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send([...input.files]);
    input.value = "";
  });
  input.addEventListener("change", () => { send([...input.files]); input.value = ""; });
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => { event.preventDefault(); zone.classList.add("is-dragging"); });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("is-dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("is-dragging");
    send([...event.dataTransfer.files]);
  });
})();
