// Inputs as a user gives them, read and fitted to a model's input shape
// the way mpcproto/tensorio does for the CLI: a comma- or space-separated
// list of numbers (--values, the Flat form), JSON nested lists or
// {"shape": [...], "data": [...]}, and NumPy .npy files (float32/float64,
// little-endian, C order) (--input, the File form).

/** MAX_ELEMENTS caps an input (plan.MaxElements). */
export const MAX_ELEMENTS = 1 << 28
const MAX_RANK = 8

/** A Tensor is a flat row-major list of values with its shape. */
export interface Tensor {
  shape: number[]
  data: number[]
}

/** InputError is an input that cannot be read or does not fit the model. */
export class InputError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'InputError'
  }
}

const size = (shape: number[]): number => shape.reduce((a, b) => a * b, 1)

/** shapeString writes a plan input shape for people ([N 64]). */
export function shapeString (shape: number[]): string {
  return '[' + shape.map(d => (d === -1 ? 'N' : String(d))).join(' ') + ']'
}

function finite (data: number[]): void {
  data.forEach((v, i) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new InputError(`value ${i} (${String(v)}) is not a finite number`)
  })
}

/** parseValues reads "5, 3" or "5 3" (one value per comma or space). */
export function parseValues (text: string): Tensor {
  const items = text.trim().split(/[\s,]+/).filter(s => s !== '')
  if (items.length === 0) throw new InputError('no values given')
  const data = items.map((s, i) => {
    const v = Number(s)
    if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s) || !Number.isFinite(v)) {
      throw new InputError(`item ${i + 1} (${JSON.stringify(s)}) is not a finite number`)
    }
    return v
  })
  return { shape: [data.length], data }
}

/** fromFlat checks a flat list against a shape. */
export function fromFlat (data: number[], shape: number[]): Tensor {
  if (shape.length > MAX_RANK) throw new InputError(`shape ${JSON.stringify(shape)}: rank exceeds ${MAX_RANK}`)
  for (const d of shape) {
    if (!Number.isInteger(d) || d <= 0) throw new InputError(`shape ${JSON.stringify(shape)}: dimension ${d} out of range`)
  }
  if (size(shape) > MAX_ELEMENTS) throw new InputError(`shape ${JSON.stringify(shape)} holds more than ${MAX_ELEMENTS} values`)
  if (size(shape) !== data.length) throw new InputError(`shape ${JSON.stringify(shape)} holds ${size(shape)} values, got ${data.length}`)
  finite(data)
  return { shape: [...shape], data: [...data] }
}

/** parseJSON reads nested lists of numbers or {"shape", "data"}. */
export function parseJSON (text: string): Tensor {
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch (err: any) {
    throw new InputError(`json input: ${err.message}`)
  }
  if (v != null && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Record<string, unknown>
    const extra = Object.keys(o).filter(k => k !== 'shape' && k !== 'data')
    if (extra.length > 0) throw new InputError(`json input: unknown field ${JSON.stringify(extra[0])}`)
    if (!Array.isArray(o.shape)) throw new InputError('json input: object has no "shape"')
    if (!Array.isArray(o.data)) throw new InputError('json input: object has no "data" list')
    return fromFlat(o.data as number[], o.shape as number[])
  }
  return nested(v)
}

function nested (v: unknown): Tensor {
  const shape: number[] = []
  for (let x = v; Array.isArray(x); x = x[0]) {
    if (x.length === 0) throw new InputError('json input: empty list')
    shape.push(x.length)
    if (shape.length > MAX_RANK) throw new InputError(`json input: nesting deeper than ${MAX_RANK}`)
  }
  const data: number[] = []
  const walk = (x: unknown, depth: number, where: string): void => {
    if (depth === shape.length) {
      if (typeof x !== 'number' || !Number.isFinite(x)) throw new InputError(`json input: at ${where || 'the top level'}: ${JSON.stringify(x)} is not a finite number (lists must be rectangular)`)
      if (data.length >= MAX_ELEMENTS) throw new InputError(`json input: more than ${MAX_ELEMENTS} values`)
      data.push(x)
      return
    }
    if (!Array.isArray(x)) throw new InputError(`json input: at ${where}: a number where a list was expected (lists must be rectangular)`)
    if (x.length !== shape[depth]) throw new InputError(`json input: at ${where}: list of ${x.length} values, its neighbours have ${shape[depth]} (lists must be rectangular)`)
    x.forEach((y, i) => walk(y, depth + 1, `${where}[${i}]`))
  }
  walk(v, 0, '')
  return { shape, data }
}

