// #/satisfaction: the question for each child it is due for (GET satisfaction/), a 0-10 score
// and a reason (POST children/<id>/satisfaction/). The section hides itself on a server
// without these endpoints (a 404).

import { api, newKey, optional } from "../api.js";
import { busy, clearErrors, empty, failed, field, h, header, loading, mount, section, showErrors, t, toast } from "../ui.js";

export async function satisfactionDue(ctx) {
  const sections = await ctx.sections();
  if (!sections.satisfaction) return [];
  const page = await optional("satisfaction/");
  return (page && page.results) || [];
}

function questionForm(due, done) {
  let key = newKey();
  const min = due.score_min === undefined ? 0 : due.score_min;
  const max = due.score_max === undefined ? 10 : due.score_max;
  const name = "score-" + due.student.id;
  const scores = h("div", { class: "scores", role: "radiogroup" });
  for (let score = min; score <= max; score += 1) {
    const input = h("input", { type: "radio", name: name, value: String(score), id: name + "-" + score });
    scores.appendChild(h("span", { class: "score" }, input, h("label", { for: input.id, text: String(score) })));
  }
  scores.addEventListener("change", function () {
    form.querySelector('.field-error[data-for="score"]').textContent = "";
  });
  const reason = h("textarea", { rows: "3", maxlength: "2000" });
  const submit = h("button", { type: "submit", class: "button", text: t("satisfaction_submit") });
  const form = h("form", { class: "card", novalidate: true },
    h("h2", { text: due.student.name }),
    h("p", { text: due.question }),
    h("p", { class: "form-error", role: "alert" }),
    scores,
    h("div", { class: "scale muted small" }, h("span", { text: t("satisfaction_not_likely") }), h("span", { text: t("satisfaction_very_likely") })),
    h("p", { class: "field-error", "data-for": "score", role: "alert" }),
    field("reason", due.reason_prompt, reason),
    submit);
  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    clearErrors(form);
    const picked = form.querySelector('input[name="' + name + '"]:checked');
    if (!picked) {
      form.querySelector('.field-error[data-for="score"]').textContent = t("satisfaction_pick");
      return;
    }
    busy(submit, true);
    try {
      await api("children/" + due.student.id + "/satisfaction/", {
        method: "POST", body: { score: Number(picked.value), reason: reason.value }, key: key,
      });
      key = newKey();
      toast(t("satisfaction_thanks"));
      done();
    } catch (error) {
      showErrors(form, error);
      busy(submit, false);
    }
  });
  return form;
}

export async function satisfactionScreen(ctx) {
  loading();
  let due;
  try {
    due = await satisfactionDue(ctx);
  } catch (error) {
    if (error.status !== 401) failed(error, function () { satisfactionScreen(ctx); });
    return;
  }
  const again = function () { satisfactionScreen(ctx); };
  mount(
    header(t("satisfaction_title")),
    due.length ? due.map(function (item) { return questionForm(item, again); }) : section(null, empty(t("satisfaction_none")))
  );
}
