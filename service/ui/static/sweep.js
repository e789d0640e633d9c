// The Evaluations page's sweep: a dataset (GET/POST /v1/eval/datasets), axes over the tunables,
// then POST /v1/eval/sweeps and its progress (GET /v1/eval/sweeps/{id}) until it ends, with
// cancel (DELETE). `?dataset=NAME&axes={"rag.retrieval.k":[3,5]}` pre-fills the form.
"use strict";

(() => {
  const { el, json, postJSON, upload } = window.Ragtune;
  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;
  const FINAL = ["succeeded", "failed", "cancelled"];
  const allAxes = [...document.querySelectorAll("#main-axes input")].map((i) => i.dataset.path);
  let sweep = null;
  let timer = null;

  // "0, 0.4" -> [0, 0.4]; "true" -> true; one value -> the value itself; "" -> undefined.
  function parseValues(text) {
    const values = text.split(",").map((s) => s.trim()).filter((s) => s !== "").map((s) => {
      if (s === "true" || s === "false") return s === "true";
      return s !== "" && !isNaN(Number(s)) ? Number(s) : s;
    });
    if (!values.length) return undefined;
    return values.length === 1 ? values[0] : values;
  }
  const showValues = (v) => (Array.isArray(v) ? v : [v]).join(", ");

  function otherRow(path, values) {
    const n = document.querySelectorAll("#other-axes .axis-row").length + 1;
    const paths = window.RagtuneAxes;
    if (path && !paths.some((a) => a.path === path)) paths.push({ path, label: path, description: "" });
    const select = el("select", { id: `other-path-${n}`, class: "axis-path" },
      paths.map((a) => el("option", { value: a.path, selected: a.path === path, title: a.description }, a.path)));
    const input = el("input", { id: `other-values-${n}`, class: "axis-values", autocomplete: "off", value: values || "" });
    const row = el("div", { class: "axis-row" },
      el("label", { for: `other-path-${n}` }, `Axis ${n}`), select,
      el("label", { for: `other-values-${n}` }, `Values of axis ${n}`), input,
      el("button", { type: "button", class: "small", "aria-label": `Remove axis ${n}`, onclick: () => row.remove() }, "Remove"));
    $("other-axes").append(row);
    return select;
  }

  function axes() {
    const out = {};
    for (const input of document.querySelectorAll("#main-axes input")) {
      const v = parseValues(input.value);
      if (v !== undefined) out[input.dataset.path] = v;
    }
    for (const row of document.querySelectorAll("#other-axes .axis-row")) {
      const v = parseValues(row.querySelector(".axis-values").value);
      if (v !== undefined) out[row.querySelector(".axis-path").value] = v;
    }
    return out;
  }

  async function loadDatasets(choose) {
    const select = $("sweep-dataset");
    const keep = choose || select.value;
    try {
      const body = await json("/v1/eval/datasets");
      select.replaceChildren(...body.data.map((d) => el("option", { value: d.id, disabled: d.cases === null, selected: d.id === keep },
        d.cases === null ? `${d.id} (unreadable)` : `${d.id} (${d.cases} questions)`)));
      const bad = body.data.filter((d) => d.error);
      $("dataset-status").textContent = !body.data.length ? "No datasets yet: upload one (JSONL, one case a line)."
        : bad.map((d) => `${d.id}: ${d.error}`).join("; ");
    } catch (err) {
      $("dataset-status").textContent = `Could not list datasets: ${err.message}`;
    }
  }

  async function loadTemplates() {
    try {
      const body = await json("/v1/templates");
      $("template-refs").replaceChildren(...body.data.flatMap((t) => t.versions.map((v) => el("option", { value: `${t.id}@${v}` }))));
    } catch (err) { /* the datalist is a convenience only */ }
  }

  function show(s) {
    sweep = s;
    $("sweep-live").hidden = false;
    $("sweep-name").textContent = `Sweep over ${s.dataset} (run ${s.run_id})`;
    const bar = $("sweep-progress");
    bar.max = Math.max(1, s.total || 1);
    bar.value = s.status === "succeeded" ? bar.max : (s.done || 0);
    const status = $("sweep-status");
    status.dataset.status = s.status;
    const counts = s.total ? `${s.done} of ${s.total} answers` : "counting answers";
    status.textContent = {
      queued: "Queued: loading the index and the model…",
      running: `Running: ${counts}${s.stage ? ` (${s.stage})` : ""}.`,
      succeeded: `Done: ${counts}.`,
      failed: "Failed.",
      cancelled: `Cancelled after ${counts}; starting the same sweep again resumes it.`,
    }[s.status] || s.status;
    $("sweep-log").hidden = !s.error;
    $("sweep-log").textContent = s.error || "";
    $("sweep-cancel").hidden = FINAL.includes(s.status);
    $("sweep-report").hidden = !s.report_url;
    $("sweep-start").disabled = !FINAL.includes(s.status);
  }

  async function poll() {
    clearTimeout(timer);
    if (!sweep) return;
    try {
      const s = await json(`/v1/eval/sweeps/${enc(sweep.id)}`);
      show(s);
      if (FINAL.includes(s.status)) {
        window.RagtuneRuns.load();
        return;
      }
    } catch (err) {
      $("sweep-status").textContent = `Lost the sweep's progress: ${err.message}`;
    }
    timer = setTimeout(poll, 1000);
  }

  async function start(e) {
    e.preventDefault();
    $("sweep-error").textContent = "";
    const body = { dataset: $("sweep-dataset").value, axes: axes() };
    if ($("sweep-limit").value) body.limit = Number($("sweep-limit").value);
    try {
      show(await json("/v1/eval/sweeps", postJSON(body)));
      timer = setTimeout(poll, 500);
    } catch (err) {
      $("sweep-error").textContent = `Not started: ${err.message}`;
    }
  }

  async function cancel() {
    try {
      show(await json(`/v1/eval/sweeps/${enc(sweep.id)}`, { method: "DELETE" }));
    } catch (err) {
      $("sweep-status").textContent = `Could not cancel: ${err.message}`;
    }
  }

  async function uploadDataset(e) {
    const file = e.target.files[0];
    e.target.value = "";
    if (!file) return;
    const status = $("dataset-status");
    status.textContent = `Uploading ${file.name}…`;
    try {
      const d = await upload("/v1/eval/datasets", file, () => {});
      await loadDatasets(d.id);
      status.textContent = `Added ${d.id}: ${d.cases} questions.`;
    } catch (err) {
      status.textContent = `Not added: ${err.message}`;
    }
  }

  // ?dataset=…&axes=<json>: a sweep another page (Compare) proposes.
  function prefill() {
    const params = new URLSearchParams(location.search);
    let proposed = {};
    try {
      proposed = JSON.parse(params.get("axes") || "{}") || {};
    } catch (err) {
      $("sweep-error").textContent = "The link's axes are not JSON; fill them in below.";
    }
    for (const [path, values] of Object.entries(proposed)) {
      const main = document.querySelector(`#main-axes input[data-path="${CSS.escape(path)}"]`);
      if (main) main.value = showValues(values);
      else otherRow(path, showValues(values));
    }
    return params.get("dataset");
  }

  $("add-axis").addEventListener("click", () => otherRow(window.RagtuneAxes.find((a) => !allAxes.includes(a.path)).path).focus());
  $("sweep-form").addEventListener("submit", start);
  $("sweep-cancel").addEventListener("click", cancel);
  $("sweep-report").addEventListener("click", () => window.RagtuneRuns.open(sweep.run_id));
  $("dataset-file").addEventListener("change", uploadDataset);
  window.RagtuneAxes = [...$("axis-options").content.querySelectorAll("option")]
    .map((o) => ({ path: o.value, label: o.textContent, description: o.title }));
  const wanted = prefill();
  loadDatasets(wanted);
  loadTemplates();
  // A sweep still running (started before a reload) is shown again.
  json("/v1/eval/sweeps").then((body) => {
    const live = body.data.find((s) => !FINAL.includes(s.status));
    if (live && !sweep) {
      show(live);
      poll();
    }
  }).catch(() => {});
})();
