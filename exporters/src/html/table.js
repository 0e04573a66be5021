"use strict";
// The paged, sortable, filterable table of both pages (the audit report's events, the access
// review's users). The page's own script builds each row, through textContent and DOM
// properties only; this part orders, filters and pages them.
// Appends a cell holding `text` (as text) to `tr`.
function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function pagedTable(o) {
  // o: main (the element whose dataset says what is shown), table, status, prev, next,
  // filter (the search box), rows, pageSize, keys (sort key name -> (row, index) -> value),
  // row (index -> <tr>), keep (index -> whether the page's other filters keep it),
  // noun ([singular, plural]).
  let view = o.rows.map((_, i) => i);
  let page = 0;
  let sortKey = null;
  let sortDir = 1;
  let haystack = null;
  const tbody = o.table.tBodies[0];

  function render() {
    const pages = Math.max(1, Math.ceil(view.length / o.pageSize));
    page = Math.min(Math.max(page, 0), pages - 1);
    const start = page * o.pageSize;
    const end = Math.min(view.length, start + o.pageSize);
    const fragment = document.createDocumentFragment();
    for (let k = start; k < end; k++) fragment.appendChild(o.row(view[k]));
    tbody.replaceChildren(fragment);
    o.table.dataset.rendered = String(end - start);
    o.main.dataset.shown = String(view.length);
    const of = view.length === o.rows.length ? "" : " (filtered from " + o.rows.length + ")";
    o.status.textContent = view.length
      ? o.noun[1] + " " + (start + 1) + "\u2013" + end + " of " + view.length + of + ", page " + (page + 1) + " of " + pages
      : "no " + o.noun[0] + " matches" + of;
    o.prev.disabled = page === 0;
    o.next.disabled = page >= pages - 1;
  }

  function sort() {
    if (!sortKey) return;
    const key = o.keys[sortKey];
    const keyed = view.map((i) => [key(o.rows[i], i), i]);
    keyed.sort((a, b) => (a[0] < b[0] ? -sortDir : a[0] > b[0] ? sortDir : a[1] - b[1]));
    view = keyed.map((k) => k[1]);
  }

  function apply() {
    const q = o.filter.value.trim().toLowerCase();
    if (q && !haystack) haystack = o.rows.map((r) => r.join("\u0001").toLowerCase());
    view = [];
    for (let i = 0; i < o.rows.length; i++) {
      if (!o.keep(i)) continue;
      if (q && !haystack[i].includes(q)) continue;
      view.push(i);
    }
    sort();
    page = 0;
    render();
  }

  // Sorts by `key` (a th's data-sort), ascending; again on the same key reverses.
  function sortBy(key) {
    sortDir = sortKey === key ? -sortDir : 1;
    sortKey = key;
    for (const th of o.table.tHead.querySelectorAll("th")) {
      if (th.dataset.sort === key) th.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    }
    sort();
    page = 0;
    render();
  }

  o.table.tHead.addEventListener("click", (event) => {
    const th = event.target.closest("th[data-sort]");
    if (th) sortBy(th.dataset.sort);
  });
  let typing = 0;
  o.filter.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(apply, 150);
  });
  o.prev.addEventListener("click", () => { page -= 1; render(); });
  o.next.addEventListener("click", () => { page += 1; render(); });
  return { apply, render, sortBy };
}
