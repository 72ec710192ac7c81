// Signature pads: draw on a canvas with a finger, pen or mouse (pointer events); the form posts
// the drawing as a PNG data URL in its hidden `signature` field, empty while nothing is drawn.
// Markup: templates/tracker/_signature_pad.html. No inline script: the page includes this file.
(function () {
  "use strict";

  function setUp(pad) {
    var canvas = pad.querySelector("canvas");
    var field = pad.querySelector("[data-signature-value]");
    var clear = pad.querySelector("[data-signature-clear]");
    var context = canvas.getContext("2d");
    var drawing = false;
    var last = null;

    canvas.style.touchAction = "none"; // the finger draws instead of scrolling the page
    canvas.style.width = "100%";
    canvas.style.maxWidth = canvas.width + "px";
    canvas.style.border = "1px solid #9aa4ae";
    canvas.style.borderRadius = "4px";
    canvas.style.background = "#fff";
    canvas.style.cursor = "crosshair";
    canvas.style.display = "block";

    function blank() {
      context.fillStyle = "#fff";
      context.fillRect(0, 0, canvas.width, canvas.height);
      field.value = "";
    }

    function point(event) {
      var box = canvas.getBoundingClientRect();
      return {
        x: (event.clientX - box.left) * (canvas.width / box.width),
        y: (event.clientY - box.top) * (canvas.height / box.height),
      };
    }

    function stroke(to, pressure) {
      context.strokeStyle = "#14203c";
      context.lineCap = "round";
      context.lineJoin = "round";
      context.lineWidth = 1.5 + 2.5 * (pressure || 0.5);
      context.beginPath();
      context.moveTo(last.x, last.y);
      context.lineTo(to.x + 0.01, to.y); // a tap still leaves a dot
      context.stroke();
      last = to;
    }

    canvas.addEventListener("pointerdown", function (event) {
      if (event.button !== 0) return;
      event.preventDefault();
      try {
        canvas.setPointerCapture(event.pointerId); // keep the stroke when it leaves the pad
      } catch (error) {
        // A pointer the browser no longer tracks: draw without capturing it.
      }
      drawing = true;
      last = point(event);
      stroke(last, event.pressure);
    });
    canvas.addEventListener("pointermove", function (event) {
      if (!drawing) return;
      event.preventDefault();
      // The points the browser merged into this event, for a smooth line; some give none.
      var events = (event.getCoalescedEvents && event.getCoalescedEvents()) || [];
      if (!events.length) events = [event];
      for (var i = 0; i < events.length; i++) stroke(point(events[i]), events[i].pressure);
    });
    function finish() {
      if (!drawing) return;
      drawing = false;
      field.value = canvas.toDataURL("image/png");
    }
    canvas.addEventListener("pointerup", finish);
    canvas.addEventListener("pointercancel", finish);
    canvas.addEventListener("keydown", function (event) {
      if (event.key === "Delete" || event.key === "Backspace") {
        event.preventDefault();
        blank();
      }
    });
    clear.addEventListener("click", function () {
      blank();
      canvas.focus();
    });
    blank();
    pad.dataset.ready = "true"; // styled and listening: its size is final (tests wait for this)
  }

  var pads = document.querySelectorAll("[data-signature-pad]");
  for (var i = 0; i < pads.length; i++) setUp(pads[i]);
})();
