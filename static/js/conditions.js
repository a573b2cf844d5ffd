/* The condition builder (personas/widgets.py ConditionTreeWidget): people pick fields,
   comparisons and values; the tree is kept as JSON in the widget's hidden input, which the
   form posts and the server checks (personas/conditions.py compile_tree). No library needed.

   With data-count-url the builder asks the server, a moment after each change, how many
   students the tree selects, and shows the server's message on the node it names. */
(function () {
  "use strict";

  var DEBOUNCE_MS = 350;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else if (key === "className") node.className = attrs[key];
      else if (attrs[key] !== null && attrs[key] !== undefined && attrs[key] !== false) node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  function isGroup(node) {
    return node && typeof node === "object" && !Array.isArray(node) && !("field" in node) &&
      Object.keys(node).length === 1 && (Array.isArray(node.all) || Array.isArray(node.any));
  }

  function modeOf(group) { return Array.isArray(group.any) ? "any" : "all"; }
  function childrenOf(group) { return group[modeOf(group)]; }

  function csrfToken(root) {
    var form = root.closest("form");
    var input = (form || document).querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function init(root) {
    if (root.dataset.ready) return;
    root.dataset.ready = "1";
    var catalogue = JSON.parse(document.getElementById(root.dataset.catalogue).textContent);
    var T = catalogue.text;
    var input = root.querySelector("[data-condition-json]");
    var treeEl = root.querySelector("[data-condition-root]");
    var status = root.querySelector("[data-condition-status]");
    var fields = {};
    catalogue.groups.forEach(function (g) { g.fields.forEach(function (f) { fields[f.name] = f; }); });

    var tree;
    try { tree = JSON.parse(input.value || "{}"); } catch (e) { tree = null; }
    if (!isGroup(tree)) tree = { all: tree && tree.field ? [tree] : [] };

    var timer = null;
    var asked = 0;

    function save(structural) {
      input.value = JSON.stringify(tree);
      input.dispatchEvent(new Event("change", { bubbles: true }));
      if (structural) render();
      scheduleCount();
    }

    function defaultValue(field, op) {
      if (!field) return "";
      switch (field.kind) {
        case "choice": return [];
        case "number": return op === "between" ? ["", ""] : "";
        case "date":
          if (op === "within_days" || op === "over_days_ago") return 30;
          return op === "between" ? ["", ""] : "";
        case "bool": return true;
        case "ref": return field.choices.length ? field.choices[0][0] : "";
        default: return "";
      }
    }

    function numberOrText(raw) {
      var text = raw.trim();
      if (text === "") return "";
      var n = Number(text);
      return isFinite(n) ? n : text;
    }

    // --- a leaf: field, comparison, value ---------------------------------------------------------

    function fieldPicker(leaf) {
      var select = el("select", { "aria-label": T.chooseField, "data-field-picker": "" }, [
        el("option", { value: "", text: T.chooseField })
      ]);
      catalogue.groups.forEach(function (group) {
        var optgroup = el("optgroup", { label: group.label });
        group.fields.forEach(function (f) {
          optgroup.appendChild(el("option", { value: f.name, text: f.label, selected: f.name === leaf.field ? "selected" : null }));
        });
        select.appendChild(optgroup);
      });
      select.addEventListener("change", function () {
        var field = fields[select.value];
        leaf.field = select.value;
        leaf.op = field ? catalogue.ops[field.kind][0][0] : "";
        leaf.value = defaultValue(field, leaf.op);
        save(true);
      });
      return select;
    }

    function opPicker(leaf, field) {
      var select = el("select", { "aria-label": field.label, "data-op-picker": "" });
      catalogue.ops[field.kind].forEach(function (pair) {
        select.appendChild(el("option", { value: pair[0], text: pair[1], selected: pair[0] === leaf.op ? "selected" : null }));
      });
      select.addEventListener("change", function () {
        var before = leaf.op;
        leaf.op = select.value;
        var shapeChanged = (before === "between") !== (leaf.op === "between") ||
          ((before === "within_days" || before === "over_days_ago") !== (leaf.op === "within_days" || leaf.op === "over_days_ago"));
        if (shapeChanged) leaf.value = defaultValue(field, leaf.op);
        save(shapeChanged);
      });
      return select;
    }

    function textInput(type, value, onInput, attrs) {
      var input = el("input", Object.assign({ type: type, value: value === null || value === undefined ? "" : String(value) }, attrs || {}));
      input.addEventListener("input", function () { onInput(input.value); save(false); });
      return input;
    }

    function valueEditor(leaf, field) {
      var kind = field.kind;
      var box = el("div", { className: "cond-value", "data-value-editor": kind });
      if (kind === "choice") {
        var chosen = Array.isArray(leaf.value) ? leaf.value.map(String) : [];
        box.classList.add("cond-chips");
        field.choices.forEach(function (pair) {
          var check = el("input", { type: "checkbox", value: pair[0], checked: chosen.indexOf(pair[0]) >= 0 ? "checked" : null });
          check.addEventListener("change", function () {
            var values = Array.isArray(leaf.value) ? leaf.value.map(String) : [];
            if (check.checked && values.indexOf(pair[0]) < 0) values.push(pair[0]);
            if (!check.checked) values = values.filter(function (v) { return v !== pair[0]; });
            leaf.value = values;
            save(false);
          });
          box.appendChild(el("label", { className: "cond-chip" }, [check, el("span", { text: pair[1] })]));
        });
      } else if (kind === "number" || (kind === "date" && (leaf.op === "within_days" || leaf.op === "over_days_ago"))) {
        var attrs = { inputmode: "decimal", step: "any" };
        if (kind === "number") { attrs.min = field.min; attrs.max = field.max; } else { attrs.min = 0; attrs.step = 1; }
        if (leaf.op === "between") {
          var pair = Array.isArray(leaf.value) ? leaf.value : ["", ""];
          box.appendChild(textInput("number", pair[0], function (v) { pair[0] = numberOrText(v); leaf.value = pair; }, Object.assign({ "aria-label": T.from }, attrs)));
          box.appendChild(el("span", { className: "cond-sep", text: T.to }));
          box.appendChild(textInput("number", pair[1], function (v) { pair[1] = numberOrText(v); leaf.value = pair; }, Object.assign({ "aria-label": T.to }, attrs)));
        } else {
          box.appendChild(textInput("number", leaf.value, function (v) { leaf.value = numberOrText(v); }, attrs));
          if (kind === "date") box.appendChild(el("span", { className: "cond-sep", text: T.days }));
        }
      } else if (kind === "date") {
        if (leaf.op === "between") {
          var days = Array.isArray(leaf.value) ? leaf.value : ["", ""];
          box.appendChild(textInput("date", days[0], function (v) { days[0] = v; leaf.value = days; }, { "aria-label": T.from }));
          box.appendChild(el("span", { className: "cond-sep", text: T.to }));
          box.appendChild(textInput("date", days[1], function (v) { days[1] = v; leaf.value = days; }, { "aria-label": T.to }));
        } else {
          box.appendChild(textInput("date", leaf.value, function (v) { leaf.value = v; }));
        }
      } else if (kind === "bool") {
        var yesNo = el("select", { "aria-label": field.label }, [
          el("option", { value: "true", text: T.yes, selected: leaf.value === true ? "selected" : null }),
          el("option", { value: "false", text: T.no, selected: leaf.value === false ? "selected" : null })
        ]);
        yesNo.addEventListener("change", function () { leaf.value = yesNo.value === "true"; save(false); });
        box.appendChild(yesNo);
      } else if (kind === "ref") {
        var ref = el("select", { "aria-label": field.label }, [el("option", { value: "", text: T.choose })]);
        field.choices.forEach(function (pair) {
          ref.appendChild(el("option", { value: pair[0], text: pair[1], selected: String(leaf.value) === pair[0] ? "selected" : null }));
        });
        ref.addEventListener("change", function () { leaf.value = ref.value; save(false); });
        box.appendChild(ref);
      } else {
        box.appendChild(textInput("text", leaf.value, function (v) { leaf.value = v; }, { maxlength: 50 }));
      }
      return box;
    }

    function removeButton(parent, index) {
      var button = el("button", { type: "button", className: "cond-btn cond-remove", "aria-label": T.remove, title: T.remove, text: "×" });
      button.addEventListener("click", function () { childrenOf(parent).splice(index, 1); save(true); });
      return button;
    }

    function renderLeaf(leaf, parent, index, path) {
      var field = fields[leaf.field];
      var row = el("div", { className: "cond-leaf", "data-path": path, "data-leaf": "" }, [fieldPicker(leaf)]);
      if (field) {
        // Yes or no needs no comparison to pick ("at risk: yes").
        if (field.kind !== "bool") row.appendChild(opPicker(leaf, field));
        row.appendChild(valueEditor(leaf, field));
      } else if (leaf.field) {
        row.classList.add("has-error");
      }
      row.appendChild(removeButton(parent, index));
      return row;
    }

    // --- a group: all / any of its nodes -----------------------------------------------------------

    function renderGroup(group, depth, path, parent, index) {
      var box = el("div", { className: "cond-group depth-" + depth, "data-path": path, "data-group": "" });
      var mode = el("select", { className: "cond-mode", "aria-label": T.match, "data-mode-picker": "" }, [
        el("option", { value: "all", text: T.all, selected: modeOf(group) === "all" ? "selected" : null }),
        el("option", { value: "any", text: T.any, selected: modeOf(group) === "any" ? "selected" : null })
      ]);
      mode.addEventListener("change", function () {
        var nodes = childrenOf(group);
        delete group.all; delete group.any;
        group[mode.value] = nodes;
        save(true);
      });
      var head = el("div", { className: "cond-group-head" }, [el("span", { text: parent ? T.matchNested : T.match }), mode]);
      if (parent) head.appendChild(removeButton(parent, index));
      box.appendChild(head);

      var list = el("div", { className: "cond-children" });
      var nodes = childrenOf(group);
      if (!nodes.length && !parent) list.appendChild(el("p", { className: "muted small cond-empty", text: T.empty }));
      nodes.forEach(function (child, i) {
        var childPath = path === "" ? String(i) : path + "." + i;
        list.appendChild(isGroup(child) ? renderGroup(child, depth + 1, childPath, group, i) : renderLeaf(child, group, i, childPath));
      });
      box.appendChild(list);

      var addLeaf = el("button", { type: "button", className: "cond-btn", "data-add-condition": "", text: "+ " + T.addCondition });
      addLeaf.addEventListener("click", function () {
        nodes.push({ field: "", op: "", value: "" });
        save(true);
        var pickers = box.querySelectorAll(":scope > .cond-children > .cond-leaf [data-field-picker]");
        if (pickers.length) pickers[pickers.length - 1].focus();
      });
      var actions = el("div", { className: "cond-actions" }, [addLeaf]);
      // A new group's conditions sit two levels below this group: keep them within the limit.
      if (depth + 2 <= catalogue.maxDepth) {
        var addGroup = el("button", { type: "button", className: "cond-btn", "data-add-group": "", text: "+ " + T.addGroup });
        addGroup.addEventListener("click", function () {
          nodes.push({ any: [{ field: "", op: "", value: "" }] });
          save(true);
        });
        actions.appendChild(addGroup);
      }
      box.appendChild(actions);
      return box;
    }

    function render() {
      treeEl.replaceChildren(renderGroup(tree, 1, "", null, 0));
    }

    // --- the count ---------------------------------------------------------------------------------

    function showError(message, path) {
      status.className = "cond-status is-error";
      status.textContent = message;
      root.querySelectorAll(".has-error[data-path]").forEach(function (node) { node.classList.remove("has-error"); });
      if (path !== undefined && path !== null && path !== "") {
        var node = root.querySelector('[data-path="' + path + '"]');
        if (node) node.classList.add("has-error");
      }
    }

    function scheduleCount() {
      if (!root.dataset.countUrl) return;
      clearTimeout(timer);
      timer = setTimeout(askCount, DEBOUNCE_MS);
    }

    function askCount() {
      var ticket = ++asked;
      status.className = "cond-status is-busy";
      status.textContent = T.counting;
      fetch(root.dataset.countUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(root), "Accept": "application/json" },
        body: JSON.stringify({ conditions: tree })
      }).then(function (response) {
        return response.json().then(function (data) { return { ok: response.ok, data: data }; });
      }).then(function (answer) {
        if (ticket !== asked) return;  // a later change asked again
        var data = answer.data || {};
        var target = root.dataset.previewTarget ? document.getElementById(root.dataset.previewTarget) : null;
        if (answer.ok) {
          root.querySelectorAll(".has-error[data-path]").forEach(function (node) { node.classList.remove("has-error"); });
          status.className = "cond-status is-count";
          status.textContent = T.count.replace("%(count)s", data.count_label || data.count);
          status.dataset.count = data.count;
          if (target && data.html !== undefined) target.innerHTML = data.html;
        } else {
          var problem = ((data.fields || {}).conditions || [])[0] || {};
          showError(problem.message || data.message || T.failed, problem.path);
          delete status.dataset.count;
          if (target && data.html !== undefined) target.innerHTML = data.html;
        }
        root.dispatchEvent(new CustomEvent("conditions:counted", { bubbles: true, detail: data }));
      }).catch(function () {
        if (ticket === asked) showError(T.failed);
      });
    }

    render();
    scheduleCount();
  }

  function initAll() { document.querySelectorAll("[data-condition-builder]").forEach(init); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", initAll);
  else initAll();
  document.addEventListener("htmx:load", initAll);
})();
