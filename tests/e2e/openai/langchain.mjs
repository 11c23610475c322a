// LangChain JS (npm "@langchain/openai" + "@langchain/core", pinned in
// package-lock.json) against a running codictate sidecar: invoke, stream,
// withStructuredOutput (jsonMode and jsonSchema), abort, tool-call histories, and
// options the sidecar refuses as 400s naming their param.
// Usage: node langchain.mjs BASE_URL (e.g. http://127.0.0.1:11400/v1)
import { AIMessage, HumanMessage, SystemMessage, ToolMessage } from '@langchain/core/messages';
import { ChatOpenAI } from '@langchain/openai';
import { z } from 'zod';
import { assert, check, finish, rejects, runsToContext } from './lib.mjs';

const baseURL = process.argv[2];
const chat = (opts = {}) => new ChatOpenAI({
  model: 'local', apiKey: 'not-needed', configuration: { baseURL }, maxRetries: 0, ...opts,
});
const messages = [new SystemMessage('You clean up dictated text.'), new HumanMessage('um so I I think it works')];

// LangChain wraps the openai client's errors: a 400 naming param.
async function badParam(param, fn) {
  const e = await rejects(fn);
  const status = e.status ?? e.statusCode ?? (e.cause && e.cause.status);
  assert(status === 400, `status ${status}: ${e}`);
  const p = e.param ?? (e.error && e.error.param) ?? (e.cause && e.cause.param);
  assert(p === param, `param ${p}, wanted ${param}: ${e.message}`);
}

await check('invoke: text, usage, finish reason', async () => {
  const r = await chat({ temperature: 0, maxTokens: 8 }).invoke(messages);
  assert(typeof r.content === 'string', 'content');
  assert(r.usage_metadata.output_tokens > 0 && r.usage_metadata.output_tokens <= 8, JSON.stringify(r.usage_metadata));
  assert(['stop', 'length'].includes(r.response_metadata.finish_reason), r.response_metadata.finish_reason);
});

await check('no maxTokens: generation runs to the end of the context', () =>
  runsToContext(async () => {
    const r = await chat().invoke(messages);
    const u = r.usage_metadata;
    return { out: u.output_tokens, total: u.total_tokens, finish: r.response_metadata.finish_reason };
  }));

await check('stream: chunks join to the text', async () => {
  let text = '';
  let chunks = 0;
  for await (const c of await chat({ temperature: 0, maxTokens: 12 }).stream(messages)) {
    text += c.content;
    chunks++;
  }
  assert(chunks >= 2, `chunks ${chunks}`);
  assert(typeof text === 'string', 'text');
});

await check('withStructuredOutput jsonMode: parses as JSON', async () => {
  const schema = { type: 'object', properties: { text: { type: 'string' } } }; // no zod: parsed, not validated
  for (const temperature of [0, 1]) {
    const r = await chat({ temperature, maxTokens: 150 }).withStructuredOutput(schema, { method: 'jsonMode' }).invoke(messages);
    assert(r && typeof r === 'object', JSON.stringify(r));
  }
});

await check('withStructuredOutput jsonSchema with zod: a valid object', async () => {
  const schema = z.object({
    cleaned: z.string().max(30),
    changed: z.boolean(),
    kind: z.enum(['statement', 'question']),
  });
  for (const temperature of [0, 1]) {
    const r = await chat({ temperature }).withStructuredOutput(schema, { method: 'jsonSchema', name: 'cleanup' }).invoke(messages);
    assert(typeof r.changed === 'boolean' && ['statement', 'question'].includes(r.kind), JSON.stringify(r));
  }
});

await check('withStructuredOutput functionCalling (tools) is a 400 naming tools', async () => {
  const schema = z.object({ cleaned: z.string() });
  await badParam('tools', () => chat().withStructuredOutput(schema, { method: 'functionCalling' }).invoke(messages));
});

await check('bindTools is a 400 naming tools', async () => {
  const tools = [{ type: 'function', function: { name: 'get_weather', description: 'weather', parameters: { type: 'object', properties: {} } } }];
  await badParam('tools', () => chat().bindTools(tools).invoke(messages));
});

await check('n: 2 is a 400 naming n; temperature 3 a 400 naming temperature', async () => {
  await badParam('n', () => chat({ n: 2 }).invoke(messages));
  await badParam('temperature', () => chat({ temperature: 3 }).invoke(messages));
});

await check('penalties, logprobs and seed -1 work', async () => {
  const r = await chat({ frequencyPenalty: 1, presencePenalty: 0.5, maxTokens: 4, logprobs: true, topLogprobs: 2 })
    .invoke(messages, { seed: -1 });
  const lp = r.response_metadata.logprobs;
  assert(lp && lp.content.length === r.usage_metadata.output_tokens, JSON.stringify(lp));
  assert(lp.content[0].top_logprobs.length === 2, 'top_logprobs');
});

await check('a tool-call history is text context', async () => {
  const r = await chat({ maxTokens: 4 }).invoke([
    new HumanMessage('What is the weather in Paris?'),
    new AIMessage({ content: '', tool_calls: [{ id: 'call_1', name: 'get_weather', args: { city: 'Paris' } }] }),
    new ToolMessage({ tool_call_id: 'call_1', content: '{"sky":"sunny"}' }),
    new HumanMessage('Thanks. Clean this up: um the meeting is at at noon'),
  ]);
  assert(r.usage_metadata.input_tokens > 30 && r.usage_metadata.output_tokens > 0, JSON.stringify(r.usage_metadata));
});

await check('abort mid-stream, then the next request is answered', async () => {
  const ac = new AbortController();
  let chunks = 0;
  try {
    const s = await chat({ modelKwargs: { ignore_eos: true } }).stream(messages, { signal: ac.signal });
    for await (const c of s) {
      if (c.content && ++chunks === 3) ac.abort();
    }
  } catch (e) {
    assert(e.name === 'AbortError' || /abort/i.test(String(e)), `got ${e}`);
  }
  assert(chunks >= 3 && chunks < 200, `chunks ${chunks}`);
  const r = await chat({ maxTokens: 3 }).invoke(messages);
  assert(r.usage_metadata.output_tokens > 0, 'answered after the abort');
});

finish();
