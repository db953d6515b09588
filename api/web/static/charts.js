// Draws every <canvas data-chart="ID"> from the JSON in <script type="application/json" id="ID">.
// The data come from the page's server; Chart.js (vendor/chart.umd.min.js) draws them.
"use strict";
(function () {
  const palette = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777",
    "#65a30d", "#64748b"];
  function draw(canvas) {
    const source = document.getElementById(canvas.dataset.chart);
    if (!source || typeof Chart === "undefined") return;
    const spec = JSON.parse(source.textContent);
    const datasets = spec.datasets.map(function (set, index) {
      const colour = palette[index % palette.length];
      const line = set.type === "line";
      return Object.assign({}, set, {
        backgroundColor: line ? "transparent" : colour,
        borderColor: colour,
        borderDash: line ? [6, 4] : undefined,
        pointRadius: line ? 2 : undefined,
      });
    });
    new Chart(canvas, {
      type: spec.type,
      data: { labels: spec.labels, datasets: datasets },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        plugins: { legend: { position: "bottom" } },
        scales: {
          x: { stacked: spec.stacked },
          y: { stacked: spec.stacked, beginAtZero: true, title: { display: !!spec.y, text: spec.y } },
        },
      },
    });
    canvas.dataset.drawn = "true";
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("canvas[data-chart]").forEach(draw);
  });
})();
