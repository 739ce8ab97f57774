// Drives agentd's OpenAI-compatible endpoint with the official openai package:
// a plain completion, a streamed one, a tool call and a JSON-schema answer.
// Prints one JSON object with what came back; the Python test checks it.
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: process.env.AGENTD_URL + "/v1",
  apiKey: process.env.AGENTD_KEY,
  maxRetries: 0,
  timeout: 120000,
});
const model = process.env.AGENTD_MODEL || "agentd";
const out = {};

const plain = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: process.env.PLAIN_PROMPT || "hello from the sdk" }],
  max_tokens: 48,
  temperature: 0,
});
out.plain = { content: plain.choices[0].message.content, finish: plain.choices[0].finish_reason, usage: plain.usage };

const stream = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: process.env.STREAM_PROMPT || "stream this please" }],
  max_tokens: 48,
  temperature: 0,
  stream: true,
  stream_options: { include_usage: true },
});
let text = "";
let chunks = 0;
let usage = null;
for await (const chunk of stream) {
  chunks++;
  if (chunk.usage) usage = chunk.usage;
  text += chunk.choices?.[0]?.delta?.content ?? "";
}
out.stream = { content: text, chunks, usage };

const tools = [{
  type: "function",
  function: {
    name: "calculator",
    description: "Exact arithmetic on integers and decimals.",
    parameters: {
      type: "object",
      properties: { expression: { type: "string" } },
      required: ["expression"],
      additionalProperties: false,
    },
  },
}];
const toolReply = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: process.env.TOOL_PROMPT || "calc 12*7" }],
  tools,
  tool_choice: process.env.TOOL_CHOICE || undefined,
  temperature: 0,
  max_tokens: Number(process.env.TOOL_MAX_TOKENS || 64),
});
const call = toolReply.choices[0].message.tool_calls?.[0];
out.tool = { finish: toolReply.choices[0].finish_reason, name: call?.function?.name, arguments: call?.function?.arguments };

const json = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: process.env.JSON_PROMPT || "give json" }],
  temperature: 0,
  max_tokens: Number(process.env.JSON_MAX_TOKENS || 64),
  response_format: {
    type: "json_schema",
    json_schema: {
      name: "answer",
      schema: { type: "object", properties: { answer: { type: "string" } }, required: ["answer"], additionalProperties: false },
    },
  },
});
out.json = { content: json.choices[0].message.content };

try {
  await client.chat.completions.create({ model, messages: [] });
  out.error = { status: 0 };
} catch (e) {
  out.error = { status: e.status, type: e.error?.type ?? e.type, message: e.message };
}

console.log(JSON.stringify(out));
