// grid.js: private inference from a web page, the successor of syft.js.
//
//   import { connect } from 'http://127.0.0.1:PORT/grid.js'
//   const grid = await connect()              // the daemon that served this module
//   const models = await grid.models()        // verified manifests
//   const r = await grid.infer('convnet', [5, 3])
//   // r = { shape: [1], output: [1022], holders: [...], rounds, bytes, ms, ... }
//
// The browser is a libp2p peer of its own (an ephemeral ed25519 key): it
// connects to the daemon over WebSockets (Noise, yamux), fetches the signed
// manifests over the catalog protocol and verifies them, then for a query
// encodes the input in fixed point (16 fractional bits) and splits it into
// additive shares over Z_2^64 with crypto.getRandomValues, sends each
// holder its share on its own encrypted stream (/grid/infer/1.0.0), asks a
// dealer the model's owner named (/grid/dealer/1.0.0) to deal the session,
// and adds up the holders' output shares. No server sees the input or the
// output; the browser never deals (it owns no model).
//
// The wire is node/'s, message for message: see node/infer_client.go,
// node/dealer.go and node/frame.go.
import { createLibp2p, type Libp2p } from 'libp2p'
import { webSockets } from '@libp2p/websockets'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { Stream } from '@libp2p/interface'
import { Code, DealerMessage, InferRequest, InferResult as PbInferResult, Status, type Tensor as PbTensor } from './pb/grid.js'
import { SyncEntry, SyncRequest } from './pb/manifest.js'
import { KadMessage } from './pb/kad.js'
import { Frames, writeFrame, MAX_CONTROL_FRAME, MAX_TENSOR_FRAME, MAX_SYNC_FRAME } from './frames.js'
import { encode, decode, split, reconstruct, toLittleEndian, fromLittleEndian, EncodeError, SAFE_RANGE } from './fixed.js'
import { fitFlat, fitFile, shapeString, InputError, type Tensor, type Fitted } from './input.js'
import { openManifest, latest, peerFromBytes, shareHolders, finish, type Model } from './manifest.js'
import { applyChain, MAX_REPAIR_CHAIN } from './repair.js'

export { parseValues, parseJSON, parseNPY, shapeString, InputError, type Tensor } from './input.js'
export type { Model } from './manifest.js'

/** The stream protocols the browser speaks (node/host.go, discovery/sync.go). */
export const PROTO_INFER = '/grid/infer/1.0.0'
export const PROTO_DEALER = '/grid/dealer/1.0.0'
export const PROTO_MANIFESTS = '/grid/manifests/1.0.0'
export const PROTO_KAD = '/grid/kad/1.0.0'

const SESSION_ID_LEN = 16
const MAX_BATCH = 1 << 24
const MAX_CATALOG = 100000
const BLAME_GRACE_MS = 500
const DEALER_DIAL_MS = 5000
const DEFAULT_TIMEOUT_MS = 30000
const PROBE_TIMEOUT_MS = 2000
const PROBE_GRACE_MS = 100

/**
 * GridError is every failure the API reports. code is one of: BAD_INPUT
 * (nothing was sent), UNKNOWN_MODEL, MODE (a plain-mode model), BUSY,
 * REMOTE_DISABLED, UNTRUSTED_DEALER, NO_DEALER, UNREACHABLE, PEER_FAILED,
 * BAD_REQUEST, DAMAGED, TIMEOUT, OVERFLOW, INTERNAL. peer and role name the
 * peer at fault when there is one ("holder 2", "dealer").
 */
export class GridError extends Error {
  code: string
  peer?: string
  role?: string
  constructor (code: string, message: string, peer?: string, role?: string) {
    super(peer != null ? `${role ?? 'peer'} ${peer}: ${message}` : message)
    this.name = 'GridError'
    this.code = code
    this.peer = peer
    this.role = role
  }
}

/** Options of connect. */
export interface ConnectOptions {
  /**
   * The daemon's WebSocket multiaddr(s) with /p2p/ (what `grid id`
   * prints). Default: the addresses the daemon that served this module
   * gives at /api/v0/id (same origin only).
   */
  daemon?: string | string[]
  /** timeout bounds the connection, in ms (default 20 s). */
  timeout?: number
}

