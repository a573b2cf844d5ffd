// #/login: the phone, an SMS code, the tokens.

import { ApiError, api, keepTokens } from "../api.js";
import { busy, clearErrors, field, h, mount, showErrors, t } from "../ui.js";

export function loginScreen(ctx) {
  const phone = h("input", {
    type: "tel", inputmode: "tel", autocomplete: "tel", placeholder: t("phone_placeholder"), maxlength: "20", required: true,
  });
  const code = h("input", {
    type: "text", inputmode: "numeric", autocomplete: "one-time-code", pattern: "[0-9]*", maxlength: "6",
    placeholder: t("code_placeholder"), required: true,
  });
  const send = h("button", { type: "button", class: "button secondary code-button", text: t("code_send") });
  const sent = h("p", { class: "hint", role: "status" });
  const submit = h("button", { type: "submit", class: "button", text: t("login_submit") });
  const form = h(
    "form",
    { class: "card", novalidate: true },
    h("p", { class: "form-error", role: "alert" }),
    field("phone", t("phone"), phone),
    h("div", { class: "code-row" }, field("code", t("code"), code), send),
    sent,
    submit
  );
  let timer = null;

  function countdown(seconds) {
    clearInterval(timer);
    let left = seconds;
    send.disabled = true;
    send.textContent = t("code_resend_in", left);
    timer = setInterval(function () {
      left -= 1;
      if (left <= 0 || !document.body.contains(send)) {
        clearInterval(timer);
        send.disabled = false;
        send.textContent = t("code_send");
      } else {
        send.textContent = t("code_resend_in", left);
      }
    }, 1000);
  }

  send.addEventListener("click", async function () {
    clearErrors(form);
    busy(send, true);
    try {
      const answer = await api("auth/code/", { method: "POST", body: { phone: phone.value }, auth: false });
      sent.textContent = t("code_sent", answer.phone);
      countdown(answer.resend_in);
      code.focus();
    } catch (error) {
      busy(send, false);
      showErrors(form, error);
      // Asked too soon: the API says how long to wait.
      if (error instanceof ApiError && error.status === 429) countdown(30);
    } finally {
      send.classList.remove("busy");
    }
  });

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    clearErrors(form);
    busy(submit, true);
    try {
      const tokens = await api("auth/login/", {
        method: "POST", body: { phone: phone.value, code: code.value }, auth: false,
      });
      keepTokens(tokens);
      ctx.reset();
      window.location.hash = "#/children";
    } catch (error) {
      showErrors(form, error);
      busy(submit, false);
    }
  });

  mount(
    h("header", { class: "hero" }, h("h1", { text: t("login_title") }), h("p", { text: t("login_intro") })),
    form
  );
  phone.focus();
}
