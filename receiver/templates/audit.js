// The auditor token lives only in this variable: never in storage, cookies or the URL.
// The URL's fragment says what is shown: "#decision=ID" is one decision explained, anything else the list.
(function () {
  "use strict";
  let token = null;
  const login = document.getElementById("login");
  const filters = document.getElementById("filters");
  const panel = document.getElementById("panel");
  const message = document.getElementById("message");
  const busy = document.getElementById("busy");

  function query() {
    const params = new URLSearchParams();
    for (const [key, value] of new FormData(filters)) {
      if (value) params.set(key, value);
    }
    return params.toString();
  }

  function shown() {
    const match = /^#decision=(\d+)$$/.exec(location.hash);
    return match ? match[1] : null;
  }

  function forget(text) {
    token = null;
    panel.replaceChildren();
    filters.hidden = true;
    login.hidden = false;
    message.textContent = text || "";
    document.getElementById("token").focus();
  }

  async function fetchWithToken(url) {
    busy.hidden = false;
    try {
      return await fetch(url, {
        headers: { Authorization: "Bearer " + token },
        cache: "no-store",
        credentials: "omit",
      });
    } finally {
      busy.hidden = true;
    }
  }

  async function failed(response) {
    if (response.status === 401) {
      forget("That token was not accepted.");
      return true;
    }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      message.textContent = body.error || "The server answered " + response.status + ".";
      return true;
    }
    return false;
  }

  async function show() {
    if (token === null) return;
    message.textContent = "";
    const id = shown();
    const url = id ? "$panel_url/decisions/" + id : "$panel_url?" + query();
    const response = await fetchWithToken(url);
    if (await failed(response)) return;
    // The fragment is rendered and escaped by the server; it carries no scripts.
    panel.innerHTML = await response.text();
    if (id) {
      const title = document.getElementById("decision-title");
      if (title) title.focus();
    }
  }

  async function download(format) {
    message.textContent = "";
    const response = await fetchWithToken("$export_url?format=" + format + "&" + query());
    if (await failed(response)) return;
    const blob = await response.blob();
    const link = document.createElement("a");
    const disposition = response.headers.get("Content-Disposition") || "";
    const named = /filename="([^"]+)"/.exec(disposition);
    link.href = URL.createObjectURL(blob);
    link.download = named ? named[1] : "decisions." + format;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  login.addEventListener("submit", (event) => {
    event.preventDefault();
    const input = document.getElementById("token");
    token = input.value.trim();
    input.value = "";
    login.hidden = true;
    filters.hidden = false;
    show();
  });
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    if (shown()) {
      location.hash = "";  // back to the list, which the hashchange below loads with these filters
    } else {
      show();
    }
  });
  for (const button of filters.querySelectorAll("button[data-export]")) {
    button.addEventListener("click", () => download(button.dataset.export));
  }
  document.getElementById("logout").addEventListener("click", () => forget(""));
  window.addEventListener("hashchange", show);
})();