/** Options of infer. */
export interface InferOptions {
  /** shape, when set, is the shape of values (the File form: one sample, a batch, flattened rows). */
  shape?: number[]
  /** dealer: one of the dealers the model's manifest names (default: a reachable one at random). */
  dealer?: string
  /** timeout bounds the session, in ms (default 30 s, the daemons' session timeout). */
  timeout?: number
  signal?: AbortSignal
  /** onStage is called as the session goes: "open", "deal", "collect", "reveal". */
  onStage?: (stage: string) => void
}

/** The answer of infer. */
export interface InferResult {
  model: string
  /** shape of the output (with the batch dimension when the input had one). */
  shape: number[]
  /** output, flat and row-major. */
  output: number[]
  /** holders: the session's holders in party order (one live replica per share for a replicated model). */
  holders: string[]
  dealer: string
  /** rounds: the busiest holder's online rounds. */
  rounds: number
  /** bytes: what the busiest holder sent and received to and from the other holders. */
  bytes: number
  bytesSent: number
  bytesRecv: number
  /** upload: the bytes of input shares this browser sent (all holders). */
  upload: number
  /** onlineMs: the slowest holder's online phase. */
  onlineMs: number
  /** ms: this call's wall time, from the lookup to the decoded answer. */
  ms: number
  /** stages: ms spent preparing (lookup, sharing, dealer choice), opening, dealing, collecting, revealing. */
  stages?: Record<string, number>
}

const isWebSocket = (a: string): boolean => /\/(ws|wss|tls\/ws)(\/p2p\/|$)/.test(a)

/**
 * connect starts a browser libp2p peer and connects it to a grid daemon
 * over WebSockets. It resolves to a Grid.
 */
