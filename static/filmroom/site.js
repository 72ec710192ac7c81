// Behaviour every page shares, kept out of the HTML (the Content-Security-Policy allows no inline
// script or handler): a <select data-autosubmit> sends its form when changed (the language menu).
document.addEventListener("change", function (event) {
  var target = event.target;
  if (target.matches && target.matches("select[data-autosubmit]") && target.form) {
    target.form.submit();
  }
});
