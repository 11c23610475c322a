// The official OpenAI Node client (npm "openai", pinned in package-lock.json)
// against a running codictate sidecar: models list, chat completion, streaming,
// errors. Usage: node test.mjs BASE_URL (e.g. http://127.0.0.1:11400/v1)
import OpenAI from 'openai';

const baseURL = process.argv[2];
const client = new OpenAI({ baseURL, apiKey: 'not-needed', maxRetries: 0, timeout: 60000 });
let passed = 0;
let failed = 0;

async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.error(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.error(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

const messages = [
  { role: 'system', content: 'You clean up dictated text.' },
  { role: 'user', content: 'um so I I think it works' },
];

await check('models.list returns the loaded model', async () => {
  const page = await client.models.list();
  assert(page.data.length === 1, `models: ${JSON.stringify(page.data)}`);
  assert(page.data[0].object === 'model', 'object is model');
});

await check('chat.completions.create', async () => {
  const r = await client.chat.completions.create({
    model: 'local', messages, temperature: 0, max_tokens: 12, seed: 1,
  });
  assert(r.object === 'chat.completion', `object ${r.object}`);
  assert(r.id.startsWith('chatcmpl-'), `id ${r.id}`);
  assert(r.choices.length === 1, 'one choice');
  assert(r.choices[0].message.role === 'assistant', 'assistant role');
  assert(typeof r.choices[0].message.content === 'string', 'content is a string');
  assert(['stop', 'length'].includes(r.choices[0].finish_reason), r.choices[0].finish_reason);
  assert(r.usage.completion_tokens > 0 && r.usage.completion_tokens <= 12, 'usage');
  assert(r.usage.total_tokens === r.usage.prompt_tokens + r.usage.completion_tokens, 'total');
});

// Compared runs start from the same state (the prompt cached by the request before)
// with speculation off: its draft lengths follow measured decode times, and other
// batch shapes round differently on some CPUs (tests/integration/gen_trace.h).
await check('temperature 0 is deterministic', async () => {
  const req = { model: 'local', messages, temperature: 0, max_tokens: 10, speculative: false };
  const a = await client.chat.completions.create(req);
  const b = await client.chat.completions.create(req);
  assert(a.choices[0].message.content === b.choices[0].message.content, 'same text');
});

await check('streaming matches the non-streamed text', async () => {
  const full = await client.chat.completions.create({
    model: 'local', messages, temperature: 0, max_tokens: 16, speculative: false,
  });
  const stream = await client.chat.completions.create({
    model: 'local', messages, temperature: 0, max_tokens: 16, speculative: false, stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let chunks = 0;
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    chunks++;
    assert(chunk.object === 'chat.completion.chunk', chunk.object);
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta && c.delta.content) text += c.delta.content;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert(chunks >= 2, `chunks ${chunks}`);
  assert(finish !== null, 'a finish_reason came');
  assert(usage && usage.completion_tokens > 0, 'usage chunk');
  assert(text === full.choices[0].message.content, `stream "${text}" vs "${full.choices[0].message.content}"`);
});

await check('bad request is an APIError with status 400', async () => {
  try {
    await client.chat.completions.create({ model: 'local', messages: [] });
    throw new Error('no error');
  } catch (e) {
    assert(e instanceof OpenAI.APIError, `not an APIError: ${e}`);
    assert(e.status === 400, `status ${e.status}`);
    assert(/messages/.test(e.message), e.message);
  }
});

await check('prompt too long is a 400 APIError', async () => {
  try {
    await client.chat.completions.create({
      model: 'local', messages: [{ role: 'user', content: 'word '.repeat(20000) }],
    });
    throw new Error('no error');
  } catch (e) {
    assert(e instanceof OpenAI.APIError && e.status === 400, `got ${e}`);
    assert(/Prompt too long/.test(e.message), e.message);
    assert(e.code === 'context_length_exceeded', `code ${e.code}`);
    assert(e.type === 'invalid_request_error', `type ${e.type}`);
    assert(e.param === 'messages', `param ${e.param}`);
  }
});

await check('a wrong type is a 400 naming the param', async () => {
  try {
    await client.chat.completions.create({ model: 'local', messages, temperature: 'hot' });
    throw new Error('no error');
  } catch (e) {
    assert(e instanceof OpenAI.BadRequestError, `got ${e}`);
    assert(e.param === 'temperature' && e.type === 'invalid_request_error', `${e.param} ${e.type}`);
  }
});

await check('a wrong API key is an AuthenticationError', async () => {
  const bad = new OpenAI({ baseURL, apiKey: 'wrong', maxRetries: 0 });
  try {
    await bad.models.list();
    throw new Error('no error');
  } catch (e) {
    assert(e instanceof OpenAI.AuthenticationError, `got ${e}`);
    assert(e.code === 'invalid_api_key' && e.type === 'authentication_error', `${e.code} ${e.type}`);
  }
});

await check('an unknown path is a NotFoundError in OpenAI\'s shape', async () => {
  try {
    await client.get('/nope');
    throw new Error('no error');
  } catch (e) {
    assert(e instanceof OpenAI.NotFoundError, `got ${e}`);
    assert(e.type === 'invalid_request_error', `type ${e.type}`);
  }
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
