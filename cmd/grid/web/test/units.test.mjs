// Unit tests of the browser client's arithmetic and input handling, run by
// Node's test runner (npm test, or node --test test/units.test.mjs in
// cmd/grid/web): the TypeScript in src/ is bundled for Node with esbuild
// first. The vectors are the Go code's (mpcproto/fixed, mpcproto/tensorio,
// mpcproto/plan; repair_vectors.json is written by discovery's
// TestRepairVectors).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { build } from 'esbuild'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, '../../../..')

// load bundles src/NAME.ts for Node and imports it.
async function load (name) {
  const r = await build({
    entryPoints: [path.join(here, '..', 'src', name + '.ts')],
    bundle: true, format: 'esm', platform: 'node', write: false, logLevel: 'error'
  })
  return import('data:text/javascript;base64,' + Buffer.from(r.outputFiles[0].text).toString('base64'))
}

const fixed = await load('fixed')
const input = await load('input')
const manifest = await load('manifest')
const repair = await load('repair')
const M64 = 1n << 64n

test('encode matches mpcproto/fixed (TestEncodeDecodeTable)', () => {
  const cases = [
    [0, 0n], [1, 1n << 16n], [-1, M64 - (1n << 16n)], [0.5, 1n << 15n], [1022, 1022n << 16n],
    [2 ** -17, 1n], [-(2 ** -17), M64 - 1n], // halves round away from zero
    [3 * 2 ** -17, 2n], [-3 * 2 ** -17, M64 - 2n], [2 ** 47 - 1, (2n ** 47n - 1n) << 16n]
  ]
  for (const [v, want] of cases) {
    assert.equal(fixed.encode([v])[0], want, `encode(${v})`)
  }
  for (const v of [NaN, Infinity, -Infinity, 2 ** 47, -(2 ** 47), 1e300]) {
    assert.throws(() => fixed.encode([v]), fixed.EncodeError, `encode(${v})`)
  }
  assert.throws(() => fixed.encode([1, 2, Infinity]), /element 2/)
})

test('decode inverts encode within half a unit', () => {
  const xs = [0, 1.5, -2.25, 1000, -0.0001, 123.456, -789.25, 1e9, -1e9]
  const back = fixed.decode(fixed.encode(xs))
  xs.forEach((x, i) => assert.ok(Math.abs(back[i] - x) <= 0.5 / 65536, `${x} -> ${back[i]}`))
})

test('split gives n shares adding up to x mod 2^64, fresh each time', () => {
  const x = fixed.encode([5, 3, -1, 123.456])
  for (const n of [2, 3, 4, 7]) {
    const shares = fixed.split(x, n)
    assert.equal(shares.length, n)
    assert.deepEqual(fixed.reconstruct(shares), x)
    for (const s of shares) for (const w of s) assert.ok(w >= 0n && w < M64)
  }
  const a = fixed.split(x, 2)
  const b = fixed.split(x, 2)
  assert.notDeepEqual(a[0], b[0])
  assert.throws(() => fixed.split(x, 1))
})

test('reconstruct of holder shares decodes the seed answer', () => {
  const y = fixed.encode([1022])
  const s = fixed.split(y, 4)
  assert.equal(fixed.decode(fixed.reconstruct(s))[0], 1022)
})

test('little-endian words round trip as node/wire.go packs them', () => {
  const w = new BigUint64Array([1n, 0x0102030405060708n, M64 - 1n])
  const b = fixed.toLittleEndian(w)
  assert.deepEqual([...b.subarray(8, 16)], [8, 7, 6, 5, 4, 3, 2, 1])
  assert.deepEqual(fixed.fromLittleEndian(b), w)
  assert.throws(() => fixed.fromLittleEndian(new Uint8Array(7)))
})

