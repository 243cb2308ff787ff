// The ABI's MessagePack checked against @msgpack/msgpack, the codec a
// JavaScript host would use (wasm/abi/README.md). Two modes:
//
//   node crosscheck.mjs codec CASES.json
//     CASES.json is an array of messages as hex, encoded by the guest's codec
//     (Go). For each, prints one JSON line: {"value": V, "again": HEX}, V the
//     value @msgpack/msgpack decodes (in the canonical form below) and HEX what
//     it encodes that value back to. wasm/abi's TestAgainstMsgpackJS compares V
//     with what vmihailenco/msgpack decodes, and decodes HEX with the guest's
//     codec.
//
//   node crosscheck.mjs live tcpeng.wasm SYN_HEX
//     scenario.mjs in Node: two instances of the module, written to and read
//     with @msgpack/msgpack alone: a handshake, data both ways, a close. The
//     client's SYN must be SYN_HEX (the native engine's for the same Config
//     and step). Prints one JSON line of figures (compile and instantiate
//     times) or exits 1 with what failed. Run by wasm/guest's TestNodeMsgpack.
import { readFileSync } from "node:fs";
import { WASI } from "node:wasi";
import { encode, decode } from "@msgpack/msgpack";
import { scenario, hex, unhex } from "./scenario.mjs";

// now and deadline reach 2^63-1 (never): 64-bit integers as BigInt.
const opts = { useBigInt64: true };

// canonical: the decoded value as JSON both sides can build, integers as
// decimal strings (so int64 survives), bin as hex, maps with sorted keys.
function canonical(v) {
  if (v === null || v === undefined) return null;
  if (typeof v === "boolean") return v;
  if (typeof v === "bigint") return { i: v.toString() };
  if (typeof v === "number") return Number.isInteger(v) ? { i: String(v) } : { f: v };
  if (typeof v === "string") return { s: v };
  if (v instanceof Uint8Array) return { b: hex(v) };
  if (Array.isArray(v)) return v.map(canonical);
  const m = {};
  for (const k of Object.keys(v).sort()) m[k] = canonical(v[k]);
  return { m };
}

function fail(what) {
  console.error("FAIL " + what);
  process.exit(1);
}

if (process.argv[2] === "codec") {
  const cases = JSON.parse(readFileSync(process.argv[3], "utf8"));
  const lines = cases.map((h) => {
    const v = decode(unhex(h), opts);
    return JSON.stringify({ value: canonical(v), again: hex(encode(v, opts)) });
  });
  process.stdout.write(lines.join("\n") + "\n");
} else if (process.argv[2] === "live") {
  const wasi = () => {
    const w = new WASI({ version: "preview1" }); // no preopens, args or env
    return { imports: w.wasiImport, initialize: (inst) => w.initialize(inst) };
  };
  try {
    const fig = await scenario(readFileSync(process.argv[3]), wasi, { encode: (v) => encode(v, opts), decode: (b) => decode(b, opts) }, process.argv[4]);
    process.stdout.write(JSON.stringify(fig) + "\n");
  } catch (e) {
    fail(e.message);
  }
} else {
  fail("usage: node crosscheck.mjs codec CASES.json | live tcpeng.wasm SYN_HEX");
}
