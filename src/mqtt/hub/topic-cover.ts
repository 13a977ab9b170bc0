/**
 * Set relations between MQTT topic filters, on their levels (split on '/'): does every topic a filter
 * can match also match a pattern (covers), does any (overlaps)? The ACL uses them to decide a
 * subscription for every topic it could ever receive. Wildcards per 3.1.1 §4.7 / 5.0 §4.7: '#' matches
 * the parent level and any number of child levels, '+' one level; [MQTT-4.7.2-1] a filter starting
 * with a wildcard matches no topic starting with '$'.
 */

const isWild = (level: string): boolean => level === '+' || level === '#';

/** A wildcard first level on one side and a '$' topic on the other can never meet. */
function dollarApart(f: readonly string[], p: readonly string[]): boolean {
  const a = f[0] ?? '';
  const b = p[0] ?? '';
  return (isWild(a) && b.startsWith('$')) || (isWild(b) && a.startsWith('$'));
}

/** True when every topic matched by `filter` is matched by `pattern` (a topic name is a filter without wildcards). */
export function covers(pattern: readonly string[], filter: readonly string[]): boolean {
  if (dollarApart(filter, pattern)) return false;
  for (let i = 0; ; i++) {
    const p = pattern[i];
    const f = filter[i];
    if (p === '#') return true;
    if (p === undefined) return f === undefined;
    // ('a' is covered by 'a/#': that returned true above, on the pattern's '#'.)
    if (f === undefined) return false;
    if (f === '#') return false;
    if (p === '+') continue;
    if (f === '+' || f !== p) return false;
  }
}

/** True when at least one topic is matched by both. */
export function overlaps(a: readonly string[], b: readonly string[]): boolean {
  if (dollarApart(a, b)) return false;
  for (let i = 0; ; i++) {
    const x = a[i];
    const y = b[i];
    if (x === '#' || y === '#') return true;
    // One ended: they meet only if the other did too ('a' and 'a/#' met on the '#' above).
    if (x === undefined || y === undefined) return x === y;
    if (x === '+' || y === '+' || x === y) continue;
    return false;
  }
}

/**
 * The filter matching exactly the topics both match, or undefined when they share none: `a/+/c` and
 * `a/b/#` meet in `a/b/c`, `#` and `x/+` in `x/+`.
 */
export function intersection(a: readonly string[], b: readonly string[]): string[] | undefined {
  if (dollarApart(a, b)) return undefined;
  const out: string[] = [];
  for (let i = 0; ; i++) {
    const x = a[i];
    const y = b[i];
    if (x === '#') return out.concat(b.slice(i));
    if (y === '#') return out.concat(a.slice(i));
    // ('a' and 'a/#' met above on the '#', which also matches the parent level.)
    if (x === undefined || y === undefined) return x === y ? out : undefined;
    if (x === '+') out.push(y);
    else if (y === '+' || x === y) out.push(x);
    else return undefined;
  }
}
