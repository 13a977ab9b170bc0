/**
 * OAuth request parameters from a query string or an application/x-www-form-urlencoded body.
 * RFC 6749 §3.1 and §3.2: a parameter sent without a value is treated as omitted, and no parameter may
 * appear more than once (a repeated one is kept aside so the endpoint can refuse the request).
 */
export class Params {
  readonly #values = new Map<string, string>();
  readonly duplicates: string[] = [];

  constructor(text: string) {
    for (const [k, v] of new URLSearchParams(text)) {
      if (v === '') continue;
      if (this.#values.has(k)) {
        if (!this.duplicates.includes(k)) this.duplicates.push(k);
        continue;
      }
      this.#values.set(k, v);
    }
  }

  get(name: string): string | undefined {
    return this.#values.get(name);
  }

  /** The query of a request URL, as Params. */
  static ofUrl(url: string): Params {
    const q = url.indexOf('?');
    return new Params(q < 0 ? '' : url.slice(q + 1));
  }
}
