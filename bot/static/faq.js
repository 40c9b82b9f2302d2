/* FAQ workbench pages: small progressive enhancements (the pages work without them). */
(function () {
  "use strict";

  // Forms whose button carries data-confirm ask before submitting (unpublish, revert, ...).
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });

  // 「すべて選ぶ」/「すべて外す」 for a group of checkboxes.
  document.querySelectorAll("button[data-check]").forEach(function (button) {
    button.addEventListener("click", function () {
      var on = button.getAttribute("data-check") === "all";
      var name = button.getAttribute("data-target");
      document.querySelectorAll('input[type="checkbox"][name="' + name + '"]').forEach(function (box) {
        box.checked = on;
      });
    });
  });

  // A suggested entry's 「これを選ぶ」 sets the attach form's target.
  document.querySelectorAll("button.choose-entry").forEach(function (button) {
    button.addEventListener("click", function () {
      var select = document.getElementById("entry-select");
      if (select) {
        select.value = button.getAttribute("data-entry-id");
        select.focus();
      }
    });
  });

  // The category select's 「＋ 新しいカテゴリを追加」 shows the field for the new name (the field is
  // shown to browsers without script, and its value is only used with that choice).
  document.querySelectorAll("[data-shown-by]").forEach(function (field) {
    var select = document.getElementById(field.getAttribute("data-shown-by"));
    var value = field.getAttribute("data-shown-value");
    if (!select) {
      return;
    }
    function update() {
      field.hidden = select.value !== value;
      if (!field.hidden && document.activeElement === select) {
        var input = field.querySelector("input");
        if (input) {
          input.focus();
        }
      }
    }
    select.addEventListener("change", update);
    update();
  });

  // Character counters (the title is shown on LINE buttons: 20 characters at most).
  document.querySelectorAll(".counter[data-for]").forEach(function (counter) {
    var input = document.getElementById(counter.getAttribute("data-for"));
    var max = parseInt(counter.getAttribute("data-max"), 10);
    if (!input) {
      return;
    }
    function update() {
      var n = Array.from(input.value).length;
      counter.textContent = n + " / " + max + " 文字";
      counter.classList.toggle("over", n > max);
    }
    input.addEventListener("input", update);
    update();
  });
})();
