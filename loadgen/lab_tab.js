// iolab's Lab panel: every server of the run, its address, live stats, a chart
// of connections over time, and a button that makes it the load's target.
// Served as <base>/lab/tab.js (loadgen/lab_tab.py). It runs in two places:
// the standalone page <base>/lab (renders into #iolab-root) and Locust's own
// web UI (the script tag is added to its index page), where it shows under the
// "Lab" tab (?tab=iolab). Every URL is resolved against this script's own URL,
// so the panel works under Locust's --web-base-path: no absolute paths here.
(function () {
  "use strict";
  if (window.iolabLab) return;
  const script = document.currentScript;
  const API = new URL(".", script ? script.src : document.baseURI);  // <base>/lab/
  const url = (name) => new URL(name, API).toString();
  const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];
  const WINDOW_S = 120;
  const COLUMNS = [["server", "Server"], ["model", "Model"], ["address", "Address"],
    ["status", "Status"], ["connections", "Connections"], ["peak_connections", "Peak"],
    ["limits", "Limits hit"], ["rss_mib", "RSS MiB"], ["cpu_s", "CPU s"]];
  const state = {data: null, error: "", busy: false};

  function el(tag, attrs, ...kids) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v; else node.setAttribute(k, v);
    }
    for (const kid of kids) if (kid) node.appendChild(kid);
    return node;
  }
  const show = (v) => (v === null || v === undefined || v === "") ? "–" : String(v);

  function build() {
    const panel = el("div", {id: "iolab-panel", style:
      "font-family:system-ui,sans-serif;margin:12px 0;padding:8px 12px;" +
      "border:1px solid #8884;border-radius:6px"});
    panel.appendChild(el("h3", {text: "iolab: the servers of this run", style: "margin:4px 0"}));
    panel.appendChild(el("p", {id: "iolab-target", style: "margin:4px 0"}));
    const table = el("table", {id: "iolab-servers", style: "border-collapse:collapse"});
    const head = el("tr");
    for (const [, title] of COLUMNS) head.appendChild(el("th", {text: title}));
    head.appendChild(el("th", {text: "Load target"}));
    table.appendChild(el("thead", {}, head));
    table.appendChild(el("tbody", {id: "iolab-rows"}));
    panel.appendChild(table);
    panel.appendChild(el("p", {id: "iolab-note", style: "margin:4px 0;color:#b00"}));
    panel.appendChild(el("div", {id: "iolab-chart"}));
    const style = el("style", {text:
      "#iolab-servers th,#iolab-servers td{border:1px solid #8886;padding:3px 8px;" +
      "text-align:right}#iolab-servers td:first-child{text-align:left}" +
      "#iolab-servers .limit{color:#b00;font-weight:bold}"});
    panel.appendChild(style);
    return panel;
  }

  async function pick(server) {
    state.busy = true;
    try {
      const body = new URLSearchParams({server});
      const r = await fetch(url("target"), {method: "POST", body, cache: "no-store"});
      const reply = await r.json();
      state.error = reply.success ? "" : (reply.message || "target not changed");
    } catch (e) {
      state.error = "target not changed: " + e;
    }
    state.busy = false;
    await refresh();
  }

  function chart(servers) {
    const W = 640, H = 180, L = 48, B = 22, T = 8, R = 110;
    const now = state.data ? state.data.time : Date.now() / 1000;
    const t0 = now - WINDOW_S;
    let ymax = 10;
    for (const s of servers) for (const [t, c] of s.history || []) {
      if (t >= t0 && c > ymax) ymax = c;
    }
    const x = (t) => L + (W - L - R) * (t - t0) / WINDOW_S;
    const y = (c) => T + (H - T - B) * (1 - c / ymax);
    const NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    const add = (tag, attrs, text) => {
      const n = document.createElementNS(NS, tag);
      for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
      if (text !== undefined) n.textContent = text;
      svg.appendChild(n);
      return n;
    };
    svg.setAttribute("id", "iolab-chart-svg");
    svg.setAttribute("width", W); svg.setAttribute("height", H);
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    add("rect", {x: L, y: T, width: W - L - R, height: H - T - B, fill: "none",
                 stroke: "#8888"});
    add("text", {x: L - 4, y: T + 10, "text-anchor": "end", "font-size": 11,
                 fill: "currentColor"}, String(ymax));
    add("text", {x: L - 4, y: H - B, "text-anchor": "end", "font-size": 11,
                 fill: "currentColor"}, "0");
    add("text", {x: L, y: H - 6, "font-size": 11, fill: "currentColor"}, `-${WINDOW_S} s`);
    add("text", {x: W - R, y: H - 6, "text-anchor": "end", "font-size": 11,
                 fill: "currentColor"}, "now · connections per server");
    servers.forEach((s, i) => {
      const color = COLORS[i % COLORS.length];
      const pts = (s.history || []).filter(([t]) => t >= t0)
        .map(([t, c]) => `${x(t).toFixed(1)},${y(c).toFixed(1)}`);
      if (pts.length) {
        add("polyline", {points: pts.join(" "), fill: "none", stroke: color,
                         "stroke-width": 2, "data-server": s.server});
      }
      add("rect", {x: W - R + 10, y: T + 4 + i * 16, width: 10, height: 10, fill: color});
      add("text", {x: W - R + 24, y: T + 13 + i * 16, "font-size": 11, fill: "currentColor"},
          `${s.server} ${show(s.connections)}`);
    });
    return svg;
  }

  function render(root) {
    if (!root.querySelector("#iolab-panel")) root.appendChild(build());
    const data = state.data;
    const rows = root.querySelector("#iolab-rows");
    const note = root.querySelector("#iolab-note");
    if (!data) { note.textContent = state.error || "loading…"; return; }
    const servers = data.servers || [];
    const target = data.pending || data.target;
    const current = servers.find((s) => s.target === target);
    root.querySelector("#iolab-target").textContent = "Load target for the next test: " +
      (current ? `${current.server} (${current.address})` : show(target)) +
      (data.pending ? " — applies when the running test has stopped" : "") +
      (data.running_target && data.running_target !== target ?
        `; the running test loads ${data.running_target}` : "");
    rows.replaceChildren();
    for (const s of servers) {
      const tr = el("tr", {"data-server": s.server});
      for (const [k] of COLUMNS) {
        let v = s[k];
        if (k === "limits") v = (v && v.length) ? v.join(", ") : "–";
        if (k === "rss_mib") v = s.rss_bytes == null ? null : (s.rss_bytes / 1048576).toFixed(1);
        if (k === "cpu_s") v = s.cpu_s == null ? null : s.cpu_s.toFixed(2);
        const td = el("td", {text: show(v), "data-key": k});
        if (k === "limits" && v !== "–") td.className = "limit";
        tr.appendChild(td);
      }
      const cell = el("td", {"data-key": "load_target"});
      if (!s.target) {
        cell.textContent = "–";
      } else if (s.target === target) {
        cell.appendChild(el("b", {text: "◀ target", class: "iolab-is-target"}));
      } else {
        const button = el("button", {type: "button", class: "iolab-pick",
                                     "data-server": s.server, text: "Send load here"});
        button.disabled = state.busy;
        button.addEventListener("click", () => pick(s.server));
        cell.appendChild(button);
      }
      tr.appendChild(cell);
      rows.appendChild(tr);
    }
    note.textContent = state.error || (servers.length ? "" : `No servers listed in ${data.source}.`);
    root.querySelector("#iolab-chart").replaceChildren(chart(servers));
  }

  async function refresh() {
    try {
      const r = await fetch(url("stats"), {cache: "no-store"});
      state.data = await r.json();
      if (state.error.startsWith("refresh failed")) state.error = "";
    } catch (e) {
      state.error = "refresh failed: " + e;
    }
    draw();
  }

  // In Locust's own UI: the start form's host field and a note on the step plan.
  function setInput(input, value) {
    const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value").set;
    setter.call(input, value);
    input.dispatchEvent(new Event("input", {bubbles: true}));
    input.dispatchEvent(new Event("change", {bubbles: true}));
  }

  function decorateForm() {
    const data = state.data;
    const host = document.querySelector("form input[name=host]");
    const target = data && (data.pending || data.target);
    if (host && target && host.dataset.iolab !== target) {
      host.dataset.iolab = target;  // once per target: the user may still edit it
      if (host.value !== target) setInput(host, target);
    }
    const users = document.querySelector("form input[name=userCount]");
    if (users && data && data.steps && !document.getElementById("iolab-plan")) {
      const field = users.closest(".MuiFormControl-root") || users.parentNode;
      const hint = el("div", {id: "iolab-plan", style: "font-size:0.8em;opacity:0.8"});
      const plan = data.steps.map((st) => `${st.users} users for ${st.hold_s} s`).join(" → ");
      hint.textContent = `Step plan: ${plan} (custom parameter "steps": ${data.steps_text}). ` +
        "The steps drive the run; the number of users is their peak.";
      field.parentNode.insertBefore(hint, field.nextSibling);
    }
  }

  function labTabActive() {
    return new URLSearchParams(window.location.search).get("tab") === (window.iolabTabKey || "iolab");
  }

  function embeddedRoot() {
    // Below the tab bar, where the Lab tab's content goes: the React UI draws
    // nothing there (no extended_tables, so no second table of the servers).
    // Before the first test there is no tab bar: on top of <main>, above the form.
    const tabs = document.querySelector("[role=tablist]");
    const parent = tabs ? tabs.closest(".MuiContainer-root") : document.querySelector("main");
    let host = document.getElementById("iolab-embedded");
    if (host && parent && host.parentNode === parent) return host;
    if (host) host.remove();  // the page moved on (e.g. the first test started)
    if (!parent) return null;
    host = el("div", {id: "iolab-embedded"});
    if (tabs) parent.appendChild(host); else parent.insertBefore(host, parent.firstChild);
    return host;
  }

  function draw() {
    const standalone = document.getElementById("iolab-root");
    if (standalone) { render(standalone); return; }
    decorateForm();
    if (labTabActive()) {
      const root = embeddedRoot();
      if (root) render(root);
    } else {
      const old = document.getElementById("iolab-embedded");
      if (old) old.remove();
    }
  }

  window.iolabLab = {refresh, pick};
  refresh();
  setInterval(refresh, 1000);
  setInterval(draw, 300);  // the React UI switches tabs without reloading the page
})();
