// Shared by the client tests: check/assert, the run's summary line, and the
// requests every client makes. The model is a tiny random-weight one: tests check
// shapes, counts and parse results, never the words.
export let passed = 0;
export let failed = 0;

export async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.error(`ok   ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failed++;
    console.error(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
  }
}

export function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

// Runs fn, which must fail; returns the error.
export async function rejects(fn) {
  try {
    await fn();
  } catch (e) {
    return e;
  }
  throw new Error('no error');
}

// The OpenAI error object in an HTTP error body (a string or an object).
export function errorBody(body) {
  const o = typeof body === 'string' ? JSON.parse(body) : body;
  assert(o && o.error, `not an OpenAI error body: ${JSON.stringify(body)}`);
  return o.error;
}

export const messages = [
  { role: 'system', content: 'You clean up dictated text.' },
  { role: 'user', content: 'um so I I think it works' },
];

// A history in which the assistant called a tool and the tool answered.
export const toolHistory = [
  { role: 'user', content: 'What is the weather in Paris?' },
  {
    role: 'assistant', content: null,
    tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }],
  },
  { role: 'tool', tool_call_id: 'call_1', content: '{"sky":"sunny"}' },
  { role: 'user', content: 'Thanks. Clean this up: um the meeting is at at noon' },
];

// The sidecar under test runs with --ctx CONTEXT (test_openai.sh).
export const CONTEXT = Number(process.env.SIDECAR_CTX || 512);

export function finish() {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
