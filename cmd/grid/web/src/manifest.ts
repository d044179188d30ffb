// Signed model manifests, verified in the browser as discovery.Open does:
// a libp2p signed envelope (domain "grid-manifest", payload type
// "/grid/manifest/1") whose signature verifies, whose payload decodes to a
// valid manifest, and whose signer is the manifest's owner; the plan in it
// must hash (SHA-256) to its plan hash.
import { RecordEnvelope } from '@libp2p/peer-record'
import { peerIdFromMultihash, peerIdFromPublicKey } from '@libp2p/peer-id'
import * as Digest from 'multiformats/hashes/digest'
import { Manifest as PbManifest } from './pb/manifest.js'
import { SAFE_RANGE, FRAC } from './fixed.js'

export const MANIFEST_DOMAIN = 'grid-manifest'
export const MANIFEST_CODEC = '/grid/manifest/1'
/** MAX_MANIFEST_SIZE caps an envelope (discovery.MaxManifestSize). */
export const MAX_MANIFEST_SIZE = 1 << 20
/** MAX_HOLDERS caps a manifest's holders (discovery.MaxHolders). */
export const MAX_HOLDERS = 64
const MAX_DEALERS = 16
const MAX_RANK = 8

/** A Model is a verified, live manifest as the API gives it. */
export interface Model {
  id: string
  owner: string
  mode: 'mpc' | 'plain'
  holders: string[]
  dealers: string[]
  /** inputShape is the plan's input shape; -1 is a free batch dimension. */
  inputShape: number[]
  outputShape: number[]
  version: bigint
  sharesVersion: bigint
  allowRemote: boolean
  inputRange: number
  planHash: string
  time: Date
  deleted: boolean
  /** outputCapped: a correct output is at most SAFE_RANGE (overflow is detectable). */
  outputCapped: boolean
  /** tolerate is F, the holders that may be down (replicated sharing); 0: one share per holder. */
  tolerate: number
  /** replicas: share i is held by the holders replicas[i] (indices into holders); empty without replication. */
  replicas: number[][]
  /** final: an op the client applies after reconstructing the output (a last Softmax). */
  final?: { op: string, axes: number[] }
  /** repairGrace (ns): the owner's repair policy; 0: the holders may not replace a lost holder. */
  repairGrace: bigint
  /** repairCandidates: the only peers a repair may bring in; empty: any peer not the owner, a dealer or a holder. */
  repairCandidates: string[]
  /** repairSeq: how many repair records amend the owner's manifest (see repair.ts). */
  repairSeq: bigint
}

/** MAX_SHARES caps the shares of a replicated model (discovery.MaxShares). */
export const MAX_SHARES = 256

/** shareHolders is replicas, or share i held by holder i alone (discovery's ShareHolders). */
export function shareHolders (m: Model): number[][] {
  return m.replicas.length > 0 ? m.replicas : m.holders.map((_, i) => [i])
}

/** ManifestError is an envelope refused by the browser's checks. */
export class ManifestError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ManifestError'
  }
}

/** peerFromBytes decodes a peer ID from its wire bytes (a multihash). */
export function peerFromBytes (b: Uint8Array): string {
  return peerIdFromMultihash(Digest.decode(b)).toString()
}

const idPattern = /^[A-Za-z0-9][A-Za-z0-9._-]*$/

function hex (b: ArrayBuffer): string {
  return [...new Uint8Array(b)].map(x => x.toString(16).padStart(2, '0')).join('')
}

/**
 * openManifest verifies one envelope and returns its model. It throws a
 * ManifestError naming what failed.
 */
