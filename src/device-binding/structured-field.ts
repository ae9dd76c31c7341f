/**
 * @internal The few RFC 9651 structured-field forms DBSC uses: an sf-string, with or without
 * parameters, in and out. Only what the headers need; anything else is "not a value" (null).
 */

/** Longest header value read: a DBSC proof is well under 2 KiB; more is not a browser. */
const MAX_FIELD_LENGTH = 8192;

/** An sf-string: `"` + text with `\` and `"` escaped + `"`. */
export function sfString(text: string): string {
  return `"${text.replace(/[\\"]/g, (character) => `\\${character}`)}"`;
}

/**
 * The sf-string a request header carries (`Sec-Secure-Session-Id`, `Secure-Session-Response`),
 * its parameters ignored as the spec says; or null when the header is absent, repeated, too
 * long, or not one sf-string. A bare token (no quotes) is read as the text itself: what it
 * names is checked strictly afterwards (a session id compared, a JWT verified), so tolerance
 * here cannot let anything through.
 */
export function readSfString(header: unknown): string | null {
  if (typeof header !== 'string' || header.length > MAX_FIELD_LENGTH) return null;
  const field = header.replace(/^[ \t]+|[ \t]+$/g, '');
  if (!field.startsWith('"')) {
    const bare = /^([!#$%&'*+\-.^_`|~0-9A-Za-z/:=]+)(;.*)?$/.exec(field);
    return bare ? bare[1] : null;
  }
  let text = '';
  for (let position = 1; position < field.length; position++) {
    const code = field.charCodeAt(position);
    if (code === 0x5c /* \ */) {
      const next = field[++position];
      if (next !== '"' && next !== '\\') return null;
      text += next;
    } else if (code === 0x22 /* " */) {
      const rest = field.slice(position + 1);
      return rest === '' || rest.startsWith(';') ? text : null;
    } else if (code < 0x20 || code > 0x7e) {
      return null;
    } else {
      text += field[position];
    }
  }
  return null; // no closing quote
}
