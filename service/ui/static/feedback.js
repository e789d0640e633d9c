// The Feedback page: recent ratings from GET /v1/feedback, filtered by rating, correction and date.
"use strict";

(() => {
  const { el, request, errorOf, when } = window.Ragtune;
  const $ = (id) => document.getElementById(id);

  function query() {
    const params = new URLSearchParams();
    for (const [id, name] of [["fb-rating", "rating"], ["fb-correction", "has_correction"], ["fb-since", "since"], ["fb-limit", "limit"]]) {
      const value = $(id).value.trim();
      if (value) params.set(name, value);
    }
    const text = params.toString();
    return text ? "?" + text : "";
  }

  const cell = (value, cls) => el("td", { class: cls }, value === null || value === undefined ? "" : value);

  function row(f) {
    const rating = f.rating === "up" ? "▲ up" : "▼ down";
    return el("tr", { "data-rating": f.rating, "data-response-id": f.response_id },
      cell(when(f.created)), cell(rating),
      cell(f.question, "long"), cell(f.answer, "long"),
      cell(f.corrected_answer, "long"), cell(f.comment, "long"),
      cell(f.wrong_citation ? "yes" : "no"));
  }

  async function load() {
    const status = $("fb-status");
    const table = $("fb-table");
    status.textContent = "Loading…";
    try {
      const resp = await request("/v1/feedback" + query());
      if (resp.status === 404 || resp.status === 405) {
        table.hidden = true;
        status.textContent = "This server cannot list feedback yet (GET /v1/feedback is missing); " +
          "ratings given on the Ask page are still saved.";
        status.dataset.unavailable = "true";
        return;
      }
      if (!resp.ok) throw await errorOf(resp);
      const body = await resp.json();
      table.tBodies[0].replaceChildren(...body.data.map(row));
      table.hidden = body.data.length === 0;
      status.textContent = body.data.length ? `${body.data.length} shown, newest first.` : "No feedback matches.";
    } catch (err) {
      table.hidden = true;
      status.textContent = `Could not load feedback: ${err.message}`;
    }
  }

  $("fb-filter").addEventListener("submit", (e) => {
    e.preventDefault();
    load();
  });
  for (const id of ["fb-rating", "fb-correction", "fb-since"]) $(id).addEventListener("change", load);
  load();
})();
