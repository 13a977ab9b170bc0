import { PassThrough } from 'node:stream';
import { ERRORS, errorBody, type ErrorCode as HubErrorCode } from '../errors.js';
import { ErrorCode } from '../relay/protocol/frames.js';
import type { ChannelListener, TunnelChannel } from '../relay/protocol/channel.js';
import type { HeaderList, RequestHead } from '../relay/protocol/heads.js';
import type { CallHandler, ServiceCall, ServiceClient } from './service-client.js';

/**
 * One relayed request: the request body from the hub goes to the REST service; the service's
 * response goes back on the channel, chunk by chunk, so server-sent events and other streaming answers
 * are never buffered whole, and a slow hub (or client) pauses the service.
 */
export class Exchange implements CallHandler, ChannelListener {
  #answered = false;
  #noBody = false;
  /** Body bytes still to come when the service gave a Content-Length: the last chunk carries END_STREAM. */
  #remaining = -1;
  #call: ServiceCall | undefined;
  /** The request body on its way to the service (none when the request has no body). */
  #body: PassThrough | undefined;
  #paused: ServiceCall | undefined;
  readonly #resumeCall = (): void => {
    const call = this.#paused;
    this.#paused = undefined;
    call?.resume();
  };
  readonly #resumeChannel = (): void => this.channel.resume();

  constructor(
    private readonly channel: TunnelChannel,
    private readonly head: RequestHead,
    private readonly client: ServiceClient,
    /** The hub's frame limit: a RESPONSE head larger than this would close the whole tunnel. */
    private readonly maxHeadBytes: number,
  ) {}

  start(): void {
    const { channel, head } = this;
    channel.listener = this;
    // A body of its own for the service call: the call may fail and destroy it, and the channel must
    // stay usable for the error answer.
    if (!channel.peerEnded) this.#body = new PassThrough();
    this.#call = this.client.call(head.method, head.target, head.headers, this.#body ?? null, this);
  }

  /** The channel is over (answered, reset, or the tunnel closed): the call ends too. */
  closed(): void {
    if (!this.#answered) this.client.log.debug('relayed request cancelled before the response head', { stream: this.channel.id });
    this.#answered = true;
    this.#body?.destroy();
    // Not once the whole answer went out (head only, or the last chunk of a known length): the call
    // is finishing on its own, and aborting it would close a connection that can be reused.
    if (!this.#noBody && this.#remaining !== 0) this.#call?.abort();
  }

  // ---- the request body, from the hub ----

  onData(chunk: Buffer, end: boolean): void {
    const body = this.#body;
    if (!body || body.destroyed) return;
    if (chunk.length > 0 && !body.write(chunk)) {
      // The service reads slower than the client sends: no credit goes back to the hub meanwhile.
      this.channel.pause();
      body.once('drain', this.#resumeChannel);
    }
    if (end) body.end();
  }

  onError(): void {
    // The hub reset the stream (its client went away) or the tunnel closed; `closed` follows.
  }

  // ---- the service's answer ----

  onHead(status: number, headers: HeaderList, call: ServiceCall): void {
    const { channel, head } = this;
    if (this.#answered || channel.closed) {
      call.abort();
      return;
    }
    const length = contentLength(headers);
    this.#noBody = head.method === 'HEAD' || status === 204 || status === 304 || length === 0;
    this.#remaining = length;
    let size = 4;
    for (const [k, v] of headers) size += 4 + k.length + v.length;
    if (size > this.maxHeadBytes) {
      call.abort();
      this.#fail('CR_ERR_DEVICE_API_UNREACHABLE', `response head of ${size} bytes exceeds the tunnel frame limit of ${this.maxHeadBytes}`);
      return;
    }
    try {
      channel.respond({ status, headers }, this.#noBody);
    } catch (err) {
      // A head the tunnel cannot encode (a header longer than its u16 length field).
      call.abort();
      this.#fail('CR_ERR_DEVICE_API_UNREACHABLE', `response head not relayable: ${(err as Error).message}`);
      return;
    }
    this.#answered = true;
  }

  onBody(chunk: Buffer, call: ServiceCall): void {
    if (this.#noBody || chunk.length === 0) return;
    let last = false;
    if (this.#remaining > 0) {
      this.#remaining = Math.max(0, this.#remaining - chunk.length);
      last = this.#remaining === 0;
    }
    if (!this.channel.write(chunk, this.#resumeCall, last)) {
      // The hub (or its client) is slower than the service: hold the service back.
      call.pause();
      this.#paused = call;
    }
  }

  onEnd(): void {
    if (!this.#noBody) this.channel.end();
  }

  onFail(code: HubErrorCode, detail: string, afterHead: boolean): void {
    if (afterHead) {
      this.client.log.debug('relayed response ended early', { stream: this.channel.id, detail });
      this.channel.cancel(ErrorCode.CANCEL);
      return;
    }
    this.#fail(code, detail);
  }

  #fail(code: HubErrorCode, detail: string): void {
    if (this.#answered) return;
    this.#answered = true;
    const { channel, head } = this;
    this.client.log.warn('relayed request failed', { stream: channel.id, method: head.method, target: head.target, code, detail });
    if (channel.closed) return;
    // The rest of the request body, if any, is dropped.
    this.#body?.destroy();
    const body = Buffer.from(errorBody(code, detail));
    channel.respond({ status: ERRORS[code].status, headers: [['content-type', 'application/json'], ['content-length', String(body.length)]] });
    const sent = channel.write(body, () => undefined);
    channel.end();
    // A RESET after our END_STREAM stops a request body nobody will read; the hub keeps the answer.
    // (Not while the answer still waits for window: the RESET would drop it.)
    if (sent && !channel.peerEnded) channel.cancel(ErrorCode.CANCEL);
  }
}

/** The declared body length, or -1 when there is none (chunked, or until the connection closes). */
function contentLength(headers: HeaderList): number {
  for (const [k, v] of headers) if (k === 'content-length') return /^\d{1,15}$/.test(v) ? Number(v) : -1;
  return -1;
}
