// Refreshes the board every few seconds from /web/board/fragment (same filters); no framework.
(function () {
  "use strict";
  var board = document.getElementById("board");
  var live = document.getElementById("live");
  if (!board) { return; }
  var every = Number(board.getAttribute("data-every") || 3000);
  function refresh() {
    fetch("/web/board/fragment" + window.location.search, {credentials: "same-origin", cache: "no-store"})
      .then(function (resp) {
        if (resp.status === 401) { window.location.assign("/web/sign-in"); return null; }
        if (!resp.ok) { throw new Error("HTTP " + resp.status); }
        return resp.text();
      })
      .then(function (text) {
        if (text === null) { return; }
        board.innerHTML = text;  // server-rendered and escaped
        live.textContent = "updated " + new Date().toLocaleTimeString();
        live.className = "live";
      })
      .catch(function () { live.textContent = "offline, retrying"; live.className = "live stale"; })
      .then(function () { window.setTimeout(refresh, every); });
  }
  window.setTimeout(refresh, every);
}());
