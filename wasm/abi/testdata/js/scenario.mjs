// A JavaScript host's whole conversation with tcpeng.wasm, written for any
// JavaScript engine (Node, Chromium): the host gives it the module's bytes,
// its WASI and a MessagePack codec (wasm/abi/README.md). crosscheck.mjs runs
// it in Node, browser.mjs in Chromium, both with @msgpack/msgpack.

export const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
export const unhex = (s) => Uint8Array.from(s.match(/../g) ?? [], (x) => parseInt(x, 16));

function fail(what) {
  throw new Error(what);
}

// start instantiates the module and starts an engine with config: what a
// JavaScript host does (wasm/abi/README.md, "The module" and "Exports").
// newWASI gives the host's WASI: {imports, initialize(instance)}.
async function start(mod, newWASI, codec, config) {
  const { encode, decode } = codec;
  const wasi = newWASI();
  const inst = await WebAssembly.instantiate(mod, { wasi_snapshot_preview1: wasi.imports });
  wasi.initialize(inst); // _initialize
  const x = inst.exports;
  if (x.abi_version() >>> 16 !== 1) fail("abi_version " + x.abi_version().toString(16));
  const call = (fn, msg) => {
    const ptr = x.alloc(msg.length);
    if (ptr === 0) fail("alloc refused " + msg.length + " bytes");
    new Uint8Array(x.memory.buffer, ptr, msg.length).set(msg);
    const r = BigInt.asUintN(64, fn(ptr, msg.length));
    // The response is valid until the next call: decode it now (bin values
    // are views of guest memory; copy what must outlive the call).
    return decode(new Uint8Array(x.memory.buffer, Number(r >> 32n), Number(r & 0xffffffffn)));
  };
  const [status, message] = call(x.init, encode(config));
  if (status !== 0) fail(`init: status ${status}: ${message}`);
  return {
    step(now, frames, commands) {
      const r = call(x.step, encode([BigInt(now), frames, commands]));
      const [st, msg, deadline, results, events, out] = r;
      if (st !== 0) fail(`step: status ${st}: ${msg}`);
      if (typeof deadline !== "bigint" && typeof deadline !== "number") fail("deadline " + deadline);
      return {
        results: results.map(([conn, n, err, data]) => ({ conn, n, err, data: data && data.slice() })),
        events: events.map(([kind, conn, err, from, to]) => ({ kind, conn, err, from, to })),
        frames: out.map((f) => f.slice()),
        deadline,
      };
    },
  };
}

const OP = { listen: 1, dial: 2, accept: 3, write: 4, read: 5, close: 7 };
const EV = { connected: 1, closed: 6, state: 9 };
const cmd = (op, conn, addr, data, n) => [op, conn, addr ?? null, null, data ?? null, n ?? 0, 0, 0];

// scenario compiles the module's bytes and runs two engines through the ABI
// alone: a handshake, data both ways, a close. The client's SYN must be
// synHex (the native engine's for the same Config and step). It returns the
// cold start: compile, and instantiate with _initialize and init, in ms; it
// throws what failed.
export async function scenario(bytes, newWASI, codec, synHex) {
  let t0 = performance.now();
  const mod = await WebAssembly.compile(bytes);
  const compileMs = performance.now() - t0;
  const key = new Uint8Array(16).fill(7);
  t0 = performance.now();
  // The client's Config is the Go test's native one, so its SYN matches.
  const client = await start(mod, newWASI, codec, { addrs: [unhex("0a070002")], seed: 1, key, traceStates: true });
  const instantiateMs = performance.now() - t0;
  const server = await start(mod, newWASI, codec, { addrs: [unhex("0a070001")], seed: 2n ** 64n - 1n, key, traceStates: true });

  let now = 0;
  let toServer = [], toClient = [];
  const events = { client: [], server: [] };
  // turn steps one side with the frames queued for it and commands.
  function turn(side, commands = []) {
    const eng = side === "client" ? client : server;
    const inbox = side === "client" ? toClient : toServer;
    if (side === "client") toClient = []; else toServer = [];
    const out = eng.step(now, inbox, commands);
    events[side].push(...out.events);
    if (side === "client") toServer.push(...out.frames); else toClient.push(...out.frames);
    return out;
  }
  function settle() {
    for (let i = 0; i < 100 && (toServer.length || toClient.length); i++) {
      now += 1_000_000;
      turn("server");
      turn("client");
    }
  }

  const lst = turn("server", [cmd(OP.listen, 0, [unhex("0a070001"), 7])]).results[0];
  if (lst.err !== 0) fail("listen: err " + lst.err);
  const dial = turn("client", [cmd(OP.dial, 0, [unhex("0a070001"), 7])]);
  const c = dial.results[0].conn;
  if (dial.frames.length !== 1 || hex(dial.frames[0]) !== synHex)
    fail(`the SYN differs from the native engine's:\n${dial.frames.map(hex)}\nwant\n${synHex}`);
  settle();
  if (!events.client.some((e) => e.kind === EV.connected && e.conn === c)) fail("the client never connected");
  const s = turn("server", [cmd(OP.accept, lst.conn)]).results[0];
  if (s.err !== 0) fail("accept: err " + s.err);

  const hello = new TextEncoder().encode("hello through @msgpack/msgpack");
  const wr = turn("client", [cmd(OP.write, c, null, hello)]).results[0];
  if (wr.n !== hello.length) fail("write took " + wr.n);
  settle();
  const rd = turn("server", [cmd(OP.read, s.conn, null, null, 1024)]).results[0];
  if (rd.err !== 0 || hex(rd.data) !== hex(hello)) fail(`server read ${rd.err} ${rd.data && hex(rd.data)}`);
  turn("server", [cmd(OP.write, s.conn, null, rd.data), cmd(OP.close, s.conn)]);
  settle();
  const back = turn("client", [cmd(OP.read, c, null, null, 1024)]).results[0];
  if (back.err !== 0 || hex(back.data) !== hex(hello)) fail(`client read ${back.err} ${back.data && hex(back.data)}`);
  const eof = turn("client", [cmd(OP.read, c, null, null, 1024)]).results[0];
  if (eof.err !== 2) fail("after the data the client read err " + eof.err + ", want eof (2)");
  turn("client", [cmd(OP.close, c)]);
  settle();
  // RFC 9293 §3.3.2, the server closing first: its connection goes
  // FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT; the client's CLOSE-WAIT, LAST-ACK,
  // CLOSED.
  const want = {
    client: [[0, 2], [2, 4], [4, 7], [7, 9], [9, 0]],
    server: [[1, 3], [3, 4], [4, 5], [5, 6], [6, 10]],
  };
  const conn = { client: c, server: s.conn };
  for (const side of ["client", "server"]) {
    const got = events[side].filter((e) => e.kind === EV.state && e.conn === conn[side]).map((e) => [e.from, e.to]);
    if (JSON.stringify(got) !== JSON.stringify(want[side]))
      fail(`${side} states ${JSON.stringify(got)}, want ${JSON.stringify(want[side])}`);
  }
  if (!events.client.some((e) => e.kind === EV.closed && e.conn === c)) fail("the client's connection never closed");
  // An engine with nothing left to time answers never: 2^63-1, a BigInt.
  const idle = turn("client").deadline;
  if (idle !== 2n ** 63n - 1n) fail("the idle client's deadline is " + idle + ", want 2^63-1");
  return { compileMs, instantiateMs, bytes: bytes.length };
}