test('parseValues and parseJSON read what tensorio reads', () => {
  assert.deepEqual(input.parseValues('5,3'), { shape: [2], data: [5, 3] })
  assert.deepEqual(input.parseValues(' 5, 3 \n 1e-3 '), { shape: [3], data: [5, 3, 0.001] })
  assert.throws(() => input.parseValues('5,x'), /item 2/)
  assert.throws(() => input.parseValues(''), /no values/)
  assert.deepEqual(input.parseJSON('[[1, 2], [3, 4]]'), { shape: [2, 2], data: [1, 2, 3, 4] })
  assert.deepEqual(input.parseJSON('{"shape": [2], "data": [5, 3]}'), { shape: [2], data: [5, 3] })
  assert.throws(() => input.parseJSON('[[1, 2], [3]]'), /rectangular/)
  assert.throws(() => input.parseJSON('{"shape": [3], "data": [5, 3]}'), /holds 3 values, got 2/)
  assert.throws(() => input.parseJSON('{"data": [5, 3]}'), /no "shape"/)
})

test('parseNPY reads testdata/digits_sample.npy like the CLI', async () => {
  const t = input.parseNPY(await readFile(path.join(root, 'testdata/digits_sample.npy')))
  const split = JSON.parse(await readFile(path.join(root, 'testdata/digits_test.json'), 'utf8'))
  assert.deepEqual(t.shape, [4, 64])
  assert.deepEqual(t.data.slice(0, 64), split.x[0])
  const cnn = input.parseNPY(await readFile(path.join(root, 'testdata/digits_sample_cnn.npy')))
  assert.deepEqual(cnn.shape, [4, 1, 8, 8])
  assert.throws(() => input.parseNPY(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])), /bad magic/)
})

test('fitFlat and fitFile accept the forms tensorio.Fit does', () => {
  // Flat: the plan's size, or whole samples with a free batch dimension.
  assert.deepEqual(input.fitFlat([5, 3], [2]), { x: { shape: [2], data: [5, 3] }, batch: 1, batched: false })
  assert.throws(() => input.fitFlat([1, 2, 3], [2]), /expects shape \[2\] \(2 values\), got 3 values/)
  assert.equal(input.fitFlat(new Array(128).fill(0), [-1, 64]).batch, 2)
  assert.throws(() => input.fitFlat(new Array(65).fill(0), [-1, 64]), /multiple of 64/)
  // File: one sample, a batch, rows of flattened samples.
  const img = { shape: [1, 8, 8], data: new Array(64).fill(0) }
  assert.deepEqual(input.fitFile(img, [-1, 1, 8, 8]).x.shape, [1, 1, 8, 8])
  assert.deepEqual(input.fitFile({ shape: [4, 64], data: new Array(256).fill(0) }, [-1, 1, 8, 8]).x.shape, [4, 1, 8, 8])
  assert.deepEqual(input.fitFile({ shape: [64], data: new Array(64).fill(0) }, [-1, 64]).x.shape, [1, 64])
  assert.deepEqual(input.fitFile({ shape: [1, 2], data: [5, 3] }, [2]), { x: { shape: [2], data: [5, 3] }, batch: 1, batched: false })
  assert.throws(() => input.fitFile({ shape: [3, 3], data: new Array(9).fill(0) }, [-1, 64]), /does not fit/)
})

test('outputCapped follows plan.OutputCapped', () => {
  const p = (nodes, output = 'y') => ({ input: { name: 'x', shape: [-1, 4] }, output, nodes })
  assert.equal(manifest.outputCapped(p([{ op: 'MatMul', inputs: ['x', 'W'], output: 'y' }])), true)
  assert.equal(manifest.outputCapped(p([{ op: 'MatMul', inputs: ['x', 'W'], output: 'h' }, { op: 'Relu', inputs: ['h'], output: 'r' }, { op: 'Flatten', inputs: ['r'], output: 'y' }])), true)
  assert.equal(manifest.outputCapped(p([{ op: 'MatMul', inputs: ['x', 'W'], output: 'h' }, { op: 'Add', inputs: ['h', 'h'], output: 'y' }])), false)
  assert.equal(manifest.outputCapped(p([{ op: 'MulConst', inputs: ['x'], output: 'y', attrs: { const: { shape: [], data: [3] } } }])), false)
  assert.equal(manifest.outputCapped(p([{ op: 'MulConst', inputs: ['x'], output: 'y', attrs: { const: { shape: [], data: [0.5] } } }])), true)
  assert.equal(manifest.outputCapped(p([{ op: 'Relu', inputs: ['x'], output: 'y' }])), false)
  assert.equal(manifest.outputCapped(p([
    { op: 'Conv', inputs: ['x', 'W'], output: 'a' }, { op: 'MatMul', inputs: ['x', 'V'], output: 'b' },
    { op: 'Concat', inputs: ['a', 'b'], output: 'y' }])), true)
  assert.equal(manifest.outputCapped(p([{ op: 'Conv', inputs: ['x', 'W'], output: 'a' }, { op: 'Concat', inputs: ['a', 'x'], output: 'y' }])), false)
})

