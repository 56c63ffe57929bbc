// Charts on uPlot (vendored, loaded as a classic script before the modules).
// Times go to uPlot in seconds. Every chart follows its container's width.

const uPlot = globalThis.uPlot;

function sized(el, opts, data) {
  const chart = new uPlot({ ...opts, width: Math.max(el.clientWidth, 120) }, data, el);
  const ro = new ResizeObserver(() => {
    const w = Math.max(el.clientWidth, 120);
    if (Math.abs(w - chart.width) > 2) chart.setSize({ width: w, height: opts.height });
  });
  ro.observe(el);
  chart.dispose = () => { ro.disconnect(); chart.destroy(); };
  return chart;
}

/** A bare line of recent values (machine cards). */
export function sparkline(el, xs, ys) {
  return sized(el, {
    height: 50,
    legend: { show: false },
    cursor: { show: false },
    scales: { x: { time: true } },
    axes: [{ show: false }, { show: false }],
    series: [{}, { stroke: '#1f5fbf', width: 1.5, fill: 'rgba(31,95,191,.08)', points: { show: false } }],
  }, [xs, ys]);
}

/**
 * A time chart. `series`: [{label, stroke, fill, width, dash, points}] after
 * the x series; `bands`: [[upper, lower]] series indices to shade between.
 */
export function timeChart(el, { series, bands = [], height = 300, yLabel }) {
  return sized(el, {
    height,
    scales: { x: { time: true } },
    series: [{}, ...series.map((s) => ({ spanGaps: false, points: { show: false }, ...s }))],
    bands: bands.map(([hi, lo]) => ({ series: [hi, lo], fill: 'rgba(23,128,61,.12)' })),
    axes: [{}, { label: yLabel, size: 60 }],
  }, [[], ...series.map(() => [])]);
}
