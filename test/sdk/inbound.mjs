// Drives an infergate gateway with Anthropic's official Node client
// (Messages API) and OpenAI's (Responses API) and prints one JSON object:
// for each call, its result or the SDK's own error class. The Go test
// beside it (inbound_test.go) starts the gateway and judges it.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const require = createRequire(process.env.IG_NODE_MODULES + '/');
const { default: OpenAI } = await import(pathToFileURL(require.resolve('openai')).href);
const anthropicModule = await import(pathToFileURL(require.resolve('@anthropic-ai/sdk')).href);
const Anthropic = anthropicModule.Anthropic ?? anthropicModule.default?.default ?? anthropicModule.default;

const root = process.env.IG_ROOT_URL; // http://host:port (the Anthropic SDK adds /v1)
const apiKey = process.env.IG_KEY;
const limitedKey = process.env.IG_LIMITED_KEY;
const model = process.env.IG_MODEL;
// No retries: a retried call would hide the first answer's error.
const anthropic = new Anthropic({ baseURL: root, apiKey, maxRetries: 0, timeout: 20000 });
const openai = new OpenAI({ baseURL: root + '/v1', apiKey, maxRetries: 0, timeout: 20000 });

const results = {};
async function check(name, fn) {
  try {
    results[name] = { ok: true, value: await fn() };
  } catch (e) {
    results[name] = {
      ok: false, error: e.constructor.name, status: e.status ?? null, message: String(e.message),
      type: e.error?.error?.type ?? e.type ?? null, code: e.code ?? null,
    };
  }
}

const weather = {
  name: 'get_weather', description: 'Weather for a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};
const png = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';

await check('messages', async () => {
  const m = await anthropic.messages.create({
    model, max_tokens: 6, system: 'You are terse.', stop_sequences: ['###'],
    messages: [{ role: 'user', content: 'Write one short sentence about load balancers.' }],
  });
  return { type: m.type, role: m.role, text: m.content[0].text, stop_reason: m.stop_reason, usage: m.usage };
});
await check('messages.stream', async () => {
  const s = anthropic.messages.stream({ model, max_tokens: 5, messages: [{ role: 'user', content: 'Hello there' }] });
  const types = [];
  let text = '';
  for await (const ev of s) {
    types.push(ev.type);
    if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') text += ev.delta.text;
  }
  const final = await s.finalMessage();
  return { types, text, finalText: final.content[0].text, stop_reason: final.stop_reason, usage: final.usage };
});
await check('messages.tools', async () => {
  const first = await anthropic.messages.create({
    model, max_tokens: 50, tools: [weather], messages: [{ role: 'user', content: 'Weather in Paris?' }],
  });
  const use = first.content.find((b) => b.type === 'tool_use');
  const second = await anthropic.messages.create({
    model, max_tokens: 4, tools: [weather], messages: [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: first.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '18C and sunny' }] },
    ],
  });
  return { stop_reason: first.stop_reason, name: use.name, input: use.input, id: use.id,
    second: { stop_reason: second.stop_reason, type: second.content[0].type } };
});
await check('messages.tools.stream', async () => {
  const s = anthropic.messages.stream({ model, max_tokens: 50, tools: [weather], messages: [{ role: 'user', content: 'Weather?' }] });
  const final = await s.finalMessage();
  const use = final.content.find((b) => b.type === 'tool_use');
  return { stop_reason: final.stop_reason, name: use?.name, input: use?.input };
});
await check('messages.image', async () => {
  const m = await anthropic.messages.create({
    model, max_tokens: 3, messages: [{ role: 'user', content: [
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: png } },
      { type: 'text', text: 'What is this?' }] }],
  });
  return { text: m.content[0].text };
});
await check('messages.countTokens', async () => {
  const c = await anthropic.messages.countTokens({ model, system: 'You are terse.', messages: [{ role: 'user', content: 'Hello there' }] });
  return c;
});
await check('messages.badKey', async () => {
  const bad = new Anthropic({ baseURL: root, apiKey: 'ig-wrong-key-000000000000', maxRetries: 0 });
  return await bad.messages.create({ model, max_tokens: 3, messages: [{ role: 'user', content: 'x' }] });
});
await check('messages.unknownModel', async () => {
  return await anthropic.messages.create({ model: 'no-such-model', max_tokens: 3, messages: [{ role: 'user', content: 'x' }] });
});

