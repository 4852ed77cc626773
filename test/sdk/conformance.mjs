// Drives an infergate gateway with OpenAI's official Node client and prints
// one JSON object: for each call, its result or the SDK's own error class.
// The Go test beside it (sdk_test.go) starts the gateway and judges it.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

// The SDK lives in the folder the tests own (IG_NODE_MODULES), not beside
// this script: resolve it from there.
const require = createRequire(process.env.IG_NODE_MODULES + '/');
const { default: OpenAI } = await import(pathToFileURL(require.resolve('openai')).href);

const baseURL = process.env.IG_BASE_URL;
const apiKey = process.env.IG_KEY;
const model = process.env.IG_MODEL;
// No retries: a retried call would hide the first answer's error.
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 20000 });
const messages = [{ role: 'user', content: 'Write one short sentence about load balancers.' }];

const results = {};
async function check(name, fn) {
  try {
    results[name] = { ok: true, value: await fn() };
  } catch (e) {
    results[name] = {
      ok: false, error: e.constructor.name, status: e.status ?? null, message: String(e.message),
      type: e.type ?? null, code: e.code ?? null,
    };
  }
}

await check('models.list', async () => (await client.models.list()).data.map((m) => m.id));
await check('models.retrieve', async () => {
  const m = await client.models.retrieve(model);
  return { id: m.id, object: m.object };
});
await check('chat', async () => {
  const r = await client.chat.completions.create({ model, messages, max_tokens: 16 });
  return { content: r.choices[0].message.content, finish: r.choices[0].finish_reason, usage: r.usage };
});
async function stream(extra) {
  const s = await client.chat.completions.create({ model, messages, max_tokens: 16, stream: true, ...extra });
  let text = '', chunks = 0, usage = null, finish = null;
  for await (const c of s) {
    chunks++;
    if (c.choices?.[0]?.delta?.content) text += c.choices[0].delta.content;
    if (c.choices?.[0]?.finish_reason) finish = c.choices[0].finish_reason;
    if (c.usage) usage = c.usage;
  }
  return { text, chunks, usage, finish };
}
await check('chat.stream', () => stream({}));
await check('chat.stream.usage', () => stream({ stream_options: { include_usage: true } }));
await check('chat.stream.cached', async () => {
  // temperature 0: deterministic, so the gateway's response cache keeps it.
  const once = async () => {
    const { data: s, response } = await client.chat.completions.create({
      model, messages, max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true },
    }).withResponse();
    let text = '', chunks = 0, usage = null, finish = null;
    for await (const c of s) {
      chunks++;
      if (c.choices?.[0]?.delta?.content) text += c.choices[0].delta.content;
      if (c.choices?.[0]?.finish_reason) finish = c.choices[0].finish_reason;
      if (c.usage) usage = c.usage;
    }
    return { text, chunks, usage, finish, cache: response.headers.get('x-infergate-cache') };
  };
  return { first: await once(), second: await once() };
});
await check('completions', async () => {
  const r = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 8 });
  return { text: r.choices[0].text, usage: r.usage };
});
await check('embeddings', async () => {
  // The SDK asks for base64 and decodes it into numbers itself.
  const r = await client.embeddings.create({ model, input: ['hello', 'world'] });
  const e = Array.from(r.data[0].embedding);
  return { n: r.data.length, dims: e.length, first: e[0], numbers: e.every((v) => typeof v === 'number'), usage: r.usage };
});
await check('badKey', async () => {
  const bad = new OpenAI({ baseURL, apiKey: 'sk-not-a-key-000000000000', maxRetries: 0 });
  return await bad.chat.completions.create({ model, messages });
});
await check('badRequest', async () => {
  // messages must be an array.
  return await client.chat.completions.create({ model, messages: 'hello' });
});

process.stdout.write(JSON.stringify(results) + '\n');
