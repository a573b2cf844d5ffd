// A campaign's results as charts (ECharts, vendored): the conversion rate of each group beside
// the holdout's, and what happened to the messages of each channel. The data comes from the page
// (json_script "campaign-chart-data"); the tables below the charts say the same in figures.
(function () {
  "use strict";

  function bar(box, categories, series) {
    var chart = echarts.init(box, null, { renderer: "canvas" });
    chart.setOption({
      animation: false,
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
      legend: series.length > 1 ? { top: 0 } : undefined,
      grid: { left: 8, right: 16, top: series.length > 1 ? 28 : 16, bottom: 8, containLabel: true },
      xAxis: { type: "category", data: categories, axisLabel: { interval: 0, fontSize: 11 } },
      yAxis: { type: "value", minInterval: 1 },
      series: series,
    });
    return chart;
  }

  function draw() {
    var source = document.getElementById("campaign-chart-data");
    if (!source || typeof echarts === "undefined") return;
    var data = JSON.parse(source.textContent);
    var charts = [];
    var groups = document.getElementById("campaign-groups-chart");
    if (groups) {
      charts.push(bar(groups, data.groups, [{
        name: data.names.rate,
        type: "bar",
        data: data.rates,
        barMaxWidth: 56,
        label: { show: true, position: "top", formatter: "{c}%" },
        itemStyle: { color: "#2563eb" },
      }]));
    }
    var channels = document.getElementById("campaign-channels-chart");
    if (channels) {
      var names = data.names;
      var stack = function (key, color) {
        return { name: names[key] || key, type: "bar", stack: "all", data: data[key], itemStyle: { color: color }, barMaxWidth: 56 };
      };
      charts.push(bar(channels, data.channels, [
        stack("delivered", "#2e7d32"),
        stack("sent", "#93c5fd"),
        stack("failed", "#c62828"),
        stack("suppressed", "#9ca3af"),
      ]));
    }
    window.addEventListener("resize", function () {
      charts.forEach(function (c) { c.resize(); });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
