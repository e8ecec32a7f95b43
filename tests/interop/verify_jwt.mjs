// Verify a JWT-SVID with npm `jose`, an implementation independent of tabard.
//
// Usage: node verify_jwt.mjs --jwks <url-or-file> --token <jwt> --audience <aud>
//                            [--current-date <unix seconds>]
//
// The JWKS is a SPIFFE trust bundle (SPIFFE Trust Domain and Bundle §4): JWT authorities carry
// `use: "jwt-svid"`. jose only selects keys whose `use` is absent or "sig", so the bundle is
// reduced to its JWT authorities and `use` is removed before building the key set.
//
// Prints one JSON line and exits 0 ({"ok": true, "payload", "header"}) or 1
// ({"ok": false, "error": <code>, "message"}).
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { createLocalJWKSet, jwtVerify } from 'jose';

const ALGORITHMS = ['ES256', 'ES384', 'RS256', 'PS256'];
const FETCH_TIMEOUT_MS = 10_000;

class UsageError extends Error {
  constructor(message) {
    super(message);
    this.code = 'ERR_USAGE';
  }
}

class BundleError extends Error {
  constructor(message) {
    super(message);
    this.code = 'ERR_BUNDLE';
  }
}

function parseCommandLine(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        jwks: { type: 'string' },
        token: { type: 'string' },
        audience: { type: 'string' },
        'current-date': { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError(err.message);
  }
  for (const name of ['jwks', 'token', 'audience']) {
    if (!values[name]) throw new UsageError(`--${name} is required`);
  }
  return values;
}

async function loadBundle(source) {
  let text;
  if (/^https?:\/\//i.test(source)) {
    const response = await fetch(source, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
    if (!response.ok) throw new BundleError(`fetching the bundle returned HTTP ${response.status}`);
    text = await response.text();
  } else {
    text = await readFile(source.startsWith('file://') ? new URL(source) : source, 'utf8');
  }
  let bundle;
  try {
    bundle = JSON.parse(text);
  } catch {
    throw new BundleError('the bundle is not JSON');
  }
  if (!bundle || !Array.isArray(bundle.keys)) throw new BundleError('the bundle has no "keys" array');
  return bundle;
}

function jwtAuthorities(bundle) {
  const keys = bundle.keys
    .filter((jwk) => jwk && jwk.use === 'jwt-svid')
    .map(({ use, ...jwk }) => jwk);
  return { keys };
}

function emit(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

async function main() {
  const args = parseCommandLine(process.argv.slice(2));
  const keySet = createLocalJWKSet(jwtAuthorities(await loadBundle(args.jwks)));
  const options = { audience: args.audience, algorithms: ALGORITHMS };
  if (args['current-date'] !== undefined) {
    const seconds = Number(args['current-date']);
    if (!Number.isFinite(seconds)) throw new UsageError('--current-date must be unix seconds');
    options.currentDate = new Date(seconds * 1000);
  }
  const { payload, protectedHeader } = await jwtVerify(args.token, keySet, options);
  emit({ ok: true, payload, header: protectedHeader });
}

try {
  await main();
  process.exitCode = 0;
} catch (err) {
  const result = {
    ok: false,
    error: typeof err?.code === 'string' ? err.code : 'ERR_UNEXPECTED',
    message: String(err?.message ?? err),
  };
  if (typeof err?.claim === 'string') result.claim = err.claim;
  emit(result);
  process.exitCode = 1;
}
