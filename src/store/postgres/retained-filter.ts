/**
 * An MQTT topic filter as a condition on `mqtt_retained.topic` (src/store/postgres/postgres-retained.ts):
 * a LIKE on the literal levels before the first wildcard, which the `topic collate "C"` index
 * (migration 0010) answers as a range scan, and, when the filter has wildcards past that prefix, an
 * anchored regular expression that checks the whole topic. The rules are MQTT's (§4.7): `+` is one
 * level (possibly empty), `#` any number of levels including none (`a/#` matches `a`), and a filter
 * whose first level is a wildcard never matches a topic starting with `$` ([MQTT-4.7.2-1]).
 *
 * Topics are user input: every `%`, `_` and `\` in them is escaped for LIKE (with `escape '\'`), and
 * every character a POSIX regular expression treats specially for the regex, so a topic can only
 * match as itself.
 */

export interface FilterCondition {
  /** Pattern for `topic like $x escape '\'`: the literal prefix then `%`, or the whole topic when the filter has no wildcard. */
  like: string;
  /** Pattern for `topic ~ $x`, or undefined when the LIKE alone is exact. */
  regex: string | undefined;
  /** The filter starts with a wildcard: topics starting with `$` are excluded. */
  excludeDollar: boolean;
}

/** `s` as literal text in a LIKE pattern with `escape '\'`. */
export function escapeLike(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/** `s` as literal text in a PostgreSQL (ARE) regular expression. */
export function escapeRegex(s: string): string {
  return s.replace(/[\\^$.|?*+()[\]{}]/g, (c) => `\\${c}`);
}

/** The condition matching exactly the topics `filter` (a valid filter, no `$share/` prefix) matches. */
export function filterCondition(filter: string): FilterCondition {
  const levels = filter.split('/');
  const first = levels.findIndex((l) => l === '+' || l === '#');
  if (first === -1) return { like: escapeLike(filter), regex: undefined, excludeDollar: false };
  const excludeDollar = first === 0;
  // The literal levels before the first wildcard, with the separator that follows them.
  const prefix = levels.slice(0, first).join('/');
  // `a/#` also matches `a`, which `a/%` would miss: the LIKE then keeps only `a`'s own characters.
  const hashOnly = levels[first] === '#';
  const like = first === 0 ? '%' : hashOnly ? `${escapeLike(prefix)}%` : `${escapeLike(prefix)}/%`;
  // `#` (last, by validation) as the only wildcard after the prefix: the LIKE is exact but for `a/#` vs `ab`.
  const parts = levels.map((l) => (l === '+' ? '[^/]*' : l === '#' ? '' : escapeRegex(l)));
  let regex: string;
  if (levels[levels.length - 1] === '#') {
    const head = parts.slice(0, -1).join('/');
    // `#` alone: every topic; `x/#`: `x` itself or anything below it.
    regex = levels.length === 1 ? '^.*$' : `^${head}(/.*)?$`;
  } else {
    regex = `^${parts.join('/')}$`;
  }
  // `#` alone needs no regex: every topic the LIKE and the `$` rule leave.
  return { like, regex: levels.length === 1 && hashOnly ? undefined : regex, excludeDollar };
}
