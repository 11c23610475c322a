// The Vercel AI SDK (npm "ai" + "@ai-sdk/openai-compatible", pinned in
// package-lock.json) against a running codictate sidecar: generateText, streamText,
// structured output (generateObject with a zod schema through json_schema, and
// through json_object without one), abort, tool-call histories, and options the
// sidecar refuses as 400s naming their param.
// Usage: node aisdk.mjs BASE_URL (e.g. http://127.0.0.1:11400/v1)
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { APICallError, generateObject, generateText, jsonSchema, streamText, tool } from 'ai';
import { z } from 'zod';
import { assert, check, errorBody, finish, rejects, runsToContext } from './lib.mjs';

globalThis.AI_SDK_LOG_WARNINGS = false; // generateObject is deprecated in v7, and tested here

const baseURL = process.argv[2];
const provider = createOpenAICompatible({
  name: 'codictate', baseURL, apiKey: 'not-needed', supportsStructuredOutputs: true,
  includeUsage: true,
});
const plainProvider = createOpenAICompatible({ name: 'codictate', baseURL, apiKey: 'not-needed' });
const model = provider.chatModel('local');
const system = 'You clean up dictated text.';
const prompt = 'um so I I think it works';

// An APICallError for a 400 whose OpenAI error names param.
async function badParam(param, fn) {
  const e = await rejects(fn);
  const err = APICallError.isInstance(e) ? e : e.lastError || (e.cause && APICallError.isInstance(e.cause) ? e.cause : e);
  assert(APICallError.isInstance(err), `not an APICallError: ${e}`);
  assert(err.statusCode === 400, `status ${err.statusCode}`);
  const o = errorBody(err.responseBody);
  assert(o.param === param && o.type === 'invalid_request_error', `${o.param} ${o.type}: ${o.message}`);
  return o;
}

await check('generateText', async () => {
  const r = await generateText({ model, system, prompt, maxOutputTokens: 8, temperature: 0, maxRetries: 0 });
  assert(typeof r.text === 'string', 'text');
  assert(r.usage.outputTokens > 0 && r.usage.outputTokens <= 8, `usage ${JSON.stringify(r.usage)}`);
  assert(['stop', 'length'].includes(r.finishReason.unified ?? r.finishReason), `finish ${JSON.stringify(r.finishReason)}`);
});

// OpenAI's defaults: without maxOutputTokens the context is the limit.
await check('no maxOutputTokens: not cut at the seed\'s automatic limit', () =>
  runsToContext(async () => {
    const r = await generateText({ model, system, prompt, maxRetries: 0 });
    return {
      out: r.usage.outputTokens, total: r.usage.inputTokens + r.usage.outputTokens,
      finish: r.finishReason.unified ?? r.finishReason,
    };
  }));

await check('streamText: text deltas, a finish reason and usage', async () => {
  const r = streamText({ model, system, prompt, maxOutputTokens: 12, temperature: 0, maxRetries: 0 });
  let text = '';
  let parts = 0;
  for await (const delta of r.textStream) {
    text += delta;
    parts++;
  }
  const usage = await r.usage;
  assert(parts >= 1, 'deltas');
  assert(usage.outputTokens > 0, `usage ${JSON.stringify(usage)}`);
  assert(text === (await r.text), 'text');
});

await check('generateObject with a zod schema (json_schema): a valid object', async () => {
  const schema = z.object({
    title: z.string().max(20),
    urgent: z.boolean(),
    kind: z.enum(['note', 'task']),
    count: z.number().int().nonnegative(),
    tags: z.array(z.string().max(8)).max(2),
  });
  for (const temperature of [0, 1]) {
    const r = await generateObject({ model, schema, system, prompt, temperature, maxRetries: 0 });
    assert(typeof r.object.urgent === 'boolean' && ['note', 'task'].includes(r.object.kind), JSON.stringify(r.object));
  }
});

await check('generateObject without structured outputs (json_object): parses as JSON', async () => {
  const r = await generateObject({
    model: plainProvider.chatModel('local'), output: 'no-schema', system, prompt, maxRetries: 0, maxOutputTokens: 64,
  });
  assert(r.object && typeof r.object === 'object', JSON.stringify(r.object));
});

await check('a tool-call history is text context', async () => {
  const r = await generateText({
    model, maxOutputTokens: 4, maxRetries: 0,
    messages: [
      { role: 'user', content: 'What is the weather in Paris?' },
      { role: 'assistant', content: [{ type: 'tool-call', toolCallId: 'call_1', toolName: 'get_weather', input: { city: 'Paris' } }] },
      { role: 'tool', content: [{ type: 'tool-result', toolCallId: 'call_1', toolName: 'get_weather', output: { type: 'json', value: { sky: 'sunny' } } }] },
      { role: 'user', content: 'Thanks. Clean this up: um the meeting is at at noon' },
    ],
  });
  assert(r.usage.inputTokens > 30 && r.usage.outputTokens > 0, JSON.stringify(r.usage));
});

await check('tools are a 400 naming tools', async () => {
  await badParam('tools', () => generateText({
    model, prompt, maxRetries: 0,
    tools: { get_weather: tool({ description: 'weather', inputSchema: jsonSchema({ type: 'object', properties: {} }) }) },
  }));
});

await check('temperature over 2 and penalties over 2 are 400s naming them', async () => {
  await badParam('temperature', () => generateText({ model, prompt, temperature: 3, maxRetries: 0 }));
  await badParam('frequency_penalty', () => generateText({ model, prompt, frequencyPenalty: 2.5, maxRetries: 0 }));
  await badParam('presence_penalty', () => generateText({ model, prompt, presencePenalty: -2.5, maxRetries: 0 }));
  const r = await generateText({ model, prompt, frequencyPenalty: 1, presencePenalty: 1, maxOutputTokens: 4, seed: -1, maxRetries: 0 });
  assert(r.usage.outputTokens > 0, 'penalties and seed -1 work');
});

await check('abort mid-stream, then the next request is answered', async () => {
  const ac = new AbortController();
  const r = streamText({
    model, prompt, abortSignal: ac.signal, maxRetries: 0,
    providerOptions: { codictate: { ignore_eos: true } },
  });
  let parts = 0;
  try {
    for await (const delta of r.textStream) {
      if (delta && ++parts === 3) ac.abort();
    }
  } catch (e) {
    assert(e.name === 'AbortError' || /abort/i.test(String(e)), `got ${e}`);
  }
  assert(parts >= 3 && parts < 200, `parts ${parts}`);
  const after = await generateText({ model, prompt, maxOutputTokens: 3, maxRetries: 0 });
  assert(after.usage.outputTokens > 0, 'answered after the abort');
});

finish();
