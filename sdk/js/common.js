// What the worlds share: secrets, the host's log, turning whatever a plugin
// throws into the error text the WIT contract carries, and the actions'
// `api.cache`.
//
// This file is compiled into every JavaScript plugin by `claimsmith build`;
// plugins do not import it themselves.

import { secret } from 'claimsmith:plugin/secrets@0.1.0';

/**
 * `event.secrets` / `ctx.secrets`: reads a secret from the host when a
 * property is read, so only the secrets a plugin uses cross the boundary.
 * Unknown names read as `undefined`, as in Auth0.
 */
export function secretsProxy() {
  return new Proxy(
    {},
    {
      get(_target, name) {
        return typeof name === 'string' ? secret(name) : undefined;
      },
      has(_target, name) {
        return typeof name === 'string' && secret(name) !== undefined;
      },
    },
  );
}

/**
 * The error text for the host: an Error's message, or the value as text.
 * Always a string: anything else would trap instead of failing the step.
 */
export function errorText(error) {
  if (error instanceof Error) {
    return error.message || error.name;
  }
  if (typeof error === 'string') {
    return error;
  }
  try {
    const text = JSON.stringify(error);
    if (typeof text === 'string') {
      return text;
    }
  } catch {
    // fall through: cycles, BigInt
  }
  try {
    return String(error);
  } catch {
    return 'the plugin threw a value that cannot be shown';
  }
}

/**
 * A WIT error variant (`{ tag, val }`, thrown by componentize-js as the
 * `payload` of an error) as readable text.
 */
export function describeHostError(error) {
  const payload = error && error.payload !== undefined ? error.payload : error;
  if (payload && typeof payload === 'object' && 'tag' in payload) {
    return payload.val === undefined ? payload.tag : `${payload.tag}: ${payload.val}`;
  }
  // A WIT enum arrives as its case's name.
  if (typeof payload === 'string') {
    return payload;
  }
  return errorText(error);
}

/**
 * Runs a host call, turning the WIT error it throws into an Error that says
 * `what` was refused and why.
 */
export function call(what, operation) {
  try {
    return operation();
  } catch (error) {
    throw new Error(`${what}: ${describeHostError(error)}`);
  }
}

/**
 * `api.<token>.setCustomClaim(name, value)` over the host's `set` for that
 * token, `set(name, jsonText)`: `undefined` sets nothing, as JSON would drop
 * it, and a refusal throws naming the `label`led token's claim.
 */
export function claimSetter(label, set) {
  return (name, value) => {
    if (value === undefined) {
      return;
    }
    const text = jsonText(value, `claim \`${name}\``);
    call(`cannot set the ${label} claim \`${name}\``, () => set(name, text));
  };
}

/**
 * An action world's WIT export around the plugin's `handler(event, api)`:
 * `exportName` is the function Auth0's code exports, `auth0Event` and
 * `auth0Api` build the world's shapes for each call.
 */
export function actionExport(handler, exportName, auth0Event, auth0Api) {
  if (typeof handler !== 'function') {
    throw new TypeError(`the plugin must export \`${exportName}(event, api)\``);
  }
  return async function runAction(event) {
    try {
      await handler(auth0Event(event), auth0Api());
    } catch (error) {
      // The contract's error is a string: an Error becomes its message.
      throw errorText(error);
    }
  };
}

/** Where an exception thrown by a callback goes: see {@link runCallback}. */
let failRunningCall = null;

/**
 * Calls `callback` as Node calls one from its event loop: an exception it
 * throws fails the running plugin call, as an uncaught exception ends an
 * Auth0 script, instead of vanishing into a promise nobody awaits.
 */
export function runCallback(callback, ...args) {
  try {
    callback(...args);
  } catch (error) {
    if (failRunningCall === null) {
      throw error;
    }
    failRunningCall(error);
  }
}

/** Makes `fail` receive the exceptions of callbacks from now on. */
export function failOnUncaught(fail) {
  failRunningCall = fail;
}

/**
 * An Auth0 member Claimsmith does not have: reading through it is allowed
 * (`api.multifactor.enable`), calling it throws an error naming it.
 */
export function unsupported(path) {
  return new Proxy(function unsupportedCall() {}, {
    get(_target, name) {
      return typeof name === 'string' && name !== 'then' ? unsupported(`${path}.${name}`) : undefined;
    },
    apply() {
      throw new Error(`${path} is not supported by Claimsmith`);
    },
  });
}

/** `object`, whose missing members are {@link unsupported} under `path`. */
export function naming(object, path) {
  return new Proxy(object, {
    get(target, name, receiver) {
      if (typeof name !== 'string' || name in target || name === 'then' || name === 'toJSON') {
        return Reflect.get(target, name, receiver);
      }
      return unsupported(`${path}.${name}`);
    },
  });
}

/** A JSON text for the host, refusing values JSON cannot carry. */
export function jsonText(value, what) {
  const text = JSON.stringify(value);
  if (text === undefined) {
    throw new TypeError(`${what}: ${typeof value} is not a JSON value`);
  }
  return text;
}

/** Parses a JSON object text handed over by the host. */
export function parseObject(text) {
  const value = JSON.parse(text);
  return value !== null && typeof value === 'object' ? value : {};
}

/**
 * Auth0's `event.client` from the WIT `client` record, which both action
 * worlds share.
 */
export function auth0Client(client) {
  return { client_id: client.clientId, name: client.name, metadata: parseObject(client.metadata) };
}

/** A lifetime in milliseconds for the host (`undefined` for none given). */
function millis(value) {
  return value === undefined || value === null ? undefined : BigInt(Math.max(0, Math.floor(Number(value))));
}

/**
 * Auth0's `api.cache`: the host keeps the entries (each call is a fresh
 * instance). Writes answer `{ type: 'success', record }` or
 * `{ type: 'error', code }` as Auth0's do, never throw.
 *
 * `hostCache` is the world's `claimsmith:plugin/cache` import, passed in by
 * the action worlds: this file is bundled into profile fetchers too, whose
 * world has no cache to import.
 */
export function cacheApi(hostCache) {
  const record = (entry) => ({ value: entry.value, expires_at: Number(entry.expiresAt) });
  return {
    get(key) {
      const entry = hostCache.get(String(key));
      return entry === undefined ? undefined : record(entry);
    },
    set(key, value, options = {}) {
      try {
        const entry = hostCache.set(
          String(key),
          String(value),
          millis(options.ttl),
          millis(options.expires_at),
        );
        return { type: 'success', record: record(entry) };
      } catch (error) {
        return { type: 'error', code: describeHostError(error) };
      }
    },
    delete(key) {
      hostCache.delete(String(key));
      return { type: 'success' };
    },
  };
}
