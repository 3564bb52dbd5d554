// Draws every figure of the report from the JSON blocks next to it; no network access.
(function () {
  "use strict";
  var config = { displaylogo: false, responsive: true };
  var drawn = [];
  document.querySelectorAll("script.figure").forEach(function (node) {
    var target = document.getElementById(node.getAttribute("data-target"));
    try {
      var spec = JSON.parse(node.textContent);
      drawn.push(Plotly.newPlot(target, spec.data, spec.layout, config));
    } catch (err) {
      target.textContent = "This chart could not be drawn: " + err;
      console.error(err);
    }
  });
  Promise.all(drawn).then(function () {
    document.body.setAttribute("data-charts", "drawn");
  });
})();
