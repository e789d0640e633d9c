// The Evaluations page's past runs (GET /v1/eval/runs): each opens its configurations (from
// GET /v1/eval/runs/{id}), with a Promote button each, and its report (report-frame.js).
"use strict";

window.RagtuneRuns = (() => {
  const { el, json, when } = window.Ragtune;
  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;
  let opened = null; // {id, html}

  function row(r) {
    return el("tr", { "data-run-id": r.id },
      el("td", { class: "path" }, r.id),
      el("td", {}, when(r.created)),
      el("td", { class: "path" }, r.dataset || ""),
      el("td", { class: "num" }, r.configs),
      el("td", {}, r.winner || "none"),
      el("td", {}, el("button", {
        type: "button", class: "small", "aria-label": `Open run ${r.id}`, onclick: () => open(r.id),
      }, "Open")));
  }

  async function load() {
    const status = $("runs-status");
    try {
      const body = await json("/v1/eval/runs");
      $("runs-table").tBodies[0].replaceChildren(...body.data.map(row));
      $("runs-table").hidden = body.data.length === 0;
      status.textContent = body.data.length ? "" : "No runs yet: start a sweep.";
      return body.data;
    } catch (err) {
      status.textContent = `Could not list runs: ${err.message}`;
      return [];
    }
  }

  function metrics(c, primary) {
    const names = Object.keys(c.metrics || {});
    names.sort((a, b) => (b === primary) - (a === primary));
    return names.slice(0, 4).map((n) => {
      const v = c.metrics[n];
      return `${n} ${typeof v === "number" ? v.toFixed(3) : v ?? "–"}`;
    }).join(", ");
  }

  function configRow(runId, c, results) {
    const tags = [c.id === results.winner ? "winner" : null, c.baseline ? "baseline" : null].filter(Boolean);
    return el("tr", { "data-config-id": c.id },
      el("td", {}, el("code", {}, c.id), " ", c.label || "",
        tags.map((t) => el("span", { class: "badge" }, t))),
      el("td", { class: "long" }, metrics(c, results.run && results.run.primary_metric)),
      el("td", { class: "num" }, c.questions ?? ""),
      el("td", {}, el("button", {
        type: "button", class: "small", "aria-label": `Promote ${c.id}`,
        onclick: (e) => window.RagtunePromotions.promote(runId, c, e.currentTarget),
      }, "Promote…")));
  }

  async function open(runId) {
    const detail = $("run-detail");
    const status = $("report-status");
    detail.hidden = false;
    $("run-title").textContent = `Run ${runId}`;
    $("config-table").tBodies[0].replaceChildren();
    $("report-frame").hidden = true;
    $("report-download").hidden = true;
    opened = { id: runId, html: null };
    for (const tr of document.querySelectorAll("#runs-table tbody tr")) {
      tr.classList.toggle("selected", tr.dataset.runId === runId);
    }
    detail.focus();
    try {
      const results = await json(`/v1/eval/runs/${enc(runId)}`);
      $("config-table").tBodies[0].replaceChildren(...(results.configs || []).map((c) => configRow(runId, c, results)));
    } catch (err) {
      status.textContent = `Could not read the run: ${err.message}`;
      return;
    }
    status.textContent = "Loading the report…";
    try {
      const html = await window.RagtuneReport.show($("report-frame"), `/v1/eval/runs/${enc(runId)}/report`);
      if (opened.id !== runId) return;
      opened.html = html;
      $("report-download").hidden = false;
      status.textContent = "";
      status.dataset.run = runId;
    } catch (err) {
      status.textContent = `No report: ${err.message}`;
    }
  }

  $("report-download").addEventListener("click", () => {
    if (opened && opened.html) window.RagtuneReport.download(opened.html, `${opened.id}-report.html`);
  });
  load();
  return { load, open };
})();