export async function openManifest (envelope: Uint8Array): Promise<Model> {
  if (envelope.length > MAX_MANIFEST_SIZE) throw new ManifestError(`envelope of ${envelope.length} bytes, cap ${MAX_MANIFEST_SIZE}`)
  let env: RecordEnvelope
  try {
    env = await RecordEnvelope.openAndCertify(envelope, MANIFEST_DOMAIN)
  } catch (err: any) {
    throw new ManifestError(`invalid manifest envelope: ${err.message ?? err}`)
  }
  const payloadType = new TextDecoder().decode(env.payloadType)
  if (payloadType !== MANIFEST_CODEC) throw new ManifestError(`envelope payload type ${JSON.stringify(payloadType)}, want ${MANIFEST_CODEC}`)
  let p: PbManifest
  try {
    p = PbManifest.decode(env.payload)
  } catch (err: any) {
    throw new ManifestError(`decode manifest: ${err.message ?? err}`)
  }
  const signer = peerIdFromPublicKey(env.publicKey).toString()
  let m: Model
  try {
    m = {
      id: p.id,
      owner: peerFromBytes(p.owner),
      mode: p.mode as 'mpc' | 'plain',
      holders: p.holders.map(peerFromBytes),
      dealers: p.dealers.map(peerFromBytes),
      inputShape: p.inputShape.map(Number),
      outputShape: p.outputShape.map(Number),
      version: p.version,
      sharesVersion: p.sharesVersion === 0n ? p.version : p.sharesVersion,
      allowRemote: p.allowRemote,
      inputRange: p.inputRange,
      planHash: p.planHash,
      time: new Date(Number(p.timeUnixNano / 1000000n)),
      deleted: p.deleted,
      outputCapped: false,
      tolerate: p.tolerate,
      replicas: p.shares.map(s => s.holders),
      repairGrace: p.repairGraceNanos,
      repairCandidates: p.repairCandidates.map(peerFromBytes),
      repairSeq: 0n
    }
  } catch (err: any) {
    throw new ManifestError(`manifest ${JSON.stringify(p.id)}: bad peer ID: ${err.message ?? err}`)
  }
  if (signer !== m.owner) throw new ManifestError(`manifest ${JSON.stringify(m.id)}: signed by ${signer}, owner ${m.owner}`)
  await validate(m, p.plan)
  return m
}

// validate checks the fields as discovery.Manifest.Validate does, the
// plan's hash, and reads the plan's input shape and whether its output is
// capped.
async function validate (m: Model, plan: Uint8Array): Promise<void> {
  const bad = (why: string): never => { throw new ManifestError(`manifest ${JSON.stringify(m.id)}: ${why}`) }
  if (m.id.length === 0 || m.id.length > 128 || !idPattern.test(m.id)) bad('invalid model id')
  if (m.version === 0n) bad('version must be at least 1')
  if (m.deleted) return
  if (m.mode === 'mpc') {
    if (m.holders.length < 2) bad(`mpc mode needs at least 2 holders, got ${m.holders.length}`)
  } else if (m.mode === 'plain') {
    if (m.holders.length !== 1) bad(`plain mode needs exactly 1 host, got ${m.holders.length}`)
  } else {
    bad(`mode ${JSON.stringify(m.mode)}, want "mpc" or "plain"`)
  }
  if (m.holders.length > MAX_HOLDERS || new Set(m.holders).size !== m.holders.length) bad('holders named twice or too many')
  if (m.dealers.length > MAX_DEALERS || new Set(m.dealers).size !== m.dealers.length) bad('dealers named twice or too many')
  if (m.dealers.some(d => m.holders.includes(d))) bad('a dealer is also a holder')
  if (m.dealers.length > 0 && m.mode !== 'mpc') bad(`dealers named for a ${m.mode}-mode model`)
  if (m.sharesVersion > m.version) bad('shares version newer than the manifest')
  if (!Number.isFinite(m.inputRange) || m.inputRange < 0) bad(`input range ${m.inputRange}`)
  validateShares(m, bad)
  validateRepairPolicy(m, bad)
  const shapeOK = (s: number[], batch: boolean): boolean => s.length > 0 && s.length <= MAX_RANK && s.every((d, i) => (d >= 1 && d <= 2 ** 31) || (d === -1 && i === 0 && batch))
  if (!shapeOK(m.inputShape, true)) bad(`input shape ${JSON.stringify(m.inputShape)}`)
  if (!shapeOK(m.outputShape, false)) bad(`output shape ${JSON.stringify(m.outputShape)}`)
  if (!/^[0-9a-f]{64}$/.test(m.planHash)) bad(`plan hash ${JSON.stringify(m.planHash)} is not 64 lowercase hex digits`)
  if (plan.length === 0) bad('empty plan')
  const got = hex(await crypto.subtle.digest('SHA-256', plan as Uint8Array<ArrayBuffer>))
  if (got !== m.planHash) bad(`plan hash ${m.planHash} does not match the plan (sha256 ${got})`)
  let parsed: Plan
  try {
    parsed = JSON.parse(new TextDecoder().decode(plan))
  } catch (err: any) {
    return bad(`plan: ${err.message}`)
  }
  if (!Array.isArray(parsed?.input?.shape)) bad('plan has no input shape')
  const planInput = parsed.input.shape
  if (planInput.length !== m.inputShape.length || planInput.some((d, i) => d !== m.inputShape[i])) {
    bad(`plan input shape ${JSON.stringify(planInput)} differs from the manifest's ${JSON.stringify(m.inputShape)}`)
  }
  m.outputCapped = outputCapped(parsed)
  if (parsed.final != null) {
    const f = parsed.final
    if ((f.op !== 'Softmax' && f.op !== 'LogSoftmax') || !Array.isArray(f.axes) || f.axes.length === 0) bad(`plan's final op ${JSON.stringify(f)}`)
    m.final = { op: f.op, axes: f.axes }
  }
}

