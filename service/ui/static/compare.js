// The Compare page: one question answered by 2 to 4 configurations, one after the other (the
// embedded model answers one question at a time, so a column's latency is its own), each
// streamed into its column with its citations, latency and passages; differing passages are
// marked, and the differing settings become an evaluation sweep's axes.
"use strict";

(() => {
  const { el, json, root } = window.Ragtune;
  const Serving = window.RagtuneServing;
  const Diff = window.RagtuneCompare;
  const MIN = 2;
  const MAX = 4;
  const columns = []; // {node, heading, remove, fields, slot, list, result}
  let served = null; // the values in force, which new columns start from
  let templates = null;
  let controller = null;
  let made = 0; // for unique element ids

  const $ = (id) => document.getElementById(id);
  const number = (input) => (input.value === "" ? null : Number(input.value));

  function values(col) {
    const f = col.fields;
    return { prompt: f.prompt.value, temperature: number(f.temperature), top_k: number(f.top_k), mode: f.mode.value, k: number(f.k) };
  }

  function addColumn(from) {
    const n = ++made;
    const v = from || served || {};
    const id = (name) => `c${n}-${name}`;
    const fields = {
      prompt: el("select", { id: id("prompt") }),
      temperature: el("input", { id: id("temperature"), type: "number", min: 0, max: 2, step: 0.05, value: v.temperature ?? "", placeholder: "server default" }),
      top_k: el("input", { id: id("top-k"), type: "number", min: -1, step: 1, value: v.top_k ?? "", placeholder: "server default" }),
      mode: el("select", { id: id("mode") }, ["dense", "bm25", "hybrid"].map((m) => el("option", { value: m }, m))),
      k: el("input", { id: id("k"), type: "number", min: 1, step: 1, value: v.k ?? "", placeholder: "server default" }),
    };
    Serving.templateOptions(fields.prompt, templates, v.prompt);
    if (v.mode) fields.mode.value = v.mode;
    const labels = { prompt: "Template", temperature: "Temperature", top_k: "Sampling top_k", mode: "Retrieval mode", k: "Passages (k)" };
    const heading = el("h2", { id: id("title") });
    const col = { fields, heading, slot: el("div", { class: "slot", "aria-live": "polite" }), list: null, result: null };
    col.remove = el("button", { type: "button", class: "small", onclick: () => removeColumn(col) }, "Remove");
    col.node = el("section", { class: "column panel", "aria-labelledby": heading.id },
      el("div", { class: "row spread" }, heading, col.remove),
      el("div", { class: "grid2" }, Object.entries(fields).flatMap(([name, input]) => [el("label", { for: input.id }, labels[name]), input])),
      col.slot);
    for (const input of Object.values(fields)) input.addEventListener("input", updateSweep);
    columns.push(col);
    $("columns").append(col.node);
    relabel();
    return col;
  }

  function removeColumn(col) {
    if (columns.length <= MIN || controller) return;
    columns.splice(columns.indexOf(col), 1);
    col.node.remove();
    relabel();
    markPassages();
    $("add-column").focus();
  }

  function relabel() {
    columns.forEach((col, i) => {
      const name = `Configuration ${"ABCD"[i]}`;
      col.heading.textContent = name;
      col.remove.setAttribute("aria-label", `Remove ${name}`);
      col.remove.disabled = columns.length <= MIN || Boolean(controller);
    });
    $("add-column").disabled = columns.length >= MAX || Boolean(controller);
    updateSweep();
  }

  function markPassages() {
    Diff.mark(columns.map((c) => c.list), Diff.differing(columns.map((c) => (c.result ? c.result.passages : null))));
  }

  const secs = (s) => (s === null || s === undefined ? "–" : s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(2)} s`);

  function latency(client, timings) {
    const server = Object.entries(timings || {}).map(([k, s]) => `${k.replace("_", " ")} ${secs(s)}`).join(", ");
    return el("dl", { class: "meta latency" },
      el("dt", {}, "Latency (browser)"), el("dd", {}, `${secs(client.total)} in all, first token ${secs(client.first)}`),
      el("dt", {}, "Server timings"), el("dd", {}, server || "–"));
  }

  function requestBody(question, v) {
    const body = { messages: [{ role: "user", content: question }], prompt: v.prompt || undefined, retrieval: {} };
    if (v.temperature !== null) body.temperature = v.temperature;
    if (v.top_k !== null) body.top_k = v.top_k;
    if (v.mode) body.retrieval.mode = v.mode;
    if (v.k !== null) body.retrieval.k = v.k;
    const maxTokens = number($("max-tokens"));
    if (maxTokens !== null) body.max_tokens = maxTokens;
    return body;
  }

  async function answer(col, question) {
    const text = el("div", { class: "answer-text" });
    const block = el("div", { class: "answer", "aria-busy": "true" }, text);
    col.slot.replaceChildren(block);
    try {
      const { final, client } = await Serving.stream(requestBody(question, values(col)),
        (sofar) => { text.textContent = sofar; }, controller.signal);
      const info = final.ragtune;
      block.setAttribute("aria-busy", "false");
      window.RagtuneAnswer.render(block, { text: text.textContent, citations: final.citations || [], info, usage: final.usage });
      col.list = Diff.passageList(info.passages, final.citations);
      block.after(latency(client, info.timings), el("h3", {}, `Passages read (${(info.passages || []).length})`), col.list);
      col.result = { passages: info.passages || [] };
    } catch (err) {
      block.setAttribute("aria-busy", "false");
      const stopped = err.name === "AbortError";
      block.append(el("p", { class: stopped ? "muted" : "error", role: stopped ? null : "alert" },
        stopped ? "Stopped." : `Error: ${err.message}`));
      if (stopped) throw err;
    }
  }

  async function compare(question) {
    controller = new AbortController();
    busy(true);
    for (const col of columns) {
      col.result = null;
      col.list = null;
      col.slot.replaceChildren(el("p", { class: "muted" }, "Waiting for its turn…"));
    }
    try {
      for (const [i, col] of columns.entries()) {
        $("compare-status").textContent = `Answering with configuration ${"ABCD"[i]} (${i + 1} of ${columns.length})…`;
        await answer(col, question);
        markPassages();
      }
      $("compare-status").textContent = "Compared.";
    } catch (err) {
      $("compare-status").textContent = "Stopped.";
    } finally {
      controller = null;
      busy(false);
    }
  }

  function busy(on) {
    $("compare-button").disabled = on;
    $("stop-button").hidden = !on;
    relabel();
  }

  function updateSweep() {
    const chosen = Diff.axes(columns.map(values));
    const dataset = $("sweep-dataset").value;
    const link = $("sweep-link");
    const ready = dataset && Object.keys(chosen).length;
    $("sweep-axes").value = JSON.stringify(chosen);
    if (ready) {
      link.href = Diff.sweepUrl(root, dataset, chosen);
      link.setAttribute("aria-disabled", "false");
    } else {
      link.removeAttribute("href");
      link.setAttribute("aria-disabled", "true");
    }
    $("sweep-status").textContent = !Object.keys(chosen).length ? "The configurations do not differ yet."
      : !dataset ? "No dataset to sweep over: add one on the Evaluations page." : "";
  }

  async function loadDatasets() {
    const select = $("sweep-dataset");
    try {
      const found = (await json("/v1/eval/datasets")).data.filter((d) => !d.error);
      select.replaceChildren(...found.map((d) => el("option", { value: d.id }, `${d.id} (${d.cases} cases)`)));
    } catch (err) {
      select.replaceChildren();
      $("sweep-status").textContent = `Datasets unavailable: ${err.message}`;
    }
    updateSweep();
  }

  async function start() {
    const loaded = await Serving.load();
    templates = loaded.templates;
    if (loaded.config) {
      served = Serving.values(loaded.config);
      $("in-force").textContent = `Columns start from the configuration in force: ${Serving.describe(loaded.config)}`;
      $("max-tokens").value = served.max_tokens;
    } else {
      $("in-force").textContent = `The configuration in force is unknown (${loaded.error ? loaded.error.message : "no answer"}).`;
    }
    while (columns.length < MIN) addColumn();
    await loadDatasets();
  }

  $("compare-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const question = $("question").value.trim();
    if (question && !controller) compare(question);
  });
  $("question").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $("compare-form").requestSubmit();
    }
  });
  $("stop-button").addEventListener("click", () => controller && controller.abort());
  $("add-column").addEventListener("click", () => {
    const col = addColumn(columns.length ? values(columns[columns.length - 1]) : null);
    col.fields.prompt.focus();
  });
  $("sweep-dataset").addEventListener("change", updateSweep);
  start();
})();
