// `require('jsonwebtoken')` and a connection script's `jwt`: `decode`, as
// Auth0's scripts use it to read the id token. Decoding checks nothing; the
// host has verified the upstream id token before any plugin runs. `sign`
// and `verify` need keys a plugin does not hold and throw, naming the call.

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** base64url (or base64) text as bytes; `null` for text that is neither. */
function base64urlBytes(text) {
  const normalized = text.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  const bytes = [];
  let bits = 0;
  let value = 0;
  for (const char of normalized) {
    const digit = BASE64URL.indexOf(char);
    if (digit < 0) {
      return null;
    }
    value = (value << 6) | digit;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes.push((value >> bits) & 0xff);
    }
  }
  return new Uint8Array(bytes);
}

function jsonPart(part) {
  const bytes = part === undefined ? null : base64urlBytes(part);
  if (bytes === null) {
    return null;
  }
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

/**
 * The payload of a compact JWT (`{ complete: true }`: `{ header, payload,
 * signature }`), or `null` for anything that is not one, as jsonwebtoken
 * answers.
 */
export function decode(token, options = {}) {
  if (typeof token !== 'string') {
    return null;
  }
  const [header, payload, signature] = token.split('.');
  const claims = jsonPart(payload);
  if (claims === null || signature === undefined) {
    return null;
  }
  return options.complete ? { header: jsonPart(header), payload: claims, signature } : claims;
}

function unsupported(name) {
  return () => {
    throw new Error(`jsonwebtoken.${name} is not supported by Claimsmith: a plugin holds no keys`);
  };
}

export const sign = unsupported('sign');
export const verify = unsupported('verify');
export default { decode, sign, verify };
