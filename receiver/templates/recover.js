// The recovery page: start a recovery, show FaceSign's session in an iframe, poll until it is decided.
(function () {
  "use strict";
  var app = document.getElementById("app");
  var resetMinutes = app.dataset.resetMinutes;
  var attemptSeconds = Number(app.dataset.attemptSeconds) || 1800;
  var POLL_MS = 2000;
  var FRAME_LOAD_MS = 10000;
  var el = function (id) { return document.getElementById(id); };
  var pollTimer = null;
  var frameTimer = null;
  var deadline = 0;

  var OUTCOMES = {
    approved: ["ok", "Check your email",
      "You are verified. We have sent a link to the email address of your account to choose a new password. " +
      "It works once, within " + resetMinutes + " minutes. You can close this page.", false],
    // One message whatever the reason: the page must not tell anyone why a face was refused.
    denied: ["bad", "We could not verify that it is you",
      "The verification did not succeed, so no reset link was sent. You can try again: make sure your face " +
      "is well lit and fully in view.", true],
    expired: ["info", "This verification has expired",
      "It was not finished in time. Start again when you are ready.", true]
  };

  function show(section) {
    ["intro", "verify", "result"].forEach(function (id) { el(id).hidden = id !== section; });
  }

  function announce(text) { el("announce").textContent = text; }

  function showResult(kind, title, text, retry) {
    stopPolling();
    el("session").removeAttribute("src");
    el("result-box").className = "result " + kind;
    el("result-title").textContent = title;
    el("result-text").textContent = text;
    el("retry").hidden = !retry;
    show("result");
    announce(title);
    el("result-title").focus();
  }

  function stopPolling() {
    clearTimeout(pollTimer);
    clearTimeout(frameTimer);
    pollTimer = null;
  }

  function start() {
    var button = el("start");
    button.disabled = true;
    el("retry").disabled = true;
    fetch("/recoveries", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ type: "forgot_password" }),
      credentials: "same-origin"
    }).then(function (response) {
      if (response.status === 201) { return response.json().then(begin); }
      if (response.status === 429) {
        var wait = Number(response.headers.get("Retry-After")) || 60;
        return showResult("info", "Too many attempts",
          "Too many recoveries were started from your network. Try again in " + wait + " seconds.", true);
      }
      return showResult("bad", "Something went wrong",
        "The verification service is not available right now. Try again in a moment.", true);
    }).catch(function () {
      showResult("bad", "Something went wrong", "We could not reach the server. Check your connection and try again.", true);
    }).then(function () {
      button.disabled = false;
      el("retry").disabled = false;
    });
  }

  function begin(recovery) {
    var frame = el("session");
    var fallback = el("fallback");
    fallback.classList.remove("alert");
    el("open-session").href = recovery.url;
    // Cross-origin frames give no error event; a frame that has not loaded in time is treated as blocked.
    var loaded = false;
    frame.onload = function () { loaded = true; };
    frame.onerror = function () { fallback.classList.add("alert"); };
    frameTimer = setTimeout(function () { if (!loaded) { fallback.classList.add("alert"); } }, FRAME_LOAD_MS);
    frame.src = recovery.url;
    show("verify");
    announce("Verification started. Follow the steps in the verification window.");
    el("verify-title").focus();
    deadline = Date.now() + attemptSeconds * 1000 + 60000;
    poll(recovery.id);
  }

  function poll(id) {
    pollTimer = setTimeout(function () {
      fetch("/recoveries/" + encodeURIComponent(id), { cache: "no-store", credentials: "same-origin" })
        .then(function (response) {
          if (response.status === 404) { return { status: "expired" }; }
          return response.ok ? response.json() : { status: "pending" };
        })
        .catch(function () { return { status: "pending" }; })
        .then(function (answer) {
          if (pollTimer === null) { return; }
          var outcome = OUTCOMES[answer.status];
          if (outcome) { return showResult(outcome[0], outcome[1], outcome[2], outcome[3]); }
          if (Date.now() > deadline) { return showResult.apply(null, OUTCOMES.expired); }
          poll(id);
        });
    }, POLL_MS);
  }

  el("start").addEventListener("click", start);
  el("retry").addEventListener("click", start);
})();
