// Repair records, verified in the browser as discovery's Repair.Verify and
// Manifest.Amend do. A repair replaces up to tolerate holders of a model
// whose owner-signed manifest has a repair policy; it is valid when every
// holder of the new list signed "grid-repair" || 0x00 || its body with its
// identity key (ed25519, inlined in its peer ID) and it follows the
// manifest it amends. The catalog carries each model's chain of records
// next to the owner's envelope; applyChain gives the current holders.
import { peerIdFromString } from '@libp2p/peer-id'
import { RepairBody, RepairRecord } from './pb/manifest.js'
import { ManifestError, MAX_HOLDERS, peerFromBytes, type Model } from './manifest.js'

/** REPAIR_DOMAIN separates repair signatures (discovery.RepairDomain). */
export const REPAIR_DOMAIN = 'grid-repair'
/** MAX_REPAIR_SIZE caps one record (discovery.MaxRepairSize). */
export const MAX_REPAIR_SIZE = 16 << 10
/** MAX_REPAIR_CHAIN caps the records on top of one owner manifest (discovery's maxRepairChain). */
export const MAX_REPAIR_CHAIN = 64
const MAX_SIG = 512

/** A Repair is a decoded repair record (discovery.Repair). */
export interface Repair {
  model: string
  owner: string
  base: bigint
  seq: bigint
  prevHolders: string[]
  holders: string[]
  sharesVersion: bigint
  timeUnixNano: bigint
  /** body: the signed body, as received. */
  body: Uint8Array
  /** sigs: signer peer ID -> signature. */
  sigs: Map<string, Uint8Array>
}

const fail = (why: string): never => { throw new ManifestError(`invalid repair record: ${why}`) }

/** decodeRepair decodes a record within discovery's limits; it throws a ManifestError. */
export function decodeRepair (b: Uint8Array): Repair {
  if (b.length > MAX_REPAIR_SIZE) fail(`${b.length} bytes, cap ${MAX_REPAIR_SIZE}`)
  let rec: RepairRecord
  let body: RepairBody
  try {
    rec = RepairRecord.decode(b, { limits: { sigs: MAX_HOLDERS } })
    body = RepairBody.decode(rec.body, { limits: { prevHolders: MAX_HOLDERS, holders: MAX_HOLDERS } })
  } catch (err: any) {
    return fail(`decode: ${err.message ?? err}`)
  }
  const peers = (what: string, bs: Uint8Array[]): string[] => bs.map((x, i) => {
    try {
      return peerFromBytes(x)
    } catch (err: any) {
      return fail(`${what} ${i}: ${err.message ?? err}`)
    }
  })
  const r: Repair = {
    model: body.model,
    owner: peers('owner', [body.owner])[0],
    base: body.base,
    seq: body.seq,
    prevHolders: peers('previous holder', body.prevHolders),
    holders: peers('holder', body.holders),
    sharesVersion: body.sharesVersion,
    timeUnixNano: body.timeUnixNano,
    body: rec.body,
    sigs: new Map()
  }
  for (const [i, s] of peers('signer', rec.sigs.map(s => s.signer)).entries()) {
    const sig = rec.sigs[i].signature
    if (r.sigs.has(s)) fail(`two signatures of ${s}`)
    if (sig.length === 0 || sig.length > MAX_SIG) fail(`signature of ${s} has ${sig.length} bytes`)
    r.sigs.set(s, sig)
  }
  return r
}

/**
 * amend verifies r against m, the model's current manifest (the owner's,
 * amended by the records before r), and returns the amended manifest:
 * m with r's holders and shares version and repairSeq = r.seq. It throws
 * a ManifestError with discovery's wording.
 */
export async function amend (m: Model, r: Repair): Promise<Model> {
  const bad = (why: string): never => fail(`${JSON.stringify(r.model)} seq ${r.seq}: ${why}`)
  checkChain(m, r, bad)
  checkHolders(m, r, bad)
  await checkSigs(r, bad)
  return { ...m, holders: [...r.holders], sharesVersion: r.sharesVersion, repairSeq: r.seq }
}

