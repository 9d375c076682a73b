/* Streamfold website tracker — source of tracker.js (built with `make tracker`; the built file is committed).
 * <script src="https://track.example.com/tracker.js" data-write-key="wk_…" defer></script>
 * Automatic page_view, first_visit, button_click, link_click, form_submit, video_play/pause/complete; UTM and
 * click-id capture for the session; batches to /v1/batch, sendBeacon on page hide, retries from a local queue. */
(function (window, document) {
  "use strict";
  var VERSION = "__VERSION__";
  var existing = window.streamfold;
  if (existing && existing.loaded) return;

  var script = document.currentScript || document.querySelector("script[data-write-key]");
  function attr(name) {
    return script ? script.getAttribute("data-" + name) : null;
  }
  var writeKey = attr("write-key");
  var endpoint = (attr("endpoint") || (script && script.src ? new URL(script.src).origin : "")).replace(/\/+$/, "");
  var disabled = (attr("disable") || "").split(/[\s,]+/);
  var respectDnt = attr("respect-dnt") === "true";
  var SESSION_MS = 30 * 60 * 1000;
  var MAX_QUEUE = 500;
  var BATCH = 50;
  var CLICK_IDS = ["gclid", "gbraid", "wbraid", "fbclid", "msclkid", "ttclid", "li_fat_id", "twclid", "ScCid", "rdt_cid"];
  var UTM = { utm_source: "source", utm_medium: "medium", utm_campaign: "name", utm_term: "term", utm_content: "content" };
  var P = "sf_";

  function on(name) {
    return disabled.indexOf(name) < 0;
  }
  function now() {
    return new Date().getTime();
  }
  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, function (c) {
      var r = (Math.random() * 16) | 0;
      return (c === "x" ? r : (r & 3) | 8).toString(16);
    });
  }

  // ---------------------------------------------------------------- first-party storage
  function lsGet(k) {
    try {
      return window.localStorage.getItem(P + k);
    } catch (e) {
      return null;
    }
  }
  function lsSet(k, v) {
    try {
      if (v === null) window.localStorage.removeItem(P + k);
      else window.localStorage.setItem(P + k, v);
    } catch (e) {}
  }
  function cookieGet(k) {
    var m = document.cookie.match(new RegExp("(?:^|; )" + P + k + "=([^;]*)"));
    return m ? decodeURIComponent(m[1]) : null;
  }
  function cookieSet(k, v, days) {
    try {
      document.cookie =
        P + k + "=" + encodeURIComponent(v || "") + "; path=/; max-age=" + (v === null ? 0 : days * 86400) + "; SameSite=Lax";
    } catch (e) {}
  }
  function durable(k, v) {
    if (v !== undefined) {
      cookieSet(k, v, 365);
      lsSet(k, v);
      return v;
    }
    return cookieGet(k) || lsGet(k);
  }
  function json(text, fallback) {
    try {
      return text ? JSON.parse(text) : fallback;
    } catch (e) {
      return fallback;
    }
  }

  // ---------------------------------------------------------------- identity, session, campaign
  var anonymousId = durable("aid");
  var newVisitor = !anonymousId;
  if (!anonymousId) anonymousId = durable("aid", uuid());
  else durable("aid", anonymousId);
  var userId = lsGet("uid");

  function landingCampaign() {
    var found = {};
    var any = false;
    try {
      new URL(location.href).searchParams.forEach(function (v, k) {
        if (!v) return;
        if (UTM[k]) found[UTM[k]] = v;
        else if (CLICK_IDS.indexOf(k) >= 0) found[k] = v;
        else return;
        any = true;
      });
    } catch (e) {}
    return any ? found : null;
  }

  // campaign and referrer of this arrival: they start or replace the session's, once
  var arrival = landingCampaign();
  var ref = document.referrer;
  var arrivalRef = ref && ref.indexOf(location.origin) !== 0 ? ref : "";

  function session() {
    var t = now();
    var s = json(lsGet("session"), null);
    if (!s || t - s.last > SESSION_MS) s = { id: uuid(), campaign: arrival || {}, referrer: arrivalRef };
    else if (arrival) {
      s.campaign = arrival;
      s.referrer = arrivalRef;
    }
    arrival = null;
    s.last = t;
    lsSet("session", JSON.stringify(s));
    return s;
  }

  var optedOut = lsGet("optout") === "1" || (respectDnt && (navigator.doNotTrack === "1" || window.doNotTrack === "1"));

  // ---------------------------------------------------------------- the queue and delivery
  var queue = json(lsGet("queue"), []);
  var inFlight = false;
  var retryMs = 0;
  var timer = null;

  function save() {
    if (queue.length > MAX_QUEUE) queue = queue.slice(queue.length - MAX_QUEUE);
    lsSet("queue", queue.length ? JSON.stringify(queue) : null);
  }
  function schedule(ms) {
    if (timer) clearTimeout(timer);
    timer = setTimeout(flush, ms);
  }
  function body(messages) {
    return JSON.stringify({ batch: messages, sentAt: new Date().toISOString(), writeKey: writeKey });
  }
  function flush() {
    timer = null;
    if (inFlight || !queue.length || !writeKey) return;
    var sending = queue.slice(0, BATCH);
    inFlight = true;
    // text/plain and the key in the body: a "simple" cross-origin request, no preflight
    fetch(endpoint + "/v1/batch", { method: "POST", body: body(sending), headers: { "Content-Type": "text/plain" }, keepalive: true, credentials: "omit" })
      .then(function (r) {
        if (r.status >= 500 || r.status === 429 || r.status === 408) throw new Error("retry " + r.status);
        if (r.status >= 400 && window.console) console.warn("streamfold: events refused (" + r.status + ")");
        return true;
      })
      .then(function () {
        var sent = {};
        sending.forEach(function (m) {
          sent[m.messageId] = 1;
        });
        queue = queue.filter(function (m) {
          return !sent[m.messageId];
        });
        save();
        retryMs = 0;
        inFlight = false;
        if (queue.length) schedule(0);
      })
      ["catch"](function () {
        inFlight = false;
        retryMs = Math.min(retryMs ? retryMs * 2 : 1000, 30000);
        schedule(retryMs + Math.random() * 250);
      });
  }
  function beaconAll() {
    if (!queue.length || !writeKey || !navigator.sendBeacon) return;
    for (var i = 0; i < queue.length; i += BATCH) {
      var part = queue.slice(i, i + BATCH);
      // the queue is kept: beacons may be lost, and a resend is deduplicated by messageId
      navigator.sendBeacon(endpoint + "/v1/batch", new Blob([body(part)], { type: "text/plain" }));
    }
  }

  function pageContext() {
    return { url: location.href, path: location.pathname, search: location.search, title: document.title, referrer: document.referrer };
  }

  function enqueue(type, fields) {
    if (optedOut) return;
    var s = session();
    var msg = {
      type: type,
      messageId: uuid(),
      anonymousId: anonymousId,
      userId: userId || null,
      timestamp: new Date().toISOString(),
      context: {
        page: pageContext(),
        campaign: s.campaign,
        session: { id: s.id, referrer: s.referrer },
        library: { name: "streamfold-tracker", version: VERSION },
        locale: navigator.language,
        screen: { width: screen.width, height: screen.height },
      },
    };
    for (var k in fields) msg[k] = fields[k];
    queue.push(msg);
    save();
    if (!timer && !inFlight) schedule(queue.length >= BATCH ? 0 : 250);
  }

  // ---------------------------------------------------------------- public API
  var api = {
    loaded: true,
    version: VERSION,
    track: function (event, properties) {
      enqueue("track", { event: String(event), properties: properties || {} });
    },
    page: function (properties) {
      enqueue("page", { name: document.title, properties: properties || {} });
    },
    identify: function (id, traits) {
      if (id !== undefined && id !== null && id !== "") {
        userId = String(id);
        lsSet("uid", userId);
      }
      enqueue("identify", { traits: traits || {} });
    },
    reset: function () {
      userId = null;
      lsSet("uid", null);
      lsSet("session", null);
      anonymousId = durable("aid", uuid());
    },
    optOut: function () {
      optedOut = true;
      queue = [];
      save();
      lsSet("optout", "1");
    },
    optIn: function () {
      optedOut = false;
      lsSet("optout", null);
    },
    flush: flush,
  };

  // ---------------------------------------------------------------- automatic events
  function text(el) {
    return (el.innerText || el.textContent || el.value || el.getAttribute("aria-label") || "").replace(/\s+/g, " ").trim().slice(0, 200);
  }
  var lastUrl = location.href;
  function pageView() {
    lastUrl = location.href;
    if (on("page_view")) api.page();
  }
  function maybeNavigated() {
    if (location.href !== lastUrl) pageView();
  }

  function attach() {
    if (on("first_visit") && newVisitor && !durable("fv")) {
      durable("fv", "1");
      api.track("first_visit", {});
    }
    pageView();
    ["pushState", "replaceState"].forEach(function (m) {
      var orig = history[m];
      history[m] = function () {
        var r = orig.apply(this, arguments);
        setTimeout(maybeNavigated, 0);
        return r;
      };
    });
    window.addEventListener("popstate", maybeNavigated);
    window.addEventListener("hashchange", maybeNavigated);

    document.addEventListener(
      "click",
      function (e) {
        var el = e.target && e.target.closest ? e.target.closest("a,button,input[type=submit],input[type=button],[role=button]") : null;
        if (!el || el.hasAttribute("data-streamfold-ignore")) return;
        if (el.tagName === "A") {
          if (!on("link_click")) return;
          var href = el.href || "";
          var outbound = false;
          try {
            outbound = new URL(href, location.href).host !== location.host;
          } catch (err) {}
          api.track("link_click", { text: text(el), href: href, outbound: outbound, id: el.id || null });
        } else if (on("button_click")) {
          api.track("button_click", { text: text(el), id: el.id || null, name: el.getAttribute("name") });
        }
      },
      true
    );

    document.addEventListener(
      "submit",
      function (e) {
        var form = e.target;
        if (!on("form_submit") || !form || form.hasAttribute("data-streamfold-ignore")) return;
        var fields = [];
        var values = {};
        Array.prototype.forEach.call(form.elements, function (f) {
          if (!f.name || f.tagName === "BUTTON" || f.type === "submit") return;
          fields.push(f.name);
          // values only where the site allows them, and never for secrets
          var secret = f.type === "password" || f.type === "hidden" || /^cc-/.test(f.autocomplete || "") || /card|cvc|cvv|iban|ssn|passw/i.test(f.name);
          if (!secret && f.hasAttribute("data-streamfold-value")) {
            values[f.name] = f.type === "checkbox" || f.type === "radio" ? f.checked : f.value;
          }
        });
        api.track("form_submit", {
          form_id: form.id || null,
          form_name: form.getAttribute("name"),
          action: form.getAttribute("action") || location.pathname,
          fields: fields,
          values: values,
        });
        flush();
      },
      true
    );

    if (on("video")) {
      var VIDEO = { play: "video_play", pause: "video_pause", ended: "video_complete" };
      Object.keys(VIDEO).forEach(function (type) {
        document.addEventListener(
          type,
          function (e) {
            var v = e.target;
            if (!v || v.tagName !== "VIDEO") return;
            if (type === "pause" && v.ended) return; // "ended" follows; a pause at the end is not a pause
            api.track(VIDEO[type], {
              src: v.currentSrc || v.getAttribute("src") || null,
              id: v.id || null,
              position: Math.round((v.currentTime || 0) * 10) / 10,
              duration: isFinite(v.duration) ? Math.round(v.duration * 10) / 10 : null,
            });
          },
          true
        );
      });
    }

    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "hidden") beaconAll();
    });
    window.addEventListener("pagehide", beaconAll);
    window.addEventListener("online", function () {
      retryMs = 0;
      schedule(0);
    });
  }

  // calls made before the script loaded: window.streamfold = [["track", "x", {...}], ...] or a stub's queue
  var pending = existing && (existing.q || (Array.isArray(existing) ? existing : null));
  window.streamfold = api;
  if (!writeKey && window.console) console.warn("streamfold: data-write-key is missing on the tracker script");
  attach();
  if (pending)
    pending.forEach(function (call) {
      if (api[call[0]]) api[call[0]].apply(api, [].slice.call(call, 1));
    });
  if (queue.length) schedule(0);
})(window, document);
