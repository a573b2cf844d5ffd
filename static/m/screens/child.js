// #/child/<id>: a child's lessons, hours per package, attendance (with "more"), the teachers'
// feedback, the trial requests sent, and the form to ask for a trial.

import { api, newKey } from "../api.js";
import {
  busy, clearErrors, day, empty, failed, field, h, header, hours, loading, mount, section, showErrors, t, toast, when,
} from "../ui.js";

const RECENT = 20; // what the child's page sends; older rows come from attendance/

function lessonRow(lesson) {
  return h("li", { class: "row" },
    h("div", null, h("strong", { text: lesson.course }), h("div", { class: "muted small", text: lesson.teacher })),
    h("div", { class: "right", text: when(lesson.starts_at || lesson.scheduled_at) }));
}

function contractRow(contract) {
  const used = Number(contract.hours_consumed);
  const bought = Number(contract.hours_bought) || 1;
  return h("li", { class: "contract" },
    h("div", { class: "row" },
      h("strong", { text: contract.course }),
      h("span", { class: "pill", text: contract.status_label })),
    h("div", { class: "meter", role: "img", "aria-label": t("contract_hours", hours(contract.hours_consumed), hours(contract.hours_bought), hours(contract.hours_left)) },
      h("span", { style: "width:" + Math.min(100, Math.round((used / bought) * 100)) + "%" })),
    h("div", { class: "muted small", text: t("contract_hours", hours(contract.hours_consumed), hours(contract.hours_bought), hours(contract.hours_left)) }),
    contract.valid_until ? h("div", { class: "muted small", text: t("valid_until", day(contract.valid_until)) }) : null);
}

function attendanceRow(row) {
  return h("li", { class: "row", "data-id": row.id },
    h("div", null,
      h("strong", { text: row.course }),
      h("div", { class: "muted small", text: when(row.lesson_at) + " · " + row.teacher })),
    h("span", { class: row.status === "present" ? "pill ok" : "pill warn", text: row.status_label }));
}

function feedbackItem(item) {
  const meta = [when(item.at), item.course, item.teacher].filter(Boolean).join(" · ");
  return h("li", { class: "feedback" },
    h("div", { class: "muted small", text: meta }),
    item.kind === "trial" ? h("span", { class: "pill", text: t("feedback_trial") }) : null,
    item.rating ? h("span", { class: "stars", "aria-label": t("stars", item.rating), text: "★".repeat(item.rating) + "☆".repeat(5 - item.rating) }) : null,
    item.comment ? h("p", { text: item.comment }) : null,
    item.recommended_level ? h("p", { class: "muted small", text: t("recommended_level", item.recommended_level) }) : null);
}

function requestRow(request) {
  return h("li", { class: "row" },
    h("div", null,
      h("strong", { text: request.course || request.subject || t("trial_course_any") }),
      h("div", { class: "muted small", text: when(request.wished_at) })),
    h("span", { class: "pill", text: request.status_label }));
}

// The attendance list with "more": cursor pages of attendance/, skipping rows already shown.
function attendanceSection(childId, recent) {
  const list = h("ul", { class: "rows" }, recent.map(attendanceRow));
  const seen = new Set(recent.map(function (row) { return row.id; }));
  let next = "children/" + childId + "/attendance/?page_size=" + RECENT;
  const more = h("button", { type: "button", class: "button secondary", text: t("more") });
  more.addEventListener("click", async function () {
    busy(more, true);
    try {
      let added = 0;
      while (next && added === 0) {
        const page = await api(next);
        page.results.forEach(function (row) {
          if (seen.has(row.id)) return;
          seen.add(row.id);
          list.appendChild(attendanceRow(row));
          added += 1;
        });
        next = page.next ? pathOf(page.next) : null;
      }
      busy(more, false);
      if (!next) more.remove();
    } catch (error) {
      busy(more, false);
      toast(error.message || t("error_generic"));
    }
  });
  return section(
    t("attendance"),
    recent.length ? list : empty(t("attendance_none")),
    recent.length >= RECENT ? more : null
  );
}

