// A run's report.html inside the Evaluations page. The report route needs the API key, which an
// <iframe src> cannot send, so the page fetches it and shows it through `srcdoc`. A srcdoc
// document inherits this page's Content-Security-Policy, which refuses the report's inline
// <style>, style="" attributes and <script>; rather than loosen the policy, the report is parsed
// inert (DOMParser), its scripts and inline handlers dropped, and its styles applied through the
// CSSOM (a constructed stylesheet and element.style), which the policy does not govern. The frame
// is sandboxed without scripts; the report's two behaviours (in-page links, sortable columns) are
// driven from here.
"use strict";

window.RagtuneReport = (() => {
  const { request, errorOf } = window.Ragtune;
  const DROP = "script, style, link, meta, base, iframe, object, embed, frame, frameset";

  // The report's markup without anything active, and its CSS and style attributes set aside.
  // Styles leave the text before any parsing: even DOMParser checks them against the policy.
  function inert(html) {
    const sheets = [];
    const text = html
      .replace(/<style\b[^>]*>([\s\S]*?)<\/style\s*>/gi, (_, css) => {
        sheets.push(css);
        return "";
      })
      .replace(/(<[^>]*?\s)style(\s*=\s*(?:"[^"]*"|'[^']*'))/gi, "$1data-rt-style$2");
    const doc = new DOMParser().parseFromString(text, "text/html");
    doc.querySelectorAll(DROP).forEach((node) => node.remove());
    for (const node of doc.querySelectorAll("*")) {
      for (const attr of [...node.attributes]) {
        const name = attr.name.toLowerCase();
        if (name === "style" || name.startsWith("on") || /^\s*javascript:/i.test(attr.value)) {
          node.removeAttribute(attr.name);
        }
      }
    }
    return { markup: "<!doctype html>" + doc.documentElement.outerHTML, css: sheets.join("\n") };
  }

  function sortBy(th) {
    const table = th.closest("table");
    const body = table.tBodies[0];
    const col = th.cellIndex;
    const up = th.getAttribute("data-dir") !== "asc";
    const num = th.getAttribute("data-sort") === "n";
    th.setAttribute("data-dir", up ? "asc" : "desc");
    const key = (row) => {
      const v = row.cells[col] && row.cells[col].getAttribute("data-v");
      return v === null || v === undefined || v === "" ? null : num ? parseFloat(v) : v;
    };
    [...body.rows].sort((a, b) => {
      const x = key(a);
      const y = key(b);
      if (x === null || y === null) return x === y ? 0 : x === null ? 1 : -1;
      const c = num ? x - y : String(x).localeCompare(String(y));
      return up ? c : -c;
    }).forEach((row) => body.appendChild(row));
  }

  function dress(frame, css) {
    const doc = frame.contentDocument;
    if (!doc) return;
    const sheet = new frame.contentWindow.CSSStyleSheet();
    sheet.replaceSync(css);
    doc.adoptedStyleSheets = [sheet];
    doc.querySelectorAll("[data-rt-style]").forEach((node) => {
      node.style.cssText = node.getAttribute("data-rt-style");
    });
    doc.addEventListener("click", (e) => {
      const link = e.target.closest("a[href]");
      if (link) {
        e.preventDefault(); // a srcdoc's links resolve against this page: keep them in the report
        const href = link.getAttribute("href");
        const target = href.startsWith("#") ? doc.getElementById(decodeURIComponent(href.slice(1))) : null;
        if (target) target.scrollIntoView();
        return;
      }
      const th = e.target.closest("th[data-sort]");
      if (th) sortBy(th);
    });
  }

  // Fetch `url` with the key and show it in `frame`; resolves to the report's HTML text.
  async function show(frame, url) {
    const resp = await request(url);
    if (!resp.ok) throw await errorOf(resp);
    const html = await resp.text();
    const { markup, css } = inert(html);
    await new Promise((resolve) => {
      frame.addEventListener("load", function onLoad() {
        frame.removeEventListener("load", onLoad);
        dress(frame, css);
        resolve();
      });
      frame.srcdoc = markup;
      frame.hidden = false;
    });
    return html;
  }

  // Save the report as its own file, where its styles and script run as written.
  function download(html, name) {
    const url = URL.createObjectURL(new Blob([html], { type: "text/html" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  return { show, download };
})();
