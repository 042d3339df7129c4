// The dashboard's runs table refreshes itself while a run is pending or running.
(function () {
  "use strict";
  var area = document.getElementById("runs-area");
  if (!area) return;
  var POLL_MS = 1500;
  function live() {
    var runs = document.getElementById("runs");
    return runs && runs.dataset.live;
  }
  function refresh() {
    if (!live()) return;
    fetch(area.dataset.url, {credentials: "same-origin", headers: {"X-Requested-With": "fetch"}})
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        if (area.contains(document.activeElement)) return;  // do not steal the keyboard user's focus
        area.innerHTML = html;
      })
      .finally(function () { if (live()) setTimeout(refresh, POLL_MS); });
  }
  setTimeout(refresh, POLL_MS);
})();
