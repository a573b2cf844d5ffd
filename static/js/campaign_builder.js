// The campaign builder: only the texts of the chosen channels are shown, variant B's only when
// an A/B test is on, so a manager sees exactly what they must write. Hidden texts are not sent
// by the form's owner: the server ignores texts of channels the campaign does not use.
(function () {
  "use strict";

  function sync(form) {
    var chosen = {};
    form.querySelectorAll('input[name="channels"]').forEach(function (box) { chosen[box.value] = box.checked; });
    var withB = form.querySelector('input[name="with_b"]');
    var b = withB && withB.checked;
    form.querySelectorAll("[data-block]").forEach(function (block) {
      var show = chosen[block.dataset.channel] && (block.dataset.variant === "A" || b);
      block.hidden = !show;
    });
    var split = form.querySelector('[name="split_a_pct"]');
    if (split) { var field = split.closest(".field"); if (field) field.hidden = !b; }
  }

  function init() {
    var form = document.querySelector("[data-campaign-form]");
    if (!form) return;
    form.addEventListener("change", function () { sync(form); });
    sync(form);
    var campus = form.querySelector("#id_campus");
    if (campus) {
      campus.addEventListener("change", function () {
        window.location.search = "?campus=" + encodeURIComponent(campus.value);
      });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
