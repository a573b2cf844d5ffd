// #/settings: who is logged in, the message preferences (each switch with the words the
// proof records), unsubscribe from all, the family's data, logout.

import { ApiError, api, forgetTokens } from "../api.js";
import { busy, failed, h, header, loading, mount, section, t, toast } from "../ui.js";

function preferenceRow(channel, onChange) {
  const input = h("input", {
    type: "checkbox", role: "switch", id: "pref-" + channel.channel, name: channel.channel, checked: channel.granted,
  });
  input.addEventListener("change", function () { onChange(channel.channel, input.checked, input); });
  return h("li", { class: "switch-row" },
    h("label", { for: input.id },
      h("strong", null, channel.label,
        h("span", { class: channel.granted ? "state on" : "state muted", text: channel.granted ? t("switch_on") : t("switch_off") })),
      // The API's words are what a tap records (the proof keeps them verbatim), so they are
      // introduced as the tap's meaning, not as the current state.
      h("span", { class: "muted small wording", text: t(channel.granted ? "tap_off_means" : "tap_on_means", channel.wording) })),
    h("span", { class: "switch" }, input, h("span", { class: "slider", "aria-hidden": "true" })));
}

function preferencesSection(body) {
  const list = h("ul", { class: "rows" });
  const note = h("p", { class: "muted small" });
  const unsubscribe = h("button", { type: "button", class: "button secondary danger", text: t("unsubscribe_all") });

  function draw(prefs) {
    list.textContent = "";
    prefs.channels.forEach(function (channel) { list.appendChild(preferenceRow(channel, change)); });
    note.textContent = prefs.note;
  }

  async function change(channel, granted, input) {
    input.disabled = true;
    const patch = {};
    patch[channel] = granted;
    try {
      draw(await api("preferences/", { method: "PATCH", body: patch }));
      toast(t("preferences_saved"));
    } catch (error) {
      input.checked = !granted;
      input.disabled = false;
      if (error.status !== 401) toast(error.message || t("error_generic"));
    }
  }

  unsubscribe.addEventListener("click", async function () {
    if (!window.confirm(t("unsubscribe_confirm"))) return;
    busy(unsubscribe, true);
    try {
      draw(await api("preferences/unsubscribe/", { method: "POST" }));
      toast(t("preferences_saved"));
    } catch (error) {
      if (error.status !== 401) toast(error.message || t("error_generic"));
    }
    busy(unsubscribe, false);
  });

  draw(body);
  return section(t("preferences"), list, note, unsubscribe);
}

async function download(button) {
  busy(button, true);
  try {
    const response = await api("data/", { raw: true });
    const blob = await response.blob();
    const disposition = response.headers.get("Content-Disposition") || "";
    const match = /filename="([^"]+)"/.exec(disposition);
    const link = h("a", { href: URL.createObjectURL(blob), download: match ? match[1] : "family-data.json" });
    document.body.appendChild(link);
    link.click();
    link.remove();
    toast(t("download_ready"));
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) toast(error.message || t("error_generic"));
  }
  busy(button, false);
}

export async function settingsScreen(ctx) {
  loading();
  let me;
  let prefs;
  try {
    const answers = await Promise.all([api("me/"), api("preferences/")]);
    me = answers[0];
    prefs = answers[1];
  } catch (error) {
    if (error.status !== 401) failed(error, function () { settingsScreen(ctx); });
    return;
  }
  const dataButton = h("button", { type: "button", class: "button secondary", text: t("download_data") });
  dataButton.addEventListener("click", function () { download(dataButton); });
  const logout = h("button", { type: "button", class: "button secondary danger", id: "logout", text: t("logout") });
  logout.addEventListener("click", async function () {
    busy(logout, true);
    try {
      await api("auth/logout/", { method: "POST" });
    } catch (error) {
      // Logged out either way: the tokens are forgotten on this phone.
    }
    forgetTokens();
    ctx.reset();
    window.location.hash = "#/login";
  });
  mount(
    header(t("settings_title")),
    h("section", { class: "card me" },
      h("strong", { class: "child-name", text: me.name }),
      h("div", { class: "muted", text: [me.relation, me.phone].filter(Boolean).join(" · ") })),
    preferencesSection(prefs),
    section(t("my_data"), dataButton),
    h("div", { class: "card plain" }, logout)
  );
}
