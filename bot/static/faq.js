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
