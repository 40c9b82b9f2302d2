/* The homepage chat page (/chat), usually inside the widget's frame. No framework, no third-party
   requests. Talks to the JSON API of the same server; the session is a random id kept for this tab. */
(function () {
  "use strict";
  var app = document.getElementById("chat-app");
  var log = document.getElementById("chat-log");
  var form = document.getElementById("chat-form");
  var input = document.getElementById("chat-input");
  var send = document.getElementById("chat-send");
  var status = document.getElementById("chat-status");
  var closeButton = document.getElementById("chat-close");
  var api = app.getAttribute("data-api");
  var framed = window.parent !== window;
  var language = "ja"; // the language of the last answer: the menu follows it
  var URL_RE = /https?:\/\/[^\s「」『』（）()<>、。]+/g;

  function newSession() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    var s = "";
    for (var i = 0; i < bytes.length; i++) { s += ("0" + bytes[i].toString(16)).slice(-2); }
    return s;
  }
  var session;
  try {
    session = window.sessionStorage.getItem("webchat-session");
    if (!session) { session = newSession(); window.sessionStorage.setItem("webchat-session", session); }
  } catch (e) {
    session = newSession(); // storage blocked (a third-party frame): this page's memory only
  }

  function paragraph(text, className) {
    var p = document.createElement("p");
    if (className) { p.className = className; }
    var last = 0;
    text.replace(URL_RE, function (url, at) {
      p.appendChild(document.createTextNode(text.slice(last, at)));
      var a = document.createElement("a");
      a.href = url;
      a.textContent = url;
      a.target = "_blank";
      a.rel = "noopener";
      p.appendChild(a);
      last = at + url.length;
      return url;
    });
    p.appendChild(document.createTextNode(text.slice(last)));
    return p;
  }

  function bubble(who, className) {
    var div = document.createElement("div");
    div.className = "msg " + who + (className ? " " + className : "");
    log.appendChild(div);
    log.scrollTop = log.scrollHeight;
    return div;
  }

  function say(text) {
    var div = bubble("user");
    var label = document.createElement("span");
    label.className = "visually-hidden";
    label.textContent = "あなた：";
    div.appendChild(label);
    div.appendChild(paragraph(text));
  }

  function buttons(parent, items, onChoose) {
    var row = document.createElement("div");
    row.className = "choices";
    items.forEach(function (item) {
      var b = document.createElement("button");
      b.type = "button";
      b.className = "choice";
      b.textContent = item.label;
      if (item.aria) { b.setAttribute("aria-label", item.aria); }
      b.addEventListener("click", function () {
        Array.prototype.forEach.call(row.querySelectorAll("button"), function (other) { other.disabled = other !== b; });
        b.setAttribute("aria-pressed", "true");
        input.focus();
        onChoose(item, b);
      });
      row.appendChild(b);
    });
    parent.appendChild(row);
    return row;
  }

  function categoryButtons(parent, categories) {
    if (!categories || !categories.length) { return; }
    buttons(parent, categories.map(function (c) { return {label: c.title, id: c.id}; }), function (item) {
      say(item.label);
      get("categories/" + encodeURIComponent(item.id) + "?lang=" + language);
    });
  }

  function show(payload) {
    if (payload.language) { language = payload.language; }
    (payload.messages || []).forEach(function (m) {
      var div = bubble("bot", m.kind === "error" ? "error" : "");
      var label = document.createElement("span");
      label.className = "visually-hidden";
      label.textContent = "市のチャット：";
      div.appendChild(label);
      div.appendChild(paragraph(m.text));
      if (m.entry && m.entry.url) {
        var more = document.createElement("p");
        var a = document.createElement("a");
        a.href = m.entry.url;
        a.target = "_blank";
        a.rel = "noopener";
        a.textContent = "「" + m.entry.title + "」のページ（新しいタブ）";
        more.appendChild(a);
        div.appendChild(more);
      }
      if (m.kind === "feedback" && payload.feedback && payload.log_id) {
        var logId = payload.log_id;
        var labels = payload.labels || {yes: "はい", no: "いいえ"};
        buttons(div, [{label: labels.yes, aria: labels.yes + "（役に立った）", value: true}, {label: labels.no, aria: labels.no + "（役に立たなかった）", value: false}],
          function (item) { post("feedback", {session: session, log_id: logId, helpful: item.value}); });
      }
      if (m.kind === "clarify" && payload.choices && payload.choices.length) {
        var clarifyId = payload.log_id;
        var n = 0;
        buttons(div, payload.choices.map(function (c) {
          return {label: c.id ? (++n) + ". " + c.title : c.title, id: c.id, title: c.title};
        }), function (item) {
          say(item.title);
          post("choose", {session: session, log_id: clarifyId, choice: item.id});
        });
      }
      if (payload.categories && payload.categories.length && m === payload.messages[payload.messages.length - 1]) {
        categoryButtons(div, payload.categories);
      }
    });
    if (payload.entries) {
      var last = log.lastElementChild;
      buttons(last, payload.entries.map(function (e) { return {label: e.title, id: e.id}; }), function (item) {
        say(item.label);
        get("entries/" + encodeURIComponent(item.id) + "?lang=" + language);
      });
    }
    log.scrollTop = log.scrollHeight;
  }

  function fail(message) {
    show({messages: [{kind: "error", text: message}]});
  }

  function busy(on) {
    send.disabled = on;
    status.textContent = on ? "送信しています…" : "";
  }

  function finish(response) {
    return response.json().then(function (data) {
      if (!response.ok) { fail(data.error || "エラーが発生しました。"); return; }
      show(data);
    }, function () { fail("エラーが発生しました。しばらくしてから、もう一度お試しください。"); });
  }

  function post(action, body) {
    busy(true);
    return fetch(api + action, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
      credentials: "omit"})
      .then(finish, function () { fail("通信できませんでした。接続を確認して、もう一度お試しください。"); })
      .then(function () { busy(false); });
  }

  function get(path) {
    busy(true);
    return fetch(api + path, {credentials: "omit"})
      .then(finish, function () { fail("通信できませんでした。接続を確認して、もう一度お試しください。"); })
      .then(function () { busy(false); });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text || send.disabled) { return; }
    input.value = "";
    say(text);
    post("ask", {text: text, session: session});
  });

  Array.prototype.forEach.call(document.querySelectorAll("[data-action=menu]"), function (b) {
    b.addEventListener("click", function () { say(b.textContent); get("categories?lang=" + language); });
  });

  function closeFrame() {
    if (framed) { window.parent.postMessage({type: "webchat-close"}, "*"); }
  }
  if (framed) {
    closeButton.hidden = false;
    closeButton.addEventListener("click", closeFrame);
  }
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { closeFrame(); }
  });
  window.addEventListener("message", function (event) {
    if (event.source === window.parent && event.data && event.data.type === "webchat-open") { input.focus(); }
  });
  input.focus();
})();
