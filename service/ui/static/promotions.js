// The Evaluations page's serving configuration: promotion history (GET /v1/eval/promotions),
// promote a run's configuration (POST /v1/eval/promotions) and roll back (POST /v1/eval/rollback),
// each after a confirmation dialog.
"use strict";

window.RagtunePromotions = (() => {
  const { el, json, postJSON, when, basename } = window.Ragtune;
  const $ = (id) => document.getElementById(id);
  let current = 0;
  let records = [];

  // Nested parameters ({retrieval: {k: 3}}) as "retrieval.k=3, …".
  function flat(params, prefix) {
    return Object.entries(params || {}).flatMap(([k, v]) => (v && typeof v === "object" && !Array.isArray(v)
      ? flat(v, `${prefix}${k}.`) : [`${prefix}${k}=${v === null ? "default" : v}`]));
  }

  function paramsCell(items) {
    return el("details", {}, el("summary", {}, `${items.length} parameters`), items.join(", "));
  }

  function row(r) {
    return el("tr", { "data-version": r.version, class: r.current ? "current" : null },
      el("td", { class: "num" }, r.version, r.current ? el("span", { class: "badge in-force" }, "in force") : null),
      el("td", {}, when(r.created)),
      el("td", { class: "path" }, basename(r.run)),
      el("td", {}, r.config || ""),
      el("td", { class: "params" }, paramsCell(flat(r.params, ""))));
  }

  async function load() {
    const status = $("serving-status");
    try {
      const body = await json("/v1/eval/promotions");
      current = body.current_version;
      records = body.data;
      $("promo-table").tBodies[0].replaceChildren(...records.slice().reverse().map(row));
      $("promo-table").hidden = records.length === 0;
      status.dataset.version = String(current);
      status.textContent = current
        ? `Serving version ${current} is in force (a promoted configuration).`
        : "Serving version 0: the settings' own configuration (nothing promoted).";
      $("rollback").disabled = !current;
    } catch (err) {
      status.textContent = `Could not read the promotions: ${err.message}`;
    }
  }

  // Resolves the dialog's returnValue once it closes; focus goes back to `opener`.
  function confirm(id, opener) {
    const dialog = $(id);
    dialog.returnValue = "";
    return new Promise((resolve) => {
      dialog.addEventListener("close", function onClose() {
        dialog.removeEventListener("close", onClose);
        if (opener) opener.focus();
        resolve(dialog.returnValue);
      });
      dialog.showModal();
    });
  }

  async function promote(runId, config, opener) {
    $("promote-what").textContent = `Configuration ${config.label || config.id} of run ${runId} ` +
      `becomes the serving configuration (version ${Math.max(0, ...records.map((r) => r.version)) + 1}).`;
    if ((await confirm("promote-dialog", opener)) !== "promote") return null;
    const status = $("serving-status");
    status.textContent = "Promoting…";
    try {
      const record = await json("/v1/eval/promotions", postJSON({ run_id: runId, config_id: config.id }));
      await load();
      status.textContent = `Promoted ${config.id}: serving version ${record.serving_version} is in force.`;
      return record;
    } catch (err) {
      status.textContent = `Could not promote: ${err.message}`;
      return null;
    }
  }

  async function rollback() {
    const before = records.find((r) => r.version === current);
    $("rollback-what").textContent = `Serving version ${current}${before ? ` (${before.config})` : ""} ` +
      "stops, and the configuration served before it answers again.";
    if ((await confirm("rollback-dialog", $("rollback"))) !== "rollback") return;
    const status = $("serving-status");
    try {
      const body = await json("/v1/eval/rollback", { method: "POST" });
      await load();
      status.textContent = `Rolled back: serving version ${body.serving_version} is in force.`;
    } catch (err) {
      status.textContent = `Could not roll back: ${err.message}`;
    }
  }

  $("rollback").addEventListener("click", rollback);
  load();
  return { load, promote };
})();
