// Prints one line per audit result and a JSON summary; exits 1 if any check fails.
import { auditServer } from 'graphql-http';

const results = await auditServer({ url: process.argv[2] });
const counts = { ok: 0, warn: 0, error: 0 };
for (const result of results) {
  counts[result.status] += 1;
  console.log(result.status.toUpperCase(), result.id, result.name, result.reason ?? '');
}
console.log(JSON.stringify(counts));
process.exit(counts.error === 0 ? 0 : 1);
