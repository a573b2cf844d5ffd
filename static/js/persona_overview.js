// The overview's charts (ECharts, vendored): one bar chart per dimension, the groups that have
// students. Their data comes from the page (json_script "overview-chart-data"), so drawing them
// costs no request; the tables below say the same in figures.
(function () {
  "use strict";

  var COLORS = { stage: "#2563eb", tier: "#2e7d32", segment: "#7c3aed" };

  function draw() {
    var source = document.getElementById("overview-chart-data");
    if (!source || typeof echarts === "undefined") return;
    var data = JSON.parse(source.textContent);
    var charts = [];
    document.querySelectorAll("[data-chart]").forEach(function (box) {
      var groups = data[box.dataset.chart] || [];
      var chart = echarts.init(box, null, { renderer: "canvas" });
      chart.setOption({
        animation: false,
        tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
        grid: { left: 8, right: 16, top: 16, bottom: 8, containLabel: true },
        xAxis: {
          type: "category",
          data: groups.map(function (g) { return g.name; }),
          axisLabel: { interval: 0, fontSize: 11, hideOverlap: false },
        },
        yAxis: { type: "value", minInterval: 1 },
        series: [{
          type: "bar",
          data: groups.map(function (g) { return g.value; }),
          label: { show: true, position: "top", fontSize: 11 },
          itemStyle: { color: COLORS[box.dataset.chart] || "#2563eb" },
          barMaxWidth: 48,
        }],
      });
      charts.push(chart);
    });
    window.addEventListener("resize", function () {
      charts.forEach(function (c) { c.resize(); });
    });
  }

  // An administrator's campus picker shows the chosen campus at once.
  function pickCampus() {
    var picker = document.getElementById("overview-campus");
    if (picker) picker.addEventListener("change", function () { picker.form.submit(); });
  }

  function start() {
    pickCampus();
    draw();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
