/* LINE シミュレーター: a LINE-like chat page for development.
 *
 * Every resident action goes to /simulator/api/*, which asks the fake LINE platform to sign and post
 * the webhook event to the bot. The bot's messages are read back by polling /simulator/api/messages.
 * The resident's own bubbles exist only here (LINE never echoes them), so each resident's transcript
 * is kept in localStorage and the bot's messages are appended to it in the order they arrive.
 *
 * Message content is always inserted with textContent / DOM properties, never as HTML.
 *
 * Locations and photos: LINE's location and camera / camera-roll actions (in quick replies) and the
 * "+" of the input bar open a small panel (latitude, longitude, optional name and address, preset
 * points) or a file picker (JPEG or PNG, size-checked here and again by the server); the fake
 * platform serves a sent photo's bytes to the bot at GET /v2/bot/message/{id}/content.
 */
(function () {
  "use strict";

  var POLL_MS = 700;
  var OTHERS_EVERY = 5; // poll residents not on screen every 5th tick (unread badges)
  var MAX_ITEMS = 500;
  var STORE = "lineSimulator.v1.";
  var IMAGE_TYPES = ["image/jpeg", "image/png"];
  var THUMBNAIL_PX = 240; // the transcript keeps a small copy of a sent photo, not the photo
  var URL_RE = /(https?:\/\/[^\s<>"'「」（）()]+)/g;
  var SPACING = { none: 0, xs: 2, sm: 4, md: 8, lg: 12, xl: 16, xxl: 20 };
  var TEXT_SIZE = { xxs: 11, xs: 13, sm: 14, md: 16, lg: 19, xl: 22, xxl: 29, "3xl": 35, "4xl": 48, "5xl": 74 };
  var IMAGE_SIZE = { xxs: 40, xs: 60, sm: 80, md: 100, lg: 120, xl: 140, xxl: 160, "3xl": 180, "4xl": 200, "5xl": 240 };
  var BUBBLE_WIDTH = { nano: 120, micro: 160, deca: 220, hecto: 240, kilo: 260, mega: 300, giga: 386 };

  var root = document.getElementById("simulator");
  var api = root.getAttribute("data-api");
  var fixedResidents = JSON.parse(root.getAttribute("data-residents") || "[]");
  var el = {
    list: document.getElementById("resident-list"),
    transcript: document.getElementById("transcript"),
    quick: document.getElementById("quick-replies"),
    status: document.getElementById("status"),
    form: document.getElementById("composer"),
    input: document.getElementById("message"),
    send: document.getElementById("send"),
    who: document.getElementById("chat-who"),
    userId: document.getElementById("user-id"),
    follow: document.getElementById("follow"),
    block: document.getElementById("block"),
    clear: document.getElementById("clear"),
    newResident: document.getElementById("new-resident"),
    attach: document.getElementById("attach"),
    attachMenu: document.getElementById("attach-menu"),
    attachLocation: document.getElementById("attach-location"),
    attachImage: document.getElementById("attach-image"),
    imageFile: document.getElementById("image-file"),
    locationPanel: document.getElementById("location-panel"),
    lat: document.getElementById("location-lat"),
    lon: document.getElementById("location-lon"),
    title: document.getElementById("location-title"),
    address: document.getElementById("location-address"),
    locationSend: document.getElementById("location-send"),
    locationCancel: document.getElementById("location-cancel"),
    locationError: document.getElementById("location-error"),
  };
  var imageMaxBytes = parseInt(root.getAttribute("data-image-max-bytes"), 10) || 10 * 1024 * 1024;

  var residents = [];
  var chats = {}; // userId -> {items, since, blocked, unread}
  var active = null;
  var tick = 0;
  var polling = {};
  var nextItemId = 1;

  // ---- storage -------------------------------------------------------------------------------

  function load(key, fallback) {
    try {
      var raw = window.localStorage.getItem(STORE + key);
      return raw ? JSON.parse(raw) : fallback;
    } catch (e) {
      return fallback;
    }
  }

  function save(key, value) {
    try {
      window.localStorage.setItem(STORE + key, JSON.stringify(value));
    } catch (e) {
      /* storage full or disabled: the page still works, it just forgets on reload */
    }
  }

  function chatOf(userId) {
    if (!chats[userId]) {
      var stored = load("chat." + userId, null);
      chats[userId] = stored && Array.isArray(stored.items)
        ? stored
        : { items: [], since: 0, blocked: false, unread: 0 };
      chats[userId].items.forEach(function (item) {
        item.id = nextItemId++;
        delete item.pending;
      });
    }
    return chats[userId];
  }

  function persist(userId) {
    var chat = chatOf(userId);
    if (chat.items.length > MAX_ITEMS) chat.items = chat.items.slice(-MAX_ITEMS);
    save("chat." + userId, chat);
  }

  // ---- residents -----------------------------------------------------------------------------

  function randomUserId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return "U" + Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  function residentName(index) {
    var letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    return "住民" + (index < letters.length ? letters.charAt(index) : String(index + 1));
  }

  function addResident() {
    var extra = load("residents", []);
    var resident = { name: residentName(fixedResidents.length + extra.length), userId: randomUserId() };
    extra.push(resident);
    save("residents", extra);
    residents.push(resident);
    renderResidentList();
    select(resident.userId);
  }

  function residentById(userId) {
    for (var i = 0; i < residents.length; i++) if (residents[i].userId === userId) return residents[i];
    return null;
  }

  function previewOf(item) {
    if (!item) return "まだメッセージはありません";
    if (item.who === "me" || item.who === "system") return item.text;
    var m = item.message || {};
    if (m.type === "text") return m.text;
    if (m.type === "image") return "画像";
    if (m.type === "sticker") return "スタンプ";
    return m.altText || "メッセージ";
  }

  function renderResidentList() {
    el.list.textContent = "";
    residents.forEach(function (resident) {
      var chat = chatOf(resident.userId);
      var li = document.createElement("li");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "resident" + (resident.userId === active ? " active" : "");
      button.setAttribute("data-user", resident.userId);
      button.setAttribute("aria-pressed", resident.userId === active ? "true" : "false");
      var avatar = span("resident-avatar", resident.name.replace("住民", "").slice(0, 2));
      var body = span("resident-body", "");
      body.appendChild(span("resident-name", resident.name + (chat.blocked ? "（ブロック中）" : "")));
      body.appendChild(span("resident-preview", String(previewOf(chat.items[chat.items.length - 1])).slice(0, 40)));
      button.appendChild(avatar);
      button.appendChild(body);
      if (chat.unread > 0 && resident.userId !== active) {
        button.appendChild(span("badge", String(chat.unread)));
      }
      button.addEventListener("click", function () { select(resident.userId); });
      li.appendChild(button);
      el.list.appendChild(li);
    });
  }

  function select(userId) {
    active = userId;
    save("active", userId);
    var chat = chatOf(userId);
    chat.unread = 0;
    var resident = residentById(userId);
    el.who.textContent = resident ? resident.name + " として表示中" : "";
    el.userId.textContent = userId;
    renderResidentList();
    renderTranscript();
    updateComposer();
    poll(userId);
  }

  // ---- small DOM helpers ---------------------------------------------------------------------

  function span(className, text) {
    var node = document.createElement("span");
    if (className) node.className = className;
    if (text) node.textContent = text;
    return node;
  }

  function div(className) {
    var node = document.createElement("div");
    if (className) node.className = className;
    return node;
  }

  /* Text with line breaks (CSS pre-wrap) and http(s) links made clickable. */
  function richText(node, text) {
    String(text).split(URL_RE).forEach(function (part, index) {
      if (index % 2 === 1) {
        var a = document.createElement("a");
        a.href = part;
        a.textContent = part;
        a.target = "_blank";
        a.rel = "noopener noreferrer";
        node.appendChild(a);
      } else if (part) {
        node.appendChild(document.createTextNode(part));
      }
    });
    return node;
  }

  /* An <img> that keeps its place but hides the broken-image glyph when the URL does not load. */
  function image(url, alt, className) {
    var img = document.createElement("img");
    img.src = safeImageUrl(url);
    img.alt = alt || "";
    if (className) img.className = className;
    img.addEventListener("error", function () { img.classList.add("broken"); });
    return img;
  }

  function safeImageUrl(url) {
    return typeof url === "string" && /^(https?:|data:image\/)/.test(url) ? url : "";
  }

  /* The time shown beside a message is the server's, in Japan time ("9:05"), sent with every API
     answer: the browser's clock and time zone are not used. Items kept from before carry only
     their epoch milliseconds: those are turned into Japan time (UTC+9, no daylight saving). */
  function clock(item) {
    if (item.time) return item.time;
    if (!item.at) return "";
    var d = new Date(item.at + 9 * 3600 * 1000);
    return d.getUTCHours() + ":" + ("0" + d.getUTCMinutes()).slice(-2);
  }

  // ---- transcript ----------------------------------------------------------------------------

  function renderTranscript() {
    el.transcript.textContent = "";
    var chat = chatOf(active);
    if (!chat.items.length) {
      var empty = div("empty");
      empty.textContent = "「友だち追加」を押すか、メッセージを送ってみましょう。";
      el.transcript.appendChild(empty);
    }
    chat.items.forEach(function (item) { el.transcript.appendChild(renderItem(item)); });
    renderQuickReplies();
    scrollToEnd();
  }

  function scrollToEnd() {
    el.transcript.scrollTop = el.transcript.scrollHeight;
  }

  function addItem(userId, item) {
    var chat = chatOf(userId);
    item.id = nextItemId++;
    chat.items.push(item);
    persist(userId);
    if (userId === active) {
      var empty = el.transcript.querySelector(".empty");
      if (empty) empty.remove();
      el.transcript.appendChild(renderItem(item));
      renderQuickReplies();
      scrollToEnd();
    }
    return item;
  }

  function refreshItem(userId, item) {
    persist(userId);
    if (userId !== active) return;
    var old = el.transcript.querySelector('[data-item="' + item.id + '"]');
    if (old) old.replaceWith(renderItem(item));
  }

  function renderItem(item) {
    var row;
    if (item.who === "system") {
      row = div("row system");
      row.appendChild(span("system-text", item.text));
    } else if (item.who === "me") {
      row = div("row me");
      var meta = div("meta");
      if (item.failed) meta.appendChild(span("failed", "送信できませんでした"));
      else if (item.pending) meta.appendChild(span("pending", "送信中…"));
      meta.appendChild(span("time", clock(item)));
      row.appendChild(meta);
      if (item.image) {
        var sent = div("bubble me-media");
        sent.appendChild(image(item.image, "送った画像", ""));
        row.appendChild(sent);
      } else {
        row.appendChild(richText(div("bubble me-bubble"), item.text));
      }
    } else {
      row = div("row bot");
      row.appendChild(span("avatar", "市"));
      var content = renderMessage(item.message || {});
      row.appendChild(content);
      row.appendChild(div("meta")).appendChild(span("time", clock(item)));
    }
    row.setAttribute("data-item", String(item.id));
    return row;
  }

  function renderMessage(m) {
    var bubble;
    switch (m.type) {
      case "text":
        return richText(div("bubble bot-bubble"), m.text || "");
      case "textV2":
        return richText(div("bubble bot-bubble"), String(m.text || "").replace(/\{(\w+)\}/g, function (all, key) {
          var sub = (m.substitution || {})[key] || {};
          return sub.type === "mention" ? "@住民" : sub.type === "emoji" ? "☺" : all;
        }));
      case "image":
      case "video":
        bubble = div("bubble media");
        var img = image(m.previewImageUrl || m.originalContentUrl, m.type === "video" ? "動画のプレビュー" : "画像", "media-image");
        if (safeImageUrl(m.originalContentUrl)) {
          img.addEventListener("click", function () { openUri(m.originalContentUrl); });
        }
        bubble.appendChild(img);
        if (m.type === "video") bubble.appendChild(span("media-label", "▶ 動画"));
        return bubble;
      case "sticker":
        return richText(div("bubble bot-bubble sticker"), "［スタンプ］");
      case "audio":
        return richText(div("bubble bot-bubble"), "［音声メッセージ］");
      case "location":
        return richText(div("bubble bot-bubble"), "📍 " + (m.title || "位置情報") + "\n" + (m.address || ""));
      case "flex":
        bubble = div("flex-message");
        bubble.title = m.altText || "";
        bubble.appendChild(renderFlexContainer(m.contents || {}));
        return bubble;
      case "template":
        return renderTemplate(m);
      default:
        return richText(div("bubble bot-bubble"), m.altText || "［" + (m.type || "不明な") + " メッセージ］");
    }
  }

  // ---- quick replies -------------------------------------------------------------------------

  function renderQuickReplies() {
    el.quick.textContent = "";
    var chat = chatOf(active);
    var last = chat.items[chat.items.length - 1];
    var items = last && last.who === "bot" && !last.quickUsed && last.message && last.message.quickReply
      ? last.message.quickReply.items || []
      : [];
    items.forEach(function (entry) {
      var action = (entry && entry.action) || {};
      var button = document.createElement("button");
      button.type = "button";
      button.className = "quick-reply";
      if (safeImageUrl(entry.imageUrl)) {
        button.appendChild(image(entry.imageUrl, "", ""));
      }
      button.appendChild(document.createTextNode(action.label || "（ラベルなし）"));
      button.addEventListener("click", function () {
        last.quickUsed = true; // in LINE the quick-reply bar goes away once tapped
        persist(active);
        renderQuickReplies();
        perform(action);
      });
      el.quick.appendChild(button);
    });
    el.quick.hidden = items.length === 0;
  }

  // ---- flex ----------------------------------------------------------------------------------

  function renderFlexContainer(container) {
    if (container.type === "carousel") {
      var carousel = div("flex-carousel");
      (container.contents || []).forEach(function (bubble) { carousel.appendChild(renderFlexBubble(bubble)); });
      return carousel;
    }
    return renderFlexBubble(container);
  }

  function renderFlexBubble(bubble) {
    var node = div("flex-bubble");
    var width = BUBBLE_WIDTH[bubble.size];
    if (width) node.style.width = width + "px";
    if (bubble.direction === "rtl") node.dir = "rtl";
    var styles = bubble.styles || {};
    ["header", "hero", "body", "footer"].forEach(function (section) {
      if (!bubble[section]) return;
      var style = styles[section] || {};
      var block = div("flex-section flex-" + section);
      if (style.backgroundColor) block.style.backgroundColor = style.backgroundColor;
      if (style.separator) block.style.borderTop = "1px solid " + (style.separatorColor || "#e0e0e0");
      block.appendChild(renderFlexComponent(bubble[section], "vertical"));
      node.appendChild(block);
    });
    if (bubble.action) clickable(node, bubble.action);
    return node;
  }

  function px(value, table) {
    if (value === undefined || value === null) return null;
    if (table && Object.prototype.hasOwnProperty.call(table, value)) return table[value] + "px";
    return /^\d+(\.\d+)?(px|%)$/.test(String(value)) ? String(value) : null;
  }

  function applyCommon(node, c, parentLayout) {
    if (typeof c.flex === "number") node.style.flex = c.flex + " " + (c.flex ? 1 : 0) + " 0";
    else if (parentLayout === "horizontal" || parentLayout === "baseline") {
      if (c.type !== "icon" && c.type !== "separator" && c.type !== "spacer") node.style.flex = "1 1 0";
    }
    var margin = px(c.margin, SPACING);
    if (margin) {
      if (parentLayout === "vertical") node.style.marginTop = margin;
      else node.style.marginLeft = margin;
    }
    if (c.position === "absolute") {
      node.style.position = "absolute";
      ["offsetTop", "offsetBottom", "offsetStart", "offsetEnd"].forEach(function (key) {
        var value = px(c[key], SPACING);
        var side = { offsetTop: "top", offsetBottom: "bottom", offsetStart: "left", offsetEnd: "right" }[key];
        if (value) node.style[side] = value;
      });
    }
    if (c.gravity) node.style.alignSelf = { top: "flex-start", bottom: "flex-end", center: "center" }[c.gravity] || "";
    if (c.align && c.type !== "text") node.style.alignSelf = { start: "flex-start", end: "flex-end", center: "center" }[c.align] || "";
  }

  function renderFlexComponent(c, parentLayout) {
    var node;
    c = c || {};
    switch (c.type) {
      case "box":
        node = div("flex-box flex-" + (c.layout || "vertical"));
        var layout = c.layout || "vertical";
        var gap = px(c.spacing, SPACING);
        if (gap) node.style.gap = gap;
        if (c.backgroundColor) node.style.backgroundColor = c.backgroundColor;
        if (c.borderColor) node.style.borderColor = c.borderColor;
        if (c.borderWidth) node.style.borderWidth = px(c.borderWidth, { none: 0, light: 0.5, normal: 1, medium: 2, semi_bold: 3, bold: 4 }) || "1px";
        if (c.borderWidth || c.borderColor) node.style.borderStyle = "solid";
        if (c.cornerRadius) node.style.borderRadius = px(c.cornerRadius, SPACING) || "";
        ["paddingAll", "paddingTop", "paddingBottom", "paddingStart", "paddingEnd"].forEach(function (key) {
          var value = px(c[key], SPACING);
          if (!value) return;
          var prop = { paddingAll: "padding", paddingTop: "paddingTop", paddingBottom: "paddingBottom", paddingStart: "paddingLeft", paddingEnd: "paddingRight" }[key];
          node.style[prop] = value;
        });
        if (c.width) node.style.width = px(c.width) || "";
        if (c.height) node.style.height = px(c.height) || "";
        if (c.justifyContent) node.style.justifyContent = c.justifyContent;
        if (c.alignItems) node.style.alignItems = c.alignItems;
        (c.contents || []).forEach(function (child) { node.appendChild(renderFlexComponent(child, layout)); });
        break;
      case "text":
        node = div("flex-text");
        if (Array.isArray(c.contents) && c.contents.length) {
          c.contents.forEach(function (s) {
            var part = span("flex-span", s.text || "");
            styleText(part, s);
            node.appendChild(part);
          });
        } else {
          richText(node, c.text || "");
        }
        styleText(node, c);
        if (c.wrap !== true) node.classList.add("nowrap");
        if (c.maxLines) { node.style.webkitLineClamp = String(c.maxLines); node.classList.add("clamp"); }
        if (c.align) node.style.textAlign = { start: "left", end: "right", center: "center" }[c.align] || "";
        break;
      case "span":
        node = span("flex-span", c.text || "");
        styleText(node, c);
        break;
      case "button":
        node = document.createElement("button");
        node.type = "button";
        node.className = "flex-button flex-button-" + (c.style || "link") + (c.height === "sm" ? " small" : "");
        node.textContent = (c.action && c.action.label) || "ボタン";
        if (c.color) {
          if (c.style === "primary" || c.style === "secondary") node.style.backgroundColor = c.color;
          else node.style.color = c.color;
        }
        if (c.action) node.addEventListener("click", function (e) { e.stopPropagation(); perform(c.action); });
        break;
      case "separator":
        node = div("flex-separator " + (parentLayout === "vertical" ? "flex-separator-h" : "flex-separator-v"));
        if (c.color) node.style.backgroundColor = c.color;
        break;
      case "image":
        node = div("flex-image");
        var img = image(c.url, "", "");
        var size = c.size === "full" ? "100%" : px(c.size || "md", IMAGE_SIZE);
        if (size) img.style.width = size;
        img.style.maxWidth = "100%";
        if (c.aspectRatio && /^\d+(\.\d+)?:\d+(\.\d+)?$/.test(c.aspectRatio)) {
          img.style.aspectRatio = c.aspectRatio.replace(":", " / ");
        }
        img.style.objectFit = c.aspectMode === "cover" ? "cover" : "contain";
        if (c.backgroundColor) img.style.backgroundColor = c.backgroundColor;
        node.style.textAlign = { start: "left", end: "right" }[c.align] || "center";
        node.appendChild(img);
        break;
      case "icon":
        node = image(c.url, "", "flex-icon");
        var iconSize = TEXT_SIZE[c.size || "md"] || 16;
        node.style.width = node.style.height = iconSize + "px";
        break;
      case "filler":
        node = div("flex-filler");
        break;
      case "spacer":
        node = div("flex-spacer");
        node.style.height = px(c.size || "md", SPACING) || "8px";
        break;
      case "video":
        node = c.altContent ? renderFlexComponent(c.altContent, parentLayout) : div("flex-text");
        break;
      default:
        node = div("flex-text");
        node.textContent = "［未対応の要素: " + (c.type || "?") + "］";
    }
    applyCommon(node, c, parentLayout);
    if (c.action && c.type !== "button") clickable(node, c.action);
    return node;
  }

  function styleText(node, c) {
    var size = TEXT_SIZE[c.size];
    if (size) node.style.fontSize = size + "px";
    else if (/^\d+px$/.test(String(c.size || ""))) node.style.fontSize = c.size;
    if (c.weight === "bold") node.style.fontWeight = "bold";
    if (c.color) node.style.color = c.color;
    if (c.style === "italic") node.style.fontStyle = "italic";
    if (c.decoration === "underline" || c.decoration === "line-through") node.style.textDecoration = c.decoration;
  }

  function clickable(node, action) {
    node.classList.add("clickable");
    node.addEventListener("click", function (e) {
      e.stopPropagation();
      perform(action);
    });
  }

  // ---- template messages ---------------------------------------------------------------------

  function renderTemplate(m) {
    var t = m.template || {};
    var wrap = div("template-message");
    var alt = div("template-alt");
    alt.textContent = m.altText || "テンプレートメッセージ";
    wrap.appendChild(alt);
    var columns = t.type === "carousel" ? t.columns || [] : t.type === "image_carousel" ? t.columns || [] : [t];
    var row = div(columns.length > 1 ? "flex-carousel" : "");
    columns.forEach(function (col) {
      var card = div("flex-bubble template-card");
      if (safeImageUrl(col.thumbnailImageUrl || col.imageUrl)) {
        card.appendChild(image(col.thumbnailImageUrl || col.imageUrl, "", "template-image"));
      }
      var body = div("flex-section");
      if (col.title) {
        var title = div("flex-text template-title");
        title.textContent = col.title;
        body.appendChild(title);
      }
      if (col.text) body.appendChild(richText(div("flex-text template-text"), col.text));
      card.appendChild(body);
      var actions = col.actions || (col.action ? [col.action] : []);
      var footer = div("flex-section template-actions" + (t.type === "confirm" ? " confirm" : ""));
      actions.forEach(function (action) {
        var button = document.createElement("button");
        button.type = "button";
        button.className = "flex-button flex-button-link";
        button.textContent = action.label || "ボタン";
        button.addEventListener("click", function () { perform(action); });
        footer.appendChild(button);
      });
      if (actions.length) card.appendChild(footer);
      row.appendChild(card);
    });
    wrap.appendChild(row);
    return wrap;
  }

  // ---- actions -------------------------------------------------------------------------------

  function openUri(uri) {
    if (/^(https?:|tel:|mailto:)/i.test(uri || "")) {
      window.open(uri, "_blank", "noopener,noreferrer");
    } else {
      note("このリンク（" + uri + "）はシミュレーターでは開けません。");
    }
  }

  function perform(action) {
    var userId = active;
    action = action || {};
    switch (action.type) {
      case "message":
        sendText(userId, action.text || action.label || "");
        break;
      case "postback":
        sendPostback(userId, action.data || "", action.displayText || action.text || "", null);
        break;
      case "uri":
        openUri(action.uri || (action.altUri && action.altUri.desktop));
        break;
      case "datetimepicker":
        var mode = action.mode || "datetime";
        var hint = { date: "YYYY-MM-DD", time: "hh:mm", datetime: "YYYY-MM-DDThh:mm" }[mode];
        var value = window.prompt("日時を入力してください（" + hint + "）", action.initial || "");
        if (value) {
          var params = {};
          params[mode] = value;
          sendPostback(userId, action.data || "", "", params);
        }
        break;
      case "location":
        openLocationPanel();
        break;
      case "camera":
      case "cameraRoll":
        pickImage();
        break;
      case "clipboard":
        if (navigator.clipboard) navigator.clipboard.writeText(action.clipboardText || "");
        note("クリップボードにコピーしました。");
        break;
      default:
        note("「" + (action.label || action.type || "この操作") + "」はシミュレーターでは使えません。");
    }
  }

  function note(text) {
    addItem(active, { who: "system", text: text });
  }

  // ---- talking to the server -----------------------------------------------------------------

  function call(path, body) {
    return fetch(api + path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    }).then(answer);
  }

  function answer(response) {
    return response.json().catch(function () { return {}; }).then(function (data) {
      if (!response.ok) throw new Error(data.error || "サーバーがエラーを返しました（HTTP " + response.status + "）");
      return data;
    });
  }

  function afterEvent(userId, data) {
    if (!data.ok) showStatus("ボットが HTTP " + data.botStatus + " を返しました。サーバーのログを確認してください。");
    else showStatus("");
    burst(userId);
  }

  function sendText(userId, text) {
    if (!text.trim()) return;
    var item = addItem(userId, { who: "me", text: text, pending: true });
    call("/send", { user: userId, text: text })
      .then(function (data) { item.pending = false; item.time = data.time; refreshItem(userId, item); afterEvent(userId, data); })
      .catch(function (err) {
        item.pending = false;
        item.failed = true;
        refreshItem(userId, item);
        showStatus(err.message);
      });
  }

  function sendPostback(userId, data, displayText, params) {
    var item = displayText ? addItem(userId, { who: "me", text: displayText, pending: true }) : null;
    var body = { user: userId, data: data };
    if (displayText) body.displayText = displayText;
    if (params) body.params = params;
    call("/postback", body)
      .then(function (result) {
        if (item) { item.pending = false; item.time = result.time; refreshItem(userId, item); }
        afterEvent(userId, result);
      })
      .catch(function (err) {
        if (item) { item.pending = false; item.failed = true; refreshItem(userId, item); }
        showStatus(err.message);
      });
  }

  /* The item of a resident's own message: shown at once, marked sent or failed when the server answers. */
  function sendOwn(userId, item, path, body) {
    item.pending = true;
    addItem(userId, item);
    return call(path, body)
      .then(function (data) { item.pending = false; item.time = data.time; refreshItem(userId, item); afterEvent(userId, data); })
      .catch(function (err) {
        item.pending = false;
        item.failed = true;
        refreshItem(userId, item);
        showStatus(err.message);
      });
  }

  // ---- location and photo ---------------------------------------------------------------------

  function toggleAttachMenu(open) {
    var show = open === undefined ? el.attachMenu.hidden : open;
    el.attachMenu.hidden = !show;
    el.attach.setAttribute("aria-expanded", show ? "true" : "false");
  }

  function openLocationPanel() {
    toggleAttachMenu(false);
    el.locationError.hidden = true;
    el.locationPanel.hidden = false;
    el.lat.focus();
  }

  function closeLocationPanel() {
    el.locationPanel.hidden = true;
  }

  function locationError(text) {
    el.locationError.textContent = text;
    el.locationError.hidden = false;
  }

  function submitLocation() {
    var lat = Number(el.lat.value);
    var lon = Number(el.lon.value);
    if (el.lat.value.trim() === "" || !isFinite(lat) || lat < -90 || lat > 90) {
      locationError("緯度は -90 から 90 までの数で入力してください。");
      return;
    }
    if (el.lon.value.trim() === "" || !isFinite(lon) || lon < -180 || lon > 180) {
      locationError("経度は -180 から 180 までの数で入力してください。");
      return;
    }
    if (chatOf(active).blocked) return;
    var title = el.title.value.trim();
    var address = el.address.value.trim();
    closeLocationPanel();
    var shown = "位置情報: " + lat + ", " + lon + (title ? "\n" + title : "") + (address ? "\n" + address : "");
    var body = { user: active, latitude: lat, longitude: lon };
    if (title) body.title = title;
    if (address) body.address = address;
    sendOwn(active, { who: "me", text: shown }, "/location", body);
  }

  function pickImage() {
    toggleAttachMenu(false);
    el.imageFile.value = "";
    el.imageFile.click();
  }

  /* A small JPEG copy of the photo for the transcript (kept in localStorage), or "" if none can be made. */
  function thumbnail(dataUrl) {
    return new Promise(function (resolve) {
      var img = new Image();
      img.onload = function () {
        var scale = Math.min(1, THUMBNAIL_PX / Math.max(img.naturalWidth, img.naturalHeight, 1));
        var canvas = document.createElement("canvas");
        canvas.width = Math.max(1, Math.round(img.naturalWidth * scale));
        canvas.height = Math.max(1, Math.round(img.naturalHeight * scale));
        try {
          canvas.getContext("2d").drawImage(img, 0, 0, canvas.width, canvas.height);
          resolve(canvas.toDataURL("image/jpeg", 0.8));
        } catch (e) {
          resolve("");
        }
      };
      img.onerror = function () { resolve(""); };
      img.src = dataUrl;
    });
  }

  function sendImageFile(file) {
    var userId = active;
    if (!file || chatOf(userId).blocked) return;
    if (IMAGE_TYPES.indexOf(file.type) < 0) {
      showStatus("送れる画像は JPEG か PNG です。");
      return;
    }
    if (file.size > imageMaxBytes) {
      showStatus("画像が大きすぎます。" + Math.floor(imageMaxBytes / (1024 * 1024)) + "MB までの画像を選んでください。");
      return;
    }
    var reader = new FileReader();
    reader.onerror = function () { showStatus("画像を読み込めませんでした。"); };
    reader.onload = function () {
      var dataUrl = String(reader.result || "");
      var comma = dataUrl.indexOf(",");
      thumbnail(dataUrl).then(function (small) {
        sendOwn(userId, { who: "me", text: "［画像］", image: small }, "/image",
          { user: userId, contentType: file.type, data: dataUrl.slice(comma + 1) });
      });
    };
    reader.readAsDataURL(file);
  }

  function follow() {
    var userId = active;
    var chat = chatOf(userId);
    chat.blocked = false;
    addItem(userId, { who: "system", text: "友だち追加しました" });
    updateComposer();
    renderResidentList();
    call("/follow", { user: userId })
      .then(function (data) { afterEvent(userId, data); })
      .catch(function (err) { showStatus(err.message); });
  }

  function block() {
    var userId = active;
    var chat = chatOf(userId);
    chat.blocked = true;
    addItem(userId, { who: "system", text: "ブロックしました（ボットからのメッセージは届かなくなります）" });
    updateComposer();
    renderResidentList();
    call("/unfollow", { user: userId })
      .then(function (data) { afterEvent(userId, data); })
      .catch(function (err) { showStatus(err.message); });
  }

  function poll(userId) {
    if (polling[userId]) return Promise.resolve();
    polling[userId] = true;
    var chat = chatOf(userId);
    var url = api + "/messages?user=" + encodeURIComponent(userId) + "&since=" + chat.since;
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(answer)
      .then(function (data) {
        if (userId === active) showStatus("");
        if (data.next < chat.since) {
          // The fake platform restarted and forgot what it delivered: start counting again.
          chat.since = data.next;
          persist(userId);
          return;
        }
        chat.since = data.next;
        var fresh = data.messages || [];
        fresh.forEach(function (message) {
          if (!chat.blocked) addItem(userId, { who: "bot", message: message, time: data.time });
        });
        if (fresh.length) {
          if (userId !== active && !chat.blocked) chat.unread += fresh.length;
          persist(userId);
          renderResidentList();
        }
      })
      .catch(function (err) {
        if (userId === active) showStatus(err.message);
      })
      .then(function () { polling[userId] = false; });
  }

  /* Right after an event the reply arrives within a few hundred ms: look a few times quickly. */
  function burst(userId) {
    [150, 400, 900].forEach(function (ms) { window.setTimeout(function () { poll(userId); }, ms); });
  }

  function loop() {
    tick += 1;
    if (active && !document.hidden) poll(active);
    if (tick % OTHERS_EVERY === 0) {
      residents.forEach(function (r) { if (r.userId !== active) poll(r.userId); });
    }
    window.setTimeout(loop, POLL_MS);
  }

  function showStatus(text) {
    el.status.textContent = text || "";
    el.status.hidden = !text;
  }

  function updateComposer() {
    var blocked = chatOf(active).blocked;
    el.input.disabled = blocked;
    el.send.disabled = blocked;
    el.attach.disabled = blocked;
    if (blocked) {
      toggleAttachMenu(false);
      closeLocationPanel();
    }
    el.input.placeholder = blocked
      ? "ブロック中です。「友だち追加」でブロックを解除できます"
      : "メッセージを入力（Enter で送信、Shift+Enter で改行）";
    el.block.disabled = blocked;
  }

  // ---- wiring --------------------------------------------------------------------------------

  var composing = false;
  el.input.addEventListener("compositionstart", function () { composing = true; });
  el.input.addEventListener("compositionend", function () { composing = false; });
  el.input.addEventListener("keydown", function (e) {
    // Enter confirms kanji conversion while the IME is composing: only a plain Enter sends.
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && !composing && e.keyCode !== 229) {
      e.preventDefault();
      el.form.requestSubmit ? el.form.requestSubmit() : submit(e);
    }
  });
  el.input.addEventListener("input", function () {
    el.input.style.height = "auto";
    el.input.style.height = Math.min(el.input.scrollHeight, 120) + "px";
  });

  function submit(e) {
    if (e) e.preventDefault();
    var text = el.input.value;
    if (!text.trim() || chatOf(active).blocked) return;
    el.input.value = "";
    el.input.style.height = "auto";
    sendText(active, text);
    el.input.focus();
  }

  el.form.addEventListener("submit", submit);
  el.follow.addEventListener("click", follow);
  el.block.addEventListener("click", block);
  el.newResident.addEventListener("click", addResident);
  el.attach.addEventListener("click", function () { toggleAttachMenu(); });
  el.attachLocation.addEventListener("click", openLocationPanel);
  el.attachImage.addEventListener("click", pickImage);
  el.imageFile.addEventListener("change", function () { sendImageFile(el.imageFile.files && el.imageFile.files[0]); });
  el.locationSend.addEventListener("click", submitLocation);
  el.locationCancel.addEventListener("click", closeLocationPanel);
  Array.prototype.forEach.call(document.querySelectorAll(".preset-place"), function (button) {
    button.addEventListener("click", function () {
      el.lat.value = button.getAttribute("data-lat");
      el.lon.value = button.getAttribute("data-lon");
      el.title.value = "";
      el.address.value = "";
      el.locationError.hidden = true;
    });
  });
  document.addEventListener("keydown", function (e) {
    if (e.key !== "Escape") return;
    toggleAttachMenu(false);
    closeLocationPanel();
  });
  el.clear.addEventListener("click", function () {
    var chat = chatOf(active);
    chat.items = [];
    persist(active);
    renderTranscript();
    renderResidentList();
  });

  residents = fixedResidents.concat(load("residents", []));
  var remembered = load("active", null);
  select(residentById(remembered) ? remembered : residents[0].userId);
  window.setTimeout(loop, POLL_MS);
})();