// validateShares checks the replication as discovery's validateShares:
// none, or (mpc mode) 0 < tolerate <= N-2 with 2 to MAX_SHARES shares,
// each held by at least tolerate+1 distinct holders, every holder holding
// one and none holding them all.
function validateShares (m: Model, bad: (why: string) => never): void {
  const n = m.holders.length
  if (m.tolerate === 0 && m.replicas.length === 0) return
  if (m.mode !== 'mpc') bad(`replicated shares for a ${m.mode}-mode model`)
  if (m.tolerate < 1 || m.tolerate > n - 2) bad(`tolerate ${m.tolerate} with ${n} holders`)
  if (m.replicas.length < 2 || m.replicas.length > MAX_SHARES) bad(`${m.replicas.length} shares`)
  const count = new Array<number>(n).fill(0)
  m.replicas.forEach((hs, i) => {
    if (hs.length < m.tolerate + 1) bad(`share ${i} has ${hs.length} holders, tolerate ${m.tolerate} needs ${m.tolerate + 1}`)
    hs.forEach((j, k) => {
      if (!Number.isInteger(j) || j < 0 || j >= n) bad(`share ${i}: holder index ${j} of ${n}`)
      if (hs.slice(0, k).includes(j)) bad(`share ${i} names holder ${j} twice`)
      count[j]++
    })
  })
  count.forEach((c, j) => {
    if (c === 0) bad(`holder ${j} holds no share`)
    if (c === m.replicas.length) bad(`holder ${j} holds every share`)
  })
}

// validateRepairPolicy checks the repair policy as discovery's
// validateRepairPolicy: grace >= 0; no candidates without a grace; a
// policy needs an mpc model with tolerate >= 1 and at most
// MAX_REPAIR_CANDIDATES distinct candidates.
function validateRepairPolicy (m: Model, bad: (why: string) => never): void {
  if (m.repairGrace < 0n) bad(`repair grace ${m.repairGrace} is negative`)
  if (m.repairGrace === 0n) {
    if (m.repairCandidates.length > 0) bad('repair candidates without a repair grace')
    return
  }
  if (m.mode !== 'mpc' || m.tolerate < 1) bad(`a repair policy needs an mpc model with tolerate >= 1 (${m.mode}, tolerate ${m.tolerate})`)
  const cs = m.repairCandidates
  if (cs.length > MAX_REPAIR_CANDIDATES || new Set(cs).size !== cs.length) bad('repair candidates named twice or too many')
}

