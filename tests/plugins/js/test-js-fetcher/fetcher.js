// Test plugin: test-fetcher in JavaScript. GETs the URL in its client's
// metadata (`fetch_url`) with the global `fetch()`, which is wasi:http in
// the host; POSTs `fetch_body` instead when given, or `fetch_body_size`
// bytes of `x`; sends the headers of `fetch_headers` when given.
//
// Exists to prove that JavaScript's fetch is held to the contract's HTTP
// policy: the answer lands in the access token claims `fetched_status` and
// `fetched_body`; a refused request fails the step as `fetch failed: ...`.

export async function onExecutePostLogin(event, api) {
  const { fetch_url: url, fetch_body_size: size, fetch_headers: headers } = event.client.metadata;
  const body = size === undefined ? event.client.metadata.fetch_body : 'x'.repeat(size);
  const init = body === undefined ? {} : { method: 'POST', body };
  if (headers !== undefined) init.headers = headers;
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    throw new Error(`fetch failed: ${error.message}${error.cause ? ` (${error.cause})` : ''}`);
  }
  api.accessToken.setCustomClaim('fetched_status', response.status);
  api.accessToken.setCustomClaim('fetched_body', await response.text());
}