// The API's absolute next link, kept on this page's origin (a proxy may rewrite the scheme).
function pathOf(url) {
  const parsed = new URL(url, window.location.href);
  return parsed.pathname + parsed.search;
}

function trialForm(childId, courses, done) {
  let key = newKey(); // one per request the parent sends, reused if they press again after an error
  const course = h("select", null,
    h("option", { value: "", text: t("trial_course_any") }),
    courses.map(function (c) {
      return h("option", { value: String(c.id), text: [c.subject, c.name, c.level].filter(Boolean).join(" · ") });
    }));
  const subject = h("input", { type: "text", maxlength: "200" });
  const subjectField = field("subject", t("trial_subject"), subject);
  const wished = h("input", { type: "datetime-local", step: "1800" });
  const note = h("textarea", { rows: "3", maxlength: "2000" });
  const submit = h("button", { type: "submit", class: "button", text: t("trial_submit") });
  const form = h("form", { class: "card", id: "trial-form", novalidate: true },
    h("h2", { text: t("trial_title") }),
    h("p", { class: "muted small", text: t("trial_intro") }),
    h("p", { class: "form-error", role: "alert" }),
    field("course", t("trial_course"), course),
    subjectField,
    field("wished_at", t("trial_when"), wished),
    field("note", t("trial_note"), note),
    submit);
  course.addEventListener("change", function () { subjectField.hidden = Boolean(course.value); });
  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    clearErrors(form);
    busy(submit, true);
    const body = { note: note.value, subject: course.value ? "" : subject.value };
    if (course.value) body.course = Number(course.value);
    // The school's wall clock, as shown everywhere in the app: a time without a zone is read
    // by the API in the school's zone (TIME_ZONE), whatever zone the phone is set to.
    if (wished.value) body.wished_at = wished.value;
    try {
      await api("children/" + childId + "/trial-requests/", { method: "POST", body: body, key: key });
      key = newKey();
      toast(t("trial_sent"));
      done();
    } catch (error) {
      showErrors(form, error);
      busy(submit, false);
    }
  });
  return form;
}

export async function childScreen(id, ctx) {
  loading();
  let page;
  let courses;
  try {
    const answers = await Promise.all([api("children/" + id + "/"), api("children/" + id + "/courses/")]);
    page = answers[0];
    courses = answers[1].results || [];
  } catch (error) {
    if (error.status !== 401) failed(error, function () { childScreen(id, ctx); });
    return;
  }
  const child = page.child;
  const lessons = page.upcoming_lessons.concat(page.upcoming_trials);
  lessons.sort(function (a, b) { return (a.starts_at || a.scheduled_at) < (b.starts_at || b.scheduled_at) ? -1 : 1; });
  mount(
    header(child.name, "#/children"),
    h("section", { class: "card summary" },
      h("div", null,
        h("div", { class: "muted", text: [child.campus, child.grade, child.school].filter(Boolean).join(" · ") })),
      h("div", { class: "child-hours" },
        h("span", { class: "big", text: hours(page.hours_left) }),
        h("span", { class: "muted small", text: t("hours_left") }))),
    section(t("upcoming_lessons"), lessons.length ? h("ul", { class: "rows" }, lessons.map(lessonRow)) : empty(t("upcoming_none"))),
    section(t("contracts"), page.contracts.length ? h("ul", { class: "rows" }, page.contracts.map(contractRow)) : empty(t("contracts_none"))),
    attendanceSection(id, page.recent_attendance),
    section(t("feedback"), page.feedback.length ? h("ul", { class: "rows" }, page.feedback.map(feedbackItem)) : empty(t("feedback_none"))),
    page.trial_requests.length ? section(t("trial_requests"), h("ul", { class: "rows", id: "trial-requests" }, page.trial_requests.map(requestRow))) : null,
    trialForm(id, courses, function () { childScreen(id, ctx); })
  );
}
