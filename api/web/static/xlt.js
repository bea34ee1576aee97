// xlt web page: rank sources via POST /rank (optionally over your candidates), score your own training mix via
// POST /predict, show the SHAP waterfall (/explain/plot.png) and few-shot curve (/plots/curve.png) of whatever is
// selected, and score a CSV via POST /batch with a summary on the page. Plain JavaScript, no inline code (CSP).
(function () {
  "use strict";
  function $(id) { return document.getElementById(id); }
  const form = $("query-form");
  const errorBox = $("error");
  const status = $("status");
  const results = $("results");
  const tbody = document.querySelector("#ranked tbody");
  let current = null;   // {query, mixture} of the answer on screen
  let generation = 0;   // only the latest submit may draw (a slow old answer must not overwrite a new one)

  // ---------------------------------------------------------------------------------------------- helpers
  function unique(xs) { return xs.filter(function (x, i) { return xs.indexOf(x) === i; }); }

  function parseBody(text) {
    try { return JSON.parse(text); } catch (e) { return { detail: text.slice(0, 300) }; }
  }

  function request(url, options) {
    return fetch(url, options).then(function (r) {
      return r.text().then(function (t) { return { ok: r.ok, status: r.status, text: t, headers: r.headers }; });
    });
  }

  function postJSON(url, body) {
    return request(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
      .then(function (r) { r.body = parseBody(r.text); return r; });
  }

  // One line per problem: "target: unknown language 'x' (did you mean: ...)". The server's message may already name
  // the suggestions; they are added only when it does not, so they are never printed twice.
  function errorLines(body, code) {
    if (body && Array.isArray(body.detail)) {
      return body.detail.map(function (d) {
        const where = (d.loc || []).filter(function (x) { return x !== "body" && x !== "query"; }).join(".");
        const msg = String(d.msg || "");
        const sugg = (d.suggestions || []).filter(function (s) { return msg.indexOf(s) < 0; });
        return (where ? where + ": " : "") + msg + (sugg.length ? " — did you mean: " + sugg.join(", ") + "?" : "");
      });
    }
    if (body && body.detail) return [String(body.detail)];
    return ["Error " + code];
  }

  function showError(box, lines) {
    box.textContent = unique(lines).join("\n");
    box.hidden = false;
  }

  function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  // ---------------------------------------------------------------------------------------------- the query
  function baseQuery() {
    const q = { model: form.model.value, task: form.task.value, target: form.target.value.trim() };
    const k = parseInt(form.k.value, 10);
    if (!isNaN(k) && k > 0) q.k = k;
    return q;
  }

  function candidates() {
    return unique(form.candidates.value.split(/[,;\n]/).map(function (s) { return s.trim(); })
      .filter(function (s) { return s; }));
  }

  function plotParams(extra) {
    const p = new URLSearchParams({ model: current.query.model, task: current.query.task, target: current.query.target });
    if (current.query.k) p.set("k", current.query.k);
    Object.keys(extra).forEach(function (key) { p.set(key, extra[key]); });
    return p.toString();
  }

  // ---------------------------------------------------------------------------------------------- plots
  // No <img> has a src until a plot is asked for; a figure is shown only once its picture has loaded, and a plot
  // the server refuses shows the server's reason instead of a broken-image icon. Pictures are fetched (not set as
  // <img src> directly) so the page can read the status: the server renders one plot at a time per worker and answers
  // 503 + Retry-After when busy, which the page waits out and retries. The waterfall is asked first, then the curve.
  let selection = 0;  // a newer click wins; pictures of an older one are dropped

  function delay(ms) { return new Promise(function (done) { setTimeout(done, ms); }); }

  function fetchPicture(url, tries) {
    return fetch(url).then(function (r) {
      if (r.ok) return r.blob().then(function (b) { return { ok: true, blob: b }; });
      const retry = parseFloat(r.headers.get("retry-after"));
      if (r.status === 503 && !isNaN(retry) && tries > 0) {
        return delay(Math.min(Math.max(retry, 0.5), 10) * 1000).then(function () { return fetchPicture(url, tries - 1); });
      }
      return r.text().then(function (t) { return { ok: false, lines: errorLines(parseBody(t), r.status) }; });
    });
  }

  function setSrc(img, src) {
    const old = img.getAttribute("src");
    if (src) img.src = src; else img.removeAttribute("src");
    if (old && old.indexOf("blob:") === 0) URL.revokeObjectURL(old);
  }

  function clearPlot(name) {
    const img = $(name + "-img");
    img.onload = null;
    setSrc(img, null);
    delete img.dataset.want;
    $(name + "-fig").hidden = true;
    $(name + "-msg").hidden = true;
    $(name + "-caption").textContent = "";
    $(name + "-link").removeAttribute("href");
  }

  function showPlot(name, url, caption, token) {
    const fig = $(name + "-fig"), img = $(name + "-img"), msg = $(name + "-msg");
    if (token !== selection) return Promise.resolve();
    $(name + "-caption").textContent = caption;
    $(name + "-link").href = url;  // the picture itself, full size, in a new tab
    msg.textContent = "drawing…";
    msg.hidden = false;
    fig.classList.add("stale");  // the previous picture stays, dimmed, until this one arrives (no jump)
    img.dataset.want = url;
    return fetchPicture(url, 8).then(function (res) {
      if (token !== selection || img.dataset.want !== url) return null;
      if (!res.ok) {
        fig.hidden = true;
        fig.classList.remove("stale");
        msg.textContent = "No picture: " + res.lines.join("; ");
        return null;
      }
      return new Promise(function (done) {
        img.onload = function () {
          if (img.dataset.want === url) { fig.hidden = false; fig.classList.remove("stale"); msg.hidden = true; }
          done();
        };
        img.onerror = function () { msg.textContent = "No picture (unreadable image)"; done(); };
        setSrc(img, URL.createObjectURL(res.blob));
      });
    }).catch(function () {
      if (token === selection) msg.textContent = "No picture (network error)";
    });
  }

  function showPlots(params, waterfallCaption, curveCaption) {
    const token = ++selection;
    return showPlot("waterfall", "/explain/plot.png?" + params, waterfallCaption, token)
      .then(function () { return showPlot("curve", "/plots/curve.png?" + params, curveCaption, token); });
  }

  function highlight(row) {
    Array.prototype.forEach.call(tbody.rows, function (r) { r.classList.remove("selected"); });
    if (row) row.classList.add("selected");
  }

  function selectSource(source, name, row) {
    highlight(row);
    $("detail-title").firstChild.textContent = "Why " + name + " scores what it does ";
    clearPlot("curve");
    showPlots(plotParams({ source: source }), "source " + source + " → " + current.query.target,
              "from " + source + ", adding k target examples");
  }

  function selectMixture() {
    highlight(null);
    $("detail-title").firstChild.textContent = "Why your mix scores what it does ";
    clearPlot("curve");
    showPlots(plotParams({ train_config: current.mixture }), current.mixture + " → " + current.query.target,
              "from your mix, adding k target examples");
  }

  // ---------------------------------------------------------------------------------------------- rendering
  function clearResults() {
    results.hidden = true;
    tbody.textContent = "";
    $("ranked-caption").textContent = "";
    $("mixture").hidden = true;
    ["mixture-caption", "mixture-summary", "mixture-yardsticks"].forEach(function (id) { $(id).textContent = ""; });
    selection += 1;  // pictures still on their way belong to the old query
    clearPlot("waterfall");
    clearPlot("curve");
    errorBox.hidden = true;
    errorBox.textContent = "";
    current = null;
  }

  function renderRanking(data) {
    data.sources.forEach(function (s) {
      const tr = document.createElement("tr");
      tr.dataset.source = s.source;
      cell(tr, String(s.rank), "num");
      const td = cell(tr, "");
      const a = document.createElement("a");
      a.className = "source-link";
      a.textContent = s.name + " (" + s.source + ")";
      a.addEventListener("click", function () { selectSource(s.source, s.name, tr); });
      td.appendChild(a);
      if (data.candidate_sizes === "published" && s.source_size) {  // the size this row was scored at
        const size = document.createElement("small");
        size.className = "opt";
        size.textContent = " " + s.source_size.toLocaleString("en") + " examples" + (s.size_published ? "" : " (assumed)");
        td.appendChild(size);
      }
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
    $("ranked-caption").textContent = data.model + " · " + data.task + " · target " + data.target;
  }

  function renderMixture(data) {
    const q = data.query || {};
    $("mixture-caption").textContent = (q.train_config || current.mixture) + " → " + (q.target || current.query.target);
    $("mixture-summary").textContent = "Predicted score " + data.predicted_score.toFixed(1) +
      " (80% interval " + data.lower80.toFixed(1) + "–" + data.upper80.toFixed(1) + ")";
    const y = data.yardsticks || {};
    const parts = [];
    if (y.always_english) parts.push("English alone: " + y.always_english.predicted_score.toFixed(1));
    if (y.closest_by_syntax) {
      parts.push("closest source by syntax (" + y.closest_by_syntax.source + "): " +
                 y.closest_by_syntax.predicted_score.toFixed(1));
    }
    $("mixture-yardsticks").textContent = parts.length ? "For comparison, " + parts.join("; ") + "." : "";
    $("mixture").hidden = false;
  }

  function busy(button, box, text) {
    button.disabled = !!text;
    box.textContent = text || "";
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    const gen = ++generation;
    clearResults();  // an error must never sit above the previous query's results
    const query = baseQuery();
    const mixture = form.train_config.value.trim();
    const rankBody = Object.assign({}, query);
    const top = parseInt(form.top.value, 10);
    if (!isNaN(top) && top > 0) rankBody.top = top;
    const cands = candidates();
    if (cands.length) rankBody.candidates = cands;
    if (form.published_sizes.checked) rankBody.candidate_sizes = "published";
    const calls = [postJSON("/rank", rankBody)];
    if (mixture) calls.push(postJSON("/predict", Object.assign({}, query, { train_config: mixture })));
    busy($("rank-button"), status, "Ranking…");
    Promise.all(calls).then(function (res) {
      if (gen !== generation) return;
      busy($("rank-button"), status, "");
      const bad = res.filter(function (r) { return !r.ok; });
      if (bad.length) {
        showError(errorBox, [].concat.apply([], bad.map(function (r) { return errorLines(r.body, r.status); })));
        return;
      }
      current = { query: query, mixture: mixture || null };
      const ranked = res[0].body;
      renderRanking(ranked);
      status.textContent = plural(ranked.sources.length, "source") + " ranked" +
        (cands.length ? " out of your " + plural(cands.length, "candidate") : "") + ".";
      if (mixture) {
        renderMixture(res[1].body);
        selectMixture();
      } else if (ranked.sources.length) {
        selectSource(ranked.sources[0].source, ranked.sources[0].name, tbody.rows[0]);
      }
      results.hidden = false;
    }).catch(function (e) {
      if (gen !== generation) return;
      busy($("rank-button"), status, "");
      showError(errorBox, ["Could not reach the server: " + e]);
    });
  });

  $("mixture-show").addEventListener("click", function () { if (current && current.mixture) selectMixture(); });

  // ---------------------------------------------------------------------------------------------- batch CSV
  // RFC 4180: quoted fields may hold commas, doubled quotes and line breaks.
  function parseCSV(text) {
    const rows = [];
    let row = [], field = "", i = 0, quoted = false;
    while (i < text.length) {
      const c = text[i];
      if (quoted) {
        if (c === '"') {
          if (text[i + 1] === '"') { field += '"'; i += 2; continue; }
          quoted = false;
        } else {
          field += c;
        }
        i += 1;
        continue;
      }
      if (c === '"') { quoted = true; } else if (c === ",") { row.push(field); field = ""; } else if (c === "\n" || c === "\r") {
        if (c === "\r" && text[i + 1] === "\n") i += 1;
        row.push(field); rows.push(row); row = []; field = "";
      } else { field += c; }
      i += 1;
    }
    if (field !== "" || row.length) { row.push(field); rows.push(row); }
    return rows;
  }

  const batchForm = $("batch-form");
  const batchError = $("batch-error");
  const batchStatus = $("batch-status");
  let download = null;

  function clearBatch() {
    batchError.hidden = true;
    batchError.textContent = "";
    $("batch-summary").hidden = true;
    $("batch-errors").hidden = true;
    $("batch-more").hidden = true;
    $("batch-errors").textContent = "";
    $("batch-preview").hidden = true;
    $("batch-preview").tHead.textContent = "";
    $("batch-preview").tBodies[0].textContent = "";
    if (download) { URL.revokeObjectURL(download); download = null; }
  }

  function preview(header, rows, iScore, iErr) {
    const table = $("batch-preview");
    const head = document.createElement("tr");
    header.forEach(function (h) { const th = document.createElement("th"); th.textContent = h; head.appendChild(th); });
    table.tHead.appendChild(head);
    rows.forEach(function (r) {
      const tr = document.createElement("tr");
      header.forEach(function (_, j) {
        const v = r[j] || "";
        const num = j === iScore && v !== "" && !isNaN(Number(v));
        cell(tr, num ? Number(v).toFixed(1) : v, num ? "num" : (j === iErr && v ? "bad" : ""));
      });
      table.tBodies[0].appendChild(tr);
    });
    table.hidden = rows.length === 0;
  }

  function summarize(text, filename) {
    const rows = parseCSV(text);
    const header = rows.length ? rows[0] : [];
    const data = rows.slice(1);
    const iScore = header.indexOf("predicted_score"), iErr = header.indexOf("error");
    const scored = data.filter(function (r) { return iScore >= 0 && (r[iScore] || "").trim() !== ""; }).length;
    const errors = data.filter(function (r) { return iErr >= 0 && (r[iErr] || "").trim(); })
      .map(function (r) { return r[iErr]; });
    $("batch-counts").textContent = filename + ": " + plural(data.length, "row") + " · " + scored + " scored · " +
      plural(errors.length, "error");
    errors.slice(0, 5).forEach(function (e) {  // "line N: reason", N counted as in the file (header = line 1)
      const li = document.createElement("li");
      li.textContent = e;
      $("batch-errors").appendChild(li);
    });
    $("batch-errors").hidden = errors.length === 0;
    if (errors.length > 5) {
      $("batch-more").textContent = "… and " + plural(errors.length - 5, "more error") +
        " (every row's reason is in the error column of the scored CSV).";
      $("batch-more").hidden = false;
    }
    preview(header, data.slice(0, 5), iScore, iErr);
    download = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
    const a = $("batch-download");
    a.href = download;
    a.download = filename.replace(/\.[^.]*$/, "") + "_scored.csv";
    $("batch-summary").hidden = false;
  }

  batchForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    clearBatch();
    const file = $("batch-file").files[0];
    if (!file) { showError(batchError, ["Choose a CSV file first."]); return; }
    const fd = new FormData();
    fd.append("file", file);
    busy($("batch-button"), batchStatus, "Scoring " + file.name + "…");
    request("/batch", { method: "POST", body: fd }).then(function (r) {
      busy($("batch-button"), batchStatus, "");
      if (!r.ok) { showError(batchError, errorLines(parseBody(r.text), r.status)); return; }
      summarize(r.text, file.name);
    }).catch(function (e) {
      busy($("batch-button"), batchStatus, "");
      showError(batchError, ["Could not reach the server: " + e]);
    });
  });
})();
