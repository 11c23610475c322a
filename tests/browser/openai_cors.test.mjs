// The sidecar's /v1 from a web page in a real browser (Debian's chromium, headless,
// driven by playwright-core). Run by tests/browser/openai_cors.sh, which starts the
// sidecar with a token and the tiny model and passes:
//   SIDECAR_URL       http://127.0.0.1:PORT (the sidecar)
//   TOKEN             its bearer token
//   NODE_MODULES_DIR  the node_modules with playwright-core (tests/browser/setup.sh)
// A small page server here serves an empty page on 127.0.0.1 (a loopback origin)
// and, through chromium's resolver, on evil.test (a foreign one). Prints
// "ok   NAME" / "FAIL NAME" per check and "N passed, N failed"; exit 0 when all
// passed, 1 otherwise, 77 when chromium cannot start.
import { createRequire } from 'node:module';
import http from 'node:http';
import path from 'node:path';

const require = createRequire(path.join(process.env.NODE_MODULES_DIR || '.', 'x.js'));
const { chromium } = require('playwright-core');

const SIDECAR = process.env.SIDECAR_URL;
const TOKEN = process.env.TOKEN;
let passed = 0, failed = 0;

async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.error(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.error(`FAIL ${name}\n  ${String(e && e.message ? e.message : e).split('\n').slice(0, 8).join('\n  ')}`);
  }
}
function eq(got, want, what) {
  if (got !== want) throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

const pages = http.createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/html' });
  res.end('<!doctype html><title>cors</title><p>local chat UI</p>');
});
await new Promise((r) => pages.listen(0, '127.0.0.1', r));
const pagePort = pages.address().port;

let browser;
try {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--host-resolver-rules=MAP evil.test 127.0.0.1'],
    headless: true,
  });
} catch (e) {
  console.error(`chromium could not start: ${e.message}`);
  pages.close();
  process.exit(77);
}
const page = await browser.newPage();

// Runs fetch(url, init) in the page; answers {status, body, type} or {error}.
const pageFetch = (url, init) => page.evaluate(async ([u, i]) => {
  try {
    const r = await fetch(u, i);
    return { status: r.status, body: await r.text(), retryAfter: r.headers.get('Retry-After') };
  } catch (e) {
    return { error: String(e) };
  }
}, [url, init]);

const chat = (stream, auth) => ({
  method: 'POST',
  headers: { 'Content-Type': 'application/json', ...(auth ? { Authorization: `Bearer ${TOKEN}` } : {}) },
  body: JSON.stringify({ messages: [{ role: 'user', content: 'Say hi' }], max_tokens: 8, temperature: 0, stream }),
});

await page.goto(`http://localhost:${pagePort}/`);

await check('loopback origin: chat completion through the preflight', async () => {
  const r = await pageFetch(`${SIDECAR}/v1/chat/completions`, chat(false, true));
  eq(r.error, undefined, 'fetch error');
  eq(r.status, 200, 'status');
  eq(JSON.parse(r.body).object, 'chat.completion', 'object');
});

await check('loopback origin: streamed chat completion', async () => {
  const r = await pageFetch(`${SIDECAR}/v1/chat/completions`, chat(true, true));
  eq(r.status, 200, 'status');
  eq(r.body.trimEnd().endsWith('data: [DONE]'), true, `stream ends with [DONE]: ${r.body.slice(-80)}`);
});

await check('loopback origin: GET /v1/models with the token', async () => {
  const r = await pageFetch(`${SIDECAR}/v1/models`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  eq(r.status, 200, 'status');
  eq(JSON.parse(r.body).data.length, 1, 'models');
});

await check('loopback origin: the token is still required (a readable 401)', async () => {
  const r = await pageFetch(`${SIDECAR}/v1/chat/completions`, chat(false, false));
  eq(r.status, 401, 'status');
  const e = JSON.parse(r.body).error;
  eq(e.type, 'authentication_error', 'type');
  eq(e.code, 'invalid_api_key', 'code');
});

await check('loopback origin: the seed endpoints stay closed to pages', async () => {
  const r = await pageFetch(`${SIDECAR}/status`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  eq(typeof r.error, 'string', `fetch should fail, got ${JSON.stringify(r)}`);
});

await page.goto(`http://evil.test:${pagePort}/`);

await check('foreign origin: refused', async () => {
  const r = await pageFetch(`${SIDECAR}/v1/chat/completions`, chat(false, true));
  eq(typeof r.error, 'string', `fetch should fail, got ${JSON.stringify(r)}`);
});

await check('foreign origin: a simple GET is refused too', async () => {
  const r = await pageFetch(`${SIDECAR}/v1/models`, {});
  eq(typeof r.error, 'string', `fetch should fail, got ${JSON.stringify(r)}`);
});

await browser.close();
pages.close();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
