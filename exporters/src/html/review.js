// The user table of the access review (after table.js). Every value from the trail and the
// snapshot reaches the page through textContent or a DOM property, never as markup.
(() => {
  const $ = (id) => document.getElementById(id);
  const main = $("review");
  const rows = JSON.parse($("review-records").textContent);
  const C = {};
  const columns = main.dataset.columns.split(",");
  columns.forEach((name, i) => { C[name] = i; });
  const privilegedOnly = $("privileged-only");
  const undecidedOnly = $("undecided-only");
  // The reviewer's decisions, per row: [decision, note].
  const decisions = rows.map(() => ["", ""]);

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
  const users = pagedTable({
    main, rows, row,
    table: $("users"),
    status: $("shown"), prev: $("prev"), next: $("next"), filter: $("filter"),
    pageSize: Number(main.dataset.pageSize) || 100,
    keys: KEYS,
    noun: ["user", "users"],
    keep: (i) => (!privilegedOnly.checked || v(rows[i], "privileged") === "true")
      && (!undecidedOnly.checked || !decisions[i][0]),
  });
  privilegedOnly.addEventListener("change", users.apply);
  undecidedOnly.addEventListener("change", users.apply);
  users.render();
  main.dataset.loaded = String(rows.length);
})();
