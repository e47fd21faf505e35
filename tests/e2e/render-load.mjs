// Frame times of the UI under load, in headless Chromium. Run by
// `cargo bench -p balancelab --bench ui_render`, which seeds the runs, starts the server and
// passes BASE (its URL), PASSWORD (admin's) and RUNS (the run ids, comma-separated).
// Prints a table: time until every chart is drawn, frame times of the hover read-out and of
// a zoom drag, time to redraw every curve after a smoothing change.
import { chromium } from 'playwright-core';

const base = process.env.BASE;
const runs = process.env.RUNS.split(',');
const STEP_LOSS = 'figure[data-chart="Fused loss per step, every run"]';
const REPEATS = 5;

const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
};

// In the page: sends `count` pointer events across the chart's plot (one per frame, as a
// moving hand does) and returns the time between successive frames, in ms.
async function frameTimes(page, chart, kind, count) {
  return page.evaluate(
    async ({ chart, kind, count }) => {
      const svg = document.querySelector(`${chart} svg.plot`);
      const box = svg.getBoundingClientRect();
      const at = (i) => ({
        clientX: box.left + box.width * (0.15 + (0.7 * i) / count),
        clientY: box.top + box.height / 2,
        bubbles: true,
      });
      const frame = () => new Promise(requestAnimationFrame);
      const times = [];
      if (kind === 'drag') svg.dispatchEvent(new MouseEvent('mousedown', at(0)));
      let last = await frame();
      for (let i = 0; i < count; i++) {
        svg.dispatchEvent(new MouseEvent('mousemove', at(i)));
        const now = await frame();
        times.push(now - last);
        last = now;
      }
      if (kind === 'drag') {
        svg.dispatchEvent(new MouseEvent('mouseup', at(count)));
        svg.dispatchEvent(new MouseEvent('dblclick', at(count)));
      }
      svg.dispatchEvent(new MouseEvent('mouseleave', at(count)));
      return times;
    },
    { chart, kind, count },
  );
}

// In the page: moves the smoothing slider and returns the ms until every curve of the chart
// is redrawn and painted.
async function smoothingRedraw(page, chart, value) {
  return page.evaluate(
    async ({ chart, value }) => {
      const lines = () => [...document.querySelectorAll(`${chart} polyline`)].map((l) => l.getAttribute('points'));
      const before = lines();
      const slider = document.querySelector('#smoothing');
      const start = performance.now();
      slider.value = value;
      slider.dispatchEvent(new Event('change', { bubbles: true }));
      for (;;) {
        await new Promise(requestAnimationFrame);
        const after = lines();
        if (after.length === before.length && after.every((l, i) => l !== before[i])) break;
      }
      await new Promise(requestAnimationFrame);
      return performance.now() - start;
    },
    { chart, value },
  );
}

