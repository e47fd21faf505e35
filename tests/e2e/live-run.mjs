// End-to-end: the real `balancelab serve` and the built UI in headless Chromium.
// A bad value shows an inline error; a good MLB run is started from the form; its curves
// are seen growing while it trains; after it completes, a reload shows the stored curves;
// it is then compared with a second run (config diff, overlaid curves, results, CSV export);
// a third, long run is cancelled from its page; the MLB run is shared read-only with a link
// that a browser without a session opens, until it is revoked; it is cloned with an edit; a
// sweep of 2 methods x 2 seeds starts from the form. Presets and the JSON editor of every
// setting fill the form. Every page asks for a sign-in first.
// Screenshots go to artifacts/e2e/. Run by scripts/test (needs dist/ and the server binary).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const binary = resolve(root, process.env.BALANCELAB_BIN ?? 'target/debug/balancelab');
const artifacts = join(root, 'artifacts', 'e2e');
// Real datasets, where this machine has them (the project keeps them in ../shared/data).
const dataDir = resolve(root, process.env.BALANCELAB_DATA_DIR ?? '../shared/data');
const hasData = existsSync(join(dataDir, 'mfeat'));
const EPOCHS = 40;
const ADMIN_PASSWORD = 'e2e admin password';
const K_CHART = 'figure[data-chart="Gradient coefficient k per modality"]';
const ACCURACY_CHART = 'figure[data-chart="Accuracy: fused output and each unimodal head"]';

function freePort() {
  return new Promise((done, fail) => {
    const probe = createServer().once('error', fail);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => done(port));
    });
  });
}

