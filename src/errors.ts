/**
 * One table of every error the hub returns to HTTP clients. Codes are stable: clients and docs rely on
 * them (docs/api.md lists them; test/errors-doc.test.ts keeps the two in sync).
 */
export const ERRORS = {
  CR_ERR_BAD_REQUEST: { status: 400, message: 'The request is malformed' },
  CR_ERR_INVALID_JSON: { status: 400, message: 'The request body is not valid JSON' },
  CR_ERR_VALIDATION: { status: 400, message: 'A field is missing or invalid' },
  CR_ERR_TOPIC_INVALID: { status: 400, message: 'Not a valid MQTT topic name or filter' },
  CR_ERR_OAUTH_UNKNOWN_CLIENT: { status: 400, message: 'No OAuth client with this client_id' },
  CR_ERR_OAUTH_REDIRECT_URI: { status: 400, message: 'The redirect_uri is missing or not registered for this client' },
  CR_ERR_OAUTH_INVALID_REQUEST: { status: 400, message: 'The authorization request is invalid' },
  CR_ERR_OAUTH_INVALID_SCOPE: { status: 400, message: 'The scope is missing or names an unknown scope' },
  CR_ERR_UNAUTHORIZED: { status: 401, message: 'A valid access token is required' },
  CR_ERR_INVALID_CREDENTIALS: { status: 401, message: 'Email or password is wrong' },
  CR_ERR_FACTORY_KEY_INVALID: { status: 401, message: 'A valid factory key is required' },
  CR_ERR_FACTORY_KEY_REVOKED: { status: 401, message: 'The factory key is revoked' },
  CR_ERR_DEVICE_AUTH_EXPIRED: { status: 401, message: 'The device no longer accepts its token; authenticate with the device again (POST /v1/devices/{id}/auth)' },
  CR_ERR_TOPIC_FORBIDDEN: { status: 403, message: 'The MQTT ACL does not allow this topic for you' },
  CR_ERR_DEVICE_AUTH_FAILED: { status: 403, message: 'The device refused these credentials' },
  CR_ERR_INSUFFICIENT_SCOPE: { status: 403, message: "The access token's scope does not allow this request" },
  CR_ERR_OAUTH_CONSENT_EXPIRED: { status: 403, message: 'The consent form expired or was altered; load it again' },
  CR_ERR_FORBIDDEN: { status: 403, message: 'The token is valid but does not give access to this device' },
  CR_ERR_NOT_FOUND: { status: 404, message: 'No such resource' },
  CR_ERR_DEVICE_NOT_FOUND: { status: 404, message: 'No such device, or it is not yours' },
  CR_ERR_CONFIRMATION_INVALID: { status: 404, message: 'This confirmation link is not valid' },
  CR_ERR_CLAIM_INVALID: { status: 404, message: 'This device link is not valid' },
  CR_ERR_DEVICE_ID_TAKEN: { status: 409, message: 'The device id is registered by another factory key or outside the factory' },
  CR_ERR_DEVICE_REVOKED: { status: 409, message: 'The device is revoked' },
  CR_ERR_DEVICE_AUTH_UNSUPPORTED: { status: 409, message: 'This device does not authenticate its users (its info has no apiAuthPath)' },
  CR_ERR_CONFIRMATION_EXPIRED: { status: 410, message: 'This confirmation link has expired' },
  CR_ERR_CONFIRMATION_USED: { status: 410, message: 'This confirmation link was already used; sign in with your email and password' },
  CR_ERR_CLAIM_EXPIRED: { status: 410, message: 'This device link has expired; sign in to see your pending devices' },
  CR_ERR_CLAIM_USED: { status: 410, message: 'This device was already accepted or declined, or no longer asks to join your account' },
  CR_ERR_BODY_TOO_LARGE: { status: 413, message: 'The request body exceeds the size limit' },
  CR_ERR_WRONG_NODE_ROLE: { status: 421, message: 'This node does not serve this route in its --role; send it to a front (clients) or an edge (agents)' },
  CR_ERR_TOO_MANY_REQUESTS: { status: 429, message: 'Too many concurrent requests for this device' },
  CR_ERR_RATE_LIMITED: { status: 429, message: 'Too many failed attempts; retry after the time in Retry-After' },
  CR_ERR_BUSY: { status: 429, message: 'The hub is checking too many passwords at once; retry after the time in Retry-After' },
  CR_ERR_RETAINED_QUOTA: { status: 429, message: 'Your retained MQTT messages (or the hub\'s) are at their limit; clear some to retain more' },
  CR_ERR_TOO_MANY_STREAMS: { status: 429, message: 'This user has too many event streams open; close one or retry after the time in Retry-After' },
  CR_ERR_INTERNAL: { status: 500, message: 'Internal error' },
  CR_ERR_DEVICE_API_UNREACHABLE: { status: 502, message: "The agent could not reach the device's REST service" },
  CR_ERR_DEVICE_DISCONNECTED: { status: 502, message: 'The device disconnected while answering' },
  CR_ERR_DEVICE_AUTH_BAD_RESPONSE: { status: 502, message: 'The device answered its apiAuthPath with something other than a token' },
  CR_ERR_DEVICE_OFFLINE: { status: 503, message: 'The device is offline' },
  CR_ERR_SHUTTING_DOWN: { status: 503, message: 'The hub is shutting down' },
  CR_ERR_BACKEND_UNAVAILABLE: { status: 503, message: 'A backend the hub needs (Redis or the database) is unreachable; retry shortly' },
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

/**
 * A listening port the hub was told to use is taken. Not an HTTP error: it stops start-up, and the CLI
 * prints its message (which names the flag that picks another port) without a stack.
 */
export class PortInUseError extends Error {
  override readonly name = 'PortInUseError';
}
