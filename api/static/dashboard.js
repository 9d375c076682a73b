/* Streamfold dashboard: plain JavaScript, no build step. It calls the read APIs of this origin with the read key
 * pasted once (kept in this tab's sessionStorage) and renders with text nodes only: event names, domains and
 * URLs are user data, so nothing from the API is ever parsed as HTML.
 *
 * Events per day stacked by type: /v1/events/stats gives the day totals and the top types; one
 * /v1/events/stats?event_type=T&group_by=day per top type gives its days; "other" is the rest of each day.
 */
(function () {
  "use strict";

  var KEY_STORAGE = "streamfold.readKey";
  var TAIL_MS = 2000;
  var STATUS_MS = 5000;
  var STATS_MS = 30000;
  var TYPES_IN_CHART = 6;
  var TOP_ROWS = 10;
  var DAY_S = 86400;
  var PALETTE = ["#3b6fd8", "#e8833a", "#2fa37a", "#c94f7c", "#8e6bd6", "#c9a227", "#9aa3b5"];

  var key = null;
  var timers = { tail: null, status: null, stats: null };
  var tailPaused = false;
  var tailGeneration = 0; // bumped by pause/stop: an answer of an older generation is dropped
  var seenEvents = null;
  var chart = null;
  var numberFormat = new Intl.NumberFormat("en-US");

  function $(id) {
    return document.getElementById(id);
  }

  function fmt(n) {
    return n == null ? "–" : numberFormat.format(n);
  }

  /* el("td", {class: "n"}, "text", childNode…): attributes via setAttribute, children as text nodes. */
  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (name) {
        if (attrs[name] != null) node.setAttribute(name, String(attrs[name]));
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child == null) continue;
      node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function replaceRows(tbody, rows) {
    tbody.replaceChildren.apply(tbody, rows);
  }

  function ApiError(status, message) {
    this.status = status;
    this.message = message;
  }

  function api(path, params) {
    var url = new URL(path, window.location.origin);
    Object.keys(params || {}).forEach(function (name) {
      url.searchParams.set(name, params[name]);
    });
    return fetch(url, { headers: { Authorization: "Bearer " + key }, cache: "no-store" }).then(
      function (response) {
        return response.json().then(
          function (body) {
            if (!response.ok) throw new ApiError(response.status, (body && (body.error || body.message)) || "");
            return body;
          },
          function () {
            throw new ApiError(response.status, response.statusText);
          }
        );
      },
      function () {
        throw new ApiError(0, "the API did not answer");
      }
    );
  }

  function showError(err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
      signOut(err.status === 401 ? "That key is not valid (anymore)." : "That key lacks the events:read scope.");
      return;
    }
    var box = $("error");
    box.textContent = "Could not refresh: " + (err && err.message ? err.message : String(err)) + " (retrying)";
    box.hidden = false;
  }

  function clearError() {
    $("error").hidden = true;
  }

  /* ---------------------------------------------------------------- stats: tiles, top lists, chart */

  function renderTop(section, rows, field, total) {
    var tbody = $(section).querySelector("tbody");
    replaceRows(
      tbody,
      rows.slice(0, TOP_ROWS).map(function (row) {
        var share = total ? (100 * row.count) / total : 0;
        var bar = el("div", { class: "share-bar" });
        bar.style.width = share.toFixed(1) + "%";
        return el(
          "tr",
          null,
          el("td", { class: "name" }, row[field] == null ? "(none)" : row[field]),
          el("td", { class: "n" }, fmt(row.count)),
          el("td", { title: share.toFixed(1) + "%" }, bar)
        );
      })
    );
    if (!rows.length) replaceRows(tbody, [el("tr", null, el("td", { colspan: 3, class: "muted" }, "No events yet"))]);
  }

  function dayStart(date) {
    return Date.parse(date + "T00:00:00Z") / 1000;
  }

  function isoDay(seconds) {
    return new Date(seconds * 1000).toISOString().slice(0, 10);
  }

  /* Day totals and per-type days → {days: [x…], series: [{label, values}…]}, contiguous UTC days, oldest first. */
  function dailyByType(byDay, topTypes, perType) {
    if (!byDay.length) return { days: [], series: [] };
    var starts = byDay.map(function (d) {
      return dayStart(d.date);
    });
    var first = Math.min.apply(null, starts);
    var last = Math.max.apply(null, starts);
    var days = [];
    for (var t = first; t <= last; t += DAY_S) days.push(t);
    var index = {};
    days.forEach(function (d, i) {
      index[d] = i;
    });
    function column(rows) {
      var values = days.map(function () {
        return 0;
      });
      rows.forEach(function (r) {
        var i = index[dayStart(r.date)];
        if (i !== undefined) values[i] = r.count;
      });
      return values;
    }
    var totals = column(byDay);
    var series = topTypes.map(function (type, i) {
      return { label: type, values: column(perType[i]) };
    });
    var other = totals.map(function (total, i) {
      var rest = total;
      series.forEach(function (s) {
        rest -= s.values[i];
      });
      return Math.max(rest, 0); // the calls are not one snapshot: an event folded in between
    });
    if (
      other.some(function (v) {
        return v > 0;
      })
    ) {
      series.push({ label: "other types", values: other, other: true });
    }
    return { days: days, series: series, totals: totals };
  }

  function renderDayTable(data) {
    var table = $("per-day-table");
    var head = el("tr", null, el("th", null, "Day"));
    data.series.forEach(function (s) {
      head.appendChild(el("th", { class: "n" }, s.label));
    });
    head.appendChild(el("th", { class: "n" }, "Total"));
    var rows = [el("thead", null, head)];
    var body = el("tbody");
    for (var i = data.days.length - 1; i >= 0; i--) {
      var tr = el("tr", null, el("td", null, isoDay(data.days[i])));
      for (var s = 0; s < data.series.length; s++) tr.appendChild(el("td", { class: "n" }, fmt(data.series[s].values[i])));
      tr.appendChild(el("td", { class: "n" }, fmt(data.totals[i])));
      body.appendChild(tr);
    }
    rows.push(body);
    table.replaceChildren.apply(table, rows);
  }

  function yIncrements() {
    var out = [];
    for (var p = 1; p <= 1e12; p *= 10) out.push(p, 2 * p, 5 * p);
    return out;
  }

  function renderChart(data) {
    var box = $("chart");
    if (chart) {
      chart.destroy();
      chart = null;
    }
    if (!data.days.length) {
      box.replaceChildren(el("p", { class: "muted" }, "No events yet"));
      return;
    }
    box.replaceChildren();
    // stacked: series i spans up to the sum of series i… n-1, drawn biggest first so each covers the previous
    var stacked = [];
    var acc = data.days.map(function () {
      return 0;
    });
    for (var i = data.series.length - 1; i >= 0; i--) {
      var values = data.series[i].values;
      acc = acc.map(function (a, j) {
        return a + values[j];
      });
      stacked[i] = acc;
    }
    var bars = uPlot.paths.bars({ size: [0.8, 48], gap: 1 });
    var opts = {
      width: Math.max(box.clientWidth, 300),
      height: 260,
      tzDate: function (ts) {
        return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");
      },
      cursor: { points: { show: false }, drag: { x: false, y: false } },
      scales: {
        x: {
          time: true,
          range: function (u, min, max) {
            return [min - DAY_S / 2, max + DAY_S / 2];
          },
        },
        y: {
          range: function (u, min, max) {
            return [0, Math.max(max, 1) * 1.08];
          },
        },
      },
      axes: [
        {
          space: 56,
          incrs: [DAY_S, 2 * DAY_S, 7 * DAY_S, 14 * DAY_S, 28 * DAY_S],
          values: function (u, ticks) {
            return ticks.map(function (t) {
              return isoDay(t).slice(5);
            });
          },
        },
        {
          incrs: yIncrements(),
          size: 56,
          values: function (u, ticks) {
            return ticks.map(fmt);
          },
        },
      ],
      series: [
        {
          label: "Day",
          value: function (u, v) {
            return v == null ? "–" : isoDay(v);
          },
        },
      ].concat(
        data.series.map(function (s, i) {
          var color = s.other ? PALETTE[PALETTE.length - 1] : PALETTE[i % (PALETTE.length - 1)];
          return {
            label: s.label,
            fill: color,
            stroke: color,
            width: 1,
            paths: bars,
            points: { show: false },
            value: function (u, v, seriesIdx, idx) {
              return idx == null ? "–" : fmt(s.values[idx]);
            },
          };
        })
      ),
    };
    chart = new uPlot(opts, [data.days].concat(stacked), box);
  }

  function refreshStats() {
    return Promise.all([api("/v1/events/stats"), api("/v1/events/types")]).then(function (answers) {
      var stats = answers[0].stats;
      var topTypes = stats.by_type.slice(0, TYPES_IN_CHART).map(function (r) {
        return r.type;
      });
      return Promise.all(
        topTypes.map(function (type) {
          return api("/v1/events/stats", { event_type: type, group_by: "day" });
        })
      ).then(function (perType) {
        $("total").textContent = fmt(stats.total);
        $("type-count").textContent = fmt(answers[1].total_items);
        renderTop("top-types", stats.by_type, "type", stats.total);
        renderTop("top-domains", stats.by_domain, "domain", stats.total);
        var data = dailyByType(
          stats.by_day,
          topTypes,
          perType.map(function (a) {
            return a.stats.by_day;
          })
        );
        renderChart(data);
        renderDayTable(data);
        $("board").setAttribute("data-stats-loaded", "true");
      });
    });
  }

  /* ---------------------------------------------------------------- live tail */

  function contactOf(e) {
    if (e.contact) {
      var name = [e.contact.firstname, e.contact.lastname].filter(Boolean).join(" ");
      if (name) return name;
    }
    return e.internal_contact_id || "anonymous";
  }

  function renderTail(events) {
    var first = seenEvents === null;
    var seen = seenEvents || {};
    seenEvents = {};
    replaceRows(
      $("tail-rows"),
      events.map(function (e) {
        seenEvents[e._id] = true;
        var fresh = !first && !seen[e._id];
        return el(
          "tr",
          { "data-event-id": e._id, class: fresh ? "fresh" : null },
          el("td", { title: e.timestamp }, e.timestamp.replace("T", " ").replace(/\.\d+Z$/, "Z")),
          el("td", { class: "event" }, e.event),
          el("td", null, e.domain),
          el("td", { class: "url" }, e.url),
          el("td", null, contactOf(e))
        );
      })
    );
    if (!events.length) replaceRows($("tail-rows"), [el("tr", null, el("td", { colspan: 5, class: "muted" }, "No events yet"))]);
    $("tail-state").textContent = "updated " + new Date().toLocaleTimeString();
  }

  function pollTail() {
    var generation = tailGeneration;
    api("/v1/events", { limit: 20, sort_by: "createdAt" })
      .then(function (body) {
        if (generation !== tailGeneration) return;
        renderTail(body.events);
        clearError();
      })
      .catch(showError)
      .then(function () {
        if (generation === tailGeneration && !tailPaused && key) timers.tail = setTimeout(pollTail, TAIL_MS);
      });
  }

  function toggleTail() {
    var button = $("tail-toggle");
    tailPaused = !tailPaused;
    tailGeneration++;
    clearTimeout(timers.tail);
    button.textContent = tailPaused ? "Resume" : "Pause";
    button.setAttribute("aria-pressed", String(tailPaused));
    if (tailPaused) $("tail-state").textContent = "paused";
    else pollTail();
  }

  /* ---------------------------------------------------------------- fold status */

  function renderStatus(body) {
    var maxSeconds = 0;
    replaceRows(
      $("fold-rows"),
      body.partitions.map(function (p) {
        maxSeconds = Math.max(maxSeconds, p.lag_seconds);
        var mine = p.partition === body.workspace_partition;
        return el(
          "tr",
          { class: mine ? "mine" : null, "data-partition": p.partition },
          el("td", null, String(p.partition), mine ? el("span", { class: "muted" }, " (this workspace)") : null),
          el("td", null, el("code", { class: "id" }, p.log_head || "–")),
          el("td", null, el("code", { class: "id" }, p.checkpoint || "–")),
          el("td", { class: "n lag" + (p.lag_entries ? " lagging" : "") }, p.lag_entries == null ? "unknown" : fmt(p.lag_entries)),
          el("td", { class: "n lag-seconds" + (p.lag_seconds ? " lagging" : "") }, p.lag_seconds.toFixed(3)),
          el("td", { class: "n dead-letters" + (p.dead_letters ? " dead" : "") }, fmt(p.dead_letters))
        );
      })
    );
    $("lag-total").textContent = body.lag_entries == null ? "unknown" : fmt(body.lag_entries);
    $("lag-total").parentNode.className = "tile" + (body.lag_entries ? " warn" : "");
    $("lag-seconds").textContent = "entries; at most " + maxSeconds.toFixed(1) + " s behind";
    $("dead-total").textContent = fmt(body.dead_letters);
    $("dead-total").parentNode.className = "tile" + (body.dead_letters ? " bad" : "");
    $("who").textContent = "workspace partition " + body.workspace_partition;
  }

  function refreshStatus() {
    return api("/v1/status").then(renderStatus);
  }

  /* ---------------------------------------------------------------- lifecycle */

  function every(name, ms, refresh) {
    function tick() {
      refresh()
        .then(clearError, showError)
        .then(function () {
          if (key) timers[name] = setTimeout(tick, ms);
        });
    }
    tick();
  }

  function stopAll() {
    tailGeneration++;
    Object.keys(timers).forEach(function (name) {
      clearTimeout(timers[name]);
    });
  }

  function start() {
    $("login").hidden = true;
    $("board").hidden = false;
    $("forget").hidden = false;
    seenEvents = null;
    tailPaused = false;
    every("stats", STATS_MS, refreshStats);
    every("status", STATUS_MS, refreshStatus);
    pollTail();
  }

  function signOut(message) {
    stopAll();
    key = null;
    sessionStorage.removeItem(KEY_STORAGE);
    $("board").hidden = true;
    $("forget").hidden = true;
    $("error").hidden = true;
    $("who").textContent = "";
    $("login").hidden = false;
    $("key-error").textContent = message || "";
    $("key-input").value = "";
    $("key-input").focus();
  }

  function submitKey(event) {
    event.preventDefault();
    var candidate = $("key-input").value.trim();
    if (!candidate) return;
    key = candidate;
    $("key-error").textContent = "Checking…";
    // one read that needs events:read: a wrong key is refused here, before anything is kept
    api("/v1/events", { limit: 1, count_only: "true" }).then(
      function () {
        sessionStorage.setItem(KEY_STORAGE, candidate);
        $("key-error").textContent = "";
        start();
      },
      function (err) {
        key = null;
        $("key-error").textContent =
          err.status === 401
            ? "That key is not valid."
            : err.status === 403
              ? "That key lacks the events:read scope."
              : "Could not check the key: " + err.message;
      }
    );
  }

  function init() {
    $("key-form").addEventListener("submit", submitKey);
    $("forget").addEventListener("click", function () {
      signOut("");
    });
    $("tail-toggle").addEventListener("click", toggleTail);
    window.addEventListener("resize", function () {
      if (chart) chart.setSize({ width: Math.max($("chart").clientWidth, 300), height: 260 });
    });
    key = sessionStorage.getItem(KEY_STORAGE);
    if (key) start();
    else signOut("");
  }

  init();
})();
