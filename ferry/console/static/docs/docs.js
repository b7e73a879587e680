// Swagger UI for Ferry's own OpenAPI document (vendored swagger-ui-dist; no CDN).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var base = location.pathname.replace(/\/(docs|swagger)\/?$/, "");
  window.SwaggerUIBundle({
    url: base + "/openapi.json",
    dom_id: "#ui",
    deepLinking: true,
    persistAuthorization: false,
  });
});
