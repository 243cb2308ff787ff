import { readFileSync } from "node:fs";
import { WASI } from "node:wasi";
// A minimal MessagePack codec: what a host needs of it for this schema.
function enc(v, out = []) {
  if (v === null || v === undefined) out.push(0xc0);
  else if (v === true) out.push(0xc3); else if (v === false) out.push(0xc2);
  else if (typeof v === "number") {
    if (v >= 0 && v < 128) out.push(v);
    else if (v >= 0 && v < 2 ** 32) out.push(0xce, v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255);
    else throw new Error("int " + v);
  } else if (typeof v === "bigint") { out.push(0xd3); for (let i = 7; i >= 0; i--) out.push(Number((BigInt.asUintN(64, v) >> BigInt(8 * i)) & 255n)); }
  else if (typeof v === "string") { const b = new TextEncoder().encode(v); out.push(0xa0 | b.length, ...b); }
  else if (v instanceof Uint8Array) { out.push(0xc5, v.length >> 8, v.length & 255, ...v); }
  else if (Array.isArray(v)) { out.push(0xdc, v.length >> 8, v.length & 255); v.forEach(x => enc(x, out)); }
  else { const k = Object.keys(v); out.push(0x80 | k.length); k.forEach(x => { enc(x, out); enc(v[x], out); }); }
  return out;
}
function dec(b) {
  let i = 0; const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  function r() {
    const c = b[i++];
    if (c < 0x80) return c; if (c >= 0xe0) return c - 256;
    if ((c & 0xf0) === 0x90) { const n = c & 15; return Array.from({ length: n }, r); }
    if ((c & 0xe0) === 0xa0) { const n = c & 31; const s = new TextDecoder().decode(b.subarray(i, i + n)); i += n; return s; }
    switch (c) {
      case 0xc0: return null; case 0xc2: return false; case 0xc3: return true;
      case 0xc4: { const n = b[i++]; const v = b.slice(i, i + n); i += n; return v; }
      case 0xc5: { const n = dv.getUint16(i); i += 2; const v = b.slice(i, i + n); i += n; return v; }
      case 0xcc: return b[i++]; case 0xcd: { const v = dv.getUint16(i); i += 2; return v; }
      case 0xce: { const v = dv.getUint32(i); i += 4; return v; }
      case 0xcf: { const v = dv.getBigUint64(i); i += 8; return v; }
      case 0xd3: { const v = dv.getBigInt64(i); i += 8; return v; }
      case 0xd9: { const n = b[i++]; const s = new TextDecoder().decode(b.subarray(i, i + n)); i += n; return s; }
      case 0xdc: { const n = dv.getUint16(i); i += 2; return Array.from({ length: n }, r); }
    }
    throw new Error("byte " + c.toString(16));
  }
  return r();
}
// Usage: node abi_smoke.mjs tcpeng.wasm SYN_HEX
// Drives the module through the ABI alone (wasm/abi/README.md) and checks the
// answers; SYN_HEX is the SYN the native engine sends for the same step.
function check(what, ok, got) {
  if (!ok) { console.error("FAIL", what, JSON.stringify(got, (k, v) => typeof v === "bigint" ? v.toString() : v)); process.exit(1); }
}
const hex = (b) => Buffer.from(b).toString("hex");
const wasi = new WASI({ version: "preview1" });
const { instance } = await WebAssembly.instantiate(readFileSync(process.argv[2]), { wasi_snapshot_preview1: wasi.wasiImport });
const x = instance.exports;
wasi.initialize(instance); // calls _initialize
check("abi_version", x.abi_version() === 0x10002, x.abi_version());
function call(fn, msg) {
  msg = Uint8Array.from(msg);
  const ptr = x.alloc(msg.length);
  new Uint8Array(x.memory.buffer, ptr, msg.length).set(msg);
  const r = BigInt.asUintN(64, fn(ptr, msg.length)); // an i64 arrives as a signed BigInt
  const p = Number(r >> 32n), n = Number(r & 0xffffffffn);
  return dec(new Uint8Array(x.memory.buffer, p, n));
}
let r = call(x.init, enc({ mtu: 1500 }));
check("init without addresses", r[0] === 4 && r[1].startsWith("tcpeng: Config.Addrs has no IPv4 address"), r);
r = call(x.init, enc({ addrs: [new Uint8Array([10, 7, 0, 2])], seed: 1, key: new Uint8Array(16).fill(7), traceStates: true }));
check("init", r[0] === 0 && r[1] === "", r);
// dial 10.7.0.1:80; read on an ID that names nothing
r = call(x.step, enc([0, [], [[2, 0, [new Uint8Array([10, 7, 0, 1]), 80], null, null, 0, 0, 0], [5, 1, null, null, null, 100, 0, 0]]]));
const [status, message, deadline, results, events, frames] = r;
check("step status", status === 0 && message === "" && deadline === 1000000000, r);
check("dial result", results.length === 2 && results[0][0] === 1 << 20 && results[0][2] === 0 && results[0][3] === null, results);
check("read result", results[1][2] === 10, results);
check("state event", events.length === 1 && events[0].join() === [9, 1 << 20, 0, 0, 2].join(), events);
check("SYN", frames.length === 1 && hex(frames[0]) === process.argv[3], frames.map(hex));
r = call(x.step, [0x93, 0xc1]);
check("malformed", r[0] === 1 && r[1].startsWith("abi: malformed message at byte 1") && r[2] === 1000000000, r);
r = call((p, n) => x.debug_fault(1), []);
check("panic", r.length === 2 && r[0] === 2 && r[1] === "guest panic: debug_fault asked for a panic", r);
r = call(x.step, enc([0, [], []]));
check("no engine after a panic", r[0] === 3, r);
let trapped = false;
try { x.debug_fault(2); } catch (e) { trapped = e instanceof WebAssembly.RuntimeError && /unreachable/.test(e.message); }
check("trap", trapped, null);
console.log("ok");
