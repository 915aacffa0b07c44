// Keeps the state and the delivery timeline current while a message is still being delivered.
"use strict";
(function () {
  const article = document.getElementById("message");
  const list = document.getElementById("timeline-entries");
  const state = document.getElementById("state");
  const id = article.dataset.id;
  let shown = list.children.length;

  function when(iso) {
    return iso.replace("T", " ").slice(0, 19) + " UTC";
  }

  function item(entry) {
    const li = document.createElement("li");
    li.className = "kind-" + entry.kind;
    const time = document.createElement("time");
    time.textContent = when(entry.at);
    const title = document.createElement("strong");
    title.textContent = entry.title;
    li.append(time, " ", title);
    if (entry.details.length) {
      const ul = document.createElement("ul");
      for (const line of entry.details) {
        const d = document.createElement("li");
        d.textContent = line;
        ul.append(d);
      }
      li.append(ul);
    }
    return li;
  }

  async function refresh() {
    try {
      const response = await fetch("/api/v1/messages/" + encodeURIComponent(id), { cache: "no-store" });
      if (response.status !== 200) return;
      const data = await response.json();
      state.textContent = data.state;
      state.className = "state state-" + data.state;
      if (data.timeline.length && data.timeline.length !== shown) {
        list.replaceChildren(...data.timeline.map(item));
        shown = data.timeline.length;
      }
    } catch (e) {
      // the stack is restarting: try again on the next tick
    }
  }

  setInterval(refresh, 1500);
})();
