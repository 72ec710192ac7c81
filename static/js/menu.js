// The main menu on a narrow screen (a tablet at the counter): filmroom.css hides it behind the
// "Menu" button once this script has marked the header, so without script the menu stays open.
// The button says whether the menu is open (aria-expanded); Escape closes it and gives the
// focus back to the button.
(function () {
  var header = document.querySelector("header.top");
  var button = header && header.querySelector(".menu-toggle");
  if (!button) {
    return;
  }
  function show(open) {
    header.classList.toggle("menu-open", open);
    button.setAttribute("aria-expanded", open ? "true" : "false");
  }
  header.classList.add("has-menu");
  button.addEventListener("click", function () {
    show(button.getAttribute("aria-expanded") !== "true");
  });
  header.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && button.getAttribute("aria-expanded") === "true") {
      show(false);
      button.focus();
    }
  });
})();
