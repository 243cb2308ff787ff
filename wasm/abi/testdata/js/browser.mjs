// scenario.mjs in Chromium (headless, through playwright-core): two instances
// of tcpeng.wasm in a page, with @bjorn3/browser_wasi_shim as WASI and
// @msgpack/msgpack as the codec: a handshake whose SYN must be SYN_HEX, data
// both ways, a close. Each run is a new page in a fresh browser profile, so the
// module is compiled from its bytes every time (cold start).
//
//   node browser.mjs tcpeng.wasm SYN_HEX [RUNS] [CHROMIUM]
//
// Prints one JSON line: {"runs": [{fetchMs, compileMs, instantiateMs, ...}]},
// or exits 1 with what failed. Run by wasm/guest's TestChromium.
import { readFileSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const [wasmPath, synHex, runsArg, exe] = process.argv.slice(2);
if (!wasmPath || !synHex) {
  console.error("usage: node browser.mjs tcpeng.wasm SYN_HEX [RUNS] [CHROMIUM]");
  process.exit(2);
}
const runs = Number(runsArg ?? 3);

const page = `<!doctype html><meta charset="utf-8"><title>tcpeng.wasm</title>
<script type="importmap">{"imports": {
  "@msgpack/msgpack": "/node_modules/@msgpack/msgpack/dist.esm/index.mjs",
  "@bjorn3/browser_wasi_shim": "/node_modules/@bjorn3/browser_wasi_shim/dist/index.js"}}</script>
<script type="module" src="/browser_page.mjs"></script>`;

// The server answers the page, the module, and the files of this directory
// and its node_modules, nothing else.
const server = createServer((req, res) => {
  const path = new URL(req.url, "http://x").pathname;
  let body, type;
  try {
    if (path === "/") [body, type] = [page, "text/html"];
    else if (path === "/tcpeng.wasm") [body, type] = [readFileSync(wasmPath), "application/wasm"];
    else if (/^\/[\w@./-]+\.m?js$/.test(path) && !path.includes("..")) [body, type] = [readFileSync(join(here, path)), "text/javascript"];
  } catch {
    body = undefined;
  }
  if (body === undefined) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { "content-type": type, "cache-control": "no-store" }).end(body);
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const url = `http://127.0.0.1:${server.address().port}/`;

const profile = mkdtempSync(join(tmpdir(), "tcpeng-chromium-"));
let ctx;
try {
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: exe || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run"],
  });
  const out = [];
  for (let i = 0; i < runs; i++) {
    const p = await ctx.newPage();
    const errors = [];
    p.on("pageerror", (e) => errors.push(e.message));
    p.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    await p.goto(url);
    await p.waitForFunction(() => window.tcpengReady === true, null, { timeout: 30000 }).catch(() => {
      throw new Error("the page did not load: " + errors.join("; "));
    });
    out.push(await p.evaluate((s) => window.tcpengRun(s), synHex));
    await p.close();
  }
  process.stdout.write(JSON.stringify({ runs: out }) + "\n");
} catch (e) {
  console.error("FAIL " + e.message);
  process.exitCode = 1;
} finally {
  await ctx?.close();
  server.close();
  rmSync(profile, { recursive: true, force: true });
}
