// The Ask page: a conversation with the server, each answer streamed (SSE over fetch), then
// rendered with its citations, provenance and feedback controls.
"use strict";

(() => {
  const { el, request, errorOf, postJSON } = window.Ragtune;
  const turns = []; // finished exchanges: {question, answer}, sent back as the history
  let inForce = null; // the last answer's provenance: the serving configuration it ran under
  let controller = null;

  const $ = (id) => document.getElementById(id);
  const num = (id) => ($(id).value === "" ? undefined : Number($(id).value));

  // The request's tunables: only fields the user set; the rest take the server's values.
  function overrides() {
    const body = {};
    const prompt = $("cfg-prompt").value.trim();
    if (prompt) body.prompt = prompt;
    for (const [id, field] of [["cfg-temperature", "temperature"], ["cfg-top-k", "top_k"], ["cfg-max-tokens", "max_tokens"]]) {
      if (num(id) !== undefined) body[field] = num(id);
    }
    const retrieval = {};
    if ($("cfg-mode").value) retrieval.mode = $("cfg-mode").value;
    if (num("cfg-k") !== undefined) retrieval.k = num("cfg-k");
    if (Object.keys(retrieval).length) body.retrieval = retrieval;
    return body;
  }

  function showInForce(info) {
    inForce = info;
    const p = info.params;
    $("in-force").textContent = `In force for the last answer: ${info.prompt}, temperature ${p.temperature}, ` +
      `top_k ${p.top_k ?? "–"}, max_tokens ${p.max_tokens}, ${info.retrieval.mode} k=${info.retrieval_k}` +
      `, serving version ${info.serving_version}.`;
    $("cfg-fill").disabled = false;
  }

  function fillInForce() {
    if (!inForce) return;
    $("cfg-prompt").value = inForce.prompt;
    $("cfg-temperature").value = inForce.params.temperature;
    $("cfg-top-k").value = inForce.params.top_k ?? "";
    $("cfg-max-tokens").value = inForce.params.max_tokens;
    $("cfg-mode").value = inForce.retrieval.mode;
    $("cfg-k").value = inForce.retrieval_k;
  }

  // Server-sent events from a fetch body: yields each event's data (its `data:` lines joined).
  async function* sse(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
      let cut;
      while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
        const data = event.split(/\r?\n/).filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
        if (data) yield data;
      }
      if (done) return;
    }
  }

  function turnElement(question) {
    const text = el("div", { class: "answer-text" });
    const block = el("div", { class: "answer", "aria-busy": "true" }, text);
    const item = el("li", { class: "turn" },
      el("p", { class: "question" }, el("span", { class: "sr-only" }, "You asked: "), question),
      block);
    $("turns").append(item);
    return { item, block, text };
  }

  async function ask(question) {
    const view = turnElement(question);
    const messages = turns.flatMap((t) => [{ role: "user", content: t.question }, { role: "assistant", content: t.answer }]);
    messages.push({ role: "user", content: question });
    controller = new AbortController();
    busy(true);
    let text = "";
    let final = null;
    try {
      const resp = await request("/v1/chat/completions",
        postJSON({ model: "ragtune", messages, stream: true, ...overrides() }, { signal: controller.signal }));
      if (!resp.ok) throw await errorOf(resp);
      for await (const data of sse(resp.body)) {
        if (data === "[DONE]") break;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
        if (delta && delta.content) {
          text += delta.content;
          view.text.textContent = text;
        }
        if (chunk.ragtune) final = chunk;
      }
      if (!final) throw new Error("the stream ended before the answer was complete");
      view.block.setAttribute("aria-busy", "false");
      window.RagtuneAnswer.render(view.block, { text, citations: final.citations || [], info: final.ragtune, usage: final.usage });
      view.block.append(window.RagtuneRate.controls(final.id));
      view.item.dataset.responseId = final.id;
      turns.push({ question, answer: text });
      showInForce(final.ragtune);
      $("ask-status").textContent = "Answered.";
    } catch (err) {
      view.block.setAttribute("aria-busy", "false");
      const stopped = err.name === "AbortError";
      view.block.append(el("p", { class: stopped ? "muted" : "error", role: stopped ? null : "alert" },
        stopped ? "Stopped." : `Error: ${err.message}`));
      $("ask-status").textContent = stopped ? "Stopped." : "Failed.";
    } finally {
      controller = null;
      busy(false);
    }
  }

  function busy(on) {
    $("ask-button").disabled = on;
    $("stop-button").hidden = !on;
    if (on) $("ask-status").textContent = "Answering…";
  }

  async function showModel() {
    try {
      const models = await window.Ragtune.json("/v1/models");
      $("model-name").textContent = models.data.length ? `Model: ${models.data[0].id}` : "";
    } catch (err) {
      $("model-name").textContent = `Model unknown (${err.message})`;
    }
  }

  $("ask-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const question = $("question").value.trim();
    if (!question || controller) return;
    $("question").value = "";
    ask(question);
  });
  $("question").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $("ask-form").requestSubmit();
    }
  });
  $("stop-button").addEventListener("click", () => controller && controller.abort());
  $("new-conversation").addEventListener("click", () => {
    turns.length = 0;
    $("turns").replaceChildren();
    $("source-pane").hidden = true;
    $("question").focus();
  });
  $("cfg-fill").addEventListener("click", fillInForce);
  showModel();
})();