export async function connect (opts: ConnectOptions = {}): Promise<Grid> {
  const timeout = opts.timeout ?? 20000
  let addrs: string[]
  if (opts.daemon != null) {
    addrs = Array.isArray(opts.daemon) ? opts.daemon : [opts.daemon]
  } else {
    const url = new URL('/api/v0/id', import.meta.url)
    let info: { id: string, addresses: string[] }
    try {
      const resp = await fetch(url, { signal: AbortSignal.timeout(timeout) })
      if (!resp.ok) throw new Error(`${resp.status} ${resp.statusText}`)
      info = await resp.json()
    } catch (err: any) {
      throw new GridError('UNREACHABLE', `cannot read the daemon's addresses at ${url.href} (${err.message ?? err}); from another origin, pass connect({ daemon: '/ip4/.../tcp/N/ws/p2p/...' }) with an address "grid id" prints`)
    }
    addrs = info.addresses.filter(isWebSocket)
    if (addrs.length === 0) {
      throw new GridError('UNREACHABLE', `daemon ${info.id} listens on no WebSocket address (its addresses: ${info.addresses.join(', ')}): add /ip4/127.0.0.1/tcp/0/ws to its config's Addresses.Listen, or start it with --listen /ip4/127.0.0.1/tcp/0/ws`)
    }
  }
  const mas = addrs.map(a => multiaddr(a))
  const daemonId = /\/p2p\/([^/]+)$/.exec(addrs[0])?.[1]
  if (daemonId == null) throw new GridError('BAD_INPUT', `daemon address ${addrs[0]} has no /p2p/ peer ID`)
  const node = await createLibp2p({
    addresses: { listen: [] },
    transports: [webSockets()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // Loopback and private addresses are what a local swarm has.
    connectionGater: { denyDialMultiaddr: async () => false },
    connectionMonitor: { enabled: false },
    services: { identify: identify() }
  })
  try {
    await node.dial(mas, { signal: AbortSignal.timeout(timeout) })
  } catch (err: any) {
    await node.stop()
    throw new GridError('UNREACHABLE', `cannot connect to the daemon over WebSockets at ${addrs.join(', ')}: ${errText(err)}`, daemonId, 'daemon')
  }
  return new Grid(node, daemonId, mas)
}

/** Grid is a connected browser peer: models() and infer(). */
export class Grid {
  /** node is the browser's libp2p node. */
  readonly node: Libp2p
  /** daemon is the peer ID of the daemon the browser joined through. */
  readonly daemon: string
  readonly daemonAddrs: string[]
  private catalog: Model[] = []
  private readonly addrs = new Map<string, Multiaddr[]>()

  constructor (node: Libp2p, daemon: string, addrs: Multiaddr[]) {
    this.node = node
    this.daemon = daemon
    this.daemonAddrs = addrs.map(a => a.toString())
    this.addrs.set(daemon, addrs)
  }

  /** peerId is this browser's (ephemeral) peer ID. */
  get peerId (): string {
    return this.node.peerId.toString()
  }

  /**
   * models fetches the daemon's catalog (/grid/manifests/1.0.0), verifies
   * every manifest's owner signature and plan hash, amends it by its chain
   * of repair records (each verified against the owner's repair policy and
   * signed by every new holder, see repair.ts), and returns the live
   * models, sorted by id. Refused envelopes and repair records are counted
   * in refused (a model keeps the holders of its last valid record).
   */
  async models (opts: { signal?: AbortSignal } = {}): Promise<Model[]> {
    const signal = opts.signal ?? AbortSignal.timeout(30000)
    const s = await this.open(this.daemon, 'daemon', PROTO_MANIFESTS, signal)
    const envelopes: SyncEntry[] = []
    try {
      await writeFrame(s, SyncRequest.encode({ kind: SyncRequest.Kind.LIST }), signal)
      await s.close({ signal })
      const fr = new Frames(s)
      for (;;) {
        const f = await fr.next(MAX_SYNC_FRAME, signal)
        if (f == null) break
        if (envelopes.length >= MAX_CATALOG) throw new Error(`more than ${MAX_CATALOG} catalog entries`)
        envelopes.push(SyncEntry.decode(f, { limits: { repairs: MAX_REPAIR_CHAIN } }))
      }
    } catch (err: any) {
      s.abort(err)
      throw new GridError('UNREACHABLE', `read the catalog: ${errText(err)}`, this.daemon, 'daemon')
    }
    const models: Model[] = []
    this.refused = []
    for (const e of envelopes) {
      try {
        const { model, refused } = await applyChain(await openManifest(e.envelope), e.repairs)
        models.push(model)
        if (refused != null) this.refused.push(refused)
      } catch (err: any) {
        this.refused.push(err.message)
      }
    }
    this.catalog = latest(models)
    return this.catalog
  }

  /** refused lists why the last models() call refused envelopes (forged, invalid). */
  refused: string[] = []

  /** model returns the verified manifest of id, fetching the catalog if it is not known. */
  async model (id: string): Promise<Model> {
    let m = this.catalog.find(x => x.id === id)
    if (m == null) {
      await this.models()
      m = this.catalog.find(x => x.id === id)
    }
    if (m == null) {
      const known = this.catalog.map(x => x.id).join(', ') || 'none'
      throw new GridError('UNKNOWN_MODEL', `unknown model ${JSON.stringify(id)}: no manifest on the network names it (known models: ${known})`)
    }
    return m
  }

  /**
   * infer runs model name on values privately. values is a flat list
   * shaped to the model's input (any whole number of samples when it has a
   * batch dimension), or, with opts.shape, a tensor of that shape (one
   * sample, a batch, or rows of flattened samples). The input's shape and
   * range are checked before anything is sent (code BAD_INPUT).
   */
  async infer (name: string, values: ArrayLike<number> | Tensor, opts: InferOptions = {}): Promise<InferResult> {
    const t0 = performance.now()
    const m = await this.model(name)
    if (m.mode !== 'mpc') {
      throw new GridError('MODE', `model ${JSON.stringify(m.id)} is published in ${m.mode} mode: its host would see the input, and the browser client queries mpc models only`)
    }
    // A model whose owner disabled remote inference is refused by every
    // holder (and its dealers), which check the signed manifest themselves.
    const fitted = fit(m, values, opts.shape)
    let words: BigUint64Array
    try {
      words = encode(fitted.x.data)
    } catch (err: any) {
      throw new GridError('BAD_INPUT', err instanceof EncodeError ? `bad input: ${err.message}` : String(err))
    }
    const signals = [AbortSignal.timeout(opts.timeout ?? DEFAULT_TIMEOUT_MS)]
    if (opts.signal != null) signals.push(opts.signal)
    const signal = AbortSignal.any(signals)
    const dealer = await this.chooseDealer(m, opts.dealer, signal)
    if (m.replicas.length === 0) {
      return this.session(m, fitted, words, dealer, m.holders, signal, opts, t0)
    }
    // Replicated shares (node's inferMPC): probe the holders, pick one live
    // holder per share, and retry with another replica when a holder is
    // unreachable, refuses or fails (at most tolerate+1 sessions).
    const live = await this.probe(m, signal)
    let last: GridError | undefined
    for (let attempt = 0; attempt <= m.tolerate; attempt++) {
      const reps = chooseReplicas(m, p => live.get(p) === true)
      if (typeof reps === 'string') {
        throw new GridError('UNREACHABLE', reps + (last != null ? ` (after: ${last.message})` : ''))
      }
      try {
        return await this.session(m, fitted, words, dealer, reps, signal, opts, t0)
      } catch (err: any) {
        if (!(err instanceof GridError) || err.peer == null || !m.holders.includes(err.peer) || live.get(err.peer) !== true ||
            signal.aborted || ['UNTRUSTED_DEALER', 'BAD_INPUT', 'REMOTE_DISABLED'].includes(err.code)) {
          throw err
        }
        last = err
        live.set(err.peer, false)
      }
    }
    throw last as GridError
  }

  // session runs one session with the replica choice reps (one holder per
  // share; the model's holders without replication): its parties are the
  // distinct peers of reps, each sent one share of the input.
  private async session (m: Model, fitted: Fitted, words: BigUint64Array, dealer: string, reps: string[],
    signal: AbortSignal, opts: InferOptions, t0: number): Promise<InferResult> {
    const session = new Session(this, m, fitted, dealer, reps, crypto.getRandomValues(new Uint8Array(SESSION_ID_LEN)), signal)
    const shares = split(words, session.parties.length)
    const stages: Record<string, number> = {}
    let t = t0
    const lap = (name: string): void => {
      const now = performance.now()
      stages[name] = now - t
      t = now
    }
    try {
      lap('prepare')
      opts.onStage?.('open')
      await session.open(shares)
      lap('open')
      opts.onStage?.('deal')
      await session.deal()
      lap('deal')
      opts.onStage?.('collect')
      const results = await session.collect()
      lap('collect')
      opts.onStage?.('reveal')
      const r = session.reveal(results)
      lap('reveal')
      r.ms = performance.now() - t0
      r.stages = stages
      return r
    } catch (err: any) {
      session.abort()
      if (signal.aborted && !(err instanceof GridError)) {
        throw new GridError('TIMEOUT', `session: ${signal.reason?.message ?? 'timed out'}`)
      }
      throw err
    }
  }

  // probe tells which of a replicated model's holders this browser can
  // reach (node's probeHolders): connected, or dialled within 2 s, all at
  // once; after 100 ms it settles as soon as the live ones cover every share.
  private async probe (m: Model, signal: AbortSignal): Promise<Map<string, boolean>> {
    const live = new Map<string, boolean>()
    const probes = m.holders.map(async h => {
      let ok = false
      try {
        const ps = AbortSignal.any([signal, AbortSignal.timeout(PROBE_TIMEOUT_MS)])
        await this.node.dial(await this.find(h, ps), { signal: ps })
        ok = true
      } catch {}
      live.set(h, ok)
    })
    const all = Promise.all(probes)
    await Promise.race([all, new Promise(resolve => setTimeout(resolve, PROBE_GRACE_MS))])
    while (live.size < m.holders.length && typeof chooseReplicas(m, p => live.get(p) === true) === 'string') {
      await Promise.race([all, new Promise(resolve => setTimeout(resolve, 20))])
    }
    return new Map(live)
  }

  /** close stops the browser's libp2p node. */
  async close (): Promise<void> {
    await this.node.stop()
  }

  /**
   * open opens a stream of proto to peer p: at an address learnt from the
   * daemon's DHT when this browser has none (find).
   */
  async open (p: string, role: string, proto: string, signal: AbortSignal): Promise<Stream> {
    let target: Awaited<ReturnType<Grid['find']>> | undefined
    try {
      target = await this.find(p, signal)
      return await this.node.dialProtocol(target, proto, { signal })
    } catch (err: any) {
      if (err instanceof GridError) throw new GridError(err.code, err.message.replace(`${err.role ?? 'peer'} ${p}: `, ''), p, role)
      if (signal.aborted) throw new GridError('TIMEOUT', `session: ${signal.reason?.message ?? 'timed out'}`, p, role)
      const at = Array.isArray(target) ? ` at ${target.map(a => a.toString().replace(/\/p2p\/[^/]+$/, '')).join(', ')}` : ''
      throw new GridError('UNREACHABLE', `unreachable${at}: ${errText(err)}`, p, role)
    }
  }

  /**
   * find returns what to dial for peer p: the peer itself when connected,
   * else its WebSocket addresses, looked up with FIND_NODE on the
   * network's DHT (/grid/kad/1.0.0) through the daemon and then, if need
   * be, the closer peers it names (at most 8 queries).
   */
  private async find (p: string, signal: AbortSignal): Promise<Multiaddr[] | ReturnType<typeof peerIdFromString>> {
    const id = peerIdFromString(p)
    if (this.node.getConnections(id).length > 0) return id
    const known = this.addrs.get(p)
    if (known != null) return known
    const key = id.toMultihash().bytes
    const asked = new Set<string>()
    const queue = [this.daemon]
    while (queue.length > 0 && asked.size < 8) {
      const q = queue.shift() as string
      if (asked.has(q)) continue
      asked.add(q)
      let closer: KadMessage.Peer[]
      try {
        closer = await this.findNode(q, key, signal)
      } catch {
        continue
      }
      for (const c of closer) {
        let cid: string
        try {
          cid = peerFromBytes(c.id)
        } catch {
          continue
        }
        const ws: Multiaddr[] = []
        for (const a of c.addrs) {
          try {
            const ma = multiaddr(a)
            if (isWebSocket(ma.toString())) ws.push(ma.encapsulate(`/p2p/${cid}`))
          } catch {}
        }
        if (ws.length === 0) continue
        if (!this.addrs.has(cid)) this.addrs.set(cid, ws)
        if (cid === p) return ws
        queue.push(cid)
      }
    }
    throw new GridError('UNREACHABLE', `unreachable: no WebSocket address found for it on the network (asked ${asked.size} peer(s) of the DHT); is its daemon running, with a /ws listen address?`, p)
  }

  // findNode sends one FIND_NODE query to peer q.
  private async findNode (q: string, key: Uint8Array, signal: AbortSignal): Promise<KadMessage.Peer[]> {
    const s = await this.node.dialProtocol(this.addrs.get(q) as Multiaddr[], PROTO_KAD, { signal })
    try {
      await writeFrame(s, KadMessage.encode({ type: KadMessage.MessageType.FIND_NODE, key: key as Uint8Array<ArrayBuffer> }), signal)
      const resp = KadMessage.decode(await new Frames(s).must(4 << 20, signal))
      await s.close({ signal }).catch(() => {})
      return resp.closerPeers
    } catch (err) {
      s.abort(err as Error)
      throw err
    }
  }

  // chooseDealer picks a reachable dealer among those the manifest names
  // (random order), or the one asked for if the manifest names it. The
  // browser owns no model, so it never deals itself.
  private async chooseDealer (m: Model, want: string | undefined, signal: AbortSignal): Promise<string> {
    if (want === 'self') {
      throw new GridError('BAD_INPUT', `bad input: only the owner of model ${JSON.stringify(m.id)} (${m.owner}) may deal its sessions, and the browser owns no model`)
    }
    if (want != null && want !== '') {
      if (!m.dealers.includes(want)) {
        throw new GridError('UNTRUSTED_DEALER', `dealer ${want} is not one model ${JSON.stringify(m.id)}'s owner trusts (the manifest names ${m.dealers.join(', ') || 'none'})`)
      }
      return want
    }
    if (m.dealers.length === 0) {
      throw new GridError('NO_DEALER', `model ${JSON.stringify(m.id)}'s owner names no dealer, so only the owner can query it (it may add dealers with grid dealers --set)`)
    }
    const order = [...m.dealers]
    for (let i = order.length - 1; i > 0; i--) {
      const j = crypto.getRandomValues(new Uint32Array(1))[0] % (i + 1);
      [order[i], order[j]] = [order[j], order[i]]
    }
    const errs: string[] = []
    for (const d of order) {
      try {
        const target = await this.find(d, signal)
        await this.node.dial(target, { signal: AbortSignal.any([signal, AbortSignal.timeout(DEALER_DIAL_MS)]) })
        return d
      } catch (err: any) {
        errs.push(errText(err))
      }
    }
    throw new GridError('NO_DEALER', `none of the ${m.dealers.length} dealer(s) model ${JSON.stringify(m.id)}'s owner trusts is reachable (${errs.join('; ')})`)
  }
}

// fit fits values to the model's input shape before anything is sent.
function fit (m: Model, values: ArrayLike<number> | Tensor, shape?: number[]): Fitted {
  let f: Fitted
  try {
    if (isTensor(values)) {
      f = fitFile(values, m.inputShape)
    } else if (shape != null) {
      f = fitFile({ shape, data: Array.from(values) }, m.inputShape)
    } else {
      f = fitFlat(Array.from(values), m.inputShape)
    }
  } catch (err: any) {
    const why = err instanceof InputError ? err.message : String(err)
    throw new GridError('BAD_INPUT', `bad input: ${why} (model ${JSON.stringify(m.id)} takes ${shapeString(m.inputShape)})`)
  }
  if (f.batch > MAX_BATCH) throw new GridError('BAD_INPUT', `bad input: batch ${f.batch} over the limit ${MAX_BATCH}`)
  if (m.inputRange > 0) {
    const i = f.x.data.findIndex(v => Math.abs(v) > m.inputRange)
    if (i >= 0) throw new GridError('BAD_INPUT', `bad input: input value ${f.x.data[i]} (element ${i}) is outside the range ±${m.inputRange} the model's owner declared`)
  }
  return f
}

// errText is an error's message; a failed WebSocket rejects with a bare
// Event, which says nothing more.
function errText (err: any): string {
  if (err instanceof Error) {
    const inner = (err as any).errors as unknown[] | undefined
    return Array.isArray(inner) && inner.length > 0 ? `${err.message}: ${inner.map(errText).join('; ')}` : err.message
  }
  if (typeof Event !== 'undefined' && err instanceof Event) return `the WebSocket failed to open (${err.type}: connection refused, or nothing listening there)`
  return String(err)
}

function isTensor (v: unknown): v is Tensor {
  return v != null && typeof v === 'object' && Array.isArray((v as Tensor).shape) && Array.isArray((v as Tensor).data)
}

// statusError turns a peer's Status into a GridError (null for OK), as
// node/errors.go errorFromStatus does.
function statusError (st: Status | undefined, p: string, role: string): GridError | null {
  if (st == null) return new GridError('BAD_REQUEST', 'missing status', p, role)
  if (st.code === Code.OK) return null
  if (st.code === Code.PEER_FAILED) {
    let blamed: string | undefined
    try {
      blamed = st.peer.length > 0 ? peerFromBytes(st.peer) : undefined
    } catch {}
    const e = new GridError('PEER_FAILED', st.message, p, role)
    ;(e as any).blamed = blamed
    return e
  }
  const code = st.code === Code.TIMEOUT ? 'TIMEOUT' : String(st.code)
  return new GridError(code, st.message || code.toLowerCase().replace('_', ' '), p, role)
}

interface Call {
  s: Stream
  fr: Frames
  party: number
  peer: string
}

/** Session is one mpc session from the browser's side (node/infer_client.go). */
class Session {
  private readonly calls: Array<Call | undefined>
  private upload = 0
  /** parties are the distinct peers of reps, in order of first appearance: the engine's parties. */
  readonly parties: string[]

  constructor (
    private readonly g: Grid,
    private readonly m: Model,
    private readonly fitted: Fitted,
    private readonly dealer: string,
    private readonly reps: string[],
    private readonly sid: Uint8Array,
    private readonly signal: AbortSignal
  ) {
    this.parties = [...new Set(reps)]
    this.calls = new Array(this.parties.length)
  }

  // repBytes is the replica choice in its wire form (InferRequest.holders,
  // DealRequest.holders).
  private repBytes (): Array<Uint8Array<ArrayBuffer>> {
    return this.reps.map(h => peerIdFromString(h).toMultihash().bytes as Uint8Array<ArrayBuffer>)
  }

  /**
   * open sends every party its request and input share, one after the
   * other in peer-ID order (node's holderOrder: the raw peer ID bytes),
   * each waiting for the holder's accept; the first refusal stops it.
   */
  async open (shares: BigUint64Array[]): Promise<void> {
    const holders = this.repBytes()
    const ids = this.parties.map(h => peerIdFromString(h).toMultihash().bytes)
    const order = ids.map((_, i) => i).sort((a, b) => compareBytes(ids[a], ids[b]))
    const shape = this.fitted.x.shape.map(d => BigInt(d))
    for (const i of order) {
      const h = this.parties[i]
      const role = `holder ${i}`
      const input: PbTensor = { name: 'input', shape, data: toLittleEndian(shares[i]) }
      const req = InferRequest.encode({
        session: this.sid as Uint8Array<ArrayBuffer>,
        model: this.m.id,
        version: this.m.version,
        party: i,
        holders,
        dealer: peerIdFromString(this.dealer).toMultihash().bytes as Uint8Array<ArrayBuffer>,
        batch: this.fitted.batch,
        input
      })
      const s = await this.g.open(h, role, PROTO_INFER, this.signal)
      const fr = new Frames(s)
      this.calls[i] = { s, fr, party: i, peer: h }
      let st: Status
      try {
        await writeFrame(s, req, this.signal)
        this.upload += input.data.byteLength
        st = Status.decode(await fr.must(MAX_CONTROL_FRAME, this.signal))
      } catch (err: any) {
        throw this.streamError(err, h, role, 'read accept')
      }
      const e = statusError(st, h, role)
      if (e != null) throw e
    }
  }

  private streamError (err: any, p: string, role: string, what: string): GridError {
    if (err instanceof GridError) return err
    if (this.signal.aborted) return new GridError('TIMEOUT', `session: ${this.signal.reason?.message ?? 'timed out'}`, p, role)
    return new GridError('UNREACHABLE', `${what}: connection lost: ${errText(err)}`, p, role)
  }

  /** deal asks the dealer to deal the session and deliver each holder its bundle. */
  async deal (): Promise<void> {
    const s = await this.g.open(this.dealer, 'dealer', PROTO_DEALER, this.signal)
    const req = DealerMessage.encode({
      deal: {
        session: this.sid as Uint8Array<ArrayBuffer>,
        model: this.m.id,
        plan: new Uint8Array(0),
        planHash: this.m.planHash,
        batch: this.fitted.batch,
        holders: this.repBytes(),
        version: this.m.version
      }
    })
    let st: Status
    try {
      await writeFrame(s, req, this.signal)
      st = Status.decode(await new Frames(s).must(MAX_CONTROL_FRAME, this.signal))
    } catch (err: any) {
      s.abort(err)
      throw this.streamError(err, this.dealer, 'dealer', 'read deal status')
    }
    await s.close().catch(() => {})
    const e = statusError(st, this.dealer, 'dealer')
    if (e == null) return
    const blamed = (e as any).blamed as string | undefined
    if (e.code === 'PEER_FAILED' && blamed != null) {
      const i = this.parties.indexOf(blamed)
      throw new GridError('PEER_FAILED', `dealer ${this.dealer} could not deliver its bundle: ${st.message}`, blamed, i >= 0 ? `holder ${i}` : 'peer')
    }
    throw e
  }

  /**
   * collect reads every holder's result; after the first failure the
   * others get 500 ms to report theirs, then every stream is reset and
   * blame names the peer at fault.
   */
  async collect (): Promise<PbInferResult[]> {
    const results: PbInferResult[] = new Array(this.calls.length)
    const errs: Array<GridError | undefined> = new Array(this.calls.length)
    let aborted = false
    let failed: () => void = () => {}
    const firstFailure = new Promise<void>(resolve => { failed = resolve })
    const all = Promise.all(this.calls.map(async (c, i) => {
      if (c == null) return
      const role = `holder ${i}`
      try {
        const r = PbInferResult.decode(await c.fr.must(MAX_TENSOR_FRAME, this.signal))
        const e = statusError(r.status, c.peer, role)
        if (e != null) throw e
        results[i] = r
        await c.s.close().catch(() => {})
      } catch (err: any) {
        if (aborted) return
        errs[i] = this.streamError(err, c.peer, role, 'result')
        failed()
      }
    }))
    await Promise.race([all, firstFailure])
    if (errs.some(e => e != null)) {
      await Promise.race([all, new Promise(resolve => setTimeout(resolve, BLAME_GRACE_MS))])
      aborted = true
      this.abort()
      await all
      throw blame(errs, this.parties)
    }
    return results
  }

  /** reveal adds up the output shares, decodes them and checks for overflow. */
  reveal (results: PbInferResult[]): InferResult {
    const outs: BigUint64Array[] = []
    let shape: number[] | undefined
    let rounds = 0; let sent = 0; let recv = 0; let online = 0
    results.forEach((r, i) => {
      const t = r.output
      const bad = (why: string): never => { throw new GridError('BAD_REQUEST', `output share: ${why}`, this.parties[i], `holder ${i}`) }
      if (t == null) bad('missing')
      const sh = (t as PbTensor).shape.map(Number)
      if (sh.some(d => d < 0)) bad(`shape ${JSON.stringify(sh)}`)
      const words = fromLittleEndian((t as PbTensor).data)
      if (words.length !== sh.reduce((a, b) => a * b, 1)) bad(`shape ${JSON.stringify(sh)} needs ${sh.reduce((a, b) => a * b, 1)} values, got ${words.length}`)
      if (shape != null && JSON.stringify(shape) !== JSON.stringify(sh)) bad(`shape ${JSON.stringify(sh)}, holder 0's is ${JSON.stringify(shape)}`)
      shape = sh
      outs.push(words)
      rounds = Math.max(rounds, r.rounds)
      sent = Math.max(sent, Number(r.bytesSent))
      recv = Math.max(recv, Number(r.bytesRecv))
      online = Math.max(online, Number(r.onlineNs) / 1e6)
    })
    const out = Array.from(decode(reconstruct(outs)))
    if (this.m.outputCapped) {
      const i = out.findIndex(v => Math.abs(v) > SAFE_RANGE)
      if (i >= 0) {
        throw new GridError('OVERFLOW', `output element ${i} is ${out[i].toPrecision(3)}, beyond the safe range ±${SAFE_RANGE.toPrecision(3)}: the computation overflowed; scale the input down`)
      }
    }
    if (this.m.final != null) {
      try {
        finish(this.m.final, shape as number[], out)
      } catch (err: any) {
        throw new GridError('BAD_REQUEST', err.message)
      }
    }
    let outShape = shape as number[]
    if (!this.fitted.batched && outShape.length > 0 && outShape[0] === 1 && this.m.inputShape[0] === -1) outShape = outShape.slice(1)
    return {
      model: this.m.id,
      shape: outShape,
      output: out,
      holders: [...this.parties],
      dealer: this.dealer,
      rounds,
      bytes: sent + recv,
      bytesSent: sent,
      bytesRecv: recv,
      upload: this.upload,
      onlineMs: online,
      ms: 0
    }
  }

  /** abort resets the streams to the holders. */
  abort (): void {
    for (const c of this.calls) {
      if (c != null && c.s.status === 'open') c.s.abort(new Error('session aborted by the client'))
    }
  }
}

// chooseReplicas picks one live holder per share (node's chooseReplicas):
// the least loaded live replica of each share, ties to the first listed;
// a string names the first share with no live replica.
function chooseReplicas (m: Model, live: (p: string) => boolean): string[] | string {
  const load = new Map<string, number>()
  const reps: string[] = []
  for (const [i, hs] of shareHolders(m).entries()) {
    let best: string | undefined
    for (const j of hs) {
      const p = m.holders[j]
      if (!live(p)) continue
      if (best == null || (load.get(p) ?? 0) < (load.get(best) ?? 0)) best = p
    }
    if (best == null) return `no live holder of share ${i} of model ${JSON.stringify(m.id)} (its holders: ${hs.map(j => m.holders[j]).join(', ')})`
    reps.push(best)
    load.set(best, (load.get(best) ?? 0) + 1)
  }
  return reps
}

function compareBytes (a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== b[i]) return a[i] - b[i]
  }
  return a.length - b.length
}

