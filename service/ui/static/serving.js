// The serving configuration in force (GET /v1/serving) and the templates to pick from
// (GET /v1/templates), shared by the Ask and Compare pages; plus streaming a chat answer.
"use strict";

window.RagtuneServing = (() => {
  const { el, json, request, errorOf, postJSON } = window.Ragtune;

  // {config, templates: ["id@version", ...]}; either may be null when its route failed.
  async function load() {
    const [config, templates] = await Promise.all([
      json("/v1/serving").catch((err) => ({ error: err })),
      json("/v1/templates").catch(() => null),
    ]);
    const refs = templates ? templates.data.flatMap((t) => t.versions.map((v) => `${t.id}@${v}`)) : null;
    return { config: config && !config.error ? config : null, error: config && config.error, templates: refs };
  }

  // The editable values of a configuration, keyed as the pages' fields are.
  function values(config) {
    const r = config.rag;
    return {
      prompt: r.template,
      temperature: r.sampling.temperature,
      top_k: r.sampling.top_k,
      max_tokens: r.sampling.max_tokens,
      mode: r.retrieval.mode,
      k: r.retrieval.k,
    };
  }

  // One line saying what answers with: template, sampling, retrieval, versions and model.
  function describe(config) {
    const v = values(config);
    const r = config.rag.retrieval;
    const promo = config.promotion;
    return `${v.prompt}, temperature ${v.temperature}, top_k ${v.top_k ?? "–"}, max_tokens ${v.max_tokens}, ` +
      `${v.mode} k=${v.k}` + (r.min_score !== null ? ` (min score ${r.min_score})` : "") +
      (v.mode === "hybrid" ? `, fusion ${r.fusion}` : "") + `, window ${r.window_tokens} tokens; ` +
      `serving version ${config.serving_version}` +
      (promo && promo.config ? ` (configuration ${promo.config}${promo.dataset ? " on " + promo.dataset : ""})` : " (settings)") +
      `; model ${config.model} (${config.style}); index version ${config.index_version}.`;
  }

  // Fill a template <select> with every id@version, `current` selected (added if not listed).
  function templateOptions(select, templates, current) {
    const refs = (templates || []).slice();
    if (current && !refs.includes(current)) refs.unshift(current);
    select.replaceChildren(...refs.map((ref) => el("option", { value: ref }, ref)));
    if (current) select.value = current;
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

  // Stream one chat answer: onText(textSoFar) per delta; resolves to the last chunk, with
  // the full text and the client's timings (seconds to the first token and to the end).
  async function stream(body, onText, signal) {
    const t0 = performance.now();
    let firstAt = null;
    let text = "";
    let final = null;
    const resp = await request("/v1/chat/completions", postJSON({ model: "ragtune", stream: true, ...body }, { signal }));
    if (!resp.ok) throw await errorOf(resp);
    for await (const data of sse(resp.body)) {
      if (data === "[DONE]") continue; // read on to the end: the request is over when its body is
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
      if (delta && delta.content) {
        if (firstAt === null) firstAt = performance.now();
        text += delta.content;
        onText(text);
      }
      if (chunk.ragtune) final = chunk;
    }
    if (!final) throw new Error("the stream ended before the answer was complete");
    const end = performance.now();
    return { final, text, client: { first: firstAt === null ? null : (firstAt - t0) / 1000, total: (end - t0) / 1000 } };
  }

  return { load, values, describe, templateOptions, stream };
})();