// checkChain: r follows m (discovery's checkChain).
function checkChain (m: Model, r: Repair, bad: (why: string) => never): void {
  if (r.model !== m.id) bad(`amends model ${JSON.stringify(m.id)}`)
  if (r.owner !== m.owner) bad(`owner ${r.owner}, manifest owner ${m.owner}`)
  if (m.deleted) bad('model unpublished')
  if (m.mode !== 'mpc') bad(`a ${m.mode}-mode model cannot be repaired`)
  if (m.repairGrace <= 0n) bad(`the owner's manifest (version ${m.version}) allows no repair`)
  if (r.base !== m.version) bad(`amends version ${r.base}, manifest version ${m.version}`)
  if (r.seq !== m.repairSeq + 1n) bad(`want seq ${m.repairSeq + 1n}`)
  const same = r.prevHolders.length === m.holders.length && r.prevHolders.every((h, i) => h === m.holders[i])
  if (!same) bad(`previous holders ${r.prevHolders.join(',')}, manifest holders ${m.holders.join(',')}`)
  if (r.sharesVersion <= m.sharesVersion) bad(`shares version ${r.sharesVersion} not newer than ${m.sharesVersion}`)
  if (r.timeUnixNano === 0n) bad('time not set')
}

// checkHolders: the new holder list follows m's policy (discovery's
// checkHolders and newcomerAllowed).
function checkHolders (m: Model, r: Repair, bad: (why: string) => never): void {
  if (r.holders.length !== m.holders.length) bad(`${r.holders.length} holders, manifest has ${m.holders.length}`)
  let replaced = 0
  r.holders.forEach((h, i) => {
    if (r.holders.slice(0, i).includes(h)) bad(`holder ${h} named twice`)
    if (h === m.holders[i]) return
    replaced++
    const why = h === m.owner
      ? 'is the owner'
      : m.dealers.includes(h)
        ? 'is a dealer'
        : m.holders.includes(h)
          ? 'is already a holder'
          : m.repairCandidates.length > 0 && !m.repairCandidates.includes(h) ? 'is not a repair candidate of the policy' : ''
    if (why !== '') bad(`new holder ${i}: ${h} ${why}`)
  })
  if (replaced === 0 || replaced > m.tolerate) bad(`replaces ${replaced} holders, want 1 to ${m.tolerate}`)
}

// checkSigs: every new holder, and no one else, signed r's body.
async function checkSigs (r: Repair, bad: (why: string) => never): Promise<void> {
  for (const s of r.sigs.keys()) {
    if (!r.holders.includes(s)) bad(`signature of ${s}, not a holder`)
  }
  const domain = new TextEncoder().encode(REPAIR_DOMAIN)
  const msg = new Uint8Array(domain.length + 1 + r.body.length)
  msg.set(domain)
  msg.set(r.body, domain.length + 1)
  for (const h of r.holders) {
    const sig = r.sigs.get(h)
    if (sig == null) return bad(`no signature of holder ${h}`)
    const key = peerIdFromString(h).publicKey
    if (key == null) return bad(`holder ${h}: no inlined public key`)
    let ok = false
    try {
      ok = await key.verify(msg, sig)
    } catch {}
    if (!ok) bad(`bad signature of holder ${h}`)
  }
}

/**
 * applyChain amends m by the records in order and returns the result; at
 * the first record that does not decode or verify it stops (the later ones
 * cannot follow) and says why in refused.
 */
export async function applyChain (m: Model, raws: Uint8Array[]): Promise<{ model: Model, refused?: string }> {
  let cur = m
  if (raws.length > MAX_REPAIR_CHAIN) return { model: m, refused: `invalid repair record: a chain of ${raws.length}, at most ${MAX_REPAIR_CHAIN}` }
  for (const raw of raws) {
    try {
      cur = await amend(cur, decodeRepair(raw))
    } catch (err: any) {
      return { model: cur, refused: err.message ?? String(err) }
    }
  }
  return { model: cur }
}
