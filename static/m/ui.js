// Small DOM helpers shared by the screens. Text always goes in as text nodes, never as HTML,
// so a name or a teacher's remark can never become markup.

import { ApiError } from "./api.js";

const config = JSON.parse(document.getElementById("h5-config").textContent);

export const lang = config.lang;
export const apiRoot = config.api;

// The product's words, translated by the server; "%s" filled in order.
export function t(key) {
  let text = config.strings[key] || key;
  for (let i = 1; i < arguments.length; i += 1) text = text.replace("%s", String(arguments[i]));
  return text;
}

export function h(tag, attrs) {
  const el = document.createElement(tag);
  if (attrs) {
    Object.keys(attrs).forEach(function (name) {
      const value = attrs[name];
      if (value === null || value === undefined || value === false) return;
      if (name.indexOf("on") === 0) el.addEventListener(name.slice(2), value);
      else if (name === "class") el.className = value;
      else if (name === "text") el.textContent = value;
      else if (value === true) el.setAttribute(name, "");
      else el.setAttribute(name, value);
    });
  }
  for (let i = 2; i < arguments.length; i += 1) append(el, arguments[i]);
  return el;
}

function append(el, child) {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) child.forEach(function (c) { append(el, c); });
  else el.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
}

export function mount(...nodes) {
  const app = document.getElementById("app");
  app.textContent = "";
  nodes.forEach(function (node) { append(app, node); });
  window.scrollTo(0, 0);
}

export function loading() {
  mount(h("p", { class: "centre muted", text: t("loading") }));
}

export function header(title, backTo) {
  return h(
    "header",
    { class: "bar" },
    backTo ? h("a", { class: "back", href: backTo, "aria-label": t("back") }, "‹ " + t("back")) : null,
    h("h1", { text: title })
  );
}

export function section(title, ...children) {
  return h("section", { class: "card" }, title ? h("h2", { text: title }) : null, children);
}

export function empty(text) {
  return h("p", { class: "muted", text: text });
}

export function errorText(error) {
  if (error instanceof ApiError) {
    if (error.code === "network") return t("error_network");
    if (error.message) return error.message;
  }
  return t("error_generic");
}

// A whole screen that could not load: what went wrong and a way to try again.
export function failed(error, retry) {
  mount(
    h("div", { class: "centre" },
      h("p", { class: "error", role: "alert", text: errorText(error) }),
      h("button", { class: "button secondary", type: "button", onclick: retry, text: t("retry") }))
  );
}

// A labelled field with its own error line, which showErrors fills from the API's `fields`.
export function field(name, label, input, hint) {
  input.id = input.id || "f-" + name;
  input.name = name;
  // What the API said about this field goes once the parent changes it.
  input.addEventListener("input", function () {
    input.removeAttribute("aria-invalid");
    const slot = input.parentNode && input.parentNode.querySelector(".field-error");
    if (slot) slot.textContent = "";
  });
  return h(
    "div",
    { class: "field" },
    h("label", { for: input.id, text: label }),
    input,
    hint ? h("p", { class: "hint", text: hint }) : null,
    h("p", { class: "field-error", "data-for": name, role: "alert" })
  );
}

export function clearErrors(form) {
  form.querySelectorAll(".field-error, .form-error").forEach(function (el) { el.textContent = ""; });
  form.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
}

// The API's errors beside the fields they name; the rest (and the message) on top of the form.
export function showErrors(form, error) {
  clearErrors(form);
  let placed = false;
  const fields = (error instanceof ApiError && error.fields) || {};
  Object.keys(fields).forEach(function (name) {
    const slot = form.querySelector('.field-error[data-for="' + name + '"]');
    const messages = (fields[name] || []).map(function (item) { return item.message || item; }).join(" ");
    if (slot) {
      slot.textContent = messages;
      const input = form.querySelector('[name="' + name + '"]');
      if (input) input.setAttribute("aria-invalid", "true");
      placed = true;
    }
  });
  const top = form.querySelector(".form-error");
  if (top && !placed) top.textContent = errorText(error);
}

export function busy(button, on) {
  button.disabled = on;
  button.classList.toggle("busy", on);
}

// One note at a time: a newer one replaces the last.
export function toast(text) {
  document.querySelectorAll(".toast").forEach(function (old) { old.remove(); });
  const el = h("div", { class: "toast", role: "status", text: text });
  document.body.appendChild(el);
  setTimeout(function () { el.remove(); }, 2600);
}

// Lessons happen at the school's hours: shown in its zone, whatever the phone's is set to.
function format(options) {
  try {
    return new Intl.DateTimeFormat(lang, Object.assign({ timeZone: config.tz }, options));
  } catch (e) {
    return new Intl.DateTimeFormat(lang, options); // an old browser without the zone data
  }
}
const dateTime = format({
  month: "long", day: "numeric", weekday: "short", hour: "2-digit", minute: "2-digit", hour12: false,
});
const dateOnly = format({ year: "numeric", month: "numeric", day: "numeric" });

export function when(iso) {
  return iso ? dateTime.format(new Date(iso)) : "";
}

export function day(iso) {
  if (!iso) return "";
  // A bare date (valid_until) is a calendar day, not a moment: noon UTC is that day in every zone.
  return dateOnly.format(new Date(iso.length === 10 ? iso + "T12:00:00Z" : iso));
}

// "12.0" -> "12", "1.5" -> "1.5": hours as people say them.
export function hours(value) {
  const n = Number(value);
  return Number.isFinite(n) ? String(Math.round(n * 10) / 10) : String(value);
}