/** parseNPY reads a .npy file of little-endian float32 or float64 values in C order. */
export function parseNPY (buf: ArrayBuffer | Uint8Array): Tensor {
  const b = buf instanceof Uint8Array ? buf : new Uint8Array(buf)
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]
  if (b.length < 10 || magic.some((m, i) => b[i] !== m)) throw new InputError('npy: not a .npy file (bad magic)')
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength)
  let hlen: number
  let off: number
  if (b[6] === 1) {
    hlen = dv.getUint16(8, true); off = 10
  } else if (b[6] === 2 || b[6] === 3) {
    if (b.length < 12) throw new InputError('npy: truncated header')
    hlen = dv.getUint32(8, true); off = 12
  } else {
    throw new InputError(`npy: format version ${b[6]}.${b[7]} is not supported`)
  }
  if (off + hlen > b.length) throw new InputError('npy: truncated header')
  const header = new TextDecoder().decode(b.subarray(off, off + hlen))
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1]
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1]
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1]
  if (descr == null || fortran == null || shapeText == null) throw new InputError(`npy: header ${JSON.stringify(header.trim())} lacks descr, fortran_order or shape`)
  if (fortran === 'True') throw new InputError('npy: Fortran-order arrays are not supported (save np.ascontiguousarray(x))')
  let width: number
  if (descr === '<f4') width = 4
  else if (descr === '<f8') width = 8
  else throw new InputError(`npy: dtype ${descr} is not supported (want float32 <f4 or float64 <f8, little-endian)`)
  const shape = shapeText.split(',').map(s => s.trim()).filter(s => s !== '').map(Number)
  if (shape.some(d => !Number.isInteger(d) || d <= 0)) throw new InputError(`npy: shape (${shapeText}) has an empty or invalid dimension`)
  const n = size(shape)
  if (n > MAX_ELEMENTS) throw new InputError(`npy: shape (${shapeText}) is too large`)
  const body = off + hlen
  if (b.length - body !== n * width) throw new InputError(`npy: shape (${shapeText}) of ${descr} needs ${n * width} bytes of data, got ${b.length - body}`)
  const data = new Array<number>(n)
  for (let i = 0; i < n; i++) data[i] = width === 4 ? dv.getFloat32(body + 4 * i, true) : dv.getFloat64(body + 8 * i, true)
  finite(data)
  return { shape, data }
}

/** A Fitted input is what the plan takes: [batch, rest...] with a free batch dimension. */
export interface Fitted {
  x: Tensor
  batch: number
  /** batched tells whether the output keeps its batch dimension. */
  batched: boolean
}

const equal = (a: number[], b: number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i])

/**
 * fitFlat fits a flat list of values (tensorio's Flat form): the plan's
 * size, or any whole number of samples with a free batch dimension.
 */
export function fitFlat (values: number[], planInput: number[]): Fitted {
  finite(values)
  if (planInput.length === 0) {
    if (values.length !== 1) throw new InputError(`the model expects a scalar (1 value), got ${values.length} values`)
    return { x: { shape: [], data: values }, batch: 1, batched: false }
  }
  if (planInput[0] !== -1) {
    const n = size(planInput)
    if (values.length !== n) throw new InputError(`the model expects shape ${shapeString(planInput)} (${n} values), got ${values.length} values`)
    return { x: { shape: [...planInput], data: values }, batch: 1, batched: false }
  }
  const rest = planInput.slice(1)
  const sample = size(rest)
  if (values.length === 0 || values.length % sample !== 0) {
    throw new InputError(`the model expects shape ${shapeString(planInput)} (a multiple of ${sample} values), got ${values.length} values`)
  }
  const batch = values.length / sample
  return { x: { shape: [batch, ...rest], data: values }, batch, batched: true }
}

/**
 * fitFile fits a tensor read from a file (tensorio's File form): the
 * plan's shape, one sample, a flat sample, [1, shape...] without a free
 * batch dimension, or rows [N, size(sample)] of flattened samples.
 */
export function fitFile (t: Tensor, planInput: number[]): Fitted {
  if (planInput.length === 0 || planInput[0] !== -1) {
    if (equal(t.shape, planInput)) return { x: t, batch: 1, batched: false }
    if ((t.shape.length === 1 && t.data.length === size(planInput)) ||
        (t.shape.length === planInput.length + 1 && t.shape[0] === 1 && equal(t.shape.slice(1), planInput))) {
      return { x: { shape: [...planInput], data: t.data }, batch: 1, batched: false }
    }
    throw new InputError(`input shape ${JSON.stringify(t.shape)} does not fit the model's input shape ${shapeString(planInput)}`)
  }
  const rest = planInput.slice(1)
  const n = size(rest)
  if (t.shape.length === planInput.length && equal(t.shape.slice(1), rest)) {
    return { x: t, batch: t.shape[0], batched: true }
  }
  if (equal(t.shape, rest) || (t.shape.length === 1 && t.data.length === n)) {
    return { x: { shape: [1, ...rest], data: t.data }, batch: 1, batched: true }
  }
  if (rest.length > 1 && t.shape.length === 2 && t.shape[1] === n) {
    return { x: { shape: [t.shape[0], ...rest], data: t.data }, batch: t.shape[0], batched: true }
  }
  throw new InputError(`input shape ${JSON.stringify(t.shape)} does not fit the model's input shape ${shapeString(planInput)} (one sample is ${JSON.stringify(rest)}; a batch is [N ${rest.join(' ')}])`)
}
