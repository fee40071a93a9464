// The admin dashboard's only script: copy buttons, confirmations, tenant picker.
// Everything works without it except copying to the clipboard.
(function () {
  "use strict";

  function copied(button) {
    var label = button.textContent;
    button.textContent = "Copied";
    button.classList.add("done");
    setTimeout(function () {
      button.textContent = label;
      button.classList.remove("done");
    }, 1600);
  }

  // Older API, also available over plain HTTP: select the field and copy the selection.
  function copySelected(field, button) {
    field.focus();
    field.select();
    var ok = false;
    try {
      ok = document.execCommand("copy");
    } catch (e) {
      ok = false;
    }
    if (ok) {
      copied(button);
    } else {
      button.textContent = "Press Ctrl+C";
    }
  }

  function copy(button) {
    var field = document.getElementById(button.getAttribute("data-copy"));
    if (!field) {
      return;
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(
        function () { copied(button); },
        function () { copySelected(field, button); });
      return;
    }
    copySelected(field, button);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (button) {
      copy(button);
    }
  });

  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  });

  document.addEventListener("change", function (event) {
    if (event.target.hasAttribute("data-autosubmit")) {
      event.target.form.submit();
    }
  });
})();
