/**
 * One table of every error the hub returns to HTTP clients. Codes are stable: clients and docs rely on
 * them (docs/api.md lists them; test/errors-doc.test.ts keeps the two in sync).
 */
export const ERRORS = {
  CR_ERR_BAD_REQUEST: { status: 400, message: 'The request is malformed' },
  CR_ERR_INVALID_JSON: { status: 400, message: 'The request body is not valid JSON' },
  CR_ERR_VALIDATION: { status: 400, message: 'A field is missing or invalid' },
  CR_ERR_TOPIC_INVALID: { status: 400, message: 'Not a valid MQTT topic name or filter' },
  CR_ERR_UNAUTHORIZED: { status: 401, message: 'A valid access token is required' },
  CR_ERR_INVALID_CREDENTIALS: { status: 401, message: 'Email or password is wrong' },
  CR_ERR_TOPIC_FORBIDDEN: { status: 403, message: 'The MQTT ACL does not allow this topic for you' },
  CR_ERR_FORBIDDEN: { status: 403, message: 'The token is valid but does not give access to this device' },
  CR_ERR_NOT_FOUND: { status: 404, message: 'No such resource' },
  CR_ERR_DEVICE_NOT_FOUND: { status: 404, message: 'No such device, or it is not yours' },
  CR_ERR_BODY_TOO_LARGE: { status: 413, message: 'The request body exceeds the size limit' },
  CR_ERR_TOO_MANY_REQUESTS: { status: 429, message: 'Too many concurrent requests for this device' },
  CR_ERR_INTERNAL: { status: 500, message: 'Internal error' },
  CR_ERR_DEVICE_API_UNREACHABLE: { status: 502, message: "The agent could not reach the device's REST service" },
  CR_ERR_DEVICE_DISCONNECTED: { status: 502, message: 'The device disconnected while answering' },
  CR_ERR_DEVICE_OFFLINE: { status: 503, message: 'The device is offline' },
  CR_ERR_SHUTTING_DOWN: { status: 503, message: 'The hub is shutting down' },
  CR_ERR_DEVICE_TIMEOUT: { status: 504, message: 'The device did not answer in time' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

/** An error meant for an HTTP client: a stable code, its status, and a message that may add detail. */
export class HubError extends Error {
  override readonly name = 'HubError';
  readonly code: ErrorCode;
  readonly status: number;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? ERRORS[code].message, options);
    this.code = code;
    this.status = ERRORS[code].status;
  }

  toJSON(): { error: { code: ErrorCode; status: number; message: string } } {
    return { error: { code: this.code, status: this.status, message: this.message } };
  }
}

/** The JSON body every error response carries. */
export function errorBody(code: ErrorCode, message?: string): string {
  return JSON.stringify({ error: { code, status: ERRORS[code].status, message: message ?? ERRORS[code].message } });
}
