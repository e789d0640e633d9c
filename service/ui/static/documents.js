// The Documents page: what the index holds (GET /v1/documents), uploads with progress and
// drag-and-drop (POST), deletes after a confirmation (DELETE), the quarantine, the index version.
"use strict";

(() => {
  const { el, json, upload, when, basename } = window.Ragtune;
  const $ = (id) => document.getElementById(id);
  let timer = null;
  let loading = 0;
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

  function query() {
    const params = new URLSearchParams();
    if ($("doc-q").value.trim()) params.set("q", $("doc-q").value.trim());
    if ($("doc-kind").value) params.set("kind", $("doc-kind").value);
    const text = params.toString();
    return text ? "?" + text : "";
  }

  function docRow(d) {
    const name = d.title || basename(d.source);
    return el("tr", { "data-doc-id": d.id },
      el("td", {}, name),
      el("td", { class: "path", title: d.source }, basename(d.source)),
      el("td", {}, d.kind),
      el("td", { class: "num" }, d.chunks),
      el("td", { class: "num" }, d.version),
      el("td", {}, when(d.ingested_at)),
      el("td", {}, el("button", {
        type: "button", class: "small danger", "aria-label": `Delete ${name}`,
        onclick: (e) => confirmDelete(d, name, e.currentTarget),
      }, "Delete")));
  }

  async function load() {
    const mine = ++loading; // a slower, older answer must not overwrite a newer one
    const status = $("doc-status");
    status.textContent = "Loading…";
    try {
      const body = await json("/v1/documents" + query());
      if (mine !== loading) return;
      $("index-version").textContent = `Index version: ${body.index_version ?? "unknown"}`;
      $("doc-table").tBodies[0].replaceChildren(...body.data.map(docRow));
      const chunks = body.data.reduce((n, d) => n + d.chunks, 0);
      status.textContent = body.data.length
        ? `${plural(body.data.length, "document")}, ${plural(chunks, "chunk")}.`
        : (query() ? "No document matches." : "No documents yet: upload some above.");
      const held = body.quarantined || [];
      $("q-table").tBodies[0].replaceChildren(...held.map((q) => el("tr", {},
        el("td", { class: "path", title: q.source }, basename(q.source)),
        el("td", {}, q.reason), el("td", {}, when(q.at)))));
      $("q-table").hidden = held.length === 0;
      $("q-status").textContent = held.length ? "" : "Nothing quarantined.";
    } catch (err) {
      if (mine === loading) status.textContent = `Could not list documents: ${err.message}`;
    }
  }

  function confirmDelete(doc, name, opener) {
    const dialog = $("delete-dialog");
    $("delete-what").textContent = `“${name}” (${plural(doc.chunks, "chunk")}) leaves the index, and an ` +
      "uploaded file's stored copy is removed. This cannot be undone.";
    dialog.returnValue = "";
    dialog.addEventListener("close", async function onClose() {
      dialog.removeEventListener("close", onClose);
      if (dialog.returnValue !== "delete") {
        opener.focus();
        return;
      }
      $("doc-status").textContent = `Deleting ${name}…`;
      try {
        await json(`/v1/documents/${encodeURIComponent(doc.id)}`, { method: "DELETE" });
        await load();
        $("doc-status").textContent = `Deleted ${name}. ` + $("doc-status").textContent;
      } catch (err) {
        $("doc-status").textContent = `Could not delete ${name}: ${err.message}`;
      }
      $("doc-q").focus();
    });
    dialog.showModal();
  }

  async function uploadAll(files) {
    for (const file of files) {
      const bar = el("progress", { max: 1, value: 0, "aria-label": `Uploading ${file.name}` });
      const note = el("span", { class: "muted" }, "uploading…");
      const item = el("li", {}, el("span", { class: "name" }, file.name), bar, note);
      $("uploads").prepend(item);
      try {
        const doc = await upload("/v1/documents", file, (share) => {
          bar.value = share;
          note.textContent = share < 1 ? `${Math.round(share * 100)}%` : "ingesting…";
        });
        bar.value = 1;
        note.textContent = doc.status === "unchanged"
          ? "already indexed, unchanged" : `indexed: ${plural(doc.chunks, "chunk")}`;
        item.dataset.state = "done";
      } catch (err) {
        note.textContent = `failed: ${err.message}`;
        note.className = "error";
        item.dataset.state = "failed";
      }
      load();
    }
  }

  const zone = $("dropzone");
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (e) => {
      e.preventDefault();
      zone.classList.add("over");
    });
  }
  for (const type of ["dragleave", "drop"]) zone.addEventListener(type, () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer && e.dataTransfer.files.length) uploadAll([...e.dataTransfer.files]);
  });
  $("file-input").addEventListener("change", (e) => {
    uploadAll([...e.target.files]);
    e.target.value = "";
  });
  $("doc-filter").addEventListener("submit", (e) => e.preventDefault());
  $("doc-q").addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(load, 200);
  });
  $("doc-kind").addEventListener("change", load);
  load();
})();
