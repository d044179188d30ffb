// A headless-Chromium driver for the browser test (browser_test.go): it
// reads one JSON command per line on stdin, runs it on the page as a
// person would (typing, clicking, choosing a file, drawing), and answers
// one JSON line on stdout ({"ok": true, ...} or {"ok": false, "error"}).
// It drives Debian's Chromium through puppeteer-core (no browser download).
//
// Commands:
//   {"do": "open", "url": "http://127.0.0.1:PORT/"}      load the page, wait for window.gridReady
//   {"do": "models"}                                     the model ids the page lists
//   {"do": "query", "model": "m", "values": "5, 3"}      type values, click Run, read the result
//   {"do": "query", "model": "m", "file": "/path.npy"}   choose a file instead
//   {"do": "query", "model": "m", "draw": [[x,y],...]}   draw a stroke (canvas units 0..1) instead
//   {"do": "api", "model": "m", "values": [5, 3], "n": 10}  window.grid.infer n times: results and ms
//   {"do": "screenshot", "path": "/path.png"}
//   {"do": "quit"}
import puppeteer from 'puppeteer-core'
import readline from 'node:readline'

const chromium = process.env.CHROMIUM ?? '/usr/bin/chromium'
const browser = await puppeteer.launch({
  executablePath: chromium,
  headless: true,
  args: ['--no-sandbox', '--headless=new', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-default-apps', '--disable-extensions']
})
const page = await browser.newPage()
await page.setViewport({ width: 1200, height: 900 })
const logs = []
page.on('console', m => logs.push(`console.${m.type()}: ${m.text()}`))
page.on('pageerror', e => logs.push(`pageerror: ${e.message}`))

const resultDone = () => ['ok', 'error'].includes(document.querySelector('#result').dataset.state)

async function readResult () {
  return page.$eval('#result', e => ({
    state: e.dataset.state,
    code: e.dataset.code ?? '',
    text: e.innerText,
    answer: e.querySelector('#answer')?.textContent ?? '',
    classes: e.querySelector('#answer')?.dataset.classes ?? '',
    output: e.dataset.output != null ? JSON.parse(e.dataset.output) : null,
    ms: e.dataset.ms != null ? Number(e.dataset.ms) : null
  }))
}

async function query (c) {
  await page.$eval('#model', (e, v) => { e.value = v; e.dispatchEvent(new Event('input')) }, c.model)
  await page.$eval('#result', e => { e.dataset.state = 'idle'; delete e.dataset.code; delete e.dataset.output; delete e.dataset.ms })
  if (c.file != null) {
    await page.click('.tab[data-tab=file]')
    const input = await page.$('#file')
    await input.uploadFile(c.file)
    await page.waitForFunction(() => document.querySelector('#file-info').textContent !== '', { timeout: 10000 })
  } else if (c.draw != null) {
    await page.click('.tab[data-tab=draw]')
    await page.click('#clear')
    const box = await (await page.$('#canvas')).boundingBox()
    const at = ([x, y]) => [box.x + x * box.width, box.y + y * box.height]
    await page.mouse.move(...at(c.draw[0]))
    await page.mouse.down()
    for (const p of c.draw.slice(1)) await page.mouse.move(...at(p), { steps: 8 })
    await page.mouse.up()
  } else {
    await page.click('.tab[data-tab=values]')
    await page.$eval('#values', e => { e.value = '' })
    await page.type('#values', c.values ?? '')
  }
  await page.click('#run')
  await page.waitForFunction(resultDone, { timeout: c.timeout ?? 60000 })
  return readResult()
}

async function api (c) {
  return page.evaluate(async (name, values, n) => {
    const out = []
    for (let i = 0; i < n; i++) {
      try {
        const r = await window.grid.infer(name, values)
        out.push({ output: r.output, shape: r.shape, ms: r.ms, stages: r.stages, onlineMs: r.onlineMs, rounds: r.rounds, bytes: r.bytes, upload: r.upload, holders: r.holders, dealer: r.dealer })
      } catch (err) {
        out.push({ error: err.message, code: err.code })
      }
    }
    return out
  }, c.model, c.values, c.n ?? 1)
}

async function run (c) {
  switch (c.do) {
    case 'open':
      await page.goto(c.url, { waitUntil: 'load' })
      await page.evaluate(() => window.gridReady)
      return { status: await page.$eval('#status', e => e.textContent) }
    case 'models':
      await page.click('#refresh')
      await page.waitForFunction(() => !document.querySelector('#refresh').disabled)
      return { models: await page.$$eval('#models tbody tr[data-model]', rows => rows.map(r => r.dataset.model)) }
    case 'query':
      return query(c)
    case 'api':
      return { results: await api(c) }
    case 'screenshot':
      await page.screenshot({ path: c.path, fullPage: c.fullPage ?? false })
      return {}
    default:
      throw new Error(`unknown command ${JSON.stringify(c.do)}`)
  }
}

const rl = readline.createInterface({ input: process.stdin })
for await (const line of rl) {
  if (line.trim() === '') continue
  let c
  try {
    c = JSON.parse(line)
  } catch (err) {
    process.stdout.write(JSON.stringify({ ok: false, error: `bad command: ${err.message}` }) + '\n')
    continue
  }
  if (c.do === 'quit') break
  try {
    const r = await run(c)
    process.stdout.write(JSON.stringify({ ok: true, ...r, logs: logs.splice(0) }) + '\n')
  } catch (err) {
    process.stdout.write(JSON.stringify({ ok: false, error: err.message, logs: logs.splice(0) }) + '\n')
  }
}
await browser.close()
