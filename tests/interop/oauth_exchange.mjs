// Token exchange (RFC 8693) against tabard's AS with npm `oauth4webapi`, then verification of
// the issued access token with npm `jose` against the AS JWKS (RFC 9068: typ at+jwt).
//
// Usage: node oauth_exchange.mjs --issuer <url> --client-id <spiffe id> --svid <jwt-svid>
//          --subject-token <user token> --resource <uri> [--scope <scope>]
//
// The client authenticates with its JWT-SVID as client assertion
// (client_assertion_type urn:ietf:params:oauth:client-assertion-type:jwt-spiffe), a custom
// ClientAuth since the SPIFFE method is not built into the library; the same SVID is the
// actor token. The dev server speaks plain HTTP on loopback, hence allowInsecureRequests.
//
// Prints one JSON line and exits 0 ({"ok": true, "response", "payload", "header",
// "metadata"}) or 1 ({"ok": false, "error", "message"}).
import { parseArgs } from 'node:util';
import * as oauth from 'oauth4webapi';
import { createRemoteJWKSet, jwtVerify } from 'jose';

const SPIFFE_ASSERTION = 'urn:ietf:params:oauth:client-assertion-type:jwt-spiffe';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

function emit(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

async function main() {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      issuer: { type: 'string' }, 'client-id': { type: 'string' }, svid: { type: 'string' },
      'subject-token': { type: 'string' }, resource: { type: 'string' },
      scope: { type: 'string' },
    },
    strict: true,
  });
  for (const name of ['issuer', 'client-id', 'svid', 'subject-token', 'resource']) {
    if (!values[name]) throw Object.assign(new Error(`--${name} is required`), { code: 'ERR_USAGE' });
  }
  const issuer = new URL(values.issuer);
  const options = { [oauth.allowInsecureRequests]: true };
  const as = await oauth.processDiscoveryResponse(
    issuer, await oauth.discoveryRequest(issuer, { ...options, algorithm: 'oauth2' }));
  const client = { client_id: values['client-id'] };
  const spiffeAuth = (_as, _client, body) => {
    body.set('client_assertion_type', SPIFFE_ASSERTION);
    body.set('client_assertion', values.svid);
  };
  const parameters = new URLSearchParams({
    subject_token: values['subject-token'], subject_token_type: JWT_TYPE,
    actor_token: values.svid, actor_token_type: JWT_TYPE, resource: values.resource,
  });
  if (values.scope) parameters.set('scope', values.scope);
  const response = await oauth.genericTokenEndpointRequest(
    as, client, spiffeAuth, 'urn:ietf:params:oauth:grant-type:token-exchange', parameters,
    options);
  const result = await oauth.processGenericTokenEndpointResponse(as, client, response);
  const jwks = createRemoteJWKSet(new URL(as.jwks_uri));
  const { payload, protectedHeader } = await jwtVerify(result.access_token, jwks, {
    issuer: as.issuer, audience: values.resource, typ: 'at+jwt',
  });
  emit({ ok: true, response: result, payload, header: protectedHeader,
         metadata: { issuer: as.issuer, token_endpoint: as.token_endpoint } });
}

try {
  await main();
  process.exitCode = 0;
} catch (err) {
  emit({ ok: false, error: typeof err?.code === 'string' ? err.code : 'ERR_UNEXPECTED',
         message: String(err?.message ?? err), cause: err?.cause ? String(JSON.stringify(err.cause)) : undefined });
  process.exitCode = 1;
}
