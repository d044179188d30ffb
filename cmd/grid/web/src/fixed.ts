// Fixed point over Z_2^64 and additive sharing, as mpcproto/fixed and
// mpcproto/share do it in Go: a value v is round(v·2^16) (half away from
// zero) as a two's-complement int64 reduced mod 2^64; an input is split
// into n shares, n-1 uniform (crypto.getRandomValues) and the last the
// correction x - Σ others, so that they add up to x mod 2^64.

/** FRAC is the number of fractional bits (fixed.DefaultFrac). */
export const FRAC = 16
const SCALE = 2 ** FRAC
const TWO63 = 2 ** 63
/** LIMIT bounds |v| for encoding: |v| < 2^(63-FRAC). */
export const LIMIT = 2 ** (63 - FRAC)
/** SAFE_RANGE is fixed.Encoding.SafeRange: 2^(62-2·FRAC), about 1.07e9. */
export const SAFE_RANGE = 2 ** (62 - 2 * FRAC)

/** EncodeError is an input value the encoding cannot represent. */
export class EncodeError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'EncodeError'
  }
}

/** roundHalfAway is Go's math.Round: halves go away from zero. */
export function roundHalfAway (x: number): number {
  const r = Math.round(Math.abs(x))
  return x < 0 ? -r : r
}

/** encode encodes each value; errors name the first bad element. */
export function encode (values: ArrayLike<number>): BigUint64Array {
  const out = new BigUint64Array(values.length)
  for (let i = 0; i < values.length; i++) {
    const v = values[i]
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new EncodeError(`element ${i}: cannot encode ${String(v)}`)
    }
    const s = roundHalfAway(v * SCALE)
    if (Math.abs(s) >= TWO63) {
      throw new EncodeError(`element ${i}: ${v} is outside the representable range (|v| < ${LIMIT} with ${FRAC} fractional bits)`)
    }
    out[i] = BigInt.asUintN(64, BigInt(s))
  }
  return out
}

/** decode decodes ring elements to numbers. */
export function decode (words: BigUint64Array): Float64Array {
  const out = new Float64Array(words.length)
  for (let i = 0; i < words.length; i++) {
    out[i] = Number(BigInt.asIntN(64, words[i])) / SCALE
  }
  return out
}

/** randomWords returns n uniform 64-bit words from crypto.getRandomValues. */
export function randomWords (n: number): BigUint64Array {
  const out = new BigUint64Array(n)
  // getRandomValues fills at most 65536 bytes per call.
  const per = 8192
  for (let i = 0; i < n; i += per) {
    crypto.getRandomValues(out.subarray(i, Math.min(n, i + per)))
  }
  return out
}

/**
 * split splits x into n additive shares mod 2^64: shares 0..n-2 uniform,
 * share n-1 = x - Σ others.
 */
export function split (x: BigUint64Array, n: number): BigUint64Array[] {
  if (n < 2) throw new Error(`split: ${n} parties, need at least 2`)
  const shares: BigUint64Array[] = []
  const last = new BigUint64Array(x)
  for (let p = 0; p < n - 1; p++) {
    const r = randomWords(x.length)
    for (let i = 0; i < x.length; i++) {
      last[i] = BigInt.asUintN(64, last[i] - r[i])
    }
    shares.push(r)
  }
  shares.push(last)
  return shares
}

/** reconstruct adds shares mod 2^64; they must have one length. */
export function reconstruct (shares: BigUint64Array[]): BigUint64Array {
  if (shares.length === 0) throw new Error('reconstruct: no shares')
  const out = new BigUint64Array(shares[0].length)
  for (const s of shares) {
    if (s.length !== out.length) throw new Error(`reconstruct: shares of ${out.length} and ${s.length} values`)
    for (let i = 0; i < s.length; i++) {
      out[i] = BigInt.asUintN(64, out[i] + s[i])
    }
  }
  return out
}

/** toLittleEndian packs words as the wire's little-endian bytes. */
export function toLittleEndian (words: BigUint64Array): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(words.length * 8)
  const dv = new DataView(b.buffer)
  for (let i = 0; i < words.length; i++) dv.setBigUint64(8 * i, words[i], true)
  return b
}

/** fromLittleEndian unpacks little-endian 64-bit words. */
export function fromLittleEndian (b: Uint8Array): BigUint64Array {
  if (b.length % 8 !== 0) throw new Error(`${b.length} bytes is not a whole number of 64-bit words`)
  const out = new BigUint64Array(b.length / 8)
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength)
  for (let i = 0; i < out.length; i++) out[i] = dv.getBigUint64(8 * i, true)
  return out
}
