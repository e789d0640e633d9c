// The Prompts page's preview (POST /v1/templates/{id}/render) and new-version editor
// (POST /v1/templates/{id}/versions), for the template selected in prompts.js.
"use strict";

(() => {
  const { el, json, postJSON, basename } = window.Ragtune;
  const prompts = window.RagtunePrompts;
  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;
  let latestSource = "";

  // The latest version's YAML with its `version:` line moved on to the next version.
  function nextSource(source, latest) {
    return source.replace(/^version:\s*\d+\s*$/m, `version: ${latest + 1}`);
  }

  async function prefill(t) {
    $("edit-error").textContent = "";
    $("edit-status").textContent = "";
    $("edit-save").textContent = `Save as version ${t.latest + 1}`;
    try {
      const v = await json(`/v1/templates/${enc(t.id)}/versions/${t.latest}`);
      latestSource = nextSource(v.source, t.latest);
      $("edit-source").value = latestSource;
    } catch (err) {
      $("edit-error").textContent = `Could not read the latest version: ${err.message}`;
    }
  }

  async function save(e) {
    e.preventDefault();
    const t = prompts.state.current;
    const error = $("edit-error");
    const status = $("edit-status");
    error.textContent = "";
    status.textContent = "Saving…";
    $("edit-save").disabled = true;
    try {
      const body = await json(`/v1/templates/${enc(t.id)}/versions`, postJSON({ source: $("edit-source").value }));
      status.textContent = "";
      await prompts.load(t.id, body.version);
      $("edit-status").textContent = `Saved ${body.ref}.`;
    } catch (err) {
      status.textContent = "";
      error.textContent = `Not saved (${err.status || "error"}): ${err.message}`;
      $("edit-source").focus();
    } finally {
      $("edit-save").disabled = false;
    }
  }

  function passage(p) {
    const where = [basename(p.source), p.page ? `page ${p.page}` : null, p.heading].filter(Boolean).join(" · ");
    return el("li", { "data-chunk-id": p.chunk_id },
      el("div", { class: "muted" }, `${where} (score ${p.score})`),
      el("blockquote", { class: "passage" }, p.text));
  }

  function promptNode(r) {
    if (r.messages) {
      return el("ol", { class: "messages" }, r.messages.map((m) =>
        el("li", {}, el("span", { class: "role" }, m.role), el("pre", { class: "code" }, m.content))));
    }
    return el("pre", { class: "code", tabindex: 0, "aria-label": "Rendered prompt" }, r.prompt);
  }

  async function render(e) {
    e.preventDefault();
    const t = prompts.state.current;
    const status = $("render-status");
    const body = { version: prompts.state.version, question: $("render-question").value.trim() };
    if ($("render-k").value) body.k = Number($("render-k").value);
    status.textContent = "Rendering…";
    $("render-button").disabled = true;
    try {
      const r = await json(`/v1/templates/${enc(t.id)}/render`, postJSON(body));
      const meta = [["Template", r.template], ["Style", r.style], ["Prompt tokens", r.prompt_tokens],
        ["Passages", `${r.passages.length} of k=${r.retrieval_k}${r.dropped ? `, ${r.dropped} dropped for the window` : ""}`],
        ["Few-shot examples", r.examples], ["Serving version", r.serving_version]];
      $("render-meta").replaceChildren(...meta.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]));
      $("render-prompt").replaceChildren(promptNode(r));
      $("render-passages").replaceChildren(...r.passages.map(passage));
      $("render-out").hidden = false;
      status.textContent = `${r.prompt_tokens} prompt tokens.`;
    } catch (err) {
      status.textContent = `Could not render: ${err.message}`;
    } finally {
      $("render-button").disabled = false;
    }
  }

  prompts.onSelect((t) => {
    $("render-out").hidden = true;
    $("render-status").textContent = "";
    prefill(t);
  });
  $("edit-form").addEventListener("submit", save);
  $("edit-reset").addEventListener("click", () => {
    $("edit-source").value = latestSource;
    $("edit-error").textContent = "";
  });
  $("render-form").addEventListener("submit", render);
})();
