// The event table of the audit report (after table.js). Every value from the trail reaches
// the page through textContent or a DOM property, never as markup.
(() => {
  const $ = (id) => document.getElementById(id);
  const main = $("report");
  const rows = JSON.parse($("audit-records").textContent);
  const C = {};
  main.dataset.columns.split(",").forEach((name, i) => { C[name] = i; });
  const table = $("events");
  const tbody = table.tBodies[0];
  const failedOnly = $("failed-only");
  const category = $("category");
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
  const events = pagedTable({
    main, table, rows, row,
    status: $("shown"), prev: $("prev"), next: $("next"), filter: $("filter"),
    pageSize: Number(main.dataset.pageSize) || 100,
    keys: KEYS,
    noun: ["event", "events"],
    keep: (i) => (!failedOnly.checked || Boolean(rows[i][C.error_code]))
      && (!category.value || rows[i][C.category] === category.value),
  });
  failedOnly.addEventListener("change", events.apply);
  category.addEventListener("change", events.apply);

  // Oldest first, as a log reads; the records come in the order the trail delivered them.
  events.sortBy("time");
  main.dataset.loaded = String(rows.length);
  // Milliseconds from the start of navigation (reading and parsing the file included) to the
  // first page of the table on screen: what a reader waits for. Benchmarks read it.
  document.body.dataset.renderMs = performance.now().toFixed(1);
  // And once that page was painted: the frame after it has begun.
  requestAnimationFrame(() => setTimeout(() => {
    document.body.dataset.paintedMs = performance.now().toFixed(1);
  }, 0));
})();
