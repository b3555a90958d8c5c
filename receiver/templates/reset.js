// The reset landing page: redeem the link's token only when the person asks (mail scanners follow GET links).
(function () {
  "use strict";
  var el = function (id) { return document.getElementById(id); };
  // Links carry the token in the fragment, which browsers never send to a server; links from older
  // emails carry it in the query, and still work.
  var token = new URLSearchParams(window.location.hash.replace(/^#/, "")).get("token") ||
    new URLSearchParams(window.location.search).get("token") || "";

  function show(kind, title, text) {
    el("reset-result").hidden = false;
    el("reset-result").className = "result " + kind;
    el("reset-result-title").textContent = title;
    el("reset-result-text").textContent = text;
    el("reset-result-title").focus();
  }

  function invalid() {
    el("redeem").hidden = true;
    show("bad", "This link cannot be used", "It has already been used or has expired. Start a new recovery.");
  }

  // Drop the token from the address bar and history as soon as the page has it.
  if (window.history && window.history.replaceState) { window.history.replaceState(null, "", window.location.pathname); }
  if (!token) { invalid(); return; }

  el("redeem").addEventListener("click", function () {
    el("redeem").disabled = true;
    fetch("/reset-tokens/redeem", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: token }),
      credentials: "same-origin"
    }).then(function (response) {
      if (response.status === 200) {
        return response.json().then(function (body) {
          el("redeem").hidden = true;
          show("ok", "Link accepted",
            "The link is valid for account " + body.userId + " and has now been used up. Your application " +
            "would ask for your new password at this point.");
        });
      }
      invalid();
    }).catch(function () {
      el("redeem").disabled = false;
      show("bad", "Something went wrong", "We could not reach the server. Check your connection and try again.");
    });
  });
})();