// blame picks the error to report when a session fails (node/blame.go):
// a holder whose stream broke or that failed on its own first; else the
// peer the holders' reports name most, leaving out the reporters; else the
// first error.
function blame (errs: Array<GridError | undefined>, holders: string[]): GridError {
  let first: GridError | undefined
  let reported: GridError | undefined
  const votes = new Map<string, number>()
  const reporters = new Set<string>()
  errs.forEach((e, i) => {
    if (e == null) return
    first ??= e
    const blamed = (e as any).blamed as string | undefined
    if (e.code === 'PEER_FAILED' && blamed != null) {
      votes.set(blamed, (votes.get(blamed) ?? 0) + 1)
      reporters.add(holders[i])
      reported ??= e
    }
  })
  const own = errs.find(e => e != null && e.code === 'UNREACHABLE')
  if (own != null) return own
  let best: string | undefined
  let bestVotes = 0
  for (const skip of [true, false]) {
    for (const p of holders) {
      const v = votes.get(p) ?? 0
      if (v > bestVotes && !(skip && reporters.has(p))) { best = p; bestVotes = v }
    }
    if (bestVotes > 0) break
  }
  if (bestVotes === 0) {
    for (const [p, v] of votes) if (v > bestVotes) { best = p; bestVotes = v }
  }
  if (best != null && reported != null) {
    const i = holders.indexOf(best)
    return new GridError('PEER_FAILED', `failed during the session (reported by ${bestVotes} holder(s)): ${reported.message}`, best, i >= 0 ? `holder ${i}` : 'peer')
  }
  return first as GridError
}
