// The Ask page: a conversation with the server, each answer streamed (SSE over fetch), then
// rendered with its citations, provenance and feedback controls; the configuration in force is
// shown and its values fill the fields before the first question.
"use strict";

(() => {
  const { el } = window.Ragtune;
  const Serving = window.RagtuneServing;
  const turns = []; // finished exchanges: {question, answer}, sent back as the history
  let served = null; // the values in force (GET /v1/serving), as the fields hold them
  let controller = null;

  const $ = (id) => document.getElementById(id);
  const num = (id) => ($(id).value === "" ? undefined : Number($(id).value));
  // Whether a field's value is the one in force (an empty field and an unset value are alike).
  const same = (value, inForce) => (value === undefined || value === "" ? inForce === null || inForce === undefined : value === inForce);

  // The request's tunables: only fields that differ from the values in force (without those,
  // fields the user set); the rest take the server's values.
  function overrides() {
    const want = {
      prompt: $("cfg-prompt").value.trim() || undefined,
      temperature: num("cfg-temperature"),
      top_k: num("cfg-top-k"),
      max_tokens: num("cfg-max-tokens"),
      mode: $("cfg-mode").value || undefined,
      k: num("cfg-k"),
    };
    const changed = (name) => want[name] !== undefined && !(served && same(want[name], served[name]));
    const body = {};
    for (const name of ["prompt", "temperature", "top_k", "max_tokens"]) {
      if (changed(name)) body[name] = want[name];
    }
    const retrieval = {};
    if (changed("mode")) retrieval.mode = want.mode;
    if (changed("k")) retrieval.k = want.k;
    if (Object.keys(retrieval).length) body.retrieval = retrieval;
    return body;
  }

  // Show the configuration in force and put its values in the fields.
  async function loadServing() {
    $("cfg-fill").disabled = true;
    const { config, templates, error } = await Serving.load();
    $("cfg-fields").disabled = false; // fields are read only until then: nothing typed is overwritten
    if (!config) {
      Serving.templateOptions($("cfg-prompt"), templates, null);
      $("cfg-prompt").prepend(el("option", { value: "" }, "server default"));
      $("cfg-prompt").value = "";
      $("in-force").textContent = `The configuration in force is unknown (${error ? error.message : "no answer"}).`;
      return;
    }
    served = Serving.values(config);
    $("in-force").textContent = `In force: ${Serving.describe(config)}`;
    Serving.templateOptions($("cfg-prompt"), templates, served.prompt);
    $("cfg-temperature").value = served.temperature;
    $("cfg-top-k").value = served.top_k ?? "";
    $("cfg-max-tokens").value = served.max_tokens;
    $("cfg-mode").value = served.mode;
    $("cfg-k").value = served.k;
    $("cfg-fill").disabled = false;
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
    try {
      const { final, text } = await Serving.stream({ messages, ...overrides() },
        (sofar) => { view.text.textContent = sofar; }, controller.signal);
      view.block.setAttribute("aria-busy", "false");
      window.RagtuneAnswer.render(view.block, { text, citations: final.citations || [], info: final.ragtune, usage: final.usage });
      view.block.append(window.RagtuneRate.controls(final.id));
      view.item.dataset.responseId = final.id;
      turns.push({ question, answer: text });
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
  $("cfg-fill").addEventListener("click", loadServing);
  showModel();
  loadServing();
})();
