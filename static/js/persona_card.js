// The persona card's small charts (ECharts, vendored). Their data comes from the page
// (json_script "persona-chart-data"), so drawing them costs no request.
(function () {
  "use strict";

  function draw() {
    var source = document.getElementById("persona-chart-data");
    if (!source || typeof echarts === "undefined") return;
    var data = JSON.parse(source.textContent);
    var charts = [];
    var attendance = document.getElementById("chart-attendance");
    if (attendance) {
      var chart = echarts.init(attendance, null, { renderer: "canvas" });
      chart.setOption({
        animation: false,
        tooltip: { trigger: "axis" },
        legend: { top: 0, itemWidth: 12, itemHeight: 10 },
        grid: { left: 28, right: 8, top: 32, bottom: 24 },
        xAxis: { type: "category", data: data.weeks, axisLabel: { fontSize: 10 } },
        yAxis: { type: "value", minInterval: 1 },
        series: [
          { name: data.labels.present, type: "bar", stack: "n", data: data.present, itemStyle: { color: "#2e7d32" } },
          { name: data.labels.absent, type: "bar", stack: "n", data: data.absent, itemStyle: { color: "#c62828" } },
          { name: data.labels.leave, type: "bar", stack: "n", data: data.leave, itemStyle: { color: "#f9a825" } },
        ],
      });
      charts.push(chart);
    }
    var rfm = document.getElementById("chart-rfm");
    if (rfm && data.rfm.length) {
      var scores = echarts.init(rfm, null, { renderer: "canvas" });
      scores.setOption({
        animation: false,
        grid: { left: 24, right: 24, top: 4, bottom: 20 },
        xAxis: { type: "value", min: 0, max: 5, interval: 1 },
        yAxis: { type: "category", data: ["M", "F", "R"] },
        series: [{
          type: "bar",
          data: data.rfm.slice().reverse(),
          label: { show: true, position: "right" },
          itemStyle: { color: "#1565c0" },
          barWidth: 14,
        }],
      });
      charts.push(scores);
    }
    window.addEventListener("resize", function () {
      charts.forEach(function (c) { c.resize(); });
    });
  }

  // The suggested action's form (autofocus): in the middle of the screen rather than at its
  // bottom edge, the cursor after the suggested words so the person just goes on typing.
  function focusSuggested() {
    var field = document.querySelector("#actions [autofocus]");
    if (!field) return;
    field.focus({ preventScroll: true });
    field.scrollIntoView({ block: "center" });
    if (typeof field.setSelectionRange === "function" && field.value) {
      field.setSelectionRange(field.value.length, field.value.length);
    }
  }

  function start() {
    focusSuggested();
    draw();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
