// #/referral: my invite code and link (copyable), the reward rule in words, the friends I
// invited and the hours earned (GET referral/, referral/invitations/). Hidden where the server
// has no referral endpoints (a 404).

import { optional } from "../api.js";
import { day, empty, failed, h, header, hours, loading, mount, section, t, toast } from "../ui.js";

async function copy(text, input) {
  try {
    await navigator.clipboard.writeText(text);
    toast(t("copied"));
    return;
  } catch (e) {
    // No clipboard API outside a secure context (a phone on the LAN, some WeChat versions).
  }
  input.focus();
  input.select();
  let done = false;
  try {
    done = document.execCommand("copy");
  } catch (e) {
    done = false;
  }
  toast(done ? t("copied") : t("copy_manually"));
}

function invitationRow(row) {
  return h("li", { class: "row" },
    h("div", null,
      h("strong", { text: row.name }),
      h("div", { class: "muted small", text: [day(row.invited_at), row.stage].filter(Boolean).join(" · ") })),
    row.reward_status_display
      ? h("span", { class: "pill ok", text: row.reward_status_display + (row.reward_hours ? " +" + hours(row.reward_hours) : "") })
      : row.signed ? h("span", { class: "pill ok", text: t("signed") }) : null);
}

export async function referralScreen(ctx) {
  loading();
  let mine;
  let invitations;
  try {
    const answers = await Promise.all([optional("referral/"), optional("referral/invitations/")]);
    mine = answers[0];
    invitations = (answers[1] && answers[1].results) || [];
  } catch (error) {
    if (error.status !== 401) failed(error, function () { referralScreen(ctx); });
    return;
  }
  if (!mine) {
    window.location.replace("#/children");
    return;
  }
  const link = h("input", { type: "text", readonly: true, value: mine.link, class: "link", "aria-label": t("referral_link") });
  const copyButton = h("button", { type: "button", class: "button", text: t("copy") });
  copyButton.addEventListener("click", function () { copy(mine.link, link); });
  mount(
    header(t("referral_title")),
    h("section", { class: "card invite-code" },
      h("div", { class: "muted small", text: t("referral_code") }),
      h("div", { class: "code-big", text: mine.code }),
      mine.rule ? h("p", { text: mine.rule }) : null,
      h("label", { class: "muted small", text: t("referral_link") }),
      link,
      copyButton),
    h("section", { class: "card stats" },
      h("div", null, h("span", { class: "big", text: String(mine.invited) }), h("span", { class: "muted small", text: t("referral_invited") })),
      h("div", null, h("span", { class: "big", text: hours(mine.hours_earned) }), h("span", { class: "muted small", text: t("referral_earned") }))),
    section(t("invitations"), invitations.length ? h("ul", { class: "rows" }, invitations.map(invitationRow)) : empty(t("invitations_none")))
  );
}
