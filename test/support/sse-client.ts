/** A minimal event-stream reader over fetch, for tests: collects parsed events as they arrive. */
export interface ParsedEvent {
  id?: string;
  event: string;
  data: string;
}

export class SseClient {
  readonly events: ParsedEvent[] = [];
  readonly status: number;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  #buf = '';
  #waiters: Array<() => void> = [];
  #done = false;

  private constructor(res: Response) {
    this.status = res.status;
    this.#reader = res.body!.getReader();
    void this.#pump();
  }

  static async open(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
    const res = await fetch(url, { headers: { accept: 'text/event-stream', ...headers } });
    return new SseClient(res);
  }

  async #pump(): Promise<void> {
    const dec = new TextDecoder();
    try {
      for (;;) {
        const { value, done } = await this.#reader.read();
        if (done) break;
        this.#buf += dec.decode(value, { stream: true });
        let i: number;
        while ((i = this.#buf.indexOf('\n\n')) >= 0) {
          const block = this.#buf.slice(0, i);
          this.#buf = this.#buf.slice(i + 2);
          const e: ParsedEvent = { event: 'message', data: '' };
          const data: string[] = [];
          let any = false;
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            const c = line.indexOf(':');
            const field = c < 0 ? line : line.slice(0, c);
            const value = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
            if (field === 'data') {
              data.push(value);
              any = true;
            }
            else if (field === 'event') e.event = value;
            else if (field === 'id') e.id = value;
          }
          if (any) {
            e.data = data.join('\n');
            this.events.push(e);
          }
        }
        for (const w of this.#waiters.splice(0)) w();
      }
    } catch {
      // cancelled
    }
    this.#done = true;
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Waits until `pred` holds over the events received so far. */
  async until(pred: (events: ParsedEvent[]) => boolean, timeoutMs = 10_000): Promise<ParsedEvent[]> {
    const end = Date.now() + timeoutMs;
    while (!pred(this.events)) {
      if (this.#done) throw new Error(`stream ended; events: ${JSON.stringify(this.events)}`);
      const left = end - Date.now();
      if (left <= 0) throw new Error(`timed out; events: ${JSON.stringify(this.events)}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.events;
  }

  of(type: string): ParsedEvent[] {
    return this.events.filter((e) => e.event === type);
  }

  close(): void {
    void this.#reader.cancel().catch(() => undefined);
  }
}
