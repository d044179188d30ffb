// The page a daemon serves at "/": built on the grid.js API (imported, not
// bundled, so the page and other web apps run the same module), and
// exposing its connection as window.grid.
import { connect, parseValues, parseJSON, parseNPY, shapeString, GridError, type Grid, type Model, type Tensor, type InferResult } from './grid.js'

declare global {
  interface Window {
    grid?: Grid
    /** gridReady resolves once window.grid is connected (for tests and scripts). */
    gridReady: Promise<Grid>
  }
}

const $ = <T extends HTMLElement>(sel: string): T => document.querySelector(sel) as T

const status = $('#status')
const tbody = $<HTMLTableSectionElement>('#models tbody')
const modelInput = $<HTMLInputElement>('#model')
const details = $('#details')
const valuesInput = $<HTMLTextAreaElement>('#values')
const fileInput = $<HTMLInputElement>('#file')
const fileInfo = $('#file-info')
const runButton = $<HTMLButtonElement>('#run')
const refreshButton = $<HTMLButtonElement>('#refresh')
const stage = $('#stage')
const result = $('#result')
const drawTab = $('#draw-tab')
const canvas = $<HTMLCanvasElement>('#canvas')
const preview = $<HTMLCanvasElement>('#preview')
const drawInfo = $('#draw-info')
const ink = $<HTMLInputElement>('#ink')

let grid: Grid | undefined
let models: Model[] = []
let tab = 'values'
let fileTensor: Tensor | undefined
let drawn = false

