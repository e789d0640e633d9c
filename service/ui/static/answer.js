// A finished answer: its text with citation chips, the source pane a chip opens, and the
// provenance panel, all from the chat response's `citations` and `ragtune` fields as sent.
"use strict";

window.RagtuneAnswer = (() => {
  const { el, basename } = window.Ragtune;

  function chip(citation, label) {
    return el("button", {
      type: "button",
      class: "chip" + (citation.supported === false ? " unsupported" : ""),
      "data-cite": citation.index,
      "aria-label": `Source ${citation.index}: ${basename(citation.source)}` +
        (citation.page ? `, page ${citation.page}` : ""),
      "aria-controls": "source-pane",
      onclick: (e) => openSource(citation, e.currentTarget),
    }, label);
  }

  // The answer text with each [n] that names a citation turned into its chip.
  function textWithChips(text, citations) {
    const byIndex = new Map(citations.map((c) => [c.index, c]));
    const out = [];
    let last = 0;
    for (const m of text.matchAll(/\[(\d+)\]/g)) {
      const c = byIndex.get(Number(m[1]));
      if (!c) continue;
      out.push(text.slice(last, m.index), chip(c, `[${c.index}]`));
      last = m.index + m[0].length;
    }
    out.push(text.slice(last));
    return out;
  }

  // The window text with the retrieved spans ([start, end) offsets into it) marked.
  function highlighted(text, spans) {
    const parts = [];
    let at = 0;
    const sorted = (spans || []).map(([s, e]) => [Math.max(0, s), Math.min(text.length, e)])
      .filter(([s, e]) => e > s).sort((a, b) => a[0] - b[0]);
    for (const [s, e] of sorted) {
      if (e <= at) continue;
      const start = Math.max(s, at);
      parts.push(text.slice(at, start), el("mark", {}, text.slice(start, e)));
      at = e;
    }
    parts.push(text.slice(at));
    return parts;
  }

  function meta(pairs) {
    return pairs.filter(([, v]) => v !== null && v !== undefined && v !== "")
      .flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]);
  }

  let opener = null;
  function openSource(c, from) {
    const pane = document.getElementById("source-pane");
    opener = from || null;
    document.getElementById("source-title").textContent = `Source [${c.index}]`;
    document.getElementById("source-meta").replaceChildren(...meta([
      ["Document", el("span", { title: c.source }, basename(c.source))],
      ["Document id", c.doc_id],
      ["Page", c.page],
      ["Heading", c.heading],
      ["Characters", c.start !== undefined && c.end !== undefined ? `${c.start}–${c.end} of the document` : null],
      ["Score", typeof c.score === "number" ? c.score.toFixed(3) : c.score],
      ["Backs the answer", c.supported === undefined ? null : (c.supported ? "yes" : "no")],
    ]));
    document.getElementById("source-text").replaceChildren(...highlighted(c.text || "", c.spans));
    pane.hidden = false;
    pane.focus();
    const mark = pane.querySelector("mark");
    if (mark) mark.scrollIntoView({ block: "nearest" });
  }

  function closeSource() {
    document.getElementById("source-pane").hidden = true;
    if (opener) opener.focus();
  }

  const ms = (s) => `${(s * 1000).toFixed(s < 0.01 ? 1 : 0)} ms`;

  function provenance(info, usage) {
    const p = info.params || {};
    const r = info.retrieval || {};
    const v = info.verification;
    const retrieval = [r.mode, `k=${info.retrieval_k}`,
      r.fusion && `fusion ${r.fusion}`, r.dense_weight !== undefined && `dense weight ${r.dense_weight}`,
      r.mmr_lambda !== undefined && `MMR λ ${r.mmr_lambda}`].filter(Boolean).join(", ");
    const params = [`temperature ${p.temperature}`, `top_p ${p.top_p}`, `top_k ${p.top_k ?? "–"}`,
      `max_tokens ${p.max_tokens}`, `seed ${p.seed ?? "–"}`].join(", ");
    const timings = Object.entries(info.timings || {}).map(([k, s]) => `${k} ${ms(s)}`).join(", ");
    const rows = [
      ["Template", info.prompt],
      ["Retrieval", retrieval],
      ["Parameters", params],
      ["Index version", info.index_version],
      ["Serving version", info.serving_version === 0 ? "0 (settings)" : info.serving_version],
      ["Backend", info.backend],
      ["Timings", timings],
      ["Tokens", usage ? `${usage.prompt_tokens} prompt, ${usage.completion_tokens} completion` : null],
    ];
    if (info.conversation) {
      const c = info.conversation;
      rows.push(["Follow-up searched as", `${c.query} (${c.condense}${c.fallback ? ", " + c.fallback : ""}, ${c.history_turns} earlier turns)`]);
    }
    if (v) {
      rows.push(["Verification", `${v.verdict}: ${Math.round(v.supported_share * 100)}% of sentences supported ` +
        `(min support ${v.min_support}${v.action !== "none" ? ", " + v.action : ""})`]);
    }
    const sentences = v && v.sentences && v.sentences.length ? el("ol", { class: "sentences" },
      v.sentences.map((s) => el("li", { class: s.supported ? "ok" : "weak" },
        `${s.supported ? "✓" : "✗"} ${s.text} — passage ${s.passage ?? "none"}, support ${s.support.toFixed(2)}`))) : null;
    return el("details", { class: "provenance" },
      el("summary", {}, "Provenance"),
      el("dl", { class: "meta" }, meta(rows)),
      sentences);
  }

  function verdict(info) {
    const v = info && info.verification;
    if (!v) return null;
    return el("span", { class: `verdict ${v.verdict}`, title: "How well the passages back the answer" },
      v.verdict);
  }

  // Fill a turn's answer block once the final chunk arrived.
  function render(block, result) {
    const { text, citations, info, usage } = result;
    block.querySelector(".answer-text").replaceChildren(...textWithChips(text, citations));
    const sources = citations.length
      ? el("div", { class: "sources" }, el("span", { class: "muted" }, "Sources:"),
        citations.map((c) => chip(c, `[${c.index}] ${basename(c.source)}${c.page ? " p." + c.page : ""}`)))
      : el("p", { class: "muted" }, "No passage cited.");
    block.append(el("div", { class: "row" }, verdict(info)), sources);
    if (info) block.append(provenance(info, usage));
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("source-close").addEventListener("click", closeSource);
    document.getElementById("source-pane").addEventListener("keydown", (e) => {
      if (e.key === "Escape") closeSource();
    });
  });

  return { render, openSource };
})();
