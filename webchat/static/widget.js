/* The city's homepage chat: one line on the city's page,
     <script src="https://BOT/chat/widget.js" async></script>
   adds a chat button that opens the conversation (BOT/chat) in a frame. No framework, no other
   requests until the button is used; styles are set on the elements, so the page's own CSS and
   Content-Security-Policy for styles do not matter. Settings below are filled in by the server. */
(function () {
  "use strict";
  var settings = __WEBCHAT_SETTINGS__;
  if (window.__cityWebchat) { return; }
  var script = document.currentScript;
  var src = script && script.src;
  if (!src) {
    var all = document.getElementsByTagName("script");
    for (var i = 0; i < all.length; i++) { if (/\/chat\/widget\.js(\?|#|$)/.test(all[i].src)) { src = all[i].src; } }
  }
  if (!src) { return; }
  var base = src.replace(/\/chat\/widget\.js.*$/, "");
  var botOrigin = new URL(base).origin;
  var here = window.location.origin;
  if (here !== botOrigin && settings.origins.indexOf(here) < 0) {
    // The bot would refuse to be framed here (frame-ancestors): show nothing rather than a broken button.
    if (window.console) { window.console.warn("webchat: " + here + " is not in WEBCHAT_ALLOWED_ORIGINS"); }
    return;
  }
  window.__cityWebchat = true;

  var ACCENT = "#00703c";
  var FOCUS = "#1a4f9c";
  var button, panel, frame;
  var small = window.matchMedia ? window.matchMedia("(max-width: 480px)") : null;

  function css(el, styles) { for (var k in styles) { if (Object.prototype.hasOwnProperty.call(styles, k)) { el.style[k] = styles[k]; } } }

  function focusRing(el, color) {
    el.addEventListener("focus", function () { css(el, {outline: "3px solid " + color, outlineOffset: "2px"}); });
    el.addEventListener("blur", function () { css(el, {outline: "none"}); });
  }

  function layout() {
    if (!panel) { return; }
    if (small && small.matches) {
      css(panel, {left: "0", right: "0", top: "0", bottom: "0", width: "100%", height: "100%", borderRadius: "0", border: "0"});
    } else {
      css(panel, {left: "auto", top: "auto", right: "16px", bottom: "80px", width: "380px", height: "min(600px, calc(100vh - 100px))",
        borderRadius: "12px", border: "1px solid #6b7580"});
    }
  }

  function open() {
    if (!panel) {
      panel = document.createElement("div");
      panel.id = "city-webchat-panel";
      panel.setAttribute("role", "dialog");
      panel.setAttribute("aria-label", settings.title);
      css(panel, {position: "fixed", boxSizing: "border-box", zIndex: "2147483001", background: "#fff", boxShadow: "0 4px 24px rgba(0,0,0,.3)",
        overflow: "hidden"});
      frame = document.createElement("iframe");
      frame.src = base + "/chat";
      frame.title = settings.title;
      css(frame, {width: "100%", height: "100%", border: "0", display: "block"});
      panel.appendChild(frame);
      document.body.appendChild(panel);
      frame.addEventListener("load", function () { frame.focus(); post("webchat-open"); });
      if (small && small.addEventListener) { small.addEventListener("change", layout); }
      layout();
    }
    panel.style.display = "block";
    button.setAttribute("aria-expanded", "true");
    button.style.display = small && small.matches ? "none" : "block";
    frame.focus();
    post("webchat-open");
  }

  function close() {
    if (!panel || panel.style.display === "none") { return; }
    panel.style.display = "none";
    button.style.display = "block";
    button.setAttribute("aria-expanded", "false");
    button.focus();
  }

  function post(type) {
    if (frame && frame.contentWindow) { frame.contentWindow.postMessage({type: type}, botOrigin); }
  }

  function init() {
    button = document.createElement("button");
    button.type = "button";
    button.id = "city-webchat-button";
    button.textContent = "チャットで質問";
    button.setAttribute("aria-label", settings.title + "を開く");
    button.setAttribute("aria-haspopup", "dialog");
    button.setAttribute("aria-expanded", "false");
    button.setAttribute("aria-controls", "city-webchat-panel");
    css(button, {position: "fixed", right: "16px", bottom: "16px", zIndex: "2147483000", background: ACCENT, color: "#fff",
      border: "2px solid #fff", borderRadius: "24px", padding: "10px 18px", minHeight: "48px", font: "bold 16px/1.4 sans-serif",
      boxShadow: "0 2px 8px rgba(0,0,0,.3)", cursor: "pointer"});
    focusRing(button, FOCUS);
    button.addEventListener("click", function () {
      if (panel && panel.style.display !== "none") { close(); } else { open(); }
    });
    document.body.appendChild(button);
    window.addEventListener("message", function (event) {
      if (event.origin === botOrigin && frame && event.source === frame.contentWindow && event.data && event.data.type === "webchat-close") {
        close();
      }
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { close(); }
    });
  }

  if (document.body) { init(); } else { document.addEventListener("DOMContentLoaded", init); }
})();
