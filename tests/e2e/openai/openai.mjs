// The official OpenAI Node client (npm "openai", pinned in package-lock.json)
// against a running codictate sidecar: models, chat completion, streaming,
// OpenAI's defaults, every option working or a 400 naming its param, structured
// output, logprobs, tool-call histories, abort, errors.
// Usage: node openai.mjs BASE_URL (e.g. http://127.0.0.1:11400/v1)
import OpenAI from 'openai';
import { assert, check, finish, messages, rejects, runsToContext, toolHistory } from './lib.mjs';

const baseURL = process.argv[2];
const client = new OpenAI({ baseURL, apiKey: 'not-needed', maxRetries: 0, timeout: 120000 });

// A 400 BadRequestError in OpenAI's shape that names param.
async function badParam(param, req) {
  const e = await rejects(() => client.chat.completions.create({ model: 'local', messages, ...req }));
  assert(e instanceof OpenAI.BadRequestError, `not a BadRequestError: ${e}`);
  assert(e.param === param, `param ${e.param}, wanted ${param} (${e.message})`);
  assert(e.type === 'invalid_request_error', `type ${e.type}`);
  return e;
}

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

await check('models.retrieve: the loaded model; an unknown id is a NotFoundError', async () => {
  const page = await client.models.list();
  const m = await client.models.retrieve(page.data[0].id);
  assert(m.id === page.data[0].id && m.object === 'model', JSON.stringify(m));
  const e = await rejects(() => client.models.retrieve('no-such-model'));
  assert(e instanceof OpenAI.NotFoundError, `got ${e}`);
  assert(e.code === 'model_not_found' && e.param === 'model', `${e.code} ${e.param}`);
});

// OpenAI's defaults, not the seed's: no max_tokens means the context is the limit
// (the seed's automatic limit stopped at ~69 tokens here).
await check('no max_tokens: generation runs to the end of the context', () =>
  runsToContext(async () => {
    const r = await client.chat.completions.create({ model: 'local', messages });
    return { out: r.usage.completion_tokens, total: r.usage.total_tokens, finish: r.choices[0].finish_reason };
  }));

await check('max_completion_tokens and max_tokens both limit', async () => {
  const a = await client.chat.completions.create({ model: 'local', messages, max_completion_tokens: 5 });
  const b = await client.chat.completions.create({ model: 'local', messages, max_tokens: 6 });
  assert(a.usage.completion_tokens <= 5 && b.usage.completion_tokens <= 6, 'limits');
});

await check('n: 1 works, n: 2 is a 400 naming n', async () => {
  const r = await client.chat.completions.create({ model: 'local', messages, n: 1, max_tokens: 3 });
  assert(r.choices.length === 1, 'one choice');
  await badParam('n', { n: 2 });
});

await check('temperature over 2 or under 0 is a 400 naming temperature', async () => {
  await badParam('temperature', { temperature: 2.5 });
  await badParam('temperature', { temperature: -0.1 });
  const r = await client.chat.completions.create({ model: 'local', messages, temperature: 2, max_tokens: 3 });
  assert(r.usage.completion_tokens > 0, 'temperature 2 works');
});

await check('seed -1 is a random seed', async () => {
  const r = await client.chat.completions.create({ model: 'local', messages, seed: -1, max_tokens: 3 });
  assert(r.usage.completion_tokens > 0, 'generated');
});

await check('frequency_penalty / presence_penalty work within -2..2, else a 400', async () => {
  const r = await client.chat.completions.create({
    model: 'local', messages, frequency_penalty: 2, presence_penalty: -2, max_tokens: 8, temperature: 0,
  });
  assert(r.usage.completion_tokens > 0, 'generated');
  await badParam('frequency_penalty', { frequency_penalty: 2.5 });
  await badParam('presence_penalty', { presence_penalty: -3 });
});

// OpenAI's penalties at their strongest: a token that came once loses 4 (2 + 2)
// against the rest, more than the tiny model's logits ever part by, so greedy
// decoding, which repeats tokens here without them, repeats none.
await check('frequency_penalty and presence_penalty stop greedy repeats', async () => {
  const req = { model: 'local', messages, temperature: 0, max_tokens: 40, logprobs: true };
  const plain = await client.chat.completions.create(req);
  const pen = await client.chat.completions.create({ ...req, frequency_penalty: 2, presence_penalty: 2 });
  const repeats = (r) => {
    const toks = r.choices[0].logprobs.content.map((t) => t.token);
    return toks.length - new Set(toks).size;
  };
  assert(repeats(pen) === 0, `${repeats(pen)} repeats with the penalties (${repeats(plain)} without)`);
});

await check('tools are a 400 naming tools (tool_choice "none" is fine)', async () => {
  const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: {} } } }];
  const e = await badParam('tools', { tools });
  assert(/not supported/.test(e.message), e.message);
  const r = await client.chat.completions.create({ model: 'local', messages, tools, tool_choice: 'none', max_tokens: 3 });
  assert(r.choices[0].message.content !== undefined, 'answered');
  await badParam('tool_choice', { tool_choice: 'required' });
});

await check('logit_bias is a 400 naming logit_bias', async () => {
  await badParam('logit_bias', { logit_bias: { 100: 5 } });
});

await check('a history with tool calls and tool results is text context', async () => {
  const r = await client.chat.completions.create({ model: 'local', messages: toolHistory, max_tokens: 5 });
  assert(r.usage.prompt_tokens > 30, `prompt_tokens ${r.usage.prompt_tokens}`);
  assert(r.usage.completion_tokens > 0, 'generated');
});