await check('responses', async () => {
  const r = await openai.responses.create({ model, instructions: 'You are terse.', input: 'Say hello.', max_output_tokens: 4 });
  return { object: r.object, status: r.status, output_text: r.output_text, incomplete: r.incomplete_details, usage: r.usage };
});
await check('responses.stream', async () => {
  const s = await openai.responses.create({ model, input: [{ role: 'user', content: [{ type: 'input_text', text: 'Hi' }] }], max_output_tokens: 3, stream: true });
  const types = [];
  let text = '';
  let final = null;
  let seqOK = true;
  for await (const ev of s) {
    if (ev.sequence_number !== types.length) seqOK = false;
    types.push(ev.type);
    if (ev.type === 'response.output_text.delta') text += ev.delta;
    if (ev.type === 'response.completed' || ev.type === 'response.incomplete') final = ev.response;
  }
  return { types, text, seqOK, status: final?.status, usage: final?.usage };
});
await check('responses.tools', async () => {
  const tools = [{ type: 'function', name: 'get_weather', parameters: weather.input_schema, strict: false }];
  const first = await openai.responses.create({ model, input: 'Weather in Paris?', tools });
  const call = first.output.find((o) => o.type === 'function_call');
  const second = await openai.responses.create({
    model, max_output_tokens: 4, tools, input: [
      { role: 'user', content: 'Weather in Paris?' }, call,
      { type: 'function_call_output', call_id: call.call_id, output: '18C and sunny' }],
  });
  return { name: call.name, arguments: call.arguments, status: first.status, second: second.output_text };
});
await check('responses.tools.stream', async () => {
  const tools = [{ type: 'function', name: 'get_weather', parameters: weather.input_schema, strict: false }];
  const s = await openai.responses.create({ model, input: 'Weather?', tools, stream: true });
  let args = '';
  let done = null;
  for await (const ev of s) {
    if (ev.type === 'response.function_call_arguments.delta') args += ev.delta;
    if (ev.type === 'response.function_call_arguments.done') done = ev.arguments;
  }
  return { args, done };
});
await check('responses.structured', async () => {
  const r = await openai.responses.create({ model, input: 'Give a greeting.', max_output_tokens: 3,
    text: { format: { type: 'json_schema', name: 'greeting', schema: { type: 'object', properties: { g: { type: 'string' } } }, strict: false } } });
  return { status: r.status };
});
await check('responses.previous', async () => {
  return await openai.responses.create({ model, input: 'x', previous_response_id: 'resp_123' });
});

// One tenant's request limit holds across APIs: three requests (one per
// API) pass, the next ones are refused by each SDK as its rate-limit error.
const la = new Anthropic({ baseURL: root, apiKey: limitedKey, maxRetries: 0 });
const lo = new OpenAI({ baseURL: root + '/v1', apiKey: limitedKey, maxRetries: 0 });
await check('limit.chat', async () => (await lo.chat.completions.create({ model, max_tokens: 2, messages: [{ role: 'user', content: 'x' }] })).object);
await check('limit.messages', async () => (await la.messages.create({ model, max_tokens: 2, messages: [{ role: 'user', content: 'x' }] })).type);
await check('limit.responses', async () => (await lo.responses.create({ model, max_output_tokens: 2, input: 'x' })).object);
await check('limit.messages.over', async () => await la.messages.create({ model, max_tokens: 2, messages: [{ role: 'user', content: 'x' }] }));
await check('limit.responses.over', async () => await lo.responses.create({ model, max_output_tokens: 2, input: 'x' }));

process.stdout.write(JSON.stringify(results));
