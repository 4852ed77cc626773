// Cross-checks testdata/golden.json (or unicode16.json) against OpenAI's own tokenizer: the npm
// package "tiktoken" is the WebAssembly build of OpenAI's Rust tiktoken with
// the vocabularies bundled. Not run by `go test` (no Node in CI); run by hand:
//   npm install tiktoken@1.0.22 && node l7/tokens/testdata/crosscheck.mjs l7/tokens/testdata/golden.json
import { readFileSync } from "node:fs";
import { get_encoding } from "tiktoken";

const entries = JSON.parse(readFileSync(process.argv[2], "utf8"));
const encs = { cl100k_base: get_encoding("cl100k_base"), o200k_base: get_encoding("o200k_base") };
let bad = 0;
for (const e of entries) {
  for (const [name, enc] of Object.entries(encs)) {
    const got = enc.encode_ordinary(e.text).length;
    if (got !== e[name]) {
      bad++;
      console.log(`MISMATCH ${name} ${e.name}: openai=${got} golden=${e[name]}`);
    }
  }
}
console.log(`${entries.length} entries x 2 encodings, ${bad} mismatches`);
process.exit(bad ? 1 : 0);
