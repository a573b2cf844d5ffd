// #/children: every child linked to the parent's phone, in every campus.

import { api } from "../api.js";
import { empty, failed, h, header, hours, loading, mount, t } from "../ui.js";
import { satisfactionDue } from "./satisfaction.js";

function childCard(child) {
  return h(
    "a",
    { class: "card child", href: "#/child/" + child.id },
    h("div", { class: "child-main" },
      h("strong", { class: "child-name", text: child.name }),
      h("span", { class: "muted", text: [child.campus, child.grade].filter(Boolean).join(" · ") })),
    h("div", { class: "child-hours" },
      h("span", { class: "big", text: hours(child.hours_left) }),
      h("span", { class: "muted small", text: t("hours_left") })),
    h("span", { class: "chevron", "aria-hidden": "true", text: "›" })
  );
}

export async function childrenScreen(ctx) {
  loading();
  try {
    const page = await api("children/");
    const children = page.results || [];
    mount(
      header(t("tab_children")),
      h("div", { id: "satisfaction-banner" }),
      children.length ? h("div", { class: "list" }, children.map(childCard)) : h("section", { class: "card" }, empty(t("children_empty")))
    );
  } catch (error) {
    if (error.status !== 401) failed(error, function () { childrenScreen(ctx); });
    return;
  }
  // The satisfaction question, when one is due; nothing when the server has no such section.
  const due = await satisfactionDue(ctx).catch(function () { return []; });
  const slot = document.getElementById("satisfaction-banner");
  if (slot && due.length) {
    slot.appendChild(
      h("a", { class: "card banner", href: "#/satisfaction" },
        h("span", { text: t("satisfaction_banner") }),
        h("span", { class: "pill", text: t("satisfaction_banner_action") }))
    );
  }
}
