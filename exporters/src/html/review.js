"use strict";
// The user table of the access review. Every value from the trail and the snapshot reaches
// the page through textContent or a DOM property, never as markup.
(() => {
  const $ = (id) => document.getElementById(id);
  const main = $("review");
  const rows = JSON.parse($("review-records").textContent);
  const C = {};
  const columns = main.dataset.columns.split(",");
  columns.forEach((name, i) => { C[name] = i; });
  const pageSize = Number(main.dataset.pageSize) || 100;
  const table = $("users");
  const tbody = table.tBodies[0];
  const filter = $("filter");
  const privilegedOnly = $("privileged-only");
  const undecidedOnly = $("undecided-only");
  const status = $("shown");
  const prev = $("prev");
  const next = $("next");
  // The reviewer's decisions, per row: [decision, note].
  const decisions = rows.map(() => ["", ""]);
  let view = rows.map((_, i) => i);
  let page = 0;
  let sortKey = null;
  let sortDir = 1;
  let haystack = null;

  const v = (r, name) => r[C[name]] || "";
  const user = (r) => v(r, "username") || v(r, "user_id");
  const KEYS = {
    user: (r) => user(r).toLowerCase(),
    instance: (r) => v(r, "instance_id"),
    profiles: (r) => v(r, "security_profiles").toLowerCase(),
    grants: (r) => v(r, "grants"),
    routing: (r) => v(r, "routing_profile").toLowerCase(),
    group: (r) => v(r, "hierarchy_group").toLowerCase(),
    change: (r) => v(r, "last_change_at"),
    signins: (r) => Number(v(r, "sign_ins_in_period")),
    status: (r) => v(r, "deleted_after"),
  };

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function lines(td, parts, same) {
    td.textContent = "";
    parts.filter(Boolean).forEach((text, k) => {
      const div = document.createElement("div");
      div.textContent = text;
      if (k > 0 && !same) div.className = "minor";
      td.appendChild(div);
    });
  }

  function row(i) {
    const r = rows[i];
    const tr = document.createElement("tr");
    tr.className = v(r, "privileged") === "true" ? "user privileged" : "user";
    if (v(r, "deleted_after")) tr.className += " gone";
    tr.dataset.row = String(i);
    tr.dataset.userId = v(r, "user_id");
    const name = [v(r, "first_name"), v(r, "last_name")].filter(Boolean).join(" ");
    lines(cell(tr, ""), [user(r), name, v(r, "email")]);
    cell(tr, v(r, "instance_id"));
    const profiles = cell(tr, "");
    if (r[C.security_profiles] === null) {
      profiles.textContent = "not known";
      profiles.className = "minor";
    } else {
      const privileged = new Set(v(r, "privileged_profiles").split("; ").filter(Boolean));
      v(r, "security_profiles").split("; ").filter(Boolean).forEach((p) => {
        const span = document.createElement("span");
        span.className = privileged.has(p) ? "profile privileged" : "profile";
        span.textContent = p;
        profiles.appendChild(span);
      });
    }
    lines(cell(tr, "", "grants"), v(r, "grants").split("; "), true);
    cell(tr, v(r, "routing_profile"));
    cell(tr, v(r, "hierarchy_group"));
    const change = cell(tr, "");
    if (v(r, "last_change_at")) {
      lines(change, [v(r, "last_change_at").replace("T", " "), v(r, "last_change_event") + (v(r, "last_change_by") ? " by " + v(r, "last_change_by") : "")]);
      change.title = "event " + v(r, "last_change_event_id");
    } else {
      change.textContent = "none in the trail read";
      change.className = "minor";
    }
    const signIns = cell(tr, v(r, "sign_ins_in_period"), "n");
    if (v(r, "last_sign_in")) signIns.title = "last " + v(r, "last_sign_in");
    cell(tr, v(r, "deleted_after") ? "deleted by " + v(r, "deleted_after").replace("T", " ") : "active", "status");
    const decide = cell(tr, "", "decision");
    const select = document.createElement("select");
    select.setAttribute("aria-label", "Decision for " + user(r));
    ["", "keep", "revoke"].forEach((d) => {
      const option = document.createElement("option");
      option.value = d;
      option.textContent = d || "\u2014";
      select.appendChild(option);
    });
    select.value = decisions[i][0];
    select.addEventListener("change", () => { decisions[i][0] = select.value; });
    const note = document.createElement("input");
    note.type = "text";
    note.placeholder = "note";
    note.value = decisions[i][1];
    note.setAttribute("aria-label", "Note for " + user(r));
    note.addEventListener("input", () => { decisions[i][1] = note.value; });
    decide.append(select, note);
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
      ? "users " + (start + 1) + "\u2013" + end + " of " + view.length + of + ", page " + (page + 1) + " of " + pages
      : "no user matches" + of;
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
  }

  function sort() {
    if (!sortKey) return;
    const key = KEYS[sortKey];
    const keyed = view.map((i) => [key(rows[i]), i]);
    keyed.sort((a, b) => (a[0] < b[0] ? -sortDir : a[0] > b[0] ? sortDir : a[1] - b[1]));
    view = keyed.map((k) => k[1]);
  }

  function apply() {
    const q = filter.value.trim().toLowerCase();
    if (q && !haystack) haystack = rows.map((r) => r.join("\u0001").toLowerCase());
    view = [];
    for (let i = 0; i < rows.length; i++) {
      if (privilegedOnly.checked && v(rows[i], "privileged") !== "true") continue;
      if (undecidedOnly.checked && decisions[i][0]) continue;
      if (q && !haystack[i].includes(q)) continue;
      view.push(i);
    }
    sort();
    page = 0;
    render();
  }

  // The CSV of the review with the decisions made on this page, as the CSV exporter writes
  // it: RFC 4180 quoting, cells that a spreadsheet would run as formulas prefixed with '.
  function csv() {
    const quote = (text) => {
      let t = text === null || text === undefined ? "" : String(text);
      if (/^[=+\-@\t\r]/.test(t)) t = "'" + t;
      return /[",\r\n]/.test(t) ? '"' + t.replace(/"/g, '""') + '"' : t;
    };
    const out = [columns.map(quote).join(",")];
    rows.forEach((r, i) => {
      const cells = r.slice();
      cells[C.decision] = decisions[i][0];
      cells[C.decision_note] = decisions[i][1];
      out.push(cells.map(quote).join(","));
    });
    return out.join("\n") + "\n";
  }

  $("download").addEventListener("click", () => {
    const blob = new Blob([csv()], { type: "text/csv" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "access-review-decisions.csv";
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
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
  privilegedOnly.addEventListener("change", apply);
  undecidedOnly.addEventListener("change", apply);
  prev.addEventListener("click", () => { page -= 1; render(); });
  next.addEventListener("click", () => { page += 1; render(); });

  render();
  main.dataset.loaded = String(rows.length);
})();
