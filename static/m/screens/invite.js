// #/invite/<code>: the public landing page of a parent's invite link (no login): who invites,
// to which campus, and a form for the friend's phone and child (GET invites/<code>/,
// POST invites/<code>/lead/).

import { api, newKey } from "../api.js";
import { busy, clearErrors, failed, field, h, loading, mount, showErrors, t } from "../ui.js";

export async function inviteScreen(code) {
  loading();
  let invite;
  try {
    invite = await api("invites/" + encodeURIComponent(code) + "/", { auth: false });
  } catch (error) {
    if (error.status === 404) {
      mount(h("header", { class: "hero" }, h("h1", { text: t("invite_title") })),
        h("section", { class: "card" }, h("p", { text: t("invite_unknown") })));
    } else {
      failed(error, function () { inviteScreen(code); });
    }
    return;
  }
  const key = newKey(); // this page's one lead, reused if the parent presses again after an error
  const phone = h("input", { type: "tel", inputmode: "tel", autocomplete: "tel", maxlength: "20", placeholder: t("phone_placeholder") });
  const child = h("input", { type: "text", maxlength: "50" });
  const guardian = h("input", { type: "text", maxlength: "50", autocomplete: "name" });
  const note = h("textarea", { rows: "3", maxlength: "2000" });
  const submit = h("button", { type: "submit", class: "button", text: t("invite_submit") });
  const form = h("form", { class: "card", novalidate: true },
    h("p", { class: "form-error", role: "alert" }),
    field("student_name", t("invite_child"), child),
    field("guardian_name", t("invite_guardian"), guardian),
    field("phone", t("phone"), phone),
    field("note", t("invite_note"), note),
    submit);
  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    clearErrors(form);
    busy(submit, true);
    try {
      const thanks = await api("invites/" + encodeURIComponent(code) + "/lead/", {
        method: "POST",
        auth: false,
        key: key,
        body: { phone: phone.value, student_name: child.value, guardian_name: guardian.value, note: note.value },
      });
      form.replaceWith(h("section", { class: "card done", role: "status" }, h("p", { text: thanks.detail })));
    } catch (error) {
      showErrors(form, error);
      busy(submit, false);
    }
  });
  mount(
    h("header", { class: "hero" },
      h("h1", { text: t("invite_title") }),
      h("p", { text: t("invite_from", invite.inviter, invite.campus) })),
    form
  );
}
