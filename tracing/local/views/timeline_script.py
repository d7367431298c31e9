"""The script of the HTML timeline page (:mod:`tracing.local.views.html_view`).

It reads the page's JSON block and fills the details panel when a row is
clicked (annotations, metadata, ``aws``, ``http``; a ``cause`` as its exceptions'
stacks), lists the linked traces in the header (``LinkedTraceId``,
``InitTraceId``: links to ``<trace id>.html``), and zooms the timeline (drag
across the axis, ``z`` on a row, Escape to reset). The text is constant: the
page's Content-Security-Policy allows it by its hash.
"""

from __future__ import annotations

# Kept free of trace data: the CSP allows this exact text by its hash.
_SCRIPT = """
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("trace-data").textContent);
  var rows = Array.prototype.slice.call(document.querySelectorAll(".row[data-i]"));
  var title = document.getElementById("details-title");
  var body = document.getElementById("details-body");
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function scalar(value) {
    return value === null || typeof value !== "object";
  }
  function show(value) {
    return typeof value === "string" ? value : JSON.stringify(value, null, 2);
  }
  // An annotation naming another trace (LinkedTraceId on the worker's record
  // subsegment, InitTraceId on the first invocation) links to <trace id>.html
  // next to this page, as the map's node details do; only a well-formed X-Ray
  // trace id becomes a link, anything else stays text.
  var TRACE_ID = /^1-[0-9a-f]{8}-[0-9a-f]{24}$/;
  var LINK_KEYS = {"LinkedTraceId": true, "InitTraceId": true};
  function value(name, key, item) {
    var dd = el("dd");
    if (name === "annotations" && LINK_KEYS.hasOwnProperty(key) &&
        typeof item === "string" && TRACE_ID.test(item)) {
      var link = el("a", "trace-link", item);
      link.href = item + ".html";
      link.title = "Open " + item + ".html next to this page (tracing ui serves it, " +
        "or write it with tracing show " + item + " --html " + item + ".html)";
      dd.appendChild(link);
    } else {
      dd.textContent = show(item);
    }
    return dd;
  }
  function keyValues(name, object) {
    var dl = el("dl", "kv");
    Object.keys(object).forEach(function (key) {
      dl.appendChild(el("dt", null, key));
      dl.appendChild(value(name, key, object[key]));
    });
    return dl;
  }
  function section(name, value) {
    if (value === undefined || value === null) { return; }
    if (typeof value === "object" && Object.keys(value).length === 0) { return; }
    var box = el("section", "detail-" + name);
    box.appendChild(el("h3", null, name));
    var flat = typeof value === "object" && !Array.isArray(value) &&
      Object.keys(value).every(function (key) { return scalar(value[key]); });
    box.appendChild(flat ? keyValues(name, value) : el("pre", null, show(value)));
    body.appendChild(box);
  }
  // The header lists the traces this one names (see _linked_traces), so the
  // producer's and the worker's traces link to each other where the data says so.
  var links = document.getElementById("links");
  var listed = (Array.isArray(data.links) ? data.links : []).filter(function (link) {
    return link && typeof link.trace_id === "string" && TRACE_ID.test(link.trace_id);
  });
  if (listed.length) {
    links.appendChild(el("span", null, "Linked traces: "));
    var list = links.appendChild(el("ul"));
    listed.forEach(function (link) {
      var item = list.appendChild(el("li"));
      var a = item.appendChild(el("a", "trace-link", link.trace_id));
      a.href = link.trace_id + ".html";
      var names = Array.isArray(link.from) ? link.from.join(", ") : "";
      item.appendChild(el("span", "from", names ? " named by " + names : ""));
    });
    links.appendChild(el("span", "from", " (each opens <trace id>.html next to this " +
      "page: tracing ui serves every stored trace so, or write one with " +
      "tracing show <trace id> --html <trace id>.html)"));
  }
  var thrown = {};  // exception id -> the entity that recorded it
  data.nodes.forEach(function (node) {
    var cause = node.cause;
    if (cause && typeof cause === "object" && Array.isArray(cause.exceptions)) {
      cause.exceptions.forEach(function (e) {
        if (e && typeof e.id === "string" && !(e.id in thrown)) { thrown[e.id] = node.name; }
      });
    }
  });
  function causeSection(cause) {
    var box = el("section", "detail-cause");
    box.appendChild(el("h3", null, "cause"));
    if (typeof cause === "string") {
      box.appendChild(el("p", "same", cause in thrown ?
        "same exception as " + thrown[cause] : "exception " + cause + " (not in this trace)"));
      body.appendChild(box);
      return;
    }
    if (!cause || typeof cause !== "object" || !Array.isArray(cause.exceptions)) {
      box.appendChild(el("pre", null, show(cause)));
      body.appendChild(box);
      return;
    }
    cause.exceptions.forEach(function (e) {
      if (!e || typeof e !== "object") { return; }
      var one = el("div", "exception");
      var what = (e.type || "Exception") + (e.message ? ": " + e.message : "");
      one.appendChild(el("p", "what", what));
      if (Array.isArray(e.stack) && e.stack.length) {
        var frames = el("ol", "frames");
        e.stack.forEach(function (f) {
          if (!f || typeof f !== "object") { return; }
          var line = f.line === undefined ? "?" : f.line;
          frames.appendChild(el("li", null, (f.path || "?") + ":" + line +
            (f.label ? " in " + f.label : "")));
        });
        one.appendChild(frames);
      }
      if (typeof e.cause === "string" && e.cause in thrown) {
        one.appendChild(el("p", "same", "caused by the exception of " + thrown[e.cause]));
      }
      box.appendChild(one);
    });
    if (cause.working_directory) {
      box.appendChild(el("p", "cwd", "working directory " + cause.working_directory));
    }
    body.appendChild(box);
  }
  function select(index) {
    var node = data.nodes[index];
    if (!node) { return; }
    rows.forEach(function (row) {
      var on = Number(row.getAttribute("data-i")) === index;
      row.classList.toggle("selected", on);
      row.setAttribute("aria-selected", on ? "true" : "false");
    });
    title.textContent = node.name;
    while (body.firstChild) { body.removeChild(body.firstChild); }
    var facts = {
      "id": node.id,
      "kind": node.kind + (node.document_root ? " (document)" : ""),
      "status": node.status,
      "start": node.start,
      "offset": "+" + node.offset,
      "duration": node.duration
    };
    if (node.parent_id) {
      facts["parent"] = node.parent_id + (node.orphan ? " (not in this trace)" : "");
    }
    if (node.init) { facts["init"] = "yes"; }
    if (node.cold_start) { facts["cold start"] = "yes"; }
    section("overview", facts);
    ["annotations", "metadata", "aws", "http", "cause", "sql", "namespace", "origin",
     "type", "precursor_ids"].forEach(function (key) {
      if (key === "cause" && node.cause !== undefined && node.cause !== null) {
        causeSection(node.cause);
      } else {
        section(key, node[key]);
      }
    });
  }
  // Zoom: the bars and the axis show [view.from, view.to] (ms from the trace's
  // start). Drag across the axis (or shift-drag across the rows) to pick a range;
  // "z" on a row zooms to it; "Reset zoom" or Escape shows the whole trace.
  var total = typeof data.total === "number" && data.total > 0 ? data.total : 0;
  var view = {from: 0, to: total};
  var MIN_SPAN = 0.001;
  var timeline = document.querySelector(".timeline");
  var axisLane = document.getElementById("axis-lane");
  var zoombar = document.getElementById("zoombar");
  var range = zoombar.appendChild(el("span", null, "Whole trace"));
  range.id = "zoom-range";
  var reset = zoombar.appendChild(el("button", null, "Reset zoom"));
  reset.id = "zoom-reset";
  reset.type = "button";
  reset.disabled = true;
  var hint = zoombar.appendChild(el("span", "hint", "Zoom: drag across the time axis " +
    "(or shift-drag across the rows); "));
  hint.appendChild(el("kbd", null, "z"));
  hint.appendChild(document.createTextNode(" on a row zooms to it, "));
  hint.appendChild(el("kbd", null, "Esc"));
  hint.appendChild(document.createTextNode(" resets."));
  var brush = timeline.appendChild(el("div", "brush"));
  brush.hidden = true;
  var bars = rows.map(function (row) { return row.querySelector(".bar"); });
  function niceStep(span) {
    if (!(span > 0)) { return 1; }
    var raw = span / 6;
    var magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
    var factors = [1, 2, 5, 10];
    for (var i = 0; i < factors.length; i++) {
      if (raw <= factors[i] * magnitude) { return factors[i] * magnitude; }
    }
    return 10 * magnitude;
  }
  // The same rule as _tick_label in html_view.py.
  function label(ms, step, span) {
    if (step >= 1000) {
      return (ms / 1000).toFixed(Math.max(0, -Math.floor(Math.log10(step / 1000) + 1e-9))) + " s";
    }
    var digits = Math.max(span < 10 ? 1 : 0, Math.ceil(-Math.log10(step) - 1e-9));
    return ms.toFixed(Math.min(digits, 9)) + " ms";
  }
  function drawAxis() {
    var span = view.to - view.from;
    Array.prototype.slice.call(axisLane.querySelectorAll(".tick")).forEach(function (tick) {
      axisLane.removeChild(tick);
    });
    var step = niceStep(span);
    // NOTE: offsets come from epoch floats (about 0.3 µs apart): a tick within
    // 0.1 % of a step of either end counts as on it.
    var first = Math.ceil(view.from / step - 1e-3) * step;
    for (var i = 0; i <= 50; i++) {
      var ms = first + i * step;
      if (ms > view.to + step * 1e-3) { break; }
      var left = span > 0 ? (ms - view.from) / span * 100 : 0;
      var tick = el("span", "tick", label(ms, step, span));
      tick.style.left = left.toFixed(4) + "%";
      tick.style.transform = left < 3 ? "none" : (left > 97 ? "translateX(-100%)" :
        "translateX(-50%)");
      axisLane.appendChild(tick);
    }
    var width = axisLane.clientWidth;
    if (span > 0 && width > 0) {
      var px = step / span * width;
      timeline.style.setProperty("--grid", px.toFixed(3) + "px");
      rows.forEach(function (row) {
        row.querySelector(".lane").style.backgroundPosition =
          ((first - view.from) / span * width).toFixed(3) + "px 0";
      });
    }
  }
  function drawBars() {
    var span = view.to - view.from;
    bars.forEach(function (bar, i) {
      var node = data.nodes[Number(rows[i].getAttribute("data-i"))];
      if (!bar || !node || typeof node.at !== "number" || !(span > 0)) { return; }
      var start = Math.max(node.at, view.from);
      var end = Math.min(node.until, view.to);
      var out = node.until < view.from || node.at > view.to;
      bar.classList.toggle("out", out);
      bar.style.left = ((start - view.from) / span * 100).toFixed(4) + "%";
      bar.style.width = (Math.max(end - start, 0) / span * 100).toFixed(4) + "%";
    });
  }
  function zoom(from, to) {
    from = Math.max(0, Math.min(from, total));
    to = Math.max(0, Math.min(to, total));
    if (!(to > from)) { return; }
    if (to - from < MIN_SPAN) {  // no closer than 1 µs: float offsets end there
      var middle = (from + to) / 2;
      from = Math.max(0, middle - MIN_SPAN / 2);
      to = Math.min(total, from + MIN_SPAN);
    }
    view.from = from;
    view.to = to;
    var whole = from <= 0 && to >= total;
    reset.disabled = whole;
    var fine = niceStep(to - from) / 10;
    range.textContent = whole ? "Whole trace" : "Zoomed to +" + label(from, fine, to - from) +
      " … +" + label(to, fine, to - from);
    drawBars();
    drawAxis();
  }
  function resetZoom() { zoom(0, total); }
  function zoomTo(node) {
    var from = node.at;
    var to = node.until;
    if (!(to > from)) {  // an instant: a window around it
      var pad = Math.max(total / 1000, 0.001);
      from -= pad;
      to += pad;
    }
    zoom(from, to);
  }
  reset.addEventListener("click", resetZoom);
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && !reset.disabled) { resetZoom(); }
  });
  window.addEventListener("resize", drawAxis);
  var drag = null;
  var dragged = false;
  var suppress = false;  // the click that ends a shift-drag across a row
  document.addEventListener("mousedown", function () { suppress = false; }, true);
  function timeAt(x) {
    var box = axisLane.getBoundingClientRect();
    var fraction = box.width > 0 ? (x - box.left) / box.width : 0;
    return view.from + Math.max(0, Math.min(1, fraction)) * (view.to - view.from);
  }
  function clampX(x) {
    var box = axisLane.getBoundingClientRect();
    return Math.max(box.left, Math.min(box.right, x));
  }
  function moveBrush(x) {
    var outer = timeline.getBoundingClientRect();
    var a = clampX(drag.x);
    var b = clampX(x);
    brush.style.left = (Math.min(a, b) - outer.left) + "px";
    brush.style.width = Math.abs(b - a) + "px";
    brush.hidden = false;
  }
  function startDrag(event) {
    if (event.button !== 0 || !(total > 0)) { return; }
    event.preventDefault();
    drag = {x: event.clientX};
    dragged = false;
  }
  axisLane.addEventListener("mousedown", startDrag);
  rows.forEach(function (row) {
    row.querySelector(".lane").addEventListener("mousedown", function (event) {
      if (event.shiftKey) { startDrag(event); }
    });
  });
  document.addEventListener("mousemove", function (event) {
    if (!drag) { return; }
    if (Math.abs(event.clientX - drag.x) >= 3) { dragged = true; }
    if (dragged) { moveBrush(event.clientX); }
  });
  document.addEventListener("mouseup", function (event) {
    if (!drag) { return; }
    var from = timeAt(drag.x);
    var to = timeAt(event.clientX);
    drag = null;
    brush.hidden = true;
    suppress = dragged;
    if (dragged) { zoom(Math.min(from, to), Math.max(from, to)); }
  });
  if (total > 0) { drawAxis(); }
  rows.forEach(function (row) {
    var index = Number(row.getAttribute("data-i"));
    row.addEventListener("click", function () {
      if (suppress) { suppress = false; return; }
      select(index);
    });
    row.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        select(index);
      } else if (event.key === "z" && !event.ctrlKey && !event.metaKey && !event.altKey) {
        event.preventDefault();
        if (data.nodes[index]) { zoomTo(data.nodes[index]); }
      } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        var next = rows[rows.indexOf(row) + (event.key === "ArrowDown" ? 1 : -1)];
        if (next) { next.focus(); select(Number(next.getAttribute("data-i"))); }
      }
    });
  });
})();
"""
