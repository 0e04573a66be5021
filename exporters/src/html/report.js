"use strict";
// The event table of the report. Every value from the trail reaches the page through
// textContent or a DOM property, never as markup.
(() => {
  const $ = (id) => document.getElementById(id);
  const main = $("report");
  const rows = JSON.parse($("audit-records").textContent);
  const C = {};
  main.dataset.columns.split(",").forEach((name, i) => { C[name] = i; });
  const pageSize = Number(main.dataset.pageSize) || 100;
  const table = $("events");
  const tbody = table.tBodies[0];
  const filter = $("filter");
  const failedOnly = $("failed-only");
  const category = $("category");
  const status = $("shown");
  const prev = $("prev");
  const next = $("next");
  let view = rows.map((_, i) => i);
  let page = 0;
  let sortKey = null;
  let sortDir = 1;
  let haystack = null;
  let times = null;

  const actor = (r) => r[C.actor_name] || r[C.actor_id] || r[C.actor_arn] || "";
  const target = (r) => r[C.target_name] || r[C.target_id] || "";
  const time = (i) => {
    if (!times) times = rows.map((r) => Date.parse(r[C.event_time]));
    return times[i];
  };
  const KEYS = {
    time: (r, i) => time(i),
    actor,
    action: (r) => r[C.event_name],
    target,
    origin: (r) => r[C.origin],
    result: (r) => r[C.error_code] || "",
    id: (r) => r[C.event_id],
  };

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function row(i) {
    const r = rows[i];
    const tr = document.createElement("tr");
    tr.className = r[C.error_code] ? "event failed" : "event";
    tr.dataset.row = String(i);
    tr.dataset.eventId = r[C.event_id];
    tr.dataset.targetIndex = r[C.target_index];
    cell(tr, r[C.event_time].replace("T", " "), "time");
    cell(tr, actor(r)).title = [r[C.actor_kind], r[C.actor_arn] || r[C.actor_id]].filter(Boolean).join(" ");
    cell(tr, r[C.event_name]);
    cell(tr, target(r)).title = [r[C.target_kind], r[C.target_id]].filter(Boolean).join(" ");
    cell(tr, r[C.origin]);
    const result = cell(tr, r[C.error_code] ? "\u2717 " + r[C.error_code] : "\u2713 ok", "result");
    if (r[C.error_message]) result.title = r[C.error_message];
    const id = cell(tr, "", "id");
    const code = document.createElement("code");
    code.textContent = r[C.event_id];
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "copy";
    copy.textContent = "copy";
    copy.title = "Copy the event id";
    id.append(code, copy);
    return tr;
  }

  function render() {
    const pages = Math.max(1, Math.ceil(view.length / pageSize));
    page = Math.min(Math.max(page, 0), pages - 1);
    const start = page * pageSize;
    const end = Math.min(view.length, start + pageSize);
    const fragment = document.createDocumentFragment();
    for (let k = start; k < end; k++) fragment.appendChild(row(view[k]));
    tbody.replaceChildren(fragment);
    table.dataset.rendered = String(end - start);
    main.dataset.shown = String(view.length);
    const of = view.length === rows.length ? "" : " (filtered from " + rows.length + ")";
    status.textContent = view.length
      ? "events " + (start + 1) + "\u2013" + end + " of " + view.length + of + ", page " + (page + 1) + " of " + pages
      : "no event matches" + of;
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
  }

  function sort() {
    if (!sortKey) return;
    const key = KEYS[sortKey];
    const keyed = view.map((i) => [key(rows[i], i), i]);
    keyed.sort((a, b) => (a[0] < b[0] ? -sortDir : a[0] > b[0] ? sortDir : a[1] - b[1]));
    view = keyed.map((k) => k[1]);
  }

  function apply() {
    const q = filter.value.trim().toLowerCase();
    const failed = failedOnly.checked;
    const cat = category.value;
    if (q && !haystack) haystack = rows.map((r) => r.join("\u0001").toLowerCase());
    view = [];
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i];
      if (failed && !r[C.error_code]) continue;
      if (cat && r[C.category] !== cat) continue;
      if (q && !haystack[i].includes(q)) continue;
      view.push(i);
    }
    sort();
    page = 0;
    render();
  }

  function details(tr) {
    const open = tr.nextElementSibling;
    if (open && open.classList.contains("detail")) {
      open.remove();
      return;
    }
    const r = rows[Number(tr.dataset.row)];
    const detail = document.createElement("tr");
    detail.className = "detail";
    const td = document.createElement("td");
    td.colSpan = 7;
    const dl = document.createElement("dl");
    Object.keys(C).forEach((name) => {
      if (r[C[name]] === null) return;
      const dt = document.createElement("dt");
      dt.textContent = name;
      const dd = document.createElement("dd");
      dd.textContent = r[C[name]];
      dl.append(dt, dd);
    });
    td.appendChild(dl);
    detail.appendChild(td);
    tr.after(detail);
  }

  function copy(button) {
    const code = button.previousElementSibling;
    const done = () => {
      button.textContent = "copied";
      setTimeout(() => { button.textContent = "copy"; }, 1200);
    };
    const select = () => {
      const range = document.createRange();
      range.selectNodeContents(code);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      if (document.execCommand("copy")) done();
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(code.textContent).then(done, select);
    } else {
      select();
    }
  }

  tbody.addEventListener("click", (event) => {
    const button = event.target.closest("button.copy");
    if (button) return copy(button);
    if (event.target.closest("code") || String(window.getSelection())) return;
    const tr = event.target.closest("tr.event");
    if (tr) details(tr);
  });
  table.tHead.addEventListener("click", (event) => {
    const th = event.target.closest("th[data-sort]");
    if (!th) return;
    sortDir = sortKey === th.dataset.sort ? -sortDir : 1;
    sortKey = th.dataset.sort;
    for (const other of table.tHead.querySelectorAll("th")) other.removeAttribute("aria-sort");
    th.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
    sort();
    page = 0;
    render();
  });
  let typing = 0;
  filter.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(apply, 150);
  });
  failedOnly.addEventListener("change", apply);
  category.addEventListener("change", apply);
  prev.addEventListener("click", () => { page -= 1; render(); });
  next.addEventListener("click", () => { page += 1; render(); });

  // Oldest first, as a log reads; the records come in the order the trail delivered them.
  sortKey = "time";
  table.tHead.querySelector('th[data-sort="time"]').setAttribute("aria-sort", "ascending");
  sort();
  render();
  main.dataset.loaded = String(rows.length);
  // Milliseconds from the start of navigation (reading and parsing the file included) to the
  // first page of the table on screen: what a reader waits for. Benchmarks read it.
  document.body.dataset.renderMs = performance.now().toFixed(1);
  // And once that page was painted: the frame after it has begun.
  requestAnimationFrame(() => setTimeout(() => {
    document.body.dataset.paintedMs = performance.now().toFixed(1);
  }, 0));
})();
