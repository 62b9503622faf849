// pixelgrade sign-in form: the server sets its cookie (reads of a private gallery); this
// keeps the same token for the gallery's uploads and re-scores (see gallery.js).
"use strict";

(function () {
  const TOKEN_KEY = "pixelgrade-token";
  for (const form of document.querySelectorAll("form.sign-in")) {
    form.addEventListener("submit", () => {
      const token = form.querySelector("input[name=token]").value.trim();
      if (token) localStorage.setItem(TOKEN_KEY, token);
    });
  }
})();
