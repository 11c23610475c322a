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

// Without a token limit a generation runs to the end of the context, not to the seed's
// automatic limit (~69 tokens). gen() makes one request and returns {out, total,
// finish}: its output and total tokens and its finish reason ('stop' or 'length').
// The random test model, sampling at the default temperature 1, now and then draws its
// end token early (23 tokens once): that ends with 'stop', not a limit, so up to 3
// generations are made and one must run past 100 tokens; one that ends with 'length'
// must end at the context.
export async function runsToContext(gen) {
  const seen = [];
  for (let i = 0; i < 3; i++) {
    const { out, total, finish: why } = await gen();
    if (why === 'length')
      assert(total === CONTEXT, `length at ${total} tokens, context ${CONTEXT}`);
    else
      assert(why === 'stop', `finish reason ${why}`);
    seen.push(`${out} (${why})`);
    if (out > 100) return;
  }
  assert(false, `output tokens ${seen.join(', ')}`);
}

export function finish() {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