const short = (id: string): string => id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-6)}` : id

function el (tag: string, text?: string, cls?: string): HTMLElement {
  const e = document.createElement(tag)
  if (text != null) e.textContent = text
  if (cls != null) e.className = cls
  return e
}

function peerCell (ids: string[]): HTMLElement {
  const td = el('td')
  if (ids.length === 0) td.textContent = 'none'
  ids.forEach((id, i) => {
    const s = el('span', short(id), 'mono')
    s.title = id
    td.append(s)
    if (i < ids.length - 1) td.append(document.createTextNode(', '))
  })
  return td
}

function renderModels (): void {
  tbody.replaceChildren()
  if (models.length === 0) {
    const tr = el('tr')
    const td = el('td', 'No models on the network yet: publish one with "grid publish".', 'empty')
    ;(td as HTMLTableCellElement).colSpan = 7
    tr.append(td)
    tbody.append(tr)
    return
  }
  for (const m of models) {
    const tr = el('tr')
    tr.dataset.model = m.id
    if (m.id === modelInput.value) tr.classList.add('selected')
    const id = el('td', m.id)
    id.append(el('div', `v${m.version}`, 'hint'))
    const owner = el('td', short(m.owner), 'mono')
    owner.title = m.owner
    tr.append(id, owner, el('td', m.mode), peerCell(m.holders), peerCell(m.dealers), el('td', shapeString(m.inputShape), 'mono'), el('td', shapeString(m.outputShape), 'mono'))
    tr.addEventListener('click', () => select(m.id))
    tbody.append(tr)
  }
}

// imageShape is the [H, W] a canvas drawing is scaled to, for a model
// whose sample is one channel: [1, H, W], [H, W], or a flat square input.
function imageShape (m: Model): { h: number, w: number, flat: boolean } | undefined {
  const sample = m.inputShape[0] === -1 ? m.inputShape.slice(1) : m.inputShape
  if (sample.length === 3 && sample[0] === 1 && sample[1] >= 4 && sample[2] >= 4) return { h: sample[1], w: sample[2], flat: false }
  if (sample.length === 2 && sample[0] >= 4 && sample[1] >= 4) return { h: sample[0], w: sample[1], flat: false }
  if (sample.length === 1) {
    const r = Math.round(Math.sqrt(sample[0]))
    if (r >= 4 && r * r === sample[0]) return { h: r, w: r, flat: true }
  }
  return undefined
}

function select (id: string): void {
  modelInput.value = id
  showDetails()
  renderModels()
}

function showDetails (): void {
  const m = models.find(x => x.id === modelInput.value.trim())
  details.replaceChildren()
  if (m == null) {
    drawTab.hidden = true
    if (tab === 'draw') setTab('values')
    return
  }
  const line = (k: string, v: string): void => {
    const p = el('div')
    p.append(el('b', k + ' '), document.createTextNode(v))
    details.append(p)
  }
  line('owner', m.owner)
  line('mode', m.mode + (m.allowRemote ? '' : ' (remote inference disabled by its owner)'))
  line('holders', m.holders.map((h, i) => `${i}: ${h}`).join('  '))
  line('dealers', m.dealers.join('  ') || 'none (only the owner can query it)')
  if (m.replicas.length > 0) line('shares', `${m.replicas.length} replicated additive shares, any ${m.tolerate} holder(s) may be down: ${m.replicas.map((hs, i) => `${i}: ${hs.join(',')}`).join('  ')}`)
  if (m.final != null) line('final op', `${m.final.op}, applied in this browser after reconstruction`)
  line('input', `${shapeString(m.inputShape)}${m.inputShape[0] === -1 ? ' (N: any number of samples)' : ''}${m.inputRange > 0 ? `, values within ±${m.inputRange}` : ''}`)
  line('output', shapeString(m.outputShape))
  line('plan', m.planHash)
  const img = imageShape(m)
  drawTab.hidden = img == null
  if (img != null) drawInfo.textContent = `scaled to ${img.h}×${img.w}${img.flat ? ' (flattened)' : ''}`
  else if (tab === 'draw') setTab('values')
}

function setTab (name: string): void {
  tab = name
  document.querySelectorAll<HTMLElement>('.tab').forEach(b => b.classList.toggle('active', b.dataset.tab === name))
  document.querySelectorAll<HTMLElement>('.panel').forEach(p => { p.hidden = p.dataset.panel !== name })
}

document.querySelectorAll<HTMLElement>('.tab').forEach(b => b.addEventListener('click', () => setTab(b.dataset.tab as string)))
modelInput.addEventListener('input', () => { showDetails(); renderModels() })

fileInput.addEventListener('change', () => { void readFile() })

async function readFile (): Promise<void> {
  fileTensor = undefined
  const f = fileInput.files?.[0]
  if (f == null) { fileInfo.textContent = ''; return }
  try {
    if (f.size > 64 << 20) throw new Error(`${f.name} is ${f.size} bytes, over the 64 MiB limit`)
    if (f.name.toLowerCase().endsWith('.npy')) fileTensor = parseNPY(new Uint8Array(await f.arrayBuffer()))
    else if (f.name.toLowerCase().endsWith('.json')) fileTensor = parseJSON(await f.text())
    else throw new Error(`unknown input format of ${f.name} (want .json or .npy)`)
    fileInfo.textContent = `${f.name}: shape ${JSON.stringify(fileTensor.shape)}, ${fileTensor.data.length} values`
  } catch (err: any) {
    fileInfo.textContent = err.message
  }
}

// ---- drawing ----
const ctx = canvas.getContext('2d', { willReadFrequently: true }) as CanvasRenderingContext2D
function clearCanvas (): void {
  ctx.fillStyle = '#000'
  ctx.fillRect(0, 0, canvas.width, canvas.height)
  const p = preview.getContext('2d') as CanvasRenderingContext2D
  p.fillStyle = '#000'
  p.fillRect(0, 0, preview.width, preview.height)
  drawn = false
}
clearCanvas()
let last: { x: number, y: number } | undefined
const pos = (e: PointerEvent): { x: number, y: number } => {
  const r = canvas.getBoundingClientRect()
  return { x: (e.clientX - r.left) * canvas.width / r.width, y: (e.clientY - r.top) * canvas.height / r.height }
}
canvas.addEventListener('pointerdown', e => { canvas.setPointerCapture(e.pointerId); last = pos(e); stroke(last, last) })
canvas.addEventListener('pointermove', e => { if (last != null) { const p = pos(e); stroke(last, p); last = p } })
canvas.addEventListener('pointerup', () => { last = undefined; drawValues() })
canvas.addEventListener('pointerleave', () => { if (last != null) { last = undefined; drawValues() } })
$('#clear').addEventListener('click', () => { clearCanvas(); valuesInput.value = '' })
ink.addEventListener('change', () => { if (drawn) drawValues() })

function stroke (a: { x: number, y: number }, b: { x: number, y: number }): void {
  ctx.strokeStyle = '#fff'
  ctx.lineWidth = canvas.width / 11
  ctx.lineCap = 'round'
  ctx.lineJoin = 'round'
  ctx.beginPath()
  ctx.moveTo(a.x, a.y)
  ctx.lineTo(b.x, b.y)
  ctx.stroke()
  drawn = true
}

// drawValues scales the drawing to the model's H×W: the ink's bounding
// box, made square and centred, averaged over each cell (so a cell's value
// is the fraction of it inked times "full ink"), like the 8×8 digits that
// count the pixels of a 32×32 bitmap per 4×4 block.
function drawValues (): number[] | undefined {
  const m = models.find(x => x.id === modelInput.value.trim())
  const img = m != null ? imageShape(m) : undefined
  if (img == null || !drawn) return undefined
  const { width: W, height: H } = canvas
  const px = ctx.getImageData(0, 0, W, H).data
  let x0 = W; let y0 = H; let x1 = -1; let y1 = -1
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      if (px[4 * (y * W + x)] > 32) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y) }
    }
  }
  if (x1 < 0) return undefined
  const side = Math.max(x1 - x0 + 1, y1 - y0 + 1)
  const cx = (x0 + x1 + 1) / 2; const cy = (y0 + y1 + 1) / 2
  const full = Number(ink.value) || 16
  const out: number[] = []
  const p = preview.getContext('2d') as CanvasRenderingContext2D
  const cw = preview.width / img.w; const ch = preview.height / img.h
  for (let r = 0; r < img.h; r++) {
    for (let c = 0; c < img.w; c++) {
      // the cell's square in canvas pixels, sampled on a 4×4 grid per pixel row
      const sx0 = cx - side / 2 + c * side / img.w; const sy0 = cy - side / 2 + r * side / img.h
      let sum = 0; let n = 0
      const steps = Math.max(4, Math.ceil(side / img.w))
      for (let j = 0; j < steps; j++) {
        for (let i = 0; i < steps; i++) {
          const x = Math.floor(sx0 + (i + 0.5) * side / img.w / steps); const y = Math.floor(sy0 + (j + 0.5) * side / img.h / steps)
          n++
          if (x >= 0 && y >= 0 && x < W && y < H) sum += px[4 * (y * W + x)] / 255
        }
      }
      const v = Math.round(full * sum / n * 100) / 100
      out.push(v)
      const g = Math.round(255 * Math.min(1, sum / n))
      p.fillStyle = `rgb(${g},${g},${g})`
      p.fillRect(c * cw, r * ch, cw, ch)
    }
  }
  valuesInput.value = out.join(', ')
  return out
}

// ---- queries ----
function input (): { values: number[] | Tensor, shape?: number[] } {
  if (tab === 'file') {
    if (fileTensor == null) throw new GridError('BAD_INPUT', 'bad input: choose a .json or .npy file first' + (fileInfo.textContent !== '' ? ` (${fileInfo.textContent})` : ''))
    return { values: fileTensor }
  }
  if (tab === 'draw') {
    const v = drawValues()
    if (v == null) throw new GridError('BAD_INPUT', 'bad input: draw something first')
    return { values: v }
  }
  try {
    return { values: parseValues(valuesInput.value).data }
  } catch (err: any) {
    throw new GridError('BAD_INPUT', `bad input: ${err.message}`)
  }
}

function argmax (xs: number[]): number {
  let best = 0
  xs.forEach((v, i) => { if (v > xs[best]) best = i })
  return best
}

const fmt = (v: number): string => Number.isInteger(v) ? String(v) : v.toFixed(4).replace(/0+$/, '').replace(/\.$/, '')

function showResult (r: InferResult): void {
  result.dataset.state = 'ok'
  result.replaceChildren()
  const answer = el('div', '', 'answer')
  answer.id = 'answer'
  const classes = r.shape.length > 0 ? r.shape[r.shape.length - 1] : 1
  const rows = r.output.length / classes
  if (classes >= 2 && r.output.length > 1) {
    const cls: number[] = []
    for (let i = 0; i < rows; i++) cls.push(argmax(r.output.slice(i * classes, (i + 1) * classes)))
    answer.append(document.createTextNode(rows === 1 ? 'class ' : 'classes '))
    answer.append(el('span', cls.join(', '), 'cls'))
    answer.dataset.classes = cls.join(',')
  } else {
    answer.textContent = r.output.map(fmt).join(', ')
  }
  result.append(answer)
  const t = el('table')
  const add = (k: string, v: string | HTMLElement): void => {
    const tr = el('tr')
    const td = el('td')
    td.append(v)
    tr.append(el('td', k), td)
    t.append(tr)
  }
  add('output', el('span', `${JSON.stringify(r.shape)} ${r.output.length > 40 ? r.output.slice(0, 40).map(fmt).join(', ') + ', …' : r.output.map(fmt).join(', ')}`, 'mono'))
  const hs = el('div')
  r.holders.forEach((h, i) => hs.append(el('div', `holder ${i}: ${h}`, 'mono')))
  add('holders', hs)
  add('dealer', el('span', r.dealer, 'mono'))
  add('rounds', String(r.rounds))
  add('bytes', `${r.bytes} B between holders (busiest holder, sent + received); ${r.upload} B of input shares sent by this browser`)
  add('time', `${r.ms.toFixed(1)} ms (holders online ${r.onlineMs.toFixed(1)} ms)`)
  result.append(t)
  result.dataset.ms = String(r.ms)
  result.dataset.output = JSON.stringify(r.output)
}

function showError (err: any): void {
  result.dataset.state = 'error'
  result.replaceChildren()
  const code = err instanceof GridError ? err.code : 'INTERNAL'
  result.dataset.code = code
  result.append(el('div', err.message ?? String(err), 'message'))
  const hint: Record<string, string> = {
    UNKNOWN_MODEL: 'Check the name against the list above (Refresh fetches the catalog again).',
    UNREACHABLE: 'A peer the query needs could not be reached: is its daemon running, with a /ws listen address?',
    BUSY: 'A holder serves its maximum of sessions: try again in a moment.',
    BAD_INPUT: 'Nothing was sent.',
    NO_DEALER: 'The model can only be queried through a dealer its owner names.',
    UNTRUSTED_DEALER: 'Holders accept only the dealers the model\'s owner names.',
    REMOTE_DISABLED: 'The model\'s owner does not allow remote queries.',
    OVERFLOW: 'The fixed-point range (±1.07e9 per product) was exceeded.'
  }
  if (hint[code] != null) result.append(el('div', hint[code], 'hint'))
}

async function run (): Promise<void> {
  if (grid == null) return
  const name = modelInput.value.trim()
  runButton.disabled = true
  result.dataset.state = 'running'
  result.replaceChildren(el('span', 'Running…', 'hint'))
  try {
    if (name === '') throw new GridError('BAD_INPUT', 'bad input: no model named: pick one above or type its name')
    const { values, shape } = input()
    const r = await grid.infer(name, values, { shape, onStage: s => { stage.textContent = s } })
    showResult(r)
  } catch (err: any) {
    showError(err)
  } finally {
    stage.textContent = ''
    runButton.disabled = false
  }
}
runButton.addEventListener('click', () => { void run() })

async function refresh (): Promise<void> {
  if (grid == null) return
  refreshButton.disabled = true
  try {
    models = await grid.models()
    const refused = $('#refused')
    refused.hidden = grid.refused.length === 0
    refused.textContent = `${grid.refused.length} manifest(s) refused: ${grid.refused.join('; ')}`
    if (modelInput.value === '' && models.length > 0) modelInput.value = models[0].id
    renderModels()
    showDetails()
  } catch (err: any) {
    status.dataset.state = 'error'
    status.textContent = `catalog: ${err.message}`
  } finally {
    refreshButton.disabled = false
  }
}
refreshButton.addEventListener('click', () => { void refresh() })

window.gridReady = (async () => {
  try {
    grid = await connect()
  } catch (err: any) {
    status.dataset.state = 'error'
    status.textContent = err.message
    throw err
  }
  window.grid = grid
  status.dataset.state = 'connected'
  status.textContent = `this browser is peer ${grid.peerId}, connected over libp2p WebSockets to daemon ${grid.daemon}`
  runButton.disabled = false
  await refresh()
  return grid
})()
window.gridReady.catch(() => {})