await check('logprobs: one entry per token, top_logprobs alternatives, OpenAI\'s shape', async () => {
  const r = await client.chat.completions.create({
    model: 'local', messages, max_tokens: 6, logprobs: true, top_logprobs: 3, temperature: 0,
  });
  const lp = r.choices[0].logprobs.content;
  assert(lp.length === r.usage.completion_tokens, `${lp.length} entries, ${r.usage.completion_tokens} tokens`);
  for (const t of lp) {
    assert(typeof t.token === 'string' && t.logprob <= 0 && Array.isArray(t.bytes), JSON.stringify(t));
    assert(t.top_logprobs.length === 3, `top ${t.top_logprobs.length}`);
    // Greedy: the chosen token is the likeliest.
    assert(Math.abs(t.top_logprobs[0].logprob - t.logprob) < 1e-4, JSON.stringify(t));
    assert(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob, 'best first');
  }
  const bytes = Buffer.concat(lp.map((t) => Buffer.from(t.bytes))).toString('utf8');
  if (!bytes.includes('\ufffd')) // a character split across tokens is replaced in the text
    assert(bytes === r.choices[0].message.content, `bytes "${bytes}" vs "${r.choices[0].message.content}"`);
  const plain = await client.chat.completions.create({ model: 'local', messages, max_tokens: 2 });
  assert(plain.choices[0].logprobs === null, 'no logprobs unless asked');
  await badParam('top_logprobs', { top_logprobs: 2 });
  await badParam('top_logprobs', { logprobs: true, top_logprobs: 21 });
});

await check('logprobs streamed', async () => {
  const stream = await client.chat.completions.create({
    model: 'local', messages, max_tokens: 5, logprobs: true, top_logprobs: 1, stream: true,
    stream_options: { include_usage: true },
  });
  let n = 0;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) if (c.logprobs && c.logprobs.content) n += c.logprobs.content.length;
  }
  assert(usage && n === usage.completion_tokens, `${n} entries, ${usage && usage.completion_tokens} tokens`);
});

await check('response_format json_object: the output parses as a JSON object', async () => {
  for (const temperature of [0, 1]) {
    // max_tokens keeps the run short (a random model never ends a string itself).
    const r = await client.chat.completions.create({
      model: 'local', messages, temperature, max_tokens: 150, response_format: { type: 'json_object' },
    });
    const o = JSON.parse(r.choices[0].message.content);
    assert(o && typeof o === 'object' && !Array.isArray(o), r.choices[0].message.content);
  }
  // Cut short by max_tokens, it is still closed.
  const r = await client.chat.completions.create({
    model: 'local', messages, max_tokens: 12, response_format: { type: 'json_object' },
  });
  JSON.parse(r.choices[0].message.content);
  assert(r.usage.completion_tokens <= 12, `tokens ${r.usage.completion_tokens}`);
});

const schema = {
  type: 'object',
  properties: {
    title: { type: 'string', maxLength: 24 },
    done: { type: 'boolean' },
    count: { type: 'integer', minimum: 0 },
    mood: { type: 'string', enum: ['calm', 'busy'] },
    tags: { type: 'array', items: { type: 'string', maxLength: 8 }, maxItems: 3 },
    note: { type: ['string', 'null'], maxLength: 10 },
  },
  required: ['title', 'done', 'count', 'mood', 'tags', 'note'],
  additionalProperties: false,
};

await check('response_format json_schema: the output follows the schema', async () => {
  for (const temperature of [0, 1]) {
    const r = await client.chat.completions.create({
      model: 'local', messages, temperature,
      response_format: { type: 'json_schema', json_schema: { name: 'note', strict: true, schema } },
    });
    const o = JSON.parse(r.choices[0].message.content);
    // JSON Schema's maxLength counts characters (code points); JavaScript's
    // .length counts UTF-16 units, two for a character outside the BMP.
    const chars = (s) => [...s].length;
    assert(typeof o.title === 'string' && chars(o.title) <= 24, `title ${JSON.stringify(o.title)}`);
    assert(typeof o.done === 'boolean', 'done');
    assert(Number.isInteger(o.count) && o.count >= 0, `count ${o.count}`);
    assert(['calm', 'busy'].includes(o.mood), `mood ${o.mood}`);
    assert(Array.isArray(o.tags) && o.tags.length <= 3, 'tags');
    assert(o.note === null || (typeof o.note === 'string' && chars(o.note) <= 10), `note ${JSON.stringify(o.note)}`);
  }
});

await check('a schema keyword the grammar cannot hold is a 400 naming response_format', async () => {
  const e = await badParam('response_format', {
    response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', pattern: '^a+$' } } },
  });
  assert(/pattern/.test(e.message), e.message);
  await badParam('response_format', { response_format: { type: 'xml' } });
});

await check('abort mid-stream, then the sidecar answers the next request', async () => {
  const ac = new AbortController();
  const stream = await client.chat.completions.create(
    { model: 'local', messages, stream: true, ignore_eos: true, max_tokens: 100000 }, { signal: ac.signal });
  let chunks = 0;
  try {
    for await (const chunk of stream) {
      if (chunk.choices.length && ++chunks === 3) ac.abort();
    }
  } catch (e) {
    assert(e instanceof OpenAI.APIUserAbortError || e.name === 'AbortError', `got ${e}`);
  }
  assert(chunks >= 3 && chunks < 200, `chunks after the abort: ${chunks}`);
  const r = await client.chat.completions.create({ model: 'local', messages, max_tokens: 3 });
  assert(r.usage.completion_tokens > 0, 'answered after the abort');
});

finish();