async function waitForHealth(base, server) {
  for (let i = 0; i < 300; i++) {
    if (server.exitCode !== null) throw new Error(`server exited with ${server.exitCode}`);
    try {
      if ((await fetch(`${base}/api/health`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('server did not become healthy in 30 s');
}

const pointCount = (page, chart) => page.locator(`${chart} circle.point`).count();

// The hover read-outs of one series, e.g. "m1 (noise 3): 1.61 at epoch 40" -> [1.61, ...].
// Waits (10 s at most) until the elements of `locator` read `expected`, then checks them: a
// list drawn again meanwhile is read again rather than caught half-drawn.
async function eventuallyTexts(locator, expected) {
  let texts = [];
  for (let i = 0; i < 100; i++) {
    texts = await locator.allTextContents();
    if (JSON.stringify(texts) === JSON.stringify(expected)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(texts, expected);
}

async function seriesValues(page, chart, label) {
  const titles = await page.locator(`${chart} circle.point title`).allTextContents();
  return titles
    .filter((t) => t.startsWith(`${label}: `))
    .map((t) => Number(t.slice(label.length + 2).split(' ')[0]));
}

async function main() {
  mkdirSync(artifacts, { recursive: true });
  const state = mkdtempSync(join(tmpdir(), 'balancelab-e2e-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const args = ['serve', '--addr', `127.0.0.1:${port}`, '--state-dir', state, '--ui-dir', join(root, 'dist')];
  if (hasData) args.push('--data-dir', dataDir);
  else console.log(`e2e: no real data at ${dataDir}; checking real datasets are shown as not found`);
  const server = spawn(binary, args, {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, BALANCELAB_ADMIN_PASSWORD: ADMIN_PASSWORD },
  });
  let browser;
  try {
    await waitForHealth(base, server);
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      args: [
        '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ],
    });
    const page = await browser.newPage({ viewport: { width: 1280, height: 1500 }, acceptDownloads: true });
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    // Refused calls before signing in are expected (the browser logs each 401).
    page.on('console', (m) => m.type() === 'error' && !/status of 401/.test(m.text()) && pageErrors.push(m.text()));

    // Signed out, the start page sends the browser to sign in, then back.
    await page.goto(`${base}/`);
    await page.waitForURL(/\/login\?next=/);
    await page.fill('#login-password', 'wrong password');
    await page.click('#login-submit');
    await page.locator('.login .form-message', { hasText: 'wrong password' }).waitFor();
    await page.fill('#login-password', ADMIN_PASSWORD);
    await page.screenshot({ path: join(artifacts, '0-sign-in.png'), fullPage: true });
    await page.click('#login-submit');
    await page.locator('#start-run').waitFor();
    assert.equal(await page.locator('#signed-in-as').textContent(), 'admin');

    // The API, for the steps the test drives directly, with a session token of its own.
    const login = await fetch(`${base}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'admin', password: ADMIN_PASSWORD }),
    });
    assert.equal(login.status, 200);
    const auth = { authorization: `Bearer ${(await login.json()).token}` };

    // The dataset list says which real datasets this server found, with their attribution.
    const mfeat = page.locator('#field-dataset option[value="mfeat_fac_mor"]');
    // Until the catalog arrives every option is disabled; synthetic is always available.
    await page.waitForFunction(() => {
      const synthetic = document.querySelector('#field-dataset option[value="synthetic"]');
      return synthetic && !synthetic.disabled;
    });
    // (Playwright's isDisabled() does not look at <option>: read the DOM property.)
    assert.equal(await mfeat.evaluate((o) => o.disabled), !hasData);
    if (hasData) {
      await page.selectOption('#field-dataset', 'mfeat_fac_mor');
      await page.locator('.field .hint', { hasText: 'License: UCI' }).waitFor();
      assert.equal(await page.locator('#field-dataset-noise').count(), 0, 'noise is for synthetic data only');
    }
    await page.selectOption('#field-dataset', 'synthetic');

    // A preset's link fills the form, and "Start from" says so, also after a reload; the
    // encoder, optimiser and schedule are fields.
    for (let i = 0; i < 2; i++) {
      if (i === 0) await page.goto(`${base}/?preset=mlb-paper-training`);
      else await page.reload();
      await page.waitForFunction(() => document.querySelector('#field-preset')?.value === 'mlb-paper-training');
      await page.waitForFunction(() => document.querySelector('#field-schedule')?.value === 'cosine_warm_restarts');
      assert.equal(await page.locator('#field-optimizer').inputValue(), 'adam');
      assert.equal(await page.locator('#field-schedule-start_epoch').inputValue(), '20');
      assert.equal(await page.locator('#field-optimizer-weight_decay').inputValue(), '0.0001');
    }
    await page.screenshot({ path: join(artifacts, '0a-preset-link.png'), fullPage: true });
    await page.goto(`${base}/`);
    await page.waitForFunction(() => document.querySelector('#field-optimizer')?.value === 'sgd');

    // A preset fills the form (and lives in the URL); "the defaults" goes back.
    await page.locator('#field-preset option[value="mlb-quick-digits"]').waitFor({ state: 'attached' });
    await page.selectOption('#field-preset', 'mlb-quick-digits');
    await page.waitForURL(/[?&]preset=mlb-quick-digits/);
    await page.waitForFunction(() => document.querySelector('#field-fusion').value === 'gated');
    assert.equal(await page.locator('#field-epochs').inputValue(), '10');
    await page.selectOption('#field-preset', '');
    await page.waitForFunction(() => document.querySelector('#field-fusion').value === 'late');
    await page.selectOption('#field-dataset', 'synthetic');

    // Every setting as JSON: a wrong type is named by its path, next to its field.
    await page.locator('.all-settings summary').click();
    await page.waitForFunction(() => document.querySelector('#all-settings').value.includes('"optimizer"'));
    const settings = JSON.parse(await page.locator('#all-settings').inputValue());
    await page.fill('#all-settings', JSON.stringify({ ...settings, batch_size: 'large' }));
    await page.click('#apply-settings');
    await page.locator('.field-error[data-field="batch_size"]', { hasText: 'invalid type' }).waitFor();
    await page.fill('#all-settings', JSON.stringify({ ...settings, batch_size: 32 }));
    await page.click('#apply-settings');
    await page.waitForFunction(() => document.querySelector('#field-batch_size').value === '32');
    assert.equal(await page.locator('.field-error').count(), 0);
    await page.locator('.all-settings summary').click();

    // Bad values are refused, every one at once next to its field (those that do not read
    // and those out of range, on inputs and selects), and nothing is started.
    await page.fill('#field-epochs', '0');
    await page.fill('#field-learning_rate', '1e400');
    await page.fill('#field-seed', '1.5');
    await page.selectOption('#field-method', 'ogm_ge');
    await page.selectOption('#field-fusion', 'mid');
    await page.fill('#field-optimizer-momentum', '2');
    await page.click('#start-run');
    const epochsError = page.locator('.field-error[data-field="epochs"]');
    await epochsError.waitFor();
    assert.match(await epochsError.textContent(), /between 1 and 10000/);
    assert.match(await page.locator('.field-error[data-field="learning_rate"]').textContent(), /finite/);
    assert.match(await page.locator('.field-error[data-field="seed"]').textContent(), /whole number/);
    assert.match(await page.locator('.field-error[data-field="model.fusion"]').textContent(), /needs late fusion/);
    assert.match(await page.locator('.field-error[data-field="optimizer.momentum"]').textContent(), /between/);
    await page.screenshot({ path: join(artifacts, '1-invalid-value.png'), fullPage: true });
    assert.equal(new URL(page.url()).pathname, '/');
    await page.fill('#field-learning_rate', '0.01');
    await page.fill('#field-seed', '0');
    // A unimodal run picks its modality among the dataset's, as typed so far.
    await page.selectOption('#field-method', 'unimodal');
    const modalityOptions = page.locator('#field-method-modality option');
    assert.deepEqual(await modalityOptions.allTextContents(), ['m0 (noise 1.5)', 'm1 (noise 3)']);
    await page.fill('#field-dataset-noise', '1.5, 3, 6');
    await page.locator('#field-method-modality option').nth(2).waitFor({ state: 'attached' });
    await page.fill('#field-dataset-noise', '1.5, 3');
    await page.selectOption('#field-method', 'mlb');
    await page.selectOption('#field-fusion', 'late');
    await page.fill('#field-optimizer-momentum', '0.9');

    // A good MLB run.
    await page.fill('#field-epochs', String(EPOCHS));
    await page.selectOption('#field-method', 'mlb');
    await page.fill('#field-method-alpha', '0.8');
    await page.click('#start-run');
    await page.waitForURL(/\/runs\/\d+$/);
    const runPath = new URL(page.url()).pathname;

    // Live: some but not all epochs drawn while the run is still training.
    await page.waitForFunction(
      ({ chart, total }) => {
        const n = document.querySelectorAll(`${chart} circle.point`).length;
        return document.querySelector('.badge-running') && n >= 4 && n < total;
      },
      { chart: K_CHART, total: 2 * EPOCHS },
      { timeout: 60_000, polling: 'raf' },
    );
    await page.screenshot({ path: join(artifacts, '2-live-curves.png'), fullPage: true });

    await page.locator('.badge-completed').waitFor({ timeout: 120_000 });
    assert.equal(await pointCount(page, K_CHART), 2 * EPOCHS, 'k: one point per modality per epoch');
    assert.equal(await pointCount(page, ACCURACY_CHART), 3 * EPOCHS, 'accuracy: fused + 2 heads');
    // Modality 1 is the noisier: MLB must accelerate it (k > 1) and slow modality 0 (k < 1).
    const k0 = await seriesValues(page, K_CHART, 'm0 (noise 1.5)');
    const k1 = await seriesValues(page, K_CHART, 'm1 (noise 3)');
    assert.equal(k0.length, EPOCHS);
    assert.ok(k1.at(-1) > 1 && k0.at(-1) < 1, `k at the last epoch: ${k0.at(-1)}, ${k1.at(-1)}`);
    const fused = await seriesValues(page, ACCURACY_CHART, 'fused');
    assert.ok(fused.at(-1) > 0.5, `fused accuracy ${fused.at(-1)}`);
    // The same chart on the validation split (in the URL).
    await page.selectOption('#accuracy-split', 'validation');
    await page.waitForURL(/[?&]split=validation/);
    await page.waitForFunction(
      ({ chart, test }) => {
        const titles = [...document.querySelectorAll(`${chart} circle.point title`)].map((t) => t.textContent);
        const fused = titles.filter((t) => t.startsWith('fused: ')).map((t) => Number(t.split(' ')[1]));
        return fused.length === test.length && fused.some((v, i) => v !== test[i]);
      },
      { chart: ACCURACY_CHART, test: fused },
    );
    await page.selectOption('#accuracy-split', 'test');
    // The best validation epoch, which results read by default, is marked on every chart.
    const summary = await page.locator('dl.config').first().textContent();
    const bestEpoch = Number(/best validation epoch \((\d+)\)/.exec(summary)?.[1]);
    assert.ok(bestEpoch >= 1, `no best validation epoch in the summary: ${summary}`);
    const marks = page.locator('figure.chart g.mark');
    assert.equal(await marks.count(), 6, 'one mark per epoch chart');
    const accuracyMark = page.locator(`${ACCURACY_CHART} g.mark`);
    assert.equal(await accuracyMark.locator('text').textContent(), 'best val.');
    const bestPoint = page.locator(`${ACCURACY_CHART} circle.point`, {
      has: page.locator('title', { hasText: new RegExp(`^fused: .* at epoch ${bestEpoch}$`) }),
    });
    assert.equal(
      Number(await accuracyMark.locator('line').getAttribute('x1')),
      Number(await bestPoint.getAttribute('cx')),
      `the mark stands at epoch ${bestEpoch}`,
    );
    await page.screenshot({ path: join(artifacts, '3-completed.png'), fullPage: true });

    // Hovering reads every series at the pointer; dragging zooms; both by keyboard too.
    const kPlot = page.locator(`${K_CHART} svg.plot`);
    const box = await kPlot.boundingBox();
    await page.mouse.move(box.x + box.width * 0.6, box.y + box.height * 0.5);
    const readOut = page.locator(`${K_CHART} .read-out`);
    await readOut.waitFor();
    const readOutText = (await readOut.locator('text').allTextContents()).join(' | ');
    assert.match(readOutText, /^epoch \d+ \| m0 \(noise 1\.5\): [\d.]+ \| m1 \(noise 3\): [\d.]+$/);
    await page.screenshot({ path: join(artifacts, '3a-read-out.png'), clip: { ...box, height: box.height + 40 } });
    await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.5);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.5, { steps: 5 });
    await page.mouse.up();
    await page.locator(`${K_CHART} .reset-zoom`).waitFor();
    const zoomedTicks = await page.locator(`${K_CHART} text.tick`).allTextContents();
    await page.locator(`${K_CHART} .reset-zoom`).click();
    await page.locator(`${K_CHART} .reset-zoom`).waitFor({ state: 'detached' });
    assert.notDeepEqual(await page.locator(`${K_CHART} text.tick`).allTextContents(), zoomedTicks);
    await kPlot.focus();
    await page.keyboard.press('+');
    await page.locator(`${K_CHART} .reset-zoom`).waitFor();
    await page.keyboard.press('ArrowRight');
    await readOut.waitFor();
    await page.keyboard.press('Escape');
    await page.locator(`${K_CHART} .reset-zoom`).waitFor({ state: 'detached' });

    // Charts export as standalone SVG (title, axes, legend) and as PNG.
    const [svgFile] = await Promise.all([
      page.waitForEvent('download'),
      page.locator(`${K_CHART} .export-svg`).click(),
    ]);
    assert.equal(svgFile.suggestedFilename(), 'gradient-coefficient-k-per-modality.svg');
    const svgText = readFileSync(await svgFile.path(), 'utf8');
    assert.ok(svgText.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'), svgText.slice(0, 80));
    for (const text of ['>Gradient coefficient k per modality</text>', '>m1 (noise 3)</text>', '>epoch</text>']) {
      assert.ok(svgText.includes(text), `the SVG has ${text}`);
    }
    const [pngFile] = await Promise.all([
      page.waitForEvent('download'),
      page.locator(`${K_CHART} .export-png`).click(),
    ]);
    const png = readFileSync(await pngFile.path());
    assert.equal(png.subarray(1, 4).toString(), 'PNG');
    assert.equal(png.readUInt32BE(16), 1040, 'PNG width: 2 x 520');
    writeFileSync(join(artifacts, '3b-exported-chart.png'), png);

    // Reloading shows the stored curves.
    await page.reload();
    await page.locator('.badge-completed').waitFor();
    await page.waitForFunction(
      ({ chart, total }) => document.querySelectorAll(`${chart} circle.point`).length === total,
      { chart: K_CHART, total: 2 * EPOCHS },
    );
    assert.deepEqual(await seriesValues(page, K_CHART, 'm1 (noise 3)'), k1);
    await page.screenshot({ path: join(artifacts, '4-after-reload.png'), fullPage: true });
    // The log tells the run epoch by epoch; its numbers export as CSV.
    const log = await page.locator('#run-log').textContent();
    assert.match(log, new RegExp(`epoch +${EPOCHS} at +[\\d.]+ s: loss [\\d.]+, test fused [\\d.]+%`));
    assert.ok(log.trim().endsWith('completed'), log.slice(-200));
    const stepsCsv = await (await fetch(`${base}${await page.locator('a.export', { hasText: 'steps' }).getAttribute('href')}`, { headers: auth })).text();
    assert.match(stepsCsv.split('\n')[0], /(^|,)step(,|$)/);

    // Tags and a note, edited on the run page, kept, and shown in the list.
    await page.fill('#run-tags', 'baseline, paper:table2 baseline');
    await page.fill('#run-note', 'first try: alpha 0.8');
    await page.click('#save-notes');
    await page.locator('#notes-status', { hasText: 'Saved.' }).waitFor();
    await page.fill('#run-tags', 'bad<tag>');
    await page.click('#save-notes');
    await page.locator('#notes-status', { hasText: 'tags[0]' }).waitFor();
    await page.reload();
    await page.waitForFunction(() => document.querySelector('#run-tags')?.value === 'baseline, paper:table2');
    assert.equal(await page.locator('#run-note').inputValue(), 'first try: alpha 0.8');

    // Per-step curves from the server's series; smoothing and the x axis live in the URL.
    const stepK = 'figure[data-chart="Gradient coefficient k per step"] polyline';
    await page.locator(stepK).nth(1).waitFor();
    assert.equal(await page.locator(stepK).count(), 2, 'one k curve per modality');
    // Marked, to see that changing the view redraws curves without rebuilding the page.
    await page.locator(K_CHART).evaluate((figure) => { figure.dataset.probe = 'kept'; });
    await page.selectOption('#x-axis', 'epoch');
    await page.waitForURL(/[?&]x=epoch/);
    await page.locator('#smoothing').fill('0.9');
    await page.waitForURL(/[?&]smooth=0.9/);
    assert.equal(await page.locator(`${K_CHART}[data-probe="kept"]`).count(), 1, 'the page was not rebuilt');
    await page.reload();
    await page.locator(stepK).nth(1).waitFor();
    assert.equal(await page.locator('#x-axis').inputValue(), 'epoch', 'the view survives a reload');
    await page.locator('.step-curves').screenshot({ path: join(artifacts, '4b-step-curves.png') });

    // The run is listed on the start page.
    await page.goto(`${base}/`);
    await page.locator(`table.runs a[href="${runPath}"]`).waitFor();

    // Compare it with a joint-training run: config diff, overlaid curves, results, export.
    const created = await fetch(`${base}/api/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth },
      body: JSON.stringify({ method: { kind: 'joint' }, epochs: 5 }),
    });
    assert.equal(created.status, 201);
    const joint = await created.json();
    for (let i = 0; ; i++) {
      const run = await (await fetch(`${base}/api/runs/${joint.id}`, { headers: auth })).json();
      if (run.status === 'completed') break;
      assert.ok(i < 600 && run.status !== 'failed', `joint run: ${run.status} ${run.error}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // A joint run's k is exactly 1 at every step: smoothed or not, its charts draw it flat,
    // with round, distinct ticks that include 1.
    await page.goto(`${base}/runs/${joint.id}?smooth=0.9`);
    const jointK = 'figure[data-chart="Gradient coefficient k per step"]';
    // A flat line has no height: Playwright calls it hidden, so wait for it to exist.
    await page.locator(`${jointK} polyline`).nth(1).waitFor({ state: 'attached' });
    for (const chart of [jointK, K_CHART]) {
      const yTicks = await page.locator(`${chart} text.tick[text-anchor="end"]`).allTextContents();
      assert.equal(new Set(yTicks).size, yTicks.length, `${chart}: repeated tick labels ${yTicks}`);
      assert.ok(yTicks.includes('1'), `${chart}: no tick at 1: ${yTicks}`);
    }
    const heights = await page.locator(`${jointK} polyline`).first().evaluate((line) =>
      new Set(line.getAttribute('points').trim().split(/\s+/).map((p) => p.split(',')[1])).size);
    assert.equal(heights, 1, 'a constant k is drawn flat');
    await page.locator('.step-curves').screenshot({ path: join(artifacts, '4c-joint-k-per-step.png') });
    await page.goto(`${base}/`);
    await page.reload();
    const runId = runPath.split('/').at(-1);
    const mlbRow = page.locator('table.runs tr', { has: page.locator(`a[href="${runPath}"]`) });
    // The list may be drawn again as its live stream catches up: read the tags once settled.
    await eventuallyTexts(mlbRow.locator('.tag'), ['baseline', 'paper:table2']);
    assert.equal(await mlbRow.locator('small.note').textContent(), 'first try: alpha 0.8');
    await page.locator(`input[aria-label="compare run ${runId}"]`).check();
    await page.locator(`input[aria-label="compare run ${joint.id}"]`).check();
    // Ticked runs are tagged together, and the tag taken off again.
    await page.fill('#bulk-tag', 'compared');
    await page.click('#bulk-add-tag');
    await page.locator('#bulk-status', { hasText: '2 run(s) tagged.' }).waitFor();
    await page.waitForFunction(() => document.querySelectorAll('table.runs .tag').length === 4);
    const tagsOf = async (id) => (await (await fetch(`${base}/api/runs/${id}`, { headers: auth })).json()).tags;
    assert.deepEqual(await tagsOf(runId), ['baseline', 'compared', 'paper:table2'], 'the server keeps tags sorted');
    assert.deepEqual(await tagsOf(joint.id), ['compared']);
    await page.screenshot({ path: join(artifacts, '4d-bulk-tagged.png'), fullPage: true });
    await page.click('#bulk-remove-tag');
    await page.locator('#bulk-status', { hasText: '2 run(s) untagged.' }).waitFor();
    assert.deepEqual(await tagsOf(joint.id), []);
    await page.locator('#compare-selected').click();
    await page.locator('table.differences').waitFor();
    const compared = [Number(runId), joint.id].sort((a, b) => a - b).join(',');
    assert.equal(new URL(page.url()).searchParams.get('runs'), compared, 'the view lives in the URL');
    const fields = await page.locator('table.differences tbody th').allTextContents();
    assert.ok(fields.includes('method.kind') && fields.includes('epochs'), `differences: ${fields}`);
    assert.ok(!fields.includes('seed'), 'equal fields are not listed');
    await page.locator('table.results tbody tr').nth(1).waitFor();
    const groups = await page.locator('table.results tbody tr td:first-child').allTextContents();
    assert.deepEqual(groups, ['joint', 'mlb']);
    await page.locator('figure[data-chart="Fused accuracy (test split)"] circle.point').nth(EPOCHS + 4).waitFor();
    // Every modality's head accuracy, k and s, per epoch, and its head loss and k per step.
    for (const name of ['m0 (noise 1.5)', 'm1 (noise 3)']) {
      for (const chart of [`Head accuracy, ${name} (test split)`, `Coefficient k, ${name}`, `Confidence s, ${name}`]) {
        await page.locator(`figure[data-chart="${chart}"] circle.point`).nth(EPOCHS + 4).waitFor({ state: 'attached' });
      }
      for (const chart of [`Head loss per step, ${name}`, `Coefficient k per step, ${name}`]) {
        await page.locator(`figure[data-chart="${chart}"] polyline`).nth(1).waitFor({ state: 'attached' });
      }
    }
    // Results at the best validation epoch by default, the last on request.
    await page.locator('#results-heading', { hasText: 'best validation epoch' }).waitFor();
    const headers = await page.locator('table.results thead th').allTextContents();
    assert.ok(headers.includes('m0 (noise 1.5) head acc. (test)') && headers.includes('m1 (noise 3) head acc. (test)'), `${headers}`);
    await page.selectOption('#results-epoch', 'last');
    await page.waitForURL(/[?&]epoch=last/);
    await page.locator('#results-heading', { hasText: 'last epoch' }).waitFor();
    // The method's own objective only on request.
    const objective = 'figure[data-chart="The method\'s objective per step, every run"]';
    assert.equal(await page.locator(objective).count(), 0);
    await page.locator('#show-objective').check();
    await page.locator(`${objective} polyline`).nth(1).waitFor({ state: 'attached' });
    // Both runs' steps overlaid, one colour per method.
    const overlay = 'figure[data-chart="Fused loss per step, every run"] polyline';
    await page.locator(overlay).nth(1).waitFor();
    const colours = await page.locator(overlay).evaluateAll((lines) => lines.map((l) => l.getAttribute('stroke')));
    assert.equal(new Set(colours).size, 2, `one colour per method: ${colours}`);
    // Smoothing redraws every curve in place, also where the y axis stays as it was (an
    // effect that read the axis before the curves once missed the change).
    const drawnLines = () => page.locator(overlay).evaluateAll((lines) => lines.map((l) => l.getAttribute('points')));
    const unsmoothed = await drawnLines();
    await page.locator('#smoothing').fill('0.95');
    await page.waitForURL(/[?&]smooth=0.95/);
    await page.waitForFunction(
      ({ selector, before }) => [...document.querySelectorAll(selector)].every((l, i) => l.getAttribute('points') !== before[i]),
      { selector: overlay, before: unsmoothed },
    );
    const csvHref = await page.locator('a.export', { hasText: 'CSV' }).getAttribute('href');
    const csv = await (await fetch(`${base}${csvHref}`, { headers: auth })).text();
    assert.match(csv, /^method\.kind,model\.fusion,runs,test\.fused mean/);
    assert.equal(csv.trim().split('\n').length, 3, csv);
    await page.screenshot({ path: join(artifacts, '5-compare.png'), fullPage: true });

    // The run list: a filter lives in the URL and survives a reload; a run started elsewhere
    // appears, and its status changes, without reloading.
    await page.goto(`${base}/`);
    await page.selectOption('#runs-method', 'mlb');
    await page.waitForURL(/[?&]method=mlb/);
    await page.locator(`table.runs a[href="/runs/${joint.id}"]`).waitFor({ state: 'detached' });
    await page.reload();
    await page.locator(`table.runs a[href="${runPath}"]`).waitFor();
    assert.equal(await page.locator('table.runs tbody tr').count(), 1, 'only the MLB run');
    assert.equal(await page.locator('#runs-method').inputValue(), 'mlb');
    await page.selectOption('#runs-method', '');
    await page.locator(`table.runs a[href="/runs/${joint.id}"]`).waitFor();
    // The project picker: admin's one project holds every run.
    await page.locator('#runs-project option:nth-child(2)').waitFor({ state: 'attached' });
    await page.selectOption('#runs-project', { index: 1 });
    await page.waitForURL(/[?&]project=\d+/);
    await page.waitForFunction(() => document.querySelectorAll('table.runs tbody tr').length === 2);
    // Sorting by a column, then the other way: both settings in one URL change.
    await page.locator('table.runs th button.sort', { hasText: 'Best val. acc.' }).click();
    await page.waitForURL(/sort=best_accuracy&order=desc/);
    await page.locator('table.runs th button.sort', { hasText: 'Best val. acc.' }).click();
    await page.waitForURL(/sort=best_accuracy&order=asc/);
    await page.waitForFunction(() => document.querySelectorAll('table.runs tbody tr').length === 2);
    const best = (await page.locator('table.runs tbody td:nth-child(6)').allTextContents()).map(parseFloat);
    assert.ok(best[0] <= best[1], `ascending best accuracy: ${best}`);

    // A long run is cancelled from its page; the epochs it finished stay.
    const long = await (await fetch(`${base}/api/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth },
      body: JSON.stringify({ epochs: 10000 }),
    })).json();
    const longRow = page.locator('table.runs tr', { has: page.locator(`a[href="/runs/${long.id}"]`) });
    await longRow.locator('.badge-running').waitFor({ timeout: 30_000 });
    await page.screenshot({ path: join(artifacts, '5b-run-list-live.png'), fullPage: true });
    await page.goto(`${base}/runs/${long.id}`);
    await page.locator(`${K_CHART} circle.point`).first().waitFor({ timeout: 60_000 });
    // Cancelling asks first.
    page.once('dialog', (dialog) => {
      assert.match(dialog.message(), /Cancel this run\?/);
      dialog.accept();
    });
    await page.locator('#cancel-run').click();
    await page.locator('.badge-cancelled').waitFor({ timeout: 30_000 });
    assert.equal(await page.locator('#cancel-run').count(), 0, 'no cancel button on an ended run');
    assert.ok((await pointCount(page, K_CHART)) >= 2, 'the finished epochs stay drawn');
    // Deleting asks first, then the run is gone.
    page.once('dialog', (dialog) => {
      assert.match(dialog.message(), new RegExp(`Delete run #${long.id}\\?`));
      dialog.accept();
    });
    await page.locator('#delete-run').click();
    await page.waitForURL((url) => url.pathname === '/');
    assert.equal((await fetch(`${base}/api/runs/${long.id}`, { headers: auth })).status, 404);

    // Projects: the owner renames one; the pickers show the new name.
    await page.goto(`${base}/projects`);
    const card = page.locator('section.project', { hasText: 'default' });
    await card.locator('.project-name').fill('vision lab');
    await card.locator('.rename-project').click();
    await page.locator('section.project[data-project="vision lab"]').waitFor();
    await page.locator('section.project .members li', { hasText: 'admin' }).first().waitFor();
    await page.screenshot({ path: join(artifacts, '5c-projects.png'), fullPage: true });
    await page.goto(`${base}/`);
    await page.locator('#field-project option', { hasText: 'vision lab' }).waitFor({ state: 'attached' });

    // A read-only link to the MLB run, opened by a browser that has never signed in.
    await page.goto(`${base}${runPath}`);
    await page.locator('.badge-completed').waitFor();
    await page.click('#share-run');
    await page.locator('.share-dialog .members li', { hasText: 'admin' }).waitFor();
    await page.click('#make-share-link');
    const link = await page.locator('#share-link').inputValue();
    await page.locator('#copy-share-link').click();
    await page.locator('#copy-share-link', { hasText: /Copied|by hand/ }).waitFor();
    await page.locator('.share-links li.share-active').waitFor();
    // The owner sees the project's activity: this link among it, and the run's creation.
    await page.locator('.audit-log li', { hasText: 'run shared' }).first().waitFor();
    assert.ok(await page.locator('.audit-log li', { hasText: 'run created' }).count() >= 1);
    await page.locator('.share-dialog').screenshot({ path: join(artifacts, '6a-share-dialog.png') });
    assert.match(link, new RegExp(`${runPath}\\?share=[0-9a-f]{64}$`));
    const stranger = await browser.newContext({ viewport: { width: 1280, height: 1500 } });
    const guest = await stranger.newPage();
    guest.on('pageerror', (e) => pageErrors.push(String(e)));
    await guest.goto(link);
    await guest.locator('.badge-completed').waitFor();
    await guest.waitForFunction(
      ({ chart, total }) => document.querySelectorAll(`${chart} circle.point`).length === total,
      { chart: K_CHART, total: 2 * EPOCHS },
    );
    assert.equal(new URL(guest.url()).pathname, runPath, 'no sign-in asked');
    assert.equal(await guest.locator('#share-run').count(), 0, 'read-only');
    await guest.screenshot({ path: join(artifacts, '6-shared-link.png'), fullPage: true });
    // Without the link's token, the same browser is asked to sign in.
    await guest.goto(`${base}${runPath}`);
    await guest.waitForURL(/\/login\?next=/);
    // Another signed-in user, in no project of admin's: the link opens the run, and without
    // it the run does not exist for them.
    const bob = await fetch(`${base}/api/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth },
      body: JSON.stringify({ name: 'bob', password: 'bob password 1' }),
    });
    assert.equal(bob.status, 201);
    const bobContext = await browser.newContext({ viewport: { width: 1280, height: 1200 } });
    const bobPage = await bobContext.newPage();
    await bobPage.goto(`${base}/login`);
    await bobPage.fill('#login-name', 'bob');
    await bobPage.fill('#login-password', 'bob password 1');
    await bobPage.click('#login-submit');
    await bobPage.locator('#signed-in-as', { hasText: 'bob' }).waitFor();
    // In no project yet: the start page asks for one first, then shows the form in it.
    await bobPage.locator('#first-project', { hasText: 'Welcome, bob' }).waitFor();
    await bobPage.screenshot({ path: join(artifacts, '6c-new-user.png'), fullPage: true });
    await bobPage.fill('#new-project-name', "bob's lab");
    await bobPage.click('#create-project');
    await bobPage.locator('#start-run').waitFor();
    await bobPage.locator('#field-project option', { hasText: "bob's lab" }).waitFor({ state: 'attached' });
    await bobPage.locator('#no-runs', { hasText: 'No runs yet' }).waitFor();
    await bobPage.goto(link);
    await bobPage.locator('.badge-completed').waitFor();
    assert.equal(await bobPage.locator('#share-run').count(), 0, 'read-only for bob too');
    await bobPage.screenshot({ path: join(artifacts, '6b-shared-link-other-user.png'), fullPage: true });
    await bobPage.goto(`${base}${runPath}`);
    await bobPage.locator('.form-message', { hasText: 'does not exist' }).waitFor();
    await bobContext.close();

    // Revoked, the link opens nothing.
    await page.locator('.share-links li.share-active button.revoke-link').click();
    await page.locator('.share-links li.share-revoked').waitFor();
    await guest.goto(link);
    await guest.waitForURL(/\/login\?next=/);
    await stranger.close();

    // Clone and edit: the form starts from the run's configuration; one change, one new run.
    await page.click('#clone-run');
    await page.waitForURL(/\/\?from=\d+/);
    await page.waitForFunction((epochs) => document.querySelector('#field-epochs').value === String(epochs), EPOCHS);
    assert.equal(await page.locator('#field-method').inputValue(), 'mlb');
    await page.fill('#field-epochs', '2');
    await page.fill('#field-seed', '5');
    await page.click('#start-run');
    await page.waitForURL(/\/runs\/\d+$/);
    const cloneId = new URL(page.url()).pathname.split('/').at(-1);
    const clone = await (await fetch(`${base}/api/runs/${cloneId}`, { headers: auth })).json();
    const original = await (await fetch(`${base}/api/runs/${runId}`, { headers: auth })).json();
    assert.deepEqual(
      { ...clone.config, epochs: EPOCHS, seed: 0 },
      original.config,
      'only the edited fields differ',
    );

    // A sweep: 2 methods x 2 seeds from one form, listed together under their tag.
    await page.goto(`${base}/`);
    await page.locator('#sweep summary').click();
    await page.locator('input.sweep-method[value="joint"]').check();
    await page.locator('input.sweep-method[value="mlb"]').check();
    await page.fill('#field-seeds', '0, x');
    await page.fill('#field-epochs', '2');
    await page.click('#start-run');
    await page.locator('.field-error[data-field="seeds"]').waitFor();
    await page.fill('#field-seeds', '0, 1');
    await page.locator('#start-run', { hasText: 'Start 4 runs' }).waitFor();
    await page.screenshot({ path: join(artifacts, '7-sweep-form.png'), fullPage: true });
    await page.click('#start-run');
    await page.waitForURL(/\/\?tag=sweep-\d+/);
    await page.waitForFunction(() => document.querySelectorAll('table.runs tbody tr').length === 4);
    const methods = await page.locator('table.runs tbody td:nth-child(3)').allInnerTexts();
    assert.deepEqual(methods.map((m) => m.split(/\s/)[0]).sort(), ['MLB', 'MLB', 'joint', 'joint']);

    // A narrow screen: nothing wider than the screen but the tables, which scroll inside.
    await page.setViewportSize({ width: 390, height: 844 });
    const narrow = [
      ['/', 'table.runs', '8-narrow-home.png'],
      [runPath, `${K_CHART} svg.plot`, '9-narrow-run.png'],
      ['/projects', 'section.project .members li', '9a-narrow-projects.png'],
    ];
    for (const [path, ready, name] of narrow) {
      await page.goto(`${base}${path}`);
      await page.locator(ready).first().waitFor();
      // The ticked runs' controls (tag, delete, compare) must fit too.
      if (path === '/') await page.locator('.select-run').first().check();
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${path} is ${overflow}px wider than a 390px screen`);
      await page.screenshot({ path: join(artifacts, name), fullPage: true });
    }

    assert.deepEqual(pageErrors, [], 'the page logged errors');
    console.log(`e2e: passed; screenshots in ${artifacts}`);
  } finally {
    await browser?.close();
    server.kill();
    rmSync(state, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
