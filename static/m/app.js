// The H5 parent app: hash routes, each drawn by one screen module from the parent API.

import { configure, loggedIn, optional } from "./api.js";
import { apiRoot, h, t } from "./ui.js";
import { childScreen } from "./screens/child.js";
import { childrenScreen } from "./screens/children.js";
import { inviteScreen } from "./screens/invite.js";
import { loginScreen } from "./screens/login.js";
import { referralScreen } from "./screens/referral.js";
import { satisfactionScreen } from "./screens/satisfaction.js";
import { settingsScreen } from "./screens/settings.js";

// [pattern, screen, needs a login, tab]
const ROUTES = [
  [/^#\/login$/, loginScreen, false, null],
  [/^#\/invite\/([A-Za-z0-9_-]+)$/, inviteScreen, false, null],
  [/^#\/children$/, childrenScreen, true, "children"],
  [/^#\/child\/(\d+)$/, childScreen, true, "children"],
  [/^#\/satisfaction$/, satisfactionScreen, true, "satisfaction"],
  [/^#\/referral$/, referralScreen, true, "referral"],
  [/^#\/settings$/, settingsScreen, true, "settings"],
];

const TABS = [
  ["children", "#/children", "tab_children"],
  ["satisfaction", "#/satisfaction", "tab_satisfaction"],
  ["referral", "#/referral", "tab_referral"],
  ["settings", "#/settings", "tab_settings"],
];

// Sections whose endpoints may not be on this server: asked once per login, hidden on a 404.
let available = null;

async function sectionsAvailable() {
  if (!available) {
    available = Promise.all([optional("satisfaction/"), optional("referral/")])
      .then(function (answers) { return { satisfaction: answers[0] !== null, referral: answers[1] !== null }; })
      .catch(function () { available = null; return { satisfaction: false, referral: false }; });
  }
  return available;
}

function sectionsChanged() {
  available = null;
}

async function drawTabs(current) {
  const nav = document.getElementById("tabs");
  if (!current) {
    nav.hidden = true;
    document.body.classList.remove("with-tabs");
    return;
  }
  const sections = await sectionsAvailable();
  nav.textContent = "";
  TABS.forEach(function (tab) {
    if ((tab[0] === "satisfaction" || tab[0] === "referral") && !sections[tab[0]]) return;
    nav.appendChild(
      h("a", { href: tab[1], class: tab[0] === current ? "tab current" : "tab", "aria-current": tab[0] === current ? "page" : null },
        t(tab[2]))
    );
  });
  nav.hidden = false;
  document.body.classList.add("with-tabs");
}

function route() {
  const hash = window.location.hash || "#/children";
  // A note about the last screen does not belong on the next one.
  document.querySelectorAll(".toast").forEach(function (old) { old.remove(); });
  for (let i = 0; i < ROUTES.length; i += 1) {
    const match = ROUTES[i][0].exec(hash);
    if (!match) continue;
    if (ROUTES[i][2] && !loggedIn()) {
      window.location.replace("#/login");
      return;
    }
    if (hash === "#/login" && loggedIn()) {
      window.location.replace("#/children");
      return;
    }
    drawTabs(ROUTES[i][3]);
    ROUTES[i][1].apply(null, match.slice(1).concat([{ sections: sectionsAvailable, reset: sectionsChanged }]));
    return;
  }
  window.location.replace(loggedIn() ? "#/children" : "#/login");
}

configure({
  root: apiRoot,
  onLoggedOut: function () {
    sectionsChanged();
    if (window.location.hash.indexOf("#/invite/") !== 0) window.location.hash = "#/login";
  },
});
document.title = t("app_title");
window.addEventListener("hashchange", route);
route();
