// A unified diff as lines the eye can scan: added, removed, hunk headers and context, each line
// a node of its own (text only) with a +/- marker that does not depend on colour.
"use strict";

window.RagtuneDiff = (() => {
  const { el } = window.Ragtune;

  function kind(line) {
    if (line.startsWith("+++") || line.startsWith("---")) return "file";
    if (line.startsWith("@@")) return "hunk";
    if (line.startsWith("+")) return "add";
    if (line.startsWith("-")) return "del";
    if (line.startsWith("\\")) return "note";
    return "ctx";
  }

  const LABEL = { add: "added", del: "removed", hunk: "", file: "", note: "", ctx: "" };

  // Returns {node, added, removed}: a block of one <div class="line"> per diff line.
  function render(text) {
    const lines = String(text || "").replace(/\n$/, "").split("\n");
    let added = 0;
    let removed = 0;
    const rows = lines.map((line) => {
      const k = kind(line);
      if (k === "add") added++;
      if (k === "del") removed++;
      const body = k === "add" || k === "del" || k === "ctx" ? line.slice(1) : line;
      const mark = k === "add" ? "+" : k === "del" ? "−" : k === "ctx" ? " " : "";
      return el("div", { class: `line ${k}`, "data-kind": k },
        el("span", { class: "mark", "aria-hidden": "true" }, mark),
        LABEL[k] ? el("span", { class: "sr-only" }, LABEL[k] + ": ") : null,
        el("span", { class: "text" }, body));
    });
    return { node: el("div", { class: "diff-lines" }, rows), added, removed };
  }

  return { render };
})();
