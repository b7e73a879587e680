// Ferry operator console: plain JS, no build step, no third-party code.
// Every value from the API is put in the page with textContent (never innerHTML).
// The API key lives in sessionStorage only and is sent as x-api-key to this origin only.
"use strict";

(function () {
  const KEY = "ferry.apiKey";
  const BASE = location.pathname.replace(/\/console\/?$/, "");
  const FINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);
  const STATUSES = ["QUEUED", "RUNNING", "RETRY_SCHEDULED", "SUCCEEDED", "FAILED", "CANCELLED"];
  const POLL_MS = 1000;
  let me = null; // {customer_id, key_id, key_name, scope}
  let timer = null;
  let renderToken = 0;

  // ------------------------------------------------------------------ helpers
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "width") el.style.width = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const SVG = "http://www.w3.org/2000/svg";
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return el;
  }
  const short = (id) => (id ? String(id).slice(0, 8) : "—");
  function bytes(n) {
    if (n === null || n === undefined) return "—";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let v = Number(n), i = 0;
    while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
    return (i === 0 ? v.toFixed(0) : v.toFixed(v < 10 ? 1 : 0)) + " " + units[i];
  }
  const rate = (bps) => (bps ? bytes(bps) + "/s" : "—");
  function when(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    if (isNaN(d)) return String(iso);
    const secs = (Date.now() - d.getTime()) / 1000;
    if (secs < 60) return Math.max(0, Math.round(secs)) + " s ago";
    if (secs < 3600) return Math.round(secs / 60) + " min ago";
    if (secs < 86400) return Math.round(secs / 3600) + " h ago";
    return d.toISOString().slice(0, 16).replace("T", " ");
  }
  const stamp = (iso) => (iso ? String(iso).replace("T", " ").slice(0, 19) : "—");
  const badge = (text) => h("span", { class: "badge " + (text || "") }, text || "—");
  let names = new Map(); // endpoint_id -> name (refreshed by the pages that show locations)
  async function loadNames() {
    const list = await api("/endpoints?limit=100").catch(() => ({ endpoints: [] }));
    names = new Map(list.endpoints.map((e) => [e.endpoint_id, e.name || short(e.endpoint_id)]));
    return list;
  }
  const epName = (id) => names.get(id) || short(id);
  const loc = (l) => (l ? epName(l.endpoint_id) + ":" + l.path : "—");
  function bar(percent, status) {
    const cls = "bar" + (status === "SUCCEEDED" ? " done" : status === "FAILED" ? " failed" : "");
    return h("div", { class: cls }, h("span", { width: Math.min(100, percent || 0) + "%" }));
  }

  class ApiError extends Error {
    constructor(status, body) {
      const e = (body && body.error) || {};
      super(e.message || "HTTP " + status);
      this.status = status;
      this.code = e.code;
    }
  }
  async function api(path, opts) {
    const key = sessionStorage.getItem(KEY);
    const res = await fetch(BASE + path, {
      method: (opts && opts.method) || "GET",
      headers: { "x-api-key": key || "" },
      credentials: "omit",
      cache: "no-store",
      referrerPolicy: "no-referrer",
    });
    const body = await res.json().catch(() => ({}));
    if (res.status === 401) { logout("Your API key was not accepted: " + ((body.error || {}).message || "401")); throw new ApiError(401, body); }
    if (!res.ok) throw new ApiError(res.status, body);
    return body;
  }
  const qs = (o) => {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(o)) if (v !== "" && v !== null && v !== undefined) p.set(k, v);
    const t = p.toString();
    return t ? "?" + t : "";
  };

  // ------------------------------------------------------------------ session
  function logout(message) {
    sessionStorage.removeItem(KEY);
    me = null;
    stopPolling();
    document.getElementById("app").hidden = true;
    document.getElementById("login").hidden = false;
    document.getElementById("login-error").textContent = message || "";
    document.getElementById("api-key").value = "";
  }
  async function login(key) {
    sessionStorage.setItem(KEY, key);
    try {
      me = await api("/me");
    } catch (e) {
      if (e.status !== 401) logout("Sign-in failed: " + e.message);
      return false;
    }
    document.getElementById("login").hidden = true;
    document.getElementById("app").hidden = false;
    document.getElementById("who-customer").textContent = me.customer_id;
    const who = document.getElementById("who-key");
    who.replaceChildren(
      (me.key_name || short(me.key_id)) + " · ",
      h("span", { class: "badge " + me.scope }, me.scope === "read" ? "read-only" : "read/write")
    );
    return true;
  }

  // ------------------------------------------------------------------ routing
  function stopPolling() { if (timer) { clearTimeout(timer); timer = null; } }
  function poll(fn, token) {
    stopPolling();
    timer = setTimeout(async () => {
      if (token !== renderToken) return;
      try { await fn(); } catch (e) { /* shown on the next full render */ }
      if (token === renderToken) poll(fn, token);
    }, POLL_MS);
  }
  function parseHash() {
    const raw = location.hash.replace(/^#\/?/, "");
    const [path, query] = raw.split("?");
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    return { parts, query: new URLSearchParams(query || "") };
  }
  async function render() {
    if (!me) return;
    stopPolling();
    const token = ++renderToken;
    const { parts, query } = parseHash();
    const page = parts[0] || "overview";
    for (const a of document.querySelectorAll(".sidebar a[data-page]")) {
      const section = { job: "jobs", route: "routes" }[page] || page;
      a.classList.toggle("active", a.dataset.page === section);
    }
    const main = document.getElementById("main");
    const pages = { overview, jobs, job, routes, route, endpoints };
    const fn = pages[page] || overview;
    main.replaceChildren(h("div", { class: "muted" }, "Loading…"));
    try {
      await fn(main, token, parts.slice(1), query);
    } catch (e) {
      if (token !== renderToken || e.status === 401) return;
      main.replaceChildren(h("div", { class: "notice bad" }, e.status === 404 ? "Not found: " + e.message : "Could not load this page: " + e.message));
    }
  }
  function head(title, sub, ...right) {
    return h("div", { class: "page-head" }, h("div", {}, h("h1", {}, title), sub ? h("div", { class: "sub" }, sub) : null), h("div", { class: "actions" }, ...right));
  }

  // ------------------------------------------------------------------ overview
  const CHART_STATUSES = ["FAILED", "CANCELLED", "SUCCEEDED", "RUNNING", "RETRY_SCHEDULED", "QUEUED"];
  function stackedChart(hours) {
    const W = 720, H = 220, L = 36, B = 24, T = 10;
    const top = Math.max(...hours.map((b) => Object.values(b.by_status).reduce((a, c) => a + c, 0)));
    const max = Math.max(4, Math.ceil(top / 4) * 4); // four whole-number steps
    const step = (W - L - 6) / hours.length, bw = Math.max(2, step * 0.7);
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "Jobs per hour by status" });
    for (let i = 0; i <= 4; i++) {
      const y = T + (H - T - B) * (1 - i / 4);
      svg.append(s("line", { class: "grid-line", x1: L, x2: W, y1: y, y2: y }));
      svg.append(s("text", { x: L - 6, y: y + 3, "text-anchor": "end" }, String(Math.round((max * i) / 4))));
    }
    hours.forEach((b, i) => {
      let y = H - B;
      const x = L + i * step + (step - bw) / 2;
      for (const st of CHART_STATUSES) {
        const n = b.by_status[st] || 0;
        if (!n) continue;
        const hh = ((H - T - B) * n) / max;
        y -= hh;
        const r = s("rect", { class: "s-" + st, x: x.toFixed(1), y: y.toFixed(1), width: bw.toFixed(1), height: hh.toFixed(1), rx: 1.5 });
        r.append(s("title", {}, `${b.hour.slice(11, 16)} UTC: ${n} ${st}`));
        svg.append(r);
      }
      if (i % 3 === 0) svg.append(s("text", { x: x + bw / 2, y: H - 8, "text-anchor": "middle" }, b.hour.slice(11, 16)));
    });
    svg.append(s("line", { class: "axis", x1: L, x2: W, y1: H - B, y2: H - B }));
    return svg;
  }
  function bytesChart(hours) {
    const W = 720, H = 220, L = 52, B = 24, T = 10;
    const max = Math.max(1, ...hours.map((b) => b.bytes_moved));
    const step = (W - L - 6) / hours.length, bw = Math.max(2, step * 0.7);
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "Bytes moved per hour" });
    for (let i = 0; i <= 4; i++) {
      const y = T + (H - T - B) * (1 - i / 4);
      svg.append(s("line", { class: "grid-line", x1: L, x2: W, y1: y, y2: y }));
      svg.append(s("text", { x: L - 6, y: y + 3, "text-anchor": "end" }, bytes((max * i) / 4)));
    }
    hours.forEach((b, i) => {
      const x = L + i * step + (step - bw) / 2;
      const hh = ((H - T - B) * b.bytes_moved) / max;
      if (hh > 0) {
        const r = s("rect", { class: "s-bytes", x: x.toFixed(1), y: (H - B - hh).toFixed(1), width: bw.toFixed(1), height: hh.toFixed(1), rx: 1.5 });
        r.append(s("title", {}, `${b.hour.slice(11, 16)} UTC: ${bytes(b.bytes_moved)}`));
        svg.append(r);
      }
      if (i % 3 === 0) svg.append(s("text", { x: x + bw / 2, y: H - 8, "text-anchor": "middle" }, b.hour.slice(11, 16)));
    });
    svg.append(s("line", { class: "axis", x1: L, x2: W, y1: H - B, y2: H - B }));
    return svg;
  }
  const legend = (keys) => h("div", { class: "legend" }, keys.map((k) => h("span", {}, h("i", { class: "s-" + k }), k)));

  async function overview(main, token) {
    const [stats, , failed, running] = await Promise.all([
      api("/stats/hourly?hours=24"),
      loadNames(),
      api("/jobs?status=FAILED&limit=8"),
      api("/jobs?status=RUNNING&limit=100"),
    ]);
    if (token !== renderToken) return;
    const card = (label, value, bad) => h("div", { class: "card" + (bad ? " bad" : "") }, h("div", { class: "label" }, label), h("div", { class: "value" }, value));
    main.replaceChildren(
      head("Overview", "The last 24 hours for " + me.customer_id),
      h("div", { class: "grid cards" },
        card("Failed (24 h)", stats.failed_jobs, stats.failed_jobs > 0),
        card("Jobs (24 h)", stats.total_jobs),
        card("Running now", running.jobs.length + (running.next_token ? "+" : "")),
        card("Bytes moved (24 h)", bytes(stats.bytes_moved))),
      h("div", { class: "panel" }, h("h2", {}, "Latest failures"), failed.jobs.length ? jobTable(failed.jobs, { compact: true }) : h("div", { class: "empty" }, "No failed jobs. ✓")),
      h("div", { class: "grid two" },
        h("div", { class: "panel chart" }, h("h2", {}, "Jobs per hour, by status"), stackedChart(stats.hours), legend(CHART_STATUSES.slice(0, 4).concat(["QUEUED"]))),
        h("div", { class: "panel chart" }, h("h2", {}, "Bytes moved per hour"), bytesChart(stats.hours)))
    );
  }

  // ------------------------------------------------------------------ jobs
  const lastSeen = new Map(); // job_id -> {bytes, t, rate}
  function liveRate(job) {
    if (job.status !== "RUNNING") return job.throughput_bytes_per_second;
    const now = performance.now(), seen = lastSeen.get(job.job_id), b = job.bytes_committed || 0;
    let r = seen ? seen.rate : null;
    if (seen && b > seen.bytes && now > seen.t) r = ((b - seen.bytes) * 1000) / (now - seen.t);
    if (!seen || b !== seen.bytes) lastSeen.set(job.job_id, { bytes: b, t: now, rate: r });
    return r || job.throughput_bytes_per_second;
  }
  function jobRow(j, compact) {
    const err = j.error_code ? h("span", {}, h("code", {}, j.error_code), j.error_message ? " " + j.error_message : "") : "";
    return h("tr", { "data-job": j.job_id },
      h("td", {}, h("a", { href: "#/job/" + encodeURIComponent(j.job_id), class: "mono" }, short(j.job_id))),
      h("td", {}, badge(j.status), j.cancel_requested && !FINAL.has(j.status) ? h("div", { class: "small muted" }, "cancel requested") : null),
      h("td", { class: "mono" }, j.route_id ? h("a", { href: "#/route/" + encodeURIComponent(j.route_id) }, short(j.route_id)) : "—"),
      compact ? null : h("td", { class: "wrap" }, h("div", {}, loc(j.source)), h("div", { class: "muted small" }, "→ " + loc(j.target))),
      h("td", {}, h("div", { class: "progress-cell" }, bar(j.progress_percent, j.status), h("span", { class: "pct" }, Math.round(j.progress_percent || 0) + "%")), h("div", { class: "small muted" }, bytes(j.bytes_committed) + " / " + bytes(j.bytes_total || j.size))),
      h("td", { class: "num rate" }, rate(liveRate(j))),
      h("td", { class: "num" }, (j.attempt || 0) + " / " + (j.max_attempts || "—")),
      h("td", { class: "wrap small" }, err),
      h("td", { class: "num muted", title: j.created_at || "" }, when(j.created_at)));
  }
  function jobTable(list, opts) {
    const compact = opts && opts.compact;
    return h("table", { class: "jobs" },
      h("thead", {}, h("tr", {}, ["Job", "Status", "Route", compact ? null : "Source → target", "Progress", "Rate", "Attempts", "Error", "Created"].filter(Boolean).map((t) => h("th", {}, t)))),
      h("tbody", {}, list.length ? list.map((j) => jobRow(j, compact)) : h("tr", {}, h("td", { colspan: 9, class: "empty" }, "No jobs match."))));
  }

  async function jobs(main, token, _parts, query) {
    const filters = {
      status: query.get("status") || "",
      route: query.get("route") || "",
      endpoint: query.get("endpoint") || "",
      since: query.get("since") || "",
      until: query.get("until") || "",
    };
    const [routeList, endpointList] = await Promise.all([api("/routes").catch(() => ({ items: [] })), loadNames()]);
    // route and endpoint are each served by the API's indexes (route_id, endpoint_id); the API
    // does not combine the two, so with both the endpoint applies to the route's pages read
    const localEndpoint = filters.route && filters.endpoint ? filters.endpoint : "";
    const serverQuery = {
      status: filters.status,
      route_id: filters.route,
      endpoint_id: localEndpoint ? "" : filters.endpoint,
      since: filters.since ? filters.since + "T00:00:00Z" : "",
      until: filters.until ? filters.until + "T23:59:59Z" : "",
      limit: 50,
    };
    const matches = (j) =>
      (!localEndpoint || (j.source && j.source.endpoint_id === localEndpoint) || (j.target && j.target.endpoint_id === localEndpoint));
    let loaded = [], next = null, pages = 0;
    async function loadMore() {
      // with route and endpoint: up to 10 of the route's pages (50 jobs each) a click
      let found = 0;
      do {
        const page = await api("/jobs" + qs({ ...serverQuery, next_token: next || "" }));
        next = page.next_token || null;
        pages++;
        const hit = page.jobs.filter(matches);
        loaded = loaded.concat(hit);
        found += hit.length;
      } while (next && found < 50 && localEndpoint && pages % 10 !== 0);
    }
    await loadMore();
    if (token !== renderToken) return;
    const select = (name, options, value) => h("select", { name, id: "filter-" + name }, h("option", { value: "" }, "All"), options.map(([v, t]) => h("option", { value: v, selected: v === value }, t)));
    const form = h("form", { class: "filters panel", onsubmit: (e) => {
      e.preventDefault();
      const data = new FormData(e.target);
      const q = {};
      for (const [k, v] of data.entries()) if (v) q[k] = v;
      location.hash = "#/jobs" + qs(q);
    } },
      h("div", {}, h("label", { for: "filter-status" }, "Status"), select("status", STATUSES.map((x) => [x, x]), filters.status)),
      h("div", {}, h("label", { for: "filter-route" }, "Route"), select("route", routeList.items.map((r) => [r.route_id, (r.name || short(r.route_id))]), filters.route)),
      h("div", {}, h("label", { for: "filter-endpoint" }, "Endpoint"), select("endpoint", endpointList.endpoints.map((e) => [e.endpoint_id, (e.name || short(e.endpoint_id))]), filters.endpoint)),
      h("div", {}, h("label", { for: "filter-since" }, "From"), h("input", { type: "date", name: "since", id: "filter-since", value: filters.since })),
      h("div", {}, h("label", { for: "filter-until" }, "To"), h("input", { type: "date", name: "until", id: "filter-until", value: filters.until })),
      h("div", {}, h("button", { type: "submit", class: "primary" }, "Apply")),
      h("div", {}, h("button", { type: "button", onclick: () => { location.hash = "#/jobs"; } }, "Clear")));
    const tableHolder = h("div", { class: "panel" });
    const moreHolder = h("div", { class: "more" });
    const count = h("span", {});
    function paint() {
      tableHolder.replaceChildren(jobTable(loaded));
      count.textContent = loaded.length + " job" + (loaded.length === 1 ? "" : "s") + " shown" + (next ? " (more available)" : "");
      moreHolder.replaceChildren(next ? h("button", { type: "button", id: "load-more", onclick: async () => { await loadMore(); paint(); } }, "Load more") : "");
    }
    paint();
    main.replaceChildren(head("Jobs", count), form, tableHolder, moreHolder);
    // live: refresh the first page every second (running jobs move, new jobs appear on top)
    poll(async () => {
      const first = await api("/jobs" + qs(serverQuery));
      if (token !== renderToken) return;
      const fresh = new Map(first.jobs.map((j) => [j.job_id, j]));
      const known = new Set(loaded.map((j) => j.job_id));
      const added = first.jobs.filter((j) => !known.has(j.job_id) && matches(j));
      loaded = added.concat(loaded.map((j) => fresh.get(j.job_id) || j));
      paint();
    }, token);
  }

  // ------------------------------------------------------------------ job
  function eventClass(type) {
    if (/Failed|Rejected|Expired/.test(type)) return "fail";
    if (/Succeeded|Verified|Delivered|Published|Cancelled/.test(type)) return "ok";
    if (/Started|Acquired|Chunk/.test(type)) return "run";
    if (/Retry|Cancel/.test(type)) return "warn";
    return "";
  }
  function eventSummary(ev) {
    const d = ev.detail || {};
    const bits = [];
    for (const k of ["attempt", "executor_id", "error_code", "error_message", "reason", "size", "sha256", "verify", "delay_seconds", "next_attempt_at", "outcome", "redriven_to", "redrive_of"]) {
      if (d[k] !== undefined && d[k] !== null && d[k] !== "") bits.push(k + ": " + (k === "size" ? bytes(d[k]) : d[k]));
    }
    return bits.join(" · ");
  }
  function timeline(events) {
    const items = [];
    let chunks = null;
    for (const ev of events) {
      const type = ev["detail-type"];
      if (type === "ChunkCommitted") {
        const d = ev.detail || {};
        if (!chunks) {
          chunks = { first: ev, last: ev, n: 0, total: d.bytes_total, done: 0, indexes: new Set(), leg: d.leg };
          items.push(chunks);
        }
        chunks.n++;
        chunks.last = ev;
        chunks.done = d.bytes_committed;
        chunks.indexes.add(d.index);
        continue;
      }
      chunks = null;
      items.push(ev);
    }
    return h("ol", { class: "timeline" }, items.map((it) => {
      if (it.indexes) {
        const total = it.total && it.last.detail.length ? Math.max(it.n, Math.ceil(it.total / it.first.detail.length)) : it.n;
        const strip = h("div", { class: "strip", title: it.n + " chunks" });
        for (let i = 0; i < Math.min(total, 200); i++) strip.append(h("span", { class: it.indexes.has(i) ? "on" : "" }));
        return h("li", { class: "chunks" }, h("span", { class: "dot run" }),
          h("span", { class: "ev" }, it.n + " chunk" + (it.n === 1 ? "" : "s") + " committed"),
          h("span", { class: "when" }, stamp(it.first.occurred_at) + " → " + stamp(it.last.occurred_at).slice(11)),
          strip, h("div", { class: "detail muted" }, bytes(it.done) + " of " + bytes(it.total) + (it.leg ? " · leg " + it.leg : "")));
      }
      return h("li", {}, h("span", { class: "dot " + eventClass(it["detail-type"]) }),
        h("span", { class: "ev" }, it["detail-type"]), h("span", { class: "when" }, stamp(it.occurred_at)),
        h("div", { class: "detail" }, eventSummary(it)));
    }));
  }
  async function job(main, token, parts) {
    const id = parts[0] || "";
    const holder = h("div", {});
    main.replaceChildren(holder);
    async function load() {
      const [j, ev] = await Promise.all([api("/jobs/" + encodeURIComponent(id)), api("/jobs/" + encodeURIComponent(id) + "/events")]);
      if (token !== renderToken) return null;
      const readOnly = !me || me.scope !== "write";
      const why = readOnly ? "This API key is read-only" : "";
      const act = async (what) => {
        try { await api("/jobs/" + encodeURIComponent(id) + "/" + what, { method: "POST" }); render(); }
        catch (e) { alert(what + " failed: " + e.message); }
      };
      const cancel = h("button", { type: "button", id: "cancel", class: "danger", disabled: readOnly || FINAL.has(j.status) || j.cancel_requested, title: why || (FINAL.has(j.status) ? "The job is final" : ""), onclick: () => act("cancel") }, j.cancel_requested && !FINAL.has(j.status) ? "Cancel requested" : "Cancel");
      const redrive = h("button", { type: "button", id: "redrive", disabled: readOnly || !(j.status === "FAILED" || j.status === "CANCELLED"), title: why || "Only a FAILED or CANCELLED job can be redriven", onclick: () => act("redrive") }, "Redrive");
      const fact = (k, v) => [h("dt", {}, k), h("dd", {}, v === undefined || v === null || v === "" ? "—" : v)];
      const retries = ev.events.filter((e) => e["detail-type"] === "JobRetryScheduled").length;
      holder.replaceChildren(
        head(h("span", {}, "Job ", h("span", { class: "mono" }, short(j.job_id))), h("span", { class: "mono" }, j.job_id), cancel, redrive),
        h("div", { class: "grid two" },
          h("div", { class: "panel" }, h("h2", {}, "Status"),
            h("div", { class: "progress-cell" }, badge(j.status), bar(j.progress_percent, j.status), h("span", { class: "pct" }, Math.round(j.progress_percent || 0) + "%")),
            h("dl", { class: "facts" },
              fact("Committed", bytes(j.bytes_committed) + " of " + bytes(j.bytes_total || j.size) + (j.chunk_count ? " · " + (j.chunks_committed || 0) + "/" + j.chunk_count + " chunks" : "")),
              fact("Rate", rate(liveRate(j))),
              fact("Attempts", (j.attempt || 0) + " of " + (j.max_attempts || "—") + (retries ? " · " + retries + " retr" + (retries === 1 ? "y" : "ies") : "")),
              fact("Error", j.error_code ? h("span", {}, h("code", {}, j.error_code), " ", j.error_message || "") : ""),
              fact("Next attempt", j.next_attempt_at),
              fact("Cancel", j.cancel_outcome === "too_late" ? "too late: delivered" : j.cancel_requested ? "requested" : ""))),
          h("div", { class: "panel" }, h("h2", {}, "Transfer"),
            h("dl", { class: "facts" },
              fact("Flow", j.flow),
              fact("Source", j.source ? h("span", {}, loc(j.source), h("div", { class: "mono small muted" }, j.source.endpoint_id)) : ""),
              fact("Target", j.target ? h("span", {}, loc(j.target), h("div", { class: "mono small muted" }, j.target.endpoint_id)) : ""),
              fact("Route", j.route_id ? h("a", { href: "#/route/" + encodeURIComponent(j.route_id), class: "mono" }, j.route_id) : ""),
              fact("Size", bytes(j.size)),
              fact("SHA-256", j.sha256 ? h("span", { class: "mono" }, j.sha256) : ""),
              fact("Verify", (j.options || {}).verify),
              fact("Created", stamp(j.created_at)),
              fact("Started", stamp(j.started_at)),
              fact("Finished", stamp(j.finished_at)),
              fact("Redrive", j.redrive_of ? h("a", { href: "#/job/" + j.redrive_of, class: "mono" }, "of " + short(j.redrive_of)) : j.redriven_to ? h("a", { href: "#/job/" + j.redriven_to, class: "mono" }, "as " + short(j.redriven_to)) : "")))),
        h("div", { class: "panel", id: "audit" }, h("h2", {}, "Audit trail (" + ev.events.length + " events)"), timeline(ev.events)));
      return j;
    }
    await loadNames();
    const first = await load();
    if (first && !FINAL.has(first.status)) poll(async () => { const j = await load(); if (j && FINAL.has(j.status)) stopPolling(); }, token);
  }

  // ------------------------------------------------------------------ routes
  async function routes(main, token) {
    const [list] = await Promise.all([api("/routes"), loadNames()]);
    if (token !== renderToken) return;
    main.replaceChildren(head("Routes", list.items.length + " route" + (list.items.length === 1 ? "" : "s")),
      h("div", { class: "panel" }, h("table", {},
        h("thead", {}, h("tr", {}, ["Route", "Name", "State", "Trigger", "From", "To", "Failing files", "Updated"].map((t) => h("th", {}, t)))),
        h("tbody", {}, list.items.length ? list.items.map((r) => h("tr", {},
          h("td", {}, h("a", { href: "#/route/" + encodeURIComponent(r.route_id), class: "mono" }, short(r.route_id))),
          h("td", {}, r.name || "—"),
          h("td", {}, badge(r.status || (r.enabled ? "ENABLED" : "DISABLED"))),
          h("td", {}, r.trigger ? (r.trigger.type === "event" ? "on arrival" : "every " + (r.trigger.every || r.trigger.cron || "?")) : "—"),
          h("td", { class: "wrap" }, r.source ? epName(r.source.endpoint_id) + ":" + (r.source.path || "") + (r.source.pattern ? " " + r.source.pattern : "") : "—"),
          h("td", { class: "wrap" }, (r.targets || []).map((t) => h("div", {}, epName(t.endpoint_id) + ":" + t.path_template))),
          h("td", { class: "num" }, r.failing_files === undefined ? "—" : r.failing_files),
          h("td", { class: "num muted" }, when(r.updated_at)))) : h("tr", {}, h("td", { colspan: 8, class: "empty" }, "No routes yet."))))));
  }
  function filesTable(items) {
    return h("table", { class: "files" },
      h("thead", {}, h("tr", {}, ["File", "Status", "Reason", "Jobs", "First seen", "Last change"].map((t) => h("th", {}, t)))),
      h("tbody", {}, items.length ? items.map((f) => {
        const last = (f.history || [])[Math.max(0, (f.history || []).length - 1)] || {};
        return h("tr", {},
          h("td", { class: "wrap mono" }, f.path),
          h("td", {}, badge(f.status)),
          h("td", { class: "wrap" }, f.reason ? h("span", {}, h("code", {}, f.reason), f.detail ? " " + f.detail : "") : "—"),
          h("td", { class: "mono" }, (f.job_ids || []).map((id) => h("div", {}, h("a", { href: "#/job/" + encodeURIComponent(id) }, short(id))))),
          h("td", { class: "num muted" }, when(f.first_seen_at)),
          h("td", { class: "num muted" }, last.event ? last.event + " · " + when(last.at) : "—"));
      }) : h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No files in the ledger match."))));
  }
  async function route(main, token, parts, query) {
    const id = parts[0] || "";
    const name = query.get("q") || "";
    const [r, files] = await Promise.all([api("/routes/" + encodeURIComponent(id)), api("/routes/" + encodeURIComponent(id) + "/files" + qs({ name, limit: 50 })), loadNames()]);
    if (token !== renderToken) return;
    const search = h("form", { class: "search", id: "ledger-search", onsubmit: (e) => {
      e.preventDefault();
      const q = e.target.elements.q.value.trim();
      location.hash = "#/route/" + encodeURIComponent(id) + (q ? "?q=" + encodeURIComponent(q) : "");
    } }, h("input", { name: "q", id: "ledger-q", type: "search", placeholder: "File name or path, e.g. invoice-0042.csv", value: name }), h("button", { type: "submit", class: "primary" }, "Search"));
    let answer = null;
    if (name) {
      answer = files.items.length
        ? h("div", { class: "notice" }, files.items.length + " ledger entr" + (files.items.length === 1 ? "y" : "ies") + " for “" + name + "”: the status and reason say what happened to each.")
        : h("div", { class: "notice bad" }, "“" + name + "” is not in this route's ledger: the route never saw it. Check that it is under " + ((r.source || {}).path || "the source root") + " and matches " + ((r.source || {}).pattern || "*") + (r.source && r.source.min_size !== undefined && r.source.min_size !== null ? " (min size " + r.source.min_size + ")" : "") + ".");
    }
    const fact = (k, v) => [h("dt", {}, k), h("dd", {}, v === undefined || v === null || v === "" ? "—" : v)];
    main.replaceChildren(
      head(h("span", {}, "Route ", r.name || short(r.route_id)), h("span", { class: "mono" }, r.route_id), badge(r.status)),
      h("div", { class: "grid two" },
        h("div", { class: "panel" }, h("h2", {}, "Definition"), h("dl", { class: "facts" },
          fact("Trigger", r.trigger ? (r.trigger.type === "event" ? "on arrival (push)" : "every " + (r.trigger.every || r.trigger.cron)) : ""),
          fact("Source", r.source ? h("span", {}, epName(r.source.endpoint_id) + ":" + (r.source.path || "") + " ", h("code", {}, r.source.pattern || "*")) : ""),
          fact("Targets", (r.targets || []).map((t) => h("div", {}, epName(t.endpoint_id) + ":" + t.path_template))),
          fact("Post-action", r.post_action), fact("Verify", r.verify), fact("Updated", stamp(r.updated_at)))),
        h("div", { class: "panel" }, h("h2", {}, "Health"), h("dl", { class: "facts" },
          fact("State", badge(r.status)),
          fact("Listing error", r.scan_error ? (typeof r.scan_error === "string" ? r.scan_error : JSON.stringify(r.scan_error)) : ""),
          fact("Failing files", (r.failing_files || []).length ? (r.failing_files || []).map((p) => h("div", { class: "mono" }, p)) : "none")))),
      h("div", { class: "panel" }, h("h2", {}, "Why wasn't a file sent?"), search, answer ? h("div", { class: "ledger-answer" }, answer) : null,
        h("h2", {}, name ? "Ledger entries" : "Recent files"), filesTable(files.items)));
  }

  // ------------------------------------------------------------------ endpoints
  async function endpoints(main, token) {
    const [list, running] = await Promise.all([api("/endpoints?limit=100"), api("/jobs?status=RUNNING&limit=100")]);
    if (token !== renderToken) return;
    const inUse = new Map();
    for (const j of running.jobs) for (const l of [j.source, j.target]) if (l) inUse.set(l.endpoint_id, (inUse.get(l.endpoint_id) || 0) + 1);
    const where = (e) => { const c = e.config || {}; return e.type === "sftp" ? (c.username ? c.username + "@" : "") + (c.host || "") + (c.port ? ":" + c.port : "") + (c.base_path || "") : "s3://" + (c.bucket || "") + "/" + (c.prefix || ""); };
    main.replaceChildren(head("Endpoints", list.endpoints.length + " endpoint" + (list.endpoints.length === 1 ? "" : "s") + (list.next_token ? " (first 100)" : "")),
      h("div", { class: "panel" }, h("table", {},
        h("thead", {}, h("tr", {}, ["Endpoint", "Name", "Type", "Direction", "Health", "Reason", "Last validation", "Concurrency in use"].map((t) => h("th", {}, t)))),
        h("tbody", {}, list.endpoints.length ? list.endpoints.map((e) => h("tr", {},
          h("td", { class: "mono" }, short(e.endpoint_id)),
          h("td", {}, h("div", {}, e.name || "—"), h("div", { class: "small muted wrap" }, where(e))),
          h("td", {}, (e.type || "").toUpperCase()),
          h("td", {}, e.direction || "—"),
          h("td", {}, badge(e.status)),
          h("td", { class: "wrap small" }, e.status_reason || "—"),
          h("td", { class: "num muted", title: e.validated_at || "" }, when(e.validated_at)),
          h("td", { class: "num" }, (inUse.get(e.endpoint_id) || 0) + " / " + (e.max_concurrency || "—")))) : h("tr", {}, h("td", { colspan: 8, class: "empty" }, "No endpoints yet."))))),
      h("div", { class: "muted small" }, "Concurrency in use: this customer's RUNNING jobs reading or writing the endpoint, against its max_concurrency."));
  }

  // ------------------------------------------------------------------ start
  document.addEventListener("DOMContentLoaded", async () => {
    document.getElementById("login-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const key = document.getElementById("api-key").value.trim();
      if (key && (await login(key))) render();
    });
    document.getElementById("logout").addEventListener("click", () => logout(""));
    window.addEventListener("hashchange", render);
    const key = sessionStorage.getItem(KEY);
    if (key && (await login(key))) render();
    else if (!key) logout("");
  });
})();
