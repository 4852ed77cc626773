// Drives the gateway with OpenAI's official Node client against every
// provider kind (IG_MODELS: one gateway model per kind) and prints one JSON
// object: per model, a whole chat, a streamed chat (with usage) and a tool
// call, or the SDK's own error class. providers_test.go judges it.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const require = createRequire(process.env.IG_NODE_MODULES + '/');
const { default: OpenAI } = await import(pathToFileURL(require.resolve('openai')).href);

const client = new OpenAI({ baseURL: process.env.IG_BASE_URL, apiKey: process.env.IG_KEY, maxRetries: 0, timeout: 20000 });
const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather of a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];

const results = {};
async function check(name, fn) {
  try {
    results[name] = { ok: true, value: await fn() };
  } catch (e) {
    results[name] = { ok: false, error: e.constructor.name, status: e.status ?? null, message: String(e.message) };
  }
}

for (const model of process.env.IG_MODELS.split(',')) {
  await check(model + ' chat', async () => {
    const r = await client.chat.completions.create({ model, max_tokens: 32,
      messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Say hi' }] });
    return { content: r.choices[0].message.content, finish: r.choices[0].finish_reason, usage: r.usage };
  });
  await check(model + ' stream', async () => {
    const s = await client.chat.completions.create({ model, stream: true, stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'Say hi' }] });
    let content = '', finish = null, usage = null, chunks = 0;
    for await (const c of s) {
      chunks++;
      if (c.usage) usage = c.usage;
      for (const ch of c.choices) {
        content += ch.delta?.content ?? '';
        if (ch.finish_reason) finish = ch.finish_reason;
      }
    }
    return { content, finish, usage, chunks };
  });
  await check(model + ' tools', async () => {
    const r = await client.chat.completions.create({ model, tools, tool_choice: 'required',
      messages: [{ role: 'user', content: 'Weather in Oslo?' }] });
    const tc = r.choices[0].message.tool_calls[0];
    return { finish: r.choices[0].finish_reason, name: tc.function.name, args: JSON.parse(tc.function.arguments) };
  });
}
process.stdout.write(JSON.stringify(results));
