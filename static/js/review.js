// The review page: keyboard shortcuts, next item without a page load, lease renewal.
// Forms still work without this script (they post and redirect).
(function () {
  "use strict";
  var area = document.getElementById("task-area");
  if (!area) return;
  var HEARTBEAT_MS = 60000;
  var busy = false;
  var heartbeat = null;

  function csrf(form) {
    var input = form.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function swap(html) {
    area.innerHTML = html;
    var focusTarget = document.getElementById("task-title") || document.getElementById("empty-title");
    if (focusTarget) focusTarget.focus({preventScroll: true});
    startHeartbeat();
    document.dispatchEvent(new CustomEvent("tracelab:task-loaded"));
  }

  function showNotice(text, kind) {
    var old = document.getElementById("notice");
    if (old) old.remove();
    var p = document.createElement("p");
    p.id = "notice";
    p.className = "msg " + (kind || "info");
    p.setAttribute("role", kind === "error" ? "alert" : "status");
    p.textContent = text;
    area.prepend(p);
  }

  function post(form, submitter) {
    if (busy) return;
    busy = true;
    var data = submitter ? new FormData(form, submitter) : new FormData(form);
    area.setAttribute("aria-busy", "true");
    fetch(form.action, {
      method: "POST", body: data, credentials: "same-origin",
      headers: {"X-Requested-With": "fetch", "X-CSRFToken": csrf(form)}
    }).then(function (response) {
      if (!response.ok) throw new Error("the server answered " + response.status);
      return response.text();
    }).then(swap).catch(function (error) {
      showNotice("Could not reach the server (" + error.message + "). Try again.", "error");
    }).finally(function () {
      busy = false;
      area.removeAttribute("aria-busy");
    });
  }

  function load(url) {
    fetch(url, {credentials: "same-origin", headers: {"X-Requested-With": "fetch"}})
      .then(function (r) { return r.text(); }).then(swap);
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form.id === "label-form" || form.id === "skip-form" || form.id === "undo-form")) return;
    event.preventDefault();
    post(form, event.submitter);
  });

  document.addEventListener("click", function (event) {
    var again = event.target.closest("#check-again");
    if (again) { event.preventDefault(); load(again.href); return; }
    var zoom = event.target.closest("#zoom");
    if (zoom) toggleZoom(zoom);
  });

  function toggleZoom(zoom) {
    var on = zoom.getAttribute("aria-pressed") !== "true";
    zoom.setAttribute("aria-pressed", on ? "true" : "false");
    zoom.classList.toggle("zoomed", on);
  }

  function toggleHelp() {
    var help = document.getElementById("help");
    var button = document.getElementById("help-button");
    help.hidden = !help.hidden;
    button.setAttribute("aria-expanded", help.hidden ? "false" : "true");
  }
  document.getElementById("help-button").addEventListener("click", toggleHelp);

  function submitForm(id, submitter) {
    var form = document.getElementById(id);
    if (form) post(form, submitter);
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var tag = (event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select" || event.target.isContentEditable) return;
    var key = event.key.toLowerCase();
    if (key === "?") { toggleHelp(); event.preventDefault(); return; }
    if (key === "u") { submitForm("undo-form"); event.preventDefault(); return; }
    if (key === "s") { submitForm("skip-form"); event.preventDefault(); return; }
    if (key === "z") { var zoom = document.getElementById("zoom"); if (zoom) toggleZoom(zoom); return; }
    var buttons = document.querySelectorAll("#label-form .label-button");
    for (var i = 0; i < buttons.length; i++) {
      if ((buttons[i].dataset.keys || "").indexOf(key) !== -1 && key.length === 1) {
        event.preventDefault();
        submitForm("label-form", buttons[i]);
        return;
      }
    }
  });

  function startHeartbeat() {
    if (heartbeat) clearInterval(heartbeat);
    var task = document.getElementById("task");
    if (!task) return;
    var url = task.dataset.heartbeatUrl;
    var form = document.getElementById("label-form");
    heartbeat = setInterval(function () {
      fetch(url, {method: "POST", credentials: "same-origin",
                  headers: {"X-Requested-With": "fetch", "X-CSRFToken": csrf(form)}})
        .then(function (r) { return r.json(); })
        .then(function (body) {
          if (body.ok) { task.dataset.leaseExpires = body.lease_expires_at; return; }
          clearInterval(heartbeat);
          showNotice(body.message + " Press “Check again” or reload for the next item.", "error");
          task.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
        });
    }, HEARTBEAT_MS);
  }
  window.tracelabHeartbeatNow = function () {  // lets tests renew the lease without waiting a minute
    var task = document.getElementById("task");
    var form = document.getElementById("label-form");
    if (!task) return Promise.resolve(null);
    return fetch(task.dataset.heartbeatUrl, {method: "POST", credentials: "same-origin",
      headers: {"X-Requested-With": "fetch", "X-CSRFToken": csrf(form)}}).then(function (r) { return r.json(); });
  };
  startHeartbeat();
})();
