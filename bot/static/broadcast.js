// お知らせ配信: show the fields the choices need, draw the LINE preview, fetch the recipient count.
// A static file because the admin CSP forbids inline scripts; the pages work without it.
(function () {
  "use strict";

  // Confirm dialogs for destructive buttons (cancel).
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });

  // The account icon in the preview: a configured one that cannot be loaded (another server the
  // staff PC cannot reach) is replaced by the shipped placeholder.
  function useFallback(img) {
    var fallback = img.getAttribute("data-fallback");
    if (fallback && img.getAttribute("src") !== fallback) img.setAttribute("src", fallback);
  }
  function watchIcon(img) {
    img.addEventListener("error", function () { useFallback(img); });
    if (img.complete && img.naturalWidth === 0) useFallback(img);
  }
  document.querySelectorAll("img[data-fallback]").forEach(watchIcon);

  // While a notice is being sent, the list and detail pages refresh their counts every few seconds.
  if (document.querySelector('[data-status="sending"], #notice-status[data-status="sending"]')) {
    window.setTimeout(function () { window.location.reload(); }, 5000);
  }

  var form = document.getElementById("compose-form");
  if (!form) return;

  function checked(name) {
    var el = form.querySelector('input[name="' + name + '"]:checked');
    return el ? el.value : "";
  }
  function val(id) {
    var el = document.getElementById(id);
    return el ? el.value.trim() : "";
  }
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Fields shown only for some choices: data-show-when="kind:image,card", data-hide-when="is_emergency".
  function toggle() {
    var state = { kind: checked("kind"), target: checked("target"), timing: checked("timing") };
    form.querySelectorAll("[data-show-when]").forEach(function (node) {
      var parts = node.getAttribute("data-show-when").split(":");
      node.classList.toggle("is-hidden", parts[1].split(",").indexOf(state[parts[0]]) < 0);
    });
    form.querySelectorAll("[data-hide-when]").forEach(function (node) {
      var box = document.getElementById(node.getAttribute("data-hide-when"));
      node.classList.toggle("is-hidden", !!(box && box.checked));
    });
  }

  function utf16Length(text) {
    return text.length; // JS strings count UTF-16 units, as LINE's limit does
  }

  function row(bubble) {
    var r = el("div", "line-row");
    var avatar = el("img", "line-avatar");
    var pane = document.getElementById("live-preview");
    avatar.alt = "";
    avatar.setAttribute("aria-hidden", "true");
    avatar.setAttribute("data-fallback", (pane && pane.getAttribute("data-fallback-url")) || "");
    avatar.src = (pane && pane.getAttribute("data-icon-url")) || "";
    watchIcon(avatar);
    r.appendChild(avatar);
    r.appendChild(bubble);
    return r;
  }

  function imageBox(cls, url) {
    var box = el("div", cls);
    box.appendChild(el("span", "line-image-placeholder", "画像"));
    box.appendChild(el("small", "", url));
    return box;
  }

  function renderPreview() {
    var body = document.getElementById("live-preview-body");
    if (!body) return;
    var kind = checked("kind") || "text";
    var text = document.getElementById("text").value.replace(/\r\n/g, "\n").trim();
    body.textContent = "";
    var counter = document.getElementById("text-length");
    if (counter) counter.textContent = utf16Length(text) + " 文字" + (kind === "card" ? "（カードは1000文字まで）" : "（5000文字まで）");
    if (!text) {
      body.appendChild(el("p", "muted", "本文を入力すると、LINEでの見え方が表示されます。"));
      return;
    }
    if (kind === "card") {
      var card = el("div", "line-bubble line-card");
      if (val("image_url")) card.appendChild(imageBox("line-card-hero", val("image_url")));
      var inner = el("div", "line-card-body");
      if (val("card_title")) inner.appendChild(el("p", "line-card-title", val("card_title")));
      inner.appendChild(el("p", "line-card-text", text));
      card.appendChild(inner);
      var footer = el("div", "line-card-footer");
      footer.appendChild(el("span", "line-card-button", val("button_label") || "（ボタンの文言）"));
      footer.appendChild(el("small", "", val("button_url")));
      card.appendChild(footer);
      body.appendChild(row(card));
      return;
    }
    body.appendChild(row(el("div", "line-bubble line-text", text)));
    if (kind === "image") {
      body.appendChild(row(imageBox("line-bubble line-image", val("image_url") || "（画像のURL）")));
    }
  }

  var RULE_FIELDS = ["age_bands", "genders", "areas", "interests"];
  RULE_FIELDS = RULE_FIELDS.concat(RULE_FIELDS.map(function (name) { return "exclude_" + name; }));
  var countTimer = null;
  var countSeq = 0;
  function refreshCount() {
    var out = document.getElementById("recipient-count");
    var url = form.getAttribute("data-count-url");
    if (!out || !url) return;
    var params = new URLSearchParams();
    ["target", "is_emergency"].forEach(function (name) {
      var v = form.querySelector('input[name="' + name + '"]:checked');
      if (v) params.append(name, v.value);
    });
    params.append("segment", val("segment"));
    // Languages with a version written: the count says how many get each.
    var versions = [];
    form.querySelectorAll("textarea[data-version]").forEach(function (area) {
      if (area.value.trim()) versions.push(area.getAttribute("data-version"));
    });
    params.append("versions", versions.join(",") || "-");
    RULE_FIELDS.forEach(function (name) {
      form.querySelectorAll('input[name="' + name + '"]:checked').forEach(function (box) { params.append(name, box.value); });
    });
    var seq = ++countSeq;
    fetch(url + "?" + params.toString(), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        if (seq !== countSeq) return; // an older answer arriving late
        var once = ["now", "at"].indexOf(checked("timing") || "now") >= 0;
        var nobody = data.count === 0;
        out.classList.toggle("warn", !!(data.error || data.below_floor || nobody));
        if (data.error) { out.textContent = data.error; return; }
        var note = "";
        if (nobody && once) note = "（0人のため、この条件では確定できません。誰にも届きません）";
        else if (nobody) note = "（現在0人です。配信の時点でも対象者がいなければ、その回は誰にも届きません）";
        else if (data.below_floor) note = "（" + data.floor + "人未満のため、管理者の承認が必要です）";
        out.textContent = "対象人数（現時点）: " + data.shown + " — " + data.description + note;
        out.setAttribute("data-blocking", nobody && once ? "nobody" : (data.below_floor ? "floor" : ""));
        if (data.count !== null) out.setAttribute("data-count", String(data.count));
        else out.removeAttribute("data-count");
        var list = document.getElementById("recipient-languages");
        if (list) {
          list.textContent = "";
          (data.languages || []).forEach(function (lang) {
            var item = el("li", "", lang.label + ": " + lang.shown);
            item.setAttribute("data-language", lang.language);
            if (lang.count !== null) item.setAttribute("data-count", String(lang.count));
            list.appendChild(item);
          });
        }
      })
      .catch(function () { out.textContent = "対象人数を取得できませんでした。"; });
  }
  function scheduleCount() {
    clearTimeout(countTimer);
    countTimer = setTimeout(refreshCount, 250);
  }

  form.addEventListener("input", function (event) {
    toggle();
    renderPreview();
    var name = event.target && event.target.name;
    if (["target", "segment", "is_emergency", "timing"].concat(RULE_FIELDS).indexOf(name) >= 0 || /^text_/.test(name || "")) scheduleCount();
  });
  form.addEventListener("change", function () { toggle(); renderPreview(); scheduleCount(); });
  toggle();
  renderPreview();
  refreshCount();
})();
