// An open inventory refreshes its tallies while tags are read (no inline script: CSP).
(function () {
  var live = document.getElementById("live");
  if (!live) return;
  var every = Number(live.dataset.every || 0) * 1000;
  if (!every) return;
  function poll() {
    fetch(live.dataset.url, {credentials: "same-origin", headers: {"HX-Request": "true"}})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) live.innerHTML = html; })
      .finally(function () { setTimeout(poll, every); });
  }
  setTimeout(poll, every);
})();
