// Live list: polls the JSON API (a 304 when nothing changed) and redraws the rows; no reload needed.
"use strict";
(function () {
  const rows = document.getElementById("rows");
  const total = document.getElementById("total");
  const query = document.getElementById("query");
  let etag = null;

  function when(iso) {
    return iso.replace("T", " ").slice(0, 19) + " UTC";
  }

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text;
    return td;
  }

  function draw(data) {
    total.textContent = data.total;
    const fresh = [];
    for (const m of data.messages) {
      const tr = document.createElement("tr");
      tr.dataset.id = m.id;
      tr.append(cell(m.from), cell(m.to.join(", ")));
      const subject = document.createElement("td");
      const link = document.createElement("a");
      link.href = "/messages/" + encodeURIComponent(m.id);
      link.textContent = m.subject || "(no subject)";
      subject.append(link);
      const time = cell(when(m.created_at));
      time.className = "time";
      const state = document.createElement("td");
      const badge = document.createElement("span");
      badge.className = "state state-" + m.state;
      badge.textContent = m.state;
      state.append(badge);
      tr.append(subject, time, state);
      fresh.push(tr);
    }
    if (!fresh.length) {
      const tr = document.createElement("tr");
      tr.className = "empty";
      const td = cell(query.value ? "Nothing matches." : "No mail yet. Send some through the HTTP API or the SMTP bridge.");
      td.colSpan = 5;
      tr.append(td);
      fresh.push(tr);
    }
    rows.replaceChildren(...fresh);
  }

  async function refresh() {
    const url = "/api/v1/messages?limit=200&query=" + encodeURIComponent(query.value);
    const headers = etag ? { "If-None-Match": etag } : {};
    try {
      const response = await fetch(url, { headers: headers, cache: "no-store" });
      if (response.status === 200) {
        etag = response.headers.get("ETag");
        draw(await response.json());
      }
    } catch (e) {
      // the stack is restarting: try again on the next tick
    }
  }

  query.addEventListener("input", function () {
    etag = null;
    history.replaceState(null, "", query.value ? "/?query=" + encodeURIComponent(query.value) : "/");
    refresh();
  });
  document.getElementById("clear").addEventListener("click", async function () {
    if (!window.confirm("Remove all captured mail from the viewer?")) return;
    await fetch("/api/v1/messages", { method: "DELETE" });
    etag = null;
    refresh();
  });
  setInterval(refresh, 1000);
})();
