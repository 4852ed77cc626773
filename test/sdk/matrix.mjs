// Drives the gateway with both official SDKs against every provider kind
// (IG_MODELS: one gateway model per kind) and prints one JSON object: per
// model, an ordered list of calls, each with its result (or the SDK's own
// error class) and the usage the SDK reported. OpenAI's client runs chat
// completions and responses, Anthropic's the Messages API: a whole answer,
// a stream, a tool call with its round trip (the tool's result sent back)
// and a streamed tool call; OpenAI's also ask for structured output. matrix_test.go judges it, comparing each
// call's usage with what the provider stand-in reported, in order.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const require = createRequire(process.env.IG_NODE_MODULES + '/');
const { default: OpenAI } = await import(pathToFileURL(require.resolve('openai')).href);
const anthropicModule = await import(pathToFileURL(require.resolve('@anthropic-ai/sdk')).href);
const Anthropic = anthropicModule.Anthropic ?? anthropicModule.default?.default ?? anthropicModule.default;

const root = process.env.IG_ROOT_URL;
const apiKey = process.env.IG_KEY;
const openai = new OpenAI({ baseURL: root + '/v1', apiKey, maxRetries: 0, timeout: 20000 });
const anthropic = new Anthropic({ baseURL: root, apiKey, maxRetries: 0, timeout: 20000 });

