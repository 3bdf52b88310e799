// The case desk's only script (a static file: the CSP allows no inline script). Everything works without it;
// it adds two conveniences: the answer's text box is required only for an own answer, and a file input warns at
// once when more or larger files are chosen than a message may carry.
(function () {
  "use strict";

  function followAnswerChoice(form) {
    var own = form.querySelector("#svar-eget");
    var text = form.querySelector("#text-ANSWER");
    if (!own || !text) { return; }
    function update() {
      text.required = own.checked;
    }
    form.addEventListener("change", update);
    update();
  }

  function warnAboutFiles(input) {
    var maxFiles = parseInt(input.getAttribute("data-max-files"), 10);
    var maxBytes = parseInt(input.getAttribute("data-max-bytes"), 10);
    var note = document.createElement("p");
    note.className = "js-warning";
    note.id = input.id + "-varning";
    note.setAttribute("aria-live", "polite");
    input.parentNode.appendChild(note);
    input.addEventListener("change", function () {
      var problem = "";
      if (input.files.length > maxFiles) {
        problem = "Du har valt " + input.files.length + " filer. Högst " + maxFiles + " får bifogas.";
      } else {
        for (var i = 0; i < input.files.length; i++) {
          if (input.files[i].size > maxBytes) {
            problem = "Filen " + input.files[i].name + " är större än 20 MB.";
            break;
          }
        }
      }
      note.textContent = problem;
      input.setCustomValidity(problem);
    });
  }

  function focusMessage() {
    var message = document.getElementById("meddelande") || document.getElementById("fel");
    if (message) { message.focus(); }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form.answer").forEach(followAnswerChoice);
    document.querySelectorAll("input[type=file][data-max-files]").forEach(warnAboutFiles);
    focusMessage();
  });
})();