/** MAX_REPAIR_CANDIDATES caps a repair policy's candidates (discovery.MaxRepairCandidates). */
export const MAX_REPAIR_CANDIDATES = 16

/**
 * finish applies the plan's final op (Softmax or LogSoftmax over the
 * trailing axes from axes[0]) to a reconstructed output, in place, as
 * plan.Finish does.
 */
export function finish (final: { op: string, axes: number[] }, shape: number[], y: number[]): void {
  const first = final.axes[0]
  const last = final.axes[final.axes.length - 1]
  if (last >= shape.length || shape.slice(last + 1).reduce((a, b) => a * b, 1) !== 1) {
    throw new Error(`final ${final.op}: axes ${JSON.stringify(final.axes)} are not the trailing axes of output shape ${JSON.stringify(shape)}`)
  }
  const inner = shape.slice(first).reduce((a, b) => a * b, 1)
  for (let o = 0; o < y.length; o += inner) {
    const row = y.slice(o, o + inner)
    const top = Math.max(...row)
    const sum = row.reduce((a, v) => a + Math.exp(v - top), 0)
    row.forEach((v, i) => {
      y[o + i] = final.op === 'LogSoftmax' ? v - top - Math.log(sum) : Math.exp(v - top) / sum
    })
  }
}

interface PlanNode {
  op: string
  inputs: string[]
  output: string
  attrs?: { value?: number, const?: { data: number[] } }
}

interface Plan {
  input: { name: string, shape: number[] }
  output: string
  nodes: PlanNode[]
  final?: { op: string, axes: number[] }
}

/**
 * outputCapped is plan.OutputCapped: the output is a truncation's result
 * (MatMul, Conv, Mul, a non-integer MulConst, the average pools), passed
 * only through ops that do not grow it (Relu, MaxPool, reshapes,
 * transposes, slices, gathers, concatenations of such values, a small
 * Pad). Then a decoded output beyond SAFE_RANGE proves an overflow. An op
 * this list does not know is not capped (no overflow is reported).
 */
export function outputCapped (p: Plan): boolean {
  const capped = new Map<string, boolean>()
  const scale = 2 ** FRAC
  const mag = (x: number): number => Math.max(Math.abs(x), Math.abs(Math.round(x * scale) / scale))
  for (const n of p.nodes ?? []) {
    const input = capped.get(n.inputs?.[0]) ?? false
    let c = false
    switch (n.op) {
      case 'MatMul': case 'Conv': case 'Mul': case 'AveragePool': case 'GlobalAveragePool':
        c = true
        break
      case 'MulConst': {
        const data = n.attrs?.const?.data ?? []
        c = !data.every(v => v === Math.trunc(v) && Math.abs(v) < 2 ** 31)
        break
      }
      case 'Relu': case 'MaxPool': case 'Flatten': case 'Reshape': case 'Identity':
      case 'Transpose': case 'Slice': case 'Gather':
        c = input
        break
      case 'Concat':
        c = (n.inputs ?? []).every(x => capped.get(x) ?? false)
        break
      case 'Pad':
        c = input && mag(n.attrs?.value ?? 0) <= SAFE_RANGE
        break
    }
    capped.set(n.output, c)
  }
  return capped.get(p.output) ?? false
}

/**
 * latest keeps, per model id, the manifest of the highest version (the
 * first owner seen keeps the name, as the serving daemon's registry does),
 * and drops the ids whose latest version is a tombstone.
 */
export function latest (models: Model[]): Model[] {
  const by = new Map<string, Model>()
  for (const m of models) {
    const cur = by.get(m.id)
    if (cur == null || (cur.owner === m.owner && m.version > cur.version)) by.set(m.id, m)
  }
  return [...by.values()].filter(m => !m.deleted).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
}
