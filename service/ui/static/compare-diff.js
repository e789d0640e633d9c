// What differs between the Compare page's columns: the passages each answer read (from the
// chat response's `ragtune.passages`) and the settings, as an evaluation sweep's axes.
"use strict";

window.RagtuneCompare = (() => {
  const { el, basename } = window.Ragtune;

  // A passage is its document, its best chunk and the window's offsets, as citations give them.
  const passageKey = (p) => `${p.doc_id}#${p.chunk_id}@${p.start ?? ""}-${p.end ?? ""}`;

  // Per column (its passages, or null while it has no answer), the keys of its passages that some
  // other answered column did not read. Nothing differs until two columns have answers.
  function differing(columns) {
    const sets = columns.map((ps) => (ps ? new Set(ps.map(passageKey)) : null));
    const answered = sets.filter(Boolean).length;
    return columns.map((ps, i) => {
      if (!ps || answered < 2) return new Set();
      return new Set(ps.map(passageKey).filter((k) => sets.some((s, j) => j !== i && s && !s.has(k))));
    });
  }

  // The columns' fields and the tunables (settings paths) a sweep names them by.
  const AXES = [
    ["prompt", "rag.template"],
    ["temperature", "rag.sampling.temperature"],
    ["top_k", "rag.sampling.top_k"],
    ["mode", "rag.retrieval.mode"],
    ["k", "rag.retrieval.k"],
  ];

  // One axis per setting whose value is not the same in every column: its distinct values in
  // column order. An unset value (top_k left to the backend) is left out: a sweep file has no null.
  function axes(configs) {
    const out = {};
    for (const [field, path] of AXES) {
      const distinct = [...new Set(configs.map((c) => JSON.stringify(c[field] ?? null)))];
      if (distinct.length < 2) continue;
      const values = distinct.map((v) => JSON.parse(v)).filter((v) => v !== null);
      if (values.length) out[path] = values;
    }
    return out;
  }

  // The Evaluations page with the sweep filled in (it reads `dataset` and `axes`).
  function sweepUrl(root, dataset, chosen) {
    return `${root}/ui/evaluations?dataset=${encodeURIComponent(dataset)}&axes=${encodeURIComponent(JSON.stringify(chosen))}`;
  }

  // The list of passages a column's answer read; a cited one opens the source pane.
  function passageList(passages, citations) {
    const cited = new Map((citations || []).map((c) => [c.index, c]));
    if (!passages || !passages.length) {
      return el("p", { class: "muted" }, passages ? "No passage retrieved." : "This server does not list the passages read.");
    }
    return el("ol", { class: "passage-refs" }, passages.map((p) => {
      const c = cited.get(p.index);
      const label = `[${p.index}]`;
      const where = [basename(p.source) + (p.page ? ` p.${p.page}` : ""), p.heading].filter(Boolean).join(" › ");
      const span = p.start !== undefined && p.end !== undefined ? `chars ${p.start}–${p.end}` : `chunk ${p.chunk_id}`;
      return el("li", { "data-key": passageKey(p), "data-index": p.index },
        c ? el("button", {
          type: "button", class: "chip", "aria-controls": "source-pane",
          "aria-label": `Source ${p.index}: ${basename(p.source)}`,
          onclick: (e) => window.RagtuneAnswer.openSource(c, e.currentTarget),
        }, label) : el("span", { class: "ref", title: "Not cited" }, label),
        " ", el("span", { title: p.source }, where),
        el("span", { class: "muted" }, ` · ${span} · score ${Number(p.score).toFixed(3)}`),
        " ", el("span", { class: "differs-tag", hidden: true }, "differs"));
    }));
  }

  // Mark each shown passage that differs; `lists[i]` is column i's list element (or null).
  function mark(lists, keys) {
    lists.forEach((list, i) => {
      if (!list) return;
      for (const li of list.querySelectorAll("li[data-key]")) {
        const differs = keys[i].has(li.dataset.key);
        li.classList.toggle("differs", differs);
        li.querySelector(".differs-tag").hidden = !differs;
      }
    });
  }

  return { passageKey, differing, axes, sweepUrl, passageList, mark };
})();