async function drawn(page, url, ready, arg) {
  const start = Date.now();
  await page.goto(url);
  await page.waitForFunction(ready, arg, { timeout: 120_000, polling: 'raf' });
  return Date.now() - start;
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    await page.goto(`${base}/login`);
    await page.fill('#login-name', 'admin');
    await page.fill('#login-password', process.env.PASSWORD);
    await page.click('#login-submit');
    await page.locator('#start-run').waitFor();

    const rows = [];
    const compare = `${base}/compare?runs=${runs.join(',')}`;
    // Every chart drawn: per epoch and per step, each modality's too (two per run).
    const everyRun = (n) =>
      document.querySelectorAll('figure[data-chart="Fused loss per step, every run"] polyline').length === n
      && document.querySelectorAll('figure[data-chart^="Head loss per step"] polyline').length === 2 * n
      && document.querySelectorAll('figure[data-chart^="Coefficient k per step"] polyline').length === 2 * n
      && document.querySelectorAll('figure[data-chart^="Fused loss (training"] polyline').length === n
      && document.querySelectorAll('figure[data-chart^="Confidence s"] polyline').length === 2 * n;
    // The first open computes every run's series on the server; later opens find them
    // kept (the runs are finished, their steps do not change). Opened again from a blank tab,
    // as a link opens it; then reloaded, which first tears the same heavy page down.
    const first = await drawn(page, compare, everyRun, runs.length);
    console.error(`compare first open: ${first} ms`);
    const opens = [];
    for (let i = 0; i < REPEATS; i++) {
      await page.goto('about:blank');
      opens.push(await drawn(page, compare, everyRun, runs.length));
      console.error(`compare open ${i + 1}: ${opens.at(-1)} ms`);
    }
    // Where the last open's time went: each request's end, from the navigation's start.
    const requests = await page.evaluate(() =>
      performance.getEntriesByType('resource').map((r) => ({
        name: new URL(r.name).pathname,
        start: r.startTime,
        end: r.responseEnd,
        bytes: r.encodedBodySize,
      })),
    );
    for (const r of requests) {
      console.error(`  ${r.name}: ${r.start.toFixed(0)}-${r.end.toFixed(0)} ms, ${r.bytes} bytes`);
    }
    const reloads = [];
    for (let i = 0; i < REPEATS; i++) reloads.push(await drawn(page, compare, everyRun, runs.length));
    rows.push([`compare ${runs.length} runs: first open, until all charts drawn`, [first]]);
    rows.push([`compare ${runs.length} runs: opened again (from a blank tab)`, opens]);
    for (const [what, path] of [['wasm', '.wasm'], ['/api/compare', '/api/compare'], ['/api/compare/metrics', '/api/compare/metrics']]) {
      const r = requests.find((r) => (path.startsWith('.') ? r.name.endsWith(path) : r.name === path));
      if (r) rows.push([`  ${what} received (ms from navigation; ${(r.bytes / 1e6).toFixed(2)} MB)`, [r.end]]);
    }
    rows.push([`compare ${runs.length} runs: reloaded (the page torn down first)`, reloads]);

    console.error('hover...');
    rows.push(['  hover read-out, 50 series (frame)', await frameTimes(page, STEP_LOSS, 'hover', 120)]);
    console.error('drag...');
    rows.push(['  zoom drag (frame)', await frameTimes(page, STEP_LOSS, 'drag', 120)]);
    const redraws = [];
    for (let i = 0; i < REPEATS; i++) {
      redraws.push(await smoothingRedraw(page, STEP_LOSS, i % 2 ? '0.6' : '0.9'));
    }
    rows.push(['  smoothing change: every curve redrawn', redraws]);
    console.error('run page...');

    const single = `${base}/runs/${runs[0]}`;
    const stepCharts = () => document.querySelectorAll('.step-curves polyline').length === 5
      && document.querySelectorAll('figure[data-chart^="Gradient coefficient k per modality"] circle.point').length === 200;
    const runOpens = [];
    for (let i = 0; i < REPEATS; i++) runOpens.push(await drawn(page, single, stepCharts));
    rows.push(['run page (10,000 steps): open until all charts drawn', runOpens]);
    rows.push(['  hover read-out (frame)', await frameTimes(page, 'figure[data-chart="Loss per step"]', 'hover', 120)]);

    const pad = (text, n) => String(text).padStart(n);
    console.log(`\nUI render, ${runs.length} runs x 10,000 steps, headless Chromium, 1280 px (ms)`);
    console.log(`${'what'.padEnd(56)}${pad('n', 5)}${pad('p50', 9)}${pad('p95', 9)}${pad('max', 9)}`);
    for (const [what, values] of rows) {
      const cells = [0.5, 0.95].map((q) => pad(quantile(values, q).toFixed(1), 9)).join('');
      console.log(`${what.padEnd(56)}${pad(values.length, 5)}${cells}${pad(Math.max(...values).toFixed(1), 9)}`);
    }
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