const schema = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] };
const greeting = { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'] };
const chatTools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather of a city', parameters: schema } }];
const respTools = [{ type: 'function', name: 'get_weather', description: 'Weather of a city', parameters: schema, strict: false }];
const msgTools = [{ name: 'get_weather', description: 'Weather of a city', input_schema: schema }];

const results = {};
let calls;
// check runs fn, which returns {value, usages: [[input, output], ...]}
// (one pair per request it made, in order).
async function check(name, fn) {
  try {
    const { value, usages } = await fn();
    calls.push({ name, ok: true, value, usages });
  } catch (e) {
    calls.push({ name, ok: false, error: e.constructor.name, status: e.status ?? null, message: String(e.message) });
  }
}
// Each usage is [prompt tokens in all, output tokens, cached prompt tokens].
const chatUsage = (u) => [u?.prompt_tokens ?? -1, u?.completion_tokens ?? -1, u?.prompt_tokens_details?.cached_tokens ?? 0];
const inOut = (u) => [u?.input_tokens ?? -1, u?.output_tokens ?? -1, u?.input_tokens_details?.cached_tokens ?? 0];
// Anthropic's input_tokens leaves out cache reads and writes.
const msgUsage = (u) => [(u?.input_tokens ?? -1) + (u?.cache_read_input_tokens ?? 0) + (u?.cache_creation_input_tokens ?? 0),
  u?.output_tokens ?? -1, u?.cache_read_input_tokens ?? 0];

for (const model of process.env.IG_MODELS.split(',')) {
  calls = [];
  results[model] = calls;

  // OpenAI chat completions.
  await check('chat', async () => {
    const r = await openai.chat.completions.create({ model, max_tokens: 64,
      messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Say hi' }] });
    return { value: { text: r.choices[0].message.content, finish: r.choices[0].finish_reason }, usages: [chatUsage(r.usage)] };
  });
  await check('chat.stream', async () => {
    const s = await openai.chat.completions.create({ model, max_tokens: 64, stream: true, stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'Say hi' }] });
    let text = '', finish = null, usage = null;
    for await (const c of s) {
      if (c.usage) usage = c.usage;
      for (const ch of c.choices) {
        text += ch.delta?.content ?? '';
        if (ch.finish_reason) finish = ch.finish_reason;
      }
    }
    return { value: { text, finish }, usages: [chatUsage(usage)] };
  });
  await check('chat.tools', async () => {
    const messages = [{ role: 'user', content: 'Weather in Oslo?' }];
    const first = await openai.chat.completions.create({ model, max_tokens: 64, tools: chatTools, messages });
    const msg = first.choices[0].message;
    const tc = msg.tool_calls[0];
    messages.push(msg, { role: 'tool', tool_call_id: tc.id, content: '{"temp_c":21}' });
    const second = await openai.chat.completions.create({ model, max_tokens: 64, tools: chatTools, messages });
    return { value: { finish: first.choices[0].finish_reason, name: tc.function.name, args: tc.function.arguments,
      text: second.choices[0].message.content, finish2: second.choices[0].finish_reason },
    usages: [chatUsage(first.usage), chatUsage(second.usage)] };
  });
  await check('chat.tools.stream', async () => {
    const s = await openai.chat.completions.create({ model, max_tokens: 64, tools: chatTools, stream: true,
      stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'Weather in Oslo?' }] });
    let name = '', args = '', finish = null, usage = null;
    for await (const c of s) {
      if (c.usage) usage = c.usage;
      for (const ch of c.choices) {
        for (const tc of ch.delta?.tool_calls ?? []) {
          name += tc.function?.name ?? '';
          args += tc.function?.arguments ?? '';
        }
        if (ch.finish_reason) finish = ch.finish_reason;
      }
    }
    return { value: { name, args, finish }, usages: [chatUsage(usage)] };
  });

  await check('chat.structured', async () => {
    const r = await openai.chat.completions.create({ model, max_tokens: 64, messages: [{ role: 'user', content: 'Greet me' }],
      response_format: { type: 'json_schema', json_schema: { name: 'greeting', schema: greeting } } });
    return { value: { text: r.choices[0].message.content, finish: r.choices[0].finish_reason, name: String(r.choices[0].message.tool_calls?.length ?? 0) },
      usages: [chatUsage(r.usage)] };
  });

  // OpenAI Responses.
  await check('responses', async () => {
    const r = await openai.responses.create({ model, instructions: 'Be brief.', input: 'Say hi', max_output_tokens: 64 });
    return { value: { text: r.output_text, finish: r.status }, usages: [inOut(r.usage)] };
  });
  await check('responses.stream', async () => {
    const s = await openai.responses.create({ model, input: 'Say hi', max_output_tokens: 64, stream: true });
    let text = '', final = null;
    for await (const ev of s) {
      if (ev.type === 'response.output_text.delta') text += ev.delta;
      if (ev.type === 'response.completed' || ev.type === 'response.incomplete') final = ev.response;
    }
    return { value: { text, finish: final?.status }, usages: [inOut(final?.usage)] };
  });
  await check('responses.tools', async () => {
    const first = await openai.responses.create({ model, input: 'Weather in Oslo?', tools: respTools, max_output_tokens: 64 });
    const call = first.output.find((o) => o.type === 'function_call');
    const second = await openai.responses.create({ model, tools: respTools, max_output_tokens: 64, input: [
      { role: 'user', content: 'Weather in Oslo?' }, call,
      { type: 'function_call_output', call_id: call.call_id, output: '{"temp_c":21}' }] });
    return { value: { finish: first.status, name: call.name, args: call.arguments, text: second.output_text, finish2: second.status },
      usages: [inOut(first.usage), inOut(second.usage)] };
  });
  await check('responses.tools.stream', async () => {
    const s = await openai.responses.create({ model, input: 'Weather in Oslo?', tools: respTools, max_output_tokens: 64, stream: true });
    let name = '', args = '', final = null;
    for await (const ev of s) {
      if (ev.type === 'response.output_item.added' && ev.item.type === 'function_call') name = ev.item.name;
      if (ev.type === 'response.function_call_arguments.done') args = ev.arguments;
      if (ev.type === 'response.completed' || ev.type === 'response.incomplete') final = ev.response;
    }
    return { value: { name, args, finish: final?.status }, usages: [inOut(final?.usage)] };
  });

  await check('responses.structured', async () => {
    const r = await openai.responses.create({ model, input: 'Greet me', max_output_tokens: 64,
      text: { format: { type: 'json_schema', name: 'greeting', schema: greeting, strict: false } } });
    return { value: { text: r.output_text, finish: r.status, name: String(r.output.filter((o) => o.type === 'function_call').length) },
      usages: [inOut(r.usage)] };
  });

  // Anthropic Messages.
  await check('messages', async () => {
    const m = await anthropic.messages.create({ model, max_tokens: 64, system: 'Be brief.', messages: [{ role: 'user', content: 'Say hi' }] });
    return { value: { text: m.content[0]?.text, finish: m.stop_reason }, usages: [msgUsage(m.usage)] };
  });
  await check('messages.stream', async () => {
    const s = anthropic.messages.stream({ model, max_tokens: 64, messages: [{ role: 'user', content: 'Say hi' }] });
    let text = '';
    for await (const ev of s) {
      if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') text += ev.delta.text;
    }
    const final = await s.finalMessage();
    return { value: { text, finish: final.stop_reason }, usages: [msgUsage(final.usage)] };
  });
  await check('messages.tools', async () => {
    const messages = [{ role: 'user', content: 'Weather in Oslo?' }];
    const first = await anthropic.messages.create({ model, max_tokens: 64, tools: msgTools, messages });
    const use = first.content.find((b) => b.type === 'tool_use');
    messages.push({ role: 'assistant', content: first.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '{"temp_c":21}' }] });
    const second = await anthropic.messages.create({ model, max_tokens: 64, tools: msgTools, messages });
    return { value: { finish: first.stop_reason, name: use.name, args: JSON.stringify(use.input),
      text: second.content.find((b) => b.type === 'text')?.text, finish2: second.stop_reason },
    usages: [msgUsage(first.usage), msgUsage(second.usage)] };
  });
  await check('messages.tools.stream', async () => {
    const s = anthropic.messages.stream({ model, max_tokens: 64, tools: msgTools, messages: [{ role: 'user', content: 'Weather in Oslo?' }] });
    const final = await s.finalMessage();
    const use = final.content.find((b) => b.type === 'tool_use');
    return { value: { name: use?.name, args: JSON.stringify(use?.input), finish: final.stop_reason }, usages: [msgUsage(final.usage)] };
  });

  if (process.env.IG_EMBEDS.split(',').includes(model)) {
    await check('embeddings', async () => {
      const r = await openai.embeddings.create({ model, input: ['Say hi', 'Say bye'] });
      return { value: { text: r.data.map((d) => d.embedding.length).join(',') }, usages: [[r.usage.prompt_tokens, 0, 0]] };
    });
  }
  // Endpoints only OpenAI-compatible servers have: the SDK's own error.
  if (!process.env.IG_CHAT_ONLY.split(',').includes(model)) continue;
  await check('completions.unsupported', async () => {
    const r = await openai.completions.create({ model, prompt: 'Say hi', max_tokens: 8 });
    return { value: { text: r.choices[0].text }, usages: [chatUsage(r.usage)] };
  });
  await check('embeddings.unsupported', async () => {
    const r = await openai.embeddings.create({ model, input: 'Say hi' });
    return { value: { text: String(r.data[0].embedding.length) }, usages: [] };
  });
}

// Anthropic's client lists the gateway's models in its own shape.
calls = [];
results['anthropic.models'] = calls;
await check('models.list', async () => {
  const ids = [];
  for await (const m of anthropic.models.list()) ids.push(`${m.type}:${m.id}:${m.display_name}`);
  const one = await anthropic.models.retrieve(ids[0].split(':')[1]);
  return { value: { text: ids.join(','), name: `${one.type}:${one.id}` }, usages: [] };
});
process.stdout.write(JSON.stringify(results));