test('latest keeps the newest version per model and drops tombstones', () => {
  const m = (id, v, deleted = false, owner = 'o') => ({ id, version: BigInt(v), deleted, owner })
  const got = manifest.latest([m('a', 1), m('a', 3), m('a', 2), m('b', 1), m('b', 2, true), m('c', 5, false, 'x'), m('c', 6, false, 'y')])
  assert.deepEqual(got.map(x => [x.id, Number(x.version), x.owner]), [['a', 3, 'o'], ['c', 5, 'x']])
})

test('finish applies a final Softmax or LogSoftmax as plan.Finish', () => {
  const y = [1, 2, 3, 1, 1, 1]
  manifest.finish({ op: 'Softmax', axes: [1] }, [2, 3], y)
  const e = [Math.exp(-2), Math.exp(-1), 1]
  const s = e[0] + e[1] + e[2]
  e.forEach((v, i) => assert.ok(Math.abs(y[i] - v / s) < 1e-12))
  y.slice(3).forEach(v => assert.ok(Math.abs(v - 1 / 3) < 1e-12))
  const z = [0, Math.log(3)]
  manifest.finish({ op: 'LogSoftmax', axes: [0] }, [2], z)
  assert.ok(Math.abs(z[0] - Math.log(1 / 4)) < 1e-12 && Math.abs(z[1] - Math.log(3 / 4)) < 1e-12)
  assert.throws(() => manifest.finish({ op: 'Softmax', axes: [0] }, [2, 3], [1, 2, 3, 4, 5, 6]), /trailing axes/)
})

test('repair chains verify and apply as discovery.Amend (repair_vectors.json)', async () => {
  const v = JSON.parse(await readFile(path.join(here, 'repair_vectors.json'), 'utf8'))
  const b64 = (s) => new Uint8Array(Buffer.from(s, 'base64'))
  const base = await manifest.openManifest(b64(v.envelope))
  assert.equal(base.repairGrace, 3600n * 10n ** 9n)
  assert.equal(base.repairCandidates.length, 3)
  assert.equal(base.repairSeq, 0n)
  const states = [base]
  for (const [i, raw] of v.chain.entries()) {
    const next = await repair.amend(states[i], repair.decodeRepair(b64(raw)))
    assert.equal(next.repairSeq, BigInt(v.after[i].seq))
    assert.deepEqual(next.holders, v.after[i].holders)
    assert.equal(next.sharesVersion, BigInt(v.after[i].shares_version))
    assert.equal(next.version, base.version)
    states.push(next)
  }
  const whole = await repair.applyChain(base, v.chain.map(b64))
  assert.equal(whole.refused, undefined)
  assert.deepEqual(whole.model.holders, v.after[1].holders)
  for (const c of v.refused) {
    await assert.rejects(repair.amend(states[c.at], repair.decodeRepair(b64(c.record))), (err) => {
      assert.ok(err.message.includes(c.error), `${c.name}: ${err.message} lacks ${JSON.stringify(c.error)}`)
      return true
    }, c.name)
  }
  // A chain stops at its first bad record; the model keeps the holders
  // of the last good one.
  const bad = v.refused.find(c => c.at === 1)
  const cut = await repair.applyChain(base, [b64(v.chain[0]), b64(bad.record), b64(v.chain[1])])
  assert.deepEqual(cut.model.holders, v.after[0].holders)
  assert.match(cut.refused, /invalid repair record/)
  // Replays and reordering fail; junk never throws anything but a ManifestError.
  assert.match((await repair.applyChain(base, [b64(v.chain[1])])).refused, /want seq 1/)
  assert.match((await repair.applyChain(base, [b64(v.chain[0]), b64(v.chain[0])])).refused, /want seq 2/)
  for (const junk of [new Uint8Array(0), new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0x0f]), new Uint8Array(20000)]) {
    assert.throws(() => repair.decodeRepair(junk), { name: 'ManifestError' })
  }
})
