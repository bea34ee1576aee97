// xlt web page: rank sources via POST /rank, then show the waterfall (/explain/plot.png) and curve (/plots/curve.png).
(function () {
  "use strict";
  const form = document.getElementById("query-form");
  const errorBox = document.getElementById("error");
  const results = document.getElementById("results");
  const tbody = document.querySelector("#ranked tbody");
  let current = null;

  function showError(body, status) {
    let text = "Error " + status;
    if (body && Array.isArray(body.detail)) {
      text = body.detail.map(function (d) {
        const where = (d.loc || []).filter(function (x) { return x !== "body"; }).join(".");
        const sugg = d.suggestions && d.suggestions.length ? " — did you mean: " + d.suggestions.join(", ") + "?" : "";
        return (where ? where + ": " : "") + d.msg + sugg;
      }).join("\n");
    } else if (body && body.detail) {
      text = String(body.detail);
    }
    errorBox.textContent = text;
    errorBox.hidden = false;
  }

  function query() {
    const q = { model: form.model.value, task: form.task.value, target: form.target.value.trim() };
    const k = parseInt(form.k.value, 10);
    if (!isNaN(k) && k > 0) q.k = k;
    return q;
  }

  function params(q, source) {
    const p = new URLSearchParams({ model: q.model, task: q.task, target: q.target, source: source });
    if (q.k) p.set("k", q.k);
    return p.toString();
  }

  function select(source, row) {
    Array.prototype.forEach.call(tbody.rows, function (r) { r.classList.remove("selected"); });
    if (row) row.classList.add("selected");
    const qs = params(current, source);
    document.getElementById("waterfall-img").src = "/explain/plot.png?" + qs;
    document.getElementById("waterfall-caption").textContent = "source " + source + " → " + current.target;
    document.getElementById("curve-img").src = "/plots/curve.png?" + qs;
    document.getElementById("curve-caption").textContent = "from " + source + ", adding k target examples";
  }

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function render(data) {
    tbody.textContent = "";
    data.sources.forEach(function (s) {
      const tr = document.createElement("tr");
      tr.dataset.source = s.source;
      cell(tr, String(s.rank), "num");
      const td = cell(tr, "");
      const a = document.createElement("a");
      a.className = "source-link";
      a.textContent = s.name + " (" + s.source + ")";
      a.addEventListener("click", function () { select(s.source, tr); });
      td.appendChild(a);
      cell(tr, s.score.toFixed(1), "num score");
      cell(tr, s.lower80.toFixed(1) + "–" + s.upper80.toFixed(1), "num");
      cell(tr, (100 * s.p_best).toFixed(0) + "%", "num");
      const why = cell(tr, "");
      const ul = document.createElement("ul");
      ul.className = "reasons";
      (s.reasons || []).forEach(function (r) {
        const li = document.createElement("li");
        li.textContent = r.text;
        ul.appendChild(li);
      });
      why.appendChild(ul);
      tbody.appendChild(tr);
    });
    document.getElementById("ranked-caption").textContent =
      data.model + " · " + data.task + " · target " + data.target;
    results.hidden = false;
    if (data.sources.length) select(data.sources[0].source, tbody.rows[0]);
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    errorBox.hidden = true;
    current = query();
    const body = Object.assign({}, current);
    const top = parseInt(form.top.value, 10);
    if (!isNaN(top) && top > 0) body.top = top;
    fetch("/rank", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
      .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, status: r.status, body: j }; }); })
      .then(function (res) { if (res.ok) render(res.body); else { results.hidden = true; showError(res.body, res.status); } })
      .catch(function (e) { showError({ detail: String(e) }, "network"); });
  });
})();
