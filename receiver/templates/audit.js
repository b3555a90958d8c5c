// The auditor token lives only in this variable: never in storage, cookies or the URL.
(function () {
  "use strict";
  let token = null;
  const login = document.getElementById("login");
  const filters = document.getElementById("filters");
  const panel = document.getElementById("panel");
  const message = document.getElementById("message");

  function query() {
    const params = new URLSearchParams();
    for (const [key, value] of new FormData(filters)) {
      if (value) params.set(key, value);
    }
    return params.toString();
  }

  async function load() {
    message.textContent = "";
    const response = await fetch("$panel_url?" + query(), {
      headers: { Authorization: "Bearer " + token },
      cache: "no-store",
      credentials: "omit",
    });
    if (response.status === 401) {
      token = null;
      panel.replaceChildren();
      filters.hidden = true;
      login.hidden = false;
      message.textContent = "That token was not accepted.";
      return;
    }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      message.textContent = body.error || "The server answered " + response.status + ".";
      return;
    }
    // The fragment is rendered and escaped by the server; it carries no scripts.
    panel.innerHTML = await response.text();
  }

  login.addEventListener("submit", (event) => {
    event.preventDefault();
    const input = document.getElementById("token");
    token = input.value.trim();
    input.value = "";
    login.hidden = true;
    filters.hidden = false;
    load();
  });
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  document.getElementById("logout").addEventListener("click", () => {
    token = null;
    panel.replaceChildren();
    filters.hidden = true;
    login.hidden = false;
  });
})();
