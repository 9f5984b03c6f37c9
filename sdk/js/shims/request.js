// `request`, the legacy HTTP module Auth0's connection scripts call, over
// the host's `fetch` (so the plugin's `allowed_origins` hold):
// `request(options, callback)`, `request(url, options, callback)`,
// `request.get/post/put/patch/del/delete/head`. Options: `url`/`uri`,
// `method`, `headers`, `qs`, `body`, `form`, `json` (`true` or a body to
// send as JSON; either way the answer is parsed as JSON). The callback gets
// `(error, response, body)`, `response.statusCode` and `response.headers`
// as the module gave them.

// CommonJS, unlike the rest of the SDK: `require('request')` must answer
// the function itself, as the module did.
const { runCallback } = require('../common.js');

function options(first, second) {
  const base = typeof first === 'string' ? { url: first } : { ...first };
  return typeof second === 'object' && second !== null ? { ...base, ...second } : base;
}

function target({ url, uri, qs }) {
  const address = new URL(url ?? uri);
  for (const [name, value] of Object.entries(qs ?? {})) {
    address.searchParams.append(name, String(value));
  }
  return address.toString();
}

function requestBody(opts, headers) {
  const set = (name, value) => {
    if (!Object.keys(headers).some((h) => h.toLowerCase() === name)) {
      headers[name] = value;
    }
  };
  if (opts.form !== undefined) {
    set('content-type', 'application/x-www-form-urlencoded');
    return typeof opts.form === 'string' ? opts.form : new URLSearchParams(opts.form).toString();
  }
  const json = opts.json === true ? opts.body : opts.json;
  if (opts.json !== undefined && opts.json !== false) {
    set('accept', 'application/json');
    if (json !== undefined && typeof json !== 'string') {
      set('content-type', 'application/json');
      return JSON.stringify(json);
    }
  }
  return opts.body;
}

async function send(opts) {
  const headers = { ...(opts.headers ?? {}) };
  const body = requestBody(opts, headers);
  const method = (opts.method ?? 'GET').toUpperCase();
  const answer = await fetch(target(opts), { method, headers, body });
  let text = await answer.text();
  let parsed = text;
  if (opts.json !== undefined && opts.json !== false && text !== '') {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  const response = {
    statusCode: answer.status,
    statusMessage: answer.statusText,
    headers: Object.fromEntries(answer.headers.entries()),
    body: parsed,
  };
  return [response, parsed];
}

function request(first, second, third) {
  const callback = [third, second, first].find((value) => typeof value === 'function');
  const opts = options(first, typeof second === 'function' ? undefined : second);
  const done = typeof callback === 'function' ? callback : () => {};
  send(opts).then(
    ([response, body]) => runCallback(done, null, response, body),
    (error) => runCallback(done, error instanceof Error ? error : new Error(String(error))),
  );
}

for (const [name, method] of Object.entries({
  get: 'GET',
  post: 'POST',
  put: 'PUT',
  patch: 'PATCH',
  del: 'DELETE',
  delete: 'DELETE',
  head: 'HEAD',
})) {
  request[name] = (first, second, third) => {
    const callback = [third, second].find((value) => typeof value === 'function');
    const opts = options(first, typeof second === 'function' ? undefined : second);
    return request({ ...opts, method }, callback);
  };
}

module.exports = request;
