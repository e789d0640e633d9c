// The Prompts page: templates and their versions (GET /v1/templates), one version's YAML, and a
// diff between two versions (GET /v1/templates/{id}/diff). prompt-edit.js adds the preview and
// the editor; both follow the selection through window.RagtunePrompts.
"use strict";

window.RagtunePrompts = (() => {
  const { el, json } = window.Ragtune;
  const $ = (id) => document.getElementById(id);
  const listeners = [];
  const state = { templates: [], current: null, version: null };
  const enc = encodeURIComponent;

  function option(v, selected) {
    return el("option", { value: v, selected: v === selected }, `version ${v}`);
  }

  function listItem(t) {
    const pressed = state.current && state.current.id === t.id;
    return el("li", {},
      el("button", {
        type: "button", class: "pick", "data-template": t.id, "aria-pressed": pressed ? "true" : "false",
        onclick: () => select(t.id),
      },
      el("span", { class: "pick-name" }, t.id),
      el("span", { class: "muted" }, ` ${t.versions.length} version${t.versions.length === 1 ? "" : "s"}, latest ${t.latest}`),
      t.description ? el("span", { class: "pick-desc" }, t.description) : null));
  }

  // Reload the list; keep (or move to) `id`, at `version` (else its latest).
  async function load(id, version) {
    const status = $("tpl-status");
    try {
      const body = await json("/v1/templates");
      state.templates = body.data;
      status.textContent = body.data.length ? "" : "No templates.";
      const keep = id || (state.current && state.current.id) || (body.data[0] && body.data[0].id);
      if (keep) await select(keep, version);
      else $("tpl-list").replaceChildren();
    } catch (err) {
      status.textContent = `Could not list templates: ${err.message}`;
    }
  }

  async function select(id, version) {
    const t = state.templates.find((x) => x.id === id);
    if (!t) return;
    state.current = t;
    $("tpl-list").replaceChildren(...state.templates.map(listItem));
    $("tpl-detail").hidden = false;
    const v = version || t.latest;
    $("ver-select").replaceChildren(...t.versions.map((n) => option(n, v)));
    const older = t.versions.length > 1 ? t.versions[t.versions.length - 2] : t.versions[0];
    $("diff-from").replaceChildren(...t.versions.map((n) => option(n, older)));
    $("diff-to").replaceChildren(...t.versions.map((n) => option(n, t.latest)));
    $("diff-view").hidden = true;
    $("diff-status").textContent = "";
    await show(v);
    for (const fn of listeners) fn(t);
  }

  async function show(version) {
    const t = state.current;
    state.version = Number(version);
    $("ver-title").textContent = `${t.id}@${version}`;
    try {
      const v = await json(`/v1/templates/${enc(t.id)}/versions/${enc(version)}`);
      const meta = [["Style", v.style], ["Origin", v.builtin ? "built in" : "added (HOME/prompts)"],
        ["Description", v.description || "–"]];
      $("ver-meta").replaceChildren(...meta.flatMap(([k, val]) => [el("dt", {}, k), el("dd", {}, val)]));
      $("ver-source").textContent = v.source;
    } catch (err) {
      $("ver-source").textContent = `Could not read ${t.id}@${version}: ${err.message}`;
    }
  }

  async function showDiff(e) {
    e.preventDefault();
    const t = state.current;
    const from = $("diff-from").value;
    const to = $("diff-to").value;
    const status = $("diff-status");
    const view = $("diff-view");
    try {
      const body = await json(`/v1/templates/${enc(t.id)}/diff?from=${enc(from)}&to=${enc(to)}`);
      if (!body.diff) {
        view.hidden = true;
        status.textContent = `Versions ${from} and ${to} are identical.`;
        return;
      }
      const { node, added, removed } = window.RagtuneDiff.render(body.diff);
      view.replaceChildren(node);
      view.hidden = false;
      status.textContent = `${t.id}: version ${from} → ${to}, ${added} line(s) added, ${removed} removed.`;
    } catch (err) {
      view.hidden = true;
      status.textContent = `Could not diff: ${err.message}`;
    }
  }

  $("ver-select").addEventListener("change", (e) => show(e.target.value));
  $("diff-form").addEventListener("submit", showDiff);
  load();

  return {
    state,
    load,
    onSelect: (fn) => listeners.push(fn),
  };
})();
