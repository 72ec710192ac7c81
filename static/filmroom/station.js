// Scan station: live scans over server-sent events, keyboard-wedge input, undo, signing.
(function () {
  "use strict";
  var root = document.getElementById("station");
  if (!root) return;
  var tbody = document.getElementById("scans");
  var template = document.getElementById("scan-row");
  var empty = document.getElementById("no-scans");
  var status = document.getElementById("connection");
  var i18n = document.getElementById("i18n").dataset;
  var lastId = parseInt(root.dataset.lastId || "0", 10);

  function csrfToken() {
    var match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function post(url, data) {
    var body = new URLSearchParams(data);
    return fetch(url, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), "Accept": "application/json" },
    }).then(function (response) {
      return response.json();
    }).catch(function () {
      // Not JSON (a login page after the session ended, a proxy error) or no answer at all.
      return { error: { message: i18n.failed } };
    });
  }

  function show(scan) {
    if (document.querySelector('tr.scan[data-id="' + scan.id + '"]')) return;
    var row = template.content.firstElementChild.cloneNode(true);
    row.dataset.id = scan.id;
    row.classList.add("outcome-" + scan.outcome);
    row.querySelector(".when").textContent = scan.time;
    row.querySelector(".uid").textContent = scan.uid;
    var media = row.querySelector(".media");
    if (scan.media) {
      var link = document.createElement("a");
      link.href = scan.media_url;
      link.textContent = scan.media;
      media.appendChild(link);
    }
    row.querySelector(".patient").textContent = scan.patient || "";
    row.querySelector(".message").textContent = scan.message;
    var actions = row.querySelector(".actions");
    if (scan.can_undo) {
      var undo = document.createElement("button");
      undo.type = "button";
      undo.className = "undo";
      undo.textContent = i18n.undo;
      undo.addEventListener("click", function () {
        undo.disabled = true;
        post(root.dataset.undoUrl, { scan: scan.id }).then(function (result) {
          if (result.error) { undo.disabled = false; alert(result.error.message); return; }
          // Say it worked: a greyed-out "Undo" alone looks like it failed.
          row.classList.add("undone");
          undo.textContent = i18n.undone;
          var sign = row.querySelector("a.sign"); // an undone scan has nothing left to sign
          if (sign) sign.remove();
        });
      });
      actions.appendChild(undo);
    }
    if (scan.bind_url) {
      var bind = document.createElement("a");
      bind.href = scan.bind_url;
      bind.textContent = i18n.bind;
      actions.appendChild(bind);
    }
    if (scan.sign_url) { // the borrower signs on this screen right after the tap
      var sign = document.createElement("a");
      sign.href = scan.sign_url;
      sign.className = "sign";
      sign.textContent = i18n.sign;
      actions.appendChild(sign);
    }
    tbody.insertBefore(row, tbody.firstChild);
    empty.hidden = true;
    lastId = Math.max(lastId, scan.id);
    while (tbody.children.length > 100) tbody.removeChild(tbody.lastChild);
  }

  function listen() {
    var source = new EventSource(root.dataset.eventsUrl + "?after=" + lastId);
    source.addEventListener("open", function () { status.textContent = i18n.live; });
    source.addEventListener("scan", function (event) { show(JSON.parse(event.data)); });
    source.addEventListener("error", function () {
      status.textContent = i18n.reconnecting;
      source.close();
      setTimeout(listen, 1000);
    });
  }

  document.getElementById("wedge").addEventListener("submit", function (event) {
    event.preventDefault();
    var input = document.getElementById("wedge-uid");
    var uid = input.value.trim();
    input.value = "";
    input.focus();
    if (!uid) return;
    post(root.dataset.scanUrl, { uid: uid }).then(function (result) {
      if (result.scan) show(result.scan);
      else if (result.error) alert(result.error.message);
    });
  });

  listen();
})();
