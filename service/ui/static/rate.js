// Feedback on one answer: thumbs up at once, or thumbs down with a comment, a corrected answer
// and a "wrong citation" flag, posted to POST /v1/feedback for the eval loop.
"use strict";

window.RagtuneRate = (() => {
  const { el, json, postJSON } = window.Ragtune;
  let counter = 0;

  // Only what the user gave: empty text fields and an unset flag are left out of the body.
  function body(responseId, rating, comment, corrected, wrongCitation) {
    const out = { response_id: responseId, rating };
    if (comment) out.comment = comment;
    if (corrected) out.corrected_answer = corrected;
    if (wrongCitation) out.wrong_citation = true;
    return out;
  }

  function controls(responseId) {
    const n = ++counter;
    const status = el("span", { class: "muted", role: "status" });
    const comment = el("textarea", { id: `fb-comment-${n}`, rows: 2 });
    const corrected = el("textarea", { id: `fb-corrected-${n}`, rows: 3 });
    const wrong = el("input", { type: "checkbox", id: `fb-wrong-${n}` });
    const glyph = (g) => el("span", { "aria-hidden": "true" }, g + " ");
    const up = el("button", { type: "button", class: "thumb", "aria-pressed": "false" }, glyph("▲"), "Thumbs up");
    const down = el("button", { type: "button", class: "thumb", "aria-pressed": "false", "aria-expanded": "false", "aria-controls": `fb-form-${n}` }, glyph("▼"), "Thumbs down");
    const send = el("button", { type: "submit", class: "primary" }, "Send feedback");
    const form = el("form", { class: "fb-form", id: `fb-form-${n}`, hidden: true, "aria-label": "What was wrong" },
      el("div", { class: "check" }, wrong, el("label", { for: wrong.id }, "Wrong citation (a [n] points at the wrong passage)")),
      el("label", { for: corrected.id }, "Corrected answer"), corrected,
      el("label", { for: comment.id }, "Comment"), comment,
      el("div", { class: "row" }, send));

    async function post(rating) {
      status.textContent = "Sending…";
      try {
        const saved = await json("/v1/feedback", postJSON(
          body(responseId, rating, comment.value.trim(), corrected.value.trim(), rating === "down" && wrong.checked)));
        status.textContent = `Thanks: feedback #${saved.id} saved.`;
        up.setAttribute("aria-pressed", String(rating === "up"));
        down.setAttribute("aria-pressed", String(rating === "down"));
        if (rating === "down") form.hidden = true;
        down.setAttribute("aria-expanded", "false");
      } catch (err) {
        status.textContent = `Not saved: ${err.message}`;
      }
    }

    up.addEventListener("click", () => post("up"));
    down.addEventListener("click", () => {
      form.hidden = !form.hidden;
      down.setAttribute("aria-expanded", String(!form.hidden));
      if (!form.hidden) corrected.focus();
    });
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      post("down");
    });
    return el("div", { class: "feedback" },
      el("div", { class: "row" }, el("span", { class: "muted" }, "Was this answer right?"), up, down, status), form);
  }

  return { controls, body };
})();
