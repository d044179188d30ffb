// Frames on a libp2p stream exactly as node/frame.go writes and reads them:
// one uvarint length, then that many bytes of a protobuf message; every
// read has a cap, checked before anything else is read.
import type { Stream } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'

/** Caps of node/frame.go. */
export const MAX_CONTROL_FRAME = 64 << 10
export const MAX_TENSOR_FRAME = 64 << 20
/** MAX_SYNC_FRAME caps a catalog entry: an envelope and a full repair chain (discovery's maxFrameSize). */
export const MAX_SYNC_FRAME = (1 << 20) + 64 * ((16 << 10) + 8) + 1024

/** FrameError is a malformed, oversized or truncated frame. */
export class FrameError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'FrameError'
  }
}

function uvarint (n: number): Uint8Array {
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80)
    n = Math.floor(n / 0x80)
  }
  out.push(n)
  return Uint8Array.from(out)
}

/** writeFrame sends msg as one frame, waiting for the stream to drain if it must. */
export async function writeFrame (s: Stream, msg: Uint8Array, signal?: AbortSignal): Promise<void> {
  const frame = new Uint8ArrayList(uvarint(msg.byteLength), msg)
  if (s.send(frame)) return
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      s.removeEventListener('drain', onDrain)
      s.removeEventListener('close', onClose)
      signal?.removeEventListener('abort', onAbort)
      if (err != null) reject(err)
      else resolve()
    }
    const onDrain = (): void => done()
    const onClose = (): void => done(new FrameError('stream closed while sending'))
    const onAbort = (): void => done(signal?.reason ?? new Error('aborted'))
    s.addEventListener('drain', onDrain)
    s.addEventListener('close', onClose)
    signal?.addEventListener('abort', onAbort)
  })
}

/**
 * Frames reads frames from one stream (a stream has exactly one reader: it
 * buffers ahead). next returns null at a clean end of stream before a
 * frame's first byte.
 */
export class Frames {
  private readonly buf = new Uint8ArrayList()
  private readonly it: AsyncIterator<Uint8Array | Uint8ArrayList>
  private ended = false

  constructor (s: Stream) {
    this.it = s[Symbol.asyncIterator]()
  }

  // fill reads one more chunk; false at the end of the stream.
  private async fill (signal?: AbortSignal): Promise<boolean> {
    if (this.ended) return false
    const next = this.it.next()
    let r: IteratorResult<Uint8Array | Uint8ArrayList>
    if (signal == null) {
      r = await next
    } else {
      signal.throwIfAborted()
      let onAbort: () => void = () => {}
      const aborted = new Promise<never>((_resolve, reject) => {
        onAbort = () => reject(signal.reason ?? new Error('aborted'))
        signal.addEventListener('abort', onAbort, { once: true })
      })
      try {
        r = await Promise.race([next, aborted])
      } finally {
        signal.removeEventListener('abort', onAbort)
      }
    }
    if (r.done === true) {
      this.ended = true
      return false
    }
    this.buf.append(r.value)
    return true
  }

  /** next reads one frame of at most max bytes. */
  async next (max: number, signal?: AbortSignal): Promise<Uint8Array | null> {
    let n = 0
    let shift = 1
    let i = 0
    for (; ; i++) {
      while (this.buf.byteLength <= i) {
        if (!(await this.fill(signal))) {
          if (i === 0) return null
          throw new FrameError('stream ended inside a frame length')
        }
      }
      const b = this.buf.get(i)
      n += (b & 0x7f) * shift
      shift *= 0x80
      if ((b & 0x80) === 0) break
      if (i >= 9) throw new FrameError('frame length: varint overflows 64 bits')
    }
    if (n > max) throw new FrameError(`frame too large: ${n} bytes, limit ${max}`)
    const start = i + 1
    while (this.buf.byteLength < start + n) {
      if (!(await this.fill(signal))) throw new FrameError(`stream ended after ${this.buf.byteLength - start} of a frame's ${n} bytes`)
    }
    const out = this.buf.subarray(start, start + n)
    this.buf.consume(start + n)
    return out
  }

  /** must is next where the end of the stream is an error. */
  async must (max: number, signal?: AbortSignal): Promise<Uint8Array> {
    const f = await this.next(max, signal)
    if (f == null) throw new FrameError('stream closed by the peer')
    return f
  }
}
