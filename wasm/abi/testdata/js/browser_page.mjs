// Loaded by browser.mjs's page in Chromium: scenario.mjs with
// @bjorn3/browser_wasi_shim as WASI and @msgpack/msgpack as the codec.
import { WASI, OpenFile, File, ConsoleStdout } from "@bjorn3/browser_wasi_shim";
import { encode, decode } from "@msgpack/msgpack";
import { scenario } from "./scenario.mjs";

const opts = { useBigInt64: true };

function newWASI() {
  // No arguments, no environment, no files: stdin empty, stdout and stderr to
  // the console (the Go runtime writes there only if it crashes).
  const w = new WASI([], [], [
    new OpenFile(new File([])),
    ConsoleStdout.lineBuffered((l) => console.log(l)),
    ConsoleStdout.lineBuffered((l) => console.warn(l)),
  ]);
  return { imports: w.wasiImport, initialize: (inst) => w.initialize(inst) };
}

window.tcpengRun = async (synHex) => {
  const t0 = performance.now();
  const bytes = new Uint8Array(await (await fetch("/tcpeng.wasm")).arrayBuffer());
  const fetchMs = performance.now() - t0;
  const fig = await scenario(bytes, newWASI, { encode: (v) => encode(v, opts), decode: (b) => decode(b, opts) }, synHex);
  return { fetchMs, ...fig, userAgent: navigator.userAgent };
};
window.tcpengReady = true;
