// The console's one script (the CSP allows no inline script): copy buttons for fingerprints.
// The buttons are hidden in the HTML and shown here, so without script there is no dead button.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var status = document.getElementById("copy-status");
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      var text = source.textContent.trim();
      var done = function (message) { if (status) status.textContent = message; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(
          function () { done("Fingerprint copied: " + text); },
          function () { done("Copying failed: select the fingerprint and copy it by hand."); }
        );
      } else {
        var range = document.createRange();
        range.selectNodeContents(source);
        var selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        done("Fingerprint selected: press Ctrl+C (or Cmd+C) to copy it.");
      }
    });
  });
});
